"""Embedding IMU data with a trained (or imported) PRIMUS encoder.

    import primus_jax

    enc = primus_jax.load_encoder("runs/primus")          # a workdir, checkpoints/ or a step
    out = enc.embed(windows)                              # (N, 250, 6) float32, 50 Hz, SI
    out["mmcl"]                                           # (N, mm_dim): the downstream embedding

    out = enc.embed_stream(recording, rate_hz=100, acc_unit="g", gyro_unit="deg/s",
                           channel_order="gx,gy,gz,ax,ay,az", hop_s=2.5)
    out["start_s"]                                        # (K,) window start times, seconds

Conventions (the encoder's training data, ``docs/data_format.md`` §1): windows are 5 s at 50 Hz
(250 samples), channels ``ax, ay, az, gx, gy, gz``, acceleration in m/s² *including gravity*,
angular rate in rad/s, channels-last ``(N, 250, 6)``. The PyTorch layout ``(N, 6, 250)`` is
accepted only with ``layout="channels_first"``, never guessed.

Batching: :meth:`ImuEncoder.embed` runs one jitted program of a fixed batch size (the last
batch is zero-padded, so it compiles once); with several local devices the batch is split over
them. Rows are independent (every normalisation is per sample), so padding never changes the
real rows.

Unit check (``check_units``, default ``"warn"``): a median ``|acc|`` near 1 suggests g instead
of m/s², a median ``|gyro|`` above 20 suggests deg/s, a median ``|acc|`` far from 9.8 suggests
gravity-free or mis-scaled data. It *warns* (:class:`UnitWarning`) by default rather than
raising because (a) gravity-free ("linear") acceleration in m/s² legitimately has a median norm
near 1 and (b) the encoder's first layer (GroupNorm over acc and gyro separately) makes it
nearly invariant to a constant scale of either sensor, so a unit slip costs little unless the
signal is almost still. Pass ``check_units="error"`` to refuse, ``"off"`` to skip.
"""

from __future__ import annotations

import collections
import math
import os
import warnings
from collections.abc import Mapping, Sequence

import numpy as np

from primus_jax import contract
from primus_jax.data import signal
from primus_jax.models import build

RATE_HZ, WINDOW_S, WINDOW_T = float(contract.RATE_HZ), contract.WINDOW_S, contract.WINDOW_T
CHANNELS = contract.NUM_CHANNELS
CANONICAL_ORDER = ",".join(contract.CHANNELS)
LAYOUTS = ("channels_last", "channels_first")
UNIT_CHECKS = ("warn", "error", "off")
OUTPUT_KEYS = ("emb", "ssl", "mmcl")
_MAX_GYRO_RAD_S = 20.0  # median |gyro| above this is implausible in rad/s (~1150 deg/s)
_MODEL_FIELDS = ("hidden", "ssl_dim", "mm_dim", "conv_channels", "pool_bins", "gru_over")


class UnitWarning(UserWarning):
    """The data's magnitudes do not look like m/s² and rad/s."""


