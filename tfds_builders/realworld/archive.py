"""Finds RealWorld HAR 2016 sensor CSVs in directories, zips and zips inside zips.

The archive's layout is ``realworld2016_dataset/proband<N>/data/<sensor>_<activity>_csv.zip``,
each zip holding ``<sensor>_<activity>[_<session>]_<position>.csv``. Known quirks, all handled
here: an activity split into sessions (``acc_climbingdown_2_head.csv``), sessions as zips
nested inside zips (``acc_climbingup_2_csv.zip`` inside ``acc_climbingup_csv.zip``, whose
index is the session even when the CSV names inside are equal), missing (subject, sensor,
activity) files, odd capitalisation and sensor spellings (``Gyroscope_``), users who extracted
some zips by hand (plain ``.csv`` files), and the whole archive left unextracted (its members
are read in place; only acc/gyr zips are ever opened).
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
# A session zip: <sensor>_<activity>_<i>_csv.zip (found nested inside the sensor zips).
_SESSION_ZIP = re.compile(
    rf"(?:^|[/_!])(?:{'|'.join(_SENSORS)})_(?:{'|'.join(ACTIVITIES)})_(?P<session>\d+)_csv\.zip$",
    re.IGNORECASE,
)
_MEMBER_PROBAND = re.compile(r"(?:^|/)proband(\d+)/", re.IGNORECASE)


@dataclasses.dataclass(frozen=True)
class ZipFolder:
    """A proband folder inside an unextracted archive: members of ``archive`` under ``prefix``."""

    archive: epath.Path
    prefix: str

    def __str__(self) -> str:
        return f"{self.archive}!{self.prefix}"


@dataclasses.dataclass(frozen=True)
class SensorFile:
    """One sensor CSV found in the dataset.

    Attributes:
        subject: Proband number.
        sensor: ``"acc"`` or ``"gyr"``.
        activity: One of ``ACTIVITIES``.
        session: Session number: the index of the session zip the CSV came from
            (``<sensor>_<activity>_<i>_csv.zip``), else the CSV name's, 0 when neither has one.
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


def _parse(
    subject: int, name: str, where: str, read: Callable[[], bytes], zip_session: int = 0
) -> SensorFile | None:
    m = _CSV.search(name)
    if m is None:
        return None
    return SensorFile(
        subject=subject,
        sensor=_SENSORS[m.group("sensor").lower()],
        activity=m.group("activity").lower(),
        session=zip_session or int(m.group("session") or 0),
        position=m.group("position").lower(),
        where=where,
        read=read,
    )


def _zip_session(name: str, parent: int) -> int:
    m = _SESSION_ZIP.search(name)
    return int(m.group("session")) if m else parent


def _read_member(zf: zipfile.ZipFile, name: str, where: str) -> bytes:
    """A member's bytes; damaged members raise ``zipfile.BadZipFile`` naming ``where``."""
    try:
        return zf.read(name)
    except (zipfile.BadZipFile, zipfile.LargeZipFile, OSError, EOFError, ValueError) as e:
        raise zipfile.BadZipFile(f"{where}: {e}") from e
    except Exception as e:  # zlib.error and friends from a corrupt deflate stream
        raise zipfile.BadZipFile(f"{where}: {type(e).__name__}: {e}") from e


def _members(
    subject: int,
    zf: zipfile.ZipFile,
    names: list[str],
    where: str,
    on_error: Callable[[str, str], None],
    session: int,
) -> Iterator[SensorFile]:
    for name in names:
        inner = f"{where}!{name}"
        if _is_sensor_zip(name):
            try:
                nested = _read_member(zf, name, inner)
            except zipfile.BadZipFile as e:
                on_error("bad_zip", str(e))
                continue
            yield from _from_zip(subject, nested, inner, on_error, _zip_session(name, session))
        else:
            found = _parse(
                subject,
                name,
                inner,
                lambda zf=zf, name=name, inner=inner: _read_member(zf, name, inner),
                session,
            )
            if found is not None:
                yield found


