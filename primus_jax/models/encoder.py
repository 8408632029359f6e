"""The PRIMUS IMU encoder (IMU2CLIP's ``MW2StackRNNPoolingMultihead``) in Flax linen.

``imu (B, 250, 6)`` channels-last (the window contract, ``primus_jax.contract``) ->
``{"emb": GRU final state, "ssl": head, "mmcl": head}``, each ``(B, D)`` float32. Layers as
the reference (docs/training.md has the table): GroupNorm -> three dilated convs with max /
adaptive-average pooling -> GroupNorm -> GRU(32 -> 512) -> two linear heads; no activations;
1,376,204 parameters with PyTorch's two GRU bias vectors and default initialisation, so the
released checkpoint loads one-to-one. ``gru_over="channels"`` (default) reproduces the
reference's GRU stepping over the 32 conv channels; ``"time"`` steps over the time bins.
"""

from __future__ import annotations

import math

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np

from primus_jax.models import conv
from primus_jax.models.gru import data_parallel_gru

GRU_ORIENTATIONS = ("channels", "time")


def torch_uniform(fan_in: int):
    """PyTorch's default init for conv/linear weights and biases: U(-1/sqrt(fan_in), +...)."""
    bound = 1.0 / math.sqrt(fan_in)

    def init(key, shape, dtype=jnp.float32):
        return jax.random.uniform(key, shape, dtype, -bound, bound)

    return init


def max_pool_first(x, k: int):
    """``torch.nn.MaxPool1d(k)`` over the time axis of ``x (B, T, C)``: stride ``k``, floor
    (the tail is dropped), no padding; the gradient goes to the *first* maximal element of each
    window, as PyTorch's (exact ties are real: a held or zero-padded stretch is constant).

    Why not ``nn.max_pool``: its gradient is a select-and-scatter, which XLA:CPU expands into a
    scatter with int32 index arrays (3 x 15 MB at batch 256) and a zero-filled buffer, ~25 ms
    of a CPU step. Windows that do not overlap need none of it: a reshape, the first argmax and
    a mask (docs/benchmarks.md).
    """
    b, t, c = x.shape
    n = t // k
    windows = x[:, : n * k].reshape(b, n, k, c)
    first = jnp.argmax(windows, axis=2)  # first occurrence, NaN counts as the max
    mask = jax.lax.stop_gradient(jnp.arange(k)[:, None] == first[:, :, None, :])
    return jnp.sum(jnp.where(mask, windows, jnp.zeros((), x.dtype)), axis=2)


