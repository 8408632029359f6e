"""What the NN supervision does: a row never finds its own segment (every input mode, across
epochs, queue >= dataset), recording exclusion, the NN statistics on constructed cases, and
the start-up warnings for degenerate configurations."""

import json
import os

import jax.numpy as jnp
import numpy as np
import pytest

from primus_jax import input_pipeline, train
from primus_jax.config import base_config
from primus_jax.data import prepare
from primus_jax.objectives.primus import nn_statistics, nn_supervision_warnings
from tfds_builders import testing_utils


def _series(workdir, key):
    out = {}
    with open(os.path.join(workdir, "metrics.jsonl")) as f:
        for line in f:
            r = json.loads(line)
            out[r["step"]] = r[f"train/{key}"]
    return [out[s] for s in sorted(out)]


def _small(c, steps):
    c.model.hidden = 64
    c.model.ssl_dim = 32
    c.optim.lr = 1e-3
    c.train.num_steps = steps
    c.train.log_every = 1
    c.train.checkpoint_every = steps
    return c


def _synthetic(exclude, resident=False):
    c = base_config()
    c.seed = 4
    c.data.batch_size = 16
    c.data.synthetic.num_examples = 64  # = the queue: the reference self-matches from epoch 2
    c.data.synthetic.windows_per_recording = 4
    c.data.device_resident = resident
    c.model.mm_dim = 32
    c.queue.size = 64
    c.queue.exclude = exclude
    return _small(c, 12)  # 3 epochs of 4 steps


@pytest.mark.slow
def test_synthetic_host_self_recording_and_reference_exclusion(tmp_path):
    runs = {}
    for exclude in ("none", "self", "recording"):
        train.train_and_evaluate(_synthetic(exclude), str(tmp_path / exclude))
        runs[exclude] = {
            k: np.asarray(_series(tmp_path / exclude, k))
            for k in ("nn_self_frac", "nn_same_recording_frac", "nn_valid_frac")
        }
    # The reference: a row whose own entry is still in the queue matches it. At the first
    # step of epochs 2 and 3 the queue holds exactly the previous epoch: every row does.
    none = runs["none"]["nn_self_frac"]
    assert none[4] == none[8] == 1.0 and none[4:].mean() > 0.5
    # Fixed: never the row's own segment, in any epoch ...
    assert np.all(runs["self"]["nn_self_frac"] == 0.0)
    assert np.all(runs["self"]["nn_valid_frac"][1:] == 1.0)
    # ... but windows of its recording (they share a latent here) are the next best match.
    assert runs["self"]["nn_same_recording_frac"][4:].mean() > 0.5
    assert np.all(runs["recording"]["nn_self_frac"] == 0.0)
    assert np.all(runs["recording"]["nn_same_recording_frac"] == 0.0)


@pytest.mark.slow
def test_synthetic_resident_never_matches_itself(tmp_path):
    train.train_and_evaluate(_synthetic("self", resident=True), str(tmp_path / "r"))
    assert np.all(np.asarray(_series(tmp_path / "r", "nn_self_frac")) == 0.0)
    assert np.all(np.asarray(_series(tmp_path / "r", "nn_valid_frac"))[1:] == 1.0)


@pytest.fixture(scope="module")
def tiny_tfds(tmp_path_factory):
    d = tmp_path_factory.mktemp("tfds")
    testing_utils.TinySegments(data_dir=str(d)).download_and_prepare(file_format="array_record")
    return str(d)


def _tfds(data_dir, exclude, resident=False):
    c = base_config()
    c.data.source = "tfds"
    c.data.name = "tiny_segments"
    c.data.data_dir = data_dir
    c.data.prepare = False
    c.data.batch_size = 8
    c.data.device_resident = resident
    c.model.mm_dim = testing_utils.TinySegments.DIM
    c.loss.mm_terms = ("text",)
    c.loss.nn_terms = ("text", "imu")
    c.queue.size = 40  # = the 40 segments; text lookup (no video)
    c.queue.exclude = exclude
    return _small(c, 12)  # 5 steps per epoch


@pytest.mark.slow
@pytest.mark.parametrize(
    "exclude,resident", [("self", False), ("self", True), ("none", False)], ids=str
)
def test_tfds_never_matches_itself(tiny_tfds, tmp_path, monkeypatch, exclude, resident):
    monkeypatch.setattr(prepare, "import_builder_module", lambda name: None)
    wd = str(tmp_path / "wd")
    train.train_and_evaluate(_tfds(tiny_tfds, exclude, resident), wd)
    self_frac = np.asarray(_series(wd, "nn_self_frac"))
    if exclude == "self":
        assert np.all(self_frac == 0.0)
    else:  # own entry ties with the 4 other windows of the same text: chosen ~1 in 5
        assert self_frac[5:].mean() > 0.05
    # TinySegments repeats 8 texts: once every text is in the queue (after epoch 1), every
    # text neighbour is a duplicate positive.
    assert np.all(np.asarray(_series(wd, "nn_text_dup_frac"))[5:] == 1.0)


