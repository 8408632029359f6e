"""Few-shot evaluation: one k-shot trial loop, evaluator plug-ins, one report format.

* :func:`evaluate` (:mod:`.run`): a settings block (:mod:`.settings`) -> ``fewshot.json``.
* :func:`run_fewshot` (:mod:`.fewshot`): the trial loop on one dataset's embeddings/windows.
* :mod:`.evaluators`: the plug-in protocol, the probes and zero-shot, the method registry;
  :mod:`.standard_training`: the Standard Training plug-in.
* :mod:`.report` and :mod:`.report_types`: build, merge, check and write reports.
* Building blocks: :mod:`.probe`, :mod:`.selection`, :mod:`.zeroshot`, :mod:`.sampling`,
  :mod:`.metrics`, :mod:`.retrieval`, :mod:`.plots`.
"""

from primus_jax.evaluation.evaluators import (
    DEFAULT_METHODS,
    LOGISTIC_L2_GRID,
    RIDGE_L2_GRID,
    Evaluator,
    ProbeEvaluator,
    ZeroShotConfig,
    ZeroShotEvaluator,
    make_evaluator,
    register,
    resolve_methods,
    zeroshot_classifier,
)
from primus_jax.evaluation.fewshot import run_fewshot, run_trials
from primus_jax.evaluation.metrics import (
    accuracy,
    balanced_accuracy,
    classification_metrics,
    confusion_matrix,
    macro_f1,
    per_class_f1,
    standard_error,
    summarize,
)
from primus_jax.evaluation.plots import plot_dataset
from primus_jax.evaluation.probe import (
    LinearProbe,
    LogisticConfig,
    RidgeConfig,
    bucket_size,
    fit_logistic,
    fit_ridge,
    ridge_cache,
    ridge_solve,
)
from primus_jax.evaluation.report import (
    load_report,
    make_report,
    merge_reports,
    to_markdown,
    write_report,
)
from primus_jax.evaluation.report_types import SCHEMA_VERSION, Report, ReportError, parse, validate
from primus_jax.evaluation.retrieval import (
    metrics_from_ranks,
    ranks_from_similarity,
    retrieval_metrics,
)
from primus_jax.evaluation.run import evaluate
from primus_jax.evaluation.sampling import (
    SAMPLER_VERSION,
    KShotSample,
    class_permutations,
    sample_kshot,
    split_by_subject,
    take_kshot,
)
from primus_jax.evaluation.selection import fit_probe, stratified_folds
from primus_jax.evaluation.settings import DEFAULT_SHOTS
from primus_jax.evaluation.standard_training import (
    StandardTraining,
    SupervisedConfig,
    fit_supervised,
)
from primus_jax.evaluation.task import Draw, Task, prepare
from primus_jax.evaluation.zeroshot import (
    class_embeddings,
    l2_normalize,
    zeroshot_evaluate,
    zeroshot_logits,
    zeroshot_predict,
)

__all__ = [
    "DEFAULT_METHODS",
    "DEFAULT_SHOTS",
    "LOGISTIC_L2_GRID",
    "RIDGE_L2_GRID",
    "SAMPLER_VERSION",
    "SCHEMA_VERSION",
    "Draw",
    "Evaluator",
    "KShotSample",
    "LinearProbe",
    "LogisticConfig",
    "ProbeEvaluator",
    "Report",
    "ReportError",
    "RidgeConfig",
    "StandardTraining",
    "SupervisedConfig",
    "Task",
    "ZeroShotConfig",
    "ZeroShotEvaluator",
    "accuracy",
    "balanced_accuracy",
    "bucket_size",
    "class_embeddings",
    "class_permutations",
    "classification_metrics",
    "confusion_matrix",
    "evaluate",
    "fit_logistic",
    "fit_probe",
    "fit_ridge",
    "fit_supervised",
    "l2_normalize",
    "load_report",
    "macro_f1",
    "make_evaluator",
    "make_report",
    "merge_reports",
    "metrics_from_ranks",
    "parse",
    "per_class_f1",
    "plot_dataset",
    "prepare",
    "ranks_from_similarity",
    "register",
    "resolve_methods",
    "retrieval_metrics",
    "ridge_cache",
    "ridge_solve",
    "run_fewshot",
    "run_trials",
    "sample_kshot",
    "split_by_subject",
    "standard_error",
    "stratified_folds",
    "summarize",
    "take_kshot",
    "to_markdown",
    "validate",
    "write_report",
    "zeroshot_classifier",
    "zeroshot_evaluate",
    "zeroshot_logits",
    "zeroshot_predict",
]
