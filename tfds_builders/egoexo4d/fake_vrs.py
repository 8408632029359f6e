"""A stand-in for ``projectaria_tools.core.data_provider`` over a tiny file format (tests only).

No real VRS file can be written offline, so the dummy data's ``*.vrs`` files are either this
format (magic line + an npz of streams) or plain garbage. The fake mirrors the parts of the
real API that ``aria_imu.read_vrs`` uses, including its failure modes (projectaria_tools,
``core/data_provider/VrsDataProviderFactory.cpp``, ``VrsDataProvider.h``,
``StreamIdLabelMapper.cpp``):

- ``create_vrs_data_provider`` returns ``None`` for a file that does not open;
- ``get_stream_id_from_label`` maps Aria Gen1 labels through a *static* table, so
  ``"imu-right"`` gives ``1202-1`` even when the file has no such stream, and returns ``None``
  only for an unknown label; ``check_stream_is_active`` says whether the stream exists;
- ``get_imu_data_by_index`` on an inactive stream raises (the real one throws).
"""

from __future__ import annotations

import dataclasses
import io

import numpy as np

MAGIC = b"FAKEVRS1\n"
_GEN1_LABELS = {"imu-right": "1202-1", "imu-left": "1202-2", "camera-rgb": "214-1"}


@dataclasses.dataclass
class MotionData:
    capture_timestamp_ns: int
    accel_msec2: list
    gyro_radsec: list
    accel_valid: bool
    gyro_valid: bool


def write(path: str, streams: dict[str, dict[str, np.ndarray]]) -> None:
    """Writes ``{stream_id: {"t_ns", "accel", "gyro", "accel_valid", "gyro_valid"}}``."""
    arrays = {f"{sid}/{k}": v for sid, fields in streams.items() for k, v in fields.items()}
    buf = io.BytesIO()
    np.savez(buf, **arrays)
    with open(path, "wb") as f:
        f.write(MAGIC + buf.getvalue())


class _Provider:
    def __init__(self, arrays: dict[str, np.ndarray]):
        self._a = arrays
        self._streams = {k.split("/")[0] for k in arrays}

    def get_stream_id_from_label(self, label: str):
        return _GEN1_LABELS.get(label)

    def check_stream_is_active(self, sid) -> bool:
        return sid in self._streams

    def get_num_data(self, sid) -> int:
        return len(self._a[f"{sid}/t_ns"]) if sid in self._streams else 0

    def get_imu_data_by_index(self, sid, i: int) -> MotionData:
        if sid not in self._streams:
            raise RuntimeError(f"stream {sid} is not active")  # the real one throws too
        a = self._a
        return MotionData(
            int(a[f"{sid}/t_ns"][i]),
            list(a[f"{sid}/accel"][i]),
            list(a[f"{sid}/gyro"][i]),
            bool(a[f"{sid}/accel_valid"][i]),
            bool(a[f"{sid}/gyro_valid"][i]),
        )


def create_vrs_data_provider(path: str):
    """A provider, or ``None`` when the file does not open (as the real factory)."""
    try:
        with open(path, "rb") as f:
            data = f.read()
        if not data.startswith(MAGIC):
            return None
        with np.load(io.BytesIO(data[len(MAGIC) :]), allow_pickle=False) as z:
            return _Provider({k: np.asarray(z[k]) for k in z.files})
    except Exception:  # any damage: "Cannot open vrsFile", like the real factory
        return None
