"""Embeds IMU data from an ``.npz`` file with a PRIMUS checkpoint.

Windows (already 5 s at 50 Hz, SI units, channels ``ax, ay, az, gx, gy, gz``)::

    python -m primus_jax.tools.embed_imu --checkpoint runs/primus --input windows.npz \\
        --output emb.npz                       # X: (N, 250, 6)   [--layout channels_first]

One long recording (any rate, units and channel order; resampled and cut into windows)::

    python -m primus_jax.tools.embed_imu --checkpoint runs/primus --input rec.npz \\
        --output emb.npz --rate_hz 100 --acc_unit g --gyro_unit deg/s \\
        --channel_order gx,gy,gz,ax,ay,az --hop_s 2.5
                                               # X: (T, 6), optional t: (T,) seconds

Input: key ``X``. Stream mode is chosen by passing ``--rate_hz`` (or ``--stream`` when the
file has timestamps ``t``); ``--acc_unit``, ``--gyro_unit``, ``--channel_order`` and
``--hop_s`` apply to streams only. Output: ``emb``, ``ssl``, ``mmcl`` (float32, ``(N, D)``;
``mmcl`` is the downstream embedding) and, for streams, ``start_s`` (window starts, seconds).
The file is read with ``allow_pickle=False``.
"""

from __future__ import annotations

import os
import time
from collections.abc import Sequence

import numpy as np
from absl import app, flags

from primus_jax import cli_errors, contract
from primus_jax.data import conditioning

INPUT_KEY = "X"
TIME_KEY = "t"


class InputError(cli_errors.UserError, ValueError):
    """The input file does not hold what the chosen mode expects."""


def define_flags(fv: flags.FlagValues = flags.FLAGS) -> None:
    """Defines the tool's flags on ``fv`` (the global flags when run as a program)."""
    kw = {"flag_values": fv}
    flags.DEFINE_string("checkpoint", None, "workdir, checkpoints/ or a step dir", **kw)
    flags.DEFINE_string("input", None, ".npz with X (and optionally t)", **kw)
    flags.DEFINE_string("output", None, "output .npz", **kw)
    flags.DEFINE_integer("batch_size", 128, "windows per compiled call", **kw)
    flags.DEFINE_enum(
        "layout",
        "channels_last",
        list(conditioning.LAYOUTS),
        "windows mode: X is (N, 250, 6) or the PyTorch (N, 6, 250)",
        **kw,
    )
    flags.DEFINE_enum(
        "check_units",
        "warn",
        list(conditioning.UNIT_CHECKS),
        "what to do when magnitudes do not look like m/s² (with gravity) and rad/s",
        **kw,
    )
    # Stream mode: X is one (T, 6) recording.
    flags.DEFINE_bool("stream", False, "stream mode (implied by --rate_hz)", **kw)
    flags.DEFINE_float("rate_hz", None, "sampling rate of X (or pass t in the file)", **kw)
    flags.DEFINE_enum("acc_unit", "m/s2", ["m/s2", "g", "mg"], "stream: unit of acc", **kw)
    flags.DEFINE_enum(
        "gyro_unit", "rad/s", ["rad/s", "deg/s", "mdeg/s"], "stream: unit of gyro", **kw
    )
    flags.DEFINE_string(
        "channel_order",
        conditioning.CANONICAL_ORDER,
        "stream: names of X's columns, a permutation of ax,ay,az,gx,gy,gz",
        **kw,
    )
    flags.DEFINE_float("hop_s", 2.5, "stream: step between window starts", **kw)
    flags.DEFINE_float("max_gap_s", 0.1, "stream with t: skip windows over longer gaps", **kw)
    flags.mark_flags_as_required(["checkpoint", "input", "output"], **kw)


def read_input(path: str, stream: bool) -> tuple[np.ndarray, np.ndarray | None]:
    """Reads ``X`` (and ``t`` for streams) and checks shapes for the mode.

    Raises:
      InputError: missing key or a shape that does not fit the mode (the message names the
        key, its shape and the expected shape).
    """
    try:
        data = cli_errors.read_npz(path)
    except cli_errors.FileError as e:
        raise InputError(str(e)) from None
    if INPUT_KEY not in data:
        raise InputError(f"{path} has no key {INPUT_KEY!r} (keys: {', '.join(data) or 'none'})")
    x = data[INPUT_KEY]
    t = data.get(TIME_KEY) if stream else None
    if stream:
        if x.ndim != 2 or x.shape[1] != contract.NUM_CHANNELS:
            raise InputError(
                f"{path}: key {INPUT_KEY!r} has shape {x.shape}; stream mode expects one "
                "recording of shape (T, 6)"
            )
        if t is not None and t.shape != (x.shape[0],):
            raise InputError(
                f"{path}: key {TIME_KEY!r} has shape {t.shape}; expected ({x.shape[0]},) "
                f"timestamps in seconds, one per row of {INPUT_KEY!r}"
            )
        _check_values(path, TIME_KEY, t)
        _check_values(path, INPUT_KEY, x)
    elif x.ndim != 3:
        hint = ""
        if x.ndim == 2 and x.shape[-1] == contract.NUM_CHANNELS:
            hint = (
                "; for one long (T, 6) recording pass --rate_hz, or --stream when the file "
                f"has timestamps {TIME_KEY!r} (stream mode)"
            )
        raise InputError(
            f"{path}: key {INPUT_KEY!r} has shape {x.shape}; windows mode expects "
            f"(N, 250, 6) windows at 50 Hz in m/s² and rad/s{hint}"
        )
    return x, t


