"""The k-shot trial loop: every method, every k, every seeded trial, on one dataset.

:func:`run_fewshot` prepares the dataset (:mod:`~primus_jax.evaluation.task`), resolves the
method plug-ins (:mod:`~primus_jax.evaluation.evaluators`) and runs :func:`run_trials`, which
owns what all methods share: the nested k-shot draws (:mod:`~primus_jax.evaluation.sampling`,
the same windows for every method and encoder), per-trial metrics, timing and result entries.
"""

from __future__ import annotations

import time
from collections.abc import Mapping, Sequence

import numpy as np
from absl import logging

from primus_jax.evaluation import evaluators as evaluators_lib
from primus_jax.evaluation import metrics as metrics_lib
from primus_jax.evaluation import sampling
from primus_jax.evaluation import zeroshot as zeroshot_lib
from primus_jax.evaluation.settings import DEFAULT_SHOTS
from primus_jax.evaluation.task import Draw, Task, prepare

METRICS = ("accuracy", "macro_f1", "balanced_accuracy")


def _entry(task: Task, draws: Sequence[Draw], per_trial, confusion) -> dict:
    """One (method, k) record of the results."""
    c, sample = task.num_classes, draws[-1].sample  # counts are the same in every trial
    entry = {
        "shots": int(draws[-1].k),
        "n_train": 0 if sample is None else len(sample.indices),
        "n_test": len(task.test_y),
        "shots_per_class": [0] * c if sample is None else [int(s) for s in sample.shots_per_class],
        "truncated_classes": [] if sample is None else [int(x) for x in sample.truncated_classes],
    }
    entry.update({m: metrics_lib.summarize([t[m] for t in per_trial]) for m in METRICS})
    entry["confusion"] = np.asarray(confusion).tolist()
    return entry


def run_trials(
    task: Task,
    evaluators: Mapping[str, evaluators_lib.Evaluator],
    *,
    shots: Sequence[int],
    trials: int,
    seed: int,
) -> tuple[dict, dict]:
    """Runs every evaluator over its k values and the run's trials.

    Trial t draws its k-shot set with ``sampling.class_permutations(train_y, C, seed, t)``;
    the sets are nested across k. Zero-shot evaluators (``shots == (0,)``) run once.

    Returns:
        ``(methods, timing_s)``: name -> ``{"probe", "config", "embedding_dim", "results":
        {str(k): entry}}`` and name -> str(k) -> seconds.
    """
    c = task.num_classes
    perms = [
        sampling.class_permutations(task.train_y, c, seed=seed, trial=t) for t in range(trials)
    ]
    methods, timing = {}, {}
    for name, ev in evaluators.items():
        results, timing[name] = {}, {}
        for k in sorted({int(k) for k in ev.shots}) if ev.shots else shots:
            t0 = time.perf_counter()
            if k == 0:
                draws = [Draw(seed, 0, 0, None)]
            else:
                draws = [Draw(seed, t, k, sampling.take_kshot(p, k)) for t, p in enumerate(perms)]
            per_trial, infos, confusion = [], [], np.zeros((c, c), np.int64)
            for draw in draws:
                preds, info = ev.fit_predict(task, draw)
                per_trial.append(metrics_lib.classification_metrics(task.test_y, preds, c))
                confusion += metrics_lib.confusion_matrix(task.test_y, preds, c)
                infos.append(info)
            entry = _entry(task, draws, per_trial, confusion)
            fit = ev.fit_summary(infos)
            if fit is not None:  # probes: "fit"; encoder training: "training"
                entry["training" if ev.needs_windows else "fit"] = fit
            results[str(k)], timing[name][str(k)] = entry, round(time.perf_counter() - t0, 4)
            logging.info(
                "%s k=%d: accuracy %.4f (%.2f s)",
                name,
                k,
                entry["accuracy"]["mean"],
                timing[name][str(k)],
            )
        methods[name] = {
            "probe": ev.probe,
            "config": ev.report_config(),
            "embedding_dim": ev.embedding_dim(task),
            "results": results,
        }
    return methods, timing


