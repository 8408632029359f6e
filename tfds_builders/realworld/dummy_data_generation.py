r"""Writes tiny fake RealWorld HAR 2016 data, in the archive's layout, into ``dummy_data/``.

Deterministic (fixed seed, fixed zip timestamps): re-running reproduces the committed bytes.
Run from the repository root::

    python -m tfds_builders.realworld.dummy_data_generation

CSV rows are ``id,attr_time,attr_x,attr_y,attr_z`` with Unix-epoch-millisecond times, ~50 Hz
with jitter; acc in m/s² (gravity along the phone's y axis), gyro in rad/s. The gyro stream
starts 120 ms after and ends 80 ms before the acc stream.

- proband1 (val): walking and sitting, 12 s each (3 + 3 windows); a chest CSV and a
  magnetometer zip that must be ignored.
- proband2 (train): climbingdown in two sessions (``_2_``), the second only inside a zip
  nested in the gyr zip, with odd capitalisation (3 + 3 windows); running without a head gyr
  file (skipped); jumping of 4 s (shorter than a window, skipped).
- proband3 (test): lying, 20 s, with NaN, shuffled and duplicated acc rows (cleaned) and a
  1 s hole in gyr (windows across it skipped); standing with a malformed header (skipped);
  walking as hand-extracted plain CSVs (3 windows).
- proband4 (train): walking in one session whose acc CSV is named ``acc_walking_2_head.csv``
  and gyr CSV ``Gyroscope_walking_head.csv`` (as probands 4, 6, 7, 8, 13 of the real
  archive): paired by activity (3 windows).
- proband7 (train): climbingup in two session zips nested in each sensor zip, as in the real
  archive: ``acc_climbingup_1_csv.zip`` and ``acc_climbingup_2_csv.zip`` both holding an
  ``acc_climbingup_head.csv``; ``gyr_climbingup_csv.zip`` and ``gyr_climbingup_2_csv.zip``
  holding ``Gyroscope_climbingup[_2]_head.csv``: sessions from the zips (3 + 3 windows).
- ``zipped/realworld2016_dataset.zip``: the whole tree above as one unextracted archive (as
  downloaded), plus a video and a microphone archive of junk bytes that must never be opened.
"""

from __future__ import annotations

import io
import os
import sys
import zipfile

import numpy as np

T0_MS = 1_435_993_326_847  # a Unix time in mid-2015, when RealWorld was recorded
_DATE = (2016, 1, 1, 0, 0, 0)


def _stream(rng, seconds, sensor, activity, start_ms=0):
    n = int(seconds * 50)
    t_ms = T0_MS + start_ms + np.round(np.arange(n) * 20 + rng.uniform(-3, 3, n)).astype(np.int64)
    tt = (t_ms - T0_MS) / 1000.0
    moving = activity in ("walking", "climbingdown", "running", "jumping")
    if sensor == "acc":
        x = np.tile([0.3, 9.7, 1.4], (n, 1)) + rng.normal(0, 0.05, (n, 3))
        x *= 9.80665 / np.linalg.norm([0.3, 9.7, 1.4])  # |a| = 1 g at rest
        if moving:
            x[:, 1] += 2.0 * np.sin(2 * np.pi * 1.8 * tt)
    else:
        x = rng.normal(0, 0.02, (n, 3))
        if moving:
            x[:, 0] += 0.6 * np.sin(2 * np.pi * 0.9 * tt)
    return t_ms, x


def _csv(t_ms, x, header="id,attr_time,attr_x,attr_y,attr_z"):
    lines = [header]
    for i, (t, row) in enumerate(zip(t_ms, x), start=1):
        lines.append(f"{i},{t},{row[0]:.6f},{row[1]:.6f},{row[2]:.6f}")
    return ("\n".join(lines) + "\n").encode()


def _zip(members, method=zipfile.ZIP_DEFLATED):
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w", method) as zf:
        for name, data in members:
            zf.writestr(zipfile.ZipInfo(name, _DATE), data, method)
    return buf.getvalue()


def _pair(rng, activity, seconds, session=""):
    """acc and gyr CSV bytes for the head position."""
    acc = _csv(*_stream(rng, seconds, "acc", activity))
    gt, gx = _stream(rng, seconds - 0.2, "gyr", activity, start_ms=120)
    return acc, _csv(gt, gx)


