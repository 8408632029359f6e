"""The optimizer and learning-rate schedule of a config's ``optim`` block."""

from __future__ import annotations

import jax
import optax


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
