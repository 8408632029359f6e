"""Non-finite training steps: detected in every step, handled by ``train.on_nonfinite``.

:func:`guard` wraps an objective's pure step inside the jitted program. A step is bad when
its loss, its gradient norm (hence any gradient) or any updated parameter is not finite,
judged on the global batch, so every device and process agrees.

* ``"stop"``: the step is applied as usual; the host sees the flag one step later (or at a
  checkpoint, before anything is saved) and raises :class:`NonFiniteError` naming the step
  and its segments. The last checkpoint is the state to resume from.
* ``"skip_batch"``: parameters, optimizer state (Adam moments and count), NN queue and RNG
  are exactly those before the bad step; only ``step`` advances, because it is the data and
  augmentation position: the next step trains on the next batch with its own key, exactly as
  a run would that never had the bad batch. The skipped segments are logged.

Segment ids are logged as the 16 hex digits of ``identity.hash64(<segment id>)``.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
from absl import logging

from primus_jax import cli_errors

FLAG = "nonfinite"  # per-step metric: 1 when the step was bad
IDS = "segment_id"  # per-step metric: the (B, 2) identities of the step's rows


class NonFiniteError(cli_errors.RunFault, FloatingPointError):
    """A training step produced a non-finite loss, gradient or parameter."""


def _all_finite(tree) -> jax.Array:
    leaves = [
        jnp.all(jnp.isfinite(x)) for x in jax.tree.leaves(tree) if jnp.issubdtype(x, jnp.inexact)
    ]
    return jnp.all(jnp.stack(leaves)) if leaves else jnp.array(True)


def guard(train_step, policy: str):
    """``train_step`` with the step's finiteness in its metrics (and, for ``skip_batch``,
    the old state kept when the step is bad). Jittable; ``policy`` from the config."""

    def step(state, batch):
        new_state, metrics = train_step(state, batch)
        ok = (
            jnp.isfinite(metrics["loss"])
            & jnp.isfinite(metrics["grad_norm"])
            & _all_finite(new_state.params)
        )
        if policy == "skip_batch":
            kept = jax.tree.map(lambda new, old: jnp.where(ok, new, old), new_state, state)
            new_state = kept.replace(step=new_state.step)
        metrics = {**metrics, FLAG: jnp.where(ok, 0.0, 1.0)}
        if IDS in batch:
            metrics[IDS] = batch[IDS]
        return new_state, metrics

    return step


def format_ids(ids) -> list[str]:
    """(B, 2) uint32 identities -> 16-hex-digit strings (``identity.hash64`` of the id)."""
    ids = np.asarray(ids, np.uint64)
    return [f"{(int(h) << 32) | int(lo):016x}" for h, lo in ids.reshape(-1, 2)]


class Monitor:
    """Host side: looks at each step's flag one step late (so the device stays busy), and
    at a checkpoint or a log line at all pending ones; keeps the metrics of a log window."""

    def __init__(self, policy: str):
        self.policy = policy
        self.skipped: list[int] = []  # steps skipped in this run
        self._window: list[tuple[int, dict]] = []
        self._checked = 0  # entries of the window already looked at

    def observe(self, step: int, metrics: dict) -> None:
        """Records ``metrics`` of ``step``; checks every step before it."""
        self._window.append((step, metrics))
        self._check(len(self._window) - 1)

    def check_all(self) -> None:
        """Checks every recorded step (blocks until the last one has run)."""
        self._check(len(self._window))

    def _check(self, upto: int) -> None:
        for step, m in self._window[self._checked : upto]:
            if float(jax.device_get(m[FLAG])) == 0.0:
                continue
            ids = format_ids(jax.device_get(m[IDS])) if IDS in m else []
            loss, gnorm = (float(jax.device_get(m[k])) for k in ("loss", "grad_norm"))
            what = f"step {step}: non-finite loss or gradients (loss {loss}, grad_norm {gnorm})"
            if self.policy != "skip_batch":
                raise NonFiniteError(
                    f"{what}; stopped before saving anything from it (its {len(ids)} "
                    f"segments: {', '.join(ids)}); resume from the last checkpoint, or set "
                    "config.train.on_nonfinite=skip_batch to skip such batches"
                )
            self.skipped.append(step)
            logging.warning(
                "%s; batch skipped (parameters, optimizer state and queue as before the step); "
                "%d skipped segments: %s",
                what,
                len(ids),
                ", ".join(ids),
            )
        self._checked = max(self._checked, upto)

    def window_scalars(self) -> dict:
        """Means over the window's good steps (all keys, NaN if none) plus ``skipped``, the
        window's skipped steps; starts the next window."""
        self.check_all()
        fetched = jax.device_get([m for _, m in self._window])
        good = [m for m in fetched if float(m[FLAG]) == 0.0] or fetched
        keys = [k for k in fetched[0] if k not in (FLAG, IDS)]
        out = {k: float(np.mean([m[k] for m in good])) for k in keys}
        out["skipped"] = float(len(fetched) - sum(float(m[FLAG]) == 0.0 for m in fetched))
        self._window, self._checked = [], 0
        return out
