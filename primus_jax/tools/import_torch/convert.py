"""A PyTorch state_dict -> the encoder's parameter tree and the temperatures ``log τ``.

Conv kernels go ``(out, in, k) -> (k, in, out)``, GRU and linear weights are transposed, the
rest is copied (``keys.KEY_TABLE``). Widths are read from the tensors; every missing,
mis-shaped or non-finite tensor is listed in one error.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Mapping
from typing import Any

import numpy as np

from primus_jax import cli_errors
from primus_jax.tools.import_torch import keys
from primus_jax.tools.import_torch.keys import KEY_TABLE, LAYOUTS, TEMPERATURE_KEYS


class CheckpointImportError(cli_errors.UserError, ValueError):
    """The PyTorch checkpoint cannot be mapped onto the encoder (message lists every key)."""


@dataclasses.dataclass
class ConvertedEncoder:
    """The encoder's parameters found in a PyTorch state_dict.

    Attributes:
      params: the linen ``params`` tree of :class:`~primus_jax.models.encoder.PrimusEncoder`
        as float32 numpy arrays.
      dims: widths inferred from the tensors (``hidden``, ``ssl_dim``, ``mm_dim``,
        ``conv_channels``, ``pool_bins``).
      layout: ``"reference"`` or ``"flat"`` key names.
      prefix: the prefix stripped from the keys (``"imu_encoder."`` in Lightning files).
      temperatures: raw ``τ`` values found (``{"log_tau_mm": τ, ...}``; only those present).
      used_keys: state_dict keys that were used.
      ignored_keys: the other keys (CLIP weights, ...).
    """

    params: dict
    dims: dict
    layout: str
    prefix: str
    temperatures: dict
    used_keys: list
    ignored_keys: list


def extract_state_dict(obj: Any) -> tuple[Mapping, dict]:
    """Finds the state_dict in a loaded file: Lightning's ``state_dict`` entry or the object.

    Returns:
      ``(state_dict, info)`` where ``info`` has ``format`` and, for Lightning, ``epoch`` and
      ``global_step`` when present.
    """
    if isinstance(obj, Mapping) and isinstance(obj.get("state_dict"), Mapping):
        info = {"format": "lightning"}
        for k in ("epoch", "global_step", "pytorch-lightning_version"):
            v = obj.get(k)
            if isinstance(v, int | float | str) and not isinstance(v, bool):
                info[k] = v
        return obj["state_dict"], info
    if isinstance(obj, Mapping):
        return obj, {"format": "state_dict"}
    raise CheckpointImportError(
        f"the file holds a {getattr(obj, 'qualname', type(obj).__name__)}, not a state_dict or "
        "a Lightning checkpoint dict; save the weights with torch.save(model.state_dict())"
    )


def _is_tensor(v) -> bool:
    """A torch tensor, or a numpy array (a safetensors folder read without torch)."""
    if isinstance(v, np.ndarray):
        return True
    return type(v).__module__.startswith("torch") and hasattr(v, "detach")


def _to_numpy(v) -> np.ndarray:
    if isinstance(v, np.ndarray):
        return v.astype(np.float32, copy=True)
    import torch

    return v.detach().cpu().to(dtype=torch.float32).numpy().copy()


def _find_encoders(state_dict: Mapping, prefix: str | None) -> list[tuple[str, str]]:
    """All ``(layout, prefix)`` pairs whose GRU input weight is a key of ``state_dict``."""
    anchor_row = keys.row(keys.ANCHOR)
    found = []
    for layout, col in LAYOUTS.items():
        suffix = anchor_row[col]
        for key in state_dict:
            if not isinstance(key, str) or not key.endswith(suffix):
                continue
            p = key[: -len(suffix)]
            if p and not p.endswith("."):
                continue
            if prefix is None or p == prefix:
                found.append((layout, p))
    return found


def _no_encoder_error(state_dict: Mapping, prefix: str | None) -> CheckpointImportError:
    sample = list(state_dict)[:8]
    hint = ""
    if any(isinstance(k, str) and k.endswith("net.5.weight_ih_l0") for k in state_dict):
        hint = (
            " It looks like MW2StackRNNPooling (backbone only, key 'net.*', no ssl/mmcl "
            "heads); PRIMUS checkpoints use MW2StackRNNPoolingMultihead."
        )
    want = " or ".join(repr((prefix or "") + keys.row(keys.ANCHOR)[c]) for c in LAYOUTS.values())
    return CheckpointImportError(
        f"no PRIMUS IMU encoder in the state_dict: expected a key like {want}"
        f"{' with prefix ' + repr(prefix) if prefix else ' (any prefix)'}; "
        f"its {len(state_dict)} keys start with {sample}.{hint}"
    )


def _infer_dims(arrays: dict, gru_over: str, default_dims: Mapping | None) -> dict:
    """Widths from the tensors themselves (reference: 512 everywhere, 32 conv channels)."""
    dims = dict(default_dims or {})
    if ("gru", "w_hh") in arrays:
        dims["hidden"] = int(arrays[("gru", "w_hh")].shape[0])
    for head, dim in (("ssl_head", "ssl_dim"), ("mmcl_head", "mm_dim")):
        if (head, "kernel") in arrays:
            dims[dim] = int(arrays[(head, "kernel")].shape[1])
    if ("conv1", "kernel") in arrays:
        dims["conv_channels"] = int(arrays[("conv1", "kernel")].shape[2])
    if gru_over == "channels" and ("gru", "w_ih") in arrays:
        dims["pool_bins"] = int(arrays[("gru", "w_ih")].shape[0])  # features = time bins
    for k, v in (("hidden", 512), ("ssl_dim", 512), ("mm_dim", 512)):
        dims.setdefault(k, v)
    dims.setdefault("conv_channels", 32)
    dims.setdefault("pool_bins", 32)
    return dims


def _temperatures(state_dict: Mapping) -> tuple[dict, list]:
    """Raw ``τ`` values found (by key suffix) and the keys they came from."""
    temps, used = {}, []
    for ours, key in TEMPERATURE_KEYS.items():
        hits = [k for k in state_dict if isinstance(k, str) and k.endswith(key)]
        hits = [k for k in hits if k == key or k[-len(key) - 1] == "."]
        if len(hits) == 1 and _is_tensor(state_dict[hits[0]]):
            t = _to_numpy(state_dict[hits[0]]).reshape(-1)
            if t.size == 1:
                temps[ours] = float(t[0])
                used.append(hits[0])
    return temps, used


def convert_state_dict(
    state_dict: Mapping,
    *,
    prefix: str | None = None,
    gru_over: str = "channels",
    default_dims: Mapping | None = None,
) -> ConvertedEncoder:
    """Maps a PyTorch state_dict onto the encoder's parameter tree.

    Args:
      state_dict: keys -> tensors (a Lightning ``state_dict`` or a bare encoder one).
      prefix: the encoder's key prefix; ``None`` finds it (``""``, ``"imu_encoder."``, ...).
      gru_over: the encoder's GRU orientation (``"channels"`` for the reference).
      default_dims: widths to use where the checkpoint lacks the tensor to infer them from.

    Returns:
      The converted parameters and what was found.

    Raises:
      CheckpointImportError: no encoder, several candidate encoders, or missing / mis-shaped /
        non-finite tensors (all of them listed in one message).
    """
    found = _find_encoders(state_dict, prefix)
    if not found:
        raise _no_encoder_error(state_dict, prefix)
    if len(found) > 1:
        raise CheckpointImportError(
            f"several encoders in the state_dict ({', '.join(repr(p) for _, p in found)}); "
            "pick one with --prefix"
        )
    layout, prefix = found[0]
    col = LAYOUTS[layout]

    arrays, problems, used = {}, [], []
    for path, *names, how in KEY_TABLE:
        key = prefix + names[col - 1]
        if key not in state_dict:
            problems.append(f"missing {key!r} (-> {'/'.join(path)})")
            continue
        v = state_dict[key]
        if not _is_tensor(v):
            problems.append(f"{key!r} is a {type(v).__name__}, not a tensor")
            continue
        used.append(key)
        a = _to_numpy(v)
        if not np.isfinite(a).all():
            problems.append(f"{key!r} has {int((~np.isfinite(a)).sum())} non-finite values")
        try:
            arrays[path] = np.ascontiguousarray(keys.to_ours(key, a, how))
        except ValueError as e:
            problems.append(str(e))

    dims = _infer_dims(arrays, gru_over, default_dims)
    expected = keys.expected_shapes(dims, gru_over)
    for path, a in arrays.items():
        want = expected[path[0]][path[1]]
        if a.shape != want:
            r = keys.row(path)
            problems.append(
                f"{prefix + r[col]!r}: shape {tuple(a.shape)} after conversion "
                f"(torch {keys.torch_shape(a, r[3])}), expected {want} for {'/'.join(path)}"
            )
    if problems:
        raise CheckpointImportError(
            f"cannot import the encoder ({layout} layout, prefix {prefix!r}); "
            f"{len(problems)} problem(s):\n  " + "\n  ".join(problems)
        )

    params: dict = {}
    for (mod, name), a in arrays.items():
        params.setdefault(mod, {})[name] = a.astype(np.float32)
    temps, temp_keys = _temperatures(state_dict)
    used += temp_keys
    ignored = [k for k in state_dict if k not in set(used)]
    return ConvertedEncoder(params, dims, layout, prefix, temps, used, ignored)


def log_temperatures(temps: Mapping, mode: str, tau_init: float) -> dict:
    """``{"log_tau_mm", "log_tau_ss"}`` as ``log τ``, from the checkpoint or the config.

    Args:
      temps: raw ``τ`` values found in the checkpoint.
      mode: ``"auto"`` (checkpoint where present, else config), ``"checkpoint"`` (both must be
        present) or ``"config"`` (ignore the checkpoint's).
      tau_init: the config's initial ``τ``.

    Raises:
      CheckpointImportError: a checkpoint ``τ`` is not finite or not positive (the reference
        does not clamp ``τ``; ``log τ`` needs ``τ > 0``), or ``mode="checkpoint"`` and one is
        missing.
    """
    if mode not in keys.TEMPERATURE_MODES:
        raise ValueError(f"temperatures must be one of {keys.TEMPERATURE_MODES}, got {mode!r}")
    out = {}
    for ours, key in TEMPERATURE_KEYS.items():
        tau = temps.get(ours) if mode != "config" else None
        if tau is None:
            if mode == "checkpoint":
                raise CheckpointImportError(f"temperature {key!r} not in the checkpoint")
            tau = tau_init
        elif not (math.isfinite(tau) and tau > 0):
            raise CheckpointImportError(
                f"temperature {key!r} = {tau!r} is not a positive number: the reference learns "
                "a raw τ without clamping, and primus_jax stores log τ, which needs τ > 0. "
                "Use --temperatures=config to start from config.loss.tau_init instead."
            )
        out[ours] = math.log(tau)
    return out
