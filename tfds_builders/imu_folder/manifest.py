"""The manifest of a folder of the user's own recordings (YAML or JSON), read and checked once.

Every mistake in it fails the build with a ``ManifestError`` naming the manifest file and the
key (``recordings[2].units.acc``), before any recording is read: a wrong manifest would
otherwise turn into wrong windows. Problems with the recordings themselves are the builder's
business (skipped and counted). The schema is in ``tfds_builders/imu_folder/README.md``.
"""

from __future__ import annotations

import dataclasses
import json
import math
import os
from collections.abc import Mapping
from typing import Any

import numpy as np

from primus_jax.data import signal

NAMES = ("manifest.yaml", "manifest.yml", "manifest.json")
FORMATS = {".csv": "csv", ".txt": "csv", ".parquet": "parquet", ".pq": "parquet", ".npz": "npz"}
TIME_UNITS = {"s": 1.0, "ms": 1e-3, "us": 1e-6, "ns": 1e-9}
WINDOW_MODES = ("sliding", "narration")
TIME_ORIGINS = ("first_sample", "zero")
# Filled in this order: with few subjects, test gets one before val (largest remainders).
DEFAULT_SPLITS = {"train": 0.6, "test": 0.2, "val": 0.2}
SPLIT_NAMES = ("train", "val", "test")

# Keys a recording may set, and the top level may set as every recording's default.
_PER_RECORDING = (
    "rate_hz",
    "time_column",
    "time_unit",
    "time_origin",
    "channels",
    "units",
    "device",
    "position",
)
_RECORDING_ONLY = ("id", "subject", "file", "acc", "gyro", "narrations", "labels", "video_emb")
_TOP_ONLY = (
    "format",
    "description",
    "windows",
    "hop_s",
    "label_coverage",
    "max_gap_s",
    "splits",
    "split_seed",
    "classes",
    "recordings",
)


class ManifestError(ValueError):
    """The manifest is missing, unreadable or wrong; the message names the file and key."""


@dataclasses.dataclass(frozen=True)
class Recording:
    """One recording as the manifest states it (paths absolute)."""

    id: str
    subject: str
    files: dict[str, str]  # {"all": path} or {"acc": path, "gyro": path}
    rate_hz: dict[str, float | None]  # per stream ("all", "acc", "gyro")
    time_column: str | None
    time_scale: float  # seconds per time-column unit
    time_origin: str
    channels: tuple[str, ...]  # column names of ax, ay, az, gx, gy, gz
    acc_unit: str
    gyro_unit: str
    device: str
    position: str
    narrations: str | None = None
    labels: str | None = None
    video_emb: str | None = None


@dataclasses.dataclass(frozen=True)
class Manifest:
    path: str
    root: str
    recordings: tuple[Recording, ...]
    windows: str
    hop_s: float
    label_coverage: float
    max_gap_s: float
    split_fractions: dict[str, float] | None  # None: explicit subject lists
    split_subjects: dict[str, str] | None  # {subject: split}
    split_seed: str
    classes: tuple[str, ...]  # () = from the label files
    class_prompts: tuple[tuple[str, ...], ...]  # () = none given
    description: str

    def referenced_files(self) -> set[str]:
        out = {self.path}
        for r in self.recordings:
            out.update(r.files.values())
            out.update(p for p in (r.narrations, r.labels, r.video_emb) if p)
        return out


def find(root: str) -> str:
    """The manifest file in ``root`` (``NAMES``, first found)."""
    for name in NAMES:
        path = os.path.join(root, name)
        if os.path.isfile(path):
            return path
    raise ManifestError(
        f"{root}: no manifest ({' or '.join(NAMES)}); see tfds_builders/imu_folder/README.md"
    )


def _load(path: str) -> Any:
    try:
        with open(path, encoding="utf-8") as f:
            text = f.read()
    except (OSError, UnicodeDecodeError) as e:
        raise ManifestError(f"{path}: cannot read the manifest ({e})") from None
    try:
        if path.endswith(".json"):
            return json.loads(text)
        import yaml

        return yaml.safe_load(text)
    except Exception as e:  # yaml.YAMLError, json.JSONDecodeError; message names the line
        raise ManifestError(
            f"{path}: not valid {'JSON' if path.endswith('.json') else 'YAML'}: "
            f"{str(e).splitlines()[0] if str(e) else type(e).__name__}"
        ) from None