def test_tfds_summary_sees_templated_text(tiny_tfds, monkeypatch):
    monkeypatch.setattr(prepare, "import_builder_module", lambda name: None)
    s = input_pipeline.train_data_summary(_tfds(tiny_tfds, "self"))
    assert s == {"num_examples": 40, "video_frac": 0.0, "text_duplicate_frac": 1.0}


def test_synthetic_summary_has_distinct_texts():
    s = input_pipeline.train_data_summary(_synthetic("self"))
    assert s["num_examples"] == 64 and s["video_frac"] == 1.0 and s["text_duplicate_frac"] == 0


# -- statistics on constructed cases ---------------------------------------------------------


def _unit(v):
    v = np.asarray(v, np.float32)
    return v / np.linalg.norm(v, axis=-1, keepdims=True)


def test_nn_statistics_on_a_constructed_case():
    # 5 rows; row 4 has no neighbour. Row 0's neighbour is its own segment, row 1's another
    # window of its recording; rows 0 and 2 get back their own text (duplicate positives),
    # row 3 its own video; rows 1 and 2 share slot 7.
    e = np.eye(4, dtype=np.float32)
    batch = {
        "text": jnp.asarray(_unit([e[0], e[1], e[2] * 3, e[3], e[0]])),
        "video": jnp.asarray(_unit([e[1], e[2], e[3], e[0] * 2, e[1]])),
        "has_text": jnp.asarray([True, True, True, True, True]),
        "has_video": jnp.asarray([True, True, True, True, False]),
        "segment_id": jnp.asarray([[1, 0], [1, 1], [1, 2], [1, 3], [1, 4]], jnp.uint32),
        "recording_id": jnp.asarray([[2, 0], [2, 1], [2, 2], [2, 3], [2, 4]], jnp.uint32),
    }
    nb = {
        "text": jnp.asarray(_unit([e[0], e[2], e[2], e[1], e[3]])),
        "video": jnp.asarray(_unit([e[3], e[1], e[0], e[0], e[1]])),
        "has_text": jnp.asarray([True, True, True, True, False]),
        "has_video": jnp.asarray([True, True, True, True, False]),
        "segment_id": jnp.asarray([[1, 0], [1, 9], [1, 8], [1, 7], [0, 0]], jnp.uint32),
        "recording_id": jnp.asarray([[2, 0], [2, 1], [2, 5], [2, 6], [0, 0]], jnp.uint32),
    }
    nn = {
        "valid": jnp.asarray([True, True, True, True, False]),
        "index": jnp.asarray([3, 7, 7, 2, 0]),
        "domain": jnp.asarray([0, 0, 1, 0, -1]),
        "similarity": jnp.asarray([0.5, 0.25, 1.0, 0.75, 0.0]),
    }
    m = {k: float(v) for k, v in nn_statistics(nn, nb, batch, queue_size=8).items()}
    assert m["nn_valid_frac"] == pytest.approx(4 / 5)
    assert m["nn_similarity"] == pytest.approx((0.5 + 0.25 + 1.0 + 0.75) / 4)
    assert m["nn_unique_frac"] == pytest.approx(3 / 4)  # slots 3, 7, 2
    assert m["nn_self_frac"] == pytest.approx(1 / 4)
    assert m["nn_same_recording_frac"] == pytest.approx(2 / 4)  # rows 0 and 1
    assert m["nn_text_dup_frac"] == pytest.approx(2 / 4)  # rows 0 and 2
    assert m["nn_video_dup_frac"] == pytest.approx(1 / 4)  # row 3
    assert m["nn_domain_video"] == pytest.approx(3 / 5)
    assert m["nn_domain_text"] == pytest.approx(1 / 5)
    assert m["nn_domain_imu"] == 0.0


# -- start-up warnings -----------------------------------------------------------------------


def _warnings(**kw):
    c = base_config()
    summary = {"num_examples": 2911, "video_frac": 0.0, "text_duplicate_frac": 1.0}
    for k, v in kw.items():
        if k in summary:
            summary[k] = v
        else:
            section, key = k.split("__")
            c[section][key] = v
    return nn_supervision_warnings(c, summary)


def test_warns_when_the_queue_holds_the_dataset_and_nothing_is_excluded():
    w = _warnings(queue__exclude="none", text_duplicate_frac=0.0, queue__size=4096)
    assert len(w) == 1 and "own stale entry" in w[0] and "queue.exclude=self" in w[0]
    assert not _warnings(queue__exclude="self", text_duplicate_frac=0.0, queue__size=4096)
    assert not _warnings(queue__exclude="none", text_duplicate_frac=0.0, queue__size=1024)


def test_warns_on_text_lookup_over_templated_text():
    w = _warnings(queue__size=1024)  # auto lookup, no video: text
    assert len(w) == 1 and "nn_text repeats mm_text" in w[0]
    w = _warnings(queue__size=1024, loss__nn_terms=("imu",))
    assert len(w) == 1 and "same sentence" in w[0] and "nn_text" not in w[0]
    assert not _warnings(queue__size=1024, queue__lookup="imu")  # IMU lookup: no duplicate
    assert not _warnings(queue__size=1024, text_duplicate_frac=0.1)  # real narrations
    assert not _warnings(queue__size=1024, video_frac=1.0)  # video lookup
    assert not _warnings(queue__size=1024, loss__gamma=0.0)  # no NN terms at all
