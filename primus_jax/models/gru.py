"""A single-layer GRU that returns its final state, with a hand-written VJP.

Why a custom VJP: the GRU's ``h @ W_hh`` GEMMs are ~89% of the encoder's FLOPs. Autodiff
through ``lax.scan`` produces a backward pass whose dots use transposed operands, which
XLA:CPU runs slowly (and in bfloat16 no faster than float32). The backward below keeps every
per-step GEMM un-transposed: ``dh @ W_hh^T`` against a transposed copy made once, and
``h_prev^T @ dgates`` accumulated into ``dW_hh`` inside the reverse scan, with ``h^T`` taken
from one ``swapaxes`` of the stacked residuals outside the loop (docs/benchmarks.md). The
first step, from ``h0 = 0``, is taken outside the loop: it needs no ``h @ W_hh``, and in the
backward no ``dW_hh`` term and no gradient for ``h0`` (3 of the 96 recurrent GEMMs).

Gate layout and formulas follow PyTorch's ``nn.GRU`` exactly (gate order r, z, n):

    r = sigmoid(x W_ir + b_ir + h W_hr + b_hr)
    z = sigmoid(x W_iz + b_iz + h W_hz + b_hz)
    n = tanh(x W_in + b_in + r * (h W_hn + b_hn))
    h' = (1 - z) * n + z * h

with ``w_ih: (I, 3H)``, ``w_hh: (H, 3H)`` (PyTorch stores the transposes) and the two separate
bias vectors ``b_ih, b_hh: (3H,)``, so the released PyTorch weights load one-to-one.
"""

from __future__ import annotations

import functools

import jax
import jax.numpy as jnp
from jax import lax
from jax.sharding import PartitionSpec as P

from primus_jax.sharding import DATA_AXIS


def _mm(a, b, compute_dtype):
    """Matmul with operands cast to ``compute_dtype`` and float32 (or wider) accumulation."""
    if compute_dtype is None:
        return jnp.matmul(a, b)
    out_dtype = jnp.promote_types(a.dtype, jnp.float32)
    return jnp.matmul(
        a.astype(compute_dtype), b.astype(compute_dtype), preferred_element_type=out_dtype
    )


def _split3(g):
    h = g.shape[-1] // 3
    return g[..., :h], g[..., h : 2 * h], g[..., 2 * h :]


def _cell(x_t, h, w_ih, w_hh, b_ih, b_hh, compute_dtype):
    """One GRU step; ``h=None`` is the zero initial state, whose ``h @ W_hh`` is skipped.

    Returns the new state and the step's residuals (r, z, n, W_hn h + b_hn)."""
    # x_t @ W_ih stays inside the loop: hoisting it creates a (S, B, 3H) float32
    # intermediate that is streamed from DRAM and was 20% slower on CPU.
    gi = _mm(x_t, w_ih, compute_dtype) + b_ih
    gh = b_hh if h is None else _mm(h, w_hh, compute_dtype) + b_hh
    gi_r, gi_z, gi_n = _split3(gi)
    gh_r, gh_z, gh_n = _split3(gh)
    r = jax.nn.sigmoid(gi_r + gh_r)
    z = jax.nn.sigmoid(gi_z + gh_z)
    n = jnp.tanh(gi_n + r * gh_n)
    h_new = n - z * n if h is None else n + z * (h - n)
    return h_new, (r, z, n, gh_n)  # at step 0 gh_n is b_hn alone, shape (H,)


def _forward_scan(x, w_ih, w_hh, b_ih, b_hh, compute_dtype):
    """Runs the recurrence; returns the final state and the residuals of the backward pass:
    step 0's (r, z, n, W_hn h + b_hn), taken outside the loop from ``h0 = 0``, and, stacked
    over steps 1..S-1, the previous state h with the same four."""
    if compute_dtype is not None:
        # Cast the weights once, not at every step of the loop.
        w_ih = lax.optimization_barrier(w_ih.astype(compute_dtype))
        w_hh = lax.optimization_barrier(w_hh.astype(compute_dtype))
    h1, first = _cell(x[0], None, w_ih, w_hh, b_ih, b_hh, compute_dtype)

    def step(h, x_t):
        h_new, res = _cell(x_t, h, w_ih, w_hh, b_ih, b_hh, compute_dtype)
        return h_new, (h, *res)

    h, rest = lax.scan(step, h1, x[1:])
    return h, (first, rest)


@functools.partial(jax.custom_vjp, nondiff_argnums=(5,))
def gru_final_state(x, w_ih, w_hh, b_ih, b_hh, compute_dtype=None):
    """Final hidden state of a GRU run over ``x`` from ``h0 = 0``.

    Args:
      x: (S, B, I) inputs, sequence-major.
      w_ih: (I, 3H) input weights, gate order r, z, n.
      w_hh: (H, 3H) recurrent weights.
      b_ih: (3H,) input bias.
      b_hh: (3H,) recurrent bias.
      compute_dtype: dtype of the matmul operands (e.g. ``jnp.bfloat16``); accumulation,
        carried state and gates stay in float32. ``None`` computes in the inputs' dtype.

    Returns:
      (B, H) final hidden state.
    """
    h, _ = _forward_scan(x, w_ih, w_hh, b_ih, b_hh, compute_dtype)
    return h


def _gru_fwd(x, w_ih, w_hh, b_ih, b_hh, compute_dtype):
    h, res = _forward_scan(x, w_ih, w_hh, b_ih, b_hh, compute_dtype)
    return h, (x, w_ih, w_hh, res)