def run_fewshot(
    train_emb: object,
    train_y: object,
    test_emb: object,
    test_y: object,
    *,
    shots: Sequence[int] = DEFAULT_SHOTS,
    trials: int = 5,
    seed: int = 0,
    methods: Sequence[str] | Mapping[str, object] | None = None,
    class_prompt_emb: zeroshot_lib.ClassPrompts | None = None,
    num_classes: int | None = None,
    class_names: Sequence[str] | None = None,
    train_ids: Sequence[str] | np.ndarray | None = None,
    test_ids: Sequence[str] | np.ndarray | None = None,
    train_windows: np.ndarray | None = None,
    test_windows: np.ndarray | None = None,
    device: object = None,
) -> dict:
    """Runs the few-shot sweep on one dataset.

    Args:
        train_emb: (N_train, D) embeddings of the train split (the pool k-shot sets come from);
            None for a run of window methods only (Standard Training).
        train_y: (N_train,) labels; negative = unlabelled, dropped.
        test_emb: (N_test, D) embeddings of the test split; every labelled window is scored.
        test_y: (N_test,) labels; negative = unlabelled, dropped.
        shots: k values (shots per class).
        trials: independent k-shot draws per k (trial t uses sampler seed (seed, t, class)).
        seed: run seed.
        methods: names from ``DEFAULT_METHODS``, a name -> config (or evaluator) mapping, or
            None (logreg and ridge, plus logreg_zs and zeroshot when prompts are given).
        class_prompt_emb: per-class prompt embeddings, (C, D), (C, P, D) or C arrays (P_c, D).
        num_classes: C; default from the prompts, else ``max(label) + 1``.
        class_names: optional C names, stored with the results.
        train_ids: optional (N_train,) window ids; with ``test_ids``, checked disjoint.
        test_ids: optional (N_test,) window ids.
        train_windows: (N_train, T, 6) raw windows, for methods that train the encoder.
        test_windows: (N_test, T, 6) raw windows.
        device: device for the logistic probe (default: CPU).

    Returns:
        A JSON-serialisable dict: the dataset facts (``num_classes``, ``n_train_pool``,
        ``n_test``, class counts, ``label_fingerprint``, ``checks``, ``embedding_dim``...), the
        run's ``seed``, ``trials``, ``shots`` and ``sampler``, ``methods`` (see
        :func:`run_trials`) and ``timing_s``. An entry holds ``shots``, ``n_train``, ``n_test``,
        ``shots_per_class``, ``truncated_classes``, ``accuracy``/``macro_f1``/
        ``balanced_accuracy`` as ``{"mean", "stderr", "trials"}``, ``confusion`` (C x C, summed
        over trials) and, for probes, ``fit`` diagnostics.
    """
    shots = sorted({int(k) for k in shots})
    if not shots or shots[0] < 1 or trials < 1:
        raise ValueError(f"need shots >= 1 and trials >= 1, got {shots}, {trials}")
    task = prepare(
        train_emb,
        train_y,
        test_emb,
        test_y,
        num_classes=num_classes,
        class_prompt_emb=class_prompt_emb,
        class_names=class_names,
        train_ids=train_ids,
        test_ids=test_ids,
        train_windows=train_windows,
        test_windows=test_windows,
    )
    evaluators = evaluators_lib.resolve_methods(
        methods, class_prompt_emb is not None, device=device
    )
    for name, ev in evaluators.items():
        if ev.needs_windows and task.train_windows is None:
            raise ValueError(f"method {name!r} trains on windows: pass train/test_windows")
    if class_prompt_emb is not None:
        configs = {name: ev.config for name, ev in evaluators.items()}
        task.class_vecs = evaluators_lib.zeroshot_classifier(configs, class_prompt_emb)
        if task.class_vecs.shape[1] != task.train_x.shape[1]:
            raise ValueError(
                f"prompt dim {task.class_vecs.shape[1]} != embedding dim {task.train_x.shape[1]}"
            )
    out_methods, timing = run_trials(task, evaluators, shots=shots, trials=trials, seed=seed)
    facts = dict(task.facts)
    if train_emb is None and out_methods:  # no embeddings: the width the first method reads
        facts["embedding_dim"] = next(iter(out_methods.values()))["embedding_dim"]
    return {
        **facts,
        "seed": int(seed),
        "trials": int(trials),
        "shots": shots,
        "sampler": sampling.SAMPLER_VERSION,
        "methods": out_methods,
        "timing_s": timing,
    }