def adaptive_avg_pool_matrix(length_in: int, length_out: int) -> np.ndarray:
    """(L_in, L_out) matrix reproducing ``torch.nn.AdaptiveAvgPool1d`` binning.

    Output bin ``i`` averages input positions ``[floor(i*L_in/L_out), ceil((i+1)*L_in/L_out))``.
    When ``L_out > L_in`` this upsamples (15 -> 32 at 50 Hz in the reference).
    """
    m = np.zeros((length_in, length_out), np.float32)
    for i in range(length_out):
        start = (i * length_in) // length_out
        end = -((-(i + 1) * length_in) // length_out)  # ceil
        m[start:end, i] = 1.0 / (end - start)
    return m


class GroupNorm(nn.GroupNorm):
    """``nn.GroupNorm`` (same ``scale``, ``bias``) with PyTorch's eps, computed accurately.

    On a still window (group mean ~9.81/sqrt(3) m/s^2 per axis, spread ~0.015) Flax's default
    one-pass variance E[x^2] - E[x]^2 cancels (0.24 off after normalising), and even two-pass
    is 1e-4 off: the float32 mean's few-ulp error is divided by the tiny spread. Subtracting
    the group mean first (exact near the mean) lets the two-pass layer recover the residual
    mean, which tracks a float64 reference to ~1e-6. PyTorch's CPU kernel computes
    ``x * scale + (beta - mean * scale)``, where |x * scale| ~ 400, so there PyTorch itself is
    ~2e-5 from float64 (an ulp of 400); we follow float64 rather than that rounding.
    """

    epsilon: float = 1e-5
    use_fast_variance: bool = False

    def __call__(self, x):
        if self.num_groups is None or self.group_size is not None:
            raise ValueError("GroupNorm here takes num_groups (not group_size)")
        g = x.reshape(*x.shape[:-1], self.num_groups, x.shape[-1] // self.num_groups)
        axes = (*range(1, g.ndim - 2), g.ndim - 1)  # all but batch and group, as nn.GroupNorm
        centred = g - jnp.mean(g, axis=axes, keepdims=True)
        return super().__call__(centred.reshape(x.shape))


class TorchGRU(nn.Module):
    """Single-layer GRU with PyTorch's parameterisation; returns the final state."""

    hidden: int
    compute_dtype: jnp.dtype | None = None

    @nn.compact
    def __call__(self, x):
        """x: (S, B, I) sequence-major. Returns (B, hidden)."""
        feat = x.shape[-1]
        init = torch_uniform(self.hidden)
        w_ih = self.param("w_ih", init, (feat, 3 * self.hidden))
        w_hh = self.param("w_hh", init, (self.hidden, 3 * self.hidden))
        b_ih = self.param("b_ih", init, (3 * self.hidden,))
        b_hh = self.param("b_hh", init, (3 * self.hidden,))
        return data_parallel_gru(x, w_ih, w_hh, b_ih, b_hh, self.compute_dtype)


class TorchLinear(nn.Module):
    """``nn.Dense`` with PyTorch's default init; optional low-precision operands."""

    features: int
    compute_dtype: jnp.dtype | None = None

    @nn.compact
    def __call__(self, x):
        fan_in = x.shape[-1]
        kernel = self.param("kernel", torch_uniform(fan_in), (fan_in, self.features))
        bias = self.param("bias", torch_uniform(fan_in), (self.features,))
        if self.compute_dtype is None:
            y = x @ kernel
        else:
            y = jnp.matmul(
                x.astype(self.compute_dtype),
                kernel.astype(self.compute_dtype),
                preferred_element_type=jnp.float32,
            )
        return y + bias


class PrimusEncoder(nn.Module):
    """IMU encoder with ``ssl`` and ``mmcl`` heads. See the module docstring for layouts.

    Attributes:
      hidden: GRU hidden size (= ``emb`` width).
      ssl_dim: width of the self-supervised head.
      mm_dim: width of the multimodal head; must equal the stored video/text embedding width
        (512 for CLIP4Clip, 384 for all-MiniLM-L6-v2).
      conv_channels: channels of the three conv blocks.
      pool_bins: output length of the adaptive average pool (= GRU steps or features).
      gru_over: "channels" (reference) or "time".
      compute_dtype: None for float32, or jnp.bfloat16 for bf16 matmul operands in the GRU
        and heads (float32 parameters, accumulation, state and outputs).
    """

    hidden: int = 512
    ssl_dim: int = 512
    mm_dim: int = 512
    conv_channels: int = 32
    pool_bins: int = 32
    gru_over: str = "channels"
    compute_dtype: jnp.dtype | None = None

    @nn.compact
    def __call__(self, imu, *, return_intermediates: bool = False):
        if imu.ndim != 3:
            raise ValueError(f"imu must be (B, T, C); got shape {imu.shape}")
        if self.gru_over not in GRU_ORIENTATIONS:
            raise ValueError(f"gru_over must be one of {GRU_ORIENTATIONS}, got {self.gru_over!r}")
        inter = {}
        x = imu.astype(jnp.promote_types(imu.dtype, jnp.float32))
        x = GroupNorm(num_groups=2, name="norm_in")(x)
        inter["norm_in"] = x
        c = self.conv_channels
        in_ch = x.shape[-1]
        for i, (k, ch_in) in enumerate(((10, in_ch), (5, c), (5, c)), start=1):
            x = nn.Conv(
                c,
                kernel_size=(k,),
                kernel_dilation=(2,),
                padding="VALID",
                use_bias=False,
                kernel_init=torch_uniform(ch_in * k),
                # conv1's input gradient (6 input channels) as one GEMM (models/conv.py).
                conv_general_dilated=conv.conv_general_dilated if i == 1 else None,
                name=f"conv{i}",
            )(x)
            inter[f"conv{i}"] = x
            if i < 3:
                x = max_pool_first(x, 3)
            else:
                pool = jnp.asarray(adaptive_avg_pool_matrix(x.shape[1], self.pool_bins))
                x = jnp.einsum("btc,to->boc", x, pool)
            inter[f"pool{i}"] = x
        x = GroupNorm(num_groups=4, name="norm_out")(x)
        inter["norm_out"] = x
        # x: (B, bins, C). Reference: sequence = channels, features = time bins.
        seq = jnp.transpose(x, (2, 0, 1) if self.gru_over == "channels" else (1, 0, 2))
        emb = TorchGRU(self.hidden, self.compute_dtype, name="gru")(seq)
        out = {
            "emb": emb,
            "ssl": TorchLinear(self.ssl_dim, self.compute_dtype, name="ssl_head")(emb),
            "mmcl": TorchLinear(self.mm_dim, self.compute_dtype, name="mmcl_head")(emb),
        }
        if return_intermediates:
            return out, inter
        return out


def count_params(params) -> int:
    return int(sum(np.prod(p.shape) for p in jax.tree.leaves(params)))
