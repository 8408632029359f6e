"""EgoExo4D Aria IMU around atomic descriptions, as 5 s, 50 Hz segments (PRIMUS pretraining).

One window per description of the first non-rejected annotation (camera wearer's only unless
``narrators="all"``; ``signal.window_around``: centred, clamped into the take, no
integer-second truncation), on the take timeline given by the capture's ``timesync.csv``;
every per-take failure is a counted skip; take-level labels from the take name (8 classes),
and splits that keep every downstream-evaluation take, and its participant, out of pretraining
and its validation: whole participants are assigned where ``takes.json`` has
``participant_uid``, single takes otherwise (``info.metadata["split_groups"]``).
See README.md.
"""

from __future__ import annotations

import collections
import os
from typing import ClassVar

import numpy as np
import tensorflow_datasets as tfds
from absl import logging

from primus_jax.data import signal
from tfds_builders import event_windows, narration, raw_io, segment_format
from tfds_builders.egoexo4d import aria_imu, egoexo_meta, timesync
from tfds_builders.segment_builder import SegmentBuilder

MAX_GAP_S = 0.1
SPLITS = ("train", "val", "downstream_train", "downstream_val", "downstream_test")
_RATE_RANGE_HZ = (20.0, 5000.0)


class Builder(SegmentBuilder):
    """EgoExo4D description-centred Aria IMU segments; 8 take-level classes."""

    VERSION = tfds.core.Version("1.2.0")
    RELEASE_NOTES: ClassVar[dict[str, str]] = {
        "1.0.0": "Initial release.",
        "1.1.0": "Splits disjoint by participant (takes.json participant_uid) where known; "
        "class prompts and text_from_labels in the metadata.",
        "1.2.0": "Time base from the capture's timesync.csv (was: first RGB frame or first IMU "
        "sample); IMU records with accel_valid/gyro_valid false dropped; first non-rejected "
        "annotation; only the camera wearer's descriptions (config narrators='wearer'); bad "
        "VRS files are counted skips.",
    }
    LABEL_NAMES = egoexo_meta.TAKE_CLASSES
    CLASS_PROMPTS = egoexo_meta.CLASS_PROMPTS
    HOMEPAGE = "https://ego-exo4d-data.org/"
    BUILDER_CONFIGS: ClassVar[list[segment_format.SegmentConfig]] = [
        segment_format.SegmentConfig(
            name="raw", description="IMU, take labels and cleaned atomic descriptions."
        ),
        segment_format.clip4clip_config(),
    ]
    MANUAL_DOWNLOAD_INSTRUCTIONS = """
    EgoExo4D needs a signed licence (https://docs.ego-exo4d-data.org/). With the EgoExo4D CLI
    download into <manual_dir>:
        egoexo -o <manual_dir> --parts metadata annotations take_vrs_noimagestream captures
    giving `takes.json`, `annotations/atomic_descriptions_{train,val}.json`,
    `takes/<take_name>/aria0N_noimagestreams.vrs` (the full `aria0N.vrs` of `take_vrs` works
    too) and `captures/<capture_name>/timesync.csv` (the take's time origin). Then either
    extract the IMU once with `python -m tfds_builders.egoexo4d.aria_imu <manual_dir>` (needs
    projectaria-tools), which writes `takes/<take_name>/imu.npz`, or install projectaria-tools
    and let the builder read the VRS files. Embedding configs also need
    `<manual_dir>/embeddings/<store>/`.
    """

    def _split_generators(self, dl_manager: tfds.download.DownloadManager):
        root = dl_manager.manual_dir
        paths = {
            "takes": root / "takes.json",
            "train": root / "annotations" / "atomic_descriptions_train.json",
            "val": root / "annotations" / "atomic_descriptions_val.json",
        }
        missing = [str(p) for p in paths.values() if not p.exists()]
        if not (root / "captures").is_dir():
            missing.append(f"{root / 'captures'} (--parts captures: timesync.csv)")
        if missing:
            raise FileNotFoundError(f"egoexo4d: missing {missing}")
        narrators = narration.check_narrators(self.builder_config.narrators)
        takes = egoexo_meta.load_takes(paths["takes"])
        note = lambda what: self.stats.note("all", what)
        desc = {}
        for official in ("train", "val"):
            d = egoexo_meta.load_descriptions(paths[official], note, narrators)
            unknown = [u for u in d if u not in takes]
            for u in unknown:
                self.stats.skip("all", "take_not_in_takes_json", f"{u} ({official})")
                del d[u]
            desc[official] = d
        assigned = egoexo_meta.assign_splits(set(desc["train"]), set(desc["val"]), takes, note)
        per_split = collections.defaultdict(list)
        for uid, split in sorted(assigned.items()):
            events = desc["train"][uid] if split in ("train", "val") else desc["val"][uid]
            per_split[split].append((takes[uid], events))
        self.info.metadata["takes"] = {s: len(v) for s, v in sorted(per_split.items())}
        used = [takes[u] for u in assigned]
        policy = egoexo_meta.split_policy(used)
        with_id = sum(t.has_participant for t in used)
        self.info.metadata["split_groups"] = policy
        self.info.metadata["participants"] = {
            s: len({t.subject for t, _ in v if t.has_participant})
            for s, v in sorted(per_split.items())
        }
        logging.info(
            "egoexo4d: splits disjoint by %s (%d of %d takes have a participant_uid; "
            "participants per split %s)",
            {"participant_or_take": "participant, by take where unknown"}.get(policy, policy),
            with_id,
            len(used),
            self.info.metadata["participants"],
        )
        logging.info(
            "egoexo4d: time base: t = 0 at the take's first frame, "
            "captures/<capture>/timesync.csv row timesync_start_idx+1, column "
            "aria0N_214-1_capture_timestamp_ns (Aria device time, the IMU's clock); IMU from "
            "takes/<take>/imu.npz, else *_noimagestreams.vrs, else aria0N.vrs (%s); "
            "descriptions: first non-rejected annotation, narrators=%r",
            "projectaria-tools installed"
            if aria_imu.provider_module()
            else "projectaria-tools NOT installed: VRS-only takes are skipped",
            narrators,
        )
        self._root = root
        self._timesync_cache: dict[tuple[str, str], list[str | None]] = {}
        self._open_stores(root)
        empty = [s for s in SPLITS if not per_split[s]]
        if empty:
            logging.warning("egoexo4d: no takes for split(s) %s; not written", empty)
        return {s: self._generate_examples(s, per_split[s]) for s in SPLITS if per_split[s]}

    def _read_imu(self, split: str, take: egoexo_meta.Take) -> tuple[np.ndarray, np.ndarray]:
        """``(t, imu)`` on the take timeline, from ``imu.npz`` or the VRS (valid records)."""
        take_dir = self._root / take.take_dir
        npz = take_dir / "imu.npz"
        if npz.exists():
            with npz.open("rb") as f:
                try:
                    arrays = raw_io.load_npz(f, aria_imu.NPZ_KEYS, name=str(npz))
                except raw_io.MalformedFileError as e:
                    if "'t'" in str(e) and "'t_ns'" in str(e):  # version 1.1.0's layout
                        e = raw_io.MalformedFileError(
                            f"{e}; written by an older aria_imu (t in seconds from an "
                            "undocumented origin): re-run python -m tfds_builders.egoexo4d.aria_imu"
                        )
                    raise e from None
            t_ns, imu = arrays["t_ns"], arrays["imu"]
            if (
                imu.ndim != 2
                or imu.shape[1] != 6
                or t_ns.shape != (imu.shape[0],)
                or not np.issubdtype(t_ns.dtype, np.integer)
                or not np.issubdtype(imu.dtype, np.floating)
            ):
                raise raw_io.MalformedFileError(
                    f"{npz}: t_ns {t_ns.shape} {t_ns.dtype}, imu {imu.shape} {imu.dtype}"
                )
            extra = _npz_scalars(npz)
            device, invalid = extra.get("device") or None, extra.get("invalid_samples", 0)
        else:
            listed = [os.fspath(take_dir / v) for v in take.vrs_paths]
            vrs = next((v for v in listed if os.path.exists(v)), None)
            vrs = vrs or aria_imu.find_vrs(os.fspath(take_dir))
            if vrs is None:
                raise FileNotFoundError(f"{take_dir}: no imu.npz and no .vrs")
            module = aria_imu.provider_module()
            if module is None:
                raise FileNotFoundError(
                    f"{take_dir}: no imu.npz, and reading {os.path.basename(vrs)} needs "
                    "projectaria-tools"
                )
            t_ns, imu, invalid = aria_imu.read_vrs(vrs, module)
            device = aria_imu.device_of(vrs)
        if invalid:
            self.stats.note(split, "imu_samples_invalid_dropped", int(invalid))
        device = device or take.ego_device
        t0_ns = self._take_start_ns(take, device)
        t = (t_ns.astype(np.int64) - np.int64(t0_ns)).astype(np.float64) / 1e9
        return t, imu

    def _take_start_ns(self, take: egoexo_meta.Take, device: str | None) -> int:
        path = timesync.timesync_path(self._root, take.capture)
        if take.timesync_start_idx is None:
            raise timesync.TimesyncError(f"{take.name}: takes.json has no timesync_start_idx")
        if device is None:
            raise timesync.TimesyncError(f"{take.name}: no Aria camera id (aria0N)")
        if not os.path.exists(path):
            raise timesync.TimesyncError(f"{path}: missing (--parts captures)")
        key = (path, timesync.column(device))
        if key not in self._timesync_cache:
            self._timesync_cache[key] = timesync.read_column(*key)
        return timesync.take_start_ns(self._timesync_cache[key], take.timesync_start_idx, path)

    def _generate_examples(self, split: str, takes: list):
        for take, descriptions in takes:
            n = len(descriptions)
            if not n:
                self.stats.note(split, "takes_without_descriptions")
                continue
            try:
                t, imu = self._read_imu(split, take)
                t, imu, report = signal.clean_timestamps(t, imu)
                if report.n_nonfinite or report.n_duplicates:
                    self.stats.note(split, "rows_dropped", report.n_nonfinite + report.n_duplicates)
                rate = signal.estimate_rate(t)
                if not _RATE_RANGE_HZ[0] <= rate <= _RATE_RANGE_HZ[1]:
                    raise ValueError(f"median rate {rate:.3g} Hz: t not in seconds?")
                if signal.guess_acc_unit(imu[:, :3]) != "m/s2":
                    raise ValueError("accelerometer norm is not ~9.8 m/s²")
                stream = event_windows.to_grid(t, imu, max_gap_s=MAX_GAP_S, t_max=take.duration)
            except FileNotFoundError as e:
                self.stats.skip(split, "no_imu", f"{take.name}: {e}", n=n)
                continue
            except aria_imu.VrsError as e:
                self.stats.skip(split, e.reason, f"{take.name}: {e}", n=n)
                continue
            except timesync.TimesyncError as e:
                self.stats.skip(split, "no_timesync", f"{take.name}: {e}", n=n)
                continue
            except raw_io.MalformedFileError as e:
                self.stats.skip(split, "malformed_file", f"{take.name}: {e}", n=n)
                continue
            except ValueError as e:  # incl. CoverageError: too short, no usable samples
                self.stats.skip(split, "unusable_imu", f"{take.name}: {e}", n=n)
                continue
            events = [(d.t, d) for d in descriptions]
            for status, start_s, win, d in event_windows.cut(stream, events):
                if status == "duplicate":
                    self.stats.note(split, "descriptions_sharing_a_window")
                    continue
                if status == "ok" and not np.isfinite(win).all():
                    status = "nonfinite"  # e.g. overflowing values in a damaged file
                if status != "ok":
                    where = f"{take.name} description at {d.t:.2f} s"
                    self.stats.skip(split, f"description_{status}", where)
                    continue
                yield self._example(
                    split,
                    imu=win,
                    recording=take.uid,
                    subject=take.subject,
                    start_s=start_s,
                    label=take.label,
                    text=d.text,
                )
        self._finish_split(split)


def _npz_scalars(path) -> dict:
    """The optional scalar fields of ``imu.npz`` (``device``, ``invalid_samples``)."""
    out = {}
    try:
        with path.open("rb") as f, np.load(f, allow_pickle=False) as z:
            for k, cast in (("device", str), ("invalid_samples", int)):
                if k in z.files:
                    out[k] = cast(z[k][()])
    except Exception as e:  # any damage (see raw_io.load_npz)
        raise raw_io.MalformedFileError(f"{path}: bad optional field ({e})") from e
    return out
