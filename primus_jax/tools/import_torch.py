"""Imports the official PRIMUS PyTorch checkpoint into a primus_jax checkpoint.

    python -m primus_jax.tools.import_torch --checkpoint primus.ckpt --workdir runs/primus_torch \\
        [--config configs/primus.py] [--config.loss.tau_init=0.1 ...] [--prefix imu_encoder.]

Input: the PyTorch Lightning ``.ckpt`` of the reference (``state_dict`` holds the IMU encoder
under ``imu_encoder.``, the two InfoNCE temperatures, and the frozen CLIP4Clip weights), or a
bare ``state_dict`` of the encoder with or without that prefix.

Output: ``<workdir>/checkpoints/0/{state,data,meta}``, a full ``primus_jax.state.TrainState``
at step 0 (fresh optimizer state, queue and RNG; the imported encoder parameters;
the temperatures ``log τ`` from the checkpoint's raw ``τ``, else ``config.loss.tau_init``),
with the config in ``meta``. Hence:

* evaluation: ``checkpointing.load_encoder_params(workdir)`` or
  ``primus_jax.load_encoder(workdir)``;
* fine-tuning: ``python -m primus_jax.main --config <same config and overrides> --workdir
  <workdir>`` resumes from step 0 (the tool prints the exact command; the widths inferred from
  the checkpoint must be passed as overrides when they differ from the config's).

Safety: the file is never allowed to run code. ``torch.load(weights_only=True)`` is tried
first; Lightning checkpoints that it refuses (pickled ``argparse.Namespace`` hyper-parameters,
callback states, ...) are read with a restricted unpickler that resolves only PyTorch's own
tensor-rebuilding allowlist and plain containers, refuses references to code-running modules
(``os``, ``subprocess``, ``builtins.eval``, ...) and replaces every other class by an inert stub
that records its arguments and is never called. No module named by the file is imported.

Key mapping (relative to the encoder prefix), two accepted layouts; ``KEY_TABLE`` is the
source of truth. Conv kernels go ``(out, in, k) -> (k, in, out)``, GRU and linear weights are
transposed, the rest is copied:

* reference ``MW2StackRNNPoolingMultihead``: ``backbone.0.{weight,bias}`` (GroupNorm(2, 6)) ->
  ``norm_in/{scale,bias}``; ``backbone.{1,2,3}.net.0.weight`` -> ``conv{1,2,3}/kernel``;
  ``backbone.4.{weight,bias}`` -> ``norm_out``; ``backbone.5.{weight_ih_l0, weight_hh_l0,
  bias_ih_l0, bias_hh_l0}`` -> ``gru/{w_ih, w_hh, b_ih, b_hh}``; ``{ssl,mmcl}_head.{weight,
  bias}`` -> ``{ssl,mmcl}_head/{kernel,bias}``.
* flat (the names of ``shared/bench/torch_reference_step.py``): ``norm_in.*``,
  ``conv{1,2,3}.weight``, ``norm_out.*``, ``gru.*_l0``, and the same head names.

The reference names come from ``lib/imu_models.py`` (``backbone`` is an ``nn.Sequential`` of
GroupNorm, three ``Block``\\ s whose conv is ``net.0``, GroupNorm and GRU). Temperatures:
``mmcl_loss.temperature`` -> ``log_tau_mm``, ``ssl_loss.temperature`` -> ``log_tau_ss``
(``lib/train_modules.py``: two ``InfoNCE`` modules with a raw learnable ``τ``).
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import math
import os
import pickle
import sys
from collections.abc import Mapping
from typing import Any, ClassVar

import numpy as np
from absl import logging

# ----------------------------------------------------------------------------- key table

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
_ANCHOR = ("gru", "w_ih")
TEMPERATURE_KEYS = {"log_tau_mm": "mmcl_loss.temperature", "log_tau_ss": "ssl_loss.temperature"}
TEMPERATURE_MODES = ("auto", "checkpoint", "config")


class CheckpointImportError(ValueError):
    """The PyTorch checkpoint cannot be mapped onto the encoder (message lists every key)."""


class UnsafeCheckpointError(pickle.UnpicklingError):
    """The checkpoint's pickle references code that could run on load; it was not loaded."""


# ----------------------------------------------------------------------------- safe loading

