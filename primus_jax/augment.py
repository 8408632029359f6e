"""IMU augmentations, run on device inside the jitted train step with ``jax.random``.

All functions take ``x: (B, T, C)`` (channels-last, C = 6: acc xyz then gyro xyz) and a PRNG
key, and return an array of the same shape. They are composed in the configured order, each
with its own key (``augment``).

Presets (``config.augment.ops``):

* ``paper`` = ``scaling,time_reversal``: what the paper states (§2: "scaling by a random
  factor and reversing the direction of time"). Default.
* ``reference`` = ``scaling_per_timestep,permutation``: what the official code really runs
  (its ``--transform_list`` flag is ignored, so the default indices [1, 4] apply), including
  its scaling that draws one factor per *time step* (docs/differences.md).

Numbers follow the reference's ``imu_transforms.py``: scaling factor ~ N(1, 0.25^2), noise
sigma 0.1, 4 permutation cut points, rotation axis ~ U[-1,1]^3 normalised and angle ~
U[-pi, pi] applied to acc and gyro alike.
"""

from __future__ import annotations

import functools

import jax
import jax.numpy as jnp

PRESETS = {
    "paper": ("scaling", "time_reversal"),
    "reference": ("scaling_per_timestep", "permutation"),
}


def scaling(key, x, sigma: float = 0.25):
    """Per-sample, per-channel factor ~ N(1, sigma^2) (Tang et al.'s scaling, cited in §2)."""
    factor = 1.0 + sigma * jax.random.normal(key, (x.shape[0], 1, x.shape[2]), x.dtype)
    return x * factor


def scaling_per_timestep(key, x, sigma: float = 0.25):
    """Reference behaviour: one factor per (sample, time step), shared by all channels."""
    factor = 1.0 + sigma * jax.random.normal(key, (x.shape[0], x.shape[1], 1), x.dtype)
    return x * factor


def time_reversal(key, x):
    del key
    return x[:, ::-1, :]


def negation(key, x):
    del key
    return -x


def noise(key, x, sigma: float = 0.1):
    return x + sigma * jax.random.normal(key, x.shape, x.dtype)


def _permute_one(key, x, n_cuts: int):
    """x: (T, C). ``n_cuts`` distinct sorted cut points in [0, T) (0 allowed: an empty first
    segment, as in the reference), giving n_cuts + 1 segments, concatenated in random order."""
    t = x.shape[0]
    k_cut, k_order = jax.random.split(key)
    cuts = jnp.sort(jax.random.choice(k_cut, t, (n_cuts,), replace=False))
    starts = jnp.concatenate([jnp.zeros((1,), cuts.dtype), cuts])
    ends = jnp.concatenate([cuts, jnp.full((1,), t, cuts.dtype)])
    lens = ends - starts
    order = jax.random.permutation(k_order, n_cuts + 1)
    new_end = jnp.cumsum(lens[order])
    new_start = new_end - lens[order]
    pos = jnp.arange(t)
    seg = jnp.searchsorted(new_end, pos, side="right")  # output segment of each position
    src = starts[order][seg] + pos - new_start[seg]
    return x[src]


def permutation(key, x, n_cuts: int = 4):
    """Time-segment permutation, independently per sample."""
    keys = jax.random.split(key, x.shape[0])
    return jax.vmap(functools.partial(_permute_one, n_cuts=n_cuts))(keys, x)


def rotation_matrices(key, n: int, dtype=jnp.float32):
    """(n, 3, 3) rotations: axis ~ U[-1,1]^3 normalised, angle ~ U[-pi, pi] (Rodrigues)."""
    k_axis, k_angle = jax.random.split(key)
    axis = jax.random.uniform(k_axis, (n, 3), dtype, -1.0, 1.0)
    axis = axis / jnp.maximum(jnp.linalg.norm(axis, axis=-1, keepdims=True), 1e-12)
    angle = jax.random.uniform(k_angle, (n,), dtype, -jnp.pi, jnp.pi)
    ax, ay, az = axis[:, 0], axis[:, 1], axis[:, 2]
    zero = jnp.zeros_like(ax)
    kmat = jnp.stack(
        [
            jnp.stack([zero, -az, ay], -1),
            jnp.stack([az, zero, -ax], -1),
            jnp.stack([-ay, ax, zero], -1),
        ],
        -2,
    )
    s, c = jnp.sin(angle)[:, None, None], jnp.cos(angle)[:, None, None]
    return jnp.eye(3, dtype=dtype) + s * kmat + (1.0 - c) * (kmat @ kmat)


def rotation(key, x):
    """The same random 3-D rotation applied to acc (channels 0-2) and gyro (3-5) rows."""
    if x.shape[-1] != 6:
        raise ValueError(f"rotation needs 6 channels (acc xyz, gyro xyz); got {x.shape[-1]}")
    r = rotation_matrices(key, x.shape[0], x.dtype)
    acc = jnp.einsum("btc,bcd->btd", x[..., :3], r)
    gyro = jnp.einsum("btc,bcd->btd", x[..., 3:], r)
    return jnp.concatenate([acc, gyro], axis=-1)


OPS = {
    "scaling": scaling,
    "scaling_per_timestep": scaling_per_timestep,
    "time_reversal": time_reversal,
    "permutation": permutation,
    "negation": negation,
    "noise": noise,
    "rotation": rotation,
}


def parse_ops(spec) -> tuple[str, ...]:
    """Op names, in order (a tuple; a str is split on commas); presets such as "paper"
    expand to their ops. Raises ValueError on unknown names."""
    items = spec.split(",") if isinstance(spec, str) else spec
    ops: list[str] = []
    for name in (str(n).strip() for n in items):
        if name in PRESETS:
            ops.extend(PRESETS[name])
        elif name:
            ops.append(name)
    unknown = [o for o in ops if o not in OPS]
    if unknown:
        raise ValueError(
            f"unknown augmentation(s) {unknown}; choose from {sorted(OPS)} "
            f"or a preset {sorted(PRESETS)}"
        )
    return tuple(ops)


def augment(key, x, ops: tuple[str, ...], *, scaling_sigma=0.25, noise_sigma=0.1, n_cuts=4):
    """Applies ``ops`` in order, each with its own key derived from ``key``."""
    params = {
        "scaling": {"sigma": scaling_sigma},
        "scaling_per_timestep": {"sigma": scaling_sigma},
        "noise": {"sigma": noise_sigma},
        "permutation": {"n_cuts": n_cuts},
    }
    for i, name in enumerate(ops):
        x = OPS[name](jax.random.fold_in(key, i), x, **params.get(name, {}))
    return x
