"""Ego4D IMU around narrations, as 5 s, 50 Hz segments with 10 scenario classes.

One window per camera-wearer narration (``#C``), centred on its timestamp and clamped into
the IMU's coverage (``signal.window_around``). Labels are video-level scenario classes from
``ego4d.json``. Splits are video-disjoint. See README.md.
"""

from __future__ import annotations

import collections
from typing import ClassVar

import numpy as np
import tensorflow_datasets as tfds
from absl import logging

from primus_jax.data import signal
from tfds_builders import event_windows, raw_io, segment_format, splits
from tfds_builders.ego4d import ego4d_meta
from tfds_builders.segment_builder import SegmentBuilder

MAX_GAP_S = 0.1
SPLIT_FRACTIONS = {"train": 0.6, "val": 0.1, "test": 0.3}
_SALT = "ego4d/v1"
_RATE_RANGE_HZ = (20.0, 2000.0)
# Ego4D IMU CSV columns; gyro comes before accel in the file.
_TIME = "canonical_timestamp_ms"  # milliseconds on the canonical video's timeline
_CHANNELS = ("accl_x", "accl_y", "accl_z", "gyro_x", "gyro_y", "gyro_z")
_ALIASES = {c: (c.replace("accl", "acc"),) for c in _CHANNELS[:3]}


class Builder(SegmentBuilder):
    """Ego4D narration-centred IMU segments; 10 video-level scenario classes."""

    VERSION = tfds.core.Version("1.0.0")
    RELEASE_NOTES: ClassVar[dict[str, str]] = {"1.0.0": "Initial release."}
    LABEL_NAMES = ego4d_meta.SCENARIO_CLASSES
    CLASS_PROMPTS = ego4d_meta.CLASS_PROMPTS
    HOMEPAGE = "https://ego4d-data.org/"
    BUILDER_CONFIGS: ClassVar[list[segment_format.SegmentConfig]] = [
        segment_format.SegmentConfig(
            name="raw", description="IMU, scenario labels and cleaned narrations."
        ),
        segment_format.clip4clip_config(),
    ]
    MANUAL_DOWNLOAD_INSTRUCTIONS = """
    Ego4D needs a signed licence (https://ego4d-data.org/docs/start-here/). With the Ego4D CLI:
    `ego4d --output_directory <manual_dir> --datasets imu annotations metadata`, giving
    `<manual_dir>/ego4d.json`, `<manual_dir>/v2/annotations/narration.json` and
    `<manual_dir>/v2/imu/<video_uid>.csv` (`v2_1/` is accepted too). Embedding configs also
    need `<manual_dir>/embeddings/<store>/` (see docs/data.md).
    """

    def _split_generators(self, dl_manager: tfds.download.DownloadManager):
        root = dl_manager.manual_dir
        meta_path = ego4d_meta.find_file(root, ("ego4d.json", "v2/ego4d.json", "v2_1/ego4d.json"))
        narr_path = ego4d_meta.find_file(
            root, ("v2/annotations/narration.json", "v2_1/annotations/narration.json")
        )
        imu_dir = ego4d_meta.imu_dir(root)
        if meta_path is None or narr_path is None or imu_dir is None:
            raise FileNotFoundError(
                f"ego4d: need ego4d.json, v2/annotations/narration.json and v2/imu/ under "
                f"{root}; found {meta_path}, {narr_path}, {imu_dir}"
            )
        videos = ego4d_meta.load_videos(meta_path)
        imu_files = {
            p.name[: -len(".csv")]: p
            for p in imu_dir.iterdir()
            if p.name.endswith(".csv") and ego4d_meta.is_uid(p.name[: -len(".csv")])
        }
        narrations = ego4d_meta.load_narrations(
            narr_path, set(imu_files), self.builder_config.narrators
        )
        labels = {}
        for uid in sorted(imu_files):
            if uid not in videos:
                self.stats.note("all", "videos_not_in_ego4d_json")
                labels[uid] = -1
                continue
            labels[uid], status = ego4d_meta.scenario_class(videos[uid].get("scenarios") or [])
            if status != "ok":
                self.stats.note("all", f"videos_{status}_scenario")
        assigned = splits.assign_groups(labels, SPLIT_FRACTIONS, _SALT)
        self._open_stores(root)
        per_split = collections.defaultdict(list)
        for uid in sorted(imu_files):
            per_split[assigned[uid]].append(uid)
        self._videos, self._imu_files = videos, imu_files
        self._narrations, self._labels = narrations, labels
        self.info.metadata["videos"] = {s: len(v) for s, v in sorted(per_split.items())}
        empty = [s for s in SPLIT_FRACTIONS if not per_split[s]]
        if empty:
            logging.warning("ego4d: no videos for split(s) %s; not written", empty)
        return {s: self._generate_examples(s, v) for s, v in per_split.items() if v}

    def _read_imu(self, split: str, uid: str) -> tuple[np.ndarray, np.ndarray]:
        path = self._imu_files[uid]
        with path.open("rb") as f:
            cols = raw_io.read_csv_columns(f, (_TIME, *_CHANNELS), name=str(path), aliases=_ALIASES)
        t = cols[_TIME] / 1000.0
        x = np.stack([cols[c] for c in _CHANNELS], axis=1)
        t, x, report = signal.clean_timestamps(t, x)
        if report.n_nonfinite or report.n_duplicates:
            self.stats.note(split, "rows_dropped", report.n_nonfinite + report.n_duplicates)
        rate = signal.estimate_rate(t)
        if not _RATE_RANGE_HZ[0] <= rate <= _RATE_RANGE_HZ[1]:
            raise ValueError(f"{path}: median rate {rate:.3g} Hz; timestamps not in ms?")
        unit = signal.guess_acc_unit(x[:, :3])
        if unit is None:
            raise ValueError(f"{path}: accelerometer norm is neither ~1 g nor ~9.8 m/s²")
        if unit == "g":
            self.stats.note(split, "videos_acc_in_g_converted")
        return t, signal.to_si(x, acc_unit=unit, gyro_unit="rad/s")

    def _generate_examples(self, split: str, uids: list[str]):
        for uid in uids:
            events = [(n.t, n) for n in self._narrations.get(uid, [])]
            if not events:
                self.stats.skip(split, "video_without_narrations", uid)
                continue
            try:
                t, x = self._read_imu(split, uid)
                duration = self._videos.get(uid, {}).get("duration_sec")
                t_max = float(duration) if duration is not None else None
                stream = event_windows.to_grid(t, x, max_gap_s=MAX_GAP_S, t_max=t_max)
            except raw_io.MalformedFileError as e:
                self.stats.skip(split, "malformed_file", str(e), n=len(events))
                continue
            except ValueError as e:  # incl. CoverageError
                self.stats.skip(split, "unusable_imu", f"{uid}: {e}", n=len(events))
                continue
            for status, start_s, win, narr in event_windows.cut(stream, events):
                if status == "duplicate":  # e.g. two narrations clamped to a recording edge
                    self.stats.note(split, "narrations_sharing_a_window")
                    continue
                if status != "ok":
                    self.stats.skip(
                        split, f"narration_{status}", f"{uid} narration at {narr.t:.2f} s"
                    )
                    continue
                yield self._example(
                    split,
                    imu=win,
                    recording=uid,
                    subject=uid,  # Ego4D metadata has no participant id we can rely on
                    start_s=start_s,
                    label=self._labels[uid],
                    text=narr.text,
                )
        self._finish_split(split)
