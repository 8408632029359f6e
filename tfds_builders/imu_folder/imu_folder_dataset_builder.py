"""The user's own recordings (a folder + a manifest) as 5 s, 50 Hz segments.

The folder is the TFDS manual directory: a manifest (``manifest.yaml`` or ``.json``,
``manifest.py``) lists the recordings (CSV, Parquet or NPZ; one file, or acc and gyro files),
their timestamps or rate, columns, units, device, position and subject, and optional
narrations, label intervals and per-window video embeddings. Each recording is cleaned, checked
against what the manifest says, converted to SI, put on the 50 Hz grid of its own timeline
(``event_windows.to_grid``) and cut into sliding windows or one window per narration. Bad
files are skipped and counted; a bad manifest fails the build naming the key. See README.md.
"""

from __future__ import annotations

import collections
import hashlib
import math
import os
from typing import ClassVar

import numpy as np
import tensorflow_datasets as tfds
from absl import logging

from primus_jax.data import signal
from tfds_builders import event_windows, raw_io, segment_format, splits
from tfds_builders.imu_folder import manifest as manifest_lib
from tfds_builders.imu_folder import readers
from tfds_builders.segment_builder import SegmentBuilder

RATE_HZ = segment_format.RATE_HZ
WINDOW_LEN = segment_format.WINDOW_LEN
_RATE_RANGE_HZ = (5.0, 5000.0)  # outside: the time unit is wrong, or the column is not time
_RATE_TOLERANCE = 0.1  # a stated rate_hz and the timestamps may differ by 10%
_GYRO_MAX_RAD_S = 35.0  # ~2000 deg/s, the largest common gyro range
_ACC_MAX_MS2 = 1000.0  # ~100 g: beyond any wearable's range; such rows are dropped
_MAX_SPAN_FACTOR = 10.0  # timestamps spanning 10x the samples' duration are corrupt


class RecordingError(ValueError):
    """A recording that does not match its manifest entry; ``reason`` is the skip reason."""

    def __init__(self, reason: str, message: str):
        self.reason = reason
        super().__init__(message)


