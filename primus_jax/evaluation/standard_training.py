"""Standard Training and fine-tuning: the whole encoder plus a linear head trained on the k shots.

The PRIMUS paper's baseline: a randomly initialised encoder and a linear head on its ``mmcl``
output, trained with softmax cross-entropy and AdamW on the k-shot windows. Two budgets:
:data:`REFERENCE_BUDGET` (the reference's 20 epochs) and :data:`FAIR_BUDGET` (epochs scaled to
the shots, early stopping on held-out shots). :data:`FINETUNE_BUDGET` starts from the evaluated
encoder instead (ssl-wearables' "FT-all"). :class:`StandardTraining` is the plug-in for the
k-shot trial loop; the recipes are in ``docs/evaluation.md``.
"""

from __future__ import annotations

import dataclasses
import functools
import json
import time
from collections.abc import Mapping
from typing import Literal

import jax
import jax.numpy as jnp
import numpy as np
import optax
from absl import logging

from primus_jax import config as config_lib
from primus_jax.evaluation.task import Draw, Task
from primus_jax.losses import l2_normalize
from primus_jax.models import build
from primus_jax.models.encoder import TorchLinear

METHOD_NAME = "standard_training"
REFERENCE_BATCH = 256  # the reference's BATCH, also the divisor in its T_max


@dataclasses.dataclass(frozen=True)
class SupervisedConfig:
    """Hyperparameters of one supervised fit (defaults: the reference's downstream script).

    Attributes:
        epochs: passes over the k-shot set; sets ``T_max`` as in the reference.
        steps: total optimizer steps; overrides ``epochs`` when set.
        batch_size: windows per step (capped at the number of training windows).
        lr: peak learning rate.
        weight_decay: AdamW decoupled weight decay (on every parameter, like torch's AdamW).
        normalize: L2-normalise the head's input before the linear head.
        eval_batch_size: windows per forward pass when scoring.
        min_steps: lower bound on the epoch-derived step count (not on ``steps``).
        max_steps: upper bound on the epoch-derived step count (None: none).
        holdout: fraction of each class's shots held out for early stopping (0: none). A
            class with fewer than ``min_holdout_shots`` shots holds none out; with no held-out
            window at all the full budget is trained and the final weights kept.
        min_holdout_shots: see ``holdout``.
        patience: held-out checks without a lower held-out loss before stopping (0: never
            stop early; the best check's weights are still kept).
        init: ``"random"`` (Standard Training) or ``"encoder"`` (fine-tune the evaluated
            encoder's parameters, passed as ``init_params``).
        head_input: the encoder output the head reads (``mmcl``, ``emb`` or ``ssl``).
    """

    epochs: float = 20.0
    steps: int | None = None
    batch_size: int = REFERENCE_BATCH
    lr: float = 1e-4
    weight_decay: float = 1e-4
    normalize: bool = True
    eval_batch_size: int = 1024
    min_steps: int = 1
    max_steps: int | None = None
    holdout: float = 0.0
    min_holdout_shots: int = 5
    patience: int = 0
    init: Literal["random", "encoder"] = "random"
    head_input: Literal["mmcl", "emb", "ssl"] = "mmcl"

    def __post_init__(self):
        if self.steps is not None and self.steps < 1:
            raise ValueError(f"steps must be >= 1, got {self.steps}")
        if self.epochs <= 0 or self.batch_size < 1 or self.eval_batch_size < 1:
            raise ValueError(f"epochs and batch sizes must be positive: {self}")
        if self.lr <= 0 or self.weight_decay < 0:
            raise ValueError(f"need lr > 0 and weight_decay >= 0: {self}")
        if self.min_steps < 1 or (self.max_steps is not None and self.max_steps < self.min_steps):
            raise ValueError(f"need 1 <= min_steps <= max_steps: {self}")
        if not 0.0 <= self.holdout < 1.0 or self.min_holdout_shots < 2 or self.patience < 0:
            raise ValueError(
                f"need 0 <= holdout < 1, min_holdout_shots >= 2, patience >= 0: {self}"
            )
        if self.init not in ("random", "encoder"):
            raise ValueError(f"init must be 'random' or 'encoder', got {self.init!r}")
        if self.head_input not in ("mmcl", "emb", "ssl"):
            raise ValueError(f"head_input must be mmcl, emb or ssl, got {self.head_input!r}")


