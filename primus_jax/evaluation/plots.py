"""Accuracy-vs-shots plots in the style of the PRIMUS paper's Fig. 2.

One PNG per dataset: the metric (in %) against labelled windows per class on a log x-axis, one
line per method with standard-error bars; zero-shot methods (k = 0 only) are drawn as dashed
horizontal lines. matplotlib is an optional dependency (``pip install primus_jax[plots]``); it
is imported only when a plot is drawn, and through ``Figure`` + the Agg canvas rather than
``pyplot``, so the caller's global matplotlib backend and state are left untouched.
"""

from __future__ import annotations

import io
import os
import re

from primus_jax import paths


class MissingMatplotlib(ImportError):
    """matplotlib is not installed."""


def safe_name(name: str) -> str:
    """A file-name-safe version of a dataset name (``ego4d/v2`` -> ``ego4d_v2``)."""
    return re.sub(r"[^A-Za-z0-9_.-]+", "_", name).strip("_") or "dataset"


def _matplotlib():
    try:
        from matplotlib.backends.backend_agg import FigureCanvasAgg
        from matplotlib.figure import Figure
    except ImportError as e:
        raise MissingMatplotlib(
            "plots need matplotlib: pip install 'primus_jax[plots]' (or matplotlib>=3.8)"
        ) from e
    return Figure, FigureCanvasAgg


def plot_dataset(
    report: dict,
    dataset: str,
    path: str | os.PathLike,
    *,
    metric: str = "accuracy",
    dpi: int = 150,
) -> str:
    """Draws one dataset's curves and saves them as a PNG.

    Args:
        report: a few-shot report (see :mod:`~primus_jax.evaluation.report`).
        dataset: dataset name in ``report["datasets"]``.
        path: output PNG path.
        metric: ``accuracy``, ``macro_f1`` or ``balanced_accuracy``.
        dpi: resolution.

    Returns:
        The path written.
    """
    figure_cls, canvas_cls = _matplotlib()
    ds = report["datasets"][dataset]
    fig = figure_cls(figsize=(5.5, 4.0))
    canvas_cls(fig)
    ax = fig.add_subplot(1, 1, 1)
    all_ks = sorted({int(k) for m in ds["methods"].values() for k in m["results"] if int(k) > 0})
    for method, entry in ds["methods"].items():
        ks = sorted(int(k) for k in entry["results"])
        if ks == [0]:
            value = 100 * entry["results"]["0"][metric]["mean"]
            ax.axhline(value, linestyle="--", linewidth=1.2, color="0.4", label=f"{method} (k=0)")
            continue
        ks = [k for k in ks if k > 0]
        means = [100 * entry["results"][str(k)][metric]["mean"] for k in ks]
        errs = [100 * (entry["results"][str(k)][metric]["stderr"] or 0.0) for k in ks]
        ax.errorbar(ks, means, yerr=errs, marker="o", markersize=3.5, capsize=3, label=method)
    ax.set_xscale("log")
    if all_ks:
        ax.set_xticks(all_ks)
        ax.set_xticklabels([str(k) for k in all_ks])
        ax.minorticks_off()
    ax.set_xlabel("labelled windows per class (k)")
    ax.set_ylabel(f"test {metric.replace('_', '-')} (%)")
    trials = {report["runs"][m["run_id"]]["trials"] for m in ds["methods"].values()}
    ax.set_title(f"{dataset}: mean ± s.e. over {'/'.join(map(str, sorted(trials)))} trials")
    ax.grid(True, which="major", alpha=0.3)
    ax.legend(fontsize=8, loc="best")
    fig.tight_layout()
    buffer = io.BytesIO()  # savefig needs a local file; the bytes go through the path layer
    fig.savefig(buffer, format="png", dpi=dpi)
    out = paths.path(path)
    out.write_bytes(buffer.getvalue())
    return os.fspath(out)
