"""MultitaskSSL baseline: its two new transformations, config checks, and a short real run
(loss falls, easy tasks beat chance, the first step matches an independent recomputation,
the checkpoint loads into evaluation)."""

import itertools
import json
import os

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from support import REPO

from primus_jax import checkpointing, input_pipeline, train
from primus_jax.config import ConfigError, base_config
from primus_jax.models import build
from primus_jax.objectives import multitask_ssl as mt
from primus_jax.objectives import resolve

T = 250


def test_spline_matrix_interpolates_and_reproduces_constants():
    m = mt.spline_matrix(6, T)
    assert m.shape == (T, 6)
    np.testing.assert_allclose(m.sum(axis=1), 1.0, atol=1e-5)  # constant knots -> constant
    m = mt.spline_matrix(6, 251)  # knots at 0, 50, ..., 250: on the integer grid
    np.testing.assert_allclose(m[::50], np.eye(6), atol=1e-5)  # passes through the knots


def test_time_warp_is_a_monotone_endpoint_preserving_resampling():
    key = jax.random.key(0)
    x = jax.random.normal(jax.random.key(1), (4, T, 6))
    # Warp map and warped signals from one compiled function (compiles are the cost here).
    warp = jax.jit(lambda k, v: (mt.time_warp_grid(k, 4, T, 6, 0.2, 4), mt.time_warp(k, v)))
    phi, y = map(np.asarray, warp(key, x))
    assert phi.shape == (4, 6, T)
    np.testing.assert_allclose(phi[..., 0], 0.0, atol=1e-4)
    np.testing.assert_allclose(phi[..., -1], T - 1, atol=1e-3)
    assert (np.diff(phi, axis=-1) > 0).all()
    assert np.abs(phi - np.arange(T)).max() > 1.0  # a real warp, not the identity

    # Independent recomputation: each channel is np.interp(t, phi, x) (Um et al.'s formula).
    xn = np.asarray(x)
    want = np.stack(
        [
            np.stack([np.interp(np.arange(T), phi[b, c], xn[b, :, c]) for c in range(6)], -1)
            for b in range(4)
        ]
    )
    np.testing.assert_allclose(y, want, atol=1e-4)
    np.testing.assert_allclose(y[:, [0, -1]], xn[:, [0, -1]], atol=1e-5)
    # On a ramp the output is the inverse warp: monotone, same endpoints.
    ramp = np.broadcast_to(np.arange(T, dtype=np.float32)[None, :, None], (4, T, 6))
    r = np.asarray(warp(key, ramp)[1])
    assert (np.diff(r, axis=1) >= -1e-4).all()
    assert np.abs(r - ramp).max() > 1.0


def test_channel_shuffle_permutes_axes_jointly_and_never_identity():
    n = 100
    x = np.random.default_rng(0).normal(size=(n, T, 6)).astype(np.float32)
    shuffle = jax.jit(lambda k, v: (mt.channel_shuffle_indices(k, n), mt.channel_shuffle(k, v)))
    order, y = map(np.asarray, shuffle(jax.random.key(3), x))
    seen = set()
    for i in range(n):
        p = tuple(order[i, :3])
        assert sorted(p) == [0, 1, 2] and p != (0, 1, 2)
        np.testing.assert_array_equal(order[i, 3:], np.asarray(p) + 3)  # gyro like acc
        np.testing.assert_array_equal(y[i], x[i][:, order[i]])
        seen.add(p)
    assert seen == set(itertools.permutations(range(3))) - {(0, 1, 2)}
    with pytest.raises(ValueError, match="6 channels"):
        mt.channel_shuffle(jax.random.key(0), x[..., :3])


def test_parse_tasks_and_config_validation():
    assert mt.parse_tasks("all") == mt.TASKS
    assert mt.parse_tasks(" negation, time_warp ") == ("negation", "time_warp")
    c = base_config()
    c.objective = "supervised"
    with pytest.raises(ConfigError, match="objective"):
        resolve(c, num_devices=1)
    c.objective = "multitask_ssl"
    c.loss.alpha = c.loss.beta = c.loss.gamma = 0.0  # no PRIMUS term needed for this objective
    resolve(c, num_devices=1)
    c.multitask.tasks = ("negation", "jitter")
    with pytest.raises(ConfigError, match=r"multitask\.tasks"):
        resolve(c, num_devices=1)
    c.multitask.tasks = ("all",)
    c.multitask.feature = "logits"
    with pytest.raises(ConfigError, match=r"multitask\.feature"):
        resolve(c, num_devices=1)


def test_default_tasks_are_saeeds_eight_shape_preserving_transforms():
    c = base_config()
    c.objective = "multitask_ssl"
    fns = mt.make_transforms(c)
    assert len(fns) == 8 and mt.parse_tasks(c.multitask.tasks) == mt.TASKS
    x = jax.ShapeDtypeStruct((16, T, 6), jnp.float32)
    for task, fn in zip(mt.TASKS, fns, strict=True):
        out = jax.eval_shape(fn, jax.random.key(0), x)  # traceable, (B, T, C) -> (B, T, C)
        assert (out.shape, out.dtype) == (x.shape, x.dtype), task


