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

import argparse
import os
import sys
import time
from collections.abc import Sequence

import numpy as np

from primus_jax.data import signal

INPUT_KEY = "X"
TIME_KEY = "t"


class InputError(ValueError):
    """The input file does not hold what the chosen mode expects."""


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="python -m primus_jax.tools.embed_imu",
        description="Embed IMU windows or a long recording (.npz, key X) with a PRIMUS "
        "checkpoint; writes emb, ssl, mmcl (+ start_s for recordings) to an .npz.",
        formatter_class=argparse.ArgumentDefaultsHelpFormatter,
    )
    p.add_argument("--checkpoint", required=True, help="workdir, checkpoints/ or a step dir")
    p.add_argument("--input", required=True, help=".npz with X (and optionally t)")
    p.add_argument("--output", required=True, help="output .npz")
    p.add_argument("--batch_size", type=int, default=128, help="windows per compiled call")
    p.add_argument(
        "--layout",
        choices=("channels_last", "channels_first"),
        default="channels_last",
        help="windows mode: X is (N, 250, 6) or the PyTorch (N, 6, 250)",
    )
    p.add_argument(
        "--check_units",
        choices=("warn", "error", "off"),
        default="warn",
        help="what to do when magnitudes do not look like m/s² (with gravity) and rad/s",
    )
    s = p.add_argument_group("stream mode (X is one (T, 6) recording)")
    s.add_argument("--stream", action="store_true", help="stream mode (implied by --rate_hz)")
    s.add_argument("--rate_hz", type=float, help="sampling rate of X (or pass t in the file)")
    s.add_argument("--acc_unit", default="m/s2", choices=("m/s2", "g", "mg"))
    s.add_argument("--gyro_unit", default="rad/s", choices=("rad/s", "deg/s", "mdeg/s"))
    s.add_argument(
        "--channel_order",
        default=",".join(signal.CHANNELS),
        help="names of X's columns, a permutation of ax,ay,az,gx,gy,gz",
    )
    s.add_argument("--hop_s", type=float, default=2.5, help="step between window starts")
    s.add_argument(
        "--max_gap_s", type=float, default=0.1, help="with t: skip windows over longer gaps"
    )
    return p


def read_input(path: str, stream: bool) -> tuple[np.ndarray, np.ndarray | None]:
    """Reads ``X`` (and ``t`` for streams) and checks shapes for the mode.

    Raises:
      InputError: missing key or a shape that does not fit the mode (the message names the
        key, its shape and the expected shape).
    """
    if not os.path.isfile(path):
        raise InputError(f"input {path!r} does not exist")
    try:
        data = np.load(path, allow_pickle=False)
    except ValueError as e:
        raise InputError(f"{path}: cannot read as .npz without pickles ({e})") from None
    if not hasattr(data, "files"):
        raise InputError(f"{path}: expected an .npz archive with key {INPUT_KEY!r}, got a .npy")
    with data:
        if INPUT_KEY not in data.files:
            raise InputError(
                f"{path} has no key {INPUT_KEY!r} (keys: {', '.join(data.files) or 'none'})"
            )
        x = data[INPUT_KEY]
        t = data[TIME_KEY] if stream and TIME_KEY in data.files else None
    if stream:
        if x.ndim != 2 or x.shape[1] != 6:
            raise InputError(
                f"{path}: key {INPUT_KEY!r} has shape {x.shape}; stream mode expects one "
                "recording of shape (T, 6)"
            )
        if t is not None and t.shape != (x.shape[0],):
            raise InputError(
                f"{path}: key {TIME_KEY!r} has shape {t.shape}; expected ({x.shape[0]},) "
                f"timestamps in seconds, one per row of {INPUT_KEY!r}"
            )
    elif x.ndim != 3:
        hint = ""
        if x.ndim == 2 and x.shape[-1] == 6:
            hint = (
                "; for one long (T, 6) recording pass --rate_hz, or --stream when the file "
                f"has timestamps {TIME_KEY!r} (stream mode)"
            )
        raise InputError(
            f"{path}: key {INPUT_KEY!r} has shape {x.shape}; windows mode expects "
            f"(N, 250, 6) windows at 50 Hz in m/s² and rad/s{hint}"
        )
    return x, t


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    stream = args.stream or args.rate_hz is not None
    try:
        x, t = read_input(args.input, stream)
        if stream and args.rate_hz is None and t is None:
            raise InputError(f"stream mode needs --rate_hz or a key {TIME_KEY!r} in the input")
    except InputError as e:
        print(f"error: {e}", file=sys.stderr)
        return 2

    from primus_jax.inference import load_encoder

    t0 = time.perf_counter()
    enc = load_encoder(args.checkpoint, batch_size=args.batch_size)
    try:
        if stream:
            out = enc.embed_stream(
                x,
                args.rate_hz,
                acc_unit=args.acc_unit,
                gyro_unit=args.gyro_unit,
                channel_order=args.channel_order,
                hop_s=args.hop_s,
                timestamps=t,
                max_gap_s=args.max_gap_s,
                check_units=args.check_units,
            )
        else:
            out = enc.embed(x, layout=args.layout, check_units=args.check_units)
    except ValueError as e:
        print(f"error: {args.input}: key {INPUT_KEY!r}: {e}", file=sys.stderr)
        return 2
    out_dir = os.path.dirname(os.path.abspath(args.output))
    os.makedirs(out_dir, exist_ok=True)
    with open(args.output, "wb") as f:  # a file object: np.savez would append ".npz"
        np.savez(f, **out)
    n = len(out["mmcl"])
    dims = ", ".join(f"{k} {v.shape[1]}" for k, v in out.items() if v.ndim == 2)
    print(
        f"embedded {n} windows ({dims}) with step {enc.step} of {args.checkpoint} in "
        f"{time.perf_counter() - t0:.1f} s -> {args.output}"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
