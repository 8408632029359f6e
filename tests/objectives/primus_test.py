"""The composed train step against an independent recomputation of every loss term."""

import functools

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from support import reference_impls as ref

from primus_jax import augment, losses, optim
from primus_jax import state as state_lib
from primus_jax.config import base_config
from primus_jax.data.synthetic import SyntheticPairedSource
from primus_jax.models import build
from primus_jax.objectives import primus
from primus_jax.objectives.primus import make_train_step

BATCH = 8


def _config(**loss):
    c = base_config()
    c.data.batch_size = BATCH
    c.queue.size = 16
    c.model.hidden = 64
    c.model.ssl_dim = c.model.mm_dim = 32
    c.optim.lr = 1e-3
    for k, v in loss.items():
        c.loss[k] = v
    return c


def _setup(c):
    model = build.encoder_from_config(c.model)
    tx = optim.make_optimizer(c)
    sched = optim.make_schedule(c)
    st = jax.jit(functools.partial(state_lib.create_train_state, c, model, tx, primus))()
    step = jax.jit(make_train_step(c, model, tx, sched))
    return model, st, step


def _batch(seed, n=BATCH, dim=32, video_fraction=1.0, text_fraction=1.0):
    src = SyntheticPairedSource(
        64, dim, seed, video_fraction=video_fraction, text_fraction=text_fraction
    )
    return {k: jnp.asarray(v) for k, v in src.get_batch(np.arange(n)).items()}


def test_first_step_matches_independent_computation():
    c = _config()
    model, st, step = _setup(c)
    batch = _batch(0, video_fraction=0.75, text_fraction=0.5)
    new, m = step(st, batch)

    key = jax.random.fold_in(jax.random.wrap_key_data(st.rng), 0)
    view = augment.augment(key, batch["imu"], augment.parse_ops(c.augment.ops))
    p = {"params": st.params["encoder"]}
    raw = model.apply(p, batch["imu"])
    aug = model.apply(p, view)
    tau = 0.1
    np.testing.assert_allclose(m["loss_ss"], ref.info_nce(raw["ssl"], aug["ssl"], tau), rtol=1e-4)
    for mod in ("text", "video"):
        want = ref.info_nce(raw["mmcl"], batch[mod], tau, batch[f"has_{mod}"])
        np.testing.assert_allclose(m[f"loss_mm_{mod}"], want, rtol=1e-4)
    # Empty queue and lookup before enqueue: no neighbour exists yet, so L_NN is 0 (if the
    # batch were enqueued first, every row would find itself at similarity 1).
    assert float(m["nn_valid_frac"]) == 0.0 and float(m["loss_nn"]) == 0.0
    total = float(m["loss_ss"]) + float(m["loss_mm_text"]) + float(m["loss_mm_video"])
    np.testing.assert_allclose(m["loss"], total, rtol=1e-5)
    # Queue now holds the batch (normalised), with its modality flags, at slots 0..B-1.
    assert int(new.queue.count) == BATCH and int(new.queue.ptr) == BATCH
    np.testing.assert_array_equal(new.queue.has_text[:BATCH], batch["has_text"])
    np.testing.assert_allclose(
        new.queue.imu[:BATCH], np.asarray(losses.l2_normalize(raw["ssl"])), atol=1e-5
    )


def test_second_step_nn_terms_match_independent_computation():
    c = _config()
    model, st, step = _setup(c)
    st, _ = step(st, _batch(0))
    batch = _batch(1, video_fraction=0.75, text_fraction=0.75)
    q = st.queue
    new, m = step(st, batch)

    raw = model.apply({"params": st.params["encoder"]}, batch["imu"])
    filled = np.arange(q.size) < int(q.count)
    has_v = np.asarray(batch["has_video"])
    has_t = np.asarray(batch["has_text"])
    # Both batches hold synthetic rows 0..7, so every row's own segment sits in the queue:
    # it must be skipped (queue.exclude="self").
    own = np.all(np.asarray(q.segment_id)[None] == np.asarray(batch["segment_id"])[:, None], -1)
    assert own.sum() == BATCH
    # Per-row domain: video if the row has it, else text, else the IMU key.
    idx = np.empty(BATCH, int)
    for i in range(BATCH):
        free = filled & ~own[i]
        if has_v[i]:
            qv, bank, ok = batch["video"][i : i + 1], q.video, free & np.asarray(q.has_video)
        elif has_t[i]:
            qv, bank, ok = batch["text"][i : i + 1], q.text, free & np.asarray(q.has_text)
        else:
            qv, bank, ok = raw["ssl"][i : i + 1], q.imu, free
        idx[i] = ref.nearest_video_neighbour(qv, bank, ok)[0]
    nb = {k: np.asarray(getattr(q, k))[idx] for k in ("video", "text", "imu")}
    nb_has_v = np.asarray(q.has_video)[idx]
    nb_has_t = np.asarray(q.has_text)[idx]
    tau_mm = float(np.exp(st.params["log_tau_mm"]))
    tau_ss = float(np.exp(st.params["log_tau_ss"]))
    want = {
        "loss_nn_text": ref.info_nce(raw["mmcl"], nb["text"], tau_mm, nb_has_t),
        "loss_nn_video": ref.info_nce(raw["mmcl"], nb["video"], tau_mm, nb_has_v),
        "loss_nn_imu": ref.info_nce(raw["ssl"], nb["imu"], tau_ss),
    }
    for k, v in want.items():
        np.testing.assert_allclose(m[k], v, rtol=1e-4, err_msg=k)
    assert float(m["nn_valid_frac"]) == 1.0 and float(m["nn_self_frac"]) == 0.0
    assert int(new.queue.count) == 2 * BATCH


