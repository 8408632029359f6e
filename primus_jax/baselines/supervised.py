"""Standard Training baseline: the whole encoder plus a linear head trained on the k shots.

The PRIMUS paper's "Standard Training" starts from a randomly initialised model and updates
*all* parameters with supervised learning on the k-shot set; in the reference code this is the
downstream script with a random encoder and ``--finetune`` (reference-spec §7). We follow its
recipe:

* model: :class:`PrimusEncoder` (random init, or given parameters) and a linear head on its
  ``mmcl`` output, initialised like PyTorch's ``nn.Linear``. By default the head's input is
  L2-normalised, as for the linear probes of :mod:`primus_jax.evaluation` (so a fine-tuned and a
  probed encoder are read out the same way). Note that the reference's head for a *random*
  encoder is a plain ``nn.Linear(512, C)`` without normalisation: ``normalize=False``
  reproduces that;
* loss: softmax cross-entropy; AdamW over every parameter (PyTorch semantics: decoupled decay
  scaled by the learning rate, applied to all tensors), lr 1e-4, weight decay 1e-4;
* schedule: per step, linear warmup from 0 for ``max(T_max // 100, 10)`` steps, then cosine
  to 0 at ``T_max = int(max(n / 256, 1) * epochs)``, n = training windows, epochs = 20;
* ``T_max`` steps of ``min(256, n)`` windows: each epoch is a fresh permutation of the n
  windows cut into ``n // batch`` full batches (the remainder rotates between epochs), so every
  step has the same shape and the step compiles once per run; trials with the same n reuse it.
  That is ~``epochs`` passes over the data, as in the reference, whose loader also yields a
  partial last batch per epoch (so it takes up to ``epochs * ceil(n / 256)`` steps, past
  ``T_max`` when n > 256; what its scheduler does there is not specified).

Differences from the reference, on purpose: no validation split and no best-of-validation
checkpoint (a k-shot learner has no labelled validation set; we test the final weights); the
step budget is configurable (``steps`` or ``epochs``) because 20 epochs of 500 shots x C
classes is slow on a CPU. Everything is a function of ``seed``.

:func:`run_supervised_sweep` draws the same k-shot sets as
:func:`primus_jax.evaluation.run_fewshot` (same window order, sampler and seeds, so results are
paired with the probes) and returns its result structure, with one method,
``standard_training``. Its entries use ``probe = "logistic"`` (a softmax-CE linear head, the
closest kind the report schema knows) and the method's ``config`` says that the encoder was
trained too (``"trains": "encoder+head"``).
"""

from __future__ import annotations

import dataclasses
import functools
import json
import logging
import time
from collections.abc import Mapping, Sequence

import jax
import jax.numpy as jnp
import numpy as np
import optax

from primus_jax import config as config_lib
from primus_jax.evaluation import fewshot as fewshot_lib
from primus_jax.evaluation import metrics as metrics_lib
from primus_jax.evaluation import sampling
from primus_jax.losses import l2_normalize
from primus_jax.models import build
from primus_jax.models.encoder import TorchLinear

METHOD_NAME = "standard_training"
REFERENCE_BATCH = 256  # the reference's BATCH, also the divisor in its T_max

log = logging.getLogger(__name__)


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


def _model_settings(model_config: Mapping | None) -> tuple:
    """Hashable encoder settings (base_config's model block, overridden by ``model_config``)."""
    settings = base = config_lib.base_config().model.to_dict()
    if model_config is not None:
        given = dict(model_config)
        unknown = set(given) - set(base)
        if unknown:
            raise ValueError(f"unknown model settings {sorted(unknown)}; known: {sorted(base)}")
        settings = {**base, **given}
    return tuple(sorted(settings.items()))


