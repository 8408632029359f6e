"""MultitaskSSL baseline (Saeed et al., 2019): recognise which transformation was applied.

One binary head per signal transformation (noise, scaling, rotation, negation, time
reversal, permutation, time-warp, channel shuffle) answers "original or transformed?" on the
shared encoder's ``config.multitask.feature`` output (``mmcl``, the probed embedding). Per
step the B windows and their K transformed copies go through the encoder as one batch of
(K + 1) * B rows; ``loss = mean_t BCE_t`` (ln 2 at chance). The heads live in
``params["multitask"]``, beside an ``encoder`` laid out as for PRIMUS, so evaluation loads the
checkpoint unchanged. docs/training.md gives our reading of the paper in full.
"""

from __future__ import annotations

import functools
import itertools

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np
import optax

from primus_jax import augment as augment_lib
from primus_jax.config import ConfigError
from primus_jax.models.encoder import torch_uniform

TASKS = (
    "noise",
    "scaling",
    "rotation",
    "negation",
    "time_reversal",
    "permutation",
    "time_warp",
    "channel_shuffle",
)
FEATURES = ("emb", "ssl", "mmcl")


# ---------------------------------------------------------------------------------------------
# The two transformations augment.py does not have.


@functools.lru_cache(maxsize=16)
def spline_matrix(num_knots: int, length: int) -> np.ndarray:
    """(length, num_knots) matrix mapping knot values to their cubic spline on ``arange(length)``.

    Knots sit at ``linspace(0, length - 1, num_knots)``. The spline is scipy's ``CubicSpline``
    (not-a-knot ends, as in Um et al.'s time-warp that Saeed et al. use); because it is linear
    in the knot values, evaluating it on the identity once gives a matrix, and inside the jitted
    step the spline is one matmul. scipy is a dependency of jax itself.
    """
    from scipy.interpolate import CubicSpline

    xs = np.linspace(0.0, length - 1.0, num_knots)
    return CubicSpline(xs, np.eye(num_knots), axis=0)(np.arange(length)).astype(np.float32)


def time_warp_grid(key, batch: int, length: int, channels: int, sigma=0.2, num_knots=4):
    """(B, C, T) monotone time maps ``phi`` with ``phi[..., 0] = 0``, ``phi[..., -1] = T - 1``.

    Local speeds are a cubic spline through ``num_knots + 2`` equally spaced knots drawn from
    N(1, sigma^2), floored at 1e-3 so that ``phi`` (their normalised running sum) is strictly
    increasing. Um et al. divide the running sum by its last value only, which maps sample 0
    to about 1 instead of 0; we subtract the first value too, so both endpoints stay put.
    """
    knots = 1.0 + sigma * jax.random.normal(key, (batch, channels, num_knots + 2), jnp.float32)
    speed = jnp.maximum(knots @ jnp.asarray(spline_matrix(num_knots + 2, length)).T, 1e-3)
    cum = jnp.cumsum(speed, axis=-1)
    return (cum - cum[..., :1]) / (cum[..., -1:] - cum[..., :1]) * (length - 1)


def time_warp(key, x, sigma: float = 0.2, num_knots: int = 4):
    """Smooth random time warp, independently per sample and channel (as Um/Saeed/Tang).

    Sample ``j`` of a channel is moved to time ``phi[j]`` and the result is read back at the
    integer times by linear interpolation (``np.interp(arange(T), phi, x)`` in their code), so
    the output starts and ends with the input's first and last samples.
    """
    b, t, c = x.shape
    phi = time_warp_grid(key, b, t, c, sigma, num_knots)
    grid = jnp.arange(t, dtype=jnp.float32)
    interp = jax.vmap(jax.vmap(lambda p, v: jnp.interp(grid, p, v)))
    y = interp(phi, jnp.swapaxes(x, 1, 2).astype(jnp.float32))
    return jnp.swapaxes(y, 1, 2).astype(x.dtype)


# The five non-identity orderings of (x, y, z).
_AXIS_PERMUTATIONS = np.array(list(itertools.permutations(range(3)))[1:], np.int32)


