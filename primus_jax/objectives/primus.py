"""The PRIMUS objective: augment, encode, three losses, NN queue, optimizer update.

The step is a pure function of ``(state, batch)``, jitted once over the device mesh by the
train loop (``sharding.jit_train_step``); this module also owns the objective's config checks
and the warnings for configurations in which the NN terms degenerate.

Batch (global arrays, leading axis sharded over ``data``):
  imu        (B, 250, 6) float32, channels-last, SI units
  video      (B, mm_dim) float32 stored frozen-encoder embedding (anything where absent)
  text       (B, mm_dim) float32
  has_video  (B,) bool
  has_text   (B,) bool
  segment_id, recording_id   (B, 2) uint32 identities (primus_jax.identity), which the
             NN lookup uses to never return the row's own segment (``queue.exclude``)

Loss (paper §2): ``alpha * L_SS + beta * L_MM + gamma * L_NN`` with
  L_SS = S(ssl(x), ssl(h(x)))                                   tau_ss
  L_MM = S(mmcl(x), text) + S(mmcl(x), video)                   tau_mm, masked
  L_NN = S(mmcl(x), nn_text) + S(mmcl(x), nn_video)             tau_mm, masked
         + S(ssl(x), nn_imu)                                    tau_ss
where S is the symmetric InfoNCE of ``losses.py`` and nn_* are the queue entries of each
row's nearest neighbour, looked up before this batch is enqueued and never the row's own
segment. ``nn_statistics`` reports what the NN supervision does (self and same-recording
matches, duplicate positives).
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
import optax

from primus_jax import augment as augment_lib
from primus_jax import losses, rng_streams
from primus_jax import queue as queue_lib
from primus_jax.config import ConfigError, names
from primus_jax.state import TrainState

MM_TERMS = ("text", "video")
NN_TERMS = ("text", "video", "imu")
TEMPLATED_TEXT_FRACTION = 0.5  # training texts that repeat another sampled text


def active_terms(config) -> tuple[tuple[str, ...], tuple[str, ...], bool]:
    """``(mm_terms, nn_terms, use_ss)`` that actually run (a zero weight switches a family
    off)."""
    loss = config.loss
    mm = names(loss.mm_terms, MM_TERMS, "loss.mm_terms")
    nn = names(loss.nn_terms, NN_TERMS, "loss.nn_terms")
    return (mm if loss.beta > 0 else ()), (nn if loss.gamma > 0 else ()), loss.alpha > 0


def uses_queue(config) -> bool:
    return bool(active_terms(config)[1])


def init_params(config, init_key) -> dict:
    del config, init_key  # the encoder and the temperatures only
    return {}


def validate(config) -> None:
    loss = config.loss
    for k in ("alpha", "beta", "gamma"):
        if loss[k] < 0:
            raise ConfigError(f"loss.{k}", f"loss weights must be >= 0, got {loss[k]}")
    mm, nn, use_ss = active_terms(config)
    if not (mm or nn or use_ss):
        raise ConfigError("loss", "every loss term is switched off (alpha, beta, gamma)")
    q = config.queue
    if q.lookup not in queue_lib.LOOKUP_MODES:
        raise ConfigError("queue.lookup", f"{q.lookup!r} is not one of {queue_lib.LOOKUP_MODES}")
    if q.exclude not in queue_lib.EXCLUDE_MODES:
        raise ConfigError("queue.exclude", f"{q.exclude!r} is not one of {queue_lib.EXCLUDE_MODES}")
    b = config.data.batch_size
    if nn and (q.size <= 0 or q.size % b):
        raise ConfigError(
            "queue.size",
            f"queue size {q.size} must be a positive multiple of the global batch {b}, "
            "so each batch is written as one contiguous FIFO block",
        )


def nn_supervision_warnings(config, summary: dict) -> list[str]:
    """Configurations in which the NN terms degenerate, given the training data's summary
    (``input_pipeline.train_data_summary``: ``num_examples``, ``video_frac``,
    ``text_duplicate_frac``). Returns one message per problem; the train loop logs them."""
    if not uses_queue(config):
        return []
    q, out = config.queue, []
    n = summary.get("num_examples", 0)
    nn_terms = active_terms(config)[1]
    if q.exclude == "none" and n and q.size >= n:
        out.append(
            f"queue.size={q.size} >= the {n} training segments with queue.exclude=none: from "
            "the second epoch on every row's nearest neighbour is its own stale entry, so L_NN "
            "repeats L_MM plus self-distillation; use queue.exclude=self (the default)"
        )
    text_lookup = q.lookup == "text" or (q.lookup == "auto" and summary.get("video_frac", 0) < 1)
    dup = summary.get("text_duplicate_frac", 0.0)
    if text_lookup and dup >= TEMPLATED_TEXT_FRACTION:
        what = (
            "nn_text repeats mm_text for those rows, and the other NN positives are windows "
            "with the same sentence (label-derived when the text is templated)"
            if "text" in nn_terms
            else "the NN positives are windows with the same sentence (label-derived when the "
            "text is templated)"
        )
        out.append(
            f"{100 * dup:.0f}% of the sampled training texts repeat another one (templated text) "
            f"and the NN lookup uses text (queue.lookup={q.lookup!r}"
            f"{', no video' if q.lookup == 'auto' else ''}): its nearest neighbour is an "
            f"identical sentence, so {what}; consider queue.lookup=imu"
        )
    return out


def _unique_fraction(index, valid, size):
    """Distinct neighbours among valid rows / valid rows (low values signal collapse)."""
    s = jnp.sort(jnp.where(valid, index, size))
    distinct = 1 + jnp.sum(s[1:] != s[:-1])
    distinct = distinct - jnp.any(~valid)  # the sentinel group of invalid rows
    return distinct / jnp.maximum(valid.sum(), 1)


DUPLICATE_COSINE = 1.0 - 1e-6  # neighbour key == own key up to float32 rounding


def nn_statistics(nn: dict, nb: dict, batch: dict, queue_size: int) -> dict:
    """What the NN supervision is doing this step (fractions of the B rows, or of the rows
    with a neighbour where stated):

    * ``nn_valid_frac``: rows with a neighbour; ``nn_domain_<d>``: rows looked up in domain d;
    * ``nn_similarity``: mean cosine of the chosen neighbour (valid rows);
    * ``nn_unique_frac``: distinct neighbours / valid rows (low = many rows share one slot);
    * ``nn_self_frac``: valid rows whose neighbour is their own segment (0 unless
      ``queue.exclude="none"``), ``nn_same_recording_frac``: ... from their own recording;
    * ``nn_text_dup_frac``, ``nn_video_dup_frac``: valid rows whose neighbour's text/video
      equals their own (a duplicate positive: the NN term then repeats the MM term).
    """
    valid = nn["valid"]
    n_valid = jnp.maximum(valid.sum(), 1)
    frac = lambda m: (valid & m).sum() / n_valid

    def duplicate(m):
        both = batch[f"has_{m}"] & nb[f"has_{m}"]
        cos = jnp.sum(losses.l2_normalize(batch[m]) * nb[m], axis=-1)
        return frac(both & (cos >= DUPLICATE_COSINE))

    out = {
        "nn_valid_frac": valid.mean(),
        "nn_similarity": jnp.where(valid, nn["similarity"], 0.0).sum() / n_valid,
        "nn_unique_frac": _unique_fraction(nn["index"], valid, queue_size),
        "nn_text_dup_frac": duplicate("text"),
        "nn_video_dup_frac": duplicate("video"),
        **{
            f"nn_domain_{d}": (valid & (nn["domain"] == i)).mean()
            for i, d in enumerate(queue_lib.DOMAINS)
        },
    }
    if "segment_id" in batch:
        same = lambda a, b: jnp.all(a == b, axis=-1)
        out["nn_self_frac"] = frac(same(nb["segment_id"], batch["segment_id"]))
        out["nn_same_recording_frac"] = frac(same(nb["recording_id"], batch["recording_id"]))
    return out


def make_loss_and_grads(config, model):
    """Returns ``fn(state, batch) -> ((loss, aux), grads)``: the objective's value, its
    auxiliaries (terms, NN lookup, IMU keys) and the gradient w.r.t. ``state.params``.

    The train step applies the optimizer to these gradients; tests compare them directly
    across device and process counts (Adam is nearly invariant to a gradient scale, so
    updated parameters alone would hide, e.g., a doubled all-reduce).
    """
    ops = augment_lib.parse_ops(config.augment.ops)
    loss_cfg = config.loss
    alpha, beta, gamma = loss_cfg.alpha, loss_cfg.beta, loss_cfg.gamma
    mm_terms, nn_terms, use_ss = active_terms(config)
    use_queue = bool(nn_terms)
    lookup, exclude = config.queue.lookup, config.queue.exclude
    tau_min = loss_cfg.tau_min

    def loss_and_grads(state: TrainState, batch):
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
            tau_mm = losses.temperature(params, "mm", tau_min)
            tau_ss = losses.temperature(params, "ss", tau_min)
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
                    segment_id=batch.get("segment_id"),
                    recording_id=batch.get("recording_id"),
                    mode=lookup,
                    exclude=exclude,
                    key=rng_streams.nn_tie_break(key),
                )
                nb = queue_lib.gather(state.queue, nn["index"], nn["valid"])
                for m in nn_terms:
                    query, tau = (raw["ssl"], tau_ss) if m == "imu" else (raw["mmcl"], tau_mm)
                    terms[f"nn_{m}"] = losses.symmetric_info_nce(query, nb[m], tau, nb[f"has_{m}"])
                aux["nn"], aux["nb"] = nn, nb
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

        return jax.value_and_grad(loss_fn, has_aux=True)(state.params)

    loss_and_grads.use_queue = use_queue
    return loss_and_grads


def make_train_step(config, model, tx, schedule):
    """Returns ``train_step(state, batch) -> (state, metrics)``."""
    loss_and_grads = make_loss_and_grads(config, model)
    use_queue = loss_and_grads.use_queue
    tau_min = config.loss.tau_min

    def train_step(state: TrainState, batch):
        (loss, aux), grads = loss_and_grads(state, batch)
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
                segment_id=batch.get("segment_id"),
                recording_id=batch.get("recording_id"),
            )
            metrics.update(nn_statistics(aux["nn"], aux["nb"], batch, queue.size))
            metrics["queue_fill"] = queue.count / queue.size
        metrics.update(
            loss=loss,
            tau_mm=losses.temperature(params, "mm", tau_min),
            tau_ss=losses.temperature(params, "ss", tau_min),
            grad_norm=optax.tree.norm(grads),
            lr=schedule(state.step),
        )
        new_state = state.replace(
            step=state.step + 1, params=params, opt_state=opt_state, queue=queue
        )
        return new_state, metrics

    return train_step