# Modules whose globals run code or touch the system when called. A reference to them in a
# checkpoint is an attack or a mistake, so loading stops with an error (a stub would also be
# inert; the error just says so plainly).
_REFUSED_MODULES = frozenset(
    {
        "os",
        "posix",
        "nt",
        "subprocess",
        "sys",
        "shutil",
        "socket",
        "importlib",
        "runpy",
        "pty",
        "code",
        "codeop",
        "webbrowser",
        "ctypes",
        "multiprocessing",
        "pickle",
        "_pickle",
        "marshal",
        "builtins",
        "__builtin__",
        "operator",
        "functools",
        "torch.hub",
    }
)
# Plain data constructors that protocol-2 pickles (torch.save's default) reference by name.
_SAFE_BUILTINS = ("set", "frozenset", "slice", "complex", "bytearray", "range")


class _Stub:
    """Inert stand-in for a class or function the file names (never resolved or called)."""

    _qualname = "?"

    def __new__(cls, *args, **kwargs):
        obj = object.__new__(cls)
        object.__setattr__(obj, "_stub_args", args)
        object.__setattr__(obj, "_stub_kwargs", kwargs)
        object.__setattr__(obj, "_stub_state", None)
        object.__setattr__(obj, "_stub_items", {})
        object.__setattr__(obj, "_stub_list", [])
        return obj

    def __init__(self, *args, **kwargs):
        del args, kwargs

    def __setstate__(self, state):  # pickle BUILD
        object.__setattr__(self, "_stub_state", state)

    def __setitem__(self, key, value):  # pickle SETITEMS on dict subclasses
        self._stub_items[key] = value

    def append(self, value):  # pickle APPENDS on list subclasses
        self._stub_list.append(value)

    def extend(self, values):
        self._stub_list.extend(values)

    def __repr__(self) -> str:
        return f"<stub {self._qualname}>"


def _stub_class(module: str, name: str) -> type:
    qual = f"{module}.{name}"
    return type(name, (_Stub,), {"__module__": "primus_jax.tools.import_torch", "_qualname": qual})


def _torch_allowed_globals() -> dict[str, Any]:
    """PyTorch's own weights-only allowlist (tensor/storage rebuilders, dtypes, containers)."""
    try:
        from torch import _weights_only_unpickler

        allowed = dict(_weights_only_unpickler._get_allowed_globals())
    except (ImportError, AttributeError):  # private API moved: fall back to the essentials
        import collections

        import torch

        allowed = {
            "collections.OrderedDict": collections.OrderedDict,
            "torch._utils._rebuild_tensor_v2": torch._utils._rebuild_tensor_v2,
            "torch._utils._rebuild_parameter": torch._utils._rebuild_parameter,
            "torch.Size": torch.Size,
        }
        for dt in ("float32", "float64", "float16", "bfloat16", "int64", "int32", "bool"):
            allowed[f"torch.{dt}"] = getattr(torch, dt)
    import builtins

    for name in _SAFE_BUILTINS:
        allowed[f"builtins.{name}"] = getattr(builtins, name)
    return allowed


class _RestrictedUnpickler(pickle.Unpickler):
    """Resolves only allowlisted globals; refuses code-running ones; stubs the rest."""

    _allowed: ClassVar[dict[str, Any]] = {}

    def find_class(self, module: str, name: str):
        qual = f"{module}.{name}"
        if qual in self._allowed:
            return self._allowed[qual]
        if module in _REFUSED_MODULES or module.split(".")[0] in _REFUSED_MODULES:
            raise UnsafeCheckpointError(
                f"refusing to load: the checkpoint's pickle references {qual!r}, which could "
                "run code on load. Nothing from the file was executed. Only load checkpoints "
                "from sources you trust; re-save the weights with torch.save(model.state_dict())."
            )
        # Never import `module`: importing alone can run code. An inert stub keeps the
        # surrounding structure (Lightning's hyper_parameters, callback states) loadable.
        return _stub_class(module, name)


class _RestrictedPickleModule:
    """What ``torch.load(pickle_module=...)`` needs: ``Unpickler`` and ``load``."""

    Unpickler = _RestrictedUnpickler
    __name__ = "primus_jax_restricted_pickle"

    @staticmethod
    def load(file, **kwargs):
        return _RestrictedUnpickler(file, **kwargs).load()