def load_input(path: str, *, stream: bool, layout: str, rate_hz: float | None):
    """:func:`read_input` plus the checks of dtype and NaN/inf (and, for windows, the
    layout) that ``embed`` would make, so a bad file fails before a checkpoint is loaded."""
    x, t = read_input(path, stream)
    if stream and rate_hz is None and t is None:
        raise InputError(f"{path}: stream mode needs --rate_hz or a key {TIME_KEY!r} in it")
    if not stream:
        _check_values(path, INPUT_KEY, x, lambda a: conditioning.validate_windows(a, layout))
    return x, t


def _check_values(path: str, key: str, a, check=None) -> None:
    """Dtype and NaN/inf of ``a`` (and ``check(a)``), before any checkpoint is loaded."""
    if a is None:
        return
    try:
        a = conditioning.as_float_array(a, f"key {key!r}")
        conditioning.check_finite(a, f"key {key!r}", "drop or fill those samples")
    except (TypeError, ValueError) as e:
        raise InputError(f"{path}: {e}") from None
    try:
        if check is not None:
            check(a)
    except (TypeError, ValueError) as e:
        raise InputError(f"{path}: key {key!r}: {e}") from None


def main(argv: Sequence[str], fv: flags.FlagValues = flags.FLAGS) -> int:
    """Embeds ``--input`` into ``--output`` (see the module docstring); the exit status."""
    if len(argv) > 1:
        raise app.UsageError(f"unexpected arguments: {list(argv[1:])}")
    return run(
        fv.checkpoint,
        fv.input,
        fv.output,
        batch_size=fv.batch_size,
        layout=fv.layout,
        check_units=fv.check_units,
        stream=fv.stream,
        rate_hz=fv.rate_hz,
        acc_unit=fv.acc_unit,
        gyro_unit=fv.gyro_unit,
        channel_order=fv.channel_order,
        hop_s=fv.hop_s,
        max_gap_s=fv.max_gap_s,
    )


def run(
    checkpoint: str,
    input_path: str,
    output: str,
    *,
    batch_size: int = 128,
    layout: str = "channels_last",
    check_units: str = "warn",
    stream: bool = False,
    rate_hz: float | None = None,
    acc_unit: str = "m/s2",
    gyro_unit: str = "rad/s",
    channel_order: str = conditioning.CANONICAL_ORDER,
    hop_s: float = 2.5,
    max_gap_s: float = 0.1,
) -> int:
    """Embeds the windows or the recording in ``input_path``; returns the exit status (2 for
    input errors, each naming the key and the expected shape)."""
    stream = stream or rate_hz is not None
    try:
        x, t = load_input(input_path, stream=stream, layout=layout, rate_hz=rate_hz)
    except InputError as e:
        return cli_errors.report(e)

    from primus_jax.inference import load_encoder

    t0 = time.perf_counter()
    enc = load_encoder(checkpoint, batch_size=batch_size)
    try:
        if stream:
            out = enc.embed_stream(
                x,
                rate_hz,
                acc_unit=acc_unit,
                gyro_unit=gyro_unit,
                channel_order=channel_order,
                hop_s=hop_s,
                timestamps=t,
                max_gap_s=max_gap_s,
                check_units=check_units,
            )
        else:
            out = enc.embed(x, layout=layout, check_units=check_units)
    except (TypeError, ValueError) as e:  # units (check_units=error), too short a stream, ...
        return cli_errors.report(InputError(f"{input_path}: key {INPUT_KEY!r}: {e}"))
    out_dir = os.path.dirname(os.path.abspath(output))
    os.makedirs(out_dir, exist_ok=True)
    with open(output, "wb") as f:  # a file object: np.savez would append ".npz"
        np.savez(f, **out)
    n = len(out["mmcl"])
    dims = ", ".join(f"{k} {v.shape[1]}" for k, v in out.items() if v.ndim == 2)
    print(
        f"embedded {n} windows ({dims}) with step {enc.step} of {checkpoint} in "
        f"{time.perf_counter() - t0:.1f} s -> {output}"
    )
    return 0


if __name__ == "__main__":
    define_flags()
    cli_errors.run(main)
