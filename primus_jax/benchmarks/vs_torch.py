"""The JAX train step against the PyTorch reference step, interleaved, measured one way.

    python -m primus_jax.benchmarks.vs_torch --torch_reference=PATH/torch_reference_step.py \\
        [--batches=64,256,1024] [--pairs=3] [--dtype=float32|bfloat16] [--mode=forward]

For each batch it runs the two benchmarks as child processes in turn (JAX, PyTorch, JAX, ...)
under the same environment, and reads each child's samples/s from its JSON line and its peak
resident set from the kernel (``measure.run_child``: ``os.wait4``), so both are measured by
the same code. Prints one JSON line per batch with the medians and the median pair ratios.
"""

from __future__ import annotations

import json
import statistics
import sys

from absl import flags

from primus_jax import cli_errors
from primus_jax.benchmarks import measure


def compare(cmd_a: list[str], cmd_b: list[str], pairs: int, timeout: float = 1800) -> dict:
    """Runs ``cmd_a`` and ``cmd_b`` in turn ``pairs`` times; medians and A/B pair ratios of
    ``samples_per_s`` and of the peak RSS."""
    runs = {"a": [], "b": []}
    for _ in range(pairs):
        for k, cmd in (("a", cmd_a), ("b", cmd_b)):
            rec = measure.run_record(cmd, timeout=timeout)
            runs[k].append({key: rec[key] for key in ("samples_per_s", "peak_rss_mb")})
    out = {}
    for key in ("samples_per_s", "peak_rss_mb"):
        a = [x[key] for x in runs["a"]]
        b = [x[key] for x in runs["b"]]
        out[key] = {
            "a": statistics.median(a),
            "b": statistics.median(b),
            "a_range": [min(a), max(a)],
            "b_range": [min(b), max(b)],
            "ratio_median": round(statistics.median(x / y for x, y in zip(a, b)), 3),
        }
    out["pairs"] = pairs
    return out


def main(argv):
    del argv
    if not _TORCH.value:
        print("--torch_reference: required (path of the PyTorch step script)", file=sys.stderr)
        return 2
    for batch in [int(b) for b in _BATCHES.value]:
        jax_cmd = [
            sys.executable,
            "-m",
            "primus_jax.benchmarks.train_step",
            f"--config={_CONFIG.value}",
            f"--batch={batch}",
            f"--steps={_STEPS.value}",
            f"--dtype={_DTYPE.value}",
            f"--mode={_MODE.value}",
        ]
        torch_cmd = [
            sys.executable,
            _TORCH.value,
            "--batch",
            str(batch),
            "--nn-lookup",
            "matmul",
            "--steps",
            str(_STEPS.value),
            "--mode",
            _MODE.value,
        ]
        if _DTYPE.value == "bfloat16":
            torch_cmd.append("--bf16")
        res = compare(jax_cmd, torch_cmd, _PAIRS.value)
        print(
            json.dumps(
                {
                    "batch": batch,
                    "mode": _MODE.value,
                    "dtype": _DTYPE.value,
                    "jax": "a",
                    "torch": "b",
                    **res,
                    **{k: v for k, v in measure.machine_fields().items() if k != "peak_rss_mb"},
                }
            ),
            flush=True,
        )
    return 0


def _define_flags():
    """Flags only when run as a program, so tests and tools can import this module."""
    global _TORCH, _BATCHES, _PAIRS, _DTYPE, _CONFIG, _STEPS, _MODE
    _TORCH = flags.DEFINE_string("torch_reference", None, "Path of torch_reference_step.py.")
    _BATCHES = flags.DEFINE_list("batches", ["256"], "Global batches.")
    _PAIRS = flags.DEFINE_integer("pairs", 3, "Interleaved (JAX, PyTorch) process pairs.")
    _DTYPE = flags.DEFINE_enum(
        "dtype",
        "float32",
        ["float32", "bfloat16"],
        "JAX compute dtype; bfloat16 runs PyTorch under bf16 autocast.",
    )
    _CONFIG = flags.DEFINE_string("config", "configs/primus.py", "JAX config file.")
    _STEPS = flags.DEFINE_integer("steps", 20, "Timed steps per process.")
    _MODE = flags.DEFINE_enum(
        "mode", "train", ["train", "forward"], "Full step, or encoder inference (both sides)."
    )


if __name__ == "__main__":
    _define_flags()
    cli_errors.run(main)
