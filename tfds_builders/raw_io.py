"""Small readers for raw sensor files (CSV with a header row, npz), with file-named errors."""

from __future__ import annotations

import io
import warnings
from collections.abc import Sequence
from typing import IO

import numpy as np


class MalformedFileError(ValueError):
    """A raw file that cannot be read as documented; the message names the file."""


def read_csv_columns(
    f: IO, columns: Sequence[str], *, name: str, aliases: dict[str, Sequence[str]] | None = None
) -> dict[str, np.ndarray]:
    """Reads named numeric columns of a comma-separated file with a header row.

    Header names are matched case-insensitively, ignoring spaces and quotes. Fields that are
    empty or not numbers become NaN (callers drop such rows and count them via
    ``signal.clean_timestamps``), so one bad row does not cost the recording.

    Args:
        f: Text or binary file object positioned at the header.
        columns: Wanted column names.
        name: File name for error messages.
        aliases: Optional ``{column: [other accepted header names]}``.

    Returns:
        ``{column: (N,) float64}``.

    Raises:
        MalformedFileError: If the header lacks a wanted column or the file has no header.
    """
    if not isinstance(f, io.TextIOBase):
        f = io.TextIOWrapper(f, encoding="utf-8", errors="replace")
    header = f.readline()
    if not header.strip():
        raise MalformedFileError(f"{name}: empty file")
    names = [h.strip().strip("\"'").lower() for h in header.strip().split(",")]
    idx = []
    for col in columns:
        accepted = [col, *((aliases or {}).get(col, ()))]
        found = [names.index(a.lower()) for a in accepted if a.lower() in names]
        if not found:
            raise MalformedFileError(f"{name}: no column {col!r} in header {names}")
        idx.append(found[0])
    body = f.read()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # "Empty input file" / "some errors were detected"
        try:
            data = np.loadtxt(io.StringIO(body), delimiter=",", usecols=idx, ndmin=2)
        except ValueError:
            data = _parse_lenient(body, idx)
    data = np.asarray(data, dtype=np.float64).reshape(-1, len(idx))
    return {col: data[:, i] for i, col in enumerate(columns)}


def _parse_lenient(body: str, idx: list[int]) -> np.ndarray:
    """Slow path: every non-blank line becomes a row; unparsable or missing fields are NaN."""
    rows = []
    for line in body.splitlines():
        if not line.strip():
            continue
        fields = line.split(",")
        row = []
        for i in idx:
            try:
                row.append(float(fields[i]))
            except (IndexError, ValueError):
                row.append(np.nan)
        rows.append(row)
    return np.array(rows, dtype=np.float64).reshape(-1, len(idx))


def load_npz(f: IO, keys: Sequence[str], *, name: str) -> dict[str, np.ndarray]:
    """Loads arrays from an ``.npz`` file object without pickle support.

    Raises:
        MalformedFileError: If the file is not a readable npz or lacks a key.
    """
    try:
        with np.load(f, allow_pickle=False) as z:
            missing = [k for k in keys if k not in z.files]
            if missing:
                raise MalformedFileError(f"{name}: missing arrays {missing} (has {z.files})")
            return {k: np.asarray(z[k]) for k in keys}
    except Exception as e:  # zipfile alone raises BadZipFile, NotImplementedError, zlib.error...
        if isinstance(e, MalformedFileError):
            raise
        raise MalformedFileError(f"{name}: not a readable npz ({e})") from e
