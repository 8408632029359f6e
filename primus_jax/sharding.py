"""Device mesh, shardings, global batches and the jitted train step.

One ``jax.jit`` over a 1-D ``data`` mesh: the batch is split over ``data``; the state
(parameters, optimizer state, queue, RNG) is replicated. Losses are written on global arrays,
so XLA inserts the collectives and contrastive negatives span the global batch on 1 CPU,
8 fake CPU devices, a GPU, a TPU slice or several hosts alike.
"""

from __future__ import annotations

import jax
import numpy as np
from jax.sharding import NamedSharding
from jax.sharding import PartitionSpec as P

DATA_AXIS = "data"


def make_mesh(config) -> jax.sharding.Mesh:
    """1-D mesh over ``config.mesh.data`` devices (-1: all of them, across all hosts).

    Devices are ordered by (process, id) so that each process's devices hold a contiguous
    block of the batch: ``global_batch`` relies on it to put process ``p``'s rows at
    ``[p*B/P, (p+1)*B/P)`` (topology-aware orderings such as ``jax.make_mesh``'s on TPU may
    interleave hosts, which would permute the global batch across processes).
    """
    n = config.mesh.data
    devices = sorted(jax.devices(), key=lambda d: (d.process_index, d.id))
    n = len(devices) if n == -1 else n
    # Auto axes: shardings are propagated by the compiler from the explicit in/out
    # shardings of the jitted step (jax.make_mesh now defaults to Explicit axes).
    return jax.sharding.Mesh(
        np.array(devices[:n]), (DATA_AXIS,), axis_types=(jax.sharding.AxisType.Auto,)
    )


def batch_sharding(mesh) -> NamedSharding:
    return NamedSharding(mesh, P(DATA_AXIS))


def replicated(mesh) -> NamedSharding:
    return NamedSharding(mesh, P())


def state_shardings(abstract_state, mesh):
    """Every state leaf replicated (the model is 1.4M parameters; the queue ~50 MB)."""
    return jax.tree.map(lambda _: replicated(mesh), abstract_state)


def global_batch(local_batch: dict, mesh) -> dict:
    """Per-process numpy batch (this host's rows) -> global ``jax.Array`` sharded on ``data``.

    Each process passes its contiguous slice of the global batch (rows
    ``[pid * B/P, (pid + 1) * B/P)``); on one host that is the whole batch.
    """
    sharding = batch_sharding(mesh)
    return {
        k: jax.make_array_from_process_local_data(sharding, np.asarray(v))
        for k, v in local_batch.items()
    }


def data_parallel(mesh):
    """Context for tracing code that runs on ``mesh``: lets the encoder run its GRU per device
    (``models.gru.data_parallel_gru``). Use it inside the function given to ``jax.jit``."""
    return jax.sharding.use_abstract_mesh(mesh.abstract_mesh)


def under_mesh(fn, mesh):
    """``fn`` traced with :func:`data_parallel` for ``mesh``."""

    def wrapped(*args, **kwargs):
        with data_parallel(mesh):
            return fn(*args, **kwargs)

    return wrapped


def jit_train_step(train_step, state_sharding, mesh, *, resident=None):
    """Compiles ``train_step`` with explicit shardings and a donated state.

    Host input: the step takes ``(state, batch)``, the batch sharded over ``data``.
    Device-resident input (``resident``, a :class:`~primus_jax.data.resident.ResidentData`):
    the step takes ``(state, arrays)`` and gathers the batch of ``state.step`` inside.
    """
    if resident is None:
        fn, input_sharding = train_step, batch_sharding(mesh)
    else:

        def fn(state, arrays):
            return train_step(state, resident.batch(arrays, state.step))

        input_sharding = resident.array_sharding
    return jax.jit(
        under_mesh(fn, mesh),
        in_shardings=(state_sharding, input_sharding),
        out_shardings=(state_sharding, replicated(mesh)),
        donate_argnums=(0,),
    )
