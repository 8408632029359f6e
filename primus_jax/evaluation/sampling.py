"""K-shot sampling of training windows (scheme ``primus_jax.kshot/1``) and subject-wise splits.

Trial t of run seed s permutes each class c's train windows with ``default_rng([s, t, c])``;
the k-shot set is the first k of each permutation (all of them if fewer, recorded). The sets
are nested across k and identical for every method and encoder, so comparisons are paired;
only the train split is ever sampled. Details: docs/evaluation.md.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping, Sequence

import numpy as np

SAMPLER_VERSION = "primus_jax.kshot/1"


@dataclasses.dataclass(frozen=True)
class KShotSample:
    """The windows drawn for one (seed, trial, k).

    Attributes:
        indices: (n,) int64 indices into the train arrays, grouped by class (class 0 first).
        shots_per_class: (C,) number of windows actually drawn per class (``min(k, available)``).
        truncated_classes: classes that had fewer than ``k`` windows, so all were taken.
    """

    indices: np.ndarray
    shots_per_class: np.ndarray
    truncated_classes: tuple[int, ...]


def _check_seed(value: int, name: str) -> int:
    if int(value) != value or value < 0:
        raise ValueError(f"{name} must be a non-negative integer, got {value!r}")
    return int(value)


def class_permutations(
    labels: np.ndarray, num_classes: int, *, seed: int, trial: int
) -> list[np.ndarray]:
    """Per-class random orderings of the labelled train windows for one trial.

    Args:
        labels: (N,) integer labels of the train split; negative values mean unlabelled.
        num_classes: number of classes C; labels must lie in ``[-inf, C)``.
        seed: run seed (non-negative).
        trial: trial number (non-negative).

    Returns:
        C arrays; entry c is a permutation of ``np.flatnonzero(labels == c)``.
    """
    labels = np.asarray(labels)
    if labels.ndim != 1 or not np.issubdtype(labels.dtype, np.integer):
        raise ValueError(f"labels must be a 1-D integer array, got {labels.dtype} {labels.shape}")
    if labels.size and labels.max() >= num_classes:
        raise ValueError(f"label {labels.max()} out of range for num_classes={num_classes}")
    seed = _check_seed(seed, "seed")
    trial = _check_seed(trial, "trial")
    perms = []
    for c in range(num_classes):
        rng = np.random.default_rng([seed, trial, c])
        perms.append(rng.permutation(np.flatnonzero(labels == c)))
    return perms


def take_kshot(perms: Sequence[np.ndarray], k: int) -> KShotSample:
    """Takes the first ``k`` windows of each class ordering (all of them if fewer).

    Args:
        perms: per-class orderings from :func:`class_permutations`.
        k: shots per class (>= 1).

    Returns:
        The drawn sample.
    """
    if int(k) != k or k < 1:
        raise ValueError(f"k must be a positive integer, got {k!r}")
    chosen = [p[:k] for p in perms]
    counts = np.array([len(c) for c in chosen], dtype=np.int64)
    truncated = tuple(int(c) for c in np.flatnonzero(counts < k))
    indices = np.concatenate(chosen).astype(np.int64) if chosen else np.zeros(0, np.int64)
    return KShotSample(indices=indices, shots_per_class=counts, truncated_classes=truncated)


def sample_kshot(
    labels: np.ndarray, k: int, *, seed: int, trial: int = 0, num_classes: int | None = None
) -> KShotSample:
    """Draws k windows per class from the train split without replacement.

    Args:
        labels: (N,) integer labels of the TRAIN split only; negative values are never drawn.
        k: shots per class.
        seed: run seed.
        trial: trial number; trials of one seed are independent draws.
        num_classes: C; defaults to ``labels.max() + 1``.

    Returns:
        A :class:`KShotSample`; same arguments always give the same indices.
    """
    labels = np.asarray(labels)
    if num_classes is None:
        num_classes = int(labels.max()) + 1 if labels.size else 0
    return take_kshot(class_permutations(labels, num_classes, seed=seed, trial=trial), k)


def split_by_subject(
    subjects: Sequence[str] | np.ndarray,
    fractions: Mapping[str, float] | None = None,
    *,
    seed: int = 0,
) -> dict[str, np.ndarray]:
    """Splits windows into disjoint subject groups (for data that only has ``subject``).

    Subjects, not windows, are shuffled and assigned: the unique subject ids are sorted (so the
    result does not depend on window order), permuted with ``np.random.default_rng(seed)``, and
    consecutive blocks of ``round(fraction * n_subjects)`` subjects (at least one) go to each split
    in the order given; the last split takes the rest. Fractions therefore refer to subjects; the
    window fractions follow from how many windows each subject has.

    Args:
        subjects: (N,) subject id per window.
        fractions: split name -> fraction of subjects; default ``{"train": 0.75, "test": 0.25}``.
        seed: non-negative seed.

    Returns:
        Split name -> sorted int64 window indices. No subject appears in two splits.
    """
    fractions = dict(fractions or {"train": 0.75, "test": 0.25})
    if any(f <= 0 for f in fractions.values()) or abs(sum(fractions.values()) - 1.0) > 1e-6:
        raise ValueError(f"fractions must be positive and sum to 1, got {fractions}")
    subjects = np.asarray(subjects)
    uniq, inverse = np.unique(subjects, return_inverse=True)
    if len(uniq) < len(fractions):
        raise ValueError(f"{len(uniq)} subjects cannot fill {len(fractions)} disjoint splits")
    order = np.random.default_rng(_check_seed(seed, "seed")).permutation(len(uniq))
    names = list(fractions)
    out, start = {}, 0
    for i, name in enumerate(names):
        remaining_splits = len(names) - i - 1
        if remaining_splits == 0:
            n = len(uniq) - start
        else:
            n = max(1, round(fractions[name] * len(uniq)))
            n = min(n, len(uniq) - start - remaining_splits)  # leave one subject per later split
        chosen = order[start : start + n]
        start += n
        out[name] = np.flatnonzero(np.isin(inverse, chosen)).astype(np.int64)
    return out