def _from_zip(
    subject: int,
    data: bytes,
    where: str,
    on_error: Callable[[str, str], None],
    session: int = 0,
) -> Iterator[SensorFile]:
    try:
        zf = zipfile.ZipFile(io.BytesIO(data))
        names = sorted(zf.namelist())
    except (zipfile.BadZipFile, zipfile.LargeZipFile, OSError, EOFError, ValueError) as e:
        on_error("bad_zip", f"{where}: {e}")
        return
    yield from _members(subject, zf, names, where, on_error, session)


def _is_sensor_zip(name: str) -> bool:
    return bool(_ZIP.search(name)) and "sqlite" not in name.lower()


def _walk(root: epath.Path, max_depth: int) -> Iterator[epath.Path]:
    """Every path under ``root`` down to ``max_depth`` levels, sorted (epath has no ``**``)."""
    for p in sorted(root.iterdir()):
        yield p
        if max_depth > 1 and p.is_dir():
            yield from _walk(p, max_depth - 1)


def _archive_subjects(path: epath.Path) -> dict[int, ZipFolder] | None:
    """``{proband: ZipFolder}`` of an unextracted archive; ``None`` if it is not a readable zip."""
    try:
        with path.open("rb") as f, zipfile.ZipFile(f) as zf:
            names = zf.namelist()
    except (zipfile.BadZipFile, OSError, EOFError, ValueError):
        return None
    out: dict[int, ZipFolder] = {}
    for name in sorted(names):
        m = _MEMBER_PROBAND.search(name)
        if m:
            out.setdefault(int(m.group(1)), ZipFolder(path, name[: m.end()]))
    return out


def find_subjects(root: epath.Path) -> dict[int, epath.Path | ZipFolder]:
    """``{proband number: folder}`` under ``root``.

    ``proband<N>`` directories at depth ≤ 4 win; without any, the first unextracted archive
    (``root`` itself if it is a zip file, else a ``*.zip`` at depth ≤ 2 that is not a sensor
    zip) holding ``proband<N>/`` members gives ``ZipFolder``s.

    Raises:
        ValueError: If no proband is found and an archive there cannot be read (naming it),
            rather than silently ignoring a damaged download.
    """
    candidates = [root] if root.is_file() else []
    out: dict[int, epath.Path | ZipFolder] = {}
    if not candidates:
        for p in _walk(root, max_depth=4):
            m = _PROBAND.match(p.name)
            if m and p.is_dir():
                out.setdefault(int(m.group(1)), p)
        if out:
            return out
        candidates = [
            p
            for p in _walk(root, max_depth=2)
            if p.name.lower().endswith(".zip") and not _is_sensor_zip(p.name) and p.is_file()
        ]
    unreadable = []
    for p in candidates:
        found = _archive_subjects(p)
        if found is None:
            unreadable.append(str(p))
        elif found:
            return dict(found)
    if unreadable:
        raise ValueError(f"realworld: no proband<N>/ found; unreadable zip archive(s) {unreadable}")
    return out


def find_files(
    subject: int, folder: epath.Path | ZipFolder, on_error: Callable[[str, str], None]
) -> Iterator[SensorFile]:
    """All acc/gyr CSVs of one proband, from plain files and (nested) zips, in path order."""
    if isinstance(folder, ZipFolder):
        f = folder.archive.open("rb")
        try:
            zf = zipfile.ZipFile(f)
            names = sorted(n for n in zf.namelist() if n.startswith(folder.prefix))
        except (zipfile.BadZipFile, OSError, EOFError, ValueError) as e:
            f.close()
            on_error("bad_zip", f"{folder.archive}: {e}")
            return
        yield from _members(subject, zf, names, str(folder.archive), on_error, 0)
        return
    for p in _walk(folder, max_depth=4):
        if not p.is_file():
            continue
        if _is_sensor_zip(p.name):
            yield from _from_zip(subject, p.read_bytes(), str(p), on_error, _zip_session(p.name, 0))
        else:
            found = _parse(subject, p.name, str(p), p.read_bytes)
            if found is not None:
                yield found
