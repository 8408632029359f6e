"""The one way to build the encoder: from a config's ``model`` block or from parameters."""

from __future__ import annotations

from collections.abc import Mapping

import jax
import jax.numpy as jnp

from primus_jax import contract
from primus_jax.models.encoder import PrimusEncoder

MODEL_FIELDS = ("hidden", "ssl_dim", "mm_dim", "conv_channels", "pool_bins", "gru_over")


def _dtype(name):
    if name is None or name == "float32":
        return None
    return jnp.dtype(name)


def encoder_from_config(model: Mapping, *, compute_dtype=None) -> PrimusEncoder:
    """The encoder a config's ``model`` block describes (``compute_dtype`` overrides its
    ``compute_dtype``; evaluation passes ``"float32"``)."""
    kwargs = {k: model[k] for k in MODEL_FIELDS if k in model}
    dtype = compute_dtype if compute_dtype is not None else model.get("compute_dtype")
    return PrimusEncoder(compute_dtype=_dtype(dtype), **kwargs)


def encoder_from_params(
    params: Mapping, model: Mapping | None = None, *, compute_dtype=None
) -> PrimusEncoder:
    """The encoder ``params`` belong to: widths from the parameter shapes; ``gru_over`` (not
    visible in the shapes) from ``model`` when given, else the reference's ``"channels"``."""
    kwargs = {k: model[k] for k in MODEL_FIELDS if k in (model or {})}
    try:
        kwargs.update(
            hidden=int(params["gru"]["w_hh"].shape[0]),
            ssl_dim=int(params["ssl_head"]["kernel"].shape[1]),
            mm_dim=int(params["mmcl_head"]["kernel"].shape[1]),
            conv_channels=int(params["conv1"]["kernel"].shape[2]),
        )
        if kwargs.get("gru_over", "channels") == "channels":
            kwargs["pool_bins"] = int(params["gru"]["w_ih"].shape[0])  # features = time bins
    except (KeyError, TypeError, AttributeError, IndexError) as e:
        raise ValueError(f"params are not PrimusEncoder parameters (missing {e})") from None
    return PrimusEncoder(compute_dtype=_dtype(compute_dtype), **kwargs)


def init_params(model: PrimusEncoder, key) -> dict:
    """Fresh parameters of ``model`` (PyTorch's default initialisation)."""
    dummy = jnp.zeros((1, *contract.SHAPE), jnp.float32)
    return model.init(key, dummy)["params"]


def abstract_params(model: PrimusEncoder) -> dict:
    """Shapes and dtypes of ``model``'s parameters, without computing them."""
    return jax.eval_shape(lambda: init_params(model, jax.random.key(0)))
