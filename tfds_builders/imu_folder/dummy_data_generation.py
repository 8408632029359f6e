r"""Writes a small, deliberately messy folder of "own recordings" into ``dummy_data/``.

Deterministic (fixed seed): re-running reproduces the committed bytes. Run from the
repository root::

    python -m tfds_builders.imu_folder.dummy_data_generation [OUT_DIR]

Five subjects (splits listed in the manifest: train s01 s03 s04, val s05, test s02),
each recording 30 s: walking (1.8 Hz steps, 2 m/s² vertical, ±1 rad/s) for the first 15 s,
then sitting (gravity tilted, still). The quirks the builder must handle:

- ``s01_morning.csv``: 100 Hz, seconds, m/s² and rad/s; rows out of order, repeated
  timestamps, NaN rows and a 1 s hole (windows across it are skipped); narrations with commas
  and one outside the recording; label intervals.
- ``s02_walk_acc.csv`` / ``s02_walk_gyro.csv``: separate files, acc ~50 Hz jittery in g, gyro
  200 Hz in deg/s, Unix-epoch milliseconds, gyro starting 0.3 s later; interval narrations.
- ``s02_evening.csv``: lacks the ``gz`` column (skipped, malformed).
- ``s03_lab.parquet``: 64 Hz, gyro columns first, other column names; video embeddings
  (384-d like the text, not normalised) for every other window.
- ``s04_home.npz``: one ``(N, 6)`` array at 100 Hz and no time column.
- ``s05_stairs_acc.csv``: its gyro file is missing (skipped). ``s05_desk.csv``: declared
  m/s² but recorded in g (skipped). ``s05_short.csv``: a good 12 s recording.
- ``notes.txt``: not in the manifest (counted).
"""

from __future__ import annotations

import io
import os
import sys

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

G = 9.80665
T0_MS = 1_700_000_000_000
SECONDS = 30.0

MANIFEST = """\
# Own recordings: five subjects, wrist-worn IMUs (see tfds_builders/imu_folder/README.md).
description: dummy folder of the imu_folder builder (messy on purpose)
time_column: t
channels: [ax, ay, az, gx, gy, gz]
units: {acc: m/s2, gyro: rad/s}
device: generic-imu
position: wrist
windows: sliding
hop_s: 2.5
splits: {train: [s01, s03, s04], val: [s05], test: [s02]}
classes:
  walking: [a person is walking, someone walks down a corridor]
  sitting: [a person is sitting, someone sits still at a desk]
recordings:
  - id: s01_morning
    subject: s01
    file: s01_morning.csv
    rate_hz: 100
    narrations: s01_morning_notes.csv
    labels: s01_morning_labels.csv
  - id: s02_walk
    subject: s02
    acc: s02_walk_acc.csv
    gyro: s02_walk_gyro.csv
    time_unit: ms
    units: {acc: g, gyro: deg/s}
    device: phone
    position: pocket
    narrations: s02_walk_notes.csv
    labels: s02_walk_labels.csv
  - id: s02_evening
    subject: s02
    file: s02_evening.csv
  - id: s03_lab
    subject: s03
    file: s03_lab.parquet
    time_column: timestamp
    channels: [acc_x, acc_y, acc_z, gyr_x, gyr_y, gyr_z]
    labels: s03_lab_labels.csv
    narrations: s03_lab_notes.csv
    video_emb: s03_lab_video.npz
  - id: s04_home
    subject: s04
    file: s04_home.npz
    time_column: null
    rate_hz: 100
    channels: ["imu[0]", "imu[1]", "imu[2]", "imu[3]", "imu[4]", "imu[5]"]
    labels: s04_home_labels.csv
    narrations: s04_home_notes.csv
  - id: s05_stairs
    subject: s05
    acc: s05_stairs_acc.csv
    gyro: s05_stairs_gyro.csv
  - id: s05_desk
    subject: s05
    file: s05_desk.csv
  - id: s05_short
    subject: s05
    file: s05_short.csv
    labels: s05_short_labels.csv
"""

LABELS = "start_s,end_s,label\n0,15,walking\n15,30,sitting\n"
NOTES = (
    "time_s,text\n"
    '3.1,"walks to the kitchen, then back"\n'
    "8.4,walking down the corridor\n"
    "19.5,sits down at the desk\n"
    "26.0,types on the laptop while seated\n"
    "95.0,this note is after the recording ended\n"
)
INTERVAL_NOTES = (
    "start_s,end_s,text\n"
    "1.0,6.0,walking briskly outside\n"
    "16.0,21.0,sitting on a bench\n"
    "23.0,28.0,resting on the bench\n"
)


def _motion(t: np.ndarray, rng) -> np.ndarray:
    """(N, 6) in m/s² and rad/s: walking before 15 s, sitting after."""
    n = t.shape[0]
    walk = t < SECONDS / 2
    acc = np.tile([0.0, 0.0, G], (n, 1))
    sit = np.array([0.0, G * np.sin(0.5), G * np.cos(0.5)])  # tilted wrist on a desk
    acc[~walk] = sit
    acc[walk, 2] += 2.0 * np.sin(2 * np.pi * 1.8 * t[walk])
    acc[walk, 0] += 0.8 * np.sin(2 * np.pi * 0.9 * t[walk])
    gyro = np.zeros((n, 3))
    gyro[walk, 0] = 1.0 * np.sin(2 * np.pi * 0.9 * t[walk])
    gyro[walk, 2] = 0.4 * np.cos(2 * np.pi * 1.8 * t[walk])
    return np.concatenate([acc, gyro], 1) + rng.normal(0, [0.05] * 3 + [0.01] * 3, (n, 6))


