"""Realistic synthetic IMU windows for numerical tests (seeded, float32, no data files).

Each case returns ``(n, 250, 6)`` windows, channels-last, 50 Hz × 5 s: acc x/y/z in m/s²
(gravity included) then gyro x/y/z in rad/s. Zero-mean unit noise hides the conditioning
problems of real data: a still window has a group mean near 9.81/√3 per axis and a spread
of ~0.01 m/s², which is where one-pass variances and cancelling affine forms lose digits.
"""

import numpy as np

RATE_HZ = 50.0
T = 250
G = 9.81
ACC_NOISE = 0.015  # m/s², a phone/watch accelerometer at rest
GYRO_NOISE = 0.003  # rad/s
GYRO_RAIL = 8.73  # rad/s: a ±500 °/s gyroscope saturates here

_t = np.arange(T) / RATE_HZ


def _still(rng, n, gravity_dirs):
    """Gravity along each unit vector, sensor noise and a small constant gyro bias."""
    x = np.empty((n, T, 6))
    for i in range(n):
        u = np.asarray(gravity_dirs[i % len(gravity_dirs)], np.float64)
        x[i, :, :3] = G * u / np.linalg.norm(u) + rng.normal(0, ACC_NOISE, (T, 3))
        x[i, :, 3:] = rng.uniform(-0.01, 0.01, 3) + rng.normal(0, GYRO_NOISE, (T, 3))
    return x.astype(np.float32)


def still_one_axis(n=4, seed=0):
    """At rest, gravity on one axis (z, then x, -y, ...)."""
    dirs = [(0, 0, 1), (1, 0, 0), (0, -1, 0), (0, 0, -1)]
    return _still(np.random.default_rng(seed), n, dirs)


def still_split(n=4, seed=1):
    """At rest, gravity split over all three axes (the exact diagonal first: the worst case)."""
    dirs = [(1, 1, 1), (0.58, 0.57, 0.58), (-0.57, 0.58, 0.58), (0.58, -0.58, -0.57)]
    return _still(np.random.default_rng(seed), n, dirs)


def walking(n=4, seed=2):
    """Walking at a 1.8-2 Hz step cadence: acc swings of a few m/s², gyro about ±1 rad/s."""
    rng = np.random.default_rng(seed)
    x = np.empty((n, T, 6))
    for i in range(n):
        w = 2 * np.pi * rng.uniform(1.8, 2.0)  # step cadence; the stride is half of it
        ph = rng.uniform(0, 2 * np.pi, 6)
        up = np.array([0.0, 0.0, 1.0]) + rng.normal(0, 0.15, 3)  # a slightly tilted device
        g = G * up / np.linalg.norm(up)
        vert = 2.5 * np.sin(w * _t + ph[0]) + 0.8 * np.sin(2 * w * _t + ph[1])
        fwd = 1.5 * np.sin(w * _t + ph[2]) + 0.3 * np.sin(3 * w * _t)
        lat = 1.0 * np.sin(0.5 * w * _t + ph[3])
        x[i, :, :3] = g + np.stack([fwd, lat, vert], -1) + rng.normal(0, 0.05, (T, 3))
        x[i, :, 3] = 1.0 * np.sin(0.5 * w * _t + ph[4]) + 0.2 * np.sin(1.5 * w * _t)
        x[i, :, 4] = 0.6 * np.sin(w * _t + ph[5])
        x[i, :, 5] = 0.4 * np.sin(0.5 * w * _t) + 0.1 * np.sin(2 * w * _t + ph[0])
        x[i, :, 3:] += rng.normal(0, 0.02, (T, 3))
    return x.astype(np.float32)


def saturated_gyro(n=4, seed=3):
    """Fast head turns whose yaw rate is clipped at the ±500 °/s rail for ~half the window."""
    rng = np.random.default_rng(seed)
    x = np.empty((n, T, 6))
    for i in range(n):
        yaw = 12.0 * np.sin(2 * np.pi * rng.uniform(0.6, 1.0) * _t + rng.uniform(0, 2 * np.pi))
        x[i, :, 3:] = np.stack([0.3 * np.sin(3 * _t), 0.5 * np.cos(2 * _t), yaw], -1)
        x[i, :, 3:] += rng.normal(0, 0.02, (T, 3))
        x[i, :, 3:] = np.clip(x[i, :, 3:], -GYRO_RAIL, GYRO_RAIL)
        # Centripetal and tangential acceleration of a sensor 5 cm from the (unclipped) axis.
        x[i, :, :3] = np.array([0.0, 0.0, G]) + rng.normal(0, 0.05, (T, 3))
        x[i, :, 0] += 0.05 * yaw**2
        x[i, :, 1] += 0.05 * np.gradient(yaw, 1 / RATE_HZ)
    return x.astype(np.float32)


def transition(n=4, seed=4):
    """Still for ~2 s, a 1 s movement, then still again in another orientation."""
    rng = np.random.default_rng(seed)
    x = np.empty((n, T, 6))
    starts = [(0, 0, 1), (1, 1, 1), (0, 1, 0), (1, 0, 0)]
    ends = [(1, 0, 0), (0, 0, 1), (0.58, 0.57, 0.58), (0, -1, 0)]
    s = np.clip((_t - 2.0) / 1.0, 0, 1)
    s = s * s * (3 - 2 * s)  # smooth step from the first orientation to the second
    for i in range(n):
        a = np.asarray(starts[i % 4], float)
        b = np.asarray(ends[i % 4], float)
        u = (1 - s)[:, None] * a / np.linalg.norm(a) + s[:, None] * b / np.linalg.norm(b)
        move = ((_t >= 2.0) & (_t < 3.0)).astype(float)[:, None]
        x[i, :, :3] = G * u / np.linalg.norm(u, axis=1, keepdims=True)
        x[i, :, :3] += move * rng.normal(0, 1.5, (T, 3)) + rng.normal(0, ACC_NOISE, (T, 3))
        rate = 2.5 * np.sin(np.pi * (_t - 2.0))[:, None] * rng.normal(0, 1, 3)
        x[i, :, 3:] = move * rate + rng.uniform(-0.01, 0.01, 3)
        x[i, :, 3:] += rng.normal(0, GYRO_NOISE, (T, 3))
    return x.astype(np.float32)


def unit_noise(n=4, seed=5):
    """The old test input: zero-mean unit-variance noise (well conditioned, for comparison)."""
    return np.random.default_rng(seed).normal(size=(n, T, 6)).astype(np.float32)


REALISTIC = {
    "still_one_axis": still_one_axis,
    "still_split": still_split,
    "walking": walking,
    "saturated_gyro": saturated_gyro,
    "transition": transition,
}
CASES = {**REALISTIC, "unit_noise": unit_noise}


def cases(n=4, names=None):
    """``{name: (n, 250, 6) float32}`` for the named cases (default: all, unit noise last)."""
    return {k: CASES[k](n) for k in (names or CASES)}


def stacked(n=4, names=None):
    """All the cases in one ``(len * n, 250, 6)`` batch, and ``{name: slice}`` into it."""
    xs = cases(n, names)
    slices = {k: slice(i * n, (i + 1) * n) for i, k in enumerate(xs)}
    return np.concatenate(list(xs.values())), slices
