"""Several processes (hosts): ``jax.distributed`` start-up and a barrier that outlasts long
waits. Used by the train loop and by the process-0 dataset build."""

from __future__ import annotations

import itertools

import jax
from absl import logging

PROCESS_BARRIER_TIMEOUT_S = 3600  # compiling for a pod or building a dataset can take long
_barrier_ids = itertools.count()


def wait_for_all_processes(name: str, timeout_s: int = PROCESS_BARRIER_TIMEOUT_S) -> None:
    """Blocks until every process has reached this call; a no-op with one process.

    A barrier of the coordination service, not a device collective: it compiles nothing and
    has its own timeout, whereas a collective under gloo (multi-process CPU) gives up on peers
    more than 30 s late. Every process must pass the same barriers in the same order.
    """
    if jax.process_count() == 1:
        return
    from orbax.checkpoint import multihost

    multihost.get_barrier_sync_fn()(
        key=f"primus_jax_{name}_{next(_barrier_ids)}", timeout_ms=timeout_s * 1000
    )


def maybe_initialize(config) -> None:
    """Calls ``jax.distributed.initialize`` once when ``config.distributed.initialize``."""
    d = config.distributed
    if not d.initialize or jax.distributed.is_initialized():
        return
    kwargs = {}
    if d.coordinator_address:
        kwargs["coordinator_address"] = d.coordinator_address
    if d.num_processes > 0:
        kwargs["num_processes"] = d.num_processes
    if d.process_id >= 0:
        kwargs["process_id"] = d.process_id
    jax.distributed.initialize(**kwargs)
    logging.info(
        "distributed: process %d of %d, %d local / %d global devices",
        jax.process_index(),
        jax.process_count(),
        jax.local_device_count(),
        jax.device_count(),
    )
