"""Contrastive losses of PRIMUS, written for the global batch.

Every function takes global ``(B, D)`` arrays. Under ``jax.jit`` with the batch sharded over
the ``data`` mesh axis, XLA inserts the gathers, so negatives always come from the whole
global batch whatever the device count (the reference uses per-GPU negatives only).
"""

from __future__ import annotations

import math

import jax
import jax.numpy as jnp

_NEG_INF = -1e30  # finite, so masked rows never produce NaN through 0 * inf


def l2_normalize(x, eps: float = 1e-12):
    """Rows scaled to unit L2 norm; all-zero rows stay zero (like ``F.normalize``)."""
    x = x.astype(jnp.promote_types(x.dtype, jnp.float32))
    sq = jnp.sum(x * x, axis=-1, keepdims=True)
    return x * jax.lax.rsqrt(jnp.maximum(sq, eps * eps))


TEMPERATURE_MODES = ("log", "raw")
TEMPERATURE_FAMILIES = ("mm", "ss")  # tau_mm: MM and NN-MM terms; tau_ss: SS and NN-IMU


def temperature_key(family: str, mode: str) -> str:
    """Parameter name of a temperature: ``log_tau_<family>`` or ``tau_<family>``."""
    if mode not in TEMPERATURE_MODES:
        raise ValueError(f"temperature mode must be one of {TEMPERATURE_MODES}, got {mode!r}")
    return f"log_tau_{family}" if mode == "log" else f"tau_{family}"


def init_temperatures(tau_init: float, mode: str) -> dict:
    """``{key: scalar}`` for both families, every one starting at ``tau_init``."""
    value = math.log(tau_init) if mode == "log" else tau_init
    return {temperature_key(f, mode): jnp.asarray(value, jnp.float32) for f in TEMPERATURE_FAMILIES}


def temperature(params: dict, family: str, tau_min: float = 0.0):
    """The learnable temperature of ``family`` from ``params`` (whichever parameterisation).

    ``log``: ``tau = exp(log_tau)``, always positive; Adam moves ``log tau`` by ~lr per step,
    i.e. tau by ~lr * tau (about 10x slower than raw at tau = 0.1). ``raw`` (the reference):
    tau itself is the parameter, moving by ~lr per step; it is clamped at ``tau_min`` so it
    can never reach 0 or turn negative (which would invert the loss).
    """
    if f"log_tau_{family}" in params:
        return jnp.exp(params[f"log_tau_{family}"])
    return jnp.maximum(params[f"tau_{family}"], tau_min)


def _masked_mean(values, mask):
    mask = mask.astype(values.dtype)
    n = mask.sum()
    return jnp.where(n > 0, (values * mask).sum() / jnp.maximum(n, 1.0), 0.0)


def symmetric_info_nce(query, key, tau, mask=None):
    """Symmetric InfoNCE on cosine similarities; both cross-entropy directions summed.

    ``logits[i, j] = <q_i, k_j> / tau`` with q, k L2-normalised; the positive of row i is
    column i. The loss is ``CE_rows + CE_cols``, each the mean over its valid rows, as in the
    reference (``P:lib/loss.py``: NLL(log_softmax(dim=1)) + NLL(log_softmax(dim=0))).

    Masking (rows whose key is missing, e.g. a segment without text): a masked pair
    contributes no positive term in either direction, and its *key* is removed from the
    candidates of the query->key direction (it is not an embedding, only a placeholder). Its
    *query* is a real IMU embedding and stays a negative in the key->query direction. The
    reference instead keeps the placeholder key (a zero vector or the CLIP embedding of
    "#None") as a negative; see the README's table of differences.

    Args:
      query: (B, D) queries (IMU head outputs); gradients flow here.
      key: (B, D) keys (second view, frozen-encoder embeddings or queue neighbours).
      tau: scalar temperature (> 0).
      mask: optional (B,) bool, True where the pair (query_i, key_i) exists.

    Returns:
      Scalar loss; 0 when no pair is valid.
    """
    q = l2_normalize(query)
    k = l2_normalize(key)
    logits = (q @ k.T) / tau
    b = logits.shape[0]
    if mask is None:
        mask = jnp.ones((b,), bool)
    diag = jnp.diagonal(logits)
    # query -> key: softmax over valid keys only.
    row_logits = jnp.where(mask[None, :], logits, _NEG_INF)
    row_ce = jax.nn.logsumexp(row_logits, axis=1) - diag
    # key -> query: softmax over all queries (every query is a real IMU embedding).
    col_ce = jax.nn.logsumexp(logits, axis=0) - diag
    return _masked_mean(row_ce, mask) + _masked_mean(col_ce, mask)
