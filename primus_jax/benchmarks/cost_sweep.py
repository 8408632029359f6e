"""How the step's cost grows with the batch and the NN queue, measured, with a profile split.

    python -m primus_jax.benchmarks.cost_sweep [--batches=64,256,1024,4096] \\
        [--queues=1024,8192,16384,65536] [--queue_batch=256] [--steps=3]

Each point is ``primus_jax.benchmarks.train_step --profile_steps`` in its own process (so
peak RSS is that configuration's): step time, samples/s, peak RSS and the share of thunk time
in the GRU, the rest of the encoder, losses, NN lookup, optimizer and the rest
(:mod:`.profile`). Prints a markdown table per sweep and one JSON line per point.
"""

from __future__ import annotations

import json
import sys

from absl import flags

from primus_jax import cli_errors
from primus_jax.benchmarks import measure, profile

PARTS = (*(part for part, _ in profile.PARTS), "other")


def point(config: str, batch: int, queue: int | None, steps: int, dtype: str) -> dict:
    cmd = [
        sys.executable,
        "-m",
        "primus_jax.benchmarks.train_step",
        f"--config={config}",
        f"--batch={batch}",
        f"--steps={steps}",
        "--warmup=1",
        f"--profile_steps={max(1, steps // 2)}",
        f"--dtype={dtype}",
    ]
    if queue:
        cmd.append(f"--queue={queue}")
    return measure.run_record(cmd, timeout=3600)


def row(rec: dict, key: str) -> str:
    shares = rec["profile"]["shares"]
    cells = [f"{100 * shares.get(p, 0.0):.1f}%" for p in PARTS]
    return (
        f"| {rec[key]} | {rec['step_ms_median']:.0f} | {rec['samples_per_s']:.0f} | "
        f"{rec['peak_rss_mb']:.0f} | " + " | ".join(cells) + " |"
    )


def table(title: str, key: str, recs: list[dict]) -> str:
    head = f"| {title} | step ms | samples/s | peak RSS MB | " + " | ".join(PARTS) + " |"
    sep = "|" + "---|" * (4 + len(PARTS))
    return "\n".join([head, sep, *(row(r, key) for r in recs)])


def main(argv):
    del argv
    by_batch, by_queue = [], []
    for b in _BATCHES.value:
        by_batch.append(point(_CONFIG.value, int(b), None, _STEPS.value, _DTYPE.value))
        print(json.dumps(by_batch[-1]), flush=True)
    for q in _QUEUES.value:
        by_queue.append(
            point(_CONFIG.value, _QUEUE_BATCH.value, int(q), _STEPS.value, _DTYPE.value)
        )
        print(json.dumps(by_queue[-1]), flush=True)
    m = measure.machine_fields()
    cpu = f"{m['cpu_model']}, {m['cpu_id']}" if m["cpu_id"] else m["cpu_model"]
    print(f"\n{cpu} ({', '.join(m['cpu_flags'])}), {_DTYPE.value}, env {m['env']}")
    if by_batch:
        print("\n" + table("batch", "batch", by_batch))
    if by_queue:
        print(f"\nbatch {_QUEUE_BATCH.value}:\n" + table("queue", "queue_size", by_queue))
    return 0


def _define_flags():
    global _CONFIG, _BATCHES, _QUEUES, _QUEUE_BATCH, _STEPS, _DTYPE
    _CONFIG = flags.DEFINE_string("config", "configs/primus.py", "Config file.")
    _BATCHES = flags.DEFINE_list("batches", ["64", "256", "1024", "4096"], "Batch sweep.")
    _QUEUES = flags.DEFINE_list("queues", ["1024", "8192", "16384", "65536"], "Queue sweep.")
    _QUEUE_BATCH = flags.DEFINE_integer("queue_batch", 256, "Batch of the queue sweep.")
    _STEPS = flags.DEFINE_integer("steps", 3, "Timed steps per point (half as many profiled).")
    _DTYPE = flags.DEFINE_enum("dtype", "float32", ["float32", "bfloat16"], "Compute dtype.")


if __name__ == "__main__":
    _define_flags()
    cli_errors.run(main)
