"""grain pipeline over TFDS segments: determinism, exact resume, multi-process sharding,
multimodal-fraction masking, device-resident batches and padded evaluation batches."""

import os

import jax
import numpy as np
import pytest

from primus_jax import checkpointing, input_pipeline, sharding
from primus_jax.config import base_config
from primus_jax.data import prepare, resident, tfds_input
from tfds_builders import testing_utils

N = testing_utils.TinySegments.NUM_EXAMPLES  # 40
DIM = testing_utils.TinySegments.DIM  # 8


@pytest.fixture(scope="module")
def data_dir(tmp_path_factory):
    d = tmp_path_factory.mktemp("tfds")
    testing_utils.TinySegments(data_dir=str(d)).download_and_prepare(file_format="array_record")
    return str(d)


def _config(data_dir, seed=0, batch=8, fraction=1.0):
    c = base_config()
    c.seed = seed
    c.data.source = "tfds"
    c.data.name = "tiny_segments"
    c.data.data_dir = data_dir
    c.data.prepare = False
    c.data.batch_size = batch
    c.data.multimodal_fraction = fraction
    c.model.mm_dim = DIM
    return c


@pytest.fixture(autouse=True)
def _register(monkeypatch):
    # The test builder lives here, not in tfds_builders: make open_source find it.
    monkeypatch.setattr(prepare, "import_builder_module", lambda name: None)
    yield


def _ids(batch):
    return [int(v) for v in batch["imu"][:, 0, 0]]


def _take(it, n):
    return [_ids(next(it)) for _ in range(n)]


def _flat(batches):
    return sorted(i for b in batches for i in b)


def test_same_seed_same_batches_and_epochs_reshuffle(data_dir):
    a = _take(tfds_input.make_train_iterator(_config(data_dir, seed=1)), 10)
    b = _take(tfds_input.make_train_iterator(_config(data_dir, seed=1)), 10)
    c = _take(tfds_input.make_train_iterator(_config(data_dir, seed=2)), 10)
    assert a == b and a != c
    # 5 batches of 8 are one epoch: every example exactly once, and epoch 2 differs.
    assert _flat(a[:5]) == list(range(N))
    assert _flat(a[5:]) == list(range(N))
    assert a[:5] != a[5:]


def test_rows_carry_fixed_width_embeddings(data_dir):
    batch = next(tfds_input.make_train_iterator(_config(data_dir)))
    assert batch["imu"].shape == (8, 250, 6) and batch["imu"].dtype == np.float32
    assert batch["text"].shape == (8, DIM) and batch["video"].shape == (8, DIM)
    assert batch["has_text"].all() and not batch["has_video"].any()
    for i, row in zip(_ids(batch), batch["text"]):
        assert row[i % DIM] == 1.0


def test_resume_mid_epoch_gives_identical_next_batches(data_dir, tmp_path):
    it = tfds_input.make_train_iterator(_config(data_dir))
    _take(it, 3)
    ckpt = checkpointing.Checkpointer(tmp_path / "ckpt", max_to_keep=1)
    state = {"w": np.zeros(3, np.float32)}
    ckpt.save(3, state, it, force=True)
    ckpt.wait()
    expected = _take(it, 6)  # crosses into the next epoch

    fresh = tfds_input.make_train_iterator(_config(data_dir))
    ckpt.restore(3, jax.tree.map(lambda a: jax.ShapeDtypeStruct(a.shape, a.dtype), state), fresh)
    ckpt.close()
    assert _take(fresh, 6) == expected


def test_two_processes_cover_each_global_batch_exactly(data_dir):
    one = tfds_input.make_train_iterator(_config(data_dir), 0, 1)
    p0 = tfds_input.make_train_iterator(_config(data_dir), 0, 2)
    p1 = tfds_input.make_train_iterator(_config(data_dir), 1, 2)
    seen = []
    for _ in range(5):  # one epoch
        g, a, b = _ids(next(one)), _ids(next(p0)), _ids(next(p1))
        assert len(a) == len(b) == 4
        assert a + b == g  # same rows, same order as the single-process global batch
        seen += a + b
    assert sorted(seen) == list(range(N))  # each example exactly once per epoch


def test_multimodal_fraction_masks_a_fixed_seeded_subset(data_dir):
    it = tfds_input.make_train_iterator(_config(data_dir, fraction=0.25))
    kept = {}
    for _ in range(10):  # two epochs
        b = next(it)
        for i, h in zip(_ids(b), b["has_text"]):
            assert kept.setdefault(i, bool(h)) == bool(h)  # same decision every epoch
        assert np.all(b["text"][~b["has_text"]] == 0)
    assert sum(kept.values()) == 10  # round(0.25 * 40)
    # The subset is keyed by record index (TFDS shuffles examples when writing them).
    mask = tfds_input.multimodal_keep_mask(N, 0.25, 0)
    source, _ = prepare.open_source("tiny_segments", "train", data_dir)
    record_of = {int(source[r]["imu"][0, 0]): r for r in range(N)}
    assert all(kept[i] == mask[record_of[i]] for i in range(N))


