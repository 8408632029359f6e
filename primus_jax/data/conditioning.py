"""Users' IMU data -> the window contract: validation, unit checks, streams cut into windows.

The encoder's input is ``contract.SHAPE`` windows (5 s at 50 Hz, ``ax, ay, az, gx, gy, gz``,
m/s² including gravity and rad/s). ``validate_windows`` checks windows against it;
``stream_windows`` turns a long recording of any rate, units and channel order into such
windows with the builders' own helpers (``signal``); ``check_unit_plausibility`` warns when
magnitudes do not look like SI units (see ``docs/interop.md`` for why it warns by default).
"""

from __future__ import annotations

import warnings

import numpy as np

from primus_jax import contract
from primus_jax.data import signal

RATE_HZ, WINDOW_S, WINDOW_T = float(contract.RATE_HZ), contract.WINDOW_S, contract.WINDOW_T
CHANNELS = contract.NUM_CHANNELS
CANONICAL_ORDER = ",".join(contract.CHANNELS)
LAYOUTS = ("channels_last", "channels_first")
UNIT_CHECKS = ("warn", "error", "off")
_MAX_GYRO_RAD_S = 20.0  # median |gyro| above this is implausible in rad/s (~1150 deg/s)


class UnitWarning(UserWarning):
    """The data's magnitudes do not look like m/s² and rad/s."""


def check_unit_plausibility(x: np.ndarray, mode: str = "warn", *, hint: str = "") -> list[str]:
    """Checks that ``(N, 6)`` canonical-order data look like m/s² (with gravity) and rad/s.

    A median ``|acc|`` near 1 suggests g, far from 9.8 gravity-free or mis-scaled data; a
    median ``|gyro|`` above 20 suggests deg/s.

    Args:
      x: ``(N, 6)`` samples, ``ax, ay, az, gx, gy, gz``, supposedly in SI units.
      mode: ``"warn"`` (:class:`UnitWarning`), ``"error"`` (``ValueError``) or ``"off"``.
      hint: appended to every message (how to fix it in the caller's API).

    Returns:
      The problems found (empty when the data look plausible or ``mode="off"``).
    """
    if mode not in UNIT_CHECKS:
        raise ValueError(f"check_units must be one of {UNIT_CHECKS}, got {mode!r}")
    if mode == "off" or len(x) == 0:
        return []
    x = np.asarray(x, np.float64)
    acc = float(np.median(np.linalg.norm(x[:, :3], axis=1)))
    gyro = float(np.median(np.linalg.norm(x[:, 3:], axis=1)))
    guess = signal.guess_acc_unit(x[:, :3])
    problems = []
    swapped = guess != "m/s2" and 5.0 <= gyro <= 20.0 and acc < 5.0
    if swapped:
        problems.append(
            f"median |acc| = {acc:.3g} and median |gyro| = {gyro:.3g}: accelerometer and "
            "gyroscope look swapped (check the channel order)"
        )
    elif guess == "g":
        problems.append(
            f"median |acc| = {acc:.3g} looks like g, not m/s² (or gravity-free acceleration; "
            "the encoder was trained on acceleration including gravity)"
        )
    elif guess is None:
        problems.append(
            f"median |acc| = {acc:.3g} is implausible for m/s² including gravity (about 9.8 "
            "expected): gravity removed, wrong units (mg?) or wrong columns"
        )
    if gyro > _MAX_GYRO_RAD_S and not swapped:
        problems.append(f"median |gyro| = {gyro:.3g} looks like deg/s, not rad/s")
    if problems:
        msg = "; ".join(problems) + (f". {hint}" if hint else "")
        if mode == "error":
            raise ValueError(f"implausible units: {msg}")
        warnings.warn(msg, UnitWarning, stacklevel=3)
    return problems


def as_float_array(x, name: str) -> np.ndarray:
    """``x`` as a real numeric numpy array (``TypeError`` naming ``name`` otherwise)."""
    try:
        a = np.asarray(x)
    except Exception as e:
        raise TypeError(f"{name} must be a numeric array, got {type(x).__name__}") from e
    if a.dtype == object or not (
        np.issubdtype(a.dtype, np.floating) or np.issubdtype(a.dtype, np.integer)
    ):
        raise TypeError(f"{name} must be a real numeric array, got dtype {a.dtype}")
    return a


def check_finite(a: np.ndarray, name: str, fix: str) -> None:
    """``ValueError`` giving the count and first index of NaN/inf values, and ``fix``."""
    bad = ~np.isfinite(a)
    if bad.any():
        first = tuple(int(i) for i in np.argwhere(bad)[0])
        raise ValueError(
            f"{name} has {int(bad.sum())} NaN/inf values (first at index {first}); {fix}"
        )


