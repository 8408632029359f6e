"""Readers for the files of a recordings folder: sensor tables (CSV, Parquet, NPZ), timestamped
narrations and labels (CSV), per-window video embeddings (NPZ).

Every failure is a ``raw_io.MalformedFileError`` whose message names the file, so the builder
can skip and count it. Numeric CSVs go through ``raw_io.read_csv_columns`` (unparsable fields
become NaN and are dropped, counted, by ``signal.clean_timestamps``).
"""

from __future__ import annotations

import csv
import io
import math
import re
import zipfile
import zlib
from collections.abc import Sequence

import numpy as np

from tfds_builders import raw_io

# What numpy, pyarrow and zipfile raise on damaged files (a truncated npz is a BadZipFile, a
# flipped byte in it a zlib error or a bad CRC; a corrupt parquet header may ask for huge sizes).
_READ_ERRORS = (
    OSError,
    ValueError,
    TypeError,
    KeyError,
    IndexError,
    EOFError,
    zipfile.BadZipFile,
    zlib.error,
    MemoryError,
)
_INDEXED = re.compile(r"^(.+)\[(\d+)\]$")  # "imu[3]": column 3 of a 2-D npz array


def read_columns(path: str, fmt: str, columns: Sequence[str]) -> dict[str, np.ndarray]:
    """``{column: (N,) float64}`` of a CSV (header row), Parquet or NPZ file.

    NPZ columns are 1-D arrays by name, or ``name[j]`` for column ``j`` of a 2-D array.

    Raises:
        raw_io.MalformedFileError: Unreadable file, a missing column, unequal lengths.
    """
    try:
        if fmt == "csv":
            with open(path, "rb") as f:
                cols = raw_io.read_csv_columns(f, columns, name=path)
        elif fmt == "parquet":
            cols = _parquet(path, columns)
        else:
            cols = _npz(path, columns)
    except raw_io.MalformedFileError:
        raise
    except _READ_ERRORS as e:
        raise raw_io.MalformedFileError(
            f"{path}: unreadable {fmt} ({type(e).__name__}: {e})"
        ) from None
    lengths = {c: v.shape for c, v in cols.items()}
    if len(set(lengths.values())) != 1 or any(len(s) != 1 for s in lengths.values()):
        raise raw_io.MalformedFileError(f"{path}: columns of unequal shapes {lengths}")
    return cols


def _parquet(path: str, columns: Sequence[str]) -> dict[str, np.ndarray]:
    import pyarrow as pa
    import pyarrow.parquet as pq

    try:
        names = pq.read_schema(path).names
        missing = [c for c in columns if c not in names]
        if missing:
            raise raw_io.MalformedFileError(f"{path}: no column(s) {missing} in {names}")
        table = pq.read_table(path, columns=list(dict.fromkeys(columns)))
        return {
            c: table.column(c).cast(pa.float64()).to_numpy(zero_copy_only=False).astype(float)
            for c in columns
        }
    except pa.ArrowException as e:
        raise raw_io.MalformedFileError(f"{path}: unreadable parquet ({e})") from None


def _npz(path: str, columns: Sequence[str]) -> dict[str, np.ndarray]:
    keys = []
    for c in columns:
        m = _INDEXED.match(c)
        keys.append(m.group(1) if m else c)
    with open(path, "rb") as f:
        arrays = raw_io.load_npz(f, list(dict.fromkeys(keys)), name=path)
    out = {}
    for c, k in zip(columns, keys):
        a = arrays[k]
        if not np.issubdtype(a.dtype, np.number):
            raise raw_io.MalformedFileError(f"{path}: array {k!r} is {a.dtype}, not numeric")
        m = _INDEXED.match(c)
        if m:
            j = int(m.group(2))
            if a.ndim != 2 or j >= a.shape[1]:
                raise raw_io.MalformedFileError(f"{path}: {c}: array {k!r} has shape {a.shape}")
            a = a[:, j]
        elif a.ndim != 1:
            raise raw_io.MalformedFileError(f"{path}: array {k!r} has shape {a.shape}, not (N,)")
        out[c] = np.asarray(a, dtype=np.float64)
    return out


