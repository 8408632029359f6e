r"""Writes tiny fake Ego4D IMU + narration data, in the CLI's layout, into ``dummy_data/``.

Deterministic: re-running reproduces the committed bytes. Run from the repository root::

    python -m tfds_builders.ego4d.dummy_data_generation

Layout: ``ego4d.json``, ``v2/annotations/narration.json``, ``v2/imu/<uid>.csv`` with columns
``component_idx, component_timestamp_ms, canonical_timestamp_ms, gyro_x, gyro_y, gyro_z,
accl_x, accl_y, accl_z`` (m/s², rad/s; one video in g).

- ``cook-0`` .. ``cook-4``: scenario "Cooking", 10 s at 50 Hz, narrations at 3 s and 7 s.
  ``cook-0`` also has an ``#O`` narration (dropped), narrations at 1.0 s and 1.5 s that both
  clamp to [0, 5] (one window), one at 30 s (after the IMU ends) and pass-2 narrations.
- ``walk-0``: "Walking on street", 8 s at 200 Hz (anti-aliasing path), acc in g.
- ``amb-0``: scenarios "Carpenter" and "Construction site" (ambiguous: unlabelled); NaN,
  shuffled and repeated rows, and no IMU between 5 s and 7 s (a narration there is skipped).
- ``bad-0``: CSV without accelerometer columns (skipped); ``orphan-0``: IMU but not in
  ego4d.json and no narrations (skipped); ``noimu-0``: narrations but no IMU file.
"""

from __future__ import annotations

import json
import os
import sys

import numpy as np

G = 9.80665
HEADER = (
    "component_idx,component_timestamp_ms,canonical_timestamp_ms,"
    "gyro_x,gyro_y,gyro_z,accl_x,accl_y,accl_z"
)


def _imu(rng, seconds, rate, moving=False):
    t = np.arange(int(seconds * rate)) / rate
    acc = np.tile([0.0, -G, 0.5], (len(t), 1)) + rng.normal(0, 0.05, (len(t), 3))
    acc *= G / np.linalg.norm([0.0, -G, 0.5])
    gyro = rng.normal(0, 0.02, (len(t), 3))
    if moving:
        acc[:, 1] += 1.5 * np.sin(2 * np.pi * 2.0 * t)
        gyro[:, 2] += 0.4 * np.sin(2 * np.pi * 1.0 * t)
    return t, acc, gyro


def _csv(t, acc, gyro, header=HEADER):
    lines = [header]
    for ti, g, a in zip(t, gyro, acc):
        ms = "nan" if np.isnan(ti) else f"{ti * 1000:.3f}"
        vals = ",".join(f"{v:.5f}" for v in (*g, *a))
        lines.append(f"0,{ms},{ms},{vals}")
    return "\n".join(lines) + "\n"


def _narr(t, text, uid):
    return {
        "timestamp_sec": t,
        "timestamp_frame": int(t * 30),
        "narration_text": text,
        "annotation_uid": uid,
    }


def main(out_dir: str) -> None:
    rng = np.random.default_rng(4)
    imu_dir = os.path.join(out_dir, "v2", "imu")
    ann_dir = os.path.join(out_dir, "v2", "annotations")
    os.makedirs(imu_dir, exist_ok=True)
    os.makedirs(ann_dir, exist_ok=True)
    videos, narrations, csvs = [], {}, {}

    for i in range(5):
        uid = f"cook-{i}"
        videos.append({"video_uid": uid, "scenarios": ["Cooking"], "duration_sec": 10.0})
        csvs[uid] = _csv(*_imu(rng, 10, 50, moving=True))
        p1 = [
            _narr(3.0, "#C C stirs the pot with a spoon", f"{uid}-a"),
            _narr(7.0, "#C C opens the fridge.", f"{uid}-b"),
        ]
        narrations[uid] = {"narration_pass_1": {"narrations": p1, "summaries": []}}
    extra = [
        _narr(1.0, "#C C picks a knife", "c0-c"),
        _narr(1.5, "#C C holds the knife", "c0-d"),
        _narr(2.0, "#O man X talks", "c0-e"),
        _narr(30.0, "#C C leaves", "c0-f"),
    ]
    narrations["cook-0"]["narration_pass_1"]["narrations"] += extra
    narrations["cook-0"]["narration_pass_2"] = {
        "narrations": [_narr(5.0, "#C C cuts the CARROT #unsure", "c0-g")]
    }

    videos.append({"video_uid": "walk-0", "scenarios": ["Walking on street"], "duration_sec": 8})
    t, acc, gyro = _imu(rng, 8, 200, moving=True)
    csvs["walk-0"] = _csv(t, acc / G, gyro)
    narrations["walk-0"] = {"narration_pass_1": {"narrations": [_narr(4.0, "#C C walks", "w")]}}

    scen = ["Carpenter", "Construction site"]
    videos.append({"video_uid": "amb-0", "scenarios": scen, "duration_sec": 10.0})
    t, acc, gyro = _imu(rng, 10, 50)
    keep = (t <= 5.0) | (t >= 7.0)
    t, acc, gyro = t[keep], acc[keep], gyro[keep]
    t[[3, 4]] = t[[4, 3]]  # out of order
    t[20] = np.nan
    t, acc, gyro = np.r_[t, t[100]], np.r_[acc, acc[[100]]], np.r_[gyro, gyro[[100]]]  # repeat
    csvs["amb-0"] = _csv(t, acc, gyro)
    amb = [_narr(2.0, "#C C saws a plank", "a1"), _narr(6.0, "#C C drills a hole", "a2")]
    narrations["amb-0"] = {"narration_pass_1": {"narrations": amb}}

    videos.append({"video_uid": "bad-0", "scenarios": ["Cooking"], "duration_sec": 10.0})
    t, acc, gyro = _imu(rng, 6, 50)
    csvs["bad-0"] = _csv(t, acc, gyro, header=HEADER.replace("accl", "mag"))
    narrations["bad-0"] = {"narration_pass_1": {"narrations": [_narr(3.0, "#C C eats", "b")]}}
    csvs["orphan-0"] = _csv(*_imu(rng, 6, 50))
    videos.append({"video_uid": "noimu-0", "scenarios": ["Eating"], "duration_sec": 10.0})
    narrations["noimu-0"] = {"narration_pass_1": {"narrations": [_narr(3.0, "#C C eats", "n")]}}

    for uid, text in csvs.items():
        with open(os.path.join(imu_dir, f"{uid}.csv"), "w", encoding="ascii", newline="\n") as f:
            f.write(text)
    with open(os.path.join(out_dir, "ego4d.json"), "w", encoding="utf-8") as f:
        json.dump({"version": "dummy", "videos": videos}, f, indent=1, sort_keys=True)
    with open(os.path.join(ann_dir, "narration.json"), "w", encoding="utf-8") as f:
        json.dump(narrations, f, indent=1, sort_keys=True)


if __name__ == "__main__":
    main(
        sys.argv[1] if len(sys.argv) > 1 else os.path.join(os.path.dirname(__file__), "dummy_data")
    )