def validate_windows(x, layout: str = "channels_last") -> np.ndarray:
    """Checks windows against the contract; returns them channels-last, float32, contiguous.

    Args:
      x: ``(N, 250, 6)`` (``layout="channels_last"``) or ``(N, 6, 250)``
        (``layout="channels_first"``, the PyTorch reference's layout; never inferred).

    Raises:
      ValueError: wrong layout name, rank or shape (the message says how to fix it), NaN/inf.
      TypeError: not a real numeric array.
    """
    if layout not in LAYOUTS:
        raise ValueError(f"layout must be one of {LAYOUTS}, got {layout!r}")
    a = as_float_array(x, "windows")
    want = "(N, 250, 6)" if layout == "channels_last" else "(N, 6, 250)"
    if a.ndim != 3:
        extra = ""
        if a.ndim == 2 and a.shape[-1] == CHANNELS:
            extra = (
                "; for one window use x[None], for a long (T, 6) recording use "
                "embed_stream(x, rate_hz=...)"
            )
        raise ValueError(f"windows must be {want} ({layout}); got shape {a.shape}{extra}")
    if layout == "channels_first":
        a = np.swapaxes(a, 1, 2)
    if a.shape[1:] != (WINDOW_T, CHANNELS):
        got = a.shape if layout == "channels_last" else np.swapaxes(a, 1, 2).shape
        extra = ""
        if layout == "channels_last" and got[1:] == (CHANNELS, WINDOW_T):
            extra = '; this is the PyTorch layout: pass layout="channels_first"'
        elif got[-1] != CHANNELS and layout == "channels_last":
            extra = f"; expected {CHANNELS} channels (ax, ay, az, gx, gy, gz)"
        elif got[1] != WINDOW_T and got[1:] != (WINDOW_T, CHANNELS):
            extra = (
                "; windows must be 5 s at 50 Hz (250 samples): resample and cut other "
                "data with embed_stream"
            )
        raise ValueError(f"windows must be {want} ({layout}); got shape {got}{extra}")
    check_finite(a, "windows", "drop or repair those windows")
    return np.ascontiguousarray(a, dtype=np.float32)


def stream_windows(
    x,
    rate_hz: float | None = None,
    *,
    acc_unit: str = "m/s2",
    gyro_unit: str = "rad/s",
    channel_order: str = CANONICAL_ORDER,
    hop_s: float = 2.5,
    timestamps=None,
    max_gap_s: float = 0.1,
    check_units: str = "warn",
) -> tuple[np.ndarray, np.ndarray]:
    """Turns a long recording into 5 s, 50 Hz windows in SI units.

    The recording is reordered to ``ax, ay, az, gx, gy, gz``, converted to m/s² and rad/s
    (``signal.to_si``), resampled to 50 Hz (``signal.resample``: linear interpolation,
    anti-aliased when the source is faster) and cut into 5 s windows every ``hop_s``
    (``signal.windows``), the steps the TFDS builders use.

    Args:
      x: ``(T, 6)`` samples whose columns are named by ``channel_order``.
      rate_hz: sampling rate of ``x`` (required unless ``timestamps`` is given; with
        timestamps it is only checked against their median rate).
      acc_unit: ``"m/s2"``, ``"g"`` or ``"mg"``.
      gyro_unit: ``"rad/s"``, ``"deg/s"`` or ``"mdeg/s"``.
      channel_order: comma-separated names of ``x``'s columns, a permutation of
        ``ax,ay,az,gx,gy,gz``.
      hop_s: step between window starts (a multiple of 0.02 s).
      timestamps: optional ``(T,)`` sample times in seconds (irregular sampling, dropped
        samples). Windows spanning a gap longer than ``max_gap_s`` are skipped.
      max_gap_s: see ``timestamps`` (0.1 s, as the builders).
      check_units: checked after conversion; ``"warn"``, ``"error"`` or ``"off"``.

    Returns:
      ``(start_s, windows)``: ``(K,)`` float64 window starts, in the timestamps' clock (or
      seconds from the first sample), and ``(K, 250, 6)`` float32 windows.

    Raises:
      ValueError: wrong shape, NaN/inf, a stream shorter than one window, bad units or
        channel order, ``hop_s`` not on the 50 Hz grid.
    """
    a = as_float_array(x, "stream")
    if a.ndim != 2 or a.shape[1] != CHANNELS:
        extra = "; it looks channels-first: pass x.T" if a.ndim == 2 and a.shape[0] == 6 else ""
        raise ValueError(f"stream must be (T, 6); got shape {a.shape}{extra}")
    fix = "drop those rows and pass the remaining rows' times as timestamps="
    check_finite(a, "stream", fix)
    signal.window_starts(0, RATE_HZ, WINDOW_S, hop_s)  # hop_s on the 50 Hz grid, before work
    if timestamps is None:
        if rate_hz is None or not (np.isfinite(rate_hz) and rate_hz > 0):
            raise ValueError(f"rate_hz must be a positive number, got {rate_hz!r}")
        t = np.arange(a.shape[0], dtype=np.float64) / float(rate_hz)
        gap = None
    else:
        t = as_float_array(timestamps, "timestamps").astype(np.float64).reshape(-1)
        if t.shape[0] != a.shape[0]:
            raise ValueError(f"{t.shape[0]} timestamps for {a.shape[0]} rows of samples")
        check_finite(t, "timestamps", "drop those rows")
        gap = max_gap_s
        if rate_hz is not None and len(t) > 1:
            est = signal.estimate_rate(np.unique(t))
            if abs(est - rate_hz) > 0.1 * rate_hz:
                warnings.warn(
                    f"rate_hz={rate_hz} but the timestamps' median rate is {est:.4g} Hz; "
                    "using the timestamps",
                    UserWarning,
                    stacklevel=2,
                )
    x_si = signal.to_si(signal.reorder_channels(a, channel_order), acc_unit, gyro_unit)
    check_unit_plausibility(
        x_si,
        check_units,
        hint=f"Got acc_unit={acc_unit!r}, gyro_unit={gyro_unit!r}, "
        f"channel_order={channel_order!r}.",
    )
    span = float(t.max() - t.min()) if len(t) else 0.0
    if span + 1.0 / RATE_HZ < WINDOW_S - 1e-9:
        raise ValueError(
            f"the stream covers {span:.3f} s; at least one {WINDOW_S:g} s window is needed"
        )
    r = signal.resample(t, x_si, RATE_HZ, max_gap_s=gap)
    starts, wins = signal.windows(r.x, RATE_HZ, WINDOW_S, hop_s, valid=r.valid)
    if len(starts) == 0:
        raise ValueError(
            f"no complete {WINDOW_S:g} s window without a gap longer than {max_gap_s} s"
        )
    return r.t[starts], wins.astype(np.float32)
