"""Per-take Aria IMU for EgoExo4D: the ``imu.npz`` cache layout, and extraction from VRS.

The builder reads ``takes/<take_name>/imu.npz`` when present::

    t_ns            (N,)   int64    capture_timestamp_ns, Aria device time (as in the VRS)
    imu             (N, 6) float32  [ax, ay, az, gx, gy, gz]: m/s² (gravity included), rad/s
    device          ()     str      the Aria camera id, e.g. "aria01" (from the VRS file name)
    invalid_samples ()     int64    records dropped for accel_valid/gyro_valid false
    source          ()     str      the VRS file it came from

Time stays on the device clock here; the builder moves it to the take timeline with the
capture's ``timesync.csv`` (README "Time base"), so the cache and a direct VRS read give the
same result. Making the cache needs ``projectaria_tools`` (optional, not installed by this
project; ``pip install projectaria-tools==2.3.0``)::

    python -m tfds_builders.egoexo4d.aria_imu <egoexo_root> [take_name ...]

Only records with both ``accel_valid`` and ``gyro_valid`` are kept, as the reference converter
(Nokia-Bell-Labs/pretrained-imu-encoders, dataset/egoexo4d/preprocessing_scripts/
convert_imu_vrs_egoexo.py). Every failure to read a file is a ``VrsError`` naming the file and
a reason the builder counts (``vrs_unreadable``, ``vrs_no_imu_stream``).
"""

from __future__ import annotations

import os
import re
import sys

import numpy as np

IMU_STREAM = "imu-right"  # stream 1202-1, ~1 kHz; the reference's choice
NPZ_KEYS = ("t_ns", "imu")


class VrsError(ValueError):
    """A VRS file that cannot give the IMU; ``reason`` is the build-log counter."""

    def __init__(self, path: str, reason: str, detail: str):
        super().__init__(f"{path}: {detail}")
        self.reason = reason


def find_vrs(take_dir: str) -> str | None:
    """The take's VRS: ``aria0N_noimagestreams.vrs`` (``--parts take_vrs_noimagestream``, the
    reference's file) if present, else the full ``aria0N.vrs``; both hold the same IMU."""
    if not os.path.isdir(take_dir):
        return None
    names = sorted(n for n in os.listdir(take_dir) if n.endswith(".vrs"))
    small = [n for n in names if n.endswith("_noimagestreams.vrs")]
    chosen = (small or names or [None])[0]
    return None if chosen is None else os.path.join(take_dir, chosen)


def device_of(vrs_name: str) -> str | None:
    """``"aria01"`` from ``aria01.vrs`` / ``aria01_noimagestreams.vrs``, else ``None``."""
    m = re.match(r"(aria\d+)(?:_noimagestreams)?\.vrs$", os.path.basename(vrs_name))
    return m.group(1) if m else None


def provider_module():
    """``projectaria_tools.core.data_provider``, or ``None`` when not installed (tests swap
    in ``fake_vrs``)."""
    try:
        from projectaria_tools.core import data_provider  # optional dependency
    except ImportError:
        return None
    return data_provider


def read_vrs(path: str, data_provider) -> tuple[np.ndarray, np.ndarray, int]:
    """Valid right-IMU records of a VRS file: ``(t_ns int64, imu (N, 6) float32, n_invalid)``.

    Raises:
        VrsError: The file does not open (``create_vrs_data_provider`` returns ``None``), has
            no active ``imu-right`` stream, or the library fails while reading it.
    """
    provider = data_provider.create_vrs_data_provider(path)
    if provider is None:
        raise VrsError(path, "vrs_unreadable", "create_vrs_data_provider returned None")
    try:
        sid = provider.get_stream_id_from_label(IMU_STREAM)
        # Aria Gen1 maps labels through a static table: a missing stream still gets an id.
        if sid is None or not provider.check_stream_is_active(sid):
            raise VrsError(path, "vrs_no_imu_stream", f"no active {IMU_STREAM!r} stream")
        n = int(provider.get_num_data(sid))
        t_ns = np.empty(n, dtype=np.int64)
        imu = np.empty((n, 6), dtype=np.float64)
        kept = 0
        for i in range(n):
            d = provider.get_imu_data_by_index(sid, i)
            if not (d.accel_valid and d.gyro_valid):
                continue
            t_ns[kept] = d.capture_timestamp_ns
            imu[kept, :3] = d.accel_msec2
            imu[kept, 3:] = d.gyro_radsec
            kept += 1
    except VrsError:
        raise
    except Exception as e:  # whatever the library throws, the take is skipped, not the build
        raise VrsError(path, "vrs_unreadable", f"{type(e).__name__}: {e}") from e
    return t_ns[:kept], imu[:kept].astype(np.float32), n - kept


def write_npz(
    path: str, t_ns: np.ndarray, imu: np.ndarray, device: str, invalid: int, source: str
) -> None:
    np.savez(
        path,
        t_ns=np.asarray(t_ns, np.int64),
        imu=np.asarray(imu, np.float32),
        device=np.array(device),
        invalid_samples=np.array(invalid, np.int64),
        source=np.array(source),
    )


def main(argv: list[str]) -> int:
    """Writes ``imu.npz`` for the given takes (default: all) under ``<root>/takes``."""
    root, names = argv[0], argv[1:]
    module = provider_module()
    if module is None:
        print("needs projectaria-tools: pip install projectaria-tools==2.3.0", file=sys.stderr)
        return 1
    takes_dir = os.path.join(root, "takes")
    failed = 0
    for name in names or sorted(os.listdir(takes_dir)):
        vrs = find_vrs(os.path.join(takes_dir, name))
        if vrs is None:
            print(f"{name}: no VRS, skipped", file=sys.stderr)
            continue
        try:
            t_ns, imu, invalid = read_vrs(vrs, module)
        except VrsError as e:
            print(f"{name}: {e.reason}: {e}", file=sys.stderr)
            failed += 1
            continue
        device = device_of(vrs) or ""
        out = os.path.join(takes_dir, name, "imu.npz")
        write_npz(out, t_ns, imu, device, invalid, os.path.basename(vrs))
        print(f"{name}: {len(t_ns)} samples ({invalid} invalid dropped) from {vrs}")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
