"""A restricted unpickler: it resolves only an explicit allow-list of globals, never runs code.

Unpickling untrusted bytes can call any importable function (``os.system``, ``builtins.eval``).
Here ``find_class`` returns only what the caller allows; any other global is refused, or, for a
subclass that sets ``stubs = True``, replaced by an inert :class:`Stub` class that records what
unpickling hands it and is never called. Modules that run code are refused even then, and no
module named by the pickle is ever imported. Used by the PyTorch checkpoint import and the UCI
HAPT pickle reader, each with its own allow-list.
"""

from __future__ import annotations

import hashlib
import pickle
from collections.abc import Mapping
from typing import Any, ClassVar

# Modules whose globals run code or touch the system when called. A reference to one is an
# attack or a mistake, so loading stops (a stub would be inert too; the error says so plainly).
CODE_MODULES = frozenset(
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


class Stub:
    """Inert stand-in for a class or function the pickle names (never resolved or called)."""

    qualname: ClassVar[str] = "?"

    def __new__(cls, *args, **kwargs):
        obj = object.__new__(cls)
        object.__setattr__(obj, "stub_args", args)
        object.__setattr__(obj, "stub_kwargs", kwargs)
        object.__setattr__(obj, "state", None)
        object.__setattr__(obj, "stub_items", {})
        object.__setattr__(obj, "stub_list", [])
        return obj

    def __init__(self, *args, **kwargs):
        del args, kwargs

    def __setstate__(self, state):  # pickle BUILD
        object.__setattr__(self, "state", state)

    def __setitem__(self, key, value):  # pickle SETITEMS on dict subclasses
        self.stub_items[key] = value

    def append(self, value):  # pickle APPENDS on list subclasses
        self.stub_list.append(value)

    def extend(self, values):
        self.stub_list.extend(values)

    def __repr__(self) -> str:
        return f"<stub {self.qualname}>"


def stub_class(module: str, name: str) -> type[Stub]:
    """A new :class:`Stub` subclass standing for ``module.name``."""
    return type(name, (Stub,), {"__module__": __name__, "qualname": f"{module}.{name}"})


def reconstruct_stub(cls, base, state):
    """``copyreg._reconstructor`` restricted to creating :class:`Stub` instances."""
    if not (isinstance(cls, type) and issubclass(cls, Stub)) or base is not object:
        raise pickle.UnpicklingError(f"refusing to reconstruct {cls!r} from {base!r}")
    if state is not None:
        raise pickle.UnpicklingError("refusing a base-class state in _reconstructor")
    return cls.__new__(cls)


def is_code_module(module: str, refused: frozenset[str] = CODE_MODULES) -> bool:
    """Whether ``module`` or its top-level package is one of ``refused``."""
    return module in refused or module.split(".")[0] in refused


class RestrictedUnpickler(pickle.Unpickler):
    """Resolves only ``allowed`` globals (``"module.name"`` -> object); see the module doc.

    Configured by subclassing (``torch.load`` constructs its unpickler class itself):
    ``allowed``, ``stubs`` (stub unknown globals instead of refusing them) and ``refusal``
    (the exception to raise, so each caller names its file).
    """

    allowed: ClassVar[Mapping[str, Any]] = {}
    stubs: ClassVar[bool] = False
    refused_modules: ClassVar[frozenset[str]] = CODE_MODULES

    def find_class(self, module: str, name: str):
        qual = f"{module}.{name}"
        if qual in self.allowed:
            return self.allowed[qual]
        if self.stubs and not is_code_module(module, self.refused_modules):
            # Never import `module`: importing alone can run code. An inert stub keeps the
            # surrounding structure loadable.
            return stub_class(module, name)
        raise self.refusal(module, name)

    def refusal(self, module: str, name: str) -> Exception:
        return pickle.UnpicklingError(f"global {module}.{name} is not allowed")


def sha256_of(path) -> str:
    """Hex sha256 of a file's bytes (to record or verify exactly what was unpickled)."""
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()
