"""Ego4D IMU around narrations, as 5 s, 50 Hz segments with 10 scenario classes.

One window per camera-wearer narration (``#C``), centred on its timestamp and clamped into
the IMU's coverage (``signal.window_around``). Labels are video-level scenario classes from
``ego4d.json`` (the reference's exact rule by default). Splits are participant-disjoint by
default, or the reference's 80/10/10 video split. See README.md.
"""

from __future__ import annotations

import collections
import dataclasses
import itertools
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
SPLIT_SCHEMES = ("participant", "video", "reference")
# Bins of the per-file median |acc| logged after each split: below, inside and between the
# two accepted ranges of signal.guess_acc_unit (g: [0.5, 2], m/s²: [5, 20]).
ACC_NORM_EDGES = (0.0, 0.5, 2.0, 5.0, 20.0, float("inf"))


@dataclasses.dataclass(eq=False)
class Ego4DConfig(segment_format.SegmentConfig):
    """An Ego4D config: embedding stores plus the labelling rule and the split scheme.

    Attributes:
        scenario_rule: ``"reference"`` (PRIMUS's exact single-scenario rule) or ``"keyword"``
            (substring match, the builder's rule before 1.1.0); see
            ``ego4d_meta.scenario_class``.
        split: ``"participant"``: participant-disjoint 60/10/30 (``fb_participant_id``;
            videos without one are their own group), stratified by label. ``"video"``: the
            same over videos (the split before 1.1.0). ``"reference"``: the reference's
            80/10/10 video split, seed 42 (``ego4d_meta.reference_split``).
    """

    scenario_rule: str = "reference"
    split: str = "participant"


