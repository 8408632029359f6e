"""IMU signal helpers shared by every dataset builder and by ``data.conditioning``.

Raw recordings become contract windows (``primus_jax.contract``) in four steps, defined once
here so that builders and inference cannot drift apart: ``clean_timestamps``; ``resample`` /
``align_streams`` (linear interpolation onto a fixed grid, after a windowed-sinc low-pass when
the source is much faster, so motion above the new Nyquist frequency cannot alias);
``windows`` / ``window_starts`` / ``window_around``; ``to_si`` / ``reorder_channels``.
Pure numpy: nothing here needs scipy or TFDS.
"""

from __future__ import annotations

import dataclasses
import math

import numpy as np

from primus_jax import contract

G = 9.80665  # standard gravity, m/s² per g
CHANNELS = contract.CHANNELS

# Filter before interpolating only when the source runs this much faster than the target. A
# jittery 50 Hz phone stream resampled to 50 Hz must not be smoothed.
_ANTIALIAS_MIN_RATIO = 1.25
# Windowed-sinc design: cutoff at 90% of the target Nyquist frequency, 8 sinc zero crossings
# either side of the centre, Hann taper. For 1 kHz -> 50 Hz (357 taps) the response is -1 dB at
# 20 Hz, -6 dB at 22.5 Hz, -18 dB at 25 Hz and below -60 dB from 30 Hz (measured).
_ROLLOFF = 0.9
_ZERO_CROSSINGS = 8
_EPS = 1e-9


class CoverageError(ValueError):
    """The requested time range is not covered by the data."""


@dataclasses.dataclass(frozen=True)
class CleanReport:
    """What ``clean_timestamps`` removed or changed.

    Attributes:
        n_in: Input rows.
        n_nonfinite: Rows dropped because the timestamp or any channel was NaN or infinite.
        n_duplicates: Rows dropped because their timestamp repeated an earlier row's.
        reordered: Whether the rows had to be sorted by time.
    """

    n_in: int
    n_nonfinite: int
    n_duplicates: int
    reordered: bool

    @property
    def n_out(self) -> int:
        return self.n_in - self.n_nonfinite - self.n_duplicates


@dataclasses.dataclass(frozen=True)
class Resampled:
    """A signal on a fixed-rate grid.

    Attributes:
        t: ``(T,)`` float64 grid times in seconds, ``t0 + k / rate_hz``.
        x: ``(T, C)`` float64 values.
        valid: ``(T,)`` bool; ``False`` where the value had to be bridged across a gap longer
            than ``max_gap_s`` in the source (or where the filter saw such a gap).
        rate_hz: Grid rate.
    """

    t: np.ndarray
    x: np.ndarray
    valid: np.ndarray
    rate_hz: float


def _as_2d(x: np.ndarray) -> np.ndarray:
    x = np.asarray(x, dtype=np.float64)
    return x[:, None] if x.ndim == 1 else x


def clean_timestamps(t: np.ndarray, x: np.ndarray) -> tuple[np.ndarray, np.ndarray, CleanReport]:
    """Makes timestamps strictly increasing and values finite.

    Rows whose timestamp or any value is NaN/inf are dropped (interpolation then bridges them;
    ``max_gap_s`` in ``resample`` catches long holes). Unsorted rows are sorted stably, and of
    rows sharing a timestamp only the first is kept, since logs that repeat a timestamp usually
    repeat the sample as well.

    Args:
        t: ``(N,)`` timestamps in seconds.
        x: ``(N,)`` or ``(N, C)`` values.

    Returns:
        ``(t, x, report)`` with ``t`` float64 strictly increasing and ``x`` float64 ``(M, C)``.

    Raises:
        ValueError: On mismatched lengths, or when fewer than 2 usable rows remain.
    """
    t = np.asarray(t, dtype=np.float64).reshape(-1)
    x = _as_2d(x)
    if x.shape[0] != t.shape[0]:
        raise ValueError(f"{t.shape[0]} timestamps but {x.shape[0]} rows of values")
    n_in = t.shape[0]
    finite = np.isfinite(t) & np.isfinite(x).all(axis=1)
    t, x = t[finite], x[finite]
    reordered = bool(np.any(np.diff(t) < 0))
    if reordered:
        order = np.argsort(t, kind="stable")
        t, x = t[order], x[order]
    keep = np.concatenate([[True], np.diff(t) > 0])[: t.shape[0]]  # t may be empty
    t, x = t[keep], x[keep]
    report = CleanReport(n_in, int(n_in - finite.sum()), int((~keep).sum()), reordered)
    if t.shape[0] < 2:
        raise ValueError(
            f"only {t.shape[0]} usable samples of {n_in} after cleaning "
            f"({report.n_nonfinite} non-finite, {report.n_duplicates} duplicate timestamps)"
        )
    return t, x, report