def _tiny_config(num_steps):
    import importlib.util

    spec = importlib.util.spec_from_file_location(
        "mt_cfg", os.path.join(REPO, "configs", "multitask_ssl.py")
    )
    cfg_mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(cfg_mod)
    c = cfg_mod.get_config()
    c.seed = 1
    c.data.batch_size = 16
    c.data.synthetic.num_examples = 256
    c.model.hidden = 64
    c.model.ssl_dim = c.model.mm_dim = 32
    c.multitask.head_hidden = 32
    # Five of the eight tasks: each transformation adds compile time to the step, and noise,
    # scaling and permutation are augment.py's (tested there); test_default_tasks covers all.
    c.multitask.tasks = ("rotation", "negation", "time_reversal", "time_warp", "channel_shuffle")
    c.optim.lr = 1e-3
    c.train.num_steps = num_steps
    c.train.log_every = 1
    c.train.checkpoint_every = num_steps
    return c


def _bce(logits, label):
    return np.mean(np.logaddexp(0.0, logits) - label * logits)


@pytest.mark.slow
def test_training_run_learns_matches_recomputation_and_checkpoints(tmp_path):
    steps = 30
    c = _tiny_config(steps)
    wd = str(tmp_path / "run")
    after_1 = {}

    def keep_step_1(step, st):
        # The state after step 1, copied to host before step 2 donates its buffers.
        if step == 1:
            after_1.update(jax.device_get({"params": st.params, "rng": st.rng}))

    state = train.train_and_evaluate(c, wd, step_hook=keep_step_1)  # 8-device mesh, donated
    assert set(state.params) == {"encoder", "log_tau_mm", "log_tau_ss", "multitask"}
    assert state.queue.size == c.data.batch_size  # token queue: no NN terms
    with open(os.path.join(wd, "metrics.jsonl")) as f:
        m = {r["step"]: r for r in map(json.loads, f)}
    assert sorted(m) == list(range(1, steps + 1))

    # Step 2 against an independent recomputation from the state after step 1 and batch 2.
    model = build.encoder_from_config(c.model)
    data = input_pipeline.make_train_iterator(c)
    next(data)
    x = jnp.asarray(next(data)["imu"])
    key = jax.random.fold_in(jax.random.wrap_key_data(after_1["rng"]), 1)
    enc = after_1["params"]["encoder"]
    apply = jax.jit(lambda p, v: model.apply({"params": p}, v)["mmcl"])
    f0 = np.asarray(apply(enc, x))
    h = after_1["params"]["multitask"]
    tasks = mt.parse_tasks(c.multitask.tasks)
    transforms = dict(zip(tasks, mt.make_transforms(c), strict=True))
    # Three cheap-to-compile tasks suffice to pin the pairing: row block i is task i's
    # transform, drawn with fold_in(step key, i), and goes to head i with label 1.
    for task in ("negation", "time_reversal", "channel_shuffle"):
        i = tasks.index(task)
        ft = np.asarray(apply(enc, transforms[task](jax.random.fold_in(key, i), x)))

        def head(f, i=i):
            z = np.maximum(f @ h["kernel1"][i] + h["bias1"][i], 0.0)
            return z @ h["kernel2"][i] + h["bias2"][i]

        want = 0.5 * (_bce(head(f0), 0.0) + _bce(head(ft), 1.0))
        np.testing.assert_allclose(m[2][f"train/loss_{task}"], want, rtol=2e-4, err_msg=task)
        acc = 0.5 * (np.mean(head(f0) <= 0) + np.mean(head(ft) > 0))
        np.testing.assert_allclose(m[2][f"train/acc_{task}"], acc, atol=1e-6, err_msg=task)
    per_task = [m[2][f"train/loss_{t}"] for t in tasks]
    np.testing.assert_allclose(m[2]["train/loss"], np.mean(per_task), rtol=1e-5)

    # Learning: the total falls clearly; the tasks that gravity and sensor geometry make easy
    # on this data are solved well above chance within the few steps.
    def avg(key, s):
        return np.mean([m[i][f"train/{key}"] for i in s])

    first, last = range(1, 6), range(steps - 4, steps + 1)
    assert avg("loss", first) > 0.66 and avg("loss", last) < avg("loss", first) - 0.08
    assert avg("acc", last) > avg("acc", first) + 0.1
    for task in ("negation", "channel_shuffle"):
        assert avg(f"acc_{task}", last) > 0.8, task
    assert all(np.isfinite(m[s]["train/grad_norm"]) and m[s]["train/lr"] > 0 for s in m)

    # The checkpoint restores into evaluation's loader: the encoder alone, unchanged.
    params, cfg, step = checkpointing.load_encoder_params(wd)
    assert step == steps and cfg["objective"] == "multitask_ssl"
    for a, b in zip(jax.tree.leaves(params), jax.tree.leaves(state.params["encoder"]), strict=True):
        np.testing.assert_array_equal(a, np.asarray(b))
