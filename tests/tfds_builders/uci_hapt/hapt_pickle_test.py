"""The restricted unpickler refuses anything outside its whitelist, before running it."""

import collections
import copyreg
import gzip
import io
import os
import pickle
import types
from typing import ClassVar

import numpy as np
import pytest

from tfds_builders.uci_hapt import hapt_pickle


class _RunsShell:
    def __init__(self, marker):
        self.marker = marker

    def __reduce__(self):
        return (os.system, (f"touch {self.marker}",))


class _Evals:
    def __reduce__(self):
        return (eval, ("1 + 1",))


def _load(obj, protocol=2):
    return hapt_pickle.load(io.BytesIO(pickle.dumps(obj, protocol=protocol)))


@pytest.mark.parametrize("protocol", [2, 4])
def test_os_system_refused_without_running(tmp_path, protocol):
    marker = tmp_path / "pwned"
    with pytest.raises(pickle.UnpicklingError, match=r"(posix|os)\.system is not allowed"):
        _load({1: [_RunsShell(marker)]}, protocol)
    assert not marker.exists()


def test_eval_refused():
    with pytest.raises(
        pickle.UnpicklingError, match=r"(__builtin__|builtins)\.eval is not allowed"
    ):
        _load(_Evals())


def test_unlisted_pandas_and_numpy_globals_refused():
    # A hand-written protocol-2 pickle: GLOBAL 'pandas.io.pickle read_pickle', then STOP.
    for module, name in [("pandas.io.pickle", "read_pickle"), ("numpy", "load")]:
        payload = b"\x80\x02c" + f"{module}\n{name}\n".encode() + b"."
        with pytest.raises(pickle.UnpicklingError, match="is not allowed"):
            hapt_pickle.load(io.BytesIO(payload))


def test_reconstructor_only_builds_stubs():
    # copy_reg._reconstructor(__builtin__.object, __builtin__.object, None): a real class.
    payload = (
        b"\x80\x02ccopy_reg\n_reconstructor\nc__builtin__\nobject\nc__builtin__\nobject\nN\x87R."
    )
    with pytest.raises(pickle.UnpicklingError, match="refusing to reconstruct"):
        hapt_pickle.load(io.BytesIO(payload))


def test_wrong_top_level_type_rejected():
    with pytest.raises(ValueError, match="expected"):
        _load([1, 2, 3])


# --- A small pickle in the package's layout, and the fuzz test on it -----------------------


class _Frame:
    """Pickles as ``copy_reg._reconstructor(<pandas class>, object, None)`` + BUILD, as
    pandas 1.0 did (the name is set by ``_Pickler``)."""

    def __init__(self, state):
        self.state = state

    def __reduce__(self):
        return (copyreg._reconstructor, (type(self), object, None), self.state)


class _Manager(_Frame):
    pass


class _Index:
    pass


def _new_index(cls, d):
    del cls, d


class _IndexData:
    def __init__(self, values):
        self.values = values

    def __reduce__(self):
        return (_new_index, (_Index, {"data": self.values}))


_NP_CORE = getattr(np, "_core", None) or np.core
_AS = {  # our stand-ins -> the globals the package's file names
    _Frame: "pandas.core.frame\nDataFrame",
    _Manager: "pandas.core.internals.managers\nBlockManager",
    _Index: "pandas.core.indexes.base\nIndex",
    _new_index: "pandas.core.indexes.base\n_new_Index",
    _NP_CORE.multiarray._reconstruct: "numpy.core.multiarray\n_reconstruct",
    np.ndarray: "numpy\nndarray",
    np.dtype: "numpy\ndtype",
}


class _Pickler(pickle._Pickler):
    dispatch: ClassVar[dict] = dict(pickle._Pickler.dispatch)
    dispatch[types.FunctionType] = lambda self, obj: self.save_global(obj)
    dispatch[types.BuiltinFunctionType] = lambda self, obj: self.save_global(obj)

    def save_global(self, obj, name=None):
        if obj in _AS:
            self.write(pickle.GLOBAL + _AS[obj].encode() + b"\n")
            self.memoize(obj)
        else:
            super().save_global(obj, name)


