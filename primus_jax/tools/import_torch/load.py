"""Reads a ``torch.save`` file without ever executing code from it.

``torch.load(weights_only=True)`` first; Lightning checkpoints that it refuses (pickled
``argparse.Namespace`` hyper-parameters, callback states) go through ``primus_jax.safe_pickle``
with PyTorch's own tensor-rebuilding allow-list: code-running modules are refused, every other
class becomes an inert stub.
"""

from __future__ import annotations

import os
import pickle
import types
import warnings
from typing import Any

from absl import logging

from primus_jax import cli_errors, safe_pickle

# Plain data constructors that protocol-2 pickles (torch.save's default) reference by name.
_SAFE_BUILTINS = ("set", "frozenset", "slice", "complex", "bytearray", "range")


class UnsafeCheckpointError(cli_errors.UserError, pickle.UnpicklingError):
    """The checkpoint's pickle references code that could run on load; it was not loaded."""


class UnreadableCheckpointError(cli_errors.UserError, pickle.UnpicklingError):
    """The file is not a readable ``torch.save`` file; the message names it."""


def torch_allowed_globals() -> dict[str, Any]:
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


class _CheckpointUnpickler(safe_pickle.RestrictedUnpickler):
    """Stubs unknown classes; refuses code-running modules with :class:`UnsafeCheckpointError`."""

    stubs = True

    def refusal(self, module: str, name: str) -> Exception:
        qual = f"{module}.{name}"
        return UnsafeCheckpointError(
            f"refusing to load: the checkpoint's pickle references {qual!r}, which could "
            "run code on load. Nothing from the file was executed. Only load checkpoints "
            "from sources you trust; re-save the weights with torch.save(model.state_dict())."
        )


def _pickle_module(allowed: dict[str, Any]):
    """What ``torch.load(pickle_module=...)`` needs: ``Unpickler``, ``load`` and a name."""
    unpickler = type("CheckpointUnpickler", (_CheckpointUnpickler,), {"allowed": allowed})
    return types.SimpleNamespace(
        Unpickler=unpickler,
        load=lambda file, **kwargs: unpickler(file, **kwargs).load(),
        __name__="primus_jax_restricted_pickle",
    )


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
      UnreadableCheckpointError: not a readable ``torch.save`` file (truncated, damaged, a
        plain pickle).
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
    with warnings.catch_warnings():
        # torch warns about pickle protocols other than 2; the restricted path handles them.
        warnings.filterwarnings("ignore", "Detected pickle protocol", UserWarning)
        return _load(torch, path)


def _load(torch, path: str) -> tuple[Any, str]:
    try:
        return torch.load(path, map_location="cpu", weights_only=True), "weights_only"
    except Exception as e:  # refused globals, or a damaged file: the fallback says which
        first = str(e).splitlines()[0] if str(e) else type(e).__name__
        logging.debug("weights_only load refused (%s); using the restricted unpickler", first)
    module = _pickle_module(torch_allowed_globals())
    try:
        obj = torch.load(path, map_location="cpu", weights_only=False, pickle_module=module)
    except UnsafeCheckpointError as e:
        raise UnsafeCheckpointError(f"{path}: {e}") from None
    except Exception as e:  # a stub where a tensor was expected, a truncated file, ...
        raise UnreadableCheckpointError(
            f"{path}: not a readable torch checkpoint ({type(e).__name__}: {e}). Files written "
            "by torch.save (zip or legacy format) are supported; plain pickles are not."
        ) from e
    return obj, "restricted_unpickler"
