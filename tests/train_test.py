"""The training loop: global negatives on 1 vs 8 devices, kill-and-resume, preemption,
the smoke config end to end, and config errors raised before compilation."""

import json
import os
import signal
import subprocess
import sys

import jax
import numpy as np
import pytest
from support import REPO, xla_flags

from primus_jax import checkpointing, train
from primus_jax.config import ConfigError, base_config
from primus_jax.models import build


def tiny_config(num_steps=3):
    c = base_config()
    c.seed = 3
    c.data.batch_size = 16
    c.data.synthetic.num_examples = 64  # 4 batches per epoch: crosses an epoch in 6 steps
    c.queue.size = 32
    c.model.hidden = 128
    c.model.ssl_dim = c.model.mm_dim = 64
    c.optim.lr = 1e-3
    c.train.num_steps = num_steps
    c.train.log_every = 1
    c.train.checkpoint_every = 3
    return c


def _metrics(workdir):
    """Last logged record per step (a resumed run re-logs the steps after its checkpoint)."""
    out = {}
    with open(os.path.join(workdir, "metrics.jsonl")) as f:
        for line in f:
            r = json.loads(line)
            out[r["step"]] = r
    return out


LOSS_KEYS = ("train/loss", "train/loss_ss", "train/loss_mm", "train/loss_nn")


def _assert_same_run(state_a, state_b, wd_a, wd_b, atol):
    for pa, pb in zip(
        jax.tree.leaves(state_a.params), jax.tree.leaves(state_b.params), strict=True
    ):
        np.testing.assert_allclose(np.asarray(pa), np.asarray(pb), atol=atol, rtol=0)
    for qa, qb in zip(jax.tree.leaves(state_a.queue), jax.tree.leaves(state_b.queue), strict=True):
        np.testing.assert_allclose(np.asarray(qa), np.asarray(qb), atol=atol, rtol=0)
    ma, mb = _metrics(wd_a), _metrics(wd_b)
    assert sorted(ma) == sorted(mb)
    for step in ma:
        for k in LOSS_KEYS:
            np.testing.assert_allclose(
                ma[step][k], mb[step][k], atol=atol, rtol=0, err_msg=f"{k}@{step}"
            )


@pytest.mark.slow
def test_one_device_equals_eight_devices(tmp_path):
    # Every contrastive loss is over the global batch: sharding the batch over 8 devices
    # must not change a single loss or parameter (per-device negatives would).
    assert jax.device_count() == 8
    c1 = tiny_config()
    c1.mesh.data = 1
    s1 = train.train_and_evaluate(c1, str(tmp_path / "one"))
    c8 = tiny_config()
    s8 = train.train_and_evaluate(c8, str(tmp_path / "eight"))
    assert len(s8.params["encoder"]["gru"]["w_hh"].sharding.device_set) == 8
    _assert_same_run(s1, s8, tmp_path / "one", tmp_path / "eight", atol=1e-5)
    # The queue is in use by step 3 and the NN terms are live.
    m = _metrics(tmp_path / "eight")
    assert m[3]["train/nn_valid_frac"] == 1.0 and m[3]["train/loss_nn"] > 0


class Crash(RuntimeError):
    pass


@pytest.mark.slow
def test_kill_and_resume_equals_straight_run(tmp_path, programs, monkeypatch):
    straight = train.train_and_evaluate(
        tiny_config(6), str(tmp_path / "straight"), programs=programs
    )

    def crash_at_5(step, state):
        if step == 5:
            raise Crash("simulated crash after the step-3 checkpoint")

    # A relative workdir, as in the README's command (orbax itself needs absolute paths).
    monkeypatch.chdir(tmp_path)
    wd = "crashed"
    with pytest.raises(Crash):
        train.train_and_evaluate(tiny_config(6), wd, step_hook=crash_at_5, programs=programs)
    assert sorted(int(p) for p in os.listdir(os.path.join(wd, "checkpoints")) if p.isdigit()) == [3]
    resumed = train.train_and_evaluate(tiny_config(6), wd, programs=programs)
    assert int(resumed.step) == 6
    _assert_same_run(straight, resumed, tmp_path / "straight", wd, atol=1e-6)
    params, _, step = checkpointing.load_checkpoint_params(wd)
    assert step == 6
    np.testing.assert_array_equal(params["log_tau_mm"], np.asarray(resumed.params["log_tau_mm"]))


@pytest.mark.slow
def test_sigterm_checkpoints_and_resume_is_exact(tmp_path, programs):
    straight = train.train_and_evaluate(
        tiny_config(4), str(tmp_path / "straight"), programs=programs
    )

    def preempt_at_2(step, state):
        if step == 2:
            os.kill(os.getpid(), signal.SIGTERM)

    wd = str(tmp_path / "preempted")
    stopped = train.train_and_evaluate(
        tiny_config(4), wd, step_hook=preempt_at_2, programs=programs
    )
    assert int(stopped.step) == 2  # stopped cleanly right after the signal
    assert "2" in os.listdir(os.path.join(wd, "checkpoints"))
    resumed = train.train_and_evaluate(tiny_config(4), wd, programs=programs)
    assert int(resumed.step) == 4
    _assert_same_run(straight, resumed, tmp_path / "straight", wd, atol=1e-6)


