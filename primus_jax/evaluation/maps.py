"""2-D maps of test embeddings (t-SNE) for the few-shot report's picture.

:func:`embedding_map` subsamples a split's embeddings (seeded, stratified by class), embeds
them in 2-D with scikit-learn's ``TSNE`` and returns a JSON-ready record that the evaluation
stores in its run's ``notes["embedding_map"]``; ``plots.plot_dataset`` draws one panel per
run (encoder) next to the accuracy curves. scikit-learn is part of the ``[plots]`` extra.
"""

from __future__ import annotations

import numpy as np

from primus_jax.evaluation.zeroshot import l2_normalize


class MissingScikitLearn(ImportError):
    """scikit-learn is not installed."""


def subsample(y: np.ndarray, n: int, seed: int) -> np.ndarray:
    """Sorted indices of at most n rows, about ``n / C`` per class (all of a smaller class),
    the rest filled from the remaining rows; seeded, the same for every encoder."""
    y = np.asarray(y)
    if len(y) <= n:
        return np.arange(len(y))
    rng = np.random.default_rng([int(seed), 11])
    classes = np.unique(y)
    per = n // len(classes)
    take = [rng.permutation(np.flatnonzero(y == c))[:per] for c in classes]
    chosen = np.concatenate(take)
    rest = rng.permutation(np.setdiff1d(np.arange(len(y)), chosen))[: n - len(chosen)]
    return np.sort(np.concatenate([chosen, rest]))


def embedding_map(
    emb: np.ndarray,
    y: np.ndarray,
    *,
    n: int = 600,
    seed: int = 0,
    perplexity: float = 30.0,
    max_iter: int = 500,
) -> dict:
    """A t-SNE map of (at most n) L2-normalised embeddings.

    Args:
        emb: (N, D) embeddings (e.g. the test split's ``mmcl``).
        y: (N,) labels (negative = unlabelled; dropped).
        n: points in the map.
        seed: subsample and t-SNE seed.
        perplexity: t-SNE perplexity (lowered to ``(m - 1) / 3`` for m < 91 points).
        max_iter: t-SNE iterations (scikit-learn's minimum is 250).

    Returns:
        ``{"method": "tsne", "n", "seed", "perplexity", "max_iter", "xy": [[x, y], ...],
        "labels": [...]}``.
    """
    try:
        from sklearn.manifold import TSNE
        from threadpoolctl import threadpool_limits
    except ImportError as e:
        raise MissingScikitLearn(
            "embedding maps need scikit-learn: pip install 'primus_jax[plots]'"
        ) from e
    emb, y = np.asarray(emb, np.float32), np.asarray(y)
    keep = np.flatnonzero(y >= 0)
    idx = keep[subsample(y[keep], n, seed)]
    if len(idx) < 4:
        raise ValueError(f"need at least 4 labelled rows for a map, got {len(idx)}")
    perp = float(min(perplexity, (len(idx) - 1) / 3))
    tsne = TSNE(
        n_components=2, perplexity=perp, init="pca", max_iter=max_iter, random_state=int(seed)
    )
    # One OpenMP thread: beside JAX's thread pool, more spin-wait (20x slower on 2 cores), and
    # the map is then the same on every machine size.
    with threadpool_limits(1):
        xy = tsne.fit_transform(l2_normalize(emb[idx]).astype(np.float64))
    return {
        "method": "tsne",
        "n": len(idx),
        "seed": int(seed),
        "perplexity": perp,
        "max_iter": int(max_iter),
        "xy": np.round(xy, 3).tolist(),
        "labels": [int(v) for v in y[idx]],
    }
