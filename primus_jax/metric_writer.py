"""Metrics to TensorBoard event files (tensorboardX, no TensorFlow), JSON lines and console.

Only process 0 writes. Scalar names are hierarchical and stable (``train/loss_nn``), because
dashboards and papers depend on them.
"""

from __future__ import annotations

import datetime
import json
import math
import os

from absl import logging

from primus_jax import paths


class MetricWriter:
    def __init__(self, workdir: str, *, enabled: bool = True, resume_step: int | None = None):
        """Opens the writers; ``resume_step`` (a restored checkpoint's step) drops what a
        crashed run logged after it, so every step appears once."""
        self.enabled = enabled
        self._tb = None
        self._pending: list[str] = []  # JSONL lines not yet flushed
        if not enabled:
            return
        workdir = paths.makedirs(workdir)
        from tensorboardX import SummaryWriter  # lazy: protobuf import cost

        self.jsonl_path = workdir / "metrics.jsonl"
        self.tensorboard_dir = workdir / "tensorboard"
        if resume_step is not None and self.jsonl_path.exists():
            lines = self.jsonl_path.read_text().splitlines(keepends=True)
            keep = [line for line in lines if json.loads(line)["step"] <= resume_step]
            self.jsonl_path.write_text("".join(keep))
        if paths.is_remote(workdir):
            paths.register_tensorboard_gcs()
        # purge_step makes TensorBoard discard events logged after the checkpoint.
        self._tb = SummaryWriter(
            logdir=os.fspath(self.tensorboard_dir),
            purge_step=None if resume_step is None else resume_step + 1,
        )

    def write_scalars(self, step: int, scalars: dict) -> None:
        if not self.enabled:
            return
        clean = {k: float(v) for k, v in scalars.items()}
        for k, v in clean.items():
            self._tb.add_scalar(k, v, global_step=step)
        record = {
            "step": int(step),
            **{k: (v if math.isfinite(v) else None) for k, v in clean.items()},
        }
        self._pending.append(json.dumps(record) + "\n")

    def write_text(self, tag: str, text: str, step: int = 0) -> None:
        if self.enabled:
            self._tb.add_text(tag, text, global_step=step)

    def flush(self) -> None:
        if self.enabled:
            self._tb.flush()
            if self._pending:
                paths.append_text(self.jsonl_path, "".join(self._pending))
                self._pending = []

    def close(self) -> None:
        if self.enabled:
            self.flush()
            self._tb.close()
            self.enabled = False


def format_duration(seconds: float) -> str:
    return str(datetime.timedelta(seconds=max(0, int(seconds))))


def progress_line(step, num_steps, scalars, steps_per_s, samples_per_s, eta_s) -> str:
    keys = ("loss", "loss_ss", "loss_mm", "loss_nn", "tau_mm", "tau_ss")
    parts = [
        f"{k.removeprefix('loss_') if k != 'loss' else k}={scalars[k]:.4f}"
        for k in keys
        if k in scalars
    ]
    # What the NN supervision does: self matches, same-recording and duplicate-text positives.
    nn = {"nn_self_frac": "self", "nn_same_recording_frac": "same_rec", "nn_text_dup_frac": "dup"}
    nn_parts = [f"{short}={scalars[k]:.2f}" for k, short in nn.items() if k in scalars]
    return (
        f"step {step}/{num_steps} ({100.0 * step / num_steps:.1f}%) | "
        + " ".join(parts)
        + (" | nn " + " ".join(nn_parts) if nn_parts else "")
        + f" | {steps_per_s:.2f} steps/s, {samples_per_s:.0f} samples/s"
        + f" | ETA {format_duration(eta_s)}"
    )


def log_progress(line: str) -> None:
    logging.info("%s", line)
