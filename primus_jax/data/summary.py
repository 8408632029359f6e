"""What the NN checks need to know about a training split, from a bounded sample of its rows
(``config.nn_supervision_warnings``)."""

from __future__ import annotations

import numpy as np

SUMMARY_SAMPLE = 2048  # rows read to estimate the summary


def summarize_rows(rows: dict, num_examples: int) -> dict:
    """The number of segments, the fraction with video, and the fraction of texts that repeat
    another text of the sample (templated text)."""
    has_text = np.asarray(rows["has_text"], bool)
    text = np.asarray(rows["text"], np.float32)[has_text]
    dup = 0.0
    if len(text) > 1:
        t = text / np.maximum(np.linalg.norm(text, axis=1, keepdims=True), 1e-12)
        gram = t @ t.T
        np.fill_diagonal(gram, -1.0)
        dup = float(np.mean(gram.max(axis=1) >= 1.0 - 1e-5))
    return {
        "num_examples": int(num_examples),
        "video_frac": float(np.mean(rows["has_video"])) if len(rows["has_video"]) else 0.0,
        "text_duplicate_frac": dup,
    }


def sample_indices(n: int, k: int = SUMMARY_SAMPLE) -> np.ndarray:
    return np.unique(np.linspace(0, n - 1, min(n, k)).astype(np.int64))
