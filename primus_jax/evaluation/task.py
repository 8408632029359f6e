"""One dataset made ready for the k-shot trial loop: validated, id-ordered, leakage-checked.

:func:`prepare` turns train/test embeddings (and, for methods that train the encoder, the raw
windows) into a :class:`Task`, which every evaluator plug-in reads; :class:`Draw` is one k-shot
set handed to a plug-in. Unlabelled windows (label < 0) are dropped here, once for everyone.
"""

from __future__ import annotations

import dataclasses
import hashlib

import numpy as np
from absl import logging

from primus_jax.evaluation import probe as probe_lib
from primus_jax.evaluation import sampling
from primus_jax.evaluation import zeroshot as zeroshot_lib


@dataclasses.dataclass
class Task:
    """The labelled part of one dataset, as every method sees it.

    Attributes:
        train_x: (N_train, D) float32 embeddings of the k-shot pool (flattened windows when
            no embeddings were given).
        train_y: (N_train,) int64 labels in ``[0, num_classes)``.
        test_x: (N_test, D) float32 embeddings; every row is scored.
        test_y: (N_test,) int64 labels.
        num_classes: C.
        facts: the dataset facts of the report (counts, fingerprint, checks, embedding_dim).
        train_windows: (N_train, T, 6) float32 windows in the same order, or None.
        test_windows: (N_test, T, 6) float32 windows, or None.
        class_vecs: (C, D) zero-shot class vectors of the run, or None without prompts.
    """

    train_x: np.ndarray
    train_y: np.ndarray
    test_x: np.ndarray
    test_y: np.ndarray
    num_classes: int
    facts: dict
    train_windows: np.ndarray | None = None
    test_windows: np.ndarray | None = None
    class_vecs: np.ndarray | None = None
    _test_xn: np.ndarray | None = dataclasses.field(default=None, repr=False)

    def predict(self, fitted: probe_lib.LinearProbe) -> np.ndarray:
        """(N_test,) predictions of a linear probe; the normalised test set is computed once."""
        if not fitted.normalize:
            return fitted.predict(self.test_x)
        if self._test_xn is None:
            self._test_xn = zeroshot_lib.l2_normalize(self.test_x)
        return dataclasses.replace(fitted, normalize=False).predict(self._test_xn)


@dataclasses.dataclass(frozen=True)
class Draw:
    """One k-shot training set: trial ``trial`` of run seed ``seed`` at ``k`` shots per class.

    ``sample`` is None for zero-shot methods (k = 0, no training windows).
    """

    seed: int
    trial: int
    k: int
    sample: sampling.KShotSample | None


def _labels(y: object, name: str) -> np.ndarray:
    y = np.asarray(y)
    if y.ndim != 1 or not np.issubdtype(y.dtype, np.integer):
        raise ValueError(f"{name} must be a 1-D integer array, got {y.dtype} {y.shape}")
    return y.astype(np.int64)


def _fingerprint(*arrays: np.ndarray | None) -> str:
    """SHA-256 over labels (and ids): lets merged reports prove they used the same splits."""
    h = hashlib.sha256()
    for a in arrays:
        h.update(b"|")  # separator, so (x, None) and (None, x) hash differently
        if a is not None:
            a = np.asarray(a)
            h.update(a.astype(str if a.dtype.kind in "OUS" else np.int64).tobytes())
    return h.hexdigest()


def _row_hashes(x: np.ndarray, chunk: int = 65536) -> np.ndarray:
    """(N,) uint64 hash of each row's bytes: a fixed random linear form over its 32-bit words.

    Vectorised and memory-light; equal rows always hash equal (arithmetic wraps mod 2**64),
    and collisions of unequal rows are ruled out by an exact comparison afterwards.
    """
    words = np.ascontiguousarray(x, dtype=np.float32).view(np.uint32)
    coeffs = np.random.default_rng(0).integers(1, 2**63, size=words.shape[1], dtype=np.uint64)
    coeffs |= np.uint64(1)  # odd multipliers
    out = np.empty(len(words), np.uint64)
    for start in range(0, len(words), chunk):
        block = words[start : start + chunk].astype(np.uint64)
        out[start : start + chunk] = (block * coeffs).sum(axis=1, dtype=np.uint64)
    return out


