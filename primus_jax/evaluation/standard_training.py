"""Standard Training: the whole encoder plus a linear head trained on the k shots.

The PRIMUS paper's baseline: a randomly initialised encoder (or given parameters) and a linear
head on its ``mmcl`` output, trained with softmax cross-entropy and AdamW on the k-shot windows,
with the reference's 20-epoch warmup-cosine recipe. :class:`StandardTraining` is its plug-in
for the k-shot trial loop; the recipe and its differences from the reference are in
``docs/evaluation.md``.
"""

from __future__ import annotations

import dataclasses
import functools
import json
import time
from collections.abc import Mapping

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
        normalize: L2-normalise the ``mmcl`` output before the linear head.
        eval_batch_size: windows per forward pass when scoring.
    """

    epochs: float = 20.0
    steps: int | None = None
    batch_size: int = REFERENCE_BATCH
    lr: float = 1e-4
    weight_decay: float = 1e-4
    normalize: bool = True
    eval_batch_size: int = 1024

    def __post_init__(self):
        if self.steps is not None and self.steps < 1:
            raise ValueError(f"steps must be >= 1, got {self.steps}")
        if self.epochs <= 0 or self.batch_size < 1 or self.eval_batch_size < 1:
            raise ValueError(f"epochs and batch sizes must be positive: {self}")
        if self.lr <= 0 or self.weight_decay < 0:
            raise ValueError(f"need lr > 0 and weight_decay >= 0: {self}")


def schedule_lengths(n: int, cfg: SupervisedConfig) -> tuple[int, int]:
    """``(total_steps, warmup_steps)`` for n training windows.

    ``total = int(max(n / 256, 1) * epochs)`` and ``warmup = max(total // 100, 10)`` as in the
    reference (256 is its batch; here ``cfg.batch_size``); ``cfg.steps`` replaces ``total``.
    The warmup is capped below ``total`` so that short budgets still reach the peak.
    """
    if cfg.steps is not None:
        total = int(cfg.steps)
    else:
        total = max(int(max(n / cfg.batch_size, 1.0) * cfg.epochs), 1)
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


@functools.lru_cache(maxsize=32)
def _compiled(
    settings: tuple, num_classes: int, n: int, batch: int, total: int, warmup: int, cfg
) -> tuple:
    """Jitted (init, train_step, logits) for one model and run shape. Cached so that every
    trial with the same number of windows reuses the compiled step."""
    model = build.encoder_from_config(dict(settings))
    head = TorchLinear(num_classes)
    schedule = optax.warmup_cosine_decay_schedule(
        init_value=0.0, peak_value=cfg.lr, warmup_steps=warmup, decay_steps=total, end_value=0.0
    )
    # optax.adamw = torch.optim.AdamW: decoupled decay times the scheduled lr, no mask.
    tx = optax.adamw(schedule, b1=0.9, b2=0.999, eps=1e-8, weight_decay=cfg.weight_decay)
    steps_per_epoch = n // batch

    def logits_fn(params, x):
        feats = model.apply({"params": params["encoder"]}, x)["mmcl"]
        if cfg.normalize:
            feats = l2_normalize(feats)
        return head.apply({"params": params["head"]}, feats)

    def init(key, encoder_params):
        if encoder_params is None:
            encoder_params = build.init_params(model, jax.random.fold_in(key, 0))
        head_in = jnp.zeros((1, model.mm_dim), jnp.float32)
        params = {
            "encoder": encoder_params,
            "head": head.init(jax.random.fold_in(key, 2), head_in)["params"],
        }
        return params, tx.init(params)

    def train_step(params, opt_state, step, shuffle_key, x_all, y_all):
        # Epoch-wise shuffling inside the step: the data stay on device, shapes never change.
        epoch, b = jnp.divmod(step, steps_per_epoch)
        perm = jax.random.permutation(jax.random.fold_in(shuffle_key, epoch), n)
        idx = jax.lax.dynamic_slice_in_dim(perm, b * batch, batch)
        x, y = x_all[idx], y_all[idx]

        def loss_fn(p):
            logits = logits_fn(p, x)
            return optax.softmax_cross_entropy_with_integer_labels(logits, y).mean()

        loss, grads = jax.value_and_grad(loss_fn)(params)
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
    """A trained encoder + head. ``losses`` is the training loss of every step."""

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
        imu = jnp.asarray(imu, jnp.float32)
        n = imu.shape[0]
        chunk = min(self._eval_batch, n)
        out = []
        for s in range(0, n, chunk):
            start = min(s, n - chunk)
            block = self._logits_fn(self.params, imu, start, chunk)
            out.append(block[s - start :])
        return np.asarray(jnp.concatenate(out))

    def predict(self, imu) -> np.ndarray:
        """(N,) predicted classes."""
        return np.argmax(self.logits(imu), axis=1)


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

    Args:
        train_imu: (n, T, 6) float windows, channels-last, SI units.
        train_y: (n,) integer labels in ``[0, num_classes)``.
        num_classes: C.
        seed: drives the head (and encoder) initialisation and the batch order.
        init_params: optional encoder linen params (e.g. from
            ``checkpointing.load_encoder_params``) to fine-tune instead of a random init.
        model_config: encoder settings (keys of ``base_config().model``); default: base's.
        config: hyperparameters; default :class:`SupervisedConfig` ().
        **overrides: fields of :class:`SupervisedConfig` to replace (e.g. ``steps=100``).

    Returns:
        A :class:`SupervisedFit`; ``info`` holds steps, warmup, batch, epochs seen and times.
    """
    cfg = dataclasses.replace(config or SupervisedConfig(), **overrides)
    x = np.asarray(train_imu, np.float32)
    y = np.asarray(train_y)
    if x.ndim != 3 or len(x) != len(y) or len(x) == 0:
        raise ValueError(f"need (n, T, C) windows and (n,) labels, got {x.shape}, {y.shape}")
    if not np.issubdtype(y.dtype, np.integer) or y.min() < 0 or y.max() >= num_classes:
        raise ValueError(f"labels must be integers in [0, {num_classes})")
    n = len(x)
    batch = min(cfg.batch_size, n)
    total, warmup = schedule_lengths(n, cfg)
    settings = model_settings(model_config)
    init, step_fn, logits_fn = _compiled(settings, int(num_classes), n, batch, total, warmup, cfg)
    key = jax.random.key(int(seed))
    t0 = time.perf_counter()
    if init_params is not None:
        _check_encoder_params(init_params, settings)
        # A copy: the step donates its parameters, and the caller's arrays must survive (every
        # trial fine-tunes the same initial parameters).
        init_params = jax.tree.map(lambda a: jnp.array(a, jnp.float32, copy=True), init_params)
    params, opt_state = init(key, init_params)
    shuffle_key = jax.random.fold_in(key, 1)
    x_dev, y_dev = jnp.asarray(x), jnp.asarray(y.astype(np.int32))  # on device once
    losses = []
    for s in range(total):
        step = jnp.int32(s)
        params, opt_state, loss = step_fn(params, opt_state, step, shuffle_key, x_dev, y_dev)
        losses.append(loss)
    losses = np.asarray(jax.device_get(jnp.stack(losses)))
    info = {
        "n_train": n,
        "steps": total,
        "warmup_steps": warmup,
        "batch_size": batch,
        "epochs_seen": total * batch / n,
        "final_loss": float(losses[-1]),
        "train_s": round(time.perf_counter() - t0, 3),
    }
    return SupervisedFit(params, losses, info, logits_fn, cfg.eval_batch_size)


def fit_seed(seed: int, trial: int, k: int) -> int:
    """Independent init/shuffle seed for every (run seed, trial, k)."""
    return int(np.random.SeedSequence([seed, trial, k]).generate_state(1)[0])


@dataclasses.dataclass(frozen=True)
class StandardTraining:
    """The trial loop's plug-in: one :func:`fit_supervised` per k-shot draw, scored on every
    test window. Its fit seed is :func:`fit_seed` of the draw's (seed, trial, k)."""

    name: str = METHOD_NAME
    config: SupervisedConfig = SupervisedConfig()
    model: Mapping | None = None  # encoder settings; default the pretraining defaults
    init_params: Mapping | None = None  # encoder params to fine-tune; default random init
    shots: tuple[int, ...] | None = None  # default: the run's
    probe = "logistic"  # a softmax-CE linear head: the closest kind the report knows
    needs_prompts = False
    needs_windows = True

    def report_config(self) -> dict:
        return json.loads(
            json.dumps(
                {
                    "kind": METHOD_NAME,
                    "trains": "encoder+head",
                    "head_input": "mmcl",
                    "init": "random" if self.init_params is None else "given",
                    "fit_seed": "SeedSequence([seed, trial, k])",
                    **dataclasses.asdict(self.config),
                    "model": dict(model_settings(self.model)),
                }
            )
        )

    def embedding_dim(self, task: Task) -> int:
        return int(dict(model_settings(self.model))["mm_dim"])  # what the head reads

    def fit_predict(self, task: Task, draw: Draw) -> tuple[np.ndarray, None]:
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
        return fit.predict(task.test_windows), None

    def fit_summary(self, infos) -> None:
        return None
