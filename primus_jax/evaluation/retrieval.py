"""Cross-modal retrieval metrics (IMU -> text and text -> IMU): Recall@K, MRR, median rank.

N paired windows, cosine similarity. A hit is the paired item (``match="pair"``) or any item
of the same group (``match="group"``: same narration or class, for data whose windows share
sentences, which tie exactly). Rank = 1 + incorrect items scoring above the best correct one;
exact ties count against the query by default (``ties="pessimistic"``: a constant encoder
ranks N, not 1). Recall@K = mean(rank <= K); MRR = mean(1 / rank).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Literal

import numpy as np

Ties = Literal["pessimistic", "optimistic"]


def _normalize(x: np.ndarray) -> np.ndarray:
    x = np.asarray(x, dtype=np.float32)
    norm = np.linalg.norm(x, axis=-1, keepdims=True)
    return x / np.maximum(norm, 1e-12)


def ranks_from_similarity(
    sim: np.ndarray,
    correct: np.ndarray | None = None,
    *,
    ties: Ties = "pessimistic",
) -> np.ndarray:
    """1-based rank of the best correct gallery item for every query.

    Args:
        sim: (Q, G) similarity, higher = more similar.
        correct: (Q, G) bool, True where gallery item g is a correct answer for query q. Defaults
            to the identity (pair matching; needs Q == G).
        ties: how exact ties with incorrect items count (see module doc).

    Returns:
        (Q,) int64 ranks in ``[1, G]``.
    """
    sim = np.asarray(sim)
    if not np.issubdtype(sim.dtype, np.floating):
        sim = sim.astype(np.float64)  # float32 stays float32: no 2x copy of a large block
    if sim.ndim != 2:
        raise ValueError(f"sim must be 2-D, got shape {sim.shape}")
    if not np.all(np.isfinite(sim)):
        raise ValueError("sim contains NaN or inf")
    if correct is None:
        if sim.shape[0] != sim.shape[1]:
            raise ValueError("pair matching needs a square similarity matrix")
        correct = np.eye(sim.shape[0], dtype=bool)
    correct = np.asarray(correct, dtype=bool)
    if correct.shape != sim.shape:
        raise ValueError(f"correct {correct.shape} does not match sim {sim.shape}")
    if not correct.any(axis=1).all():
        raise ValueError("every query needs at least one correct gallery item")
    best = np.where(correct, sim, -np.inf).max(axis=1, keepdims=True)
    if ties == "pessimistic":
        above = (sim >= best) & ~correct
    elif ties == "optimistic":
        above = (sim > best) & ~correct
    else:
        raise ValueError(f"ties must be 'pessimistic' or 'optimistic', got {ties!r}")
    return 1 + above.sum(axis=1).astype(np.int64)


def metrics_from_ranks(ranks: np.ndarray, ks: Sequence[int] = (1, 5, 10)) -> dict[str, float]:
    """Recall@K for each K, MRR and median rank from 1-based ranks."""
    r = np.asarray(ranks, dtype=np.float64)
    if r.size == 0 or r.min() < 1:
        raise ValueError("ranks must be a non-empty array of values >= 1")
    out = {f"recall@{k}": float(np.mean(r <= k)) for k in ks}
    out["mrr"] = float(np.mean(1.0 / r))
    out["median_rank"] = float(np.median(r))
    return out


def _direction_ranks(
    queries: np.ndarray,
    gallery: np.ndarray,
    groups: np.ndarray | None,
    ties: Ties,
    chunk: int,
) -> np.ndarray:
    """Ranks for all queries, computing the (Q, G) similarity in row blocks to bound memory."""
    n = queries.shape[0]
    ranks = np.empty(n, dtype=np.int64)
    for start in range(0, n, chunk):
        stop = min(start + chunk, n)
        sim = queries[start:stop] @ gallery.T
        if groups is None:
            correct = np.zeros(sim.shape, dtype=bool)
            correct[np.arange(stop - start), np.arange(start, stop)] = True
        else:
            correct = groups[start:stop, None] == groups[None, :]
        ranks[start:stop] = ranks_from_similarity(sim, correct, ties=ties)
    return ranks


def retrieval_metrics(
    imu_emb: np.ndarray,
    text_emb: np.ndarray,
    *,
    match: Literal["pair", "group"] = "pair",
    groups: Sequence[object] | np.ndarray | None = None,
    ks: Sequence[int] = (1, 5, 10),
    ties: Ties = "pessimistic",
    chunk: int = 512,
) -> dict[str, dict[str, float]]:
    """Retrieval metrics in both directions for N paired IMU/text embeddings.

    Args:
        imu_emb: (N, D) IMU embeddings (any scale; L2-normalised here).
        text_emb: (N, D) text embeddings of the same windows, same order.
        match: ``"pair"`` or ``"group"`` (see module doc).
        groups: (N,) group id per pair (strings or ints); required for ``match="group"``.
        ks: cut-offs for Recall@K.
        ties: tie handling (see module doc).
        chunk: query rows per similarity block.

    Returns:
        ``{"imu_to_text": {...}, "text_to_imu": {...}}``, each with ``recall@K``, ``mrr``,
        ``median_rank`` and ``n`` (number of queries).
    """
    a, b = _normalize(imu_emb), _normalize(text_emb)
    if a.ndim != 2 or a.shape != b.shape:
        raise ValueError(f"imu_emb {a.shape} and text_emb {b.shape} must both be (N, D)")
    if match == "pair":
        group_ids = None
    elif match == "group":
        if groups is None or len(groups) != a.shape[0]:
            raise ValueError("match='group' needs one group id per pair")
        # Map arbitrary ids (e.g. narration strings) to ints once; comparisons are then cheap.
        group_ids = np.unique(np.asarray(groups), return_inverse=True)[1].ravel()
    else:
        raise ValueError(f"match must be 'pair' or 'group', got {match!r}")
    out = {}
    for name, q, g in (("imu_to_text", a, b), ("text_to_imu", b, a)):
        metrics = metrics_from_ranks(_direction_ranks(q, g, group_ids, ties, chunk), ks)
        metrics["n"] = int(a.shape[0])
        out[name] = metrics
    return out
