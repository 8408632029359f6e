"""The training state pytree, its creation, the model and the optimizer."""

from __future__ import annotations

import flax.struct
import jax
import jax.numpy as jnp
import optax

from primus_jax import config as config_lib
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


def make_schedule(config):
    o = config.optim
    if o.schedule == "constant":
        return optax.constant_schedule(o.lr)
    return optax.warmup_cosine_decay_schedule(
        init_value=0.0,
        peak_value=o.lr,
        warmup_steps=o.warmup_steps,
        decay_steps=config.train.num_steps,
        end_value=o.lr * o.final_lr_fraction,
    )


def _decay_mask(params):
    """Decay weight matrices and conv kernels only; never biases (even stacked per-task ones),
    norms or temperatures."""

    def decays(path, p):
        name = str(getattr(path[-1], "key", path[-1]))
        return p.ndim >= 2 and "bias" not in name and "scale" not in name

    return jax.tree_util.tree_map_with_path(decays, params)


def make_optimizer(config):
    """Adam (reference: lr 2e-4, no decay, no clipping); AdamW when weight_decay > 0."""
    o = config.optim
    parts = []
    if o.grad_clip_norm > 0:
        parts.append(optax.clip_by_global_norm(o.grad_clip_norm))
    parts.append(optax.scale_by_adam(b1=o.b1, b2=o.b2, eps=o.eps))
    if o.weight_decay > 0:
        parts.append(optax.add_decayed_weights(o.weight_decay, mask=_decay_mask))
    parts.append(optax.scale_by_learning_rate(make_schedule(config)))
    return optax.chain(*parts)


def queue_size(config) -> int:
    # A config without NN losses keeps a token queue so every state has the same structure.
    return config.queue.size if config_lib.uses_queue(config) else config.data.batch_size


root_keys = rng_streams.root_keys  # (init key, step key) of the config seed


def create_train_state(config, model, tx) -> TrainState:
    """Builds a fresh state (call under ``jax.jit`` with out_shardings to place it)."""
    init_key, step_key = root_keys(config.seed)
    params = {
        "encoder": build.init_params(model, init_key),
        **losses.init_temperatures(config.loss.tau_init, config.loss.get("temperature", "log")),
    }
    if config.get("objective", "primus") == "multitask_ssl":
        # The baseline's task heads sit beside (not inside) the encoder, so "encoder" keeps
        # the layout evaluation loads. Imported here: the baseline is optional for PRIMUS.
        from primus_jax.baselines import multitask_ssl

        params["multitask"] = multitask_ssl.init_heads(config, jax.random.fold_in(init_key, 1))
    return TrainState(
        step=jnp.zeros((), jnp.int32),
        params=params,
        opt_state=tx.init(params),
        queue=queue_lib.init_queue(queue_size(config), config.model.mm_dim, config.model.ssl_dim),
        rng=jax.random.key_data(step_key),
    )