# The reference's downstream recipe: 20 epochs of batches of 256, final weights tested.
REFERENCE_BUDGET = SupervisedConfig()
# A budget that trains to convergence on the shots: ~100 epochs of batches of 64 (at least 300,
# at most 2000 steps), lr 1e-3, the best held-out-loss weights of 20 % of the shots.
FAIR_BUDGET = SupervisedConfig(
    epochs=100.0,
    batch_size=64,
    lr=1e-3,
    min_steps=300,
    max_steps=2000,
    holdout=0.2,
    patience=10,
)
# Fine-tuning the evaluated encoder (FT-all): the fair budget at the pretrained-weights lr 1e-4.
FINETUNE_BUDGET = dataclasses.replace(FAIR_BUDGET, lr=1e-4, init="encoder")


def schedule_lengths(n: int, cfg: SupervisedConfig) -> tuple[int, int]:
    """``(total_steps, warmup_steps)`` for n training windows.

    ``total = int(max(n / 256, 1) * epochs)`` and ``warmup = max(total // 100, 10)`` as in the
    reference (256 is its batch; here ``cfg.batch_size``), clipped to ``[min_steps,
    max_steps]``; ``cfg.steps`` replaces ``total``. The warmup is capped below ``total`` so
    that short budgets still reach the peak.
    """
    if cfg.steps is not None:
        total = int(cfg.steps)
    else:
        total = max(int(max(n / cfg.batch_size, 1.0) * cfg.epochs), cfg.min_steps)
        total = min(total, cfg.max_steps or total)
    warmup = min(max(total // 100, 10), total - 1)
    return total, warmup


def model_settings(model_config: Mapping | None) -> tuple:
    """Hashable encoder settings: the pretraining defaults, overridden by ``model_config``."""
    settings = base = config_lib.base_config().model.to_dict()
    if model_config is not None:
        given = dict(model_config)
        unknown = set(given) - set(base)
        if unknown:
            raise ValueError(f"unknown model settings {sorted(unknown)}; known: {sorted(base)}")
        settings = {**base, **given}
    return tuple(sorted(settings.items()))


def _check_encoder_params(params, settings: tuple) -> None:
    """Raises ValueError unless ``params`` fit the encoder that ``settings`` describe."""
    want = build.abstract_params(build.encoder_from_config(dict(settings)))
    want_shapes = jax.tree.map(lambda a: tuple(a.shape), want)
    got_shapes = jax.tree.map(lambda a: tuple(np.shape(a)), params)
    if want_shapes != got_shapes:
        raise ValueError(
            "init_params do not match the encoder of model_config (pass the checkpoint's "
            f"model settings): expected {want_shapes}, got {got_shapes}"
        )


def lr_schedule(total: int, warmup: int, lr: float) -> np.ndarray:
    """(total,) learning rate of every step: linear warmup from 0, cosine to 0 at ``total``."""
    schedule = optax.warmup_cosine_decay_schedule(
        init_value=0.0, peak_value=lr, warmup_steps=warmup, decay_steps=total, end_value=0.0
    )
    return np.asarray(schedule(jnp.arange(total)), np.float32)


@functools.lru_cache(maxsize=32)
def _compiled(
    settings: tuple,
    num_classes: int,
    n: int,
    batch: int,
    weight_decay: float,
    head_input: str,
    normalize: bool,
) -> tuple:
    """Jitted (init, train_step, logits) for one model and run shape. Cached so that every
    trial (and every budget and learning rate) with the same number of windows reuses the
    compiled step: the step's learning rate is an argument, not a constant."""
    model = build.encoder_from_config(dict(settings))
    head = TorchLinear(num_classes)
    # optax.adamw = torch.optim.AdamW: decoupled decay times the scheduled lr, no mask.
    tx = optax.inject_hyperparams(optax.adamw)(
        learning_rate=0.0, b1=0.9, b2=0.999, eps=1e-8, weight_decay=weight_decay
    )
    steps_per_epoch = n // batch

    def logits_fn(params, x):
        feats = model.apply({"params": params["encoder"]}, x)[head_input]
        if normalize:
            feats = l2_normalize(feats)
        return head.apply({"params": params["head"]}, feats)

    def init(key, encoder_params):
        if encoder_params is None:
            encoder_params = build.init_params(model, jax.random.fold_in(key, 0))
        width = {"emb": model.hidden, "ssl": model.ssl_dim, "mmcl": model.mm_dim}
        head_in = jnp.zeros((1, width[head_input]), jnp.float32)
        params = {
            "encoder": encoder_params,
            "head": head.init(jax.random.fold_in(key, 2), head_in)["params"],
        }
        return params, tx.init(params)

    def train_step(params, opt_state, lr, step, shuffle_key, x_all, y_all):
        # Epoch-wise shuffling inside the step: the data stay on device, shapes never change.
        epoch, b = jnp.divmod(step, steps_per_epoch)
        perm = jax.random.permutation(jax.random.fold_in(shuffle_key, epoch), n)
        idx = jax.lax.dynamic_slice_in_dim(perm, b * batch, batch)
        x, y = x_all[idx], y_all[idx]

        def loss_fn(p):
            logits = logits_fn(p, x)
            return optax.softmax_cross_entropy_with_integer_labels(logits, y).mean()

        loss, grads = jax.value_and_grad(loss_fn)(params)
        opt_state.hyperparams["learning_rate"] = lr
        updates, opt_state = tx.update(grads, opt_state, params)
        return optax.apply_updates(params, updates), opt_state, loss

    def logits_at(params, x_all, start, size):
        # Slicing inside the jit: one compiled program per (N, chunk), whatever the start.
        return logits_fn(params, jax.lax.dynamic_slice_in_dim(x_all, start, size))

    return (
        jax.jit(init),
        jax.jit(train_step, donate_argnums=(0, 1)),
        jax.jit(logits_at, static_argnums=(3,)),
    )


@dataclasses.dataclass
class SupervisedFit:
    """A trained encoder + head. ``losses`` is the training loss of every step run."""

    params: dict
    losses: np.ndarray
    info: dict
    _logits_fn: object = dataclasses.field(repr=False)
    _eval_batch: int = dataclasses.field(repr=False, default=1024)

    def logits(self, imu) -> np.ndarray:
        """(N, C) logits for (N, T, 6) windows (numpy, or a jax array already on device).

        Scored in chunks of ``eval_batch_size`` rows of one shape; the last chunk is shifted
        back to end at row N (overlapping its predecessor) instead of being padded.
        """
        return _chunked_logits(self._logits_fn, self.params, imu, self._eval_batch)

    def predict(self, imu) -> np.ndarray:
        """(N,) predicted classes."""
        return np.argmax(self.logits(imu), axis=1)


def _chunked_logits(logits_fn, params, imu, eval_batch: int) -> np.ndarray:
    imu = jnp.asarray(imu, jnp.float32)
    n = imu.shape[0]
    chunk = min(eval_batch, n)
    out = []
    for s in range(0, n, chunk):
        start = min(s, n - chunk)
        block = logits_fn(params, imu, start, chunk)
        out.append(block[s - start :])
    return np.asarray(jnp.concatenate(out))


def _cross_entropy(logits: np.ndarray, y: np.ndarray) -> float:
    z = logits.astype(np.float64) - logits.max(axis=1, keepdims=True)
    return float(np.mean(np.log(np.exp(z).sum(axis=1)) - z[np.arange(len(y)), y]))


def holdout_split(y: np.ndarray, cfg: SupervisedConfig, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """``(fit_idx, holdout_idx)``: ``floor(holdout * n_c)`` (at least 1) random windows of
    every class c with ``n_c >= min_holdout_shots`` shots are held out; the rest are fitted.
    Seeded by ``seed``; the counts depend only on the class counts (one shape per k)."""
    rng = np.random.default_rng([int(seed), 7])
    hold = []
    if cfg.holdout > 0:
        for c in np.unique(y):
            idx = np.flatnonzero(y == c)
            if len(idx) >= cfg.min_holdout_shots:
                h = max(1, int(np.floor(cfg.holdout * len(idx))))
                hold.append(rng.permutation(idx)[:h])
    hold = np.sort(np.concatenate(hold)) if hold else np.zeros(0, np.int64)
    return np.setdiff1d(np.arange(len(y)), hold), hold


def fit_supervised(
    train_imu,
    train_y,
    num_classes: int,
    *,
    seed: int,
    init_params: dict | None = None,
    model_config: Mapping | None = None,
    config: SupervisedConfig | None = None,
    **overrides,
) -> SupervisedFit:
    """Trains encoder + linear head on labelled windows.

    With ``config.holdout > 0`` part of the windows (:func:`holdout_split`) is held out: the
    held-out cross-entropy is checked every ``max(10, steps per epoch)`` steps and at the end,
    training stops after ``patience`` checks without a new minimum, and the weights of the best
    check are returned. Without held-out windows the final weights are returned.

    Args:
        train_imu: (n, T, 6) float windows, channels-last, SI units.
        train_y: (n,) integer labels in ``[0, num_classes)``.
        num_classes: C.
        seed: drives the head (and encoder) initialisation, the held-out split and the batch
            order.
        init_params: encoder linen params (e.g. from ``checkpointing.load_encoder_params``) to
            fine-tune instead of a random init; required with ``config.init == "encoder"``.
        model_config: encoder settings (keys of ``base_config().model``); default: base's.
        config: hyperparameters; default :data:`REFERENCE_BUDGET`.
        **overrides: fields of :class:`SupervisedConfig` to replace (e.g. ``steps=100``).

    Returns:
        A :class:`SupervisedFit`; ``info`` holds the budget (steps, warmup, batch), the steps
        run, the kept step, held-out and training accuracy/loss and times.
    """
    cfg = dataclasses.replace(config or SupervisedConfig(), **overrides)
    x = np.asarray(train_imu, np.float32)
    y = np.asarray(train_y)
    if x.ndim != 3 or len(x) != len(y) or len(x) == 0:
        raise ValueError(f"need (n, T, C) windows and (n,) labels, got {x.shape}, {y.shape}")
    if not np.issubdtype(y.dtype, np.integer) or y.min() < 0 or y.max() >= num_classes:
        raise ValueError(f"labels must be integers in [0, {num_classes})")
    if cfg.init == "encoder" and init_params is None:
        raise ValueError("init='encoder' fine-tunes given parameters: pass init_params")
    y = y.astype(np.int32)
    fit_idx, hold_idx = holdout_split(y, cfg, seed)
    n = len(fit_idx)
    batch = min(cfg.batch_size, n)
    total, warmup = schedule_lengths(n, cfg)
    settings = model_settings(model_config)
    init, step_fn, logits_fn = _compiled(
        settings,
        int(num_classes),
        n,
        batch,
        float(cfg.weight_decay),
        cfg.head_input,
        bool(cfg.normalize),
    )
    lrs = lr_schedule(total, warmup, cfg.lr)
    key = jax.random.key(int(seed))
    t0 = time.perf_counter()
    if init_params is not None:
        _check_encoder_params(init_params, settings)
        # A copy: the step donates its parameters, and the caller's arrays must survive (every
        # trial fine-tunes the same initial parameters).
        init_params = jax.tree.map(lambda a: jnp.array(a, jnp.float32, copy=True), init_params)
    params, opt_state = init(key, init_params)
    shuffle_key = jax.random.fold_in(key, 1)
    x_dev, y_dev = jnp.asarray(x[fit_idx]), jnp.asarray(y[fit_idx])  # on device once
    x_hold = jnp.asarray(x[hold_idx]) if len(hold_idx) else None
    every = max(10, -(-n // batch))
    best = {"loss": np.inf, "step": total, "params": None}
    losses, checks, bad, s = [], [], 0, 0
    for s in range(1, total + 1):
        params, opt_state, loss = step_fn(
            params, opt_state, lrs[s - 1], jnp.int32(s - 1), shuffle_key, x_dev, y_dev
        )
        losses.append(loss)
        if x_hold is not None and (s % every == 0 or s == total):
            hl = _cross_entropy(
                _chunked_logits(logits_fn, params, x_hold, cfg.eval_batch_size), y[hold_idx]
            )
            checks.append((s, hl))
            if hl < best["loss"]:
                # A copy: the next step donates (and so invalidates) ``params``.
                best = {"loss": hl, "step": s, "params": jax.tree.map(jnp.copy, params)}
                bad = 0
            else:
                bad += 1
                if cfg.patience and bad >= cfg.patience:
                    break
    if best["params"] is not None:
        params = best["params"]
    losses = np.asarray(jax.device_get(jnp.stack(losses)))
    info = {
        "n_train": len(y),
        "n_fit": n,
        "n_holdout": len(hold_idx),
        "steps": total,
        "steps_run": s,
        "kept_step": best["step"] if best["params"] is not None else s,
        "stopped_early": s < total,
        "warmup_steps": warmup,
        "batch_size": batch,
        "epochs_seen": s * batch / n,
        "final_loss": float(losses[-1]),
    }
    train_logits = _chunked_logits(logits_fn, params, x_dev, cfg.eval_batch_size)
    info["train_accuracy"] = float(np.mean(np.argmax(train_logits, 1) == y[fit_idx]))
    if x_hold is not None:
        hold_logits = _chunked_logits(logits_fn, params, x_hold, cfg.eval_batch_size)
        info["holdout_loss"] = best["loss"]
        info["holdout_checks"] = checks  # (step, held-out loss) of every check
        info["holdout_accuracy"] = float(np.mean(np.argmax(hold_logits, 1) == y[hold_idx]))
    info["train_s"] = round(time.perf_counter() - t0, 3)
    return SupervisedFit(params, losses, info, logits_fn, cfg.eval_batch_size)


def fit_seed(seed: int, trial: int, k: int) -> int:
    """Independent init/shuffle seed for every (run seed, trial, k)."""
    return int(np.random.SeedSequence([seed, trial, k]).generate_state(1)[0])


_TRAINING_KEYS = (
    "steps_run",
    "kept_step",
    "stopped_early",
    "n_holdout",
    "train_accuracy",
    "holdout_accuracy",
    "train_s",
)


@dataclasses.dataclass(frozen=True)
class StandardTraining:
    """The trial loop's plug-in: one :func:`fit_supervised` per k-shot draw, scored on every
    test window. Its fit seed is :func:`fit_seed` of the draw's (seed, trial, k).

    ``config.init == "encoder"`` is fine-tuning: ``init_params`` (the evaluated encoder's
    parameters) and ``model`` (its settings) are then required; the few-shot driver passes them.
    """

    name: str = METHOD_NAME
    config: SupervisedConfig = SupervisedConfig()
    model: Mapping | None = None  # encoder settings; default the pretraining defaults
    init_params: Mapping | None = None  # encoder params to fine-tune; default random init
    shots: tuple[int, ...] | None = None  # default: the run's
    probe = "logistic"  # a softmax-CE linear head: the closest kind the report knows
    needs_prompts = False
    needs_windows = True

    @property
    def kind(self) -> str:
        return "finetune" if self.config.init == "encoder" else METHOD_NAME

    def report_config(self) -> dict:
        return json.loads(
            json.dumps(
                {
                    "kind": self.kind,
                    "trains": "encoder+head",
                    "init": "random" if self.init_params is None else "given",
                    "fit_seed": "SeedSequence([seed, trial, k])",
                    **dataclasses.asdict(self.config),
                    "model": dict(model_settings(self.model)),
                }
            )
        )

    def embedding_dim(self, task: Task) -> int:
        settings = dict(model_settings(self.model))
        key = {"emb": "hidden", "ssl": "ssl_dim", "mmcl": "mm_dim"}[self.config.head_input]
        return int(settings[key])  # what the head reads

    def fit_predict(self, task: Task, draw: Draw) -> tuple[np.ndarray, dict]:
        if self.config.init == "encoder" and self.init_params is None:
            raise ValueError(f"method {self.name!r} fine-tunes an encoder: give init_params")
        idx = draw.sample.indices
        fit = fit_supervised(
            task.train_windows[idx],
            task.train_y[idx],
            task.num_classes,
            seed=fit_seed(draw.seed, draw.trial, draw.k),
            init_params=self.init_params,
            model_config=dict(model_settings(self.model)),
            config=self.config,
        )
        logging.info("%s k=%d trial %d: %s", self.name, draw.k, draw.trial, fit.info)
        return fit.predict(task.test_windows), fit.info

    def fit_summary(self, infos) -> dict:
        """The entry's ``training`` record: per-trial steps run, kept step, accuracies."""
        out = {"budget_steps": int(infos[0]["steps"]), "batch_size": int(infos[0]["batch_size"])}
        for key in _TRAINING_KEYS:
            if all(key in f for f in infos):
                out[key] = [f[key] for f in infos]
        return out