class _Reader:
    """Typed access to manifest values, every error naming ``<file>: <key>``."""

    def __init__(self, path: str):
        self.path = path

    def fail(self, key: str, message: str):
        raise ManifestError(f"{self.path}: {key}: {message}")

    def mapping(self, value, key: str) -> Mapping:
        if not isinstance(value, Mapping):
            self.fail(key, f"expected a mapping, got {type(value).__name__}")
        return value

    def string(self, value, key: str) -> str:
        if isinstance(value, bool) or not isinstance(value, (str, int)):
            self.fail(key, f"expected a string, got {value!r}")
        value = str(value).strip()
        if not value:
            self.fail(key, "must not be empty")
        return value

    def number(self, value, key: str, lo: float, hi: float) -> float:
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            self.fail(key, f"expected a number, got {value!r}")
        if not (math.isfinite(value) and lo <= value <= hi):
            self.fail(key, f"{value!r} is outside [{lo:g}, {hi:g}]")
        return float(value)

    def choice(self, value, key: str, options) -> str:
        value = self.string(value, key)
        if value not in options:
            self.fail(key, f"{value!r} is not one of {list(options)}")
        return value

    def unknown(self, d: Mapping, allowed, key: str) -> None:
        extra = sorted(str(k) for k in d if k not in allowed)
        if extra:
            self.fail(key, f"unknown key(s) {extra}; allowed: {sorted(allowed)}")

    def file(self, root: str, value, key: str, formats=None) -> str:
        rel = self.string(value, key)
        path = os.path.normpath(os.path.join(root, rel))
        if formats is not None:
            ext = os.path.splitext(path)[1].lower()
            if ext not in formats:
                self.fail(key, f"{rel!r}: unknown file type {ext!r}; use one of {sorted(formats)}")
        return path


def _units(r: _Reader, value, key: str) -> tuple[str, str]:
    u = r.mapping(value, key)
    r.unknown(u, ("acc", "gyro"), key)
    acc = r.string(u.get("acc", "m/s2"), f"{key}.acc").replace("²", "2")
    gyro = r.string(u.get("gyro", "rad/s"), f"{key}.gyro")
    try:
        signal.to_si(np.zeros((1, 6)), acc, gyro)
    except ValueError as e:
        r.fail(key, str(e))
    return acc, gyro


def _rates(r: _Reader, value, key: str, streams) -> dict[str, float | None]:
    if value is None:
        return {s: None for s in streams}
    if isinstance(value, Mapping):
        r.unknown(value, streams, key)
        return {
            s: None if value.get(s) is None else r.number(value[s], f"{key}.{s}", 1.0, 100_000.0)
            for s in streams
        }
    rate = r.number(value, key, 1.0, 100_000.0)
    return {s: rate for s in streams}


def _channels(r: _Reader, value, key: str) -> tuple[str, ...]:
    if not isinstance(value, (list, tuple)) or len(value) != 6:
        r.fail(key, f"give the 6 column names of acc x, y, z then gyro x, y, z; got {value!r}")
    names = tuple(r.string(v, f"{key}[{i}]") for i, v in enumerate(value))
    if len(set(names)) != 6:
        r.fail(key, f"column names repeat: {list(names)}")
    return names


def _recording(r: _Reader, root: str, top: Mapping, item, i: int) -> Recording:
    key = f"recordings[{i}]"
    rec = r.mapping(item, key)
    r.unknown(rec, (*_PER_RECORDING, *_RECORDING_ONLY), key)
    get = lambda k, default=None: rec.get(k, top.get(k, default))
    if "file" in rec and ("acc" in rec or "gyro" in rec):
        r.fail(key, "give either file (all six channels) or acc and gyro, not both")
    if "file" in rec:
        files = {"all": r.file(root, rec["file"], f"{key}.file", FORMATS)}
    elif "acc" in rec and "gyro" in rec:
        files = {s: r.file(root, rec[s], f"{key}.{s}", FORMATS) for s in ("acc", "gyro")}
    else:
        r.fail(key, "needs file (all six channels) or both acc and gyro")
    default_id = os.path.splitext(os.path.basename(files.get("all", files.get("acc"))))[0]
    rid = r.string(rec.get("id", default_id), f"{key}.id")
    if "/" in rid:
        r.fail(f"{key}.id", f"{rid!r} must not contain '/'")
    if "subject" not in rec:
        r.fail(f"{key}.subject", "missing (every recording names its subject, for the splits)")
    time_column = get("time_column")
    time_column = None if time_column is None else r.string(time_column, f"{key}.time_column")
    rates = _rates(r, get("rate_hz"), f"{key}.rate_hz", tuple(files))
    if time_column is None and any(v is None for v in rates.values()):
        r.fail(key, "needs time_column or rate_hz (for every file)")
    if "channels" not in rec and "channels" not in top:
        r.fail(f"{key}.channels", "missing (the 6 column names: acc x, y, z, gyro x, y, z)")
    opt = lambda k, what: None if rec.get(k) is None else r.file(root, rec[k], f"{key}.{k}", what)
    acc_unit, gyro_unit = _units(r, get("units", {}), f"{key}.units")
    return Recording(
        id=rid,
        subject=r.string(rec["subject"], f"{key}.subject"),
        files=files,
        rate_hz=rates,
        time_column=time_column,
        time_scale=TIME_UNITS[r.choice(get("time_unit", "s"), f"{key}.time_unit", TIME_UNITS)],
        time_origin=r.choice(
            get("time_origin", "first_sample"), f"{key}.time_origin", TIME_ORIGINS
        ),
        channels=_channels(r, get("channels"), f"{key}.channels"),
        acc_unit=acc_unit,
        gyro_unit=gyro_unit,
        device=r.string(get("device", "unknown"), f"{key}.device"),
        position=r.string(get("position", "unknown"), f"{key}.position"),
        narrations=opt("narrations", {".csv": "csv", ".txt": "csv"}),
        labels=opt("labels", {".csv": "csv", ".txt": "csv"}),
        video_emb=opt("video_emb", {".npz": "npz"}),
    )


