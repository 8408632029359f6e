"""On-device IMU augmentations: exact semantics of each op, presets and determinism."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from primus_jax import augment

B, T = 6, 250


@pytest.fixture
def x():
    return jnp.asarray(np.random.default_rng(0).normal(size=(B, T, 6)), jnp.float32)


def test_presets():
    assert augment.parse_ops("paper") == ("scaling", "time_reversal")
    assert augment.parse_ops("reference") == ("scaling_per_timestep", "permutation")
    assert augment.parse_ops("noise, rotation") == ("noise", "rotation")
    with pytest.raises(ValueError, match="unknown augmentation"):
        augment.parse_ops("scaling,jitter")


def test_time_reversal_and_negation(x):
    np.testing.assert_array_equal(augment.time_reversal(None, x), np.asarray(x)[:, ::-1])
    np.testing.assert_array_equal(augment.negation(None, x), -np.asarray(x))


def test_scaling_is_one_factor_per_sample_and_channel(x):
    y = augment.scaling(jax.random.key(1), x)
    ratio = np.asarray(y) / np.asarray(x)
    np.testing.assert_allclose(ratio, np.broadcast_to(ratio[:, :1, :], ratio.shape), rtol=1e-5)
    big = jnp.ones((4000, 2, 6), jnp.float32)
    f = np.asarray(augment.scaling(jax.random.key(2), big))[:, 0, :].ravel()
    assert abs(f.mean() - 1) < 0.02 and abs(f.std() - 0.25) < 0.02  # N(1, 0.25^2)


def test_reference_scaling_is_one_factor_per_time_step(x):
    y = augment.scaling_per_timestep(jax.random.key(1), x)
    ratio = np.asarray(y) / np.asarray(x)
    np.testing.assert_allclose(ratio, np.broadcast_to(ratio[:, :, :1], ratio.shape), rtol=1e-5)
    f = ratio[:, :, 0].ravel()
    assert abs(f.mean() - 1) < 0.05 and abs(f.std() - 0.25) < 0.03  # N(1, 0.25^2)


def test_noise_statistics(x):
    d = np.asarray(augment.noise(jax.random.key(2), x)) - np.asarray(x)
    assert abs(d.mean()) < 0.01 and abs(d.std() - 0.1) < 0.01


def test_permutation_rearranges_contiguous_segments():
    # With x[t] = t, the output is a concatenation of at most 5 increasing runs that together
    # use every time index exactly once.
    ramp = jnp.broadcast_to(jnp.arange(T, dtype=jnp.float32)[None, :, None], (B, T, 6))
    y = np.asarray(augment.permutation(jax.random.key(3), ramp))
    for s in range(B):
        seq = y[s, :, 0].astype(int)
        np.testing.assert_array_equal(np.sort(seq), np.arange(T))
        runs = 1 + np.sum(np.diff(seq) != 1)
        assert 1 <= runs <= 5
        np.testing.assert_array_equal(y[s], y[s, :, :1].repeat(6, 1))  # channels move together
    assert not np.array_equal(y[0], np.asarray(ramp[0]))


def test_rotation_is_orthonormal_and_shared_by_acc_and_gyro(x):
    r = np.asarray(augment.rotation_matrices(jax.random.key(4), 100))
    np.testing.assert_allclose(
        r @ r.transpose(0, 2, 1), np.broadcast_to(np.eye(3), r.shape), atol=1e-5
    )
    np.testing.assert_allclose(np.linalg.det(r), 1.0, atol=1e-5)
    y = np.asarray(augment.rotation(jax.random.key(5), x))
    xn = np.asarray(x)
    # norms preserved per sensor and time step
    np.testing.assert_allclose(
        np.linalg.norm(y[..., :3], axis=-1), np.linalg.norm(xn[..., :3], axis=-1), rtol=1e-4
    )
    np.testing.assert_allclose(
        np.linalg.norm(y[..., 3:], axis=-1), np.linalg.norm(xn[..., 3:], axis=-1), rtol=1e-4
    )
    # the same matrix maps acc and gyro: solve R from acc, apply it to gyro
    for s in range(B):
        rot, *_ = np.linalg.lstsq(xn[s, :, :3], y[s, :, :3], rcond=None)
        np.testing.assert_allclose(xn[s, :, 3:] @ rot, y[s, :, 3:], atol=1e-3)


def test_augment_is_deterministic_per_key_and_jittable(x):
    ops = augment.parse_ops("scaling,permutation,rotation,noise")
    f = jax.jit(lambda k, x: augment.augment(k, x, ops))
    a = f(jax.random.key(7), x)
    np.testing.assert_array_equal(a, f(jax.random.key(7), x))
    assert not np.allclose(a, f(jax.random.key(8), x))
    assert a.shape == x.shape


def test_paper_pair_composes_scaling_then_reversal(x):
    key = jax.random.key(9)
    y = augment.augment(key, x, augment.parse_ops("paper"))
    want = augment.time_reversal(None, augment.scaling(jax.random.fold_in(key, 0), x))
    np.testing.assert_allclose(y, want, rtol=1e-6)
