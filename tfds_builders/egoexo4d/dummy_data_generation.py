r"""Writes tiny fake EgoExo4D data in the real layouts (README "Format facts").

Deterministic: re-running reproduces the committed bytes. Run from the repository root::

    python -m tfds_builders.egoexo4d.dummy_data_generation

Every take is in a capture ``captures/<take name without _N>/timesync.csv`` (30 fps rows, Aria
device-time ns); its ``timesync_start_idx`` is 10 rows after the previous take of the capture
(10 for the first), so t = 0 is row ``timesync_start_idx + 1``'s
``aria01_214-1_capture_timestamp_ns``; the IMU (device time) starts 0.2 s before it.
``vl-soccer-0`` and ``-1`` are two takes of one capture. IMU comes
as ``imu.npz`` (the ``aria_imu`` cache) or as a ``.vrs``: ``fake_vrs``'s format (read by the
fake provider in tests) or garbage (no provider opens it).

Official train (pretraining; 10% of groups per class go to ``val``):

- ``tr-cook-0..5`` (cooking, participants 100 + i % 3): 10 s at 50 Hz, descriptions at 3 s
  and 7 s. ``tr-cook-0`` also has descriptions at 0.5 s and 1.0 s (same clamped window [0, 5]),
  one at 12 s (after the take ends), an empty one ("#C"), one by someone else (``subject
  "O"``, dropped by default), NaN and shuffled samples, a CPR-related text (capital C's
  survive), and ``invalid_samples = 3`` in its npz.
- ``tr-music-0``: "upenn_0711_Guitar_2", 6 s at 400 Hz (anti-aliasing path); its descriptions
  use the docs' ``narration_subject`` key instead of ``subject``.
- ``tr-misc-0``: an unlabelled take name; ``tr-short-0``: 3 s of IMU (skipped); ``tr-bad-0``:
  npz without ``imu``.
- ``tr-bike-0``: only ``aria01.vrs``, garbage (does not open: ``vrs_unreadable``).
- ``tr-bike-1``: ``aria01_noimagestreams.vrs`` (fake format) at 1 kHz, 5.5 s, with 40 records
  flagged ``accel_valid``/``gyro_valid`` false holding 60 m/s² / 30 rad/s junk (dropped),
  plus a garbage ``aria01.vrs`` (the smaller file is preferred).
- ``tr-bike-2``: fake VRS (0.5 s) with only the ``imu-left`` stream (``vrs_no_imu_stream``).
- ``tr-rej-0``: first annotation rejected (its texts say "rejected ..."), the second used.
- ``tr-rej-1``: every annotation rejected (left out).
- ``tr-nosync-0``: its capture has no ``timesync.csv``; ``tr-nosync-1``: the aria column is
  empty at row 11 (both ``no_timesync``).

Official val (downstream; 50/25/25 of the participants per class):

- ``vl-cpr-0..5`` (cpr): participant 200 recorded ``vl-cpr-0..2``, participants 201-203 one
  take each (4 groups: 2/1/1); ``vl-soccer-0..1`` (soccer_basketball): both by participant
  300. 10 s at 50 Hz.
- ``vl-cook-0``: participant 102, who also has pretraining takes (unused).
- ``vl-misc-0``: unlabelled (unused); ``tr-music-0`` is listed in both files (pretraining only).
"""

from __future__ import annotations

import json
import os
import re
import sys

import numpy as np

from tfds_builders.egoexo4d import aria_imu, fake_vrs

G = 9.80665
FPS = 30
START_IDX = 10  # timesync_start_idx: the take's first frame is row 11
LEAD_S = 0.2  # the IMU starts this long before the first frame


def _imu(rng, seconds, rate, moving):
    t = np.arange(round(seconds * rate)) / rate
    acc = np.tile([0.0, -G, 0.0], (len(t), 1)) + rng.normal(0, 0.05, (len(t), 3))
    gyro = rng.normal(0, 0.02, (len(t), 3))
    if moving:
        acc[:, 0] += 1.0 * np.sin(2 * np.pi * 1.5 * t)
        gyro[:, 1] += 0.3 * np.sin(2 * np.pi * 0.7 * t)
    return t, np.concatenate([acc, gyro], axis=1).astype(np.float32)


def _desc(t, text, subject="C", key="subject"):
    return {
        "text": text,
        "timestamp": t,
        key: subject,
        "ego_visible": True,
        "best_exo": {"raw_cam_id": "1", "cam_id": "cam01"},
        "unsure": False,
    }


def _annotation(uid, k, descs, rejected=False):
    return {
        "annotation_uid": f"{uid}-{k}",
        "annotator_id": str(1000 + k),
        "descriptions": descs,
        "job_id": str(2000 + k),
        "rejected": rejected,
        "reject_reason": "other" if rejected else None,
        "response_time": 1702387640,
        "response_id": str(3000 + k),
    }


