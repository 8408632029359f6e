r"""Writes tiny fake EgoExo4D data (takes index, atomic descriptions, per-take imu.npz).

Deterministic: re-running reproduces the committed bytes. Run from the repository root::

    python -m tfds_builders.egoexo4d.dummy_data_generation

Official train (pretraining; 10% of takes per class go to ``val``):

- ``tr-cook-0..5`` (cooking, 6 takes -> 5 train + 1 val): 10 s at 50 Hz, descriptions at 3 s
  and 7 s. ``tr-cook-0`` also has descriptions at 0.5 s and 1.0 s (same clamped window [0, 5]),
  one at 12 s (after the take ends), an empty one ("#C"), NaN and shuffled samples, and a
  CPR-related text to show that capital C's survive.
- ``tr-music-0``: "upenn_0711_Guitar_2", 6 s at 400 Hz (anti-aliasing path).
- ``tr-misc-0``: an unlabelled take name; ``tr-bike-0``: only a ``.vrs`` file (skipped without
  projectaria-tools); ``tr-short-0``: 3 s of IMU (skipped); ``tr-bad-0``: npz without ``imu``.

Official val (downstream; 50/25/25 of the participants per class):

- ``vl-cpr-0..5`` (cpr): participant 200 recorded ``vl-cpr-0..2``, participants 201-203 one
  take each (4 groups: 2/1/1); ``vl-soccer-0..1`` (soccer_basketball): both by participant
  300. 10 s at 50 Hz.
- ``vl-cook-0``: participant 102, who also has pretraining takes (unused).
- ``vl-misc-0``: unlabelled (unused); ``tr-music-0`` is listed in both files (pretraining only).

Participants in pretraining: 100-102, two cooking takes each (``tr-cook-i`` -> 100 + i % 3);
the other official-train takes have no participant id and are split by take.
"""

from __future__ import annotations

import json
import os
import sys

import numpy as np

G = 9.80665


def _imu(rng, seconds, rate, moving):
    t = np.arange(round(seconds * rate)) / rate
    acc = np.tile([0.0, -G, 0.0], (len(t), 1)) + rng.normal(0, 0.05, (len(t), 3))
    gyro = rng.normal(0, 0.02, (len(t), 3))
    if moving:
        acc[:, 0] += 1.0 * np.sin(2 * np.pi * 1.5 * t)
        gyro[:, 1] += 0.3 * np.sin(2 * np.pi * 0.7 * t)
    return t, np.concatenate([acc, gyro], axis=1).astype(np.float32)


def _desc(t, text):
    return {"text": text, "timestamp": t, "subject": "C", "ego_visible": True, "unsure": False}


def main(out_dir: str) -> None:
    rng = np.random.default_rng(44)
    takes, train_ann, val_ann = [], {}, {}

    def add_take(uid, name, seconds, rate, descs, ann, participant=None, moving=True, npz=True):
        rec = {
            "take_uid": uid,
            "take_name": name,
            "root_dir": f"takes/{name}",
            "duration_sec": float(seconds),
            "task_name": "dummy",
        }
        if participant is not None:
            rec["participant_uid"] = participant
        takes.append(rec)
        d = os.path.join(out_dir, "takes", name)
        os.makedirs(d, exist_ok=True)
        if npz:
            t, x = _imu(rng, seconds, rate, moving)
            if uid == "tr-cook-0":
                t[[5, 6]] = t[[6, 5]]
                x[40, 2] = np.nan
            np.savez(os.path.join(d, "imu.npz"), t=t, imu=x)
        ann[uid] = [
            {"annotation_uid": f"{uid}-a", "annotator_id": 1, "descriptions": descs},
            {
                "annotation_uid": f"{uid}-b",
                "annotator_id": 2,
                "descriptions": [_desc(5.0, "C second annotator, unused")],
            },
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
    add_take(
        "tr-music-0", "upenn_0711_Guitar_2", 6, 400, [_desc(3.0, "C strums the guitar")], train_ann
    )
    add_take("tr-misc-0", "unc_unknowntask_01", 10, 50, std, train_ann, moving=False)
    add_take("tr-bike-0", "cmu_bike_01_2", 10, 50, std, train_ann, npz=False)
    with open(os.path.join(out_dir, "takes", "cmu_bike_01_2", "aria01.vrs"), "wb") as f:
        f.write(b"VRS placeholder: not a real recording")
    add_take("tr-short-0", "georgiatech_cooking_99_1", 3, 50, std, train_ann)
    add_take("tr-bad-0", "georgiatech_cooking_98_1", 10, 50, std, train_ann, npz=False)
    np.savez(
        os.path.join(out_dir, "takes", "georgiatech_cooking_98_1", "imu.npz"), t=np.arange(3.0)
    )

    cpr = [
        _desc(2.6, "C compresses the chest of the CPR manikin"),
        _desc(6.0, "C checks breathing"),
    ]
    for i in range(6):  # participant 200 recorded three of them
        participant = 200 + max(i - 2, 0)
        add_take(f"vl-cpr-{i}", f"nus_cpr_0{i}_1", 10, 50, cpr, val_ann, participant=participant)
    for i in range(2):
        add_take(f"vl-soccer-{i}", f"iiith_soccer_00{i}_2", 10, 50, std, val_ann, participant=300)
    add_take("vl-misc-0", "sfu_unknown_3", 10, 50, std, val_ann, moving=False)
    # Participant 102 also has pretraining takes: this official-val take is unused.
    add_take("vl-cook-0", "georgiatech_cooking_10_1", 10, 50, std, val_ann, participant=102)
    val_ann["tr-music-0"] = train_ann["tr-music-0"]

    os.makedirs(os.path.join(out_dir, "annotations"), exist_ok=True)
    with open(os.path.join(out_dir, "takes.json"), "w", encoding="utf-8") as f:
        json.dump(takes, f, indent=1, sort_keys=True)
    for split, ann in (("train", train_ann), ("val", val_ann)):
        path = os.path.join(out_dir, "annotations", f"atomic_descriptions_{split}.json")
        with open(path, "w", encoding="utf-8") as f:
            json.dump({"ds": "dummy", "annotations": ann}, f, indent=1, sort_keys=True)


if __name__ == "__main__":
    main(
        sys.argv[1] if len(sys.argv) > 1 else os.path.join(os.path.dirname(__file__), "dummy_data")
    )
