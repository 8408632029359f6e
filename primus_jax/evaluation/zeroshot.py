"""Zero-shot classification from per-class text-prompt embeddings.

A class vector is the mean of its L2-normalised prompt embeddings; windows are scored with their
L2-normalised ``mmcl`` embedding. ``renormalize=True`` (default) normalises the means (cosine
scores); ``False`` is the reference's dot product with the raw mean.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from primus_jax.evaluation import metrics as metrics_lib

ClassPrompts = np.ndarray | Sequence[np.ndarray]


def l2_normalize(x: object, eps: float = 1e-12) -> np.ndarray:
    """Row-wise L2 normalisation in float32; all-zero rows stay zero."""
    x = np.asarray(x, dtype=np.float32)
    return x / np.maximum(np.linalg.norm(x, axis=-1, keepdims=True), eps)


def class_embeddings(class_prompt_emb: ClassPrompts, *, renormalize: bool = True) -> np.ndarray:
    """One vector per class: the mean of that class's L2-normalised prompt embeddings.

    Args:
        class_prompt_emb: either a (C, D) array (one prompt per class), a (C, P, D) array, or a
            length-C sequence of (P_c, D) arrays (prompt counts may differ between classes).
        renormalize: L2-normalise the class means (cosine scoring). ``False`` matches the
            reference.

    Returns:
        (C, D) float32 class vectors.
    """
    if isinstance(class_prompt_emb, list | tuple):
        groups = [np.asarray(g, dtype=np.float32) for g in class_prompt_emb]
    else:  # one NumPy/JAX array: (C, D) = one prompt per class, or (C, P, D)
        arr = np.asarray(class_prompt_emb, dtype=np.float32)
        if arr.ndim not in (2, 3):
            raise ValueError(f"prompt embeddings must be (C, D) or (C, P, D), got {arr.shape}")
        groups = list(arr[:, None, :] if arr.ndim == 2 else arr)
    if not groups:
        raise ValueError("no classes given")
    dims = {g.shape[-1] for g in groups}
    if any(g.ndim != 2 or g.shape[0] == 0 for g in groups) or len(dims) != 1:
        raise ValueError("each class needs a non-empty (P_c, D) array with one common D")
    means = np.stack([l2_normalize(g).mean(axis=0) for g in groups])
    return l2_normalize(means) if renormalize else means.astype(np.float32)


def zeroshot_logits(emb: object, class_emb: np.ndarray) -> np.ndarray:
    """Scores (N, C) = L2-normalised embeddings x class vectors.

    Args:
        emb: (N, D) window embeddings in the text space (e.g. the ``mmcl`` head output).
        class_emb: (C, D) from :func:`class_embeddings`.

    Returns:
        (N, C) float32 scores (cosines when ``class_emb`` is normalised).
    """
    x = l2_normalize(emb)
    class_emb = np.asarray(class_emb, dtype=np.float32)
    if x.ndim != 2 or class_emb.ndim != 2 or x.shape[1] != class_emb.shape[1]:
        raise ValueError(
            f"embeddings {x.shape} and class vectors {class_emb.shape} must share the dimension D;"
            " zero-shot needs embeddings in the text space (the mmcl head output)"
        )
    return x @ class_emb.T


def zeroshot_predict(
    emb: object, class_prompt_emb: ClassPrompts, *, renormalize: bool = True
) -> np.ndarray:
    """Predicted class = argmax over classes of the zero-shot score (ties -> lowest index)."""
    logits = zeroshot_logits(emb, class_embeddings(class_prompt_emb, renormalize=renormalize))
    return np.argmax(logits, axis=1).astype(np.int64)


def zeroshot_evaluate(
    emb: object,
    labels: object,
    class_prompt_emb: ClassPrompts,
    *,
    renormalize: bool = True,
) -> dict[str, float]:
    """Zero-shot accuracy, macro-F1 and balanced accuracy on a labelled set."""
    labels = np.asarray(labels)
    preds = zeroshot_predict(emb, class_prompt_emb, renormalize=renormalize)
    num_classes = len(class_prompt_emb)
    return metrics_lib.classification_metrics(labels, preds, num_classes)
