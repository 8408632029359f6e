"""Evaluation on precomputed embeddings: k-shot probes, zero-shot, retrieval, reports.

Everything here takes NumPy/JAX arrays of embeddings and labels and is independent of how the
embeddings were produced. Entry points:

* :func:`run_fewshot`: the k-shot x trials x probe sweep on one dataset.
* :func:`make_report`, :func:`merge_reports`, :func:`write_report`: ``fewshot.json``
  (schema :data:`SCHEMA_VERSION`), a markdown table and accuracy-vs-shots plots.
* :func:`fit_logistic`, :func:`fit_ridge`, :func:`fit_probe` (with CV over ``l2``): the probes;
  :func:`zeroshot_evaluate`; :func:`retrieval_metrics`; :func:`sample_kshot`,
  :func:`split_by_subject`.
"""

from primus_jax.evaluation.fewshot import (
    DEFAULT_METHODS,
    DEFAULT_SHOTS,
    LOGISTIC_L2_GRID,
    RIDGE_L2_GRID,
    ZeroShotConfig,
    resolve_methods,
    run_fewshot,
)
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
from primus_jax.evaluation.retrieval import (
    metrics_from_ranks,
    ranks_from_similarity,
    retrieval_metrics,
)
from primus_jax.evaluation.sampling import (
    SAMPLER_VERSION,
    KShotSample,
    class_permutations,
    sample_kshot,
    split_by_subject,
    take_kshot,
)
from primus_jax.evaluation.schema import FEWSHOT_SCHEMA, SCHEMA_VERSION, SchemaError, validate
from primus_jax.evaluation.selection import fit_probe, stratified_folds
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
    "FEWSHOT_SCHEMA",
    "LOGISTIC_L2_GRID",
    "RIDGE_L2_GRID",
    "SAMPLER_VERSION",
    "SCHEMA_VERSION",
    "KShotSample",
    "LinearProbe",
    "LogisticConfig",
    "RidgeConfig",
    "SchemaError",
    "ZeroShotConfig",
    "accuracy",
    "balanced_accuracy",
    "bucket_size",
    "class_embeddings",
    "class_permutations",
    "classification_metrics",
    "confusion_matrix",
    "fit_logistic",
    "fit_probe",
    "fit_ridge",
    "l2_normalize",
    "load_report",
    "macro_f1",
    "make_report",
    "merge_reports",
    "metrics_from_ranks",
    "per_class_f1",
    "plot_dataset",
    "ranks_from_similarity",
    "resolve_methods",
    "retrieval_metrics",
    "ridge_cache",
    "ridge_solve",
    "run_fewshot",
    "sample_kshot",
    "split_by_subject",
    "standard_error",
    "stratified_folds",
    "summarize",
    "take_kshot",
    "to_markdown",
    "validate",
    "write_report",
    "zeroshot_evaluate",
    "zeroshot_logits",
    "zeroshot_predict",
]