def _splits(r: _Reader, value, subjects: set[str]):
    """``(fractions, None)`` or ``(None, {subject: split})``."""
    if value is None:
        return dict(DEFAULT_SPLITS), None
    m = r.mapping(value, "splits")
    r.unknown(m, SPLIT_NAMES, "splits")
    if all(isinstance(v, (int, float)) and not isinstance(v, bool) for v in m.values()):
        fr = {s: r.number(m[s], f"splits.{s}", 0.0, 1.0) for s in SPLIT_NAMES if s in m}
        if abs(sum(fr.values()) - 1.0) > 1e-6 or "train" not in fr:
            r.fail("splits", f"fractions must include train and sum to 1, got {fr}")
        return fr, None
    by_subject = {}
    for s, members in m.items():
        if not isinstance(members, (list, tuple)):
            r.fail(f"splits.{s}", "give all fractions (numbers) or all subject lists")
        for j, subj in enumerate(members):
            subj = r.string(subj, f"splits.{s}[{j}]")
            if subj in by_subject:
                r.fail(f"splits.{s}", f"subject {subj!r} is also in {by_subject[subj]}")
            by_subject[subj] = s
    missing = sorted(subjects - set(by_subject))
    if missing:
        r.fail("splits", f"subjects {missing} are in no split")
    return None, by_subject


def _classes(r: _Reader, value):
    if value is None:
        return (), ()
    if isinstance(value, (list, tuple)):
        names = tuple(r.string(v, f"classes[{i}]") for i, v in enumerate(value))
        prompts = ()
    else:
        m = r.mapping(value, "classes")
        names = tuple(r.string(k, "classes") for k in m)
        prompts = []
        for name, p in m.items():
            p = [p] if isinstance(p, str) else p
            if not isinstance(p, (list, tuple)) or not p:
                r.fail(f"classes.{name}", "give a list of prompt sentences")
            prompts.append(tuple(r.string(s, f"classes.{name}[{j}]") for j, s in enumerate(p)))
        prompts = tuple(prompts)
    if len(set(names)) != len(names) or not names:
        r.fail("classes", f"class names must be unique and non-empty, got {list(names)}")
    return names, prompts


def load(root: str) -> Manifest:
    """Reads and checks the manifest of the folder ``root``."""
    path = find(root)
    r = _Reader(path)
    top = _load(path)
    top = r.mapping(top, "(top level)")
    r.unknown(top, (*_PER_RECORDING, *_TOP_ONLY), "(top level)")
    items = top.get("recordings")
    if not isinstance(items, list) or not items:
        r.fail("recordings", "give a non-empty list of recordings")
    recs = [_recording(r, root, top, item, i) for i, item in enumerate(items)]
    seen: dict[str, int] = {}
    for i, rec in enumerate(recs):
        if rec.id in seen:
            r.fail(f"recordings[{i}].id", f"{rec.id!r} repeats recordings[{seen[rec.id]}]")
        seen[rec.id] = i
    fractions, by_subject = _splits(r, top.get("splits"), {x.subject for x in recs})
    classes, prompts = _classes(r, top.get("classes"))
    hop_s = r.number(top.get("hop_s", 2.5), "hop_s", 0.02, 3600.0)
    if abs(hop_s * 50 - round(hop_s * 50)) > 1e-6:
        r.fail("hop_s", f"{hop_s} s is not a whole number of 50 Hz samples")
    return Manifest(
        path=path,
        root=root,
        recordings=tuple(recs),
        windows=r.choice(top.get("windows", "sliding"), "windows", WINDOW_MODES),
        hop_s=hop_s,
        label_coverage=r.number(top.get("label_coverage", 0.8), "label_coverage", 0.01, 1.0),
        max_gap_s=r.number(top.get("max_gap_s", 0.1), "max_gap_s", 0.0, 60.0),
        split_fractions=fractions,
        split_subjects=by_subject,
        split_seed=r.string(top.get("split_seed", "imu_folder/v1"), "split_seed"),
        classes=classes,
        class_prompts=prompts,
        description=str(top.get("description", "")),
    )
