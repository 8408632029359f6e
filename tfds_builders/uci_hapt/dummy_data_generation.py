r"""Writes tiny fake UCI HAPT raw data (official ``RawData/`` layout) into ``dummy_data/``.

Deterministic: re-running it reproduces the committed files byte for byte (checked by the
builder test). Run from the repository root::

    python -m tfds_builders.uci_hapt.dummy_data_generation

Contents (20 s experiments at 50 Hz; acc in g, gyro in rad/s, "%.5e" columns as UCI):

- user 1 (train): exp01 standing 100-499, a STAND_TO_SIT transition 500-599, sitting
  600-999 (2 + 2 windows); exp02 a SIT_TO_STAND transition 0-49 (its centred window is
  clamped to the recording's start), walking 50-949 (6 windows).
- user 2 (test): exp03 laying 0-399 (2), walking upstairs 400-519 (too short: 0),
  walking downstairs 520-999 (2); exp04 has an acc file but no gyro file (skipped); exp05
  only transitions: LIE_TO_SIT 200-349 and STAND_TO_LIE 500-899 (8 s, longer than a window).
- user 5 (val): exp09 walking upstairs 0-999 with a NaN at row 600 (7 windows, 2 skipped),
  plus a labels.txt row past the end of the file (skipped); exp10 is malformed (skipped);
  exp11 a STAND_TO_SIT 100-199 around a NaN at row 150 (skipped) and a LIE_TO_STAND 900-999
  (window clamped to the recording's end).

The activity configs exclude the transitions (counted); ``uci_hapt/transitions`` keeps one
window per transition: 2 train, 2 test, 1 val.
"""

from __future__ import annotations

import os
import sys

import numpy as np

N = 1000  # samples per experiment (20 s)
LABELS = [  # exp, user, activity, first row, last row (inclusive, 0-based)
    (1, 1, 5, 100, 499),
    (1, 1, 7, 500, 599),
    (1, 1, 4, 600, 999),
    (2, 1, 1, 50, 949),
    (3, 2, 6, 0, 399),
    (3, 2, 2, 400, 519),
    (3, 2, 3, 520, 999),
    (9, 5, 2, 0, 999),
    (9, 5, 1, 900, 5000),
    (2, 1, 8, 0, 49),
    (5, 2, 10, 200, 349),
    (5, 2, 11, 500, 899),
    (11, 5, 7, 100, 199),
    (11, 5, 12, 900, 999),
]
_DYNAMIC = {1, 2, 3}  # walking classes get a 2 Hz bounce


def _experiment(rng: np.random.Generator, exp: int) -> tuple[np.ndarray, np.ndarray]:
    t = np.arange(N) / 50.0
    labels = np.zeros(N, dtype=int)
    for e, _, act, lo, hi in LABELS:
        if e == exp and hi < N:
            labels[lo : hi + 1] = act
    # Gravity along a fixed, slightly tilted axis (|a| = 1 g at rest) plus small noise.
    g_dir = np.array([0.1, 0.2, 0.97])
    acc = np.tile(g_dir / np.linalg.norm(g_dir), (N, 1)) + rng.normal(0, 0.01, (N, 3))
    gyro = rng.normal(0, 0.02, (N, 3))
    moving = np.isin(labels, list(_DYNAMIC))
    acc[moving, 2] += 0.3 * np.sin(2 * np.pi * 2.0 * t[moving])
    gyro[moving, 0] += 0.5 * np.sin(2 * np.pi * 1.0 * t[moving])
    return acc, gyro


def _write(path: str, x: np.ndarray) -> None:
    with open(path, "w", encoding="ascii", newline="\n") as f:
        for row in x:
            f.write(" ".join(f"{v:.5e}" for v in row) + "\n")


def main(out_dir: str) -> None:
    raw = os.path.join(out_dir, "RawData")
    os.makedirs(raw, exist_ok=True)
    rng = np.random.default_rng(20240101)
    for exp, user in [(1, 1), (2, 1), (3, 2), (9, 5)]:
        acc, gyro = _experiment(rng, exp)
        if exp == 9:
            acc[600, 1] = np.nan
        _write(os.path.join(raw, f"acc_exp{exp:02d}_user{user:02d}.txt"), acc)
        _write(os.path.join(raw, f"gyro_exp{exp:02d}_user{user:02d}.txt"), gyro)
    acc, _ = _experiment(rng, 4)
    _write(os.path.join(raw, "acc_exp04_user02.txt"), acc)  # no gyro partner
    acc, gyro = _experiment(rng, 10)
    _write(os.path.join(raw, "acc_exp10_user05.txt"), acc[:300])
    with open(os.path.join(raw, "gyro_exp10_user05.txt"), "w", encoding="ascii") as f:
        f.write("0.1 0.2 0.3\n0.1 oops 0.3\n")  # malformed
    for exp, user in [(5, 2), (11, 5)]:  # transitions only
        acc, gyro = _experiment(rng, exp)
        if exp == 11:
            gyro[150, 0] = np.nan
        _write(os.path.join(raw, f"acc_exp{exp:02d}_user{user:02d}.txt"), acc)
        _write(os.path.join(raw, f"gyro_exp{exp:02d}_user{user:02d}.txt"), gyro)
    with open(os.path.join(raw, "labels.txt"), "w", encoding="ascii", newline="\n") as f:
        for row in LABELS:
            f.write(" ".join(str(v) for v in row) + "\n")


if __name__ == "__main__":
    main(
        sys.argv[1] if len(sys.argv) > 1 else os.path.join(os.path.dirname(__file__), "dummy_data")
    )