def estimate_rate(t: np.ndarray) -> float:
    """Median sampling rate in Hz of strictly increasing timestamps (robust to gaps)."""
    return float(1.0 / np.median(np.diff(np.asarray(t, dtype=np.float64))))


def lowpass_taps(cutoff: float, half_width: int) -> np.ndarray:
    """Hann-windowed sinc low-pass filter with unit DC gain.

    Args:
        cutoff: Cutoff as a fraction of the sampling rate (0 < cutoff < 0.5).
        half_width: Taps either side of the centre; the filter has ``2 * half_width + 1``.

    Returns:
        ``(2 * half_width + 1,)`` float64 taps summing to 1 (so gravity passes unchanged).
    """
    n = np.arange(-half_width, half_width + 1)
    taps = 2 * cutoff * np.sinc(2 * cutoff * n) * np.hanning(2 * half_width + 3)[1:-1]
    return taps / taps.sum()


def _gap_mask(t: np.ndarray, grid: np.ndarray, max_gap_s: float | None) -> np.ndarray:
    """True for grid points whose bracketing source samples are at most max_gap_s apart."""
    if max_gap_s is None:
        return np.ones(grid.shape, dtype=bool)
    j = np.clip(np.searchsorted(t, grid, side="right"), 1, t.shape[0] - 1)
    on_sample = np.isclose(t[j - 1], grid, rtol=0.0, atol=_EPS)
    return ((t[j] - t[j - 1]) <= max_gap_s + _EPS) | on_sample


def _interp(t: np.ndarray, x: np.ndarray, grid: np.ndarray) -> np.ndarray:
    return np.stack([np.interp(grid, t, x[:, c]) for c in range(x.shape[1])], axis=1)


def _antialiased(t, x, t0, n, rate_hz, src_rate, max_gap_s):
    """Interpolates onto an m-times finer grid, low-pass filters it, keeps every m-th point."""
    m = math.ceil(src_rate / rate_hz)
    half = math.ceil(_ZERO_CROSSINGS * m / _ROLLOFF)
    taps = lowpass_taps(_ROLLOFF * 0.5 / m, half)
    # The fine grid shares the output grid's phase and extends half a filter either side;
    # outside the data np.interp holds the edge value (the usual "edge" padding).
    k = np.arange(-half, (n - 1) * m + half + 1)
    fine_t = t0 + k / (m * rate_hz)
    fine = _interp(t, x, fine_t)
    bad = (~_gap_mask(t, fine_t, max_gap_s)).astype(np.float64)
    y = np.empty((n, x.shape[1]))
    valid = np.empty(n, dtype=bool)
    # Evaluate the convolution only at the kept points, in chunks to bound memory.
    view = np.lib.stride_tricks.sliding_window_view(fine, taps.shape[0], axis=0)[::m]
    bad_view = np.lib.stride_tricks.sliding_window_view(bad, taps.shape[0])[::m]
    for s in range(0, n, 1024):
        y[s : s + 1024] = view[s : s + 1024] @ taps[::-1]
        valid[s : s + 1024] = bad_view[s : s + 1024].max(axis=1) == 0
    return y, valid