def test_device_resident_batches(data_dir):
    c = _config(data_dir)
    mesh = sharding.make_mesh(c)
    arrays = tfds_input.load_train_arrays(c)
    res = resident.ResidentData(arrays, 8, seed=0, mesh=mesh)
    get = jax.jit(res.batch)
    epoch = [_ids(jax.device_get(get(res.arrays, s))) for s in range(5)]
    assert _flat(epoch) == list(range(N))
    again = [_ids(jax.device_get(get(res.arrays, s))) for s in range(5)]
    assert epoch == again  # a pure function of the step
    nxt = [_ids(jax.device_get(get(res.arrays, s))) for s in range(5, 10)]
    assert nxt != epoch and _flat(nxt) == list(range(N))
    b = get(res.arrays, 0)
    assert b["imu"].sharding.spec == jax.sharding.PartitionSpec("data")


def test_host_and_resident_modes_visit_the_same_batches(data_dir):
    # 40 examples, batch 16: two batches per epoch, the last 8 of each epoch dropped, and the
    # host (grain) and device-resident pipelines draw the same rows at every step.
    c = _config(data_dir, batch=16)
    host = _take(tfds_input.make_train_iterator(c), 6)
    mesh = sharding.make_mesh(c)
    res = resident.ResidentData(tfds_input.load_train_arrays(c), 16, seed=0, mesh=mesh)
    get = jax.jit(res.batch)
    on_device = [_ids(jax.device_get(get(res.arrays, s))) for s in range(6)]
    assert host == on_device
    for e in range(3):
        epoch = host[2 * e] + host[2 * e + 1]
        assert len(set(epoch)) == 32  # no example twice within an epoch


def test_padded_eval_batches_keep_the_remainder():
    out = list(tfds_input.padded_batches(10, 4))
    assert len(out) == 3
    idx, mask = out[-1]
    assert idx.tolist() == [8, 9, 0, 0] and mask.tolist() == [True, True, False, False]
    covered = np.concatenate([i[m] for i, m in out])
    assert covered.tolist() == list(range(10))


def test_embedding_width_mismatch_is_a_config_error(data_dir):
    from primus_jax.config import ConfigError

    c = _config(data_dir)
    c.model.mm_dim = 512
    with pytest.raises(ConfigError, match=r"model\.mm_dim"):
        tfds_input.make_train_iterator(c)


def test_missing_dataset_names_the_fix(tmp_path):
    c = _config(str(tmp_path))
    with pytest.raises(FileNotFoundError, match=r"data\.name='tiny_segments'"):
        tfds_input.make_train_iterator(c)
    assert not os.listdir(tmp_path)


class _Crash(RuntimeError):
    pass


def _train_config(data_dir, resident_mode):
    c = _config(data_dir)
    c.data.device_resident = resident_mode
    c.queue.size = 16
    c.model.hidden = 64
    c.model.ssl_dim = 32
    c.loss.mm_terms = ("text",)
    c.loss.nn_terms = ("text", "imu")
    c.train.num_steps = 7  # 5 steps per epoch: crosses an epoch boundary
    c.train.log_every = 1
    c.train.checkpoint_every = 3
    return c


@pytest.mark.parametrize("resident_mode", [False, True], ids=["grain", "resident"])
def test_training_on_tfds_resumes_exactly(data_dir, tmp_path, resident_mode, programs):
    import json

    from primus_jax import train

    def losses(wd):
        out = {}
        with open(os.path.join(wd, "metrics.jsonl")) as f:
            for line in f:
                r = json.loads(line)
                out[r["step"]] = r["train/loss"]
        return out

    straight = train.train_and_evaluate(
        _train_config(data_dir, resident_mode), str(tmp_path / "a"), programs=programs
    )

    def crash(step, state):
        if step == 5:
            raise _Crash

    wd = str(tmp_path / "b")
    with pytest.raises(_Crash):
        train.train_and_evaluate(
            _train_config(data_dir, resident_mode), wd, step_hook=crash, programs=programs
        )
    resumed = train.train_and_evaluate(
        _train_config(data_dir, resident_mode), wd, programs=programs
    )
    assert losses(tmp_path / "a") == pytest.approx(losses(wd), abs=1e-6)
    for a, b in zip(jax.tree.leaves(straight.params), jax.tree.leaves(resumed.params)):
        np.testing.assert_allclose(np.asarray(a), np.asarray(b), atol=1e-6)


def test_choose_input_mode():
    from primus_jax.config import ConfigError, base_config

    c = base_config()
    assert input_pipeline.choose_input_mode(c)[0] == "host"  # the default
    c.data.input_mode = "auto"
    per = input_pipeline.bytes_per_example(c)
    assert per == 250 * 6 * 4 + 2 * 512 * 4 + 18
    mode, why = input_pipeline.choose_input_mode(c, num_examples=1000, memory_bytes=4 * per * 1000)
    assert mode == "resident" and "fits" in why and "1000 segments" in why
    mode, why = input_pipeline.choose_input_mode(c, num_examples=1000, memory_bytes=4 * per * 999)
    assert mode == "host" and "does not fit" in why
    # The synthetic split's size comes from the config; this machine has memory for 8192.
    assert input_pipeline.choose_input_mode(c)[0] == "resident"
    c.data.device_resident = True
    c.data.input_mode = "host"
    assert input_pipeline.choose_input_mode(c)[0] == "resident"
    c.data.input_mode = "gpu"
    with pytest.raises(ConfigError, match=r"data\.input_mode"):
        input_pipeline.choose_input_mode(c)
