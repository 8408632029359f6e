"""Symmetric InfoNCE against a slow float64 numpy reference; masking; temperature grads."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from support.reference_impls import info_nce as numpy_info_nce

from primus_jax import losses


@pytest.mark.parametrize("b,d,tau", [(8, 16, 0.1), (5, 3, 0.5), (32, 64, 0.07)])
def test_matches_numpy_reference(b, d, tau):
    rng = np.random.default_rng(b * d)
    q, k = rng.normal(size=(b, d)), rng.normal(size=(b, d))
    got = losses.symmetric_info_nce(jnp.asarray(q), jnp.asarray(k), tau)
    np.testing.assert_allclose(got, numpy_info_nce(q, k, tau), rtol=2e-5)


def test_unmasked_equals_plain_symmetric_cross_entropy():
    # Without a mask the loss is exactly CE(rows) + CE(cols) of the reference.
    rng = np.random.default_rng(0)
    q, k = rng.normal(size=(6, 4)), rng.normal(size=(6, 4))
    qn = q / np.linalg.norm(q, axis=1, keepdims=True)
    kn = k / np.linalg.norm(k, axis=1, keepdims=True)
    logits = qn @ kn.T / 0.2
    lsm_rows = logits - np.log(np.exp(logits).sum(1, keepdims=True))
    lsm_cols = logits - np.log(np.exp(logits).sum(0, keepdims=True))
    want = -np.mean(np.diag(lsm_rows)) - np.mean(np.diag(lsm_cols))
    got = losses.symmetric_info_nce(jnp.asarray(q), jnp.asarray(k), 0.2)
    np.testing.assert_allclose(got, want, rtol=1e-5)


def test_masking_matches_reference_and_ignores_masked_keys():
    rng = np.random.default_rng(1)
    q, k = rng.normal(size=(10, 8)), rng.normal(size=(10, 8))
    mask = np.array([1, 0, 1, 1, 0, 1, 1, 1, 0, 1], bool)
    got = losses.symmetric_info_nce(jnp.asarray(q), jnp.asarray(k), 0.1, jnp.asarray(mask))
    np.testing.assert_allclose(got, numpy_info_nce(q, k, 0.1, mask), rtol=2e-5)
    # Masked keys are placeholders: changing them must not change the loss.
    k2 = k.copy()
    k2[~mask] = rng.normal(size=(int((~mask).sum()), 8)) * 100
    got2 = losses.symmetric_info_nce(jnp.asarray(q), jnp.asarray(k2), 0.1, jnp.asarray(mask))
    np.testing.assert_allclose(got, got2, rtol=1e-6)
    # ... while masked *queries* are still negatives for the key -> query direction.
    q2 = q.copy()
    q2[~mask] = rng.normal(size=(int((~mask).sum()), 8))
    got3 = losses.symmetric_info_nce(jnp.asarray(q2), jnp.asarray(k), 0.1, jnp.asarray(mask))
    assert abs(float(got3) - float(got)) > 1e-4


def test_all_masked_is_zero_with_zero_gradient():
    q = jnp.ones((4, 3))
    k = jnp.zeros((4, 3))
    mask = jnp.zeros((4,), bool)
    assert float(losses.symmetric_info_nce(q, k, 0.1, mask)) == 0.0
    g = jax.grad(lambda q: losses.symmetric_info_nce(q, k, 0.1, mask))(q)
    assert np.all(np.isfinite(g)) and np.all(g == 0)


def test_gradient_flows_to_temperature_and_matches_finite_difference():
    rng = np.random.default_rng(2)
    q, k = jnp.asarray(rng.normal(size=(8, 5))), jnp.asarray(rng.normal(size=(8, 5)))
    f = lambda log_tau: losses.symmetric_info_nce(
        q, k, losses.temperature({"log_tau_mm": log_tau}, "mm")
    )
    log_tau = jnp.log(0.1)
    g = jax.grad(f)(log_tau)
    assert abs(float(g)) > 1e-3
    eps = 1e-3
    fd = (f(log_tau + eps) - f(log_tau - eps)) / (2 * eps)
    np.testing.assert_allclose(g, fd, rtol=2e-2)


def test_temperature_stays_positive():
    assert float(losses.temperature({"log_tau_ss": jnp.asarray(-50.0)}, "ss")) > 0
    np.testing.assert_allclose(losses.temperature({"log_tau_ss": jnp.log(0.1)}, "ss"), 0.1, 1e-6)
    # raw: tau itself, clamped at tau_min so it never reaches 0 or turns negative.
    raw = {"tau_mm": jnp.asarray(-0.5)}
    np.testing.assert_allclose(losses.temperature(raw, "mm", tau_min=0.01), 0.01)
    np.testing.assert_allclose(losses.temperature({"tau_mm": jnp.asarray(0.3)}, "mm"), 0.3)


def test_perfect_alignment_gives_low_loss():
    e = np.eye(8) * 3
    low = float(losses.symmetric_info_nce(jnp.asarray(e), jnp.asarray(e), 0.05))
    chance = 2 * np.log(8)
    assert low < 0.01 * chance
