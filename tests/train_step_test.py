"""The composed train step against an independent recomputation of every loss term."""

import functools

import jax
import jax.numpy as jnp
import numpy as np
import pytest
import reference_impls as ref

from primus_jax import augment, losses
from primus_jax import state as state_lib
from primus_jax.config import base_config
from primus_jax.data.synthetic import SyntheticPairedSource
from primus_jax.train_step import make_train_step

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
    model = state_lib.make_model(c)
    tx = state_lib.make_optimizer(c)
    sched = state_lib.make_schedule(c)
    st = jax.jit(functools.partial(state_lib.create_train_state, c, model, tx))()
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
    # Per-row domain: video if the row has it, else text, else the IMU key.
    idx = np.empty(BATCH, int)
    for i in range(BATCH):
        if has_v[i]:
            qv, bank, ok = batch["video"][i : i + 1], q.video, filled & np.asarray(q.has_video)
        elif has_t[i]:
            qv, bank, ok = batch["text"][i : i + 1], q.text, filled & np.asarray(q.has_text)
        else:
            qv, bank, ok = raw["ssl"][i : i + 1], q.imu, filled
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
    assert float(m["nn_valid_frac"]) == 1.0
    assert int(new.queue.count) == 2 * BATCH


@pytest.mark.parametrize(
    "loss,expected_terms",
    [
        (dict(alpha=1.0, beta=0.0, gamma=0.0), {"loss_ss"}),
        (dict(alpha=0.0, beta=1.0, gamma=0.0), {"loss_mm", "loss_mm_text", "loss_mm_video"}),
        (
            dict(alpha=1.0, beta=0.0, gamma=1.0, nn_terms="imu"),
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