def _check_encoder_params(params, settings: tuple, x_shape: tuple) -> None:
    """Raises ValueError unless ``params`` fit the encoder that ``settings`` describe."""
    model = build.encoder_from_config(dict(settings))
    dummy = jax.ShapeDtypeStruct((1, *x_shape[1:]), jnp.float32)
    want = jax.eval_shape(model.init, jax.random.key(0), dummy)
    want_shapes = jax.tree.map(lambda a: tuple(a.shape), want["params"])
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

    def init(key, x_shape, encoder_params):
        if encoder_params is None:
            dummy = jnp.zeros((1, *x_shape[1:]), jnp.float32)
            encoder_params = model.init(jax.random.fold_in(key, 0), dummy)["params"]
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
        jax.jit(init, static_argnums=(1,)),
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
    """Trains encoder + linear head on labelled windows (see the module docstring).

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
    settings = _model_settings(model_config)
    init, step_fn, logits_fn = _compiled(settings, int(num_classes), n, batch, total, warmup, cfg)
    key = jax.random.key(int(seed))
    t0 = time.perf_counter()
    if init_params is not None:
        _check_encoder_params(init_params, settings, x.shape)
        # A copy: the step donates its parameters, and the caller's arrays must survive (the
        # sweep fine-tunes the same initial parameters in every trial).
        init_params = jax.tree.map(lambda a: jnp.array(a, jnp.float32, copy=True), init_params)
    params, opt_state = init(key, x.shape, init_params)
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


def _fit_seed(seed: int, trial: int, k: int) -> int:
    """Independent init/shuffle seed for every (run seed, trial, k)."""
    return int(np.random.SeedSequence([seed, trial, k]).generate_state(1)[0])


def run_supervised_sweep(
    train_imu,
    train_y,
    test_imu,
    test_y,
    *,
    shots: Sequence[int] = fewshot_lib.DEFAULT_SHOTS,
    trials: int = 5,
    seed: int = 0,
    num_classes: int | None = None,
    class_names: Sequence[str] | None = None,
    train_ids: Sequence[str] | np.ndarray | None = None,
    test_ids: Sequence[str] | np.ndarray | None = None,
    init_params: dict | None = None,
    model_config: Mapping | None = None,
    config: SupervisedConfig | None = None,
    method_name: str = METHOD_NAME,
    **overrides,
) -> dict:
    """Standard Training over k x trials, in :func:`~primus_jax.evaluation.run_fewshot`'s format.

    The windows are validated, id-ordered and leakage-checked by the same code as
    ``run_fewshot`` (on the flattened IMU), and trial t draws its k-shot set with
    ``sampling.class_permutations(train_y, C, seed=seed, trial=t)``, so for the same labels, ids
    and seed the k-shot sets are exactly those of ``run_fewshot`` and the label fingerprint
    matches (``merge_reports`` accepts both). Each fit is scored on every labelled test window.

    Args:
        train_imu: (N_train, T, 6) windows of the train split (the k-shot pool).
        train_y: (N_train,) labels; negative = unlabelled, dropped.
        test_imu: (N_test, T, 6) windows of the test split.
        test_y: (N_test,) labels; negative = unlabelled, dropped.
        shots: k values (windows per class).
        trials: k-shot draws per k.
        seed: run seed (sampler; fits use a seed derived from (seed, trial, k)).
        num_classes: C; default ``max(label) + 1``.
        class_names: optional C names.
        train_ids: optional window ids (with ``test_ids``): canonical order, disjointness check.
        test_ids: optional window ids of the test split.
        init_params: optional encoder params to fine-tune instead of random init.
        model_config: encoder settings; default ``base_config().model``.
        config: hyperparameters (:class:`SupervisedConfig`).
        method_name: key of the method in the output.
        **overrides: fields of :class:`SupervisedConfig` to replace.

    Returns:
        The ``run_fewshot`` structure with ``methods = {method_name: ...}``; feed it to
        ``evaluation.make_report``, or add its method to a ``run_fewshot`` result of the same
        dataset and seed.
    """
    cfg = dataclasses.replace(config or SupervisedConfig(), **overrides)
    shots = sorted({int(k) for k in shots})
    if not shots or shots[0] < 1 or trials < 1:
        raise ValueError(f"need shots >= 1 and trials >= 1, got {shots}, {trials}")
    train_imu = np.asarray(train_imu, np.float32)
    test_imu = np.asarray(test_imu, np.float32)
    if train_imu.ndim != 3 or test_imu.shape[1:] != train_imu.shape[1:]:
        raise ValueError(
            f"need (N, T, C) windows of one shape: {train_imu.shape}, {test_imu.shape}"
        )
    window = train_imu.shape[1:]
    # Flattened windows go through run_fewshot's own preparation (validation, id order,
    # unlabelled rows dropped, fingerprint, duplicate check), so the splits match exactly.
    split = fewshot_lib._prepare(
        train_imu.reshape(len(train_imu), -1),
        train_y,
        test_imu.reshape(len(test_imu), -1),
        test_y,
        num_classes,
        None,
        class_names,
        train_ids,
        test_ids,
    )
    c = split.num_classes
    train_x = split.train_x.reshape(-1, *window)
    test_x = jnp.asarray(split.test_x.reshape(-1, *window))  # scored by every fit: once on device
    perms = [
        sampling.class_permutations(split.train_y, c, seed=seed, trial=t) for t in range(trials)
    ]
    settings = _model_settings(model_config)
    results, timing = {}, {}
    for k in shots:
        t0 = time.perf_counter()
        per_trial, confusion = [], np.zeros((c, c), np.int64)
        for t, trial_perms in enumerate(perms):
            sample = sampling.take_kshot(trial_perms, k)
            fit = fit_supervised(
                train_x[sample.indices],
                split.train_y[sample.indices],
                c,
                seed=_fit_seed(seed, t, k),
                init_params=init_params,
                model_config=dict(settings),
                config=cfg,
            )
            preds = fit.predict(test_x)
            per_trial.append(metrics_lib.classification_metrics(split.test_y, preds, c))
            confusion += metrics_lib.confusion_matrix(split.test_y, preds, c)
            log.info("%s k=%d trial %d: %s", method_name, k, t, fit.info)
        results[str(k)] = fewshot_lib._entry(
            k,
            len(sample.indices),
            len(split.test_y),
            sample.shots_per_class,
            sample.truncated_classes,
            per_trial,
            confusion,
        )
        timing[str(k)] = round(time.perf_counter() - t0, 4)
        log.info(
            "%s k=%d: accuracy %.4f (%.2f s)",
            method_name,
            k,
            results[str(k)]["accuracy"]["mean"],
            timing[str(k)],
        )
    method_config = {
        "kind": METHOD_NAME,
        "trains": "encoder+head",
        "head_input": "mmcl",
        "init": "random" if init_params is None else "given",
        "fit_seed": "SeedSequence([seed, trial, k])",
        **dataclasses.asdict(cfg),
        "model": dict(settings),
    }
    facts = dict(split.facts)
    # What the linear head reads (the mmcl width), not the flattened window length.
    facts["embedding_dim"] = dict(settings)["mm_dim"]
    return {
        **facts,
        "seed": int(seed),
        "trials": int(trials),
        "shots": shots,
        "sampler": sampling.SAMPLER_VERSION,
        "methods": {
            method_name: {
                "probe": "logistic",
                "config": json.loads(json.dumps(method_config)),
                "results": results,
            }
        },
        "timing_s": {method_name: timing},
    }