def check_unit_plausibility(x: np.ndarray, mode: str = "warn", *, hint: str = "") -> list[str]:
    """Checks that ``(N, 6)`` canonical-order data look like m/s² (with gravity) and rad/s.

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


def _as_float_array(x, name: str) -> np.ndarray:
    try:
        a = np.asarray(x)
    except Exception as e:
        raise TypeError(f"{name} must be a numeric array, got {type(x).__name__}") from e
    if a.dtype == object or not (
        np.issubdtype(a.dtype, np.floating) or np.issubdtype(a.dtype, np.integer)
    ):
        raise TypeError(f"{name} must be a real numeric array, got dtype {a.dtype}")
    return a


def _check_finite(a: np.ndarray, name: str, fix: str) -> None:
    bad = ~np.isfinite(a)
    if bad.any():
        first = tuple(int(i) for i in np.argwhere(bad)[0])
        raise ValueError(
            f"{name} has {int(bad.sum())} NaN/inf values (first at index {first}); {fix}"
        )


class ImuEncoder:
    """A PRIMUS encoder ready for inference; see the module docstring.

    Attributes:
      dims: output widths, ``{"emb": hidden, "ssl": ssl_dim, "mmcl": mm_dim}``.
      batch_size: rows per compiled call (a multiple of the number of devices).
      config: the run's config dict (``None`` if the checkpoint had none).
      step: the checkpoint's training step (``None`` for in-memory parameters).
    """

    def __init__(
        self,
        params: Mapping,
        config: Mapping | None = None,
        *,
        batch_size: int = 128,
        devices: Sequence | None = None,
        compute_dtype=None,
        step: int | None = None,
    ):
        """Builds the jitted encoder.

        Args:
          params: the encoder's linen ``params`` (e.g. from
            ``checkpointing.load_encoder_params``).
          config: the run's config dict; its ``model`` section gives the architecture. Widths
            are read from the parameter shapes in any case; ``gru_over`` needs the config
            (default ``"channels"``, the reference's).
          batch_size: rows per call; rounded up to a multiple of the device count.
          devices: devices to shard each batch over (default: all local devices).
          compute_dtype: ``None`` for float32 (default, whatever the training used) or
            ``jnp.bfloat16`` matmul operands.
          step: the checkpoint step, for bookkeeping.
        """
        import jax
        from jax.sharding import NamedSharding
        from jax.sharding import PartitionSpec as P

        if not isinstance(batch_size, int | np.integer) or batch_size <= 0:
            raise ValueError(f"batch_size must be a positive integer, got {batch_size!r}")
        self.config = dict(config) if config is not None else None
        self.step = step
        self.model = build.encoder_from_params(
            params, (config or {}).get("model"), compute_dtype=compute_dtype
        )
        m = self.model
        self.dims = {"emb": m.hidden, "ssl": m.ssl_dim, "mmcl": m.mm_dim}

        devices = list(devices) if devices is not None else jax.local_devices()
        self.devices = devices
        n = len(devices)
        self.batch_size = int(math.ceil(batch_size / n) * n)
        if n > 1:
            mesh = jax.make_mesh(
                (n,), ("data",), axis_types=(jax.sharding.AxisType.Auto,), devices=devices
            )
            self._in_sharding = NamedSharding(mesh, P("data"))
            replicated = NamedSharding(mesh, P())
            self._params = jax.device_put(params, replicated)
            self._fn = jax.jit(
                self._apply,
                in_shardings=(replicated, self._in_sharding),
                out_shardings=self._in_sharding,
            )
        else:
            self._in_sharding = devices[0]
            self._params = jax.device_put(params, devices[0])
            self._fn = jax.jit(self._apply)
        self._jax = jax

    def _apply(self, params, x):
        return self.model.apply({"params": params}, x)

    @classmethod
    def from_checkpoint(cls, path: str | os.PathLike, **kwargs) -> ImuEncoder:
        """Loads the encoder of a training or imported checkpoint.

        Args:
          path: a workdir, its ``checkpoints/`` folder or one ``checkpoints/<step>`` folder.
          **kwargs: see :meth:`__init__`.
        """
        from primus_jax import checkpointing

        params, config, step = checkpointing.load_encoder_params(path)
        return cls(params, config, step=step, **kwargs)

    # ------------------------------------------------------------------------- windows

    def embed(
        self,
        x,
        *,
        layout: str = "channels_last",
        check_units: str = "warn",
    ) -> dict[str, np.ndarray]:
        """Embeds windows of 5 s at 50 Hz in SI units.

        Args:
          x: ``(N, 250, 6)`` (``layout="channels_last"``) or ``(N, 6, 250)``
            (``layout="channels_first"``, the PyTorch reference's layout); channels ``ax, ay,
            az`` (m/s², with gravity) then ``gx, gy, gz`` (rad/s). Cast to float32.
          layout: see ``x``; never inferred from the shape.
          check_units: ``"warn"``, ``"error"`` or ``"off"`` (see the module docstring).

        Returns:
          ``{"emb", "ssl", "mmcl"}``: float32 numpy arrays of shape ``(N, D)``; ``mmcl`` is the
          embedding used downstream.

        Raises:
          ValueError: wrong rank or shape, NaN/inf, or (with ``check_units="error"``)
            implausible units.
        """
        x = self._validate_windows(x, layout)
        check_unit_plausibility(
            x.reshape(-1, CHANNELS),
            check_units,
            hint="Windows must be in m/s² and rad/s; embed_stream converts units.",
        )
        n = x.shape[0]
        if n == 0:
            return {k: np.zeros((0, d), np.float32) for k, d in self.dims.items()}
        outputs = {k: [] for k in OUTPUT_KEYS}
        pending = collections.deque()

        def fetch():
            out, rows = pending.popleft()
            for k in OUTPUT_KEYS:
                outputs[k].append(np.asarray(out[k])[:rows])

        b = self.batch_size
        for s in range(0, n, b):
            chunk = x[s : s + b]
            rows = chunk.shape[0]
            if rows < b:  # pad the last batch: one compiled shape for every call
                chunk = np.concatenate([chunk, np.zeros((b - rows, *chunk.shape[1:]), np.float32)])
            batch = self._jax.device_put(chunk, self._in_sharding)
            pending.append((self._fn(self._params, batch), rows))
            if len(pending) > 2:  # keep two batches in flight; bound device memory
                fetch()
        while pending:
            fetch()
        return {k: np.concatenate(v) for k, v in outputs.items()}

    __call__ = embed

    @staticmethod
    def _validate_windows(x, layout: str) -> np.ndarray:
        if layout not in LAYOUTS:
            raise ValueError(f"layout must be one of {LAYOUTS}, got {layout!r}")
        a = _as_float_array(x, "windows")
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
        _check_finite(a, "windows", "drop or repair those windows")
        return np.ascontiguousarray(a, dtype=np.float32)

    # ------------------------------------------------------------------------- streams

    def embed_stream(
        self,
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
    ) -> dict[str, np.ndarray]:
        """Embeds every 5 s window of a long recording (see :func:`stream_windows`).

        Returns:
          ``{"emb", "ssl", "mmcl"}`` ``(K, D)`` float32 and ``"start_s"`` ``(K,)`` float64:
          each window's start, in the timestamps' clock (or seconds from the first sample).
        """
        start_s, wins = stream_windows(
            x,
            rate_hz,
            acc_unit=acc_unit,
            gyro_unit=gyro_unit,
            channel_order=channel_order,
            hop_s=hop_s,
            timestamps=timestamps,
            max_gap_s=max_gap_s,
            check_units=check_units,
        )
        out = self.embed(wins, check_units="off")
        out["start_s"] = start_s
        return out


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
    a = _as_float_array(x, "stream")
    if a.ndim != 2 or a.shape[1] != CHANNELS:
        extra = "; it looks channels-first: pass x.T" if a.ndim == 2 and a.shape[0] == 6 else ""
        raise ValueError(f"stream must be (T, 6); got shape {a.shape}{extra}")
    fix = "drop those rows and pass the remaining rows' times as timestamps="
    _check_finite(a, "stream", fix)
    signal.window_starts(0, RATE_HZ, WINDOW_S, hop_s)  # hop_s on the 50 Hz grid, before work
    if timestamps is None:
        if rate_hz is None or not (np.isfinite(rate_hz) and rate_hz > 0):
            raise ValueError(f"rate_hz must be a positive number, got {rate_hz!r}")
        t = np.arange(a.shape[0], dtype=np.float64) / float(rate_hz)
        gap = None
    else:
        t = _as_float_array(timestamps, "timestamps").astype(np.float64).reshape(-1)
        if t.shape[0] != a.shape[0]:
            raise ValueError(f"{t.shape[0]} timestamps for {a.shape[0]} rows of samples")
        _check_finite(t, "timestamps", "drop those rows")
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


def load_encoder(path: str | os.PathLike, **kwargs) -> ImuEncoder:
    """Loads a checkpoint's encoder for inference (see :class:`ImuEncoder`).

    Args:
      path: a workdir, its ``checkpoints/`` folder or one ``checkpoints/<step>`` folder
        (written by ``primus_jax.main`` or ``primus_jax.tools.import_torch``).
      **kwargs: ``batch_size`` (default 128), ``devices``, ``compute_dtype``.

    Returns:
      An :class:`ImuEncoder`: ``embed(windows)`` and ``embed_stream(recording, rate_hz)``.
    """
    return ImuEncoder.from_checkpoint(path, **kwargs)
