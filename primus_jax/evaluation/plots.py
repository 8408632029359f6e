"""Accuracy-vs-shots plots in the style of the PRIMUS paper's Fig. 2, and embedding maps.

One PNG per dataset: the metric (in %) against labelled windows per class on a log x-axis, one
line per method with standard-error bars; zero-shot methods (k = 0 only) are drawn as dashed
horizontal lines. Runs that stored a 2-D map of the test embeddings
(``notes["embedding_map"][dataset]``, :mod:`~primus_jax.evaluation.maps`) add one scatter
panel each (one per encoder), coloured by class, right of the curves. matplotlib is an
optional dependency (``pip install primus_jax[plots]``); it is imported only when a plot is
drawn, and through ``Figure`` + the Agg canvas rather than ``pyplot``, so the caller's global
matplotlib backend and state are left untouched.
"""

from __future__ import annotations

import io
import os
import re

import numpy as np

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


def embedding_maps(report: dict, dataset: str) -> list[tuple[str, dict]]:
    """``(panel title, map)`` for every run with a stored map of ``dataset``, in the order of
    the dataset's methods; the title is the run's one method name, else its run id."""
    by_run: dict[str, list[str]] = {}
    for method, entry in report["datasets"][dataset]["methods"].items():
        by_run.setdefault(entry["run_id"], []).append(method)
    out = []
    for run_id, methods in by_run.items():
        m = (report["runs"][run_id]["notes"].get("embedding_map") or {}).get(dataset)
        if m:
            out.append((methods[0] if len(methods) == 1 else run_id, m))
    return out


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
    maps = embedding_maps(report, dataset)
    fig = figure_cls(figsize=(5.5 + 3.6 * len(maps), 4.0))
    canvas_cls(fig)
    ax = fig.add_subplot(1, 1 + len(maps), 1)
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
    names = ds.get("class_names") or [str(c) for c in range(ds["num_classes"])]
    cmap = "tab10" if ds["num_classes"] <= 10 else "tab20"
    for i, (title, m) in enumerate(maps, start=2):
        mx = fig.add_subplot(1, 1 + len(maps), i)
        xy, labels = np.asarray(m["xy"]), np.asarray(m["labels"])
        mx.scatter(
            xy[:, 0], xy[:, 1], c=labels, cmap=cmap, vmin=0, vmax=max(ds["num_classes"] - 1, 1), s=5
        )
        mx.set_title(f"{title}: t-SNE of {m['n']} test embeddings", fontsize=9)
        mx.set_xticks([])
        mx.set_yticks([])
        if i == 1 + len(maps):
            import matplotlib

            colours = matplotlib.colormaps[cmap]
            for c, name in enumerate(names):
                frac = c / max(ds["num_classes"] - 1, 1)
                mx.scatter([], [], color=colours(frac), s=12, label=name)
            mx.legend(fontsize=7, loc="center left", bbox_to_anchor=(1.0, 0.5), frameon=False)
    fig.tight_layout()
    buffer = io.BytesIO()  # savefig needs a local file; the bytes go through the path layer
    fig.savefig(buffer, format="png", dpi=dpi)
    out = paths.path(path)
    out.write_bytes(buffer.getvalue())
    return os.fspath(out)