def _frame(rng, n, activity, nonfinite=False):
    """One experiment: still (1 g on z) with ``activity`` in the middle, -1 elsewhere."""
    acc = np.c_[rng.normal(0, 0.01, (n, 2)), 1 + rng.normal(0, 0.01, n)]
    if nonfinite:
        acc[rng.integers(0, n, 3), rng.integers(0, 3, 3)] = [np.nan, np.inf, -np.inf]
    label = np.full(n, -1.0)
    label[50 : n - 50] = activity
    values = np.vstack([acc.T, rng.normal(0, 0.01, (3, n)), label[None]])
    names = ["acc-x", "acc-y", "acc-z", "gyro-x", "gyro-y", "gyro-z", "label"]
    layout = {
        "axes": [_IndexData(names), _IndexData(list(range(n)))],
        "blocks": [{"mgr_locs": slice(0, 7, 1), "values": values}],
    }
    return _Frame({"_data": _Manager((None, None, None, {"0.14.1": layout}))})


def small_hapt_pickle(seed: int = 0, nonfinite: bool = False) -> bytes:
    """The package's layout (protocol 2, pandas-1.0 BlockManager) for users 1 (train) and 2
    (test), a few hundred rows each; ``nonfinite``: NaN/inf samples in one recording."""
    rng = np.random.default_rng(seed)
    buf = io.BytesIO()
    frames = [_frame(rng, 600, 4, nonfinite), _frame(rng, 500, 5)]
    _Pickler(buf, protocol=2).dump({1: [_frame(rng, 700, 5)], 2: frames})
    return buf.getvalue()


def test_small_pickle_reads_like_the_package_file():
    exps = hapt_pickle.load(io.BytesIO(small_hapt_pickle()))
    assert [(e.recording, e.acc_g.shape[0]) for e in exps] == [
        ("user01_session1", 700),
        ("user02_session1", 600),
        ("user02_session2", 500),
    ]
    assert exps[1].labels[100] == 4 and exps[1].labels[0] == -1
    np.testing.assert_allclose(exps[0].acc_g[:, 2].mean(), 1.0, atol=0.01)


def test_fuzzed_pickles_never_run_code_and_fail_naming_the_file(tmp_path, monkeypatch):
    """The package path of the builder on damaged .pkl.gz files (gzip damage, damaged pickle
    bytes, NaN values, pickles that would run code): a build with no NaN window, or an error
    naming the file; the sentinel a code-running pickle would create never appears."""
    from support import fuzz

    from tfds_builders import testing_utils
    from tfds_builders.uci_hapt import uci_hapt_dataset_builder as hapt

    sentinel = tmp_path / "PWNED"
    good = small_hapt_pickle()
    kinds = ["gz_" + m for m in fuzz.BINARY_MUTATIONS]
    kinds += ["pickle_truncate", "pickle_flip_bytes", "nonfinite", "attack", "random"]
    outcomes = collections.Counter()
    for i, (_, kind, seed) in enumerate(fuzz.cases(["HAPT.pkl.gz"], kinds, 24, seed=4)):
        path = tmp_path / f"case{i}.pkl.gz"
        if kind == "attack":
            raw = fuzz.attack_pickle(sentinel, seed)
        elif kind == "random":
            raw = fuzz.random_pickle(sentinel, seed)
        elif kind == "nonfinite":
            raw = small_hapt_pickle(seed, nonfinite=True)
        elif kind.startswith("pickle_"):
            raw = fuzz.MUTATIONS[kind[len("pickle_") :]](good, np.random.default_rng(seed))
        else:
            raw = good
        path.write_bytes(gzip.compress(raw, mtime=0))
        if kind.startswith("gz_"):
            fuzz.corrupt_file(path, kind[3:], seed)
        monkeypatch.setattr(hapt_pickle, "package_pickle_path", lambda p=path: str(p))
        result, builder = fuzz.check_outcome(
            lambda i=i: testing_utils.build(hapt.Builder, tmp_path / f"d{i}"), path
        )
        outcomes[result, kind] += 1
        assert not sentinel.exists(), (kind, seed)
        if kind == "attack":
            assert result == "error"
        if result == "ok":
            for split in builder.info.splits:
                for ex in testing_utils.read_split(builder, split):
                    assert np.isfinite(ex["imu"]).all(), (kind, seed, ex["id"])
    assert outcomes["ok", "nonfinite"] + outcomes["error", "nonfinite"] > 0, outcomes
    assert sum(n for (r, _), n in outcomes.items() if r == "error") >= 12, outcomes
