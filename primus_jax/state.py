"""The training state pytree and its creation."""

from __future__ import annotations

import flax.struct
import jax
import jax.numpy as jnp
import optax

from primus_jax import losses, rng_streams
from primus_jax import queue as queue_lib
from primus_jax.models import build


@flax.struct.dataclass
class TrainState:
    """Everything that must survive a restart. It is also the checkpoint item.

    ``params = {"encoder": <linen params>, "log_tau_mm": (), "log_tau_ss": ()}`` (``tau_mm``,
    ``tau_ss`` with ``loss.temperature="raw"``): the two learnable temperatures (multimodal
    family and IMU family) live beside the encoder so that the optimizer treats them like the
    reference does (Adam on every parameter). ``rng`` holds raw uint32 key data
    (checkpoint-friendly); per step the key is ``fold_in(rng, step)``.
    """

    step: jax.Array
    params: dict
    opt_state: optax.OptState
    queue: queue_lib.QueueState
    rng: jax.Array


root_keys = rng_streams.root_keys  # (init key, step key) of the config seed


def create_train_state(config, model, tx, objective) -> TrainState:
    """A fresh state for ``objective`` (call under ``jax.jit`` with out_shardings to place
    it). A config without NN terms keeps a token queue, so every state has one structure."""
    init_key, step_key = root_keys(config.seed)
    params = {
        "encoder": build.init_params(model, init_key),
        **losses.init_temperatures(config.loss.tau_init, config.loss.temperature),
        **objective.init_params(config, init_key),
    }
    k = config.queue.size if objective.uses_queue(config) else config.data.batch_size
    return TrainState(
        step=jnp.zeros((), jnp.int32),
        params=params,
        opt_state=tx.init(params),
        queue=queue_lib.init_queue(k, config.model.mm_dim, config.model.ssl_dim),
        rng=jax.random.key_data(step_key),
    )