def _count_identical_rows(train: np.ndarray, test: np.ndarray) -> int:
    """Number of test rows bit-identical to at least one train row."""
    train_words = np.ascontiguousarray(train, dtype=np.float32).view(np.uint32)
    test_words = np.ascontiguousarray(test, dtype=np.float32).view(np.uint32)
    h_train, h_test = _row_hashes(train), _row_hashes(test)
    order = np.argsort(h_train, kind="stable")
    sorted_h = h_train[order]
    candidates = np.flatnonzero(np.isin(h_test, sorted_h))
    lo = np.searchsorted(sorted_h, h_test[candidates], "left")
    hi = np.searchsorted(sorted_h, h_test[candidates], "right")
    count = 0
    for s in range(0, len(candidates), 16384):  # blocks bound the temporary copies
        block = slice(s, s + 16384)
        # Rows with equal hashes are almost surely equal: compare with the first such train row.
        equal = np.all(test_words[candidates[block]] == train_words[order[lo[block]]], axis=1)
        count += int(equal.sum())
        # Only a genuine collision leaves a mismatch with other same-hash rows left to check.
        for i in np.flatnonzero(~equal & (hi[block] - lo[block] > 1)) + s:
            rows = train_words[order[lo[i] : hi[i]]]
            count += bool(np.any(np.all(rows == test_words[candidates[i]], axis=1)))
    return count


def _windows(windows, n: int, name: str) -> np.ndarray | None:
    if windows is None:
        return None
    w = np.asarray(windows, np.float32)
    if w.ndim != 3 or len(w) != n:
        raise ValueError(f"{name} must be (N, T, C) windows, one per label; got {w.shape}")
    return w


