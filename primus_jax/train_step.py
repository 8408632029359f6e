"""The PRIMUS training step: augment, encode, three losses, NN queue, optimizer update.

Pure function of ``(state, batch)``; no I/O, no globals. It is compiled once by
``jax.jit`` over the device mesh (see ``sharding.jit_train_step``).

Batch (global arrays, leading axis sharded over ``data``):
  imu        (B, 250, 6) float32, channels-last, SI units
  video      (B, mm_dim) float32 stored frozen-encoder embedding (anything where absent)
  text       (B, mm_dim) float32
  has_video  (B,) bool
  has_text   (B,) bool

Loss (paper §2): ``alpha * L_SS + beta * L_MM + gamma * L_NN`` with
  L_SS = S(ssl(x), ssl(h(x)))                                   tau_ss
  L_MM = S(mmcl(x), text) + S(mmcl(x), video)                   tau_mm, masked
  L_NN = S(mmcl(x), nn_text) + S(mmcl(x), nn_video)             tau_mm, masked
         + S(ssl(x), nn_imu)                                    tau_ss
where S is the symmetric InfoNCE of ``losses.py`` and nn_* are the queue entries of each
row's nearest neighbour, looked up before this batch is enqueued.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
import optax

from primus_jax import augment as augment_lib
from primus_jax import config as config_lib
from primus_jax import losses
from primus_jax import queue as queue_lib
from primus_jax.state import TrainState

_NN_TIE_BREAK = 1 << 20  # fold_in tag of the NN tie-break key (augmentations use 0, 1, ...)


def _unique_fraction(index, valid, size):
    """Distinct neighbours among valid rows / valid rows (low values signal collapse)."""
    s = jnp.sort(jnp.where(valid, index, size))
    distinct = 1 + jnp.sum(s[1:] != s[:-1])
    distinct = distinct - jnp.any(~valid)  # the sentinel group of invalid rows
    return distinct / jnp.maximum(valid.sum(), 1)


def make_train_step(config, model, tx, schedule):
    """Returns ``train_step(state, batch) -> (state, metrics)``."""
    ops = augment_lib.parse_ops(config.augment.ops)
    loss_cfg = config.loss
    alpha, beta, gamma = loss_cfg.alpha, loss_cfg.beta, loss_cfg.gamma
    mm_terms = config_lib.split_terms(loss_cfg.mm_terms, config_lib.MM_TERMS, "loss.mm_terms")
    nn_terms = config_lib.split_terms(loss_cfg.nn_terms, config_lib.NN_TERMS, "loss.nn_terms")
    mm_terms = mm_terms if beta > 0 else ()
    nn_terms = nn_terms if gamma > 0 else ()
    use_ss = alpha > 0
    use_queue = bool(nn_terms)
    lookup = config.queue.lookup

    def train_step(state: TrainState, batch):
        key = jax.random.fold_in(jax.random.wrap_key_data(state.rng), state.step)
        imu = batch["imu"]
        b = imu.shape[0]
        if use_ss:
            view = augment_lib.augment(
                key,
                imu,
                ops,
                scaling_sigma=config.augment.scaling_sigma,
                noise_sigma=config.augment.noise_sigma,
                n_cuts=config.augment.permutation_cuts,
            )
            # Both views go through the encoder as one batch of 2B rows (bigger GEMMs).
            x = jnp.concatenate([imu, view], axis=0)
        else:
            x = imu

        def loss_fn(params):
            out = model.apply({"params": params["encoder"]}, x)
            raw = {k: v[:b] for k, v in out.items()}
            tau_mm = losses.temperature(params["log_tau_mm"])
            tau_ss = losses.temperature(params["log_tau_ss"])
            terms, aux = {}, {}
            for m in mm_terms:
                terms[f"mm_{m}"] = losses.symmetric_info_nce(
                    raw["mmcl"], batch[m], tau_mm, batch[f"has_{m}"]
                )
            if use_ss:
                terms["ss"] = losses.symmetric_info_nce(raw["ssl"], out["ssl"][b:], tau_ss)
            if use_queue:
                nn = queue_lib.nearest_neighbour(
                    state.queue,
                    video=batch["video"],
                    text=batch["text"],
                    imu=raw["ssl"],
                    has_video=batch["has_video"],
                    has_text=batch["has_text"],
                    mode=lookup,
                    key=jax.random.fold_in(key, _NN_TIE_BREAK),
                )
                nb = queue_lib.gather(state.queue, nn["index"], nn["valid"])
                for m in nn_terms:
                    query, tau = (raw["ssl"], tau_ss) if m == "imu" else (raw["mmcl"], tau_mm)
                    terms[f"nn_{m}"] = losses.symmetric_info_nce(query, nb[m], tau, nb[f"has_{m}"])
                aux["nn"] = nn
            total = 0.0
            if use_ss:
                total += alpha * terms["ss"]
            if mm_terms:
                terms["mm"] = sum(terms[f"mm_{m}"] for m in mm_terms)
                total += beta * terms["mm"]
            if nn_terms:
                terms["nn"] = sum(terms[f"nn_{m}"] for m in nn_terms)
                total += gamma * terms["nn"]
            aux["terms"] = terms
            aux["imu_key"] = raw["ssl"]
            return total, aux

        (loss, aux), grads = jax.value_and_grad(loss_fn, has_aux=True)(state.params)
        updates, opt_state = tx.update(grads, state.opt_state, state.params)
        params = optax.apply_updates(state.params, updates)

        queue = state.queue
        metrics = {f"loss_{k}": v for k, v in aux["terms"].items()}
        if use_queue:
            # Enqueue only here, in the training step: evaluation never touches the queue
            # (the reference also enqueues validation batches, leaking them into NN targets).
            queue = queue_lib.enqueue(
                queue,
                video=batch["video"],
                text=batch["text"],
                imu=aux["imu_key"],
                has_video=batch["has_video"],
                has_text=batch["has_text"],
            )
            nn = aux["nn"]
            valid = nn["valid"]
            n_valid = jnp.maximum(valid.sum(), 1)
            metrics.update(
                nn_valid_frac=valid.mean(),
                nn_similarity=jnp.where(valid, nn["similarity"], 0.0).sum() / n_valid,
                nn_unique_frac=_unique_fraction(nn["index"], valid, queue.size),
                **{
                    f"nn_domain_{d}": (valid & (nn["domain"] == i)).mean()
                    for i, d in enumerate(queue_lib.DOMAINS)
                },
            )
            metrics["queue_fill"] = queue.count / queue.size
        metrics.update(
            loss=loss,
            tau_mm=losses.temperature(params["log_tau_mm"]),
            tau_ss=losses.temperature(params["log_tau_ss"]),
            grad_norm=optax.tree.norm(grads),
            lr=schedule(state.step),
        )
        new_state = state.replace(
            step=state.step + 1, params=params, opt_state=opt_state, queue=queue
        )
        return new_state, metrics

    return train_step