def _write_timesync(path, base_ns, n_rows, blank_rows=()):
    os.makedirs(os.path.dirname(path), exist_ok=True)
    lines = [
        "cam01_pts,cam01_frame_number,aria01_214-1_capture_timestamp_ns,aria01_214-1_frame_number"
    ]
    for i in range(n_rows):
        rgb = "" if i in blank_rows else str(_row_ns(base_ns, i))
        lines.append(f"{i * 1001},{i},{rgb},{i}")
    with open(path, "w", encoding="utf-8", newline="") as f:
        f.write("\n".join(lines) + "\n")


def _row_ns(base_ns, i):
    return base_ns + i * 1_000_000_000 // FPS + 1_000_000


def main(out_dir: str) -> None:
    rng = np.random.default_rng(44)
    takes, train_ann, val_ann = [], {}, {}
    captures = {}  # name -> {"base": ns, "rows": n, "blank": [...], "write": bool}

    def add_take(
        uid,
        name,
        seconds,
        rate,
        descs,
        ann,
        participant=None,
        moving=True,
        imu="npz",
        annotations=None,
        timesync="ok",
    ):
        capture = re.sub(r"_\d+$", "", name)
        if capture not in captures:
            base = 5_000_000_000_000 + len(captures) * 100_000_000_000
            captures[capture] = {"base": base, "rows": 0, "blank": [], "write": True}
        cap = captures[capture]
        start_idx = cap["rows"] + START_IDX  # a later take of a capture starts further down
        frames = round(seconds * FPS)
        cap["rows"] = start_idx + 2 + frames
        cap["write"] = timesync != "missing"
        if timesync == "blank":
            cap["blank"].append(start_idx + 1)
        t0_ns = _row_ns(cap["base"], start_idx + 1)
        rec = {
            "take_uid": uid,
            "take_name": name,
            "root_dir": f"takes/{name}",
            "duration_sec": float(seconds),
            "task_name": "dummy",
            "capture_uid": f"capture-{capture}",
            "timesync_start_idx": start_idx,
            "timesync_end_idx": start_idx + 1 + frames,
            "capture": {
                "capture_name": capture,
                "cameras": [
                    {"cam_id": "cam01", "is_ego": False, "device_type": "hero10"},
                    {"cam_id": "aria01", "is_ego": True, "device_type": "aria"},
                ],
            },
        }
        if participant is not None:
            rec["participant_uid"] = participant
        if imu == "vrs":  # the download manifest's relative paths (manifest_gen.py)
            rec["vrs_relative_path"] = "aria01_noimagestreams.vrs"
            rec["vrs_all_streams_relative_path"] = "aria01.vrs"
        takes.append(rec)
        d = os.path.join(out_dir, "takes", name)
        os.makedirs(d, exist_ok=True)
        t, x = _imu(rng, seconds, rate, moving)
        t_ns = t0_ns - round(LEAD_S * 1e9) + np.round(t * 1e9).astype(np.int64)
        if imu == "npz":
            invalid = 0
            if uid == "tr-cook-0":
                t_ns[[5, 6]] = t_ns[[6, 5]]
                x[40, 2] = np.nan
                invalid = 3
            aria_imu.write_npz(
                os.path.join(d, "imu.npz"), t_ns, x, "aria01", invalid, "aria01_noimagestreams.vrs"
            )
        elif imu in ("vrs", "vrs_left_only"):
            n = len(t_ns)
            accel_ok, gyro_ok = np.ones(n, bool), np.ones(n, bool)
            accel_ok[1000:1020] = False  # records at 0.8-0.82 s of the take
            gyro_ok[2500:2520] = False  # 2.3-2.32 s
            bad = ~(accel_ok & gyro_ok)
            x[bad, :3], x[bad, 3:] = 60.0, 30.0  # junk an invalid record may hold
            sid = "1202-2" if imu == "vrs_left_only" else "1202-1"
            fields = {"t_ns": t_ns, "accel": x[:, :3], "gyro": x[:, 3:]}
            fields |= {"accel_valid": accel_ok, "gyro_valid": gyro_ok}
            fake_vrs.write(os.path.join(d, "aria01_noimagestreams.vrs"), {sid: fields})
        if imu in ("garbage_vrs", "vrs"):
            with open(os.path.join(d, "aria01.vrs"), "wb") as f:
                f.write(b"VRS placeholder: not a real recording")
        if imu == "npz_without_imu":
            np.savez(os.path.join(d, "imu.npz"), t_ns=t_ns[:3])
        ann[uid] = annotations or [
            _annotation(uid, 1, descs),
            _annotation(uid, 2, [_desc(5.0, "C second annotator, unused")]),
        ]

    std = [_desc(3.0, "C stirs the food in the pan."), _desc(7.0, "C adds salt to the pan.")]
    for i in range(6):
        extra = []
        if i == 0:
            extra = [
                _desc(0.5, "C picks up the CPR manual"),
                _desc(1.0, "C opens it"),
                _desc(12.0, "C leaves"),
                _desc(2.0, "#C"),
                _desc(5.0, "The man X hands C a knife.", subject="O"),
            ]
        add_take(
            f"tr-cook-{i}",
            f"georgiatech_cooking_0{i}_1",
            10,
            50,
            std + extra,
            train_ann,
            participant=100 + i % 3,
        )
    music = [_desc(3.0, "C strums the guitar", key="narration_subject")]
    add_take("tr-music-0", "upenn_0711_Guitar_2", 6, 400, music, train_ann)
    add_take("tr-misc-0", "unc_unknowntask_01", 10, 50, std, train_ann, moving=False)
    add_take("tr-bike-0", "cmu_bike_01_2", 10, 50, std, train_ann, imu="garbage_vrs")
    bike = [_desc(3.0, "C turns the wheel")]
    add_take("tr-bike-1", "cmu_bike_02_3", 5.5, 1000, bike, train_ann, imu="vrs")
    add_take("tr-bike-2", "cmu_bike_03_1", 0.5, 1000, bike, train_ann, imu="vrs_left_only")
    add_take("tr-short-0", "georgiatech_cooking_99_1", 3, 50, std, train_ann)
    add_take("tr-bad-0", "georgiatech_cooking_98_1", 10, 50, std, train_ann, imu="npz_without_imu")
    rejected = [_desc(3.0, "C rejected text"), _desc(7.0, "C rejected text two")]
    add_take(
        "tr-rej-0",
        "unc_unknowntask02_1",
        10,
        50,
        std,
        train_ann,
        annotations=[
            _annotation("tr-rej-0", 1, rejected, rejected=True),
            _annotation("tr-rej-0", 2, [_desc(6.0, "C opens the door.")]),
        ],
    )
    add_take(
        "tr-rej-1",
        "unc_unknowntask03_1",
        10,
        50,
        std,
        train_ann,
        annotations=[_annotation("tr-rej-1", 1, rejected, rejected=True)],
    )
    add_take("tr-nosync-0", "unc_unknowntask04_1", 10, 50, std, train_ann, timesync="missing")
    add_take("tr-nosync-1", "unc_unknowntask05_1", 10, 50, std, train_ann, timesync="blank")

    cpr = [
        _desc(2.6, "C compresses the chest of the CPR manikin"),
        _desc(6.0, "C checks breathing"),
    ]
    for i in range(6):  # participant 200 recorded three of them
        participant = 200 + max(i - 2, 0)
        add_take(f"vl-cpr-{i}", f"nus_cpr_0{i}_1", 10, 50, cpr, val_ann, participant=participant)
    for i in range(2):
        add_take(
            f"vl-soccer-{i}", f"iiith_soccer_001_{i + 2}", 10, 50, std, val_ann, participant=300
        )
    add_take("vl-misc-0", "sfu_unknown_3", 10, 50, std, val_ann, moving=False)
    # Participant 102 also has pretraining takes: this official-val take is unused.
    add_take("vl-cook-0", "georgiatech_cooking_10_1", 10, 50, std, val_ann, participant=102)
    val_ann["tr-music-0"] = train_ann["tr-music-0"]

    for name, cap in captures.items():
        sync = os.path.join(out_dir, "captures", name, "timesync.csv")
        if cap["write"]:
            _write_timesync(sync, cap["base"], cap["rows"], cap["blank"])
        else:
            os.makedirs(os.path.dirname(sync), exist_ok=True)
    os.makedirs(os.path.join(out_dir, "annotations"), exist_ok=True)
    with open(os.path.join(out_dir, "takes.json"), "w", encoding="utf-8") as f:
        json.dump(takes, f, indent=1, sort_keys=True)
    for split, ann in (("train", train_ann), ("val", val_ann)):
        path = os.path.join(out_dir, "annotations", f"atomic_descriptions_{split}.json")
        cams = {uid: {"1": "cam01"} for uid in sorted(ann)}
        with open(path, "w", encoding="utf-8") as f:
            doc = {"ds": "dummy", "take_cam_id_map": cams, "annotations": ann}
            json.dump(doc, f, indent=1, sort_keys=True)


if __name__ == "__main__":
    main(
        sys.argv[1] if len(sys.argv) > 1 else os.path.join(os.path.dirname(__file__), "dummy_data")
    )