def _csv(header, t, x, fmt="%.4f"):
    buf = io.StringIO()
    buf.write(",".join(header) + "\n")
    np.savetxt(buf, np.column_stack([t, x]), fmt=[fmt] + ["%.4f"] * x.shape[1], delimiter=",")
    return buf.getvalue().replace("nan", "NaN").encode()


def main(out_dir: str) -> None:
    rng = np.random.default_rng(9)
    os.makedirs(out_dir, exist_ok=True)

    def write(name, data):
        with open(os.path.join(out_dir, name), "wb") as f:
            f.write(data if isinstance(data, bytes) else data.encode())

    write("manifest.yaml", MANIFEST)
    header = ["t", "ax", "ay", "az", "gx", "gy", "gz"]

    # s01: 100 Hz with out-of-order rows, repeated timestamps, NaN rows and a 1 s hole.
    t = np.arange(0, SECONDS, 0.01)
    x = _motion(t, rng)
    x[[500, 501, 1700]] = np.nan
    keep = ~((t >= 22.0) & (t < 23.0))
    t, x = t[keep], x[keep]
    order = np.arange(t.shape[0])
    order[1000:1010] = order[1000:1010][::-1]
    dup = [300, 301, 2000]
    t, x = np.concatenate([t[order], t[dup]]), np.concatenate([x[order], x[dup]])
    write("s01_morning.csv", _csv(header, t, x))
    write("s01_morning_notes.csv", NOTES)
    write("s01_morning_labels.csv", LABELS)

    # s02: acc ~50 Hz jittery in g, gyro 200 Hz in deg/s, epoch ms, separate files.
    ta = np.arange(0, SECONDS, 0.02) + rng.uniform(-0.003, 0.003, int(SECONDS * 50))
    tg = np.arange(0.3, SECONDS, 0.005)
    acc = _motion(ta, rng)[:, :3] / G
    gyro = np.degrees(_motion(tg, rng)[:, 3:])
    write("s02_walk_acc.csv", _csv(["t", "ax", "ay", "az"], T0_MS + ta * 1000, acc, "%.1f"))
    write("s02_walk_gyro.csv", _csv(["t", "gx", "gy", "gz"], T0_MS + tg * 1000, gyro, "%.1f"))
    write("s02_walk_notes.csv", INTERVAL_NOTES)
    write("s02_walk_labels.csv", LABELS)
    t = np.arange(0, 10, 0.01)
    write("s02_evening.csv", _csv(header[:-1], t, _motion(t, rng)[:, :5]))

    # s03: Parquet at 64 Hz, gyro columns first, per-window video embeddings.
    t = np.arange(0, SECONDS, 1 / 64)
    x = _motion(t, rng)
    table = pa.table(
        {
            "timestamp": t,
            **{f"gyr_{a}": x[:, 3 + i] for i, a in enumerate("xyz")},
            **{f"acc_{a}": x[:, i] for i, a in enumerate("xyz")},
        }
    )
    buf = io.BytesIO()
    pq.write_table(table, buf, compression="none")
    write("s03_lab.parquet", buf.getvalue())
    write("s03_lab_labels.csv", LABELS)
    write("s03_lab_notes.csv", NOTES)
    starts = np.arange(0, 25.5, 2.5)[::2]
    emb = rng.normal(size=(starts.shape[0], 384)).astype(np.float32) * 3.0
    buf = io.BytesIO()
    np.savez(buf, start_s=starts, emb=emb)
    write("s03_lab_video.npz", buf.getvalue())

    # s04: one (N, 6) array at 100 Hz, no time column.
    t = np.arange(0, SECONDS, 0.01)
    buf = io.BytesIO()
    np.savez(buf, imu=_motion(t, rng).astype(np.float32))
    write("s04_home.npz", buf.getvalue())
    write("s04_home_labels.csv", LABELS)
    write("s04_home_notes.csv", INTERVAL_NOTES)

    # s05: a missing gyro file, a file in g declared m/s², a good short recording.
    t = np.arange(0, 20, 0.01)
    write("s05_stairs_acc.csv", _csv(["t", "ax", "ay", "az"], t, _motion(t, rng)[:, :3]))
    x = _motion(t, rng)
    x[:, :3] /= G
    write("s05_desk.csv", _csv(header, t, x))
    t = np.arange(0, 12, 0.01)
    write("s05_short.csv", _csv(header, t, _motion(t, rng)))
    write("s05_short_labels.csv", "start_s,end_s,label\n0,12,walking\n")
    write("notes.txt", "recorded in the lab, January\n")


if __name__ == "__main__":
    main(
        sys.argv[1] if len(sys.argv) > 1 else os.path.join(os.path.dirname(__file__), "dummy_data")
    )
