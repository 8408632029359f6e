"""Checkpoints for the inference and export tests: random encoder parameters and a step-0
workdir laid out as train.py writes it; real damage to a saved checkpoint."""

import json
import os

import jax
import jax.numpy as jnp
import numpy as np

from primus_jax import checkpointing, objectives, optim
from primus_jax import state as state_lib
from primus_jax.config import base_config
from primus_jax.models import build
from primus_jax.models.encoder import PrimusEncoder


def random_encoder_params(mm_dim=384, seed=0):
    """Encoder parameters of the right shapes, drawn in numpy (no initialiser to compile)."""
    shapes = jax.eval_shape(
        lambda: PrimusEncoder(mm_dim=mm_dim).init(jax.random.key(0), jnp.zeros((1, 250, 6)))
    )
    rng = np.random.default_rng(seed)
    params = jax.tree.map(
        lambda a: rng.uniform(-0.15, 0.15, a.shape).astype(np.float32), shapes["params"]
    )
    for norm in ("norm_in", "norm_out"):
        params[norm]["scale"] += 1.0
    return params


def write_checkpoint(workdir, mm_dim=384):
    """A step-0 checkpoint laid out as train.py writes it (state, config in meta).

    The encoder weights come from ``random_encoder_params``.
    """
    config = base_config()
    config.model.mm_dim = mm_dim
    config.data.batch_size = 16
    config.queue.size = 64
    model = build.encoder_from_config(config.model)
    tx = optim.make_optimizer(config)
    encoder = random_encoder_params(mm_dim)

    def with_encoder(p):
        fresh = state_lib.create_train_state(config, model, tx, objectives.get("primus"))
        params = {**fresh.params, "encoder": p}
        return fresh.replace(params=params, opt_state=tx.init(params))

    state = jax.jit(with_encoder)(encoder)
    ckpt = checkpointing.Checkpointer(workdir / "checkpoints", max_to_keep=1, async_save=False)
    meta = {"config": json.loads(config.to_json_best_effort())}
    ckpt.save(0, state, None, meta=meta, force=True)
    ckpt.close()
    return encoder


def truncate_arrays(step_dir):
    """What a half-synced copy or a full disk leaves: every array data file of the step's
    state cut to a third of its size."""
    cut = 0
    for root, _, files in os.walk(os.path.join(step_dir, "state")):
        for f in files:
            p = os.path.join(root, f)
            if os.path.basename(root) == "d":  # tensorstore's data files
                os.truncate(p, os.path.getsize(p) // 3)
                cut += 1
    assert cut, "no array files found to damage"
