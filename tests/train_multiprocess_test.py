"""2 processes x 4 CPU devices (gloo collectives) equal 1 process x 8 devices: losses,
parameters and, directly, gradients, in both input modes. One pair of worker processes runs
both modes and the gradient probe (their start-up and compiles are most of the cost)."""

import json
import os
import socket
import subprocess
import sys

import numpy as np
import pytest
from support import REPO
from support.multihost import tiny_config

from primus_jax import checkpointing, train

WORKER = os.path.join(REPO, "tests", "support", "multihost_worker.py")


def _free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _metrics(workdir):
    with open(os.path.join(workdir, "metrics.jsonl")) as f:
        return {r["step"]: r for r in map(json.loads, f)}


def _run_workers(multi, modes):
    port = _free_port()
    env = {k: v for k, v in os.environ.items() if k != "XLA_FLAGS"}  # the worker sets its own
    procs = [
        subprocess.Popen(
            [
                sys.executable,
                WORKER,
                str(i),
                "2",
                str(port),
                multi,
                ",".join(modes),
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


MODES = ("host", "resident")


@pytest.mark.slow
def test_two_processes_equal_one_process_in_both_input_modes(tmp_path):
    root = str(tmp_path / "multi")
    _run_workers(root, MODES)
    for mode in MODES:
        _assert_same_run(os.path.join(root, mode), str(tmp_path / mode), mode)
    _assert_same_gradients_as_one_process(root)


def _assert_same_run(multi, single, mode):
    train.train_and_evaluate(tiny_config(mode), single)  # 1 process, 8 devices (conftest)

    m1, m2 = _metrics(single), _metrics(multi)
    assert sorted(m1) == sorted(m2) == [1, 2, 3, 4]
    for step in m1:
        for key in ("train/loss", "train/loss_ss", "train/loss_mm", "train/loss_nn"):
            np.testing.assert_allclose(
                m1[step][key], m2[step][key], atol=1e-5, err_msg=f"{mode}: {key} at step {step}"
            )
        # 32 segments, queue 32: epoch 2 (steps 3, 4) finds each row's own entry in the
        # queue; it is excluded on every process as on one.
        for m in (m1, m2):
            assert m[step]["train/nn_self_frac"] == 0.0
            assert step == 1 or m[step]["train/nn_valid_frac"] == 1.0
    p1, _, s1 = checkpointing.load_checkpoint_params(single)
    p2, _, s2 = checkpointing.load_checkpoint_params(multi)
    assert s1 == s2 == 4
    import jax

    for a, b in zip(jax.tree.leaves(p1), jax.tree.leaves(p2), strict=True):
        np.testing.assert_allclose(a, b, atol=1e-5, err_msg=f"{mode}: parameters after 4 steps")


def _assert_same_gradients_as_one_process(multi):
    """The gradients themselves (Adam would hide a wrong gradient scale)."""
    from support.multihost import (
        assert_same_gradients,
        gradient_inputs,
        gradients_on_mesh,
        tiny_config,
    )

    from primus_jax import sharding

    with np.load(os.path.join(multi, "grads.npz")) as f:
        g2 = dict(f.items())
    with open(os.path.join(multi, "grads_loss.json")) as f:
        loss2 = json.load(f)
    c = tiny_config()
    state, rows = gradient_inputs(c)
    loss8, terms8, g8 = gradients_on_mesh(c, sharding.make_mesh(c), state, rows)
    np.testing.assert_allclose(loss2["loss"], loss8, rtol=1e-6)
    assert terms8["nn"] > 0 and loss2["terms"]["nn"] == pytest.approx(terms8["nn"], rel=1e-6)
    assert_same_gradients(g2, g8, rtol=1e-6)
