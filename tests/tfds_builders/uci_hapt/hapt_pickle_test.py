"""The restricted unpickler refuses anything outside its whitelist, before running it."""

import io
import os
import pickle

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