def load_torch_file(path: str | os.PathLike) -> tuple[Any, str]:
    """Loads a ``torch.save`` file without ever executing code from it.

    Args:
      path: a ``.ckpt`` / ``.pt`` / ``.pth`` file (zip or legacy torch format).

    Returns:
      ``(obj, loader)``: the loaded object (tensors are real ``torch.Tensor``\\ s; classes
      outside PyTorch's allowlist become inert stubs) and ``"weights_only"`` or
      ``"restricted_unpickler"``.

    Raises:
      UnsafeCheckpointError: the pickle references code-running globals (``os.system``,
        ``builtins.eval``, ...).
      ImportError: torch is not installed.
    """
    try:
        import torch
    except ImportError as e:
        raise ImportError(
            "importing a PyTorch checkpoint needs torch: pip install 'primus_jax[torch]' "
            "(torch==2.13.0, the CPU wheel)"
        ) from e
    path = os.fspath(path)
    if not os.path.isfile(path):
        raise FileNotFoundError(f"PyTorch checkpoint {path!r} does not exist")
    try:
        return torch.load(path, map_location="cpu", weights_only=True), "weights_only"
    except pickle.UnpicklingError as e:
        first = str(e).splitlines()[0] if str(e) else type(e).__name__
        logging.info("weights_only load refused (%s); using the restricted unpickler", first)
    _RestrictedUnpickler._allowed = _torch_allowed_globals()
    try:
        obj = torch.load(
            path, map_location="cpu", weights_only=False, pickle_module=_RestrictedPickleModule
        )
    except UnsafeCheckpointError:
        raise
    except Exception as e:  # a stub where a tensor was expected, a truncated file, ...
        raise pickle.UnpicklingError(
            f"{path}: not a readable torch checkpoint ({type(e).__name__}: {e}). Files written "
            "by torch.save (zip or legacy format) are supported; plain pickles are not."
        ) from e
    return obj, "restricted_unpickler"


# ----------------------------------------------------------------------------- mapping


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
        f"the file holds a {getattr(obj, '_qualname', type(obj).__name__)}, not a state_dict or "
        "a Lightning checkpoint dict; save the weights with torch.save(model.state_dict())"
    )


def _is_tensor(v) -> bool:
    return type(v).__module__.startswith("torch") and hasattr(v, "detach")


def _to_numpy(v) -> np.ndarray:
    import torch

    return v.detach().cpu().to(dtype=torch.float32).numpy().copy()


def _find_encoders(state_dict: Mapping, prefix: str | None) -> list[tuple[str, str]]:
    """All ``(layout, prefix)`` pairs whose GRU input weight is a key of ``state_dict``."""
    anchor_row = next(r for r in KEY_TABLE if r[0] == _ANCHOR)
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


def _convert(name: str, v: np.ndarray, how: str) -> np.ndarray:
    if how == "conv":
        if v.ndim != 3:
            raise ValueError(f"{name}: expected a 3-D conv weight (out, in, k), got {v.shape}")
        return np.transpose(v, (2, 1, 0))
    if how == "transpose":
        if v.ndim != 2:
            raise ValueError(f"{name}: expected a 2-D weight (out, in), got {v.shape}")
        return v.T
    return v


def _expected_shapes(dims: dict, gru_over: str) -> dict:
    """Parameter shapes of PrimusEncoder with ``dims``, by abstract evaluation (no FLOPs)."""
    import jax

    from primus_jax.models import build

    tree = build.abstract_params(build.encoder_from_config({"gru_over": gru_over, **dims}))
    return jax.tree.map(lambda a: tuple(a.shape), tree)


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
        sample = [k for k in list(state_dict)[:8]]
        hint = ""
        if any(isinstance(k, str) and k.endswith("net.5.weight_ih_l0") for k in state_dict):
            hint = (
                " It looks like MW2StackRNNPooling (backbone only, key 'net.*', no ssl/mmcl "
                "heads); PRIMUS checkpoints use MW2StackRNNPoolingMultihead."
            )
        want = " or ".join(
            repr((prefix or "") + next(r for r in KEY_TABLE if r[0] == _ANCHOR)[c])
            for c in LAYOUTS.values()
        )
        raise CheckpointImportError(
            f"no PRIMUS IMU encoder in the state_dict: expected a key like {want}"
            f"{' with prefix ' + repr(prefix) if prefix else ' (any prefix)'}; "
            f"its {len(state_dict)} keys start with {sample}.{hint}"
        )
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
            arrays[path] = np.ascontiguousarray(_convert(key, a, how))
        except ValueError as e:
            problems.append(str(e))

    # Widths from the tensors themselves (reference: 512 everywhere, 32 conv channels).
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

    expected = _expected_shapes(dims, gru_over)
    for path, a in arrays.items():
        want = expected[path[0]][path[1]]
        if a.shape != want:
            row = next(r for r in KEY_TABLE if r[0] == path)
            problems.append(
                f"{prefix + row[col]!r}: shape {tuple(a.shape)} after conversion "
                f"(torch {tuple(_torch_shape(a, row[3]))}), expected {want} for {'/'.join(path)}"
            )
    if problems:
        raise CheckpointImportError(
            f"cannot import the encoder ({layout} layout, prefix {prefix!r}); "
            f"{len(problems)} problem(s):\n  " + "\n  ".join(problems)
        )

    params: dict = {}
    for (mod, name), a in arrays.items():
        params.setdefault(mod, {})[name] = a.astype(np.float32)

    temps = {}
    for ours, key in TEMPERATURE_KEYS.items():
        hits = [k for k in state_dict if isinstance(k, str) and k.endswith(key)]
        hits = [k for k in hits if k == key or k[-len(key) - 1] == "."]
        if len(hits) == 1 and _is_tensor(state_dict[hits[0]]):
            t = _to_numpy(state_dict[hits[0]]).reshape(-1)
            if t.size == 1:
                temps[ours] = float(t[0])
                used.append(hits[0])
    ignored = [k for k in state_dict if k not in set(used)]
    return ConvertedEncoder(params, dims, layout, prefix, temps, used, ignored)


