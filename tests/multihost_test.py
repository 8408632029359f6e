"""2 processes x 4 CPU devices (gloo collectives) equal 1 process x 8 devices."""

import json
import os
import socket
import subprocess
import sys

import numpy as np
import pytest
from multihost_config import tiny_config

from primus_jax import checkpointing, train

HERE = os.path.dirname(os.path.abspath(__file__))
REPO = os.path.dirname(HERE)


def _free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _metrics(workdir):
    with open(os.path.join(workdir, "metrics.jsonl")) as f:
        return {r["step"]: r for r in map(json.loads, f)}


@pytest.mark.slow
@pytest.mark.parametrize("mode", ["host", "resident"])
def test_two_processes_equal_one_process(tmp_path, mode):
    multi = str(tmp_path / "multi")
    port = _free_port()
    env = {k: v for k, v in os.environ.items() if k != "XLA_FLAGS"}
    procs = [
        subprocess.Popen(
            [
                sys.executable,
                os.path.join(HERE, "multihost_worker.py"),
                str(i),
                "2",
                str(port),
                multi,
                mode,
            ],
            cwd=REPO,
            env=env,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
        )
        for i in range(2)
    ]
    outs = []
    for p in procs:
        try:
            outs.append(p.communicate(timeout=600)[0])
        except subprocess.TimeoutExpired:
            for q in procs:
                q.kill()
            raise
    for p, out in zip(procs, outs):
        assert p.returncode == 0, out[-3000:]

    single = str(tmp_path / "single")
    train.train_and_evaluate(tiny_config(mode), single)  # 1 process, 8 devices (conftest)

    m1, m2 = _metrics(single), _metrics(multi)
    assert sorted(m1) == sorted(m2) == [1, 2, 3, 4]
    for step in m1:
        for key in ("train/loss", "train/loss_ss", "train/loss_mm", "train/loss_nn"):
            np.testing.assert_allclose(m1[step][key], m2[step][key], atol=1e-5, err_msg=key)
    p1, _, s1 = checkpointing.load_checkpoint_params(single)
    p2, _, s2 = checkpointing.load_checkpoint_params(multi)
    assert s1 == s2 == 4
    import jax

    for a, b in zip(jax.tree.leaves(p1), jax.tree.leaves(p2), strict=True):
        np.testing.assert_allclose(a, b, atol=1e-5)
