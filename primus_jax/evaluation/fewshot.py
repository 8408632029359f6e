"""Few-shot sweep driver: k-shot sampling x trials x probes on precomputed embeddings.

:func:`run_fewshot` is the one entry point. It takes train and test embeddings of one dataset
(numpy or jax arrays; how they were produced does not matter), and for every trial, every k in
``shots`` and every method it draws k windows per class from the train split
(:mod:`~primus_jax.evaluation.sampling`), fits the probe, and scores the whole test split.

Methods (names -> configs in :data:`DEFAULT_METHODS`; pass a mapping to override):

* ``logreg``: L2-regularised multinomial logistic regression from zero (:func:`fit_logistic`),
  fixed prior precision ``l2 = 1`` (scikit-learn's ``C = 1``).
* ``logreg_cv``: the same with ``l2`` chosen per trial from {0.01, 0.1, 1, 10, 100} by
  cross-validation inside the k shots (:mod:`~primus_jax.evaluation.selection`).
* ``logreg_zs``: started at and regularised towards the zero-shot classifier times
  ``init_scale`` (the reference's text-prompt initialisation). The class vectors are the very
  ones ``zeroshot`` scores with (one :class:`ZeroShotConfig` per run, default cosine), so with
  ``max_iter=0`` the probe reproduces the zero-shot predictions.
* ``ridge``: big_vision's closed-form ridge on +-1 targets, ``l2 = 2**10`` (:func:`fit_ridge`).
* ``ridge_cv``: the same with ``l2`` from {4**0, ..., 4**7} chosen by cross-validation.
* ``zeroshot``: no training; cosine to the class prompt vectors. Reported under k = 0.

With ``methods=None`` the driver runs ``logreg`` and ``ridge``, plus ``logreg_zs`` and
``zeroshot`` when prompt embeddings are given. The CV variants cost ~25x more fits.

Leakage guards: test windows never enter sampling (only ``train_y`` is sampled); if window ids
are given, train and test ids must be disjoint (ValueError otherwise); test rows that are
bit-identical to some train row are counted and logged (a sign of duplicated windows, or of
degenerate inputs such as all-zero IMU placeholders that collapse to one embedding).

Pass window ids whenever they exist: windows are then put in id order before sampling, so the
k-shot sets of a seed are the same windows for every encoder even if their embedding files list
windows in different orders. Without ids, the k-shot sets depend on the array order, and
comparisons across encoders are paired only if every encoder's arrays use the same order (the
``label_fingerprint`` then matches; :func:`~primus_jax.evaluation.report.merge_reports` checks).
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import logging
import time
from collections.abc import Mapping, Sequence

import numpy as np

from primus_jax.evaluation import metrics as metrics_lib
from primus_jax.evaluation import probe as probe_lib
from primus_jax.evaluation import sampling, selection
from primus_jax.evaluation import zeroshot as zeroshot_lib

DEFAULT_SHOTS = (1, 2, 5, 10, 20, 50, 100, 500)
METRICS = ("accuracy", "macro_f1", "balanced_accuracy")


@dataclasses.dataclass(frozen=True)
class ZeroShotConfig:
    """Settings of the zero-shot classifier (see :mod:`~primus_jax.evaluation.zeroshot`).

    Attributes:
        renormalize: cosine scores (True) or the reference's dot product with the prompt mean.
    """

    renormalize: bool = True


MethodConfig = probe_lib.LogisticConfig | probe_lib.RidgeConfig | ZeroShotConfig

LOGISTIC_L2_GRID = (0.01, 0.1, 1.0, 10.0, 100.0)
RIDGE_L2_GRID = tuple(4.0**j for j in range(8))

DEFAULT_METHODS: dict[str, MethodConfig] = {
    "logreg": probe_lib.LogisticConfig(),
    "logreg_cv": probe_lib.LogisticConfig(l2_grid=LOGISTIC_L2_GRID),
    "logreg_zs": probe_lib.LogisticConfig(init="prompts"),
    "ridge": probe_lib.RidgeConfig(),
    "ridge_cv": probe_lib.RidgeConfig(l2_grid=RIDGE_L2_GRID),
    "zeroshot": ZeroShotConfig(),
}

_PROBE_KIND = {
    probe_lib.LogisticConfig: "logistic",
    probe_lib.RidgeConfig: "ridge",
    ZeroShotConfig: "zeroshot",
}

log = logging.getLogger(__name__)


def resolve_methods(
    methods: Sequence[str] | Mapping[str, MethodConfig] | None, have_prompts: bool
) -> dict[str, MethodConfig]:
    """Method name -> config; names refer to :data:`DEFAULT_METHODS` unless a mapping is given."""
    if methods is None:
        names = ["logreg", "ridge"] + (["logreg_zs", "zeroshot"] if have_prompts else [])
        methods = {n: DEFAULT_METHODS[n] for n in names}
    elif not isinstance(methods, Mapping):
        unknown = [m for m in methods if m not in DEFAULT_METHODS]
        if unknown:
            raise ValueError(f"unknown methods {unknown}; known: {sorted(DEFAULT_METHODS)}")
        methods = {n: DEFAULT_METHODS[n] for n in methods}
    for name, cfg in methods.items():
        if type(cfg) not in _PROBE_KIND:
            raise TypeError(f"method {name!r}: unsupported config type {type(cfg).__name__}")
        uses_prompts = isinstance(cfg, ZeroShotConfig) or getattr(cfg, "init", "") == "prompts"
        if uses_prompts and not have_prompts:
            raise ValueError(f"method {name!r} needs class_prompt_emb")
    return dict(methods)


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

    Vectorised and memory-light (a Python set of row bytes would hold ~1 GB for 500K x 512).
    Integer arithmetic wraps mod 2**64, so equal rows always hash equal; collisions of unequal
    rows are possible in principle and are ruled out by an exact comparison afterwards.
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


@dataclasses.dataclass
class _Split:
    """The labelled part of one dataset, validated."""

    train_x: np.ndarray
    train_y: np.ndarray
    test_x: np.ndarray
    test_y: np.ndarray
    num_classes: int
    facts: dict
    test_xn: np.ndarray | None = None  # L2-normalised once, reused by every fitted probe

    def predict(self, fitted: probe_lib.LinearProbe) -> np.ndarray:
        if not fitted.normalize:
            return fitted.predict(self.test_x)
        if self.test_xn is None:
            self.test_xn = zeroshot_lib.l2_normalize(self.test_x)
        return dataclasses.replace(fitted, normalize=False).predict(self.test_xn)


def _prepare(
    train_emb,
    train_y,
    test_emb,
    test_y,
    num_classes,
    class_prompt_emb,
    class_names,
    train_ids,
    test_ids,
) -> _Split:
    """Validates inputs, drops unlabelled windows and runs the leakage checks."""
    train_x, test_x = np.asarray(train_emb, np.float32), np.asarray(test_emb, np.float32)
    train_y, test_y = _labels(train_y, "train_y"), _labels(test_y, "test_y")
    if train_x.ndim != 2 or test_x.ndim != 2 or train_x.shape[1] != test_x.shape[1]:
        raise ValueError(f"embeddings must be (N, D) with one D: {train_x.shape}, {test_x.shape}")
    if len(train_x) != len(train_y) or len(test_x) != len(test_y):
        raise ValueError("embeddings and labels differ in length")

    ids_disjoint = None
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
        # embeddings were written, so that two encoders evaluated from differently ordered
        # files see the same k-shot sets (and the fingerprint matches).
        o_tr, o_te = np.argsort(train_ids, kind="stable"), np.argsort(test_ids, kind="stable")
        train_x, train_y, train_ids = train_x[o_tr], train_y[o_tr], train_ids[o_tr]
        test_x, test_y, test_ids = test_x[o_te], test_y[o_te], test_ids[o_te]
    fingerprint = _fingerprint(train_y, test_y, train_ids, test_ids)

    keep_tr, keep_te = train_y >= 0, test_y >= 0
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
        log.warning("%d test embeddings are bit-identical to a train embedding", n_identical)
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
    return _Split(train_x, train_y, test_x, test_y, int(num_classes), facts)


def _entry(k: int, n_train: int, n_test: int, shots_per_class, truncated, per_trial, confusion):
    """One (method, k) record of the results (see :func:`run_fewshot`)."""
    entry = {
        "shots": int(k),
        "n_train": int(n_train),
        "n_test": int(n_test),
        "shots_per_class": [int(s) for s in shots_per_class],
        "truncated_classes": [int(c) for c in truncated],
    }
    entry.update({m: metrics_lib.summarize([t[m] for t in per_trial]) for m in METRICS})
    entry["confusion"] = np.asarray(confusion).tolist()
    return entry


def zeroshot_classifier(
    configs: Mapping[str, MethodConfig], class_prompt_emb: zeroshot_lib.ClassPrompts
) -> np.ndarray:
    """(C, D) class vectors of the run's zero-shot classifier: what ``zeroshot`` reports and
    ``logreg_zs`` starts from. One :class:`ZeroShotConfig` per run (default: cosine)."""
    zs = {cfg for cfg in configs.values() if isinstance(cfg, ZeroShotConfig)}
    if len(zs) > 1:
        names = sorted(n for n, c in configs.items() if isinstance(c, ZeroShotConfig))
        raise ValueError(
            f"methods {names} define {len(zs)} different zero-shot classifiers; a run has one "
            "(logreg_zs starts from the one it reports)"
        )
    cfg = zs.pop() if zs else ZeroShotConfig()
    return zeroshot_lib.class_embeddings(class_prompt_emb, renormalize=cfg.renormalize)


def _zeroshot_entry(split: _Split, class_vecs: np.ndarray) -> dict:
    preds = np.argmax(zeroshot_lib.zeroshot_logits(split.test_x, class_vecs), axis=1)
    c = split.num_classes
    scores = metrics_lib.classification_metrics(split.test_y, preds, c)
    confusion = metrics_lib.confusion_matrix(split.test_y, preds, c)
    return _entry(0, 0, len(split.test_y), [0] * c, [], [scores], confusion)


def _kshot_entry(
    split: _Split, name: str, cfg: MethodConfig, k: int, perms, class_vecs, device
) -> dict:
    """Fits one probe per trial on its k-shot set and scores the full test split."""
    c = split.num_classes
    per_trial, fits, confusion = [], [], np.zeros((c, c), np.int64)
    for t, trial_perms in enumerate(perms):
        sample = sampling.take_kshot(trial_perms, k)
        x, y = split.train_x[sample.indices], split.train_y[sample.indices]
        init = None
        if isinstance(cfg, probe_lib.LogisticConfig) and cfg.init == "prompts":
            init = np.float32(cfg.init_scale) * class_vecs  # the reported zero-shot classifier
        fitted = selection.fit_probe(x, y, c, cfg, init_weights=init, device=device)
        fits.append(fitted.info)
        stopped_early = getattr(cfg, "max_iter", 1) > 0 and not fitted.info.get("converged", True)
        if stopped_early:
            log.warning(
                "%s k=%d trial %d: L-BFGS stopped at grad norm %.2e",
                name,
                k,
                t,
                fitted.info["grad_norm"],
            )
        preds = split.predict(fitted)
        per_trial.append(metrics_lib.classification_metrics(split.test_y, preds, c))
        confusion += metrics_lib.confusion_matrix(split.test_y, preds, c)
    entry = _entry(
        k,
        len(sample.indices),
        len(split.test_y),
        sample.shots_per_class,
        sample.truncated_classes,
        per_trial,
        confusion,
    )
    entry["fit"] = {
        "l2": [f["l2"] for f in fits],
        "l2_source": [f["l2_source"] for f in fits],
    }
    if isinstance(cfg, probe_lib.LogisticConfig):
        entry["fit"].update(
            converged=[f["converged"] for f in fits],
            iterations=[f["iterations"] for f in fits],
            max_grad_norm=max(f["grad_norm"] for f in fits),
        )
        if cfg.init == "prompts":
            entry["fit"]["init"] = {"from": "zeroshot_classifier", "scale": float(cfg.init_scale)}
    return entry


def run_fewshot(
    train_emb: object,
    train_y: object,
    test_emb: object,
    test_y: object,
    *,
    shots: Sequence[int] = DEFAULT_SHOTS,
    trials: int = 5,
    seed: int = 0,
    methods: Sequence[str] | Mapping[str, MethodConfig] | None = None,
    class_prompt_emb: zeroshot_lib.ClassPrompts | None = None,
    num_classes: int | None = None,
    class_names: Sequence[str] | None = None,
    train_ids: Sequence[str] | np.ndarray | None = None,
    test_ids: Sequence[str] | np.ndarray | None = None,
    device: object = None,
) -> dict:
    """Runs the few-shot sweep on one dataset.

    Args:
        train_emb: (N_train, D) embeddings of the train split (the pool k-shot sets come from).
        train_y: (N_train,) labels; negative = unlabelled, dropped.
        test_emb: (N_test, D) embeddings of the test split; every labelled window is scored.
        test_y: (N_test,) labels; negative = unlabelled, dropped.
        shots: k values (shots per class).
        trials: independent k-shot draws per k (trial t uses sampler seed (seed, t, class)).
        seed: run seed.
        methods: names from :data:`DEFAULT_METHODS`, a name -> config mapping, or None (module doc).
        class_prompt_emb: per-class prompt embeddings, (C, D), (C, P, D) or C arrays (P_c, D).
        num_classes: C; default from the prompts, else ``max(label) + 1``.
        class_names: optional C names, stored with the results.
        train_ids: optional (N_train,) window ids; with ``test_ids``, checked disjoint.
        test_ids: optional (N_test,) window ids.
        device: device for the logistic probe (default: CPU).

    Returns:
        A JSON-serialisable dict: dataset facts (``num_classes``, ``n_train_pool``, ``n_test``,
        class counts, ``label_fingerprint``, ``checks``...), the run's ``seed``, ``trials``,
        ``shots`` and ``sampler``, ``methods`` -> name -> ``{"probe", "config", "results":
        {str(k): entry}}``, and ``timing_s`` (seconds per method and k). An entry holds
        ``shots``, ``n_train``, ``n_test``, ``shots_per_class``, ``truncated_classes``,
        ``accuracy``/``macro_f1``/``balanced_accuracy`` as ``{"mean", "stderr", "trials"}``,
        ``confusion`` (C x C, summed over trials) and, for logistic probes, ``fit`` diagnostics.
    """
    shots = sorted({int(k) for k in shots})
    if not shots or shots[0] < 1 or trials < 1:
        raise ValueError(f"need shots >= 1 and trials >= 1, got {shots}, {trials}")
    split = _prepare(
        train_emb,
        train_y,
        test_emb,
        test_y,
        num_classes,
        class_prompt_emb,
        class_names,
        train_ids,
        test_ids,
    )
    configs = resolve_methods(methods, class_prompt_emb is not None)
    class_vecs = None
    if class_prompt_emb is not None:
        class_vecs = zeroshot_classifier(configs, class_prompt_emb)
        if class_vecs.shape[1] != split.train_x.shape[1]:
            raise ValueError(
                f"prompt dim {class_vecs.shape[1]} != embedding dim {split.train_x.shape[1]}"
            )
    perms = [
        sampling.class_permutations(split.train_y, split.num_classes, seed=seed, trial=t)
        for t in range(trials)
    ]
    out_methods, timing = {}, {}
    for name, cfg in configs.items():
        results, timing[name] = {}, {}
        for k in [0] if isinstance(cfg, ZeroShotConfig) else shots:
            t0 = time.perf_counter()
            if k == 0:
                entry = _zeroshot_entry(split, class_vecs)
            else:
                entry = _kshot_entry(split, name, cfg, k, perms, class_vecs, device)
            results[str(k)], timing[name][str(k)] = entry, round(time.perf_counter() - t0, 4)
            log.info(
                "%s k=%d: accuracy %.4f (%.2f s)",
                name,
                k,
                entry["accuracy"]["mean"],
                timing[name][str(k)],
            )
        out_methods[name] = {
            "probe": _PROBE_KIND[type(cfg)],
            "config": json.loads(json.dumps(dataclasses.asdict(cfg))),  # tuples -> lists
            "results": results,
        }
    return {
        **split.facts,
        "seed": int(seed),
        "trials": int(trials),
        "shots": shots,
        "sampler": sampling.SAMPLER_VERSION,
        "methods": out_methods,
        "timing_s": timing,
    }