def _gate_grads(dh, h_prev, r, z, n, gh_n):
    """Pre-activation gradients of one step: (d gi, d gh, the part of dh_prev through z).

    ``h_prev=None`` is the zero initial state."""
    dn = dh * (1.0 - z)
    dz = dh * (-n if h_prev is None else h_prev - n)
    da_n = dn * (1.0 - n * n)
    da_r = da_n * gh_n * r * (1.0 - r)
    da_z = dz * z * (1.0 - z)
    dgi = jnp.concatenate([da_r, da_z, da_n], axis=-1)  # (B, 3H)
    dgh = jnp.concatenate([da_r, da_z, da_n * r], axis=-1)
    return dgi, dgh, dh * z


def _gru_bwd(compute_dtype, saved, dh_final):
    x, w_ih, w_hh, (first, (hs, r, z, n, gh_n)) = saved
    cd = compute_dtype
    # Transposed copies made once per step, outside the loop. The barrier stops XLA from
    # folding the transpose back into the dot (which would make it a transposed-operand dot).
    w_hh_t = lax.optimization_barrier(w_hh.T if cd is None else w_hh.T.astype(cd))
    w_ih_t = lax.optimization_barrier(w_ih.T if cd is None else w_ih.T.astype(cd))
    # h^T and x^T, the left operands of the weight-gradient GEMMs, from one swapaxes of the
    # stacked residuals each, stored in the compute dtype: a bf16 step keeps half the bytes
    # and converts nothing at every step. (Without the barrier XLA moves the convert after
    # the transpose and keeps a float32 copy.)
    hs_t = jnp.swapaxes(hs, 1, 2)  # (S-1, H, B)
    xs_t = jnp.swapaxes(x, 1, 2)  # (S, I, B)
    if cd is not None:
        hs_t, xs_t = lax.optimization_barrier((hs_t.astype(cd), xs_t.astype(cd)))

    def step(carry, inputs):
        dh, dw_ih, dw_hh, db_ih, db_hh = carry
        h_prev_t, x_t_t, h_prev, r_t, z_t, n_t, ghn_t = inputs
        dgi, dgh, dh_z = _gate_grads(dh, h_prev, r_t, z_t, n_t, ghn_t)
        dh_prev = dh_z + _mm(dgh, w_hh_t, cd)
        dw_hh = dw_hh + _mm(h_prev_t, dgh, cd)
        dw_ih = dw_ih + _mm(x_t_t, dgi, cd)
        db_ih = db_ih + dgi.sum(0)
        db_hh = db_hh + dgh.sum(0)
        dx_t = _mm(dgi, w_ih_t, cd)
        return (dh_prev, dw_ih, dw_hh, db_ih, db_hh), dx_t

    acc = dh_final.dtype
    carry0 = (
        dh_final,
        jnp.zeros(w_ih.shape, acc),
        jnp.zeros(w_hh.shape, acc),
        jnp.zeros(w_hh.shape[1:], acc),
        jnp.zeros(w_hh.shape[1:], acc),
    )
    (dh, dw_ih, dw_hh, db_ih, db_hh), dx = lax.scan(
        step, carry0, (hs_t, xs_t[1:], hs, r, z, n, gh_n), reverse=True
    )
    # Step 0, from h0 = 0: no dW_hh term, and h0 takes no gradient.
    dgi, dgh, _ = _gate_grads(dh, None, *first)
    dw_ih = dw_ih + _mm(xs_t[0], dgi, cd)
    dx0 = _mm(dgi, w_ih_t, cd)
    return (
        jnp.concatenate([dx0[None], dx]).astype(x.dtype),
        dw_ih.astype(w_ih.dtype),
        dw_hh.astype(w_hh.dtype),
        (db_ih + dgi.sum(0)).astype(w_hh.dtype),
        (db_hh + dgh.sum(0)).astype(w_hh.dtype),
    )


gru_final_state.defvjp(_gru_fwd, _gru_bwd)


def gru_final_state_autodiff(x, w_ih, w_hh, b_ih, b_hh, compute_dtype=None):
    """Same computation differentiated by plain autodiff (used as a test reference)."""
    h, _ = _forward_scan(x, w_ih, w_hh, b_ih, b_hh, compute_dtype)
    return h


def data_parallel_gru(x, w_ih, w_hh, b_ih, b_hh, compute_dtype=None):
    """:func:`gru_final_state`, run per device when a mesh with a ``data`` axis is in context.

    Under plain ``jit`` with a batch-sharded input, the SPMD partitioner keeps the weight
    gradients replicated inside the backward scan, i.e. it all-reduces ``dW_hh`` (3 MB) at
    every one of the 32 steps. Inside ``shard_map`` each device accumulates its local
    gradient over the whole scan and the transpose of the replicated weights does a single
    all-reduce after it. The mesh comes from ``jax.sharding.use_abstract_mesh`` (set by
    ``sharding.data_parallel``); without one this is exactly ``gru_final_state``.
    """
    mesh = jax.sharding.get_abstract_mesh()
    n = 1 if mesh.empty or DATA_AXIS not in mesh.axis_names else mesh.shape[DATA_AXIS]
    if n == 1 or x.shape[1] % n:
        return gru_final_state(x, w_ih, w_hh, b_ih, b_hh, compute_dtype)
    per_device = jax.shard_map(
        lambda x, a, b, c, d: gru_final_state(x, a, b, c, d, compute_dtype),
        mesh=mesh,
        in_specs=(P(None, DATA_AXIS, None), P(), P(), P(), P()),
        out_specs=P(DATA_AXIS, None),
        # The custom VJP's per-device weight gradients are summed by shard_map's transpose
        # of the unmapped weight inputs (one psum); vma checking cannot type the scan carry.
        check_vma=False,
    )
    return per_device(x, w_ih, w_hh, b_ih, b_hh)
