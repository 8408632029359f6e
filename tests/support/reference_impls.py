"""Slow, independent numpy references shared by several tests."""

import numpy as np


def info_nce(q, k, tau, mask=None):
    """Symmetric InfoNCE written loop by loop (see losses_test for its own checks)."""
    q = np.asarray(q, np.float64)
    k = np.asarray(k, np.float64)
    b = len(q)
    mask = np.ones(b, bool) if mask is None else np.asarray(mask, bool)
    qn = q / np.maximum(np.linalg.norm(q, axis=1, keepdims=True), 1e-12)
    kn = k / np.maximum(np.linalg.norm(k, axis=1, keepdims=True), 1e-12)
    sim = np.array([[qn[i] @ kn[j] for j in range(b)] for i in range(b)]) / tau
    rows, cols = [], []
    for i in range(b):
        if not mask[i]:
            continue
        denom = sum(np.exp(sim[i, j]) for j in range(b) if mask[j])
        rows.append(-np.log(np.exp(sim[i, i]) / denom))
        denom = sum(np.exp(sim[j, i]) for j in range(b))
        cols.append(-np.log(np.exp(sim[i, i]) / denom))
    if not rows:
        return 0.0
    return float(np.mean(rows) + np.mean(cols))


def nearest_video_neighbour(video, bank, bank_ok):
    """Top-1 cosine neighbour among admissible bank rows; -1 when none."""
    out = []
    for v in np.asarray(video, np.float64):
        best, best_j = -np.inf, -1
        for j, (row, ok) in enumerate(zip(np.asarray(bank, np.float64), bank_ok)):
            if not ok:
                continue
            s = v @ row / (np.linalg.norm(v) * max(np.linalg.norm(row), 1e-12))
            if s > best:
                best, best_j = s, j
        out.append(best_j)
    return np.array(out)
