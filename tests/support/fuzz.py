"""Seeded file corruptions for the fuzz tests, and the one rule every fuzzed reader obeys.

A fuzz case takes a valid input file, damages it one way (``MUTATIONS``), and runs the reader
or builder on it. The reader must then either succeed with the damaged file skipped and
counted by reason, or raise an error whose message names the file; it must never crash with
an unnamed error or produce a window holding NaN/inf. ``check_outcome`` states that rule.
"""

from __future__ import annotations

import os
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
BINARY_MUTATIONS = ("truncate", "random_bytes", "flip_bytes", "empty")


def corrupt_file(path, mutation: str, seed: int) -> None:
    """Rewrites ``path`` in place with ``MUTATIONS[mutation]`` (seeded)."""
    with open(path, "rb") as f:
        data = f.read()
    damaged = MUTATIONS[mutation](data, np.random.default_rng(seed))
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