def resample(
    t: np.ndarray,
    x: np.ndarray,
    rate_hz: float,
    t0: float | None = None,
    t1: float | None = None,
    *,
    antialias: bool = True,
    max_gap_s: float | None = None,
    assume_clean: bool = False,
) -> Resampled:
    """Resamples an irregularly sampled signal onto the grid ``t0 + k / rate_hz``.

    Linear interpolation (IMU streams are sampled well above the motion bandwidth, and it
    never overshoots). If the source's median rate exceeds ``1.25 * rate_hz`` and
    ``antialias`` is set, the signal is first interpolated onto an integer multiple of the
    target rate, low-pass filtered (Hann-windowed sinc, cutoff 0.9 × target Nyquist, unit DC
    gain) and decimated.

    Args:
        t: ``(N,)`` timestamps in seconds (any order; see ``clean_timestamps``).
        x: ``(N,)`` or ``(N, C)`` values.
        rate_hz: Target rate.
        t0: First grid time; defaults to the first timestamp.
        t1: Last allowed grid time (inclusive); defaults to the last timestamp.
        antialias: Low-pass filter before downsampling.
        max_gap_s: Grid points bridging a source gap longer than this are marked invalid.
        assume_clean: Skip ``clean_timestamps`` (the caller already ran it).

    Returns:
        The resampled signal; ``len(t) = floor((t1 - t0) * rate_hz) + 1``.

    Raises:
        CoverageError: If ``[t0, t1]`` is empty or reaches outside the data's time span.
        ValueError: If fewer than 2 usable samples remain after cleaning.
    """
    if not assume_clean:
        t, x, _ = clean_timestamps(t, x)
    else:
        t, x = np.asarray(t, dtype=np.float64), _as_2d(x)
    t0 = float(t[0]) if t0 is None else float(t0)
    t1 = float(t[-1]) if t1 is None else float(t1)
    if t0 < t[0] - _EPS or t1 > t[-1] + _EPS or t1 < t0:
        raise CoverageError(
            f"requested [{t0:.3f}, {t1:.3f}] s but data cover [{t[0]:.3f}, {t[-1]:.3f}] s"
        )
    n = math.floor((t1 - t0) * rate_hz + 1e-6) + 1
    grid = t0 + np.arange(n) / rate_hz
    src_rate = estimate_rate(t)
    if antialias and src_rate > _ANTIALIAS_MIN_RATIO * rate_hz:
        y, valid = _antialiased(t, x, t0, n, rate_hz, src_rate, max_gap_s)
    else:
        y, valid = _interp(t, x, grid), _gap_mask(t, grid, max_gap_s)
    return Resampled(grid, y, valid, float(rate_hz))


def align_streams(
    acc_t: np.ndarray,
    acc: np.ndarray,
    gyro_t: np.ndarray,
    gyro: np.ndarray,
    rate_hz: float,
    *,
    max_gap_s: float | None = None,
    antialias: bool = True,
) -> Resampled:
    """Puts separately timestamped acc and gyro streams on one grid over their overlap.

    The grid starts at the later of the two first timestamps and ends by the earlier of the two
    last ones, so no value is extrapolated.

    Args:
        acc_t: ``(Na,)`` accelerometer timestamps, seconds.
        acc: ``(Na, 3)`` accelerometer values.
        gyro_t: ``(Ng,)`` gyroscope timestamps on the same clock.
        gyro: ``(Ng, 3)`` gyroscope values.
        rate_hz: Target rate.
        max_gap_s: See ``resample``; a point is invalid when either stream has a gap there.
        antialias: See ``resample``.

    Returns:
        ``Resampled`` with ``x`` of shape ``(T, 6)``: acc xyz then gyro xyz.

    Raises:
        CoverageError: If the streams overlap by less than one grid step.
        ValueError: If either stream has fewer than 2 usable samples.
    """
    acc_t, acc, _ = clean_timestamps(acc_t, acc)
    gyro_t, gyro, _ = clean_timestamps(gyro_t, gyro)
    lo, hi = max(acc_t[0], gyro_t[0]), min(acc_t[-1], gyro_t[-1])
    if hi - lo < 1.0 / rate_hz:
        raise CoverageError(
            f"acc [{acc_t[0]:.3f}, {acc_t[-1]:.3f}] s and gyro [{gyro_t[0]:.3f}, "
            f"{gyro_t[-1]:.3f}] s overlap by less than one sample at {rate_hz} Hz"
        )
    kw = dict(antialias=antialias, max_gap_s=max_gap_s, assume_clean=True)
    a = resample(acc_t, acc, rate_hz, lo, hi, **kw)
    g = resample(gyro_t, gyro, rate_hz, lo, hi, **kw)
    return Resampled(a.t, np.concatenate([a.x, g.x], axis=1), a.valid & g.valid, float(rate_hz))