def main(out_dir: str) -> None:
    rng = np.random.default_rng(2016)
    root = os.path.join(out_dir, "realworld2016_dataset")

    def write(subject, name, data):
        d = os.path.join(root, f"proband{subject}", "data")
        os.makedirs(d, exist_ok=True)
        with open(os.path.join(d, name), "wb") as f:
            f.write(data)

    # proband1 (val)
    for act in ("walking", "sitting"):
        acc, gyr = _pair(rng, act, 12)
        chest = _csv(*_stream(rng, 12, "acc", act))
        write(
            1,
            f"acc_{act}_csv.zip",
            _zip([(f"acc_{act}_chest.csv", chest), (f"acc_{act}_head.csv", acc)]),
        )
        write(1, f"gyr_{act}_csv.zip", _zip([(f"Gyroscope_{act}_head.csv", gyr)]))
    write(
        1,
        "mag_walking_csv.zip",
        _zip([("mag_walking_head.csv", _csv(*_stream(rng, 2, "gyr", "x")))]),
    )

    # proband2 (train)
    acc1, gyr1 = _pair(rng, "climbingdown", 12)
    acc2, gyr2 = _pair(rng, "climbingdown", 12)
    write(
        2,
        "acc_climbingdown_csv.zip",
        _zip([("acc_climbingdown_head.csv", acc1), ("acc_climbingdown_2_head.csv", acc2)]),
    )
    nested = _zip([("Gyr_ClimbingDown_2_Head.csv", gyr2)])
    write(
        2,
        "gyr_climbingdown_csv.zip",
        _zip([("gyr_climbingdown_head.csv", gyr1), ("gyr_climbingdown_2_csv.zip", nested)]),
    )
    acc, gyr = _pair(rng, "running", 12)
    write(2, "acc_running_csv.zip", _zip([("acc_running_head.csv", acc)]))
    write(2, "gyr_running_csv.zip", _zip([("gyr_running_chest.csv", gyr)]))  # no head gyr
    acc, gyr = _pair(rng, "jumping", 4)
    write(2, "acc_jumping_csv.zip", _zip([("acc_jumping_head.csv", acc)]))
    write(2, "gyr_jumping_csv.zip", _zip([("gyr_jumping_head.csv", gyr)]))

    # proband3 (test)
    t, x = _stream(rng, 20, "acc", "lying")
    x[[10, 11, 500]] = np.nan
    order = np.arange(len(t))
    order[300:310] = order[300:310][::-1]  # out-of-order rows
    t, x = np.concatenate([t[order], t[[700]]]), np.concatenate([x[order], x[[700]]])  # dup
    gt, gx = _stream(rng, 19.8, "gyr", "lying", start_ms=120)
    hole = (gt - T0_MS >= 9000) & (gt - T0_MS < 10000)
    write(3, "acc_lying_csv.zip", _zip([("acc_lying_head.csv", _csv(t, x))]))
    write(3, "gyr_lying_csv.zip", _zip([("gyr_lying_head.csv", _csv(gt[~hole], gx[~hole]))]))
    acc, gyr = _pair(rng, "standing", 12)
    bad = _csv(*_stream(rng, 12, "acc", "standing"), header="id,time,x,y,z")
    write(3, "acc_standing_csv.zip", _zip([("acc_standing_head.csv", bad)]))
    write(3, "gyr_standing_csv.zip", _zip([("gyr_standing_head.csv", gyr)]))
    acc, gyr = _pair(rng, "walking", 12)
    write(3, "acc_walking_head.csv", acc)
    write(3, "gyr_walking_head.csv", gyr)

    # proband4 (train): one walking session, acc named _2_, gyr not.
    acc, gyr = _pair(rng, "walking", 12)
    write(4, "acc_walking_csv.zip", _zip([("acc_walking_2_head.csv", acc)]))
    write(4, "gyr_walking_csv.zip", _zip([("Gyroscope_walking_head.csv", gyr)]))

    # proband7 (train): climbingup sessions as nested zips with equal acc CSV names.
    acc1, gyr1 = _pair(rng, "climbingup", 12)
    acc2, gyr2 = _pair(rng, "climbingup", 12)
    outer_acc = [
        ("acc_climbingup_1_csv.zip", _zip([("acc_climbingup_head.csv", acc1)])),
        ("acc_climbingup_2_csv.zip", _zip([("acc_climbingup_head.csv", acc2)])),
    ]
    outer_gyr = [
        ("gyr_climbingup_csv.zip", _zip([("Gyroscope_climbingup_head.csv", gyr1)])),
        ("gyr_climbingup_2_csv.zip", _zip([("Gyroscope_climbingup_2_head.csv", gyr2)])),
    ]
    write(7, "acc_climbingup_csv.zip", _zip(outer_acc))
    write(7, "gyr_climbingup_csv.zip", _zip(outer_gyr))

    # The same tree as one unextracted archive, with large irrelevant members to skip.
    members = []
    for dirpath, dirnames, files in os.walk(root):
        dirnames.sort()
        for name in sorted(files):
            path = os.path.join(dirpath, name)
            with open(path, "rb") as f:
                members.append((os.path.relpath(path, out_dir).replace(os.sep, "/"), f.read()))
    junk = rng.integers(0, 256, 4096, dtype=np.uint8).tobytes()
    members += [
        ("realworld2016_dataset/proband1/data/mic_walking_csv.zip", junk),
        ("realworld2016_dataset/proband1/videos/videos_walking.zip", junk),
    ]
    os.makedirs(os.path.join(out_dir, "zipped"), exist_ok=True)
    with open(os.path.join(out_dir, "zipped", "realworld2016_dataset.zip"), "wb") as f:
        f.write(_zip(members, zipfile.ZIP_STORED))


if __name__ == "__main__":
    main(
        sys.argv[1] if len(sys.argv) > 1 else os.path.join(os.path.dirname(__file__), "dummy_data")
    )
