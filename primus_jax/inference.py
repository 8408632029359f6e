"""The inference API: a trained (or imported) PRIMUS encoder as a batched, jitted function.

    enc = primus_jax.load_encoder("runs/primus")   # a workdir, checkpoints/ or a step
    out = enc.embed(windows)                       # (N, 250, 6) float32, 50 Hz, SI units
    out["mmcl"]                                    # (N, mm_dim): the downstream embedding
    out = enc.embed_stream(recording, rate_hz=100, acc_unit="g", gyro_unit="deg/s")

One compiled program of a fixed batch size (the last batch is zero-padded; rows are
independent, so padding never changes real rows), split over the local devices. Inputs are
checked and long recordings cut into windows by ``primus_jax.data.conditioning``; the input
contract is in ``docs/interop.md``.
"""

from __future__ import annotations

import collections
import math
import os
from collections.abc import Mapping, Sequence

import numpy as np

from primus_jax.data import conditioning
from primus_jax.models import build

OUTPUT_KEYS = ("emb", "ssl", "mmcl")


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

    @property
    def params(self):
        """The encoder's linen parameters (on the device(s) they were placed on)."""
        return self._params

    def _apply(self, params, x):
        return self.model.apply({"params": params}, x)

    @classmethod
    def from_checkpoint(cls, path: str | os.PathLike, **kwargs) -> ImuEncoder:
        """Loads the encoder of a training or imported checkpoint.

        Args:
          path: a workdir, its ``checkpoints/`` folder, one ``checkpoints/<step>`` folder, or
            a safetensors folder (``tools.export --format safetensors``).
          **kwargs: see :meth:`__init__`.
        """
        from primus_jax import checkpointing
        from primus_jax.tools import safetensors_export

        if safetensors_export.is_folder(path):
            params, config, step = safetensors_export.load_folder(path)
        else:
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
          check_units: ``"warn"``, ``"error"`` or ``"off"``
            (``conditioning.check_unit_plausibility``).

        Returns:
          ``{"emb", "ssl", "mmcl"}``: float32 numpy arrays of shape ``(N, D)``; ``mmcl`` is the
          embedding used downstream.

        Raises:
          ValueError: wrong rank or shape, NaN/inf, or (with ``check_units="error"``)
            implausible units.
        """
        x = conditioning.validate_windows(x, layout)
        conditioning.check_unit_plausibility(
            x.reshape(-1, conditioning.CHANNELS),
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

    # ------------------------------------------------------------------------- streams

    def embed_stream(
        self,
        x,
        rate_hz: float | None = None,
        *,
        acc_unit: str = "m/s2",
        gyro_unit: str = "rad/s",
        channel_order: str = conditioning.CANONICAL_ORDER,
        hop_s: float = 2.5,
        timestamps=None,
        max_gap_s: float = 0.1,
        check_units: str = "warn",
    ) -> dict[str, np.ndarray]:
        """Embeds every 5 s window of a long recording (``conditioning.stream_windows``).

        Returns:
          ``{"emb", "ssl", "mmcl"}`` ``(K, D)`` float32 and ``"start_s"`` ``(K,)`` float64:
          each window's start, in the timestamps' clock (or seconds from the first sample).
        """
        start_s, wins = conditioning.stream_windows(
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


def load_encoder(path: str | os.PathLike, **kwargs) -> ImuEncoder:
    """Loads a checkpoint's encoder for inference (see :class:`ImuEncoder`).

    Args:
      path: a workdir, its ``checkpoints/`` folder or one ``checkpoints/<step>`` folder
        (written by ``primus_jax.main`` or ``primus_jax.tools.import_torch``), or a
        safetensors folder (``primus_jax.tools.export --format safetensors``).
      **kwargs: ``batch_size`` (default 128), ``devices``, ``compute_dtype``.

    Returns:
      An :class:`ImuEncoder`: ``embed(windows)`` and ``embed_stream(recording, rate_hz)``.
    """
    return ImuEncoder.from_checkpoint(path, **kwargs)
