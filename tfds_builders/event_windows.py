"""5 s windows around timestamped events (narrations, atomic descriptions) in a long recording.

Used by the Ego4D and EgoExo4D builders. The recording is resampled once onto the absolute
50 Hz grid ``k / 50`` s of its own timeline (anti-aliased, see ``signal.resample``); each
event's window (``signal.window_around`` with ``snap_s = 1/50``) is then a slice of that
stream, so overlapping windows are consistent and the recording is filtered only once.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Iterator, Sequence
from typing import Any

import numpy as np

from primus_jax.data import signal
from tfds_builders import segment_format

RATE_HZ = segment_format.RATE_HZ
WINDOW_LEN = segment_format.WINDOW_LEN


@dataclasses.dataclass(frozen=True)
class GridStream:
    """A recording on the grid ``t_k = k / RATE_HZ``, ``k = k0 .. k0 + len(x) - 1``."""

    k0: int
    x: np.ndarray  # (T, 6) float64
    valid: np.ndarray  # (T,) bool

    @property
    def t_start(self) -> float:
        return self.k0 / RATE_HZ

    @property
    def t_end(self) -> float:
        return (self.k0 + len(self.x) - 1) / RATE_HZ


def to_grid(
    t: np.ndarray, x: np.ndarray, *, max_gap_s: float, t_max: float | None = None
) -> GridStream:
    """Resamples a recording (timestamps in seconds on its own timeline) onto the grid.

    Only ``t >= 0`` (and ``t <= t_max``, e.g. the video's duration) is kept.

    Raises:
        signal.CoverageError: If less than one window of the allowed range has data.
        ValueError: If fewer than 2 usable samples remain after cleaning.
    """
    t, x, _ = signal.clean_timestamps(t, x)
    lo, hi = max(t[0], 0.0), t[-1] if t_max is None else min(t[-1], t_max)
    k0, k1 = math.ceil(lo * RATE_HZ - 1e-6), math.floor(hi * RATE_HZ + 1e-6)
    if k1 - k0 + 1 < WINDOW_LEN:
        raise signal.CoverageError(f"only {max(hi - lo, 0):.2f} s of data in range")
    r = signal.resample(
        t, x, RATE_HZ, k0 / RATE_HZ, k1 / RATE_HZ, max_gap_s=max_gap_s, assume_clean=True
    )
    return GridStream(k0, r.x, r.valid)


def cut(
    stream: GridStream, events: Sequence[tuple[float, Any]]
) -> Iterator[tuple[str, float, np.ndarray | None, Any]]:
    """One window per event, in event order.

    Args:
        stream: The recording on the grid.
        events: ``(time_s, payload)`` pairs.

    Yields:
        ``(status, start_s, window, payload)``; ``status`` is ``"ok"`` (``window`` is
        ``(250, 6)``), ``"outside"`` (the event is not inside the recording's data, or the
        recording is too short), ``"gap"`` (the window crosses a hole in the data) or
        ``"duplicate"`` (an earlier event already produced this exact window; the first is
        kept so ids stay unique).
    """
    seen: set[int] = set()
    for t, payload in events:
        w = signal.window_around(
            t,
            stream.t_end,
            segment_format.WINDOW_S,
            t_min=stream.t_start,
            snap_s=1.0 / RATE_HZ,
        )
        if w is None:
            yield "outside", math.nan, None, payload
            continue
        k = round(w[0] * RATE_HZ)
        start_s = k / RATE_HZ
        i = k - stream.k0
        if k in seen:
            yield "duplicate", start_s, None, payload
            continue
        if i < 0 or i + WINDOW_LEN > len(stream.x):  # only by float round-off
            yield "outside", start_s, None, payload
            continue
        if not stream.valid[i : i + WINDOW_LEN].all():
            yield "gap", start_s, None, payload
            continue
        seen.add(k)
        yield "ok", start_s, stream.x[i : i + WINDOW_LEN], payload
