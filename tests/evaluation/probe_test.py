"""Logistic and ridge probes against slow NumPy references; zero-shot on constructed vectors.

Shapes stay at D = 16, C = 4 and n <= 256 so every logistic fit reuses one compiled solver.
"""

import jax.numpy as jnp
import numpy as np
import pytest

from primus_jax.evaluation import probe, zeroshot

D, C = 16, 4


def _problem(n, seed=0, spread=0.7):
    rng = np.random.default_rng(seed)
    y = np.arange(n) % C
    x = rng.normal(size=(C, D))[y] + spread * rng.normal(size=(n, D))
    return x.astype(np.float32), y


def _normalize(x):
    return x / np.linalg.norm(x, axis=1, keepdims=True)


def _objective(x, y, w, b, lam, w_prior):
    """Scaled MAP objective in float64: mean CE + lam / (2n) ||W - W_prior||^2."""
    logits = x @ w.T + b
    logits = logits - logits.max(1, keepdims=True)
    logp = logits - np.log(np.exp(logits).sum(1, keepdims=True))
    n = len(y)
    return -logp[np.arange(n), y].mean() + 0.5 * lam / n * np.sum((w - w_prior) ** 2)


def _numpy_gradient_descent(x, y, lam, w0, steps=20000, lr=0.5):
    """Plain full-batch gradient descent in float64: slow but obviously right."""
    n = len(y)
    onehot = np.eye(C)[y]
    w, b = w0.astype(np.float64).copy(), np.zeros(C)
    for _ in range(steps):
        logits = x @ w.T + b
        p = np.exp(logits - logits.max(1, keepdims=True))
        p /= p.sum(1, keepdims=True)
        g = (p - onehot) / n
        w -= lr * (g.T @ x + lam / n * (w - w0))
        b -= lr * g.sum(0)
    return w, b


def test_logistic_matches_numpy_gradient_descent():
    x, y = _problem(12)
    xn = _normalize(x.astype(np.float64))
    fitted = probe.fit_logistic(x, y, C, config=probe.LogisticConfig(l2=1.0))
    assert fitted.info["converged"] and fitted.info["padded_n"] == 256
    w_ref, b_ref = _numpy_gradient_descent(xn, y, 1.0, np.zeros((C, D)))
    np.testing.assert_allclose(fitted.weights, w_ref, atol=2e-4)
    np.testing.assert_allclose(fitted.bias, b_ref, atol=2e-4)
    # The reported objective (computed on the zero-padded problem) equals the unpadded one,
    # and it is below the starting value log(C) at W = 0, b = 0.
    obj = _objective(xn, y, fitted.weights, fitted.bias, 1.0, 0.0)
    assert fitted.info["objective"] == pytest.approx(obj, rel=1e-5)
    assert obj < np.log(C) - 0.1


def test_logistic_prior_centred_on_init():
    x, y = _problem(40, seed=1)
    xn = _normalize(x.astype(np.float64))
    w0 = np.random.default_rng(2).normal(size=(C, D)).astype(np.float32)
    cfg = probe.LogisticConfig(l2=0.5, prior="init")
    fitted = probe.fit_logistic(x, y, C, config=cfg, init_weights=w0)
    w_ref, b_ref = _numpy_gradient_descent(xn, y, 0.5, w0.astype(np.float64))
    np.testing.assert_allclose(fitted.weights, w_ref, atol=3e-4)
    np.testing.assert_allclose(fitted.bias, b_ref, atol=3e-4)
    # A very strong prior pins the weights to its centre: the init, or zero.
    strong = probe.fit_logistic(
        x, y, C, config=probe.LogisticConfig(l2=1e6, prior="init"), init_weights=w0
    )
    np.testing.assert_allclose(strong.weights, w0, atol=1e-3)
    strong_zero = probe.fit_logistic(
        x, y, C, config=probe.LogisticConfig(l2=1e6, prior="zero"), init_weights=w0
    )
    np.testing.assert_allclose(strong_zero.weights, 0.0, atol=1e-3)


def test_logistic_without_bias_and_rejections():
    x, y = _problem(20, seed=3)
    fitted = probe.fit_logistic(x, y, C, config=probe.LogisticConfig(fit_bias=False))
    assert fitted.info["converged"]
    np.testing.assert_array_equal(fitted.bias, np.zeros(C))
    with pytest.raises(ValueError):
        probe.fit_logistic(x, y, 3)  # label 3 out of range
    with pytest.raises(ValueError):
        probe.fit_logistic(x, y, C, init_weights=np.zeros((C, D + 1)))
    with pytest.raises(ValueError):
        probe.fit_logistic(np.full_like(x, np.nan), y, C)


def test_bucket_sizes():
    assert [probe.bucket_size(n) for n in (1, 256, 257, 1024, 1025, 4000)] == [
        256,
        256,
        1024,
        1024,
        4096,
        4096,
    ]


def _f32_normalize(x):
    # The probe L2-normalises in float32 (embeddings are float32); start the float64 reference
    # from the same values so the comparison isolates the linear algebra.
    return zeroshot.l2_normalize(x).astype(np.float64)


