"""Seeded file corruptions for the fuzz tests, and the one rule every fuzzed reader obeys.

A fuzz case takes a valid input file, damages it one way (``MUTATIONS``), and runs the reader
or builder on it. The reader must then either succeed with the damaged file skipped and
counted by reason, or raise an error whose message names the file; it must never crash with
an unnamed error or produce a window holding NaN/inf. ``check_outcome`` states that rule.
"""

from __future__ import annotations

import os
import pickle
from collections.abc import Callable

import numpy as np


def _truncate(data: bytes, rng) -> bytes:
    return data[: int(rng.integers(0, max(1, len(data))))]


def _random_bytes(data: bytes, rng) -> bytes:
    return rng.integers(0, 256, size=max(16, len(data) // 4), dtype=np.uint8).tobytes()


def _flip_bytes(data: bytes, rng) -> bytes:
    if not data:
        return b"\xff"
    buf = bytearray(data)
    for i in rng.integers(0, len(buf), size=max(1, len(buf) // 50)):
        buf[i] = int(rng.integers(0, 256))
    return bytes(buf)


def _empty(data: bytes, rng) -> bytes:
    return b""


def _utf16(data: bytes, rng) -> bytes:
    return data.decode("utf-8", errors="replace").encode("utf-16")


def _csv_rows(data: bytes) -> list[str]:
    return data.decode("utf-8", errors="replace").splitlines()


def _wrong_columns(data: bytes, rng) -> bytes:
    rows = _csv_rows(data)
    for i in rng.integers(0, max(1, len(rows)), size=max(1, len(rows) // 5)):
        if i < len(rows):
            cells = rows[i].split(",")
            rows[i] = ",".join(cells[: max(1, len(cells) - 1)] if rng.random() < 0.5 else cells * 2)
    return "\n".join(rows).encode()


def _nonfinite(data: bytes, rng) -> bytes:
    rows = _csv_rows(data)
    for i in rng.integers(1, max(2, len(rows)), size=max(1, len(rows) // 5)):
        if i < len(rows):
            cells = rows[i].split(",")
            j = int(rng.integers(0, len(cells)))
            cells[j] = str(rng.choice(["nan", "inf", "-inf", "NaN", ""]))
            rows[i] = ",".join(cells)
    return "\n".join(rows).encode()


def _wrong_columns_ws(data: bytes, rng) -> bytes:
    rows = _csv_rows(data)
    for i in rng.integers(0, max(1, len(rows)), size=max(1, len(rows) // 5)):
        if i < len(rows):
            cells = rows[i].split()
            rows[i] = " ".join(cells[: max(1, len(cells) - 1)] if rng.random() < 0.5 else cells * 2)
    return "\n".join(rows).encode()


def _nonfinite_ws(data: bytes, rng) -> bytes:
    rows = _csv_rows(data)
    for i in rng.integers(0, max(1, len(rows)), size=max(1, len(rows) // 5)):
        if i < len(rows) and rows[i].split():
            cells = rows[i].split()
            cells[int(rng.integers(0, len(cells)))] = str(rng.choice(["nan", "inf", "-inf", "NaN"]))
            rows[i] = " ".join(cells)
    return "\n".join(rows).encode()


#: name -> fn(data, rng) -> damaged bytes. The last two are meant for text/CSV files.
MUTATIONS: dict[str, Callable] = {
    "truncate": _truncate,
    "random_bytes": _random_bytes,
    "flip_bytes": _flip_bytes,
    "empty": _empty,
    "utf16": _utf16,
    "wrong_columns": _wrong_columns,
    "nonfinite": _nonfinite,
}
#: The same for whitespace-separated text (e.g. UCI HAPT RawData); ``corrupt_file`` takes both.
WS_MUTATIONS: dict[str, Callable] = {
    "wrong_columns_ws": _wrong_columns_ws,
    "nonfinite_ws": _nonfinite_ws,
}
WS_TEXT_MUTATIONS = ("truncate", "random_bytes", "flip_bytes", "empty", "utf16", *WS_MUTATIONS)
BINARY_MUTATIONS = ("truncate", "random_bytes", "flip_bytes", "empty")


def corrupt_file(path, mutation: str, seed: int) -> None:
    """Rewrites ``path`` in place with ``MUTATIONS[mutation]`` (or ``WS_MUTATIONS``; seeded)."""
    with open(path, "rb") as f:
        data = f.read()
    damaged = {**MUTATIONS, **WS_MUTATIONS}[mutation](data, np.random.default_rng(seed))
    with open(path, "wb") as f:
        f.write(damaged)


def cases(files: list[str], mutations, n: int, seed: int = 0) -> list[tuple[str, str, int]]:
    """``n`` seeded (file, mutation, case_seed) triples drawn from ``files`` x ``mutations``."""
    rng = np.random.default_rng(seed)
    mutations = list(mutations)
    return [
        (files[int(rng.integers(len(files)))], mutations[int(rng.integers(len(mutations)))], i)
        for i in range(n)
    ]


def check_outcome(run: Callable[[], object], damaged_path) -> tuple[str, object]:
    """Runs ``run()``; returns ("ok", result) or ("error", message).

    Fails the test if ``run`` raises an exception whose message does not name the damaged
    file (its basename is enough). Checking the result (skips counted, no NaN in windows) is
    the caller's part.
    """
    name = os.path.basename(os.fspath(damaged_path))
    try:
        return "ok", run()
    except Exception as e:  # the point is to classify every failure
        message = f"{type(e).__name__}: {e}"
        assert name in message, f"error does not name {name}: {message}"
        return "error", message


# --- .npz members: wrong dtype, shape or values (the archive itself stays valid) ----------


def _member_nonfinite(a: np.ndarray, rng) -> np.ndarray:
    if a.dtype.kind != "f" or a.size == 0:
        return np.full(a.shape or (1,), np.nan, np.float32)
    a = a.copy()
    a.flat[int(rng.integers(a.size))] = rng.choice([np.nan, np.inf, -np.inf])
    return a


def _member_shape(a: np.ndarray, rng) -> np.ndarray:
    choices = [
        lambda: a.reshape(-1),
        lambda: a[..., None],
        lambda: np.swapaxes(a, 0, -1) if a.ndim > 1 else a[:-1],
        lambda: a[: max(0, len(a) - int(rng.integers(1, 4)))] if a.ndim else a,
        lambda: np.asarray(a.flat[0]) if a.size else np.asarray(0),
        lambda: a[:0],
    ]
    return choices[int(rng.integers(len(choices)))]()


def _member_dtype(a: np.ndarray, rng) -> np.ndarray:
    choices = [
        lambda: a.astype(object),  # needs pickle to read: must be refused, by name
        lambda: a.astype(np.complex64) if a.dtype.kind in "fiu" else a.astype("S"),
        lambda: a.astype(bool) if a.dtype.kind in "fiub" else a.astype("S"),
        lambda: a.astype(np.float16) if a.dtype.kind in "fiu" else np.zeros(a.shape, np.int8),
        lambda: a.astype(str),
        lambda: np.full(a.shape, -7, np.int64),
    ]
    return choices[int(rng.integers(len(choices)))]()


#: name -> fn(array, rng) -> damaged array, for one member of an otherwise valid .npz.
NPZ_MEMBER_MUTATIONS: dict[str, Callable] = {
    "member_nonfinite": _member_nonfinite,
    "member_shape": _member_shape,
    "member_dtype": _member_dtype,
    "member_missing": None,  # the member is dropped (see corrupt_npz)
}


def corrupt_npz(path, mutation: str, seed: int, keys=None) -> str:
    """Rewrites one member of the ``.npz`` at ``path`` with ``NPZ_MEMBER_MUTATIONS[mutation]``
    (member drawn from ``keys``, default all); returns the member's name."""
    rng = np.random.default_rng(seed)
    with np.load(path, allow_pickle=False) as f:
        arrays = {k: f[k] for k in f.files}
    keys = sorted(keys or arrays)
    key = keys[int(rng.integers(len(keys)))]
    if mutation == "member_missing":
        del arrays[key]
    else:
        arrays[key] = NPZ_MEMBER_MUTATIONS[mutation](arrays[key], rng)
    with open(path, "wb") as f:  # a file object: np.savez would append ".npz" to a name
        np.savez(f, **arrays)
    return key


# --- pickles that would run code ----------------------------------------------------------


def _global(module: str, name: str, proto4: bool) -> bytes:
    if proto4:  # STACK_GLOBAL from two strings
        m, n = module.encode(), name.encode()
        return (
            pickle.SHORT_BINUNICODE
            + bytes([len(m)])
            + m
            + pickle.SHORT_BINUNICODE
            + bytes([len(n)])
            + n
            + pickle.STACK_GLOBAL
        )
    return pickle.GLOBAL + f"{module}\n{name}\n".encode()


def _str(text: str) -> bytes:
    b = text.encode()
    return pickle.BINUNICODE + len(b).to_bytes(4, "little") + b


def attack_calls(sentinel) -> list[tuple[str, str, str]]:
    """``(module, name, argument)``: calls that, if a pickle could make them, create
    ``sentinel`` (or run code that would)."""
    s = os.fspath(sentinel)
    cmd = f"touch {s}"
    code = f"open({s!r}, 'w').close()"
    return [
        ("os", "system", cmd),
        ("posix", "system", cmd),
        ("subprocess", "getoutput", cmd),
        ("builtins", "exec", code),
        ("builtins", "eval", f"__import__('os').system({cmd!r})"),
        ("__builtin__", "eval", f"__import__('os').system({cmd!r})"),
        ("pathlib", "Path.touch", s),
        ("numpy", "save", s),
        ("shutil", "rmtree", s),
        ("torch", "load", s),
    ]


def attack_pickle(sentinel, seed: int) -> bytes:
    """A pickle that calls one of :func:`attack_calls` with GLOBAL/STACK_GLOBAL + REDUCE (or
    INST/OBJ/NEWOBJ/BUILD), possibly buried in containers and random valid data; loading it
    with plain ``pickle.loads`` would create ``sentinel``."""
    rng = np.random.default_rng(seed)
    calls = attack_calls(sentinel)
    module, name, arg = calls[int(rng.integers(len(calls)))]
    proto4 = bool(rng.integers(2))
    way = int(rng.integers(4))
    if way == 0:  # f(arg) by REDUCE
        call = _global(module, name, proto4) + _str(arg) + pickle.TUPLE1 + pickle.REDUCE
    elif way == 1:  # INST module\nname\n with a MARKed argument list (protocol 0)
        call = pickle.MARK + _str(arg) + pickle.INST + f"{module}\n{name}\n".encode()
    elif way == 2:  # OBJ: MARK callable args OBJ
        call = pickle.MARK + _global(module, name, proto4) + _str(arg) + pickle.OBJ
    else:  # BUILD on a reduced object: the call happens in REDUCE, BUILD then sets state
        call = (
            _global(module, name, proto4)
            + _str(arg)
            + pickle.TUPLE1
            + pickle.REDUCE
            + pickle.EMPTY_DICT
            + pickle.BUILD
        )
    # Bury the call: {"state_dict": {"w": <call>}} or [1, <call>] or bare.
    wrap = int(rng.integers(3))
    if wrap == 0:
        call = (
            pickle.EMPTY_DICT
            + _str("state_dict")
            + pickle.EMPTY_DICT
            + _str("w")
            + call
            + pickle.SETITEM
            + pickle.SETITEM
        )
    elif wrap == 1:
        call = pickle.EMPTY_LIST + pickle.MARK + pickle.BININT1 + b"\x01" + call + pickle.APPENDS
    return pickle.PROTO + bytes([4 if proto4 else 2]) + call + pickle.STOP


def random_pickle(sentinel, seed: int, length: int = 24) -> bytes:
    """A random opcode soup (mostly invalid) that includes code-running globals and REDUCEs:
    a reader must refuse it with a message, never run it and never crash unnamed."""
    rng = np.random.default_rng(seed)
    calls = attack_calls(sentinel)
    pieces = [
        pickle.MARK,
        pickle.EMPTY_DICT,
        pickle.EMPTY_LIST,
        pickle.EMPTY_TUPLE,
        pickle.NONE,
        pickle.BININT1 + bytes([int(rng.integers(256))]),
        _str("x"),
        pickle.TUPLE,
        pickle.TUPLE1,
        pickle.TUPLE2,
        pickle.SETITEM,
        pickle.SETITEMS,
        pickle.APPENDS,
        pickle.REDUCE,
        pickle.BUILD,
        pickle.POP,
        pickle.DUP,
        pickle.BINPUT + b"\x00",
        pickle.BINGET + b"\x00",
        pickle.NEWOBJ,
    ]
    body = b""
    for _ in range(length):
        if rng.random() < 0.25:
            module, name, arg = calls[int(rng.integers(len(calls)))]
            body += _global(module, name, bool(rng.integers(2))) + _str(arg)
        else:
            body += pieces[int(rng.integers(len(pieces)))]
    return pickle.PROTO + b"\x04" + body + pickle.STOP


def replace_zip_member(src, dst, suffix: str, data: bytes) -> None:
    """Copies the zip ``src`` to ``dst`` with every member whose name ends in ``suffix``
    replaced by ``data`` (e.g. a torch checkpoint's ``data.pkl`` by :func:`attack_pickle`)."""
    import zipfile

    with zipfile.ZipFile(src) as zin, zipfile.ZipFile(dst, "w", zipfile.ZIP_STORED) as zout:
        for item in zin.infolist():
            zout.writestr(item, data if item.filename.endswith(suffix) else zin.read(item))
