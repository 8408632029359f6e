"""The take's time origin from the capture's ``timesync.csv`` (the documented alignment).

Ego-Exo4D docs, "Takes" / "Take-Timing Information" (docs.ego-exo4d-data.org/data/takes,
source EGO4D/Ego-Exo4D-docs ``docs/data/takes.md``) and the gaze tutorial
(facebookresearch/Ego4d ``notebooks/egoexo/tutorials/gaze_tutorial.ipynb``): the take's
frames are rows ``timesync_start_idx + 1`` ... of ``captures/<capture_name>/timesync.csv``
(pandas ``iloc``, header excluded), and column ``aria0N_214-1_capture_timestamp_ns`` is the
Aria RGB frame time on the device clock, the clock of the IMU's ``capture_timestamp_ns``.
So t = 0 of the take (its first frame) is that column at row ``timesync_start_idx + 1``.
"""

from __future__ import annotations

import csv
import io
import math
import os
import re

from tfds_builders import raw_io


class TimesyncError(raw_io.MalformedFileError):
    """No usable time origin for a take; the message names the file."""


def capture_name(take_name: str, record_capture: str | None) -> str:
    """``takes.json``'s ``capture.capture_name``, else the take name without its ``_<n>``
    suffix (the tutorial's rule)."""
    return record_capture or re.sub(r"_\d+$", "", take_name)


def column(device: str) -> str:
    return f"{device}_214-1_capture_timestamp_ns"


def read_column(path: str, name: str) -> list[str | None]:
    """The raw cells of one column of ``timesync.csv`` (data rows in order, blank lines
    skipped as pandas does); ``None`` for a row whose field count differs from the header's
    (a lost or extra line break shifts every later row)."""
    try:
        with open(path, "rb") as f:
            text = io.TextIOWrapper(f, encoding="utf-8", errors="replace", newline="")
            rows = csv.reader(text)
            header = [h.strip().strip("\ufeff") for h in next(rows, [])]
            if name not in header:
                raise TimesyncError(f"{path}: no column {name!r} (header {header[:6]}...)")
            j = header.index(name)
            return [r[j] if len(r) == len(header) else None for r in rows if r]
    except (csv.Error, OSError) as e:
        raise TimesyncError(f"{path}: unreadable ({type(e).__name__}: {e})") from e


def _parse(cell: str | None) -> int | None:
    if cell is None:
        return None
    cell = cell.strip()
    try:
        value = int(cell) if cell.lstrip("-").isdigit() else float(cell)
    except ValueError:
        return None
    if not (isinstance(value, int) or math.isfinite(value)) or value <= 0:
        return None
    return int(value)


def take_start_ns(cells: list[str], start_idx: int, path: str) -> int:
    """Device time (ns) of the take's first frame: row ``start_idx + 1``.

    Checked against the next rows: it must precede them by about one frame period (within
    two), so a damaged cell is an error rather than a silently shifted take.
    """
    row = start_idx + 1
    if not 0 <= row < len(cells):
        raise TimesyncError(f"{path}: no row {row} (timesync_start_idx + 1; {len(cells)} rows)")
    broken = [i for i, c in enumerate(cells[: row + 5]) if c is None]
    if broken:
        raise TimesyncError(f"{path}: row {broken[0]} has the wrong number of fields")
    value = _parse(cells[row])
    if value is None:
        raise TimesyncError(f"{path}: row {row} has no timestamp ({cells[row]!r})")
    after = [v for v in map(_parse, cells[row + 1 : row + 5]) if v is not None]
    steps = [b - a for a, b in zip([value, *after], after, strict=False)]
    if len(steps) >= 2:
        period = sorted(steps[1:])[len(steps[1:]) // 2] if len(steps) > 2 else steps[1]
        if period <= 0 or not 0 < steps[0] <= 2 * period:
            raise TimesyncError(
                f"{path}: row {row} ({value}) is not about one frame before row {row + 1} "
                f"({after[0]}; frame period {period} ns)"
            )
    return value


def timesync_path(root: os.PathLike, capture: str) -> str:
    return os.path.join(os.fspath(root), "captures", capture, "timesync.csv")
