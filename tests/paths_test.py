"""The path layer on a real GCS-API server (tests/support/gcs.py): metrics and TensorBoard
events on gs://, a training run SIGKILLed and resumed from a gs:// workdir (equal to an
uninterrupted run), and a few-shot evaluation reading its checkpoint from and writing its
report to the bucket."""

import json
import os
import signal
import struct
import subprocess
import sys
import time

import jax
import numpy as np
import pytest
from support import REPO, gcs, xla_flags

from primus_jax import checkpointing, metric_writer, paths, train

TINY = """
from primus_jax.config import base_config


def get_config():
    c = base_config()
    c.seed = 3
    c.data.batch_size = 16
    c.data.synthetic.num_examples = 64
    c.queue.size = 32
    c.model.hidden = 128
    c.model.ssl_dim = c.model.mm_dim = 64
    c.optim.lr = 1e-3
    c.mesh.data = 1
    c.train.num_steps = 12
    c.train.log_every = 1
    c.train.checkpoint_every = 4
    c.train.keep_checkpoints = 2
    return c
"""


@pytest.fixture(scope="module")
def bucket():
    """``gs://<bucket>`` on a fresh emulator; this process's clients point at it."""
    with gcs.emulator() as url:
        env = gcs.client_env(url)
        saved = {k: os.environ.get(k) for k in env}
        os.environ.update(env)
        try:
            yield f"gs://{gcs.BUCKET}", env
        finally:
            for k, v in saved.items():
                if v is None:
                    os.environ.pop(k, None)
                else:
                    os.environ[k] = v


