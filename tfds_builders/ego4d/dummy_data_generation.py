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
- Scenario near misses, each one video with IMU and one narration at 4 s, unlabelled by the
  reference rule and labelled by the keyword rule: ``farmmkt-0`` "Farmers market" (farmer),
  ``listen-0`` "Listening to music" (music), ``dog-0`` "Walking the dog / pet" (walking),
  ``resto-0`` "Eating at a restaurant" (eating); ``multi-0`` ["Cooking", "Baker"] (two
  scenarios: unlabelled by the reference, cooking by keyword).
- ``build-0``: the construction scenario, whose official name holds a newline (class 9).
- ``sample-0``: IMU like the Ego4D docs' published sample (~201 Hz, accl_y == accl_z,
  |acc| ~2.7): rejected for its norm. ``noacc-0``: accelerometer cells empty (rejected).
- ``fb_participant_id``: cook-0 and cook-1 share participant 1; the others have their own
  (amb-0 and the near misses have none).
- ``pad-*``: metadata-only videos (no IMU), so that the reference's stratified 80/10/10 split
  has at least 10 videos in each of its classes present (Cooking, Eating, Walking on street,
  construction), as the real ego4d.json has thousands of videos without IMU.
"""

from __future__ import annotations

import json
import os
import sys

import numpy as np

G = 9.80665
CONSTRUCTION = (
    "jobs related to construction/renovation company\n"
    "(Director of work, tiler, plumber, Electrician, Handyman, etc)"
)
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
        ms = "" if np.isnan(ti) else f"{ti * 1000:.3f}"  # NULL canonical times: empty cells
        vals = ",".join("" if np.isnan(v) else f"{v:.5f}" for v in (*g, *a))
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

    near_misses = {
        "farmmkt-0": "Farmers market",
        "listen-0": "Listening to music",
        "dog-0": "Walking the dog / pet",
        "resto-0": "Eating at a restaurant",
    }
    for uid, scenario in near_misses.items():
        videos.append({"video_uid": uid, "scenarios": [scenario], "duration_sec": 10.0})
    videos.append({"video_uid": "multi-0", "scenarios": ["Cooking", "Baker"], "duration_sec": 10})
    for uid in (*near_misses, "multi-0"):
        csvs[uid] = _csv(*_imu(rng, 10, 50, moving=True))
        narrations[uid] = {"narration_pass_1": {"narrations": [_narr(4.0, "#C C moves", uid)]}}
    videos.append({"video_uid": "build-0", "scenarios": [CONSTRUCTION], "duration_sec": 10.0})
    csvs["build-0"] = _csv(*_imu(rng, 10, 50, moving=True))
    narrations["build-0"] = {"narration_pass_1": {"narrations": [_narr(6.0, "#C C tiles", "t")]}}

    # The docs' sample rows: 4.975 ms apart, accl_y == accl_z, |acc| ~ 2.7.
    videos.append({"video_uid": "sample-0", "scenarios": ["Cooking"], "duration_sec": 10.0})
    t = np.arange(2000) * 4.975124378109452e-3
    acc = np.tile([-2.278, -1.031, -1.031], (len(t), 1)) + rng.normal(0, 0.02, (len(t), 1))
    csvs["sample-0"] = _csv(t, acc, rng.normal(0, 0.02, (len(t), 3)))
    narrations["sample-0"] = {"narration_pass_1": {"narrations": [_narr(3.0, "#C C x", "s")]}}
    videos.append({"video_uid": "noacc-0", "scenarios": ["Cooking"], "duration_sec": 10.0})
    t, acc, gyro = _imu(rng, 10, 50)
    csvs["noacc-0"] = _csv(t, np.full_like(acc, np.nan), gyro)
    narrations["noacc-0"] = {"narration_pass_1": {"narrations": [_narr(3.0, "#C C y", "m")]}}

    participants = {"cook-0": 1, "cook-1": 1, "cook-2": 2, "cook-3": 3, "cook-4": 4}
    participants.update({"walk-0": 5, "bad-0": 6, "build-0": 7, "sample-0": 8, "noacc-0": 9})
    for v in videos:
        v["fb_participant_id"] = participants.get(v["video_uid"])
    pads = {"Cooking": 4, "Eating": 10, "Walking on street": 10, CONSTRUCTION: 10}
    for scenario, n in pads.items():
        for i in range(n):
            uid = f"pad-{scenario[:4].lower()}-{i}"
            videos.append({"video_uid": uid, "scenarios": [scenario], "duration_sec": 60.0})

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