def _torch_shape(a: np.ndarray, how: str) -> tuple:
    if how == "conv":
        return tuple(np.transpose(a, (2, 1, 0)).shape)
    if how == "transpose":
        return tuple(a.T.shape)
    return tuple(a.shape)


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
    if mode not in TEMPERATURE_MODES:
        raise ValueError(f"temperatures must be one of {TEMPERATURE_MODES}, got {mode!r}")
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


# ----------------------------------------------------------------------------- writing


def _sha256(path: str) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def _existing_checkpoints(workdir: str) -> list[str]:
    d = os.path.join(workdir, "checkpoints")
    if not os.path.isdir(d):
        return []
    return sorted(n for n in os.listdir(d) if n.isdigit())


def import_checkpoint(
    checkpoint: str | os.PathLike,
    workdir: str | os.PathLike,
    config=None,
    *,
    prefix: str | None = None,
    temperatures: str = "auto",
) -> dict:
    """Converts a PyTorch PRIMUS checkpoint into ``<workdir>/checkpoints/0``.

    Args:
      checkpoint: the Lightning ``.ckpt`` or a ``torch.save``\\ d state_dict.
      workdir: output run directory; must not hold checkpoints yet.
      config: an ``ml_collections.ConfigDict`` (default ``config.base_config()``). Its model
        widths are replaced by those of the checkpoint; the rest (optimizer, queue, loss)
        shapes the fresh training state for fine-tuning.
      prefix: the encoder's key prefix (default: found automatically).
      temperatures: ``"auto"``, ``"checkpoint"`` or ``"config"`` (see
        :func:`log_temperatures`).

    Returns:
      A JSON-able summary (also stored in the checkpoint's ``meta["imported_from"]``).
    """
    import jax

    from primus_jax import checkpointing
    from primus_jax import config as config_lib
    from primus_jax import state as state_lib
    from primus_jax.models import build

    checkpoint, workdir = os.fspath(checkpoint), os.fspath(workdir)
    existing = _existing_checkpoints(workdir)
    if existing:
        raise FileExistsError(
            f"{workdir} already holds checkpoints {existing}; import into a new workdir "
            "(training would resume from the latest of them, not from the import)"
        )
    if config is None:
        config = config_lib.base_config()
    else:
        config = config.copy_and_resolve_references()

    obj, loader = load_torch_file(checkpoint)
    state_dict, info = extract_state_dict(obj)
    conv = convert_state_dict(
        state_dict,
        prefix=prefix,
        gru_over=config.model.gru_over,
        default_dims={k: config.model[k] for k in ("hidden", "ssl_dim", "mm_dim")},
    )
    changed = {k: (config.model[k], v) for k, v in conv.dims.items() if config.model[k] != v}
    with config.unlocked():
        for k, v in conv.dims.items():
            config.model[k] = v
    log_taus = log_temperatures(conv.temperatures, temperatures, config.loss.tau_init)
    config_lib.validate(config, num_devices=jax.device_count(), process_count=1)

    model = build.encoder_from_config(config.model)
    tx = state_lib.make_optimizer(config)
    # Stored in the config's parameterisation: log τ, or τ itself with loss.temperature=raw.
    raw = config.loss.get("temperature", "log") == "raw"
    taus = {
        (k[len("log_") :] if raw else k): np.asarray(math.exp(v) if raw else v, np.float32)
        for k, v in log_taus.items()
    }
    fresh = jax.eval_shape(lambda: state_lib.create_train_state(config, model, tx))
    # Same encoder tree as the model's (guards against drift between KEY_TABLE and the model).
    if jax.tree.structure(conv.params) != jax.tree.structure(fresh.params["encoder"]):
        raise AssertionError("imported encoder tree differs from the model's")

    def build(encoder, taus):
        # A fresh state (queue, RNG, step 0, any extra heads of the objective) with the
        # imported encoder and temperatures and a matching fresh optimizer state; XLA drops
        # the unused random initialisation of the encoder.
        fresh = state_lib.create_train_state(config, model, tx)
        params = {**fresh.params, "encoder": encoder, **taus}
        return fresh.replace(params=params, opt_state=tx.init(params))

    state = jax.jit(build)(conv.params, taus)

    summary = {
        "path": os.path.abspath(checkpoint),
        "sha256": _sha256(checkpoint),
        "loader": loader,
        **info,
        "layout": conv.layout,
        "prefix": conv.prefix,
        "used_keys": len(conv.used_keys),
        "ignored_keys": len(conv.ignored_keys),
        "model_dims": conv.dims,
        "temperatures": {
            k: {
                "tau": math.exp(v),
                "source": "checkpoint"
                if k in conv.temperatures and temperatures != "config"
                else "config",
            }
            for k, v in log_taus.items()
        },
    }
    # No data position is stored: a step-0 checkpoint starts every input pipeline afresh
    # (train.py restores iterators only from later steps), so importing never needs the
    # training data to exist.
    data_iter = None
    os.makedirs(workdir, exist_ok=True)
    ckpt = checkpointing.Checkpointer(
        os.path.join(workdir, "checkpoints"),
        max_to_keep=config.train.keep_checkpoints,
        async_save=False,
    )
    meta = {"config": json.loads(config.to_json_best_effort()), "imported_from": summary}
    try:
        ckpt.save(0, state, data_iter, meta=meta, force=True)
    finally:
        ckpt.close()
    with open(os.path.join(workdir, "config.json"), "w") as f:
        f.write(config.to_json_best_effort(indent=2))

    logging.info(
        "imported %s (%s, %s layout, prefix %r): %d tensors used, %d unrelated keys ignored",
        checkpoint,
        loader,
        conv.layout,
        conv.prefix,
        len(conv.used_keys),
        len(conv.ignored_keys),
    )
    if changed:
        logging.info("model widths from the checkpoint differ from the config: %s", changed)
    summary["config_overrides"] = {f"model.{k}": new for k, (_, new) in changed.items()}
    return summary


