"""Fitting a probe, optionally choosing its L2 penalty by cross-validation on the k shots.

With ``l2_grid`` set, the penalty is chosen per trial by stratified CV inside the k-shot set
(the test split is never seen): the i-th window of each class goes to fold ``i % F``,
``F = min(cv_folds, smallest class count)`` (no CV below 2, e.g. k = 1), pooled held-out
accuracy decides, ties go to the larger penalty; then the probe is refitted on all k shots.
"""

from __future__ import annotations

import dataclasses

import numpy as np

from primus_jax.evaluation import probe as probe_lib
from primus_jax.evaluation.zeroshot import l2_normalize

ProbeConfig = probe_lib.LogisticConfig | probe_lib.RidgeConfig


def stratified_folds(y: np.ndarray, num_classes: int, n_folds: int) -> np.ndarray:
    """Fold id per window: the i-th window of each class (in the given order) -> ``i % n_folds``."""
    folds = np.empty(len(y), np.int64)
    for c in range(num_classes):
        idx = np.flatnonzero(y == c)
        folds[idx] = np.arange(len(idx)) % n_folds
    return folds


def _ridge_cv_correct(
    x: np.ndarray, y: np.ndarray, num_classes: int, cfg: probe_lib.RidgeConfig, folds: np.ndarray
) -> np.ndarray:
    """Held-out correct counts per grid value, one eigendecomposition per fold."""
    xn = l2_normalize(x) if cfg.normalize else x
    correct = np.zeros(len(cfg.l2_grid), np.int64)
    for f in range(folds.max() + 1):
        train, held = folds != f, folds == f
        cache = probe_lib.ridge_cache(
            xn[train], y[train], num_classes, whiten=cfg.whiten, bias_constant=cfg.bias_constant
        )
        for i, l2 in enumerate(cfg.l2_grid):
            w, b = probe_lib.ridge_solve(cache, l2)
            correct[i] += np.sum(np.argmax(xn[held] @ w.T + b, axis=1) == y[held])
    return correct


def _logistic_cv_correct(
    x: np.ndarray,
    y: np.ndarray,
    num_classes: int,
    cfg: probe_lib.LogisticConfig,
    folds: np.ndarray,
    init_weights: np.ndarray | None,
    device: object,
) -> np.ndarray:
    """Held-out correct counts per grid value (one L-BFGS fit per fold and value).

    Within a fold the grid is walked from the largest penalty down, each fit starting from the
    previous solution (a regularisation path), which cuts L-BFGS iterations.
    """
    correct = np.zeros(len(cfg.l2_grid), np.int64)
    path = np.argsort(-np.asarray(cfg.l2_grid), kind="stable")
    for f in range(folds.max() + 1):
        train, held = folds != f, folds == f
        previous = None
        for i in path:
            fitted = probe_lib.fit_logistic(
                x[train],
                y[train],
                num_classes,
                config=dataclasses.replace(cfg, l2=float(cfg.l2_grid[i])),
                init_weights=init_weights,
                warm_start=previous,
                device=device,
            )
            correct[i] += np.sum(fitted.predict(x[held]) == y[held])
            previous = fitted
    return correct


def fit_probe(
    x: np.ndarray,
    y: np.ndarray,
    num_classes: int,
    config: ProbeConfig,
    *,
    init_weights: np.ndarray | None = None,
    device: object = None,
) -> probe_lib.LinearProbe:
    """Fits a logistic or ridge probe, selecting ``l2`` by CV when ``config.l2_grid`` is set.

    Args:
        x: (n, D) train embeddings (the k-shot set).
        y: (n,) labels; every class in ``range(num_classes)`` must occur.
        num_classes: C.
        config: :class:`LogisticConfig` or :class:`RidgeConfig`.
        init_weights: logistic only: (C, D) starting weights / prior centre.
        device: logistic only: where to run the solver.

    Returns:
        The probe fitted on all of ``x`` with the chosen penalty. ``info`` gains ``l2``,
        ``l2_source`` and, after CV, ``cv_folds`` and ``cv_accuracy`` (one per grid value).
    """
    x, y = np.asarray(x, np.float32), np.asarray(y, np.int64)
    counts = np.bincount(y, minlength=num_classes)
    n_folds = min(config.cv_folds, int(counts.min()))
    cv = {}
    l2, source = config.l2, "default"
    if config.l2_grid and n_folds >= 2:
        folds = stratified_folds(y, num_classes, n_folds)
        if isinstance(config, probe_lib.RidgeConfig):
            correct = _ridge_cv_correct(x, y, num_classes, config, folds)
        else:
            correct = _logistic_cv_correct(x, y, num_classes, config, folds, init_weights, device)
        # Largest penalty among the best: argmax over the grid sorted by decreasing l2.
        order = np.argsort(-np.asarray(config.l2_grid), kind="stable")
        l2 = float(config.l2_grid[order[np.argmax(correct[order])]])
        source = "cv"
        cv = {"cv_folds": n_folds, "cv_accuracy": (correct / len(y)).tolist()}
    chosen = dataclasses.replace(config, l2=l2)
    if isinstance(config, probe_lib.RidgeConfig):
        fitted = probe_lib.fit_ridge(x, y, num_classes, config=chosen)
    else:
        fitted = probe_lib.fit_logistic(
            x, y, num_classes, config=chosen, init_weights=init_weights, device=device
        )
    fitted.info.update({"l2": float(l2), "l2_source": source, **cv})
    return fitted