def _ridge_reference(x, y, l2, whiten=True, bias_constant=100.0):
    """Ridge via the textbook normal equations on explicitly standardised features."""
    x = _f32_normalize(x)
    mean = x.mean(0) if whiten else 0.0
    std = x.std(0) + 1e-5 if whiten else 1.0
    xw = np.hstack([(x - mean) / std, np.full((len(x), 1), bias_constant)])
    targets = 2 * np.eye(C)[y] - 1
    w = np.linalg.solve(xw.T @ xw + l2 * np.eye(xw.shape[1]), xw.T @ targets)

    def logits(x_new):
        x_new = _f32_normalize(x_new)
        return np.hstack([(x_new - mean) / std, np.full((len(x_new), 1), bias_constant)]) @ w

    return logits


@pytest.mark.parametrize("n", [8, 60])  # dual (n < D + 1) and primal (n >= D + 1) branches
@pytest.mark.parametrize("whiten", [True, False])
def test_ridge_matches_normal_equations(n, whiten):
    x, y = _problem(n, seed=4)
    x_test, _ = _problem(30, seed=5)
    cfg = probe.RidgeConfig(l2=3.0, whiten=whiten)
    fitted = probe.fit_ridge(x, y, C, config=cfg)
    reference = _ridge_reference(x, y, 3.0, whiten=whiten)
    np.testing.assert_allclose(fitted.logits(x_test), reference(x_test), rtol=1e-7, atol=1e-9)
    # The cached eigendecomposition gives the same solution at any penalty.
    cache = probe.ridge_cache(_f32_normalize(x), y, C, whiten=whiten, bias_constant=100.0)
    for l2 in (3.0, 1024.0):
        w, b = probe.ridge_solve(cache, l2)
        expected = _ridge_reference(x, y, l2, whiten=whiten)(x_test)
        np.testing.assert_allclose(_f32_normalize(x_test) @ w.T + b, expected, rtol=1e-7, atol=1e-9)


def test_probes_separate_separable_data():
    x, y = _problem(40, seed=6, spread=0.05)
    x_test, y_test = _problem(200, seed=6, spread=0.05)
    for fitted in (probe.fit_logistic(x, y, C), probe.fit_ridge(x, y, C)):
        assert np.mean(fitted.predict(x_test) == y_test) == 1.0


def test_zeroshot_on_constructed_embeddings():
    basis = np.eye(D, dtype=np.float32)[:C]
    # Classes get different numbers of prompts, all near their basis vector.
    rng = np.random.default_rng(7)
    prompts = [basis[c] + 0.05 * rng.normal(size=(c + 2, D)) for c in range(C)]
    y = np.repeat(np.arange(C), 5)
    emb = 3.0 * basis[y] + 0.1 * rng.normal(size=(len(y), D))  # the scale must not matter
    np.testing.assert_array_equal(zeroshot.zeroshot_predict(emb, prompts), y)
    assert zeroshot.zeroshot_evaluate(emb, y, prompts)["accuracy"] == 1.0
    class_vecs = zeroshot.class_embeddings(prompts)
    np.testing.assert_allclose(np.linalg.norm(class_vecs, axis=1), 1.0, rtol=1e-6)


def test_zeroshot_cosine_versus_reference_dot_product():
    # Class A's prompts (e0, e1) disagree, so their mean (0.5, 0.5) is short; class B's single
    # prompt is at 30 degrees. For x at 45 degrees the cosine picks A (cos 0 = 1 > cos 15), the
    # reference's unnormalised dot product picks B (0.707 < 0.966).
    a = np.array([[1.0, 0.0], [0.0, 1.0]])
    b = np.array([[np.cos(np.pi / 6), np.sin(np.pi / 6)]])
    x = np.array([[1.0, 1.0]])
    assert zeroshot.zeroshot_predict(x, [a, b]).tolist() == [0]
    assert zeroshot.zeroshot_predict(x, [a, b], renormalize=False).tolist() == [1]
    with pytest.raises(ValueError):
        zeroshot.zeroshot_logits(np.ones((2, 3)), zeroshot.class_embeddings([a, b]))


def test_class_embeddings_accept_arrays_and_ragged_lists():
    rng = np.random.default_rng(8)
    stacked = rng.normal(size=(C, 3, D)).astype(np.float32)
    from_jax = zeroshot.class_embeddings(jnp.asarray(stacked))
    from_list = zeroshot.class_embeddings([stacked[c] for c in range(C)])
    np.testing.assert_allclose(from_jax, from_list, rtol=1e-6)
    one_each = zeroshot.class_embeddings(jnp.asarray(stacked[:, 0]))  # (C, D)
    np.testing.assert_allclose(one_each, zeroshot.l2_normalize(stacked[:, 0]), rtol=1e-6)
    ragged = [stacked[c, : c % 3 + 1] for c in range(C)]
    expected = np.stack([zeroshot.l2_normalize(g).mean(0) for g in ragged])
    np.testing.assert_allclose(
        zeroshot.class_embeddings(ragged, renormalize=False), expected, rtol=1e-6
    )
    with pytest.raises(ValueError):
        zeroshot.class_embeddings(np.zeros(D))