class Builder(SegmentBuilder):
    """Ego4D narration-centred IMU segments; 10 video-level scenario classes."""

    VERSION = tfds.core.Version("1.1.0")
    RELEASE_NOTES: ClassVar[dict[str, str]] = {
        "1.0.0": "Initial release.",
        "1.1.0": "Reference scenario rule, participant-disjoint splits, acc-norm log.",
    }
    LABEL_NAMES = ego4d_meta.SCENARIO_CLASSES
    CLASS_PROMPTS = ego4d_meta.CLASS_PROMPTS
    HOMEPAGE = "https://ego4d-data.org/"
    BUILDER_CONFIGS: ClassVar[list[segment_format.SegmentConfig]] = [
        Ego4DConfig(name="raw", description="IMU, scenario labels and cleaned narrations."),
        segment_format.clip4clip_config(),
        Ego4DConfig(
            name="raw_keyword",
            description="As raw, labels by the keyword rule (any scenario containing a "
            "class keyword; noisier, larger classes).",
            scenario_rule="keyword",
        ),
        Ego4DConfig(
            name="raw_reference_split",
            description="As raw, with the reference's 80/10/10 video split (seed 42).",
            split="reference",
        ),
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
        cfg = self.builder_config
        rule = getattr(cfg, "scenario_rule", "reference")
        scheme = getattr(cfg, "split", "participant")
        if rule not in ego4d_meta.SCENARIO_RULES:
            raise ValueError(
                f"config {cfg.name!r}: scenario_rule {rule!r} not in {ego4d_meta.SCENARIO_RULES}"
            )
        if scheme not in SPLIT_SCHEMES:
            raise ValueError(f"config {cfg.name!r}: split {scheme!r} not in {SPLIT_SCHEMES}")
        videos = ego4d_meta.load_videos(meta_path)
        imu_files = {
            p.name[: -len(".csv")]: p
            for p in imu_dir.iterdir()
            if p.name.endswith(".csv") and ego4d_meta.is_uid(p.name[: -len(".csv")])
        }
        try:
            narrations = ego4d_meta.load_narrations(
                narr_path, set(imu_files), self.builder_config.narrators
            )
        except (AttributeError, TypeError, ValueError) as e:  # a damaged or foreign file
            raise ValueError(f"{narr_path}: unexpected content ({e})") from e
        labels, subjects = {}, {}
        for uid in sorted(imu_files):
            video = videos.get(uid)
            if video is None:
                self.stats.note("all", "videos_not_in_ego4d_json")
                labels[uid], subjects[uid] = -1, uid
                continue
            labels[uid], status = ego4d_meta.scenario_class(video.get("scenarios") or [], rule)
            if status != "ok":
                suffix = "" if status.endswith("scenario") else "_scenario"
                self.stats.note("all", f"videos_{status}{suffix}")
            subjects[uid] = ego4d_meta.participant(video) or uid
            if subjects[uid] == uid:
                self.stats.note("all", "videos_without_participant_id")
        assigned = self._assign(scheme, videos, labels, subjects)
        self._open_stores(root)
        per_split = collections.defaultdict(list)
        for uid in sorted(imu_files):
            if uid not in assigned:  # reference split: not one of its 15 scenarios
                self.stats.note("all", "videos_outside_reference_split")
                continue
            per_split[assigned[uid]].append(uid)
        self._videos, self._imu_files, self._subjects = videos, imu_files, subjects
        self._narrations, self._labels = narrations, labels
        self._acc_norms: dict[str, float] = {}
        self.info.metadata["scenario_rule"], self.info.metadata["split"] = rule, scheme
        self.info.metadata["videos"] = {s: len(v) for s, v in sorted(per_split.items())}
        empty = [s for s in SPLIT_FRACTIONS if not per_split[s]]
        if empty:
            logging.warning("ego4d: no videos for split(s) %s; not written", empty)
        return {s: self._generate_examples(s, v) for s, v in per_split.items() if v}

    @staticmethod
    def _assign(scheme: str, videos: dict, labels: dict, subjects: dict) -> dict[str, str]:
        """``{video_uid: split}`` of the IMU videos under the config's split scheme."""
        if scheme == "reference":
            ref = ego4d_meta.reference_split(list(videos.values()))
            return {uid: ref[uid] for uid in labels if uid in ref}
        if scheme == "video":
            return splits.assign_groups(labels, SPLIT_FRACTIONS, _SALT)
        # Participant-disjoint: a participant's stratum is their most common label.
        by_group = collections.defaultdict(collections.Counter)
        for uid, label in labels.items():
            by_group[subjects[uid]][label] += 1
        strata = {g: min(c, key=lambda lab: (-c[lab], lab)) for g, c in by_group.items()}
        group_split = splits.assign_groups(strata, SPLIT_FRACTIONS, _SALT)
        return {uid: group_split[subjects[uid]] for uid in labels}

    def _read_imu(self, split: str, uid: str) -> tuple[np.ndarray, np.ndarray]:
        """``(t seconds, (N, 6) SI values)``; ``_Rejected`` says why a file is unusable."""
        path = self._imu_files[uid]
        with path.open("rb") as f:
            cols = raw_io.read_csv_columns(f, (_TIME, *_CHANNELS), name=str(path), aliases=_ALIASES)
        t = cols[_TIME] / 1000.0
        x = np.stack([cols[c] for c in _CHANNELS], axis=1)
        n_rows = len(t)
        if n_rows and np.isnan(x[:, :3]).all(axis=1).mean() > 0.5:
            raise _Rejected("acc_missing", f"accelerometer empty in {n_rows} rows")
        try:
            t, x, report = signal.clean_timestamps(t, x)
        except ValueError as e:
            raise _Rejected("no_usable_rows", str(e)) from e
        if report.n_nonfinite or report.n_duplicates:
            self.stats.note(split, "rows_dropped", report.n_nonfinite + report.n_duplicates)
        rate = signal.estimate_rate(t)
        if not _RATE_RANGE_HZ[0] <= rate <= _RATE_RANGE_HZ[1]:
            raise _Rejected("rate_implausible", f"median rate {rate:.3g} Hz; timestamps not in ms?")
        norm = float(np.median(np.linalg.norm(x[:, :3], axis=1)))
        self._acc_norms[uid] = norm
        if np.mean(x[:, 1] == x[:, 2]) > 0.9:  # as the published sample; logged, not rejected
            self.stats.note(split, "videos_acc_y_equals_z")
            logging.warning("ego4d: %s: accl_y == accl_z in most rows", path)
        unit = signal.guess_acc_unit(x[:, :3])
        if unit is None:
            raise _Rejected(
                "acc_norm_implausible",
                f"median accelerometer norm {norm:.3g}: neither ~1 g nor ~9.8 m/s²",
            )
        if unit == "g":
            self.stats.note(split, "videos_acc_in_g_converted")
        return t, signal.to_si(x, acc_unit=unit, gyro_unit="rad/s")

    def _reject(self, split: str, uid: str, reason: str, why: str, n: int) -> None:
        """Counts a rejected IMU file and logs every one (not only the first few)."""
        logging.warning("ego4d [%s] rejected %s: %s: %s", split, self._imu_files[uid], reason, why)
        self.stats.note(split, f"skipped_imu_{reason}", n)

    def _log_acc_norms(self) -> None:
        """Logs and stores the distribution of per-file median |acc| seen so far."""
        norms = np.array(sorted(self._acc_norms.values()))
        if not norms.size:
            return
        counts, _ = np.histogram(norms, bins=np.array(ACC_NORM_EDGES))
        bins = [f"[{a:g}, {b:g})" for a, b in itertools.pairwise(ACC_NORM_EDGES)]
        q = dict(
            zip(("min", "p5", "p50", "p95", "max"), np.quantile(norms, [0, 0.05, 0.5, 0.95, 1]))
        )
        self.info.metadata["acc_norm_per_file"] = {
            "files": int(norms.size),
            "quantiles": {k: round(float(v), 4) for k, v in q.items()},
            "histogram": dict(zip(bins, (int(c) for c in counts))),
        }
        logging.info(
            "ego4d: median |acc| per file over %d files: %s; histogram %s",
            norms.size,
            ", ".join(f"{k}={v:.3g}" for k, v in q.items()),
            ", ".join(f"{b}: {c}" for b, c in zip(bins, counts)),
        )

    def _generate_examples(self, split: str, uids: list[str]):
        n_written = 0
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
            except _Rejected as e:
                self._reject(split, uid, e.reason, e.why, len(events))
                continue
            except signal.CoverageError as e:
                self._reject(split, uid, "too_short", str(e), len(events))
                continue
            except ValueError as e:  # anything else the signal code refuses
                self._reject(split, uid, "unusable", str(e), len(events))
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
                if not np.isfinite(win.astype(np.float32)).all():  # e.g. 1e300 in a cell
                    self.stats.skip(
                        split, "window_nonfinite", f"{self._imu_files[uid]} at {start_s:.2f} s"
                    )
                    continue
                n_written += 1
                yield self._example(
                    split,
                    imu=win,
                    recording=uid,
                    subject=self._subjects[uid],
                    start_s=start_s,
                    label=self._labels[uid],
                    text=narr.text,
                )
        self._log_acc_norms()
        self._finish_split(split)
        if not n_written:  # TFDS cannot write an empty split: say which files emptied it
            files = [str(self._imu_files[u]) for u in uids]
            raise ValueError(
                f"ego4d: split {split!r} has no usable window; its IMU files {files} were all "
                f"skipped ({dict(self.stats.events[split])}); see the warnings above"
            )


class _Rejected(ValueError):
    """An IMU file the builder cannot use, with a short reason for the counts."""

    def __init__(self, reason: str, why: str):
        super().__init__(f"{reason}: {why}")
        self.reason, self.why = reason, why