def channel_shuffle_indices(key, batch: int) -> jax.Array:
    """(B, 6) channel orders: one non-identity permutation of the xyz axes per sample,
    applied to acc (channels 0-2) and gyro (3-5) alike."""
    choice = jax.random.randint(key, (batch,), 0, len(_AXIS_PERMUTATIONS))
    axes = jnp.asarray(_AXIS_PERMUTATIONS)[choice]
    return jnp.concatenate([axes, axes + 3], axis=-1)


def channel_shuffle(key, x):
    """Permutes the sensor axes (Saeed et al.'s channel shuffle, on six channels).

    Their data are three accelerometer axes and the permutation is drawn among the
    non-identity ones (so every transformed window really differs). With acc and gyro we
    permute the axes, not the six channels freely: the same axis order for both sensors, as
    :func:`primus_jax.augment.rotation` applies one rotation to both. A free 6-channel
    permutation would swap m/s^2 and rad/s signals, which the heads could detect from the
    units alone.
    """
    if x.shape[-1] != 6:
        raise ValueError(f"channel_shuffle needs 6 channels (acc xyz, gyro xyz); got {x.shape}")
    order = channel_shuffle_indices(key, x.shape[0])
    return jnp.take_along_axis(x, order[:, None, :], axis=2)


# ---------------------------------------------------------------------------------------------
# Tasks, heads and the train step.


def parse_tasks(spec) -> tuple[str, ...]:
    """``("all",)`` or a subset of :data:`TASKS` (a tuple; a str is split on commas) -> task
    names, in that order."""
    items = spec.split(",") if isinstance(spec, str) else spec
    tasks = tuple(str(t).strip() for t in items if str(t).strip())
    if tasks == ("all",):
        return TASKS
    unknown = [t for t in tasks if t not in TASKS]
    if unknown or not tasks:
        raise ValueError(f"unknown or no task(s) {unknown or spec!r}; choose from {list(TASKS)}")
    if len(set(tasks)) != len(tasks):
        raise ValueError(f"duplicate tasks in {spec!r}")
    return tasks


def make_transforms(config) -> list:
    """One ``fn(key, x) -> x'`` per task of ``config.multitask.tasks``."""
    a, mt = config.augment, config.multitask
    ops = {
        "noise": functools.partial(augment_lib.noise, sigma=a.noise_sigma),
        "scaling": functools.partial(augment_lib.scaling, sigma=a.scaling_sigma),
        "rotation": augment_lib.rotation,
        "negation": augment_lib.negation,
        "time_reversal": augment_lib.time_reversal,
        "permutation": functools.partial(augment_lib.permutation, n_cuts=a.permutation_cuts),
        "time_warp": functools.partial(
            time_warp, sigma=mt.time_warp_sigma, num_knots=mt.time_warp_knots
        ),
        "channel_shuffle": channel_shuffle,
    }
    return [ops[t] for t in parse_tasks(mt.tasks)]


class TaskHeads(nn.Module):
    """K independent binary heads, evaluated in one batched einsum.

    ``__call__(feats)`` takes ``(K, N, D)`` (head k's own rows) and returns ``(K, N)`` logits.
    Each head is Dense(hidden) + ReLU + Dense(1) (``hidden = 0``: Dense(1)), with PyTorch's
    default initialisation like the encoder.
    """

    num_tasks: int
    hidden: int = 256

    @nn.compact
    def __call__(self, feats):
        k, d = self.num_tasks, feats.shape[-1]
        x = feats
        if self.hidden:
            w1 = self.param("kernel1", torch_uniform(d), (k, d, self.hidden))
            b1 = self.param("bias1", torch_uniform(d), (k, self.hidden))
            x = nn.relu(jnp.einsum("knd,kdh->knh", x, w1) + b1[:, None, :])
            d = self.hidden
        w2 = self.param("kernel2", torch_uniform(d), (k, d))
        b2 = self.param("bias2", torch_uniform(d), (k,))
        return jnp.einsum("knd,kd->kn", x, w2) + b2[:, None]


def feature_dim(config) -> int:
    m = config.model
    return {"emb": m.hidden, "ssl": m.ssl_dim, "mmcl": m.mm_dim}[config.multitask.feature]


def make_heads(config) -> TaskHeads:
    return TaskHeads(len(parse_tasks(config.multitask.tasks)), config.multitask.head_hidden)


def init_heads(config, key) -> dict:
    """The heads' linen params (``state.create_train_state`` stores them in
    ``params["multitask"]``)."""
    heads = make_heads(config)
    dummy = jnp.zeros((heads.num_tasks, 1, feature_dim(config)), jnp.float32)
    return heads.init(key, dummy)["params"]