def _csv_rows(path: str) -> tuple[list[str], list[list[str]]]:
    try:
        with open(path, encoding="utf-8", newline="") as f:
            text = f.read()
    except (OSError, UnicodeDecodeError) as e:
        raise raw_io.MalformedFileError(f"{path}: not a UTF-8 text file ({e})") from None
    if "\x00" in text:
        raise raw_io.MalformedFileError(f"{path}: not a UTF-8 text file (NUL bytes)")
    try:
        rows = [
            r for r in csv.reader(io.StringIO(text.lstrip("\ufeff"))) if any(c.strip() for c in r)
        ]
    except csv.Error as e:
        raise raw_io.MalformedFileError(f"{path}: not a CSV file ({e})") from None
    if not rows:
        raise raw_io.MalformedFileError(f"{path}: empty file")
    return [h.strip().lower() for h in rows[0]], rows[1:]


def _time(value: str) -> float:
    t = float(value)
    if not math.isfinite(t):
        raise ValueError(value)
    return t


def read_narrations(path: str) -> tuple[list[tuple[float, str]], int]:
    """``([(time_s, sentence)], n_bad_rows)`` from a CSV with ``time_s,text`` or
    ``start_s,end_s,text`` (an interval's narration is placed at its midpoint)."""
    header, rows = _csv_rows(path)
    if "text" not in header or not ("time_s" in header or {"start_s", "end_s"} <= set(header)):
        raise raw_io.MalformedFileError(
            f"{path}: header {header} needs text and time_s (or start_s and end_s)"
        )
    it = header.index("text")
    out, bad = [], 0
    for row in rows:
        try:
            text = " ".join(row[it].split())
            if "time_s" in header:
                t = _time(row[header.index("time_s")])
            else:
                s, e = _time(row[header.index("start_s")]), _time(row[header.index("end_s")])
                if e < s:
                    raise ValueError("end before start")
                t = (s + e) / 2
            if not text:
                raise ValueError("empty text")
        except (IndexError, ValueError):
            bad += 1
            continue
        out.append((t, text))
    return out, bad


def read_labels(path: str) -> tuple[list[tuple[float, float, str]], int]:
    """``([(start_s, end_s, class_name)], n_bad_rows)`` from a ``start_s,end_s,label`` CSV."""
    header, rows = _csv_rows(path)
    if not {"start_s", "end_s", "label"} <= set(header):
        raise raw_io.MalformedFileError(f"{path}: header {header} needs start_s,end_s,label")
    i_s, i_e, i_l = (header.index(k) for k in ("start_s", "end_s", "label"))
    out, bad = [], 0
    for row in rows:
        try:
            s, e, name = _time(row[i_s]), _time(row[i_e]), row[i_l].strip()
            if e <= s or not name:
                raise ValueError(row)
        except (IndexError, ValueError):
            bad += 1
            continue
        out.append((s, e, name))
    return out, bad


def read_video_embeddings(path: str) -> tuple[dict[int, np.ndarray], int]:
    """``({window start in ms: unit vector}, n_bad_rows)`` from an NPZ with ``start_s (K,)`` and
    ``emb (K, D)``. Rows are L2-normalised here; non-finite or zero rows are dropped."""
    try:
        with open(path, "rb") as f:
            a = raw_io.load_npz(f, ("start_s", "emb"), name=path)
    except raw_io.MalformedFileError:
        raise
    except _READ_ERRORS as e:
        raise raw_io.MalformedFileError(
            f"{path}: unreadable npz ({type(e).__name__}: {e})"
        ) from None
    start, emb = a["start_s"], a["emb"]
    if (
        start.ndim != 1
        or emb.ndim != 2
        or emb.shape[0] != start.shape[0]
        or emb.shape[1] == 0
        or not np.issubdtype(emb.dtype, np.number)
        or not np.issubdtype(start.dtype, np.number)
    ):
        raise raw_io.MalformedFileError(f"{path}: start_s {start.shape}, emb {emb.shape}")
    emb = emb.astype(np.float64)
    out, bad = {}, 0
    for s, e in zip(start.astype(np.float64), emb):
        norm = np.linalg.norm(e)
        if not (math.isfinite(s) and s >= 0 and np.isfinite(e).all() and norm > 0):
            bad += 1
            continue
        out[round(s * 1000)] = (e / norm).astype(np.float32)
    return out, bad
