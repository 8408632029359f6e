"""Per-take Aria IMU for EgoExo4D: the ``imu.npz`` layout, and extraction from VRS.

The builder reads ``takes/<take_name>/imu.npz``::

    t    (N,)   float64  seconds on the take's timeline (the clock of the atomic-description
                         timestamps: t = 0 at the take's first video frame)
    imu  (N, 6) float32  [ax, ay, az, gx, gy, gz]: m/s² (gravity included), rad/s

Making it from the take's VRS needs ``projectaria_tools`` (an optional dependency, not installed
by this project; ``pip install projectaria-tools==2.3.0``)::

    python -m tfds_builders.egoexo4d.aria_imu <egoexo_root> [take_name ...]

The builder also calls ``read_vrs`` directly when a take has a VRS file but no ``imu.npz`` and
``projectaria_tools`` is importable.

Time origin. The reference code sets t = 0 at the IMU's first sample, which assumes the IMU
starts exactly with the video. Here t = 0 is the first frame of the RGB camera stream
(``camera-rgb``, stream 214-1) when the VRS has it, which is what the take's frame-aligned
videos start from; ``*_noimagestreams.vrs`` files have no RGB stream, and then the first IMU
sample is used as in the reference (reported as ``t0_source="imu"``).
"""

from __future__ import annotations

import os
import sys

import numpy as np

IMU_STREAM = "imu-right"  # stream 1202-1, ~1 kHz; the reference's choice
RGB_STREAM = "camera-rgb"  # stream 214-1


def find_vrs(take_dir: str) -> str | None:
    """The take's VRS, preferring the main recording over ``*_noimagestreams.vrs``."""
    if not os.path.isdir(take_dir):
        return None
    names = sorted(n for n in os.listdir(take_dir) if n.endswith(".vrs"))
    full = [n for n in names if "noimagestreams" not in n]
    chosen = (full or names or [None])[0]
    return None if chosen is None else os.path.join(take_dir, chosen)


def read_vrs(path: str) -> tuple[np.ndarray, np.ndarray, str]:
    """Reads the right Aria IMU from a VRS file.

    Returns:
        ``(t, imu, t0_source)``: seconds from the take start, ``(N, 6)`` SI values, and
        ``"rgb"`` or ``"imu"`` (which stream defined t = 0).

    Raises:
        ImportError: If ``projectaria_tools`` is not installed.
    """
    from projectaria_tools.core import data_provider  # optional dependency
    from projectaria_tools.core.sensor_data import TimeDomain

    provider = data_provider.create_vrs_data_provider(path)
    sid = provider.get_stream_id_from_label(IMU_STREAM)
    n = provider.get_num_data(sid)
    t_ns = np.empty(n, dtype=np.int64)
    imu = np.empty((n, 6), dtype=np.float64)
    for i in range(n):
        d = provider.get_imu_data_by_index(sid, i)
        t_ns[i] = d.capture_timestamp_ns
        imu[i, :3] = d.accel_msec2
        imu[i, 3:] = d.gyro_radsec
    t0_ns, t0_source = int(t_ns.min()), "imu"
    try:  # absent in *_noimagestreams.vrs; the lookup's failure mode varies by version
        rgb = provider.get_stream_id_from_label(RGB_STREAM)
        rgb_ns = provider.get_timestamps_ns(rgb, TimeDomain.DEVICE_TIME) if rgb else []
    except Exception:
        rgb_ns = []
    if len(rgb_ns):
        t0_ns, t0_source = int(min(rgb_ns)), "rgb"
    return (t_ns - t0_ns) / 1e9, imu.astype(np.float32), t0_source


def write_npz(path: str, t: np.ndarray, imu: np.ndarray, t0_source: str) -> None:
    np.savez(
        path,
        t=np.asarray(t, np.float64),
        imu=np.asarray(imu, np.float32),
        t0_source=np.array(t0_source),
    )


def main(argv: list[str]) -> None:
    """Extracts ``imu.npz`` for the given takes (default: all) under ``<root>/takes``."""
    root, names = argv[0], argv[1:]
    takes_dir = os.path.join(root, "takes")
    for name in names or sorted(os.listdir(takes_dir)):
        vrs = find_vrs(os.path.join(takes_dir, name))
        if vrs is None:
            print(f"{name}: no VRS, skipped", file=sys.stderr)
            continue
        t, imu, src = read_vrs(vrs)
        write_npz(os.path.join(takes_dir, name, "imu.npz"), t, imu, src)
        print(f"{name}: {len(t)} samples, t0 from {src}")


if __name__ == "__main__":
    main(sys.argv[1:])
