"""The accelerator check runs end to end on CPU at tiny sizes, with only the packages it is
allowed (grain, TFDS, clu, TensorFlow, TensorBoard and torch blocked), and writes its reports;
the largest-batch search stops at the first out-of-memory batch."""

import json
import os
import subprocess
import sys

import pytest
from support import REPO, xla_flags

from primus_jax.tools import accelerator_check

BLOCKED = (
    "grain",
    "tensorflow_datasets",
    "tensorflow",
    "clu",
    "tensorboardX",
    "tensorboard",
    "torch",
    "pandas",
    "sklearn",
)
# Runs the module with the blocked packages made unimportable (ImportError on import).
RUNNER = f"""
import runpy, sys
class Block:
    def find_spec(self, name, path=None, target=None):
        if name.split(".")[0] in {BLOCKED!r}:
            raise ImportError("blocked by the test: " + name)
sys.meta_path.insert(0, Block())
sys.argv[0] = "accelerator_check"
runpy.run_module("primus_jax.tools.accelerator_check", run_name="__main__")
"""
TINY = ["hidden=16", "ssl_dim=16", "mm_dim=16", "conv_channels=8"]


@pytest.mark.slow
def test_accelerator_check_end_to_end_on_cpu(tmp_path):
    args = [f"--out_dir={tmp_path}", "--bench_config=configs/smoke.py"]
    args += [f"--config.model.{t}" for t in TINY] + [f"--bench_config.model.{t}" for t in TINY]
    args += ["--batches=16", "--dtypes=float32", "--bench_steps=1", "--bench_warmup=0"]
    args += ["--max_batch=16", "--export_batches=1", "--train_steps=12"]
    env = dict(os.environ, JAX_PLATFORMS="cpu")
    env["XLA_FLAGS"] = xla_flags()  # compile-time flags only: the test checks function
    r = subprocess.run(
        [sys.executable, "-c", RUNNER, *args],
        cwd=REPO,
        env=env,
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert r.returncode == 0, r.stdout[-2000:] + r.stderr[-4000:]
    report = json.loads((tmp_path / "report.json").read_text())
    assert report["ok"] and not report["failed"]
    assert report["device"]["platform"] == "cpu" and report["device"]["jax"]
    rows = {(b["mode"], b["data"]): b for b in report["benchmarks"]}
    assert set(rows) == {("train", "device"), ("forward", "device"), ("train", "resident")}
    assert all(b["samples_per_s"] > 0 and b["cpu_model"] for b in rows.values())
    assert report["torch"]["skipped"]
    tr = report["training"]
    assert len(tr["losses"]) == 12 and tr["loss_falls"] and tr["cpu_agrees"]
    assert tr["cpu_losses"] == tr["losses"][:3]  # same program on a CPU host
    assert report["export"]["platform"] == "cpu" and report["export"]["max_abs_diff"] < 1e-4
    assert report["largest_batch"]["largest_fitting"] == 16
    md = (tmp_path / "report.md").read_text()
    assert "Overall: OK" in md and "| train | 16 | float32 | resident |" in md


def test_largest_batch_stops_at_the_first_out_of_memory(tmp_path):
    from primus_jax.config import base_config

    tried = []

    def fake_run(config, *, batch, **kw):
        tried.append((batch, config.queue.size))
        if batch > 4096:
            raise RuntimeError("RESOURCE_EXHAUSTED: Out of memory while trying to allocate")
        return {"samples_per_s": float(batch)}

    r = accelerator_check.largest_batch(base_config(), 1024, 1 << 20, known=1024, run=fake_run)
    assert r["largest_fitting"] == 4096 and not r["hit_cap"]
    assert tried == [(2048, 8192), (4096, 8192), (8192, 8192)]

    # Other errors are not mistaken for "does not fit".
    def bad_run(config, **kw):
        raise ValueError("shapes do not match")

    try:
        accelerator_check.largest_batch(base_config(), 64, 256, run=bad_run)
    except ValueError:
        pass
    else:
        raise AssertionError("a non-memory error was swallowed")
