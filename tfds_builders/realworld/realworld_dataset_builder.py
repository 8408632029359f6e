"""RealWorld HAR 2016 (Sztyler & Stuckenschmidt), head position, as 5 s, 50 Hz segments.

Per (subject, activity, session): the head phone's accelerometer and gyroscope CSVs are put on
one 50 Hz grid over their overlap (``signal.align_streams``), then cut into 5 s windows with a
2.5 s hop. acc and gyr are paired by activity when each has one session, else by session
(the session zip's index, else the CSV name's). The archive is read where it lies, zipped or
not. See README.md for splits and the archive's quirks.
"""

from __future__ import annotations

import collections
import io
import zipfile
from typing import ClassVar

import numpy as np
import tensorflow_datasets as tfds
from absl import logging

from primus_jax.data import signal
from tfds_builders import raw_io, segment_format, splits
from tfds_builders.realworld import archive
from tfds_builders.segment_builder import SegmentBuilder

URL = "http://wifo5-14.informatik.uni-mannheim.de/sensor/dataset/realworld2016/realworld2016_dataset.zip"
POSITION = "head"  # matches the head-worn Aria glasses of the pretraining data
RATE_HZ = 50
HOP_S = 2.5
MAX_GAP_S = 0.1  # a longer hole in either stream invalidates the windows across it
_RATE_RANGE_HZ = (5.0, 1000.0)  # outside: timestamps are not in milliseconds, or corrupt
LABEL_NAMES = (
    "climbing_down",
    "climbing_up",
    "jumping",
    "lying",
    "running",
    "sitting",
    "standing",
    "walking",
)
# Zero-shot prompts per class, in LABEL_NAMES order: the reference's TEXT_PROMPTS verbatim
# (Nokia-Bell-Labs/pretrained-imu-encoders at b34169b = 6deb825^, downstream_evaluation/
# classification_downstream_realworld.py:50-59), 9 per class. The builder writes them to
# info.metadata["class_prompts"].
CLASS_PROMPTS = (
    (
        "climbing down",
        "descending a steep slope",
        "scaling down a rocky cliff",
        "lowering themselves from a tree branch",
        "moving down a ladder",
        "carefully stepping down a hillside",
        "clambering down a pile of rubble",
        "making their way down a narrow stairway",
        "edging down a steep embankment",
    ),
    (
        "climbing up",
        "ascending a tall ladder",
        "climbing a steep hill",
        "hoisting themselves up a wall",
        "scrambling up a rocky path",
        "pulling themselves onto a rooftop",
        "climbing up a tree trunk",
        "scaling a vertical rock face",
        "making their way up a flight of stairs",
    ),
    (
        "jumping",
        "leaping over a puddle",
        "jumping from one rock to another",
        "springing into the air",
        "hopping across stepping stones",
        "vaulting over a fence",
        "bouncing on a trampoline",
        "jumping off a low wall",
        "taking a leap of faith",
    ),
    (
        "lying down",
        "resting on a soft bed of grass",
        "sprawled out on a beach towel",
        "lying on a comfortable couch",
        "relaxing on a picnic blanket",
        "stretched out under the shade of a tree",
        "lounging on a hammock",
        "reclining on a park bench",
        "lying flat on the ground, staring at the sky",
    ),
    (
        "running",
        "sprinting across a finish line",
        "jogging through a park",
        "dashing down a city street",
        "running away from a pursuer",
        "racing along a beach",
        "chasing after a runaway pet",
        "running in a marathon",
        "fleeing from danger",
    ),
    (
        "sitting",
        "perched on a barstool",
        "sitting cross-legged on the floor",
        "relaxing in an armchair",
        "sitting on a park bench",
        "perched on a windowsill",
        "sitting on the edge of a dock",
        "seated at a dining table",
        "sitting on a swing",
    ),
    (
        "standing",
        "standing tall on a mountaintop",
        "waiting in line",
        "standing at attention",
        "leaning against a wall",
        "standing on a podium",
        "waiting for a bus",
        "standing in a field of flowers",
        "standing in a shallow stream",
    ),
    (
        "walking",
        "strolling through a forest",
        "walking along a beach",
        "meandering through a marketplace",
        "hiking on a mountain trail",
        "walking a dog in the park",
        "wandering through a museum",
        "walking in the rain with an umbrella",
        "walking across a bridge",
    ),
)
# Subject-wise split of the 15 probands, from splits.assign_groups (salt below; 9/2/4).
SPLIT_FRACTIONS = {"train": 9 / 15, "val": 2 / 15, "test": 4 / 15}
_SALT = "realworld/v1"
_CSV_COLUMNS = ("attr_time", "attr_x", "attr_y", "attr_z")


