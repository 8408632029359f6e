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


def read_column(path: str, name: str) -> list[str]:
    """The raw cells of one column of ``timesync.csv`` (data rows, in order)."""
    try:
        with open(path, "rb") as f:
            text = io.TextIOWrapper(f, encoding="utf-8", errors="replace", newline="")
            rows = csv.reader(text)
            header = [h.strip().strip("\ufeff") for h in next(rows, [])]
            if name not in header:
                raise TimesyncError(f"{path}: no column {name!r} (header {header[:6]}...)")
            j = header.index(name)
            return [r[j] if j < len(r) else "" for r in rows]
    except (csv.Error, OSError) as e:
        raise TimesyncError(f"{path}: unreadable ({type(e).__name__}: {e})") from e


def take_start_ns(cells: list[str], start_idx: int, path: str) -> int:
    """Device time (ns) of the take's first frame: row ``start_idx + 1``."""
    row = start_idx + 1
    if not 0 <= row < len(cells):
        raise TimesyncError(f"{path}: no row {row} (timesync_start_idx + 1; {len(cells)} rows)")
    cell = cells[row].strip()
    try:
        value = int(cell) if cell.lstrip("-").isdigit() else float(cell)
    except ValueError:
        value = math.nan
    if not (isinstance(value, int) or math.isfinite(value)) or value <= 0:
        raise TimesyncError(f"{path}: row {row} has no timestamp ({cell!r})")
    return int(value)


def timesync_path(root: os.PathLike, capture: str) -> str:
    return os.path.join(os.fspath(root), "captures", capture, "timesync.csv")
