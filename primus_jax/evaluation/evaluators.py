"""Evaluator plug-ins of the k-shot trial loop, and the registry of method names.

An evaluator turns one k-shot draw of a :class:`~primus_jax.evaluation.task.Task` into test
predictions; the loop (:mod:`~primus_jax.evaluation.fewshot`) owns sampling, metrics, timing
and the result entries. A new method is a class with the :class:`Evaluator` members and a
config dataclass, added with :func:`register`.
"""

from __future__ import annotations

import dataclasses
import json
from collections.abc import Callable, Mapping, Sequence
from typing import Protocol

import numpy as np
from absl import logging

from primus_jax.evaluation import probe as probe_lib
from primus_jax.evaluation import selection
from primus_jax.evaluation import standard_training as st_lib
from primus_jax.evaluation import zeroshot as zeroshot_lib
from primus_jax.evaluation.task import Draw, Task


class Evaluator(Protocol):
    """What the trial loop needs from a method.

    Attributes:
        name: the method's name in the report.
        config: its settings (a frozen dataclass).
        probe: the report's ``probe`` kind: ``logistic``, ``ridge`` or ``zeroshot``.
        needs_prompts: reads ``task.class_vecs`` (the zero-shot classifier).
        needs_windows: trains on raw windows (``task.train_windows``), not embeddings.
        shots: k values of its own (``(0,)`` = zero-shot, once), or None for the run's.
    """

    name: str
    config: object
    probe: str
    needs_prompts: bool
    needs_windows: bool
    shots: tuple[int, ...] | None

    def report_config(self) -> dict:
        """The method's ``config`` in the report (JSON-serialisable)."""

    def embedding_dim(self, task: Task) -> int:
        """Width of what the method's classifier reads."""

    def fit_predict(self, task: Task, draw: Draw) -> tuple[np.ndarray, dict | None]:
        """Trains on ``draw`` and returns (N_test,) predictions and fit diagnostics (or None)."""

    def fit_summary(self, infos: Sequence[dict | None]) -> dict | None:
        """The entry's ``fit`` record from the per-trial diagnostics, or None for no record."""


@dataclasses.dataclass(frozen=True)
class ZeroShotConfig:
    """Settings of the zero-shot classifier (:mod:`~primus_jax.evaluation.zeroshot`).

    Attributes:
        renormalize: cosine scores (True) or the reference's dot product with the prompt mean.
    """

    renormalize: bool = True


def _asdict(cfg) -> dict:
    return json.loads(json.dumps(dataclasses.asdict(cfg)))  # tuples -> lists


@dataclasses.dataclass(frozen=True)
class ProbeEvaluator:
    """Logistic or ridge probe on the embeddings (``l2`` by CV when ``config.l2_grid`` is set)."""

    name: str
    config: probe_lib.LogisticConfig | probe_lib.RidgeConfig
    device: object = None
    shots: tuple[int, ...] | None = None
    needs_windows = False

    @property
    def probe(self) -> str:
        return "ridge" if isinstance(self.config, probe_lib.RidgeConfig) else "logistic"

    @property
    def needs_prompts(self) -> bool:
        return getattr(self.config, "init", "") == "prompts"

    def report_config(self) -> dict:
        return _asdict(self.config)

    def embedding_dim(self, task: Task) -> int:
        return int(task.train_x.shape[1])

    def fit_predict(self, task: Task, draw: Draw) -> tuple[np.ndarray, dict]:
        idx = draw.sample.indices
        init = None
        if self.needs_prompts:  # start at the reported zero-shot classifier, times 1/tau
            init = np.float32(self.config.init_scale) * task.class_vecs
        fitted = selection.fit_probe(
            task.train_x[idx],
            task.train_y[idx],
            task.num_classes,
            self.config,
            init_weights=init,
            device=self.device,
        )
        if getattr(self.config, "max_iter", 1) > 0 and not fitted.info.get("converged", True):
            logging.warning(
                "%s k=%d trial %d: L-BFGS stopped at grad norm %.2e",
                self.name,
                draw.k,
                draw.trial,
                fitted.info["grad_norm"],
            )
        return task.predict(fitted), fitted.info

    def fit_summary(self, infos: Sequence[dict]) -> dict:
        fit = {"l2": [f["l2"] for f in infos], "l2_source": [f["l2_source"] for f in infos]}
        if self.probe == "logistic":
            fit.update(
                converged=[f["converged"] for f in infos],
                iterations=[f["iterations"] for f in infos],
                max_grad_norm=max(f["grad_norm"] for f in infos),
            )
            if self.needs_prompts:
                fit["init"] = {
                    "from": "zeroshot_classifier",
                    "scale": float(self.config.init_scale),
                }
        return fit