@pytest.mark.parametrize(
    "loss,expected_terms",
    [
        (dict(alpha=1.0, beta=0.0, gamma=0.0), {"loss_ss"}),
        (dict(alpha=0.0, beta=1.0, gamma=0.0), {"loss_mm", "loss_mm_text", "loss_mm_video"}),
        (
            dict(alpha=1.0, beta=0.0, gamma=1.0, nn_terms=("imu",)),
            {"loss_ss", "loss_nn", "loss_nn_imu"},
        ),
    ],
)
def test_ablations_compute_only_their_terms(loss, expected_terms):
    c = _config(**loss)
    _, st, step = _setup(c)
    _, m = step(st, _batch(0))
    assert {k for k in m if k.startswith("loss_")} == expected_terms


def test_weights_scale_the_total():
    c = _config(alpha=0.5, beta=0.5, gamma=0.5)
    _, st, step = _setup(c)
    st, _ = step(st, _batch(0))
    _, m = step(st, _batch(1))
    want = 0.5 * (float(m["loss_ss"]) + float(m["loss_mm"]) + float(m["loss_nn"]))
    np.testing.assert_allclose(m["loss"], want, rtol=1e-5)


def test_temperatures_receive_gradients_and_update():
    c = _config()
    _, st, step = _setup(c)
    new, _ = step(st, _batch(0))
    assert float(new.params["log_tau_mm"]) != float(st.params["log_tau_mm"])
    assert float(new.params["log_tau_ss"]) != float(st.params["log_tau_ss"])


def _dloss_dtau(q, k, tau):
    """d/dtau of the symmetric InfoNCE, by hand: with s = cos(q_i, k_j) and p the softmax of
    s / tau, dCE_row_i/dtau = -(sum_j p_ij s_ij - s_ii) / tau^2 (columns alike)."""
    qn = np.float64(q) / np.linalg.norm(q, axis=1, keepdims=True)
    kn = np.float64(k) / np.linalg.norm(k, axis=1, keepdims=True)
    s = qn @ kn.T
    out = 0.0
    for m in (s, s.T):
        p = np.exp(m / tau - (m / tau).max(axis=1, keepdims=True))
        p /= p.sum(axis=1, keepdims=True)
        out += np.mean(-((p * m).sum(axis=1) - np.diag(m)) / tau**2)
    return out


@pytest.mark.parametrize("mode", ["raw", "log"])
def test_temperature_gradient_and_first_update_match_hand_computation(mode):
    # L_SS only, so the loss is one symmetric InfoNCE at tau_ss.
    c = _config(alpha=1.0, beta=0.0, gamma=0.0, temperature=mode)
    c.optim.lr = 2e-4  # the reference's
    model, st, step = _setup(c)
    batch = _batch(0)
    key = jax.random.fold_in(jax.random.wrap_key_data(st.rng), 0)
    view = augment.augment(key, batch["imu"], augment.parse_ops(c.augment.ops))
    p = {"params": st.params["encoder"]}
    q = np.asarray(model.apply(p, batch["imu"])["ssl"])
    k = np.asarray(model.apply(p, view)["ssl"])
    g_tau = _dloss_dtau(q, k, 0.1)

    (_, _), grads = jax.jit(primus.make_loss_and_grads(c, model))(st, batch)
    name = "tau_ss" if mode == "raw" else "log_tau_ss"
    # raw: the gradient w.r.t. tau itself; log: chain rule, tau * dL/dtau.
    want = g_tau if mode == "raw" else 0.1 * g_tau
    np.testing.assert_allclose(float(grads[name]), want, rtol=2e-4)
    new, m = step(st, batch)
    # Adam's first update is -lr * g / (|g| + eps): one lr step against the gradient's sign.
    moved = float(new.params[name]) - float(st.params[name])
    np.testing.assert_allclose(moved, -2e-4 * np.sign(want), rtol=1e-3)
    # What that means for tau: raw moves it by lr, log by ~lr * tau (10x slower at 0.1).
    dtau = float(m["tau_ss"]) - 0.1
    np.testing.assert_allclose(abs(dtau), 2e-4 if mode == "raw" else 2e-5, rtol=2e-3)
