"""The few-shot benchmark CLI runs at a tiny size and ends with one JSON line of timings."""

import json
import subprocess
import sys

from support import REPO


def test_fewshot_benchmark_cli(tmp_path):
    out = tmp_path / "timings.json"
    r = subprocess.run(
        [
            sys.executable,
            "-m",
            "primus_jax.benchmarks.fewshot",
            "--n_train=120",
            "--n_test=80",
            "--dim=8",
            "--classes=3",
            "--shots=1,4",
            "--trials=2",
            "--methods=logreg,ridge,zeroshot",
            f"--json={out}",
        ],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert r.returncode == 0, r.stderr[-3000:]
    summary = json.loads(r.stdout.strip().splitlines()[-1])
    assert set(summary["timing_s"]) == {"logreg", "ridge", "zeroshot"}
    assert set(summary["timing_s"]["logreg"]) == {"1", "4"} and summary["total_s"] > 0
    assert json.loads(out.read_text()) == summary
