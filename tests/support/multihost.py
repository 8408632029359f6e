"""The tiny config shared by the multi-process test and its worker processes, and the
gradient probe both sides compute (a fixed state with a full queue, one fixed batch)."""

import functools

import numpy as np

from primus_jax.config import base_config
from primus_jax.models import build


def tiny_config(mode="host"):
    """``mode``: "host" (the per-process host pipeline) or "resident" (data on the mesh)."""
    c = base_config()
    c.data.device_resident = mode == "resident"
    c.seed = 5
    c.data.batch_size = 16
    c.data.synthetic.num_examples = 32  # = the queue: epoch 2 would self-match without exclusion
    c.queue.size = 32
    c.model.hidden = 128
    c.model.ssl_dim = c.model.mm_dim = 64
    c.optim.lr = 1e-3
    c.train.num_steps = 4
    c.train.log_every = 1
    c.train.checkpoint_every = 2
    return c


def gradient_inputs(c):
    """``(state, rows)`` on the host: the initial state with its queue filled by synthetic rows
    0..31 (IMU keys random) at step 5, and rows 0..15 as the batch, whose own segments are in
    the queue (so the self-exclusion is exercised) and whose NN terms are all live."""
    import jax
    import jax.numpy as jnp

    from primus_jax import optim
    from primus_jax import queue as queue_lib
    from primus_jax import state as state_lib
    from primus_jax.data.synthetic import SyntheticPairedSource
    from primus_jax.objectives import primus

    model, tx = build.encoder_from_config(c.model), optim.make_optimizer(c)
    src = SyntheticPairedSource(c.data.synthetic.num_examples, c.model.mm_dim, c.seed)
    keys = np.random.default_rng(7).normal(size=(32, c.model.ssl_dim)).astype(np.float32)
    with jax.default_device(jax.local_devices(backend="cpu")[0]):
        st = jax.jit(functools.partial(state_lib.create_train_state, c, model, tx, primus))()
        q = st.queue
        for s in range(0, 32, 16):
            rows = src.get_batch(np.arange(s, s + 16))
            fields = ("video", "text", "has_video", "has_text", "segment_id", "recording_id")
            q = queue_lib.enqueue(q, imu=keys[s : s + 16], **{k: rows[k] for k in fields})
        st = st.replace(queue=q, step=jnp.asarray(5, jnp.int32))
        st = jax.device_get(st)
    return st, src.get_batch(np.arange(16))


def gradients_on_mesh(c, mesh, state, rows):
    """``(loss, terms, {path: grad})`` of :func:`gradient_inputs`'s state and batch on
    ``mesh`` (this process passes its rows of the batch), as host numpy arrays."""
    import jax

    from primus_jax import sharding
    from primus_jax.objectives.primus import make_loss_and_grads

    rep = sharding.replicated(mesh)
    state_sh = sharding.state_shardings(state, mesh)
    placed = jax.tree.map(
        lambda x: jax.make_array_from_process_local_data(rep, np.asarray(x)), state
    )
    n, p = len(rows["imu"]), jax.process_count()
    lo = jax.process_index() * n // p
    batch = sharding.global_batch({k: v[lo : lo + n // p] for k, v in rows.items()}, mesh)
    loss_and_grads = make_loss_and_grads(c, build.encoder_from_config(c.model))

    def fn(s, b):
        (loss, aux), grads = loss_and_grads(s, b)
        return loss, aux["terms"], grads

    jitted = jax.jit(
        sharding.under_mesh(fn, mesh),
        in_shardings=(state_sh, sharding.batch_sharding(mesh)),
        out_shardings=rep,
    )
    loss, terms, grads = jitted(placed, batch)
    local = lambda x: np.asarray(x.addressable_data(0))
    flat = {
        jax.tree_util.keystr(path): local(g)
        for path, g in jax.tree_util.tree_flatten_with_path(grads)[0]
    }
    return float(local(loss)), {k: float(local(v)) for k, v in terms.items()}, flat


def assert_same_gradients(a: dict, b: dict, rtol: float = 1e-6, leaf_rtol: float = 2e-6) -> None:
    """The same leaves; the whole gradient within ``rtol`` (||a - b|| / ||b|| over all
    leaves) and every leaf within ``leaf_rtol`` of its own norm. Small leaves whose gradient
    is a sum of cancelling terms (GroupNorm biases) carry a few float32 ulps more: 1.0e-6 was
    measured for ``norm_out.bias`` between 2 processes and 1."""
    assert sorted(a) == sorted(b)
    diff = ref = 0.0
    for k in a:
        err = np.linalg.norm(np.float64(a[k]) - b[k])
        norm = np.linalg.norm(np.float64(b[k]))
        assert norm > 0, f"{k}: zero gradient"
        assert err <= leaf_rtol * norm, f"{k}: relative difference {err / norm:.2e}"
        diff, ref = diff + err**2, ref + norm**2
    rel = np.sqrt(diff / ref)
    assert rel <= rtol, f"whole gradient: relative difference {rel:.2e} > {rtol:g}"
