"""Finds RealWorld HAR 2016 sensor CSVs in directories, zips and zips inside zips.

The archive's layout is ``realworld2016_dataset/proband<N>/data/<sensor>_<activity>_csv.zip``,
each zip holding ``<sensor>_<activity>[_<session>]_<position>.csv``. Known quirks, all handled
here: an activity split into sessions (``acc_climbingdown_2_head.csv``), zips nested inside
zips, missing (subject, sensor, activity) files, odd capitalisation and sensor spellings
(``Gyroscope_``), and users who extracted some zips by hand (plain ``.csv`` files).
"""

from __future__ import annotations

import dataclasses
import io
import re
import zipfile
from collections.abc import Callable, Iterator

from etils import epath

ACTIVITIES = (
    "climbingdown",
    "climbingup",
    "jumping",
    "lying",
    "running",
    "sitting",
    "standing",
    "walking",
)
POSITIONS = ("chest", "forearm", "head", "shin", "thigh", "upperarm", "waist")
_SENSORS = {"acc": "acc", "accelerometer": "acc", "gyr": "gyr", "gyro": "gyr", "gyroscope": "gyr"}
_CSV = re.compile(
    rf"(?:^|[/_])(?P<sensor>{'|'.join(_SENSORS)})_(?P<activity>{'|'.join(ACTIVITIES)})"
    rf"(?:_(?P<session>\d+))?_(?P<position>{'|'.join(POSITIONS)})\.csv$",
    re.IGNORECASE,
)
# Only archives that can hold acc/gyr CSVs are opened (not the video, image, mic, GPS or
# SQLite ones, which are large and irrelevant; see _is_sensor_zip).
_ZIP = re.compile(rf"(?:^|[/_])({'|'.join(_SENSORS)})_[^/]*\.zip$", re.IGNORECASE)
_PROBAND = re.compile(r"^proband(\d+)$", re.IGNORECASE)


@dataclasses.dataclass(frozen=True)
class SensorFile:
    """One sensor CSV found in the dataset.

    Attributes:
        subject: Proband number.
        sensor: ``"acc"`` or ``"gyr"``.
        activity: One of ``ACTIVITIES``.
        session: Session number, 0 when the file name has none.
        position: One of ``POSITIONS``.
        where: Human-readable location (``path/to.zip!inner.zip!file.csv``).
        read: Returns the file's bytes.
    """

    subject: int
    sensor: str
    activity: str
    session: int
    position: str
    where: str
    read: Callable[[], bytes]


def _parse(subject: int, name: str, where: str, read: Callable[[], bytes]) -> SensorFile | None:
    m = _CSV.search(name)
    if m is None:
        return None
    return SensorFile(
        subject=subject,
        sensor=_SENSORS[m.group("sensor").lower()],
        activity=m.group("activity").lower(),
        session=int(m.group("session") or 0),
        position=m.group("position").lower(),
        where=where,
        read=read,
    )


def _from_zip(
    subject: int, data: bytes, where: str, on_error: Callable[[str, str], None]
) -> Iterator[SensorFile]:
    try:
        zf = zipfile.ZipFile(io.BytesIO(data))
        names = sorted(zf.namelist())
    except zipfile.BadZipFile as e:
        on_error("bad_zip", f"{where}: {e}")
        return
    for name in names:
        inner = f"{where}!{name}"
        if _is_sensor_zip(name):
            try:
                nested = zf.read(name)
            except (zipfile.BadZipFile, OSError) as e:
                on_error("bad_zip", f"{inner}: {e}")
                continue
            yield from _from_zip(subject, nested, inner, on_error)
        else:
            found = _parse(subject, name, inner, lambda zf=zf, name=name: zf.read(name))
            if found is not None:
                yield found


def _is_sensor_zip(name: str) -> bool:
    return bool(_ZIP.search(name)) and "sqlite" not in name.lower()


def _walk(root: epath.Path, max_depth: int) -> Iterator[epath.Path]:
    """Every path under ``root`` down to ``max_depth`` levels, sorted (epath has no ``**``)."""
    for p in sorted(root.iterdir()):
        yield p
        if max_depth > 1 and p.is_dir():
            yield from _walk(p, max_depth - 1)


def find_subjects(root: epath.Path) -> dict[int, epath.Path]:
    """``{proband number: directory}`` for every ``proband<N>`` directory under ``root``."""
    out = {}
    for p in _walk(root, max_depth=4):
        m = _PROBAND.match(p.name)
        if m and p.is_dir():
            out.setdefault(int(m.group(1)), p)
    return out


def find_files(
    subject: int, directory: epath.Path, on_error: Callable[[str, str], None]
) -> Iterator[SensorFile]:
    """All acc/gyr CSVs of one proband, from plain files and (nested) zips, in path order."""
    for p in _walk(directory, max_depth=4):
        if not p.is_file():
            continue
        if _is_sensor_zip(p.name):
            yield from _from_zip(subject, p.read_bytes(), str(p), on_error)
        else:
            found = _parse(subject, p.name, str(p), p.read_bytes)
            if found is not None:
                yield found
