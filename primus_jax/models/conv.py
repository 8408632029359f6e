"""The first conv layer's convolution, with its input gradient computed as one GEMM.

``conv1`` reads the 6 IMU channels. XLA:CPU computes the gradient with respect to its input
as a convolution whose output has those 6 features, and runs it at ~3% of the machine's
GEMM rate: 14-15 ms of a batch-256 training step (2 x 256 windows, 250 samples, kernel 10,
dilation 2), more than the forward and the filter gradient together. The same gradient is
``dy @ W^T`` for all taps at once, ``(B*T', O) @ (O, K*C)``, followed by an overlap-add of
the K shifted tap columns: 4.3 ms (docs/benchmarks.md). The forward pass and the filter
gradient stay XLA's. The input gradient is needed: it carries ``norm_in``'s scale and bias
gradients.

:func:`conv_general_dilated` has ``lax.conv_general_dilated``'s signature, so it plugs into
``flax.linen.Conv(conv_general_dilated=...)`` with the parameter tree unchanged; anything but
a stride-1, unpadded, ungrouped 1-D NWC convolution goes to ``lax`` as is.
"""

from __future__ import annotations

import functools

import jax
import jax.numpy as jnp
from jax import lax

_LAYOUT = ("NWC", "WIO", "NWC")


def _conv(x, w, dilation):
    return lax.conv_general_dilated(
        x, w, (1,), "VALID", rhs_dilation=(dilation,), dimension_numbers=_LAYOUT
    )


@functools.partial(jax.custom_vjp, nondiff_argnums=(2,))
def valid_conv1d(x, w, dilation: int):
    """``x (B, T, C)`` convolved with ``w (K, C, O)`` at ``dilation``, no padding:
    ``(B, T - dilation * (K - 1), O)``."""
    return _conv(x, w, dilation)


def _fwd(x, w, dilation):
    return _conv(x, w, dilation), (x, w)


def _bwd(dilation, saved, dy):
    x, w = saved
    k, c, o = w.shape
    b, n, _ = dy.shape
    # The filter gradient: XLA's transpose of the convolution, linear in w.
    (dw,) = jax.linear_transpose(lambda w: _conv(x, w, dilation), w)(dy)
    # dx[:, t] = sum_j dy[:, t - dilation * j] @ w[j]^T: every tap's columns from one GEMM,
    # each shifted to its offset (a pad) and summed; XLA fuses the K pads and adds.
    cols = (dy.reshape(b * n, o) @ w.reshape(k * c, o).T).reshape(b, n, k, c)
    dx = sum(
        jnp.pad(cols[:, :, j], ((0, 0), (dilation * j, dilation * (k - 1 - j)), (0, 0)))
        for j in range(k)
    )
    return dx.astype(x.dtype), dw


valid_conv1d.defvjp(_fwd, _bwd)


def conv_general_dilated(
    lhs,
    rhs,
    window_strides,
    padding,
    lhs_dilation=None,
    rhs_dilation=None,
    dimension_numbers=None,
    feature_group_count=1,
    precision=None,
    **kwargs,
):
    """``lax.conv_general_dilated``, through :func:`valid_conv1d` where that applies."""
    plain = (
        lhs.ndim == 3
        and not kwargs
        and tuple(window_strides) == (1,)
        and (padding == "VALID" or tuple(map(tuple, padding)) == ((0, 0),))
        and tuple(lhs_dilation or (1,)) == (1,)
        and feature_group_count == 1
        and precision is None
        and lhs.dtype == rhs.dtype
        and dimension_numbers is not None
        and lax.conv_dimension_numbers(lhs.shape, rhs.shape, dimension_numbers)
        == lax.conv_dimension_numbers(lhs.shape, rhs.shape, _LAYOUT)
    )
    if plain:
        (dilation,) = tuple(rhs_dilation or (1,))
        return valid_conv1d(lhs, rhs, int(dilation))
    return lax.conv_general_dilated(
        lhs,
        rhs,
        window_strides,
        padding,
        lhs_dilation=lhs_dilation,
        rhs_dilation=rhs_dilation,
        dimension_numbers=dimension_numbers,
        feature_group_count=feature_group_count,
        precision=precision,
        **kwargs,
    )