def subject_splits() -> dict[int, str]:
    """``{proband: split}``: train 2,4,7,9,10,11,12,14,15; val 1,13; test 3,5,6,8."""
    assigned = splits.assign_groups({str(s): 0 for s in range(1, 16)}, SPLIT_FRACTIONS, _SALT)
    return {int(s): split for s, split in assigned.items()}


def _read_sensor(f: archive.SensorFile) -> tuple[np.ndarray, np.ndarray]:
    """``(t seconds, (N, 3) values)`` of one CSV."""
    cols = raw_io.read_csv_columns(io.BytesIO(f.read()), _CSV_COLUMNS, name=f.where)
    t = cols["attr_time"] / 1000.0  # Unix epoch milliseconds
    return t, np.stack([cols["attr_x"], cols["attr_y"], cols["attr_z"]], axis=1)


class Builder(SegmentBuilder):
    """RealWorld HAR 2016 head-position segments: 8 activities, subject-wise splits."""

    VERSION = tfds.core.Version("1.1.0")
    RELEASE_NOTES: ClassVar[dict[str, str]] = {
        "1.0.0": "Initial release.",
        "1.1.0": "acc/gyr paired by activity or session-zip index; archive read in place.",
    }
    LABEL_NAMES = LABEL_NAMES
    CLASS_PROMPTS = CLASS_PROMPTS
    HOMEPAGE = "https://www.uni-mannheim.de/dws/research/projects/activity-recognition/dataset/dataset-realworld/"
    BUILDER_CONFIGS: ClassVar[list[segment_format.SegmentConfig]] = [
        segment_format.SegmentConfig(name="raw", description="Head IMU and labels; no text."),
    ]
    MANUAL_DOWNLOAD_INSTRUCTIONS = f"""
    Optional: without a manual directory the archive is downloaded from {URL}
    (and read in place, never extracted). Otherwise put `realworld2016_dataset.zip` itself in
    the manual directory, or its contents, extracted or not:
    `<manual_dir>/**/proband<N>/data/{{acc,gyr}}_<activity>_csv.zip` (zips may stay zipped;
    hand-extracted `acc_<activity>_head.csv` files work too).
    """

    def _split_generators(self, dl_manager: tfds.download.DownloadManager):
        manual = self._optional_manual_dir(dl_manager)
        root = manual if manual is not None and archive.find_subjects(manual) else None
        if root is None:
            root = dl_manager.download(URL)  # the zip itself: read in place, not extracted
        subjects = archive.find_subjects(root)
        if not subjects:
            raise FileNotFoundError(f"realworld: no proband<N> directories under {root}")
        self.info.metadata["source"] = str(root)
        by_subject = subject_splits()
        self.info.metadata["subjects"] = {
            s: sorted(p for p, v in by_subject.items() if v == s) for s in SPLIT_FRACTIONS
        }
        per_split = collections.defaultdict(dict)
        for subject, directory in subjects.items():
            if subject not in by_subject:
                self.stats.skip("all", "unknown_subject", str(directory))
                continue
            per_split[by_subject[subject]][subject] = directory
        empty = [s for s in SPLIT_FRACTIONS if not per_split[s]]
        if empty:  # e.g. a partial download; TFDS cannot write an empty split
            logging.warning("realworld: no probands for split(s) %s; not written", empty)
        return {s: self._generate_examples(s, v) for s, v in per_split.items() if v}

    def _generate_examples(self, split: str, subjects: dict):
        n_written = 0
        for subject, folder in sorted(subjects.items()):
            by_activity = collections.defaultdict(lambda: collections.defaultdict(list))
            on_error = lambda reason, where: self.stats.skip(split, reason, where)
            for f in archive.find_files(subject, folder, on_error):
                if f.position == POSITION:
                    by_activity[f.activity][f.sensor].append(f)
            for activity, sensors in sorted(by_activity.items()):
                for session, files in self._pair(split, sensors):
                    for ex in self._recording(split, subject, activity, session, files):
                        n_written += 1
                        yield ex
        self._finish_split(split)
        if not n_written:  # TFDS cannot write an empty split: say which probands emptied it
            raise ValueError(
                f"realworld: split {split!r} has no usable window; every recording of "
                f"{[str(f) for f in subjects.values()]} was skipped "
                f"({dict(self.stats.events[split])}); see the warnings above"
            )

    def _pair(self, split: str, sensors: dict) -> list[tuple[int, dict]]:
        """``[(session, {"acc": f, "gyr": f})]`` of one (subject, activity).

        One session per sensor: paired whatever their session numbers (e.g. an acc CSV named
        ``_2_`` with a gyr CSV that is not), session 0. Otherwise by session, a file without a
        number counting as session 1.
        """
        acc, gyr = sensors.get("acc", []), sensors.get("gyr", [])
        if len(acc) == 1 and len(gyr) == 1:
            if acc[0].session != gyr[0].session:
                self.stats.note(split, "sessions_paired_by_activity")
            return [(0, {"acc": acc[0], "gyr": gyr[0]})]
        pairs: dict[int, dict] = collections.defaultdict(dict)
        for f in acc + gyr:
            files = pairs[f.session or 1]
            if f.sensor in files:
                self.stats.skip(
                    split, "duplicate_file", f"{f.where} (kept {files[f.sensor].where})"
                )
                continue
            files[f.sensor] = f
        if len(pairs) == 1:
            return [(0, next(iter(pairs.values())))]
        return sorted(pairs.items())

    def _recording(self, split: str, subject: int, activity: str, session: int, files: dict):
        recording = f"proband{subject:02d}_{activity}" + (f"_{session}" if session else "")
        if set(files) != {"acc", "gyr"}:
            have = next(iter(files.values())).where
            self.stats.skip(split, "missing_file", f"{recording}: only {sorted(files)} ({have})")
            return
        where = f"{recording} ({files['acc'].where}, {files['gyr'].where})"
        try:
            (acc_t, acc), (gyr_t, gyr) = _read_sensor(files["acc"]), _read_sensor(files["gyr"])
            cleaned = []
            for t, x in ((acc_t, acc), (gyr_t, gyr)):
                t, x, report = signal.clean_timestamps(t, x)
                for what, n in (
                    ("rows_dropped_nonfinite", report.n_nonfinite),
                    ("rows_dropped_duplicate_time", report.n_duplicates),
                    ("files_reordered", int(report.reordered)),
                ):
                    if n:
                        self.stats.note(split, what, n)
                rate = signal.estimate_rate(t)
                if not _RATE_RANGE_HZ[0] <= rate <= _RATE_RANGE_HZ[1]:
                    raise ValueError(f"median rate {rate:.3g} Hz: timestamps not in ms?")
                cleaned.append((t, x))
            (acc_t, acc), (gyr_t, gyr) = cleaned
            if signal.guess_acc_unit(acc) != "m/s2":
                raise ValueError("accelerometer norm is not ~9.8 m/s²")
            r = signal.align_streams(acc_t, acc, gyr_t, gyr, RATE_HZ, max_gap_s=MAX_GAP_S)
        except raw_io.MalformedFileError as e:
            self.stats.skip(split, "malformed_file", f"{where}: {e}")
            return
        except zipfile.BadZipFile as e:  # a damaged member, found only when read
            self.stats.skip(split, "bad_zip", f"{where}: {e}")
            return
        except signal.CoverageError as e:
            self.stats.skip(split, "no_overlap", f"{where}: {e}")
            return
        except ValueError as e:  # too few samples, implausible rate or units
            self.stats.skip(split, "unusable_recording", f"{where}: {e}")
            return
        n_total = signal.window_starts(len(r.t), RATE_HZ, segment_format.WINDOW_S, HOP_S).size
        if n_total == 0:
            self.stats.skip(split, "shorter_than_window", f"{recording}: {r.t[-1] - r.t[0]:.1f} s")
            return
        starts, wins = signal.windows(r.x, RATE_HZ, segment_format.WINDOW_S, HOP_S, valid=r.valid)
        if len(starts) < n_total:
            self.stats.skip(split, "window_across_gap", recording, n=n_total - len(starts))
        for s, w in zip(starts, wins):
            if not np.isfinite(w.astype(np.float32)).all():  # e.g. 1e300 in a cell
                self.stats.skip(split, "window_nonfinite", f"{where} at {s / RATE_HZ:.2f} s")
                continue
            yield self._example(
                split,
                imu=w,
                recording=recording,
                subject=f"proband{subject:02d}",
                start_s=s / RATE_HZ,
                label=archive.ACTIVITIES.index(activity),  # same order as LABEL_NAMES
            )