# ----------------------------------------------------------------------------- CLI


def _main(argv) -> None:
    from absl import flags
    from ml_collections import config_flags

    if len(argv) > 1:
        raise SystemExit(f"unexpected arguments: {argv[1:]}")
    f = flags.FLAGS
    try:
        summary = import_checkpoint(
            f.checkpoint, f.workdir, f.config, prefix=f.prefix, temperatures=f.temperatures
        )
    except (CheckpointImportError, pickle.UnpicklingError, FileExistsError, OSError) as e:
        # Expected user errors: one readable line, no traceback.
        print(f"error: {e}", file=sys.stderr)
        sys.exit(2)
    print(json.dumps(summary, indent=2))
    cfg = "<config>"
    if f.config is not None:
        cfg = config_flags.get_config_filename(f["config"])
    overrides = "".join(f" --config.{k}={v}" for k, v in summary["config_overrides"].items())
    print(f"\nEvaluate:  primus_jax.load_encoder({f.workdir!r})")
    print(f"Fine-tune: python -m primus_jax.main --config={cfg}{overrides} --workdir={f.workdir}")


def run() -> None:
    from absl import app, flags
    from ml_collections import config_flags

    config_flags.DEFINE_config_file(
        "config", None, "Config file (default: config.base_config()).", lock_config=False
    )
    flags.DEFINE_string("checkpoint", None, "PyTorch Lightning .ckpt or torch state_dict file.")
    flags.DEFINE_string("workdir", None, "Output run directory (must hold no checkpoints).")
    flags.DEFINE_string("prefix", None, "Encoder key prefix (default: found automatically).")
    flags.DEFINE_enum(
        "temperatures",
        "auto",
        list(TEMPERATURE_MODES),
        "auto: the checkpoint's τ where present, else config.loss.tau_init.",
    )
    flags.mark_flags_as_required(["checkpoint", "workdir"])
    app.run(_main)


if __name__ == "__main__":
    run()