class Builder(SegmentBuilder):
    """Segments of the user's own recordings, described by a manifest in the manual dir."""

    VERSION = tfds.core.Version("1.0.0")
    RELEASE_NOTES: ClassVar[dict[str, str]] = {"1.0.0": "Initial release."}
    BUILDER_CONFIGS: ClassVar[list[segment_format.SegmentConfig]] = [
        segment_format.SegmentConfig(
            name="raw", description="IMU, labels and narrations of the folder; no embeddings."
        ),
        segment_format.minilm_config(),
    ]
    MANUAL_DOWNLOAD_INSTRUCTIONS = """
    The manual directory is your folder of recordings with a manifest.yaml (or manifest.json)
    describing them; schema and example in tfds_builders/imu_folder/README.md. The minilm
    config also needs <manual_dir>/embeddings/minilm/ (python -m primus_jax.embed).
    """

    @property
    def label_names(self) -> list[str]:
        return list(getattr(self, "_classes", ()))

    def _split_generators(self, dl_manager: tfds.download.DownloadManager):
        root = os.fspath(dl_manager.manual_dir)
        m = manifest_lib.load(root)
        with open(m.path, "rb") as f:
            digest = hashlib.sha256(f.read()).hexdigest()
        self._manifest = m
        labels = {r.id: self._read_labels(r) for r in m.recordings}
        self._classes = m.classes or tuple(
            sorted({name for rows in labels.values() for _, _, name in rows})
        )
        md = self.info.metadata
        md["label_names"] = list(self._classes)
        md["class_prompts"] = [list(p) for p in m.class_prompts]
        md["text_from_labels"] = False
        md["source"] = f"{m.path} sha256={digest}"
        md["windows"] = f"{m.windows}: " + (
            f"hop {m.hop_s:g} s" if m.windows == "sliding" else "one per narration"
        )
        self._note_unlisted(m)
        by_subject = self._subject_splits(m)
        md["subjects"] = {
            s: sorted(x for x, v in by_subject.items() if v == s) for s in manifest_lib.SPLIT_NAMES
        }
        md["recordings"] = {
            r.id: {"subject": r.subject, "device": r.device, "position": r.position}
            for r in m.recordings
        }
        self._open_stores(dl_manager.manual_dir)
        self._video_dim = 0
        per_split: dict[str, list] = collections.defaultdict(list)
        for rec in m.recordings:
            split = by_subject[rec.subject]
            per_split[split].extend(self._recording(split, rec, labels[rec.id]))
        md["video_emb_dim"] = self._video_dim
        if not any(per_split.values()):
            skipped = sorted(self._skipped_files)
            raise ValueError(
                f"imu_folder: no windows from any recording of {m.path}; skipped: "
                + ("; ".join(skipped) or "none (every recording is shorter than 5 s?)")
            )
        empty = [s for s in manifest_lib.SPLIT_NAMES if not per_split[s]]
        if empty:
            logging.warning("imu_folder: no windows for split(s) %s; not written", empty)
        return {s: self._generate_examples(s, v) for s, v in per_split.items() if v}

    def _generate_examples(self, split: str, examples: list):
        yield from examples
        self._finish_split(split)

    # -- manifest-level checks ------------------------------------------------------------

    @property
    def _skipped_files(self) -> set[str]:
        if not hasattr(self, "_skipped"):
            self._skipped: set[str] = set()
        return self._skipped

    def _skip(self, split: str, reason: str, where: str, n: int = 1) -> None:
        self._skipped_files.add(f"{where} ({reason})")
        self.stats.skip(split, reason, where, n=n)

    def _note_unlisted(self, m: manifest_lib.Manifest) -> None:
        listed = m.referenced_files()
        for dirpath, dirnames, files in os.walk(m.root):
            dirnames[:] = [d for d in dirnames if d != "embeddings" and not d.startswith(".")]
            for name in files:
                path = os.path.normpath(os.path.join(dirpath, name))
                if path not in listed and not name.startswith("."):
                    self.stats.note("all", "files_not_in_manifest")

    def _subject_splits(self, m: manifest_lib.Manifest) -> dict[str, str]:
        subjects = sorted({r.subject for r in m.recordings})
        if m.split_subjects is not None:
            return dict(m.split_subjects)
        return splits.assign_groups({s: 0 for s in subjects}, m.split_fractions, m.split_seed)

    def _read_labels(self, rec: manifest_lib.Recording) -> list:
        if rec.labels is None:
            return []
        if not os.path.isfile(rec.labels):
            self._skip("all", "missing_file", f"{rec.labels} (labels of {rec.id})")
            return []
        try:
            rows, bad = readers.read_labels(rec.labels)
        except raw_io.MalformedFileError as e:
            self._skip("all", "malformed_labels", str(e))
            return []
        if bad:
            self.stats.skip("all", "bad_label_row", rec.labels, n=bad)
        return rows

    # -- one recording ----------------------------------------------------------------

    def _load_stream(self, split, rec, stream: str, part: slice):
        """``(t seconds, (N, C) SI values)`` of one file's channels ``part`` of the six,
        cleaned and checked against the manifest."""
        path = rec.files[stream]
        fmt = manifest_lib.FORMATS[os.path.splitext(path)[1].lower()]
        channels = rec.channels[part]
        cols = [*([rec.time_column] if rec.time_column else []), *channels]
        data = readers.read_columns(path, fmt, cols)
        x = self._si(rec, np.stack([data[c] for c in channels], axis=1), part)
        rate = rec.rate_hz[stream]
        t = data[rec.time_column] * rec.time_scale if rec.time_column else np.arange(len(x)) / rate
        # Values no body motion produces (a corrupt field, an overflow) count as missing.
        limit = np.array([_ACC_MAX_MS2] * 3 + [_GYRO_MAX_RAD_S * 3] * 3)[part]
        with np.errstate(invalid="ignore"):
            wild = (np.abs(x) > limit).any(axis=1)
        x[wild] = np.nan
        try:
            t, x, report = signal.clean_timestamps(t, x)
        except ValueError as e:
            raise RecordingError("unusable_recording", f"{path}: {e}") from None
        for what, n in (
            ("rows_dropped_out_of_range", int(wild.sum())),
            ("rows_dropped_nonfinite", report.n_nonfinite - int(wild.sum())),
            ("rows_dropped_duplicate_time", report.n_duplicates),
            ("files_reordered", int(report.reordered)),
        ):
            if n:
                self.stats.note(split, what, n)
        got = signal.estimate_rate(t)
        if not _RATE_RANGE_HZ[0] <= got <= _RATE_RANGE_HZ[1]:
            raise RecordingError(
                "implausible_rate",
                f"{path}: median rate {got:.3g} Hz from {rec.time_column!r} "
                f"(time_unit wrong, or not a time column?)",
            )
        if rec.time_column and rate is not None and abs(got / rate - 1) > _RATE_TOLERANCE:
            raise RecordingError(
                "rate_mismatch",
                f"{path}: timestamps give {got:.4g} Hz, the manifest says rate_hz={rate:g}",
            )
        span, held = t[-1] - t[0], len(t) / got
        if span > _MAX_SPAN_FACTOR * held + 60.0:
            raise RecordingError(
                "implausible_timestamps",
                f"{path}: timestamps span {span:.4g} s but hold {held:.4g} s of samples "
                "(a corrupt timestamp?)",
            )
        return t, x

    @staticmethod
    def _check_units(rec, where: str, acc: np.ndarray | None, gyro: np.ndarray | None) -> None:
        """``acc`` (N, 3) / ``gyro`` (N, 3), converted to SI, must look like gravity-including
        m/s² and rad/s; otherwise the file is not what the manifest says."""
        if acc is not None and signal.guess_acc_unit(acc) != "m/s2":
            looks = {"g": "like g"}.get(signal.guess_acc_unit(acc), "like no unit with gravity")
            raise RecordingError(
                "units_mismatch",
                f"{where}: acc declared {rec.acc_unit!r}, but its median norm looks {looks}",
            )
        if gyro is not None:
            p99 = float(np.percentile(np.abs(gyro), 99))
            if p99 > _GYRO_MAX_RAD_S:
                raise RecordingError(
                    "units_mismatch",
                    f"{where}: gyro declared {rec.gyro_unit!r}, but reaches {p99:.0f} rad/s "
                    "(deg/s declared as rad/s?)",
                )

    @staticmethod
    def _si(rec, x: np.ndarray, part: slice) -> np.ndarray:
        """Columns ``part`` of the 6 channels (``x`` holds only those) in SI units."""
        full = np.zeros((x.shape[0], 6))
        full[:, part] = x
        return signal.to_si(full, rec.acc_unit, rec.gyro_unit)[:, part]

    def _grid(self, split: str, rec: manifest_lib.Recording) -> event_windows.GridStream:
        max_gap = self._manifest.max_gap_s
        acc, gyro = slice(0, 3), slice(3, 6)
        if "all" in rec.files:
            t, x = self._load_stream(split, rec, "all", slice(0, 6))
            self._check_units(rec, rec.files["all"], x[:, acc], x[:, gyro])
            origin = t[0] if rec.time_origin == "first_sample" else 0.0
            return event_windows.to_grid(t - origin, x, max_gap_s=max_gap)
        ta, a = self._load_stream(split, rec, "acc", acc)
        tg, g = self._load_stream(split, rec, "gyro", gyro)
        self._check_units(rec, rec.files["acc"], a, None)
        self._check_units(rec, rec.files["gyro"], None, g)
        origin = min(ta[0], tg[0]) if rec.time_origin == "first_sample" else 0.0
        ga = event_windows.to_grid(ta - origin, a, max_gap_s=max_gap)
        gg = event_windows.to_grid(tg - origin, g, max_gap_s=max_gap)
        k0 = max(ga.k0, gg.k0)
        k1 = min(ga.k0 + len(ga.x), gg.k0 + len(gg.x))
        if k1 - k0 < WINDOW_LEN:
            raise signal.CoverageError(
                f"acc and gyro overlap by {max(k1 - k0, 0) / RATE_HZ:.2f} s, less than a window"
            )
        ia, ig = slice(k0 - ga.k0, k1 - ga.k0), slice(k0 - gg.k0, k1 - gg.k0)
        return event_windows.GridStream(
            k0,
            np.concatenate([ga.x[ia], gg.x[ig]], axis=1),
            ga.valid[ia] & gg.valid[ig],
        )

    def _optional(self, split, rec, path, what, reader):
        if path is None:
            return None
        if not os.path.isfile(path):
            self._skip(split, "missing_file", f"{path} ({what} of {rec.id})")
            return None
        try:
            rows, bad = reader(path)
        except raw_io.MalformedFileError as e:
            self._skip(split, f"malformed_{what}", str(e))
            return None
        if bad:
            self.stats.skip(split, f"bad_{what}_row", path, n=bad)
        return rows

    def _recording(self, split: str, rec: manifest_lib.Recording, label_rows: list) -> list:
        where = ", ".join(os.path.basename(p) for p in rec.files.values())
        missing = [p for p in rec.files.values() if not os.path.isfile(p)]
        if missing:
            self._skip(split, "missing_file", f"{rec.id}: {', '.join(missing)} not found")
            return []
        try:
            stream = self._grid(split, rec)
        except RecordingError as e:
            self._skip(split, e.reason, f"{rec.id}: {e}")
            return []
        except raw_io.MalformedFileError as e:
            self._skip(split, "malformed_file", f"{rec.id}: {e}")
            return []
        except ValueError as e:  # CoverageError: shorter than a window; too few samples
            self._skip(split, "unusable_recording", f"{rec.id} ({where}): {e}")
            return []
        narrations = self._optional(
            split, rec, rec.narrations, "narration", readers.read_narrations
        )
        video = self._optional(
            split, rec, rec.video_emb, "video_emb", readers.read_video_embeddings
        )
        if video:
            dim = next(iter(video.values())).shape[0]
            if self._video_dim and dim != self._video_dim:
                self._skip(
                    split,
                    "video_emb_dim_mismatch",
                    f"{rec.video_emb}: {dim}-d, others {self._video_dim}-d",
                )
                video = None
            else:
                self._video_dim = dim
        known = {n: i for i, n in enumerate(self._classes)}
        intervals = []
        for s, e, name in label_rows:
            if name not in known:
                self.stats.skip(split, "unknown_class", f"{rec.labels}: {name!r}")
                continue
            intervals.append((s, e, known[name]))
        if self._manifest.windows == "narration":
            cuts = self._narration_windows(split, rec, stream, narrations or [])
        else:
            cuts = self._sliding_windows(split, rec, where, stream, narrations or [])
        out = []
        for start_s, win, text in cuts:
            label = self._label(start_s, intervals)
            emb = None
            if video is not None:
                emb = video.get(round(start_s * 1000))
                if emb is None:
                    self.stats.note(split, "windows_without_video_emb")
            try:
                ex = self._example(
                    split,
                    imu=win,
                    recording=rec.id,
                    subject=rec.subject,
                    start_s=start_s,
                    label=label,
                    text=text,
                    video_emb=emb,
                )
            except ValueError as e:  # a bug here, not bad input: fail, naming the files
                raise ValueError(f"imu_folder: {rec.id} ({where}): {e}") from e
            out.append(ex)
        logging.info(
            "imu_folder: %s (subject %s, %s): %d windows from %s",
            rec.id,
            rec.subject,
            split,
            len(out),
            where,
        )
        return out

    def _sliding_windows(self, split, rec, where, stream, narrations):
        hop = self._manifest.hop_s
        n_total = signal.window_starts(len(stream.x), RATE_HZ, segment_format.WINDOW_S, hop).size
        if n_total == 0:
            self._skip(split, "shorter_than_window", f"{rec.id} ({where})")
            return
        starts, wins = signal.windows(
            stream.x, RATE_HZ, segment_format.WINDOW_S, hop, valid=stream.valid
        )
        if len(starts) < n_total:
            self.stats.skip(split, "window_across_gap", rec.id, n=n_total - len(starts))
        times = np.array([t for t, _ in narrations])
        used = set()
        for s, w in zip(starts, wins):
            start_s = (stream.k0 + int(s)) / RATE_HZ
            text = ""
            if times.size:
                inside = np.flatnonzero(
                    (times >= start_s) & (times < start_s + segment_format.WINDOW_S)
                )
                if inside.size:
                    j = inside[
                        np.argmin(np.abs(times[inside] - start_s - segment_format.WINDOW_S / 2))
                    ]
                    text, _ = narrations[j][1], used.add(int(j))
            yield start_s, w, text
        if len(used) < len(narrations):
            self.stats.note(split, "narrations_not_used", len(narrations) - len(used))

    def _narration_windows(self, split, rec, stream, narrations):
        if not narrations:
            self.stats.note(split, "recordings_without_narrations")
            return
        for status, start_s, win, (t, text) in event_windows.cut(
            stream, [(t, (t, text)) for t, text in narrations]
        ):
            if status == "duplicate":
                self.stats.note(split, "narrations_sharing_a_window")
            elif status != "ok":
                self.stats.skip(split, f"narration_{status}", f"{rec.id} narration at {t:.2f} s")
            else:
                yield start_s, win, text

    def _label(self, start_s: float, intervals) -> int:
        """The class covering at least ``label_coverage`` of the window, else -1."""
        cover = collections.Counter()
        end_s = start_s + segment_format.WINDOW_S
        for s, e, c in intervals:
            cover[c] += max(0.0, min(e, end_s) - max(s, start_s))
        if not cover:
            return segment_format.UNLABELLED
        c, got = max(sorted(cover.items()), key=lambda kv: kv[1])
        need = self._manifest.label_coverage * segment_format.WINDOW_S
        return c if got >= need - 1e-9 and not math.isclose(got, 0.0) else segment_format.UNLABELLED