def _samples(seconds: float, rate_hz: float, what: str) -> int:
    n = round(seconds * rate_hz)
    if n <= 0 or abs(n - seconds * rate_hz) > 1e-6:
        raise ValueError(f"{what}={seconds} s is not a whole number of samples at {rate_hz} Hz")
    return n


def window_starts(
    n_samples: int, rate_hz: float, window_s: float = contract.WINDOW_S, hop_s: float = 2.5
) -> np.ndarray:
    """Start indices of every full window ``[s, s + window)`` in ``n_samples`` samples.

    Returns:
        ``(K,)`` int64 starts ``0, hop, 2 hop, ...``; empty if the signal is shorter than a
        window.
    """
    w = _samples(window_s, rate_hz, "window_s")
    h = _samples(hop_s, rate_hz, "hop_s")
    return np.arange(0, max(n_samples - w + 1, 0), h, dtype=np.int64)


def windows(
    x: np.ndarray,
    rate_hz: float,
    window_s: float = contract.WINDOW_S,
    hop_s: float = 2.5,
    *,
    valid: np.ndarray | None = None,
    min_coverage: float = 1.0,
) -> tuple[np.ndarray, np.ndarray]:
    """Cuts a uniformly sampled ``(T, C)`` signal into overlapping windows.

    Args:
        x: ``(T, C)`` signal on a fixed-rate grid.
        rate_hz: Its rate.
        window_s: Window length; must be a whole number of samples.
        hop_s: Step between window starts; must be a whole number of samples.
        valid: ``(T,)`` bool mask of trustworthy samples; defaults to rows that are all finite.
        min_coverage: Keep a window when at least this fraction of its samples is valid. With
            less than 1, the invalid samples of a kept window are linearly interpolated from
            its valid ones (per channel), so the output is always finite.

    Returns:
        ``(starts, wins)``: ``(K,)`` int64 start indices and ``(K, W, C)`` windows (copies).
    """
    x = np.asarray(x)
    if x.ndim != 2:
        raise ValueError(f"expected (T, C), got shape {x.shape}")
    if not 0.0 < min_coverage <= 1.0:
        raise ValueError(f"min_coverage must be in (0, 1], got {min_coverage}")
    w = _samples(window_s, rate_hz, "window_s")
    valid = np.isfinite(x).all(axis=1) if valid is None else np.asarray(valid, dtype=bool)
    starts = window_starts(x.shape[0], rate_hz, window_s, hop_s)
    counts = np.concatenate([[0], np.cumsum(valid)])
    coverage = (counts[starts + w] - counts[starts]) / w
    starts = starts[coverage >= min_coverage - 1e-12]
    wins = np.stack([x[s : s + w] for s in starts]) if starts.size else np.empty((0, w, x.shape[1]))
    for i, s in enumerate(starts):
        ok = valid[s : s + w]
        if not ok.all():
            idx = np.arange(w)
            for c in range(x.shape[1]):
                wins[i, ~ok, c] = np.interp(idx[~ok], idx[ok], wins[i, ok, c])
    return starts, wins


def window_around(
    t_center: float,
    duration: float,
    window_s: float = contract.WINDOW_S,
    *,
    t_min: float = 0.0,
    snap_s: float | None = None,
    reference: bool = False,
) -> tuple[float, float] | None:
    """The window of length ``window_s`` around an event at ``t_center`` (EgoExo4D rule).

    The centred window, clamped into ``[t_min, duration]``: the reference's window whenever
    the centred window fits, the event kept inside it otherwise, ``None`` when nothing fits
    (the reference's own rule, with its edge defects, is ``reference=True``).

    Args:
        t_center: Event time, seconds.
        duration: End of the usable time range, seconds.
        window_s: Window length.
        t_min: Start of the usable time range (e.g. where the IMU starts).
        snap_s: Floor the start to a multiple of this (e.g. ``1 / rate_hz`` so windows are
            slices of one resampled stream); the snapped window stays inside the range.
        reference: Reproduce the reference's rule exactly, defects included (for parity
            checks only).

    Returns:
        ``(start, end)`` in seconds, or ``None`` if the event lies outside the range or the
        range is shorter than a window.
    """
    if reference:
        if t_center <= window_s:
            s, e = 0.0, window_s
        elif t_center + window_s >= duration:
            s, e = duration - window_s, duration
        else:
            s, e = t_center - window_s / 2, t_center + window_s / 2
        return float(int(s)), float(int(e))
    if not (math.isfinite(t_center) and t_min <= t_center <= duration):
        return None
    if duration - t_min < window_s - _EPS:
        return None
    start = min(max(t_center - window_s / 2, t_min), duration - window_s)
    if snap_s:
        start = math.floor(start / snap_s + 1e-6) * snap_s
        if start < t_min - _EPS:
            start += snap_s
        if start + window_s > duration + _EPS:
            return None
    return float(start), float(start + window_s)