@pytest.mark.slow
def test_checkpoint_restores_onto_a_different_device_count(tmp_path, programs):
    straight = train.train_and_evaluate(
        tiny_config(4), str(tmp_path / "straight"), programs=programs
    )
    wd = str(tmp_path / "run")
    train.train_and_evaluate(
        tiny_config(3), wd, programs=programs
    )  # 8 devices, checkpoint at step 3
    c = tiny_config(4)
    c.mesh.data = 2
    s = train.train_and_evaluate(c, wd, programs=programs)  # resumes from step 3 on 2 devices
    assert int(s.step) == 4
    assert len(s.params["encoder"]["gru"]["w_hh"].sharding.device_set) == 2
    _assert_same_run(straight, s, tmp_path / "straight", wd, atol=1e-5)


@pytest.mark.parametrize(
    "override,key",
    [
        ({"data.batch_size": 12}, "data.batch_size"),  # 12 not divisible by 8 devices
        ({"queue.size": 40}, "queue.size"),  # 40 not a multiple of 16
        ({"augment.ops": ("scaling", "warp")}, "augment.ops"),
        ({"loss.nn_terms": ("text", "audio")}, "loss.nn_terms"),
        ({"queue.lookup": "nearest"}, "queue.lookup"),
        ({"model.gru_over": "diagonal"}, "model.gru_over"),
        ({"model.compute_dtype": "float16"}, "model.compute_dtype"),
        ({"optim.schedule": "cosine"}, "optim.schedule"),
        ({"loss.alpha": 0.0, "loss.beta": 0.0, "loss.gamma": 0.0}, "loss"),
        ({"mesh.data": 3}, "mesh.data"),
    ],
)
def test_bad_configs_name_the_key(tmp_path, override, key):
    c = tiny_config()
    for k, v in override.items():
        section, name = k.split(".")
        c[section][name] = v
    with pytest.raises(ConfigError) as e:
        train.train_and_evaluate(c, str(tmp_path))
    assert e.value.key == key
    assert f"config.{key}" in str(e.value)
    assert not os.path.exists(tmp_path / "checkpoints")  # failed before any work


def _run_main(args, **kw):
    env = dict(os.environ, XLA_FLAGS=xla_flags(), JAX_PLATFORMS="cpu")
    return subprocess.run(
        [sys.executable, "-m", "primus_jax.main", *args],
        cwd=REPO,
        env=env,
        capture_output=True,
        text=True,
        timeout=600,
        **kw,
    )


@pytest.mark.slow
def test_smoke_config_end_to_end(tmp_path):
    wd = tmp_path / "smoke"
    r = _run_main(["--config=configs/smoke.py", f"--workdir={wd}"])
    assert r.returncode == 0, r.stderr[-3000:]
    m = _metrics(wd)
    steps = sorted(m)
    first, last = m[steps[0]]["train/loss"], m[steps[-1]]["train/loss"]
    assert last < 0.8 * first, (first, last)
    assert m[steps[-1]]["train/queue_fill"] == 1.0
    assert os.path.isdir(wd / "checkpoints" / str(steps[-1]))
    assert any(f.startswith("events.out.tfevents") for f in os.listdir(wd / "tensorboard"))
    assert "ETA" in r.stderr and "samples/s" in r.stderr


def test_cli_reports_config_errors(tmp_path):
    r = _run_main(["--config=configs/smoke.py", f"--workdir={tmp_path}", "--config.queue.size=40"])
    assert r.returncode != 0
    assert "config.queue.size" in r.stderr
    r = _run_main(["--config=configs/smoke.py", f"--workdir={tmp_path}", "--config.qeue.size=4"])
    assert r.returncode != 0 and "qeue" in r.stderr


def test_no_collectives_inside_the_gru_loops():
    # The GRU runs per device (shard_map): its backward scan accumulates local weight
    # gradients and the data-parallel all-reduce happens once after the loop, not 32 times.
    import functools
    import re

    from primus_jax import input_pipeline, optim, sharding
    from primus_jax import state as state_lib
    from primus_jax.objectives import primus

    c = tiny_config()
    mesh = sharding.make_mesh(c)
    model, tx = build.encoder_from_config(c.model), optim.make_optimizer(c)
    create = functools.partial(state_lib.create_train_state, c, model, tx, primus)
    sh = sharding.state_shardings(jax.eval_shape(create), mesh)
    st = jax.jit(create, out_shardings=sh)()
    step = sharding.jit_train_step(
        primus.make_train_step(c, model, tx, optim.make_schedule(c)), sh, mesh
    )
    batch = sharding.global_batch(next(input_pipeline.make_train_iterator(c)), mesh)
    hlo = step.lower(st, batch).compile().as_text()
    bodies = set(re.findall(r"body=%?([\w.\-]+)", hlo))
    assert bodies, "expected while loops (the GRU scans)"
    for comp in re.split(r"\n(?=\S.*\{)", hlo):
        name = comp.split(" ", 1)[0].lstrip("%")
        if name in bodies:
            assert not re.search(r"all-reduce|all-gather|reduce-scatter", comp), name
    assert "all-reduce" in hlo  # the gradients are still reduced, once