def prepare(
    train_emb,
    train_y,
    test_emb,
    test_y,
    *,
    num_classes: int | None = None,
    class_prompt_emb=None,
    class_names=None,
    train_ids=None,
    test_ids=None,
    train_windows=None,
    test_windows=None,
) -> Task:
    """Validates one dataset, puts it in id order, drops unlabelled windows, runs leakage checks.

    Args:
        train_emb: (N_train, D) embeddings, or None when only windows are given (then the
            flattened windows stand in for the checks and the fingerprint).
        train_y: (N_train,) integer labels; negative = unlabelled, dropped.
        test_emb: (N_test, D) embeddings, or None (as ``train_emb``).
        test_y: (N_test,) integer labels; negative = unlabelled, dropped.
        num_classes: C; default from the prompts, else ``max(label) + 1``.
        class_prompt_emb: per-class prompt embeddings (only their count is checked here).
        class_names: optional C names.
        train_ids: optional (N_train,) window ids; with ``test_ids`` checked unique and
            disjoint, and the canonical order (so every encoder sees the same k-shot sets).
        test_ids: optional (N_test,) window ids.
        train_windows: optional (N_train, T, 6) windows for methods that train the encoder.
        test_windows: optional (N_test, T, 6) windows.

    Returns:
        The :class:`Task` (its ``class_vecs`` are set by the trial loop).
    """
    train_y, test_y = _labels(train_y, "train_y"), _labels(test_y, "test_y")
    train_w = _windows(train_windows, len(train_y), "train_windows")
    test_w = _windows(test_windows, len(test_y), "test_windows")
    if (train_w is None) != (test_w is None):
        raise ValueError("give both train_windows and test_windows, or neither")
    if train_w is not None and train_w.shape[1:] != test_w.shape[1:]:
        raise ValueError(f"windows of two shapes: {train_w.shape}, {test_w.shape}")
    if train_emb is None or test_emb is None:
        if train_w is None or train_emb is not None or test_emb is not None:
            raise ValueError("give train and test embeddings, or windows without embeddings")
        train_emb, test_emb = train_w.reshape(len(train_w), -1), test_w.reshape(len(test_w), -1)
    train_x, test_x = np.asarray(train_emb, np.float32), np.asarray(test_emb, np.float32)
    if train_x.ndim != 2 or test_x.ndim != 2 or train_x.shape[1] != test_x.shape[1]:
        raise ValueError(f"embeddings must be (N, D) with one D: {train_x.shape}, {test_x.shape}")
    if len(train_x) != len(train_y) or len(test_x) != len(test_y):
        raise ValueError("embeddings and labels differ in length")

    ids_disjoint = None
    o_tr = o_te = None
    if (train_ids is None) != (test_ids is None):
        raise ValueError("give both train_ids and test_ids, or neither")
    if train_ids is not None:
        train_ids, test_ids = np.asarray(train_ids), np.asarray(test_ids)
        if len(train_ids) != len(train_y) or len(test_ids) != len(test_y):
            raise ValueError("ids and labels differ in length")
        for ids, name in ((train_ids, "train"), (test_ids, "test")):
            if len(np.unique(ids)) != len(ids):
                raise ValueError(f"{name} window ids are not unique")
        shared = np.intersect1d(train_ids, test_ids)
        if shared.size:
            raise ValueError(f"{shared.size} window ids are in both train and test: {shared[:3]}")
        ids_disjoint = True
        # Canonical order: which windows a seed draws must not depend on the order in which the
        # embeddings were written (and the fingerprint then matches across encoders).
        o_tr, o_te = np.argsort(train_ids, kind="stable"), np.argsort(test_ids, kind="stable")
        train_x, train_y, train_ids = train_x[o_tr], train_y[o_tr], train_ids[o_tr]
        test_x, test_y, test_ids = test_x[o_te], test_y[o_te], test_ids[o_te]
    fingerprint = _fingerprint(train_y, test_y, train_ids, test_ids)

    keep_tr, keep_te = train_y >= 0, test_y >= 0
    if train_w is not None:
        train_w = (train_w if o_tr is None else train_w[o_tr])[keep_tr]
        test_w = (test_w if o_te is None else test_w[o_te])[keep_te]
    dropped = {"train": int((~keep_tr).sum()), "test": int((~keep_te).sum())}
    train_x, train_y = train_x[keep_tr], train_y[keep_tr]
    test_x, test_y = test_x[keep_te], test_y[keep_te]
    if test_y.size == 0 or train_y.size == 0:
        raise ValueError("no labelled train or test windows")
    if num_classes is None:
        if class_prompt_emb is not None:
            num_classes = len(class_prompt_emb)
        else:
            num_classes = int(max(train_y.max(), test_y.max()) + 1)
    if class_prompt_emb is not None and len(class_prompt_emb) != num_classes:
        raise ValueError(f"{len(class_prompt_emb)} prompt classes for {num_classes} classes")
    if class_names is not None and len(class_names) != num_classes:
        raise ValueError(f"{len(class_names)} class names for {num_classes} classes")
    if max(train_y.max(), test_y.max()) >= num_classes:
        raise ValueError(f"labels exceed num_classes={num_classes}")
    train_counts = np.bincount(train_y, minlength=num_classes)
    if (train_counts == 0).any():
        missing = np.flatnonzero(train_counts == 0).tolist()
        raise ValueError(f"classes {missing} have no train windows; a probe cannot learn them")
    n_identical = _count_identical_rows(train_x, test_x)
    if n_identical:
        logging.warning("%d test embeddings are bit-identical to a train embedding", n_identical)
    facts = {
        "num_classes": int(num_classes),
        "class_names": list(class_names) if class_names is not None else None,
        "embedding_dim": int(train_x.shape[1]),
        "n_train_pool": len(train_y),
        "n_test": len(test_y),
        "train_class_counts": train_counts.tolist(),
        "test_class_counts": np.bincount(test_y, minlength=num_classes).tolist(),
        "unlabelled_dropped": dropped,
        "label_fingerprint": fingerprint,
        "checks": {"ids_disjoint": ids_disjoint, "n_test_rows_identical_to_train": n_identical},
    }
    return Task(train_x, train_y, test_x, test_y, int(num_classes), facts, train_w, test_w)
