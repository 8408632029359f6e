"""The window contract: what every IMU window is, wherever it comes from.

5 s at 50 Hz, channels-last ``(250, 6)`` float32: accelerometer x/y/z in m/s² (gravity
included), then gyroscope x/y/z in rad/s. Builders write it, the input pipelines, inference,
evaluation and the benchmarks read it, and the encoder is shaped by it. Defined here only.
"""

from __future__ import annotations

RATE_HZ = 50
WINDOW_S = 5.0
WINDOW_T = 250  # RATE_HZ * WINDOW_S samples
NUM_CHANNELS = 6
SHAPE = (WINDOW_T, NUM_CHANNELS)
CHANNELS = ("ax", "ay", "az", "gx", "gy", "gz")  # canonical order: acc xyz, then gyro xyz
CHANNEL_NAMES = ("acc_x", "acc_y", "acc_z", "gyro_x", "gyro_y", "gyro_z")
UNITS = {"acc": "m/s2 (gravity included)", "gyro": "rad/s"}
DESCRIPTION = (
    f"({WINDOW_T}, {NUM_CHANNELS}) float32 windows, {WINDOW_S:g} s at {RATE_HZ} Hz, channels "
    "last: acc x/y/z in m/s² (gravity included), then gyro x/y/z in rad/s"
)
