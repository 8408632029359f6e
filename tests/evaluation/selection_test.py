"""Cross-validated choice of the probe penalty, checked against a by-hand fold loop."""

import numpy as np

from primus_jax.evaluation import probe, selection

D, C = 16, 4


def _problem(per_class, seed, spread):
    rng = np.random.default_rng(seed)
    y = np.tile(np.arange(C), per_class)
    x = rng.normal(size=(C, D))[y] + spread * rng.normal(size=(len(y), D))
    return x.astype(np.float32), y


def test_stratified_folds_by_hand():
    y = np.array([0, 1, 0, 0, 1, 2, 2, 0])
    # Class 0 at positions 0, 2, 3, 7 -> folds 0, 1, 2, 0; class 1 at 1, 4 -> 0, 1; class 2 -> 0, 1.
    np.testing.assert_array_equal(selection.stratified_folds(y, 3, 3), [0, 0, 1, 2, 1, 0, 1, 0])


def test_ridge_cv_matches_manual_fold_loop():
    x, y = _problem(per_class=6, seed=0, spread=1.5)
    grid = (0.25, 4.0, 64.0, 1024.0)
    cfg = probe.RidgeConfig(l2_grid=grid, cv_folds=3)
    fitted = selection.fit_probe(x, y, C, cfg)
    folds = np.tile(np.repeat(np.arange(3), C), 2)  # i-th window of each class -> fold i % 3
    np.testing.assert_array_equal(folds, selection.stratified_folds(y, C, 3))
    correct = np.zeros(len(grid))
    for f in range(3):
        train, held = folds != f, folds == f
        for i, l2 in enumerate(grid):
            p = probe.fit_ridge(x[train], y[train], C, config=probe.RidgeConfig(l2=l2))
            correct[i] += np.sum(p.predict(x[held]) == y[held])
    np.testing.assert_allclose(fitted.info["cv_accuracy"], correct / len(y))
    best = max(l2 for l2, c in zip(grid, correct) if c == correct.max())  # ties -> larger l2
    assert fitted.info["l2"] == best and fitted.info["l2_source"] == "cv"
    assert fitted.info["cv_folds"] == 3
    refit = probe.fit_ridge(x, y, C, config=probe.RidgeConfig(l2=best))
    np.testing.assert_allclose(fitted.weights, refit.weights)


def test_logistic_cv_ties_go_to_the_larger_penalty_and_k1_falls_back():
    x, y = _problem(per_class=4, seed=1, spread=0.02)  # separable: every penalty scores 100%
    cfg = probe.LogisticConfig(l2=0.5, l2_grid=(0.1, 3.0), cv_folds=2)
    fitted = selection.fit_probe(x, y, C, cfg)
    assert fitted.info["cv_accuracy"] == [1.0, 1.0]
    assert fitted.info["l2"] == 3.0 and fitted.info["converged"]
    one_shot = selection.fit_probe(x[:C], y[:C], C, cfg)  # one window per class: no split
    assert one_shot.info["l2"] == 0.5 and one_shot.info["l2_source"] == "default"


def test_warm_start_reaches_the_same_solution():
    x, y = _problem(per_class=5, seed=2, spread=1.0)
    cfg = probe.LogisticConfig(l2=0.3)
    cold = probe.fit_logistic(x, y, C, config=cfg)
    start = probe.fit_logistic(x, y, C, config=probe.LogisticConfig(l2=30.0))
    warm = probe.fit_logistic(x, y, C, config=cfg, warm_start=start)
    assert warm.info["converged"]
    np.testing.assert_allclose(warm.weights, cold.weights, atol=5e-4)
    np.testing.assert_allclose(warm.bias, cold.bias, atol=5e-4)