def validate(config) -> None:
    if "multitask" not in config:
        raise ConfigError("multitask", 'objective="multitask_ssl" needs the c.multitask block')
    mt = config.multitask
    try:
        parse_tasks(mt.tasks)
    except ValueError as e:
        raise ConfigError("multitask.tasks", str(e)) from None
    if mt.feature not in FEATURES:
        raise ConfigError("multitask.feature", f"{mt.feature!r} is not one of {FEATURES}")
    if mt.head_hidden < 0:
        raise ConfigError("multitask.head_hidden", f"must be >= 0, got {mt.head_hidden}")
    if mt.time_warp_sigma <= 0:
        raise ConfigError("multitask.time_warp_sigma", f"must be > 0, got {mt.time_warp_sigma}")
    if mt.time_warp_knots < 1:
        raise ConfigError("multitask.time_warp_knots", f"must be >= 1, got {mt.time_warp_knots}")


def uses_queue(config) -> bool:
    del config
    return False  # the state keeps the token queue


def init_params(config, init_key) -> dict:
    """The task heads, stored beside (not inside) the encoder in ``params["multitask"]``, so
    ``params["encoder"]`` keeps the layout evaluation loads."""
    return {"multitask": init_heads(config, jax.random.fold_in(init_key, 1))}


def make_train_step(config, model, tx, schedule):
    """Returns ``train_step(state, batch) -> (state, metrics)`` for the MultitaskSSL objective.

    Same contract as PRIMUS's step (:mod:`primus_jax.objectives.primus`): pure, jitted once
    over the mesh by ``sharding.jit_train_step`` with the state donated; only
    ``batch["imu"]`` is read. The step's key is ``fold_in(state.rng, step)`` and task ``i``
    uses ``fold_in(key, i)``, so a run is a function of the config seed.

    Metrics: ``loss`` (mean over tasks), ``loss_<task>``, ``acc_<task>`` (on the task's 2B
    balanced rows), ``acc`` (mean over tasks), ``grad_norm``, ``lr``.
    """
    tasks = parse_tasks(config.multitask.tasks)
    transforms = make_transforms(config)
    heads = make_heads(config)
    feature = config.multitask.feature
    k = len(tasks)

    def train_step(state, batch):
        key = jax.random.fold_in(jax.random.wrap_key_data(state.rng), state.step)
        imu = batch["imu"]
        b = imu.shape[0]
        views = [fn(jax.random.fold_in(key, i), imu) for i, fn in enumerate(transforms)]
        # One encoder call over (K + 1) * B rows: bigger GEMMs, one trace of the encoder.
        x = jnp.concatenate([imu, *views], axis=0)
        labels = jnp.concatenate([jnp.zeros((b,)), jnp.ones((b,))])[None, :]  # (1, 2B)

        def loss_fn(params):
            out = model.apply({"params": params["encoder"]}, x)[feature]
            d = out.shape[-1]
            originals = jnp.broadcast_to(out[:b], (k, b, d))
            transformed = out[b:].reshape(k, b, d)  # row block i is T_i(x)
            feats = jnp.concatenate([originals, transformed], axis=1)  # (K, 2B, D)
            logits = heads.apply({"params": params["multitask"]}, feats)
            per_task = optax.sigmoid_binary_cross_entropy(logits, labels).mean(axis=1)
            acc = ((logits > 0) == (labels > 0.5)).mean(axis=1)
            return per_task.mean(), (per_task, acc)

        (loss, (per_task, acc)), grads = jax.value_and_grad(loss_fn, has_aux=True)(state.params)
        updates, opt_state = tx.update(grads, state.opt_state, state.params)
        params = optax.apply_updates(state.params, updates)
        metrics = {f"loss_{t}": per_task[i] for i, t in enumerate(tasks)}
        metrics.update({f"acc_{t}": acc[i] for i, t in enumerate(tasks)})
        metrics.update(
            loss=loss,
            acc=acc.mean(),
            grad_norm=optax.tree.norm(grads),
            lr=schedule(state.step),
        )
        new_state = state.replace(step=state.step + 1, params=params, opt_state=opt_state)
        return new_state, metrics

    return train_step