def test_path_layer_basics(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    assert str(paths.path("run")) == str(tmp_path / "run")
    assert str(paths.path("gs://b/x")) == "gs://b/x"
    with pytest.raises(ValueError, match="ftp://h/x"):
        paths.path("ftp://h/x")
    paths.append_text("run/a.txt", "1\n")
    paths.append_text("run/a.txt", "2\n")
    assert (tmp_path / "run" / "a.txt").read_text() == "1\n2\n"


def test_metrics_and_events_on_gs(bucket):
    root, _ = bucket
    wd = f"{root}/writer"
    w = metric_writer.MetricWriter(wd)
    for step in (1, 2, 3):
        w.write_scalars(step, {"train/loss": 10.0 - step})
        w.flush()
    w.close()
    lines = paths.path(f"{wd}/metrics.jsonl").read_text().splitlines()
    assert [json.loads(x)["step"] for x in lines] == [1, 2, 3]  # appended, not overwritten
    events = list(paths.path(f"{wd}/tensorboard").iterdir())
    assert len(events) == 1 and events[0].name.startswith("events.out.tfevents")
    data = events[0].read_bytes()
    records, i = [], 0
    while i < len(data):  # TFRecord framing: u64 length, u32 crc, payload, u32 crc
        (n,) = struct.unpack("<Q", data[i : i + 8])
        records.append(data[i + 12 : i + 12 + n])
        i += 12 + n + 4
    assert i == len(data) and sum(b"train/loss" in r for r in records) == 3
    # A resume from step 2 drops what the crashed run logged after it.
    metric_writer.MetricWriter(wd, resume_step=2).close()
    lines = paths.path(f"{wd}/metrics.jsonl").read_text().splitlines()
    assert [json.loads(x)["step"] for x in lines] == [1, 2]


def _metrics(wd):
    out = {}
    for line in paths.path(f"{wd}/metrics.jsonl").read_text().splitlines():
        r = json.loads(line)
        out[r["step"]] = r
    return out


@pytest.fixture(scope="module")
def resumed_gs_run(bucket, tmp_path_factory):
    """A run SIGKILLed after its first checkpoint on gs:// and restarted to the end."""
    root, env = bucket
    cfg = tmp_path_factory.mktemp("cfg") / "tiny.py"
    cfg.write_text(TINY)
    wd = f"{root}/run"
    cmd = [sys.executable, "-m", "primus_jax.main", f"--config={cfg}", f"--workdir={wd}"]
    sub_env = dict(os.environ, **env, XLA_FLAGS=xla_flags(), JAX_PLATFORMS="cpu")
    proc = subprocess.Popen(cmd, cwd=REPO, env=sub_env, stderr=subprocess.PIPE, text=True)
    ckpts = paths.path(f"{wd}/checkpoints")
    deadline = time.monotonic() + 120
    killed_after = None
    while proc.poll() is None and time.monotonic() < deadline:
        try:
            steps = [c for c in (ckpts.iterdir() if ckpts.exists() else []) if c.name.isdigit()]
            done = [int(c.name) for c in steps if (c / "commit_success.txt").exists()]
        except FileNotFoundError:  # a folder renamed or removed by the saver while we listed
            done = []
        if done:
            killed_after = sorted(done)
            proc.send_signal(signal.SIGKILL)
            break
        time.sleep(0.05)
    _, err = proc.communicate(timeout=60)
    assert proc.returncode == -signal.SIGKILL, err[-3000:]
    assert not paths.path(f"{wd}/run_summary.json").exists()  # it really died mid-run
    r = subprocess.run(cmd, cwd=REPO, env=sub_env, capture_output=True, text=True, timeout=300)
    assert r.returncode == 0, r.stderr[-3000:]
    assert "checkpoint: restored step" in r.stderr
    return wd, killed_after


@pytest.mark.slow
def test_kill_and_resume_from_gs_workdir(resumed_gs_run, tmp_path, programs):
    wd, killed_after = resumed_gs_run
    assert killed_after and max(killed_after) < 12
    ns = {}
    exec(TINY, ns)
    straight = train.train_and_evaluate(ns["get_config"](), str(tmp_path / "s"), programs=programs)
    params, run_config, step = checkpointing.load_checkpoint_params(wd)
    assert step == 12 and run_config["seed"] == 3
    # The subprocesses run on 1 host device, this process on 8 (conftest's XLA_FLAGS): XLA's
    # CPU kernels then round differently (~1e-5 after 12 steps); a resume from the wrong
    # position or state is off by orders of magnitude more. train_test checks exactness.
    for a, b in zip(jax.tree.leaves(straight.params), jax.tree.leaves(params), strict=True):
        np.testing.assert_allclose(np.asarray(a), np.asarray(b), atol=1e-4, rtol=0)
    m_gs, m_local = _metrics(wd), _metrics(tmp_path / "s")
    assert sorted(m_gs) == sorted(m_local) == list(range(1, 13))
    for s in m_gs:
        np.testing.assert_allclose(m_gs[s]["train/loss"], m_local[s]["train/loss"], atol=1e-3)
    summary = json.loads(paths.path(f"{wd}/run_summary.json").read_text())
    assert summary["final_step"] == 12
    assert json.loads(paths.path(f"{wd}/config.json").read_text())["seed"] == 3
    assert any(paths.path(f"{wd}/tensorboard").iterdir())


def test_fewshot_reads_and_writes_gs(resumed_gs_run, tmp_path):
    from primus_jax.data.synthetic import SyntheticPairedSource
    from primus_jax.evaluation import report, run, settings

    wd, _ = resumed_gs_run
    src = SyntheticPairedSource(96, 16, seed=0, num_classes=3)
    npz = tmp_path / "user.npz"
    np.savez(npz, X=src.imu, y=src.label % 3, subject=np.arange(96) % 8)
    c = settings.settings()
    c.checkpoint, c.data = wd, f"npz:{npz}"
    c.shots, c.trials, c.methods = (1, 2), 1, ("logreg",)
    c.zeroshot = c.retrieval = False
    out = f"{wd}/eval"
    rep = run.evaluate(c, out)
    back = report.load_report(f"{out}/fewshot.json")
    assert back["datasets"].keys() == rep["datasets"].keys()
    assert "step 12" in back["runs"][next(iter(back["runs"]))]["notes"]["encoder"]
    assert paths.path(f"{out}/fewshot.md").read_text().startswith("#")


def test_tfds_data_dir_on_gs_is_mirrored_once(bucket, tmp_path, monkeypatch):
    """A dataset built locally and copied to the bucket is read through a local mirror
    (array_record opens local files only); equal to the local build; one copy, re-made when
    the bucket's files change; a dataset missing there is a ConfigError naming the key."""
    import fsspec

    from primus_jax.config import ConfigError, base_config
    from primus_jax.data import prepare, tfds_input
    from primus_jax.evaluation import labelled
    from tfds_builders import testing_utils
    from tfds_builders.uci_hapt import uci_hapt_dataset_builder as hapt

    url, _ = bucket
    local = tmp_path / "tfds"
    builder = testing_utils.build(
        hapt.Builder, local, os.path.join(REPO, "tfds_builders/uci_hapt/dummy_data")
    )
    fs = fsspec.filesystem("gcs")
    fs.put(os.fspath(local / "uci_hapt"), f"{url[5:]}/tfds/uci_hapt", recursive=True)
    monkeypatch.setenv("PRIMUS_DATA_CACHE", os.fspath(tmp_path / "cache"))

    c = base_config()
    c.data.source, c.data.name, c.data.data_dir = "tfds", "uci_hapt/raw", f"{url}/tfds"
    c.data.prepare = False
    source, _ = tfds_input.open_train_source(c)
    want = testing_utils.read_split(builder, "train")
    got = source.__getitems__(list(range(len(source))))
    assert len(got) == len(want) > 0
    np.testing.assert_array_equal(got[0]["imu"], want[0]["imu"])
    mirror = tmp_path / "cache" / "gs" / gcs.BUCKET / "tfds" / "uci_hapt" / "raw"
    record = mirror / ".primus_mirror.json"
    first = record.stat().st_mtime_ns
    data = labelled.load_labelled("uci_hapt/raw", data_dir=f"{url}/tfds", prepare=False)
    assert len(data.test.y) > 0 and record.stat().st_mtime_ns == first  # not copied again

    fs.pipe(f"{url[5:]}/tfds/uci_hapt/raw/extra.txt", b"new")  # the bucket changed
    prepare.local_data_dir(f"{url}/tfds", "data.data_dir", "uci_hapt/raw")
    assert (mirror / "extra.txt").read_bytes() == b"new"

    c.data.name = "ego4d/raw"
    with pytest.raises(ConfigError, match=r"config\.data\.data_dir.*no built dataset"):
        tfds_input.open_train_source(c)
