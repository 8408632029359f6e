"""The reference <-> primus_jax key table, and the shapes each side stores.

Two accepted layouts (relative to the encoder prefix): the reference
``MW2StackRNNPoolingMultihead`` names (``backbone`` is an ``nn.Sequential`` of GroupNorm, three
conv ``Block``\\ s whose conv is ``net.0``, GroupNorm and GRU) and flat names (``norm_in.*``,
``conv1.weight``, ``gru.*_l0``, ...). The two ``InfoNCE`` temperatures are raw learnable ``τ``.
"""

from __future__ import annotations

import numpy as np

# (primus_jax param path, reference key, flat key, conversion). Conversions: "copy",
# "transpose" (2-D, torch stores (out, in)), "conv" (torch (out, in, k) -> flax (k, in, out)).
KEY_TABLE: tuple[tuple[tuple[str, str], str, str, str], ...] = (
    (("norm_in", "scale"), "backbone.0.weight", "norm_in.weight", "copy"),
    (("norm_in", "bias"), "backbone.0.bias", "norm_in.bias", "copy"),
    (("conv1", "kernel"), "backbone.1.net.0.weight", "conv1.weight", "conv"),
    (("conv2", "kernel"), "backbone.2.net.0.weight", "conv2.weight", "conv"),
    (("conv3", "kernel"), "backbone.3.net.0.weight", "conv3.weight", "conv"),
    (("norm_out", "scale"), "backbone.4.weight", "norm_out.weight", "copy"),
    (("norm_out", "bias"), "backbone.4.bias", "norm_out.bias", "copy"),
    (("gru", "w_ih"), "backbone.5.weight_ih_l0", "gru.weight_ih_l0", "transpose"),
    (("gru", "w_hh"), "backbone.5.weight_hh_l0", "gru.weight_hh_l0", "transpose"),
    (("gru", "b_ih"), "backbone.5.bias_ih_l0", "gru.bias_ih_l0", "copy"),
    (("gru", "b_hh"), "backbone.5.bias_hh_l0", "gru.bias_hh_l0", "copy"),
    (("ssl_head", "kernel"), "ssl_head.weight", "ssl_head.weight", "transpose"),
    (("ssl_head", "bias"), "ssl_head.bias", "ssl_head.bias", "copy"),
    (("mmcl_head", "kernel"), "mmcl_head.weight", "mmcl_head.weight", "transpose"),
    (("mmcl_head", "bias"), "mmcl_head.bias", "mmcl_head.bias", "copy"),
)
LAYOUTS = {"reference": 1, "flat": 2}  # column of KEY_TABLE holding that layout's names
# The GRU input weight exists in every layout and nowhere in CLIP: it locates the encoder.
ANCHOR = ("gru", "w_ih")
TEMPERATURE_KEYS = {"log_tau_mm": "mmcl_loss.temperature", "log_tau_ss": "ssl_loss.temperature"}
TEMPERATURE_MODES = ("auto", "checkpoint", "config")


def row(path: tuple[str, str]) -> tuple:
    """The ``KEY_TABLE`` row of a primus_jax parameter path."""
    return next(r for r in KEY_TABLE if r[0] == path)


def to_ours(name: str, v: np.ndarray, how: str) -> np.ndarray:
    """A torch tensor's values in our layout (``how`` is the table's conversion)."""
    if how == "conv":
        if v.ndim != 3:
            raise ValueError(f"{name}: expected a 3-D conv weight (out, in, k), got {v.shape}")
        return np.transpose(v, (2, 1, 0))
    if how == "transpose":
        if v.ndim != 2:
            raise ValueError(f"{name}: expected a 2-D weight (out, in), got {v.shape}")
        return v.T
    return v


def to_torch(a: np.ndarray, how: str) -> np.ndarray:
    """The inverse of :func:`to_ours`: our array in the torch layout (both maps are
    involutions: a 2-D transpose, and reversing a conv kernel's three axes)."""
    if how == "conv":
        return np.ascontiguousarray(np.transpose(a, (2, 1, 0)))
    if how == "transpose":
        return np.ascontiguousarray(a.T)
    return np.ascontiguousarray(a)


def torch_shape(a: np.ndarray, how: str) -> tuple:
    """The torch shape of an array already converted to our layout."""
    if how == "conv":
        return tuple(np.transpose(a, (2, 1, 0)).shape)
    if how == "transpose":
        return tuple(a.T.shape)
    return tuple(a.shape)


def expected_shapes(dims: dict, gru_over: str) -> dict:
    """Parameter shapes of PrimusEncoder with ``dims``, by abstract evaluation (no FLOPs)."""
    import jax

    from primus_jax.models import build

    tree = build.abstract_params(build.encoder_from_config({"gru_over": gru_over, **dims}))
    return jax.tree.map(lambda a: tuple(a.shape), tree)