@dataclasses.dataclass(frozen=True)
class ZeroShotEvaluator:
    """Cosine (or dot product) to the class prompt vectors; no training, reported under k = 0."""

    name: str
    config: ZeroShotConfig = ZeroShotConfig()
    shots: tuple[int, ...] | None = (0,)
    probe = "zeroshot"
    needs_prompts = True
    needs_windows = False

    def report_config(self) -> dict:
        return _asdict(self.config)

    def embedding_dim(self, task: Task) -> int:
        return int(task.train_x.shape[1])

    def fit_predict(self, task: Task, draw: Draw) -> tuple[np.ndarray, None]:
        logits = zeroshot_lib.zeroshot_logits(task.test_x, task.class_vecs)
        return np.argmax(logits, axis=1), None

    def fit_summary(self, infos) -> None:
        return None


LOGISTIC_L2_GRID = (0.01, 0.1, 1.0, 10.0, 100.0)
RIDGE_L2_GRID = tuple(4.0**j for j in range(8))

MethodConfig = (
    probe_lib.LogisticConfig | probe_lib.RidgeConfig | ZeroShotConfig | st_lib.SupervisedConfig
)

DEFAULT_METHODS: dict[str, MethodConfig] = {
    "logreg": probe_lib.LogisticConfig(),
    "logreg_cv": probe_lib.LogisticConfig(l2_grid=LOGISTIC_L2_GRID),
    "logreg_zs": probe_lib.LogisticConfig(init="prompts"),
    "ridge": probe_lib.RidgeConfig(),
    "ridge_cv": probe_lib.RidgeConfig(l2_grid=RIDGE_L2_GRID),
    "zeroshot": ZeroShotConfig(),
    "standard_training": st_lib.FAIR_BUDGET,
    "standard_training_reference": st_lib.REFERENCE_BUDGET,
    "finetune": st_lib.FINETUNE_BUDGET,
}

# Config type -> plug-in factory (name, config, device) -> Evaluator.
_PLUGINS: dict[type, Callable[..., Evaluator]] = {
    probe_lib.LogisticConfig: lambda name, cfg, device: ProbeEvaluator(name, cfg, device),
    probe_lib.RidgeConfig: lambda name, cfg, device: ProbeEvaluator(name, cfg, device),
    ZeroShotConfig: lambda name, cfg, device: ZeroShotEvaluator(name, cfg),
    st_lib.SupervisedConfig: lambda name, cfg, device: st_lib.StandardTraining(name, cfg),
}


def register(name: str, config, factory: Callable[..., Evaluator] | None = None) -> None:
    """Adds method ``name`` with its default ``config``. A new config type needs a
    ``factory(name, config, device) -> Evaluator``; a known type reuses its plug-in."""
    known = _PLUGINS.get(type(config))
    if factory is None and known is None:
        raise ValueError(f"{type(config).__name__} has no plug-in: pass a factory")
    if factory is not None and known is not None and factory is not known:
        raise ValueError(f"{type(config).__name__} already has a plug-in")
    _PLUGINS.setdefault(type(config), factory)
    DEFAULT_METHODS[name] = config


def make_evaluator(name: str, cfg, *, device: object = None) -> Evaluator:
    """The plug-in for a method config (an :class:`Evaluator` is returned unchanged)."""
    factory = _PLUGINS.get(type(cfg))
    if factory is None:
        if hasattr(cfg, "fit_predict"):
            return cfg
        raise TypeError(f"method {name!r}: unsupported config type {type(cfg).__name__}")
    return factory(name, cfg, device)


def resolve_methods(
    methods: Sequence[str] | Mapping[str, object] | None,
    have_prompts: bool,
    *,
    device: object = None,
) -> dict[str, Evaluator]:
    """Method name -> plug-in. Names refer to :data:`DEFAULT_METHODS`; a mapping's values are
    configs or evaluators. ``None``: logreg and ridge, plus logreg_zs and zeroshot with prompts.
    """
    if methods is None:
        names = ["logreg", "ridge"] + (["logreg_zs", "zeroshot"] if have_prompts else [])
        methods = {n: DEFAULT_METHODS[n] for n in names}
    elif not isinstance(methods, Mapping):
        unknown = [m for m in methods if m not in DEFAULT_METHODS]
        if unknown:
            raise ValueError(f"unknown methods {unknown}; known: {sorted(DEFAULT_METHODS)}")
        methods = {n: DEFAULT_METHODS[n] for n in methods}
    out = {name: make_evaluator(name, cfg, device=device) for name, cfg in methods.items()}
    for name, ev in out.items():
        if ev.needs_prompts and not have_prompts:
            raise ValueError(f"method {name!r} needs class_prompt_emb")
    return out


def zeroshot_classifier(
    configs: Mapping[str, object], class_prompt_emb: zeroshot_lib.ClassPrompts
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