_ACC_SCALE = {"m/s2": 1.0, "m/s^2": 1.0, "g": G, "mg": G / 1000.0}
_GYRO_SCALE = {"rad/s": 1.0, "deg/s": math.pi / 180.0, "mdeg/s": math.pi / 180_000.0}


def g_to_ms2(x: np.ndarray) -> np.ndarray:
    """Acceleration in g -> m/s² (standard gravity 9.80665)."""
    return np.asarray(x, dtype=np.float64) * G


def deg_to_rad(x: np.ndarray) -> np.ndarray:
    """Angular rate in deg/s -> rad/s."""
    return np.asarray(x, dtype=np.float64) * (math.pi / 180.0)


def to_si(x: np.ndarray, acc_unit: str = "m/s2", gyro_unit: str = "rad/s") -> np.ndarray:
    """Converts ``(N, 6)`` [acc xyz, gyro xyz] to m/s² and rad/s.

    Args:
        x: ``(N, 6)`` values in canonical channel order (see ``reorder_channels``).
        acc_unit: One of ``m/s2``, ``g``, ``mg``.
        gyro_unit: One of ``rad/s``, ``deg/s``, ``mdeg/s``.

    Returns:
        A float64 copy in SI units.
    """
    if acc_unit not in _ACC_SCALE or gyro_unit not in _GYRO_SCALE:
        raise ValueError(
            f"unknown units {acc_unit!r}/{gyro_unit!r}; acc in {sorted(_ACC_SCALE)}, "
            f"gyro in {sorted(_GYRO_SCALE)}"
        )
    x = np.array(x, dtype=np.float64)
    if x.ndim != 2 or x.shape[1] != contract.NUM_CHANNELS:
        raise ValueError(f"expected (N, 6), got shape {x.shape}")
    x[:, :3] *= _ACC_SCALE[acc_unit]
    x[:, 3:] *= _GYRO_SCALE[gyro_unit]
    return x


def guess_acc_unit(acc: np.ndarray) -> str | None:
    """Guesses whether gravity-including acceleration is in g or m/s² from its median norm.

    Returns:
        ``"g"`` for a median norm (over finite rows) in [0.5, 2], ``"m/s2"`` for [5, 20],
        otherwise ``None`` (implausible: gravity removed, wrong columns, or corrupt data).
    """
    norm = np.linalg.norm(np.asarray(acc, dtype=np.float64), axis=1)
    norm = float(np.median(norm[np.isfinite(norm)])) if np.isfinite(norm).any() else np.nan
    if 0.5 <= norm <= 2.0:
        return "g"
    if 5.0 <= norm <= 20.0:
        return "m/s2"
    return None


def reorder_channels(x: np.ndarray, order: str) -> np.ndarray:
    """Reorders ``(N, 6)`` columns from ``order`` to canonical ``ax,ay,az,gx,gy,gz``.

    Args:
        x: ``(N, 6)`` values whose columns are named by ``order``.
        order: Comma-separated names of ``x``'s columns, a permutation of
            ``ax,ay,az,gx,gy,gz`` (e.g. Ego4D's CSVs are ``"gx,gy,gz,ax,ay,az"``).

    Returns:
        ``x`` with its columns in canonical order.
    """
    names = [c.strip().lower() for c in order.split(",")]
    if sorted(names) != sorted(CHANNELS):
        raise ValueError(f"order {order!r} is not a permutation of {','.join(CHANNELS)}")
    x = np.asarray(x)
    if x.ndim != 2 or x.shape[1] != contract.NUM_CHANNELS:
        raise ValueError(f"expected (N, 6), got shape {x.shape}")
    return x[:, [names.index(c) for c in CHANNELS]]
