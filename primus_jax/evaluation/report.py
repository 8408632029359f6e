"""Few-shot reports: build, merge, load and write ``fewshot.json``, a table and plots.

:func:`make_report` wraps :func:`~primus_jax.evaluation.fewshot.run_fewshot` outputs into a
report; :func:`merge_reports` combines runs (refusing datasets whose splits differ);
:func:`write_report` is the one writer (JSON, markdown, one PNG per dataset). Every report is
checked against :mod:`~primus_jax.evaluation.report_types` when built, loaded and written.
"""

from __future__ import annotations

import copy
import datetime
import json
import os
import platform
import uuid
from collections.abc import Mapping, Sequence
from importlib import metadata

import jax
from absl import logging

from primus_jax import cli_errors, paths
from primus_jax.evaluation import plots as plots_lib
from primus_jax.evaluation import report_types

_DATASET_FACTS = (
    "num_classes",
    "class_names",
    "n_train_pool",
    "n_test",
    "train_class_counts",
    "test_class_counts",
    "unlabelled_dropped",
    "label_fingerprint",
)
_RUN_FACTS = ("seed", "trials", "shots", "sampler")


def _utc_now() -> str:
    return datetime.datetime.now(datetime.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def _version(package: str) -> str | None:
    try:
        return metadata.version(package)
    except metadata.PackageNotFoundError:
        return None


def environment() -> tuple[dict, dict]:
    """(hardware, software) descriptions for the run metadata. No host names or user names."""
    devices = jax.devices()
    hardware = {
        "platform": platform.platform(),
        "machine": platform.machine(),
        "processor": platform.processor() or None,
        "cpu_count": os.cpu_count(),
        "jax_backend": jax.default_backend(),
        "jax_devices": sorted({d.device_kind for d in devices}),
        "jax_device_count": len(devices),
    }
    software = {"python": platform.python_version()}
    for pkg in ("primus_jax", "jax", "jaxlib", "optax", "numpy"):
        software[pkg] = _version(pkg)
    return hardware, software


def make_report(
    results: Mapping[str, dict],
    *,
    run_id: str | None = None,
    encoder_checkpoint: str | None = None,
    embedding_key: str | None = None,
    notes: Mapping[str, object] | None = None,
) -> dict:
    """Wraps :func:`~primus_jax.evaluation.fewshot.run_fewshot` outputs into a report.

    Args:
        results: dataset name -> ``run_fewshot`` output; all from one run (same seed, trials,
            shots and sampler).
        run_id: key of this run in ``runs``; default ``run-<UTC time>-<random hex>``.
        encoder_checkpoint: path or id of the encoder checkpoint that made the embeddings.
        embedding_key: which output was probed (the reference uses the ``mmcl`` head).
        notes: free-form JSON-serialisable metadata (config hash, git commit, ...).

    Returns:
        A report dict (valid against :mod:`~primus_jax.evaluation.report_types`).
    """
    if not results:
        raise ValueError("no datasets given")
    created = _utc_now()
    run_id = run_id or f"run-{created.replace(':', '').replace('-', '')}-{uuid.uuid4().hex[:6]}"
    first = next(iter(results.values()))
    for name, res in results.items():
        diffs = [key for key in _RUN_FACTS if res[key] != first[key]]
        if diffs:
            raise ValueError(f"dataset {name!r} differs from the others in {diffs}; one run each")
    hardware, software = environment()
    run = {
        "created_utc": created,
        "encoder_checkpoint": None if encoder_checkpoint is None else str(encoder_checkpoint),
        "embedding_key": embedding_key,
        **{key: copy.deepcopy(first[key]) for key in _RUN_FACTS},
        "hardware": hardware,
        "software": software,
        "notes": dict(notes or {}),
        "timing_s": {name: copy.deepcopy(res["timing_s"]) for name, res in results.items()},
    }
    datasets = {}
    for name, res in results.items():
        entry = {key: copy.deepcopy(res[key]) for key in _DATASET_FACTS}
        entry["methods"] = {
            method: {
                "run_id": run_id,
                "probe": m["probe"],
                "config": copy.deepcopy(m["config"]),
                "embedding_dim": m.get("embedding_dim", res["embedding_dim"]),
                "checks": copy.deepcopy(res["checks"]),
                "results": copy.deepcopy(m["results"]),
            }
            for method, m in res["methods"].items()
        }
        datasets[name] = entry
    report = {
        "schema": report_types.SCHEMA_VERSION,
        "created_utc": created,
        "runs": {run_id: run},
        "datasets": datasets,
    }
    report_types.validate(report)
    return report


def merge_reports(reports: Sequence[dict], *, prefixes: Sequence[str] | None = None) -> dict:
    """Combines reports of several runs into one.

    Args:
        reports: reports (e.g. from :func:`load_report`), each valid.
        prefixes: optional, one per report: its method names become ``"<prefix>/<method>"``.
            Needed when two runs used the same method names on the same dataset.

    Returns:
        A new report. Raises ValueError if a dataset's splits differ between reports, if a
        (dataset, method) pair occurs twice, or if one run id carries different metadata.
    """
    if prefixes is not None and len(prefixes) != len(reports):
        raise ValueError("need one prefix per report")
    merged = {
        "schema": report_types.SCHEMA_VERSION,
        "created_utc": _utc_now(),
        "runs": {},
        "datasets": {},
    }
    for i, report in enumerate(reports):
        report_types.validate(report)
        for run_id, run in report["runs"].items():
            if run_id in merged["runs"] and merged["runs"][run_id] != run:
                raise ValueError(f"run id {run_id!r} occurs with different metadata")
            merged["runs"][run_id] = copy.deepcopy(run)
        for name, ds in report["datasets"].items():
            target = merged["datasets"].setdefault(
                name, {**{k: copy.deepcopy(ds[k]) for k in _DATASET_FACTS}, "methods": {}}
            )
            for key in _DATASET_FACTS:
                if target[key] != ds[key]:
                    raise ValueError(
                        f"dataset {name!r}: {key} differs between reports; "
                        "results on different splits cannot share a table"
                    )
            for method, entry in ds["methods"].items():
                new_name = method if prefixes is None else f"{prefixes[i]}/{method}"
                if new_name in target["methods"]:
                    raise ValueError(f"dataset {name!r}: method {new_name!r} occurs twice")
                target["methods"][new_name] = copy.deepcopy(entry)
    report_types.validate(merged)
    return merged


def load_report(path: str | os.PathLike) -> dict:
    """Reads a ``fewshot.json`` and checks it; errors name the file (and the JSON path):
    ``cli_errors.FileError`` (unreadable JSON), :class:`~.report_types.ReportError`."""
    report = cli_errors.read_json(path)
    try:
        report_types.validate(report)
    except report_types.ReportError as e:
        raise report_types.ReportError(f"{os.fspath(path)}: not a few-shot report: {e}") from None
    return report


def _cell(entry: dict | None, metric: str) -> str:
    if entry is None:
        return "–"
    m = entry[metric]
    text = f"{100 * m['mean']:.1f}"
    if m["stderr"] is not None:
        text += f" ± {100 * m['stderr']:.1f}"
    return text + (" †" if entry["truncated_classes"] else "")


def to_markdown(report: dict, metrics: Sequence[str] = ("accuracy", "macro_f1")) -> str:
    """Markdown tables: one per dataset and metric, rows = methods, columns = k.

    Cells read ``mean ± stderr`` in percent; ``†`` marks k values where some class had fewer
    than k train windows (all of them were used). k = 0 is the zero-shot column.
    """
    lines = ["# Few-shot linear probing", ""]
    lines.append(f"Schema `{report['schema']}`, created {report['created_utc']}.")
    lines.append("")
    for run_id, run in report["runs"].items():
        lines.append(
            f"- run `{run_id}`: checkpoint `{run['encoder_checkpoint']}`, embedding "
            f"`{run['embedding_key']}`, seed {run['seed']}, {run['trials']} trials, "
            f"sampler `{run['sampler']}`, {run['hardware'].get('jax_backend', '?')} backend."
        )
    for name, ds in report["datasets"].items():
        ks = sorted({int(k) for m in ds["methods"].values() for k in m["results"]})
        header = ["method"] + ["zero-shot" if k == 0 else f"k={k}" for k in ks]
        for metric in metrics:
            lines += ["", f"## {name}: {metric.replace('_', '-')} (%)", ""]
            lines.append(
                f"{ds['num_classes']} classes, {ds['n_test']} test windows, "
                f"train pool {ds['n_train_pool']}; mean ± standard error over trials."
            )
            lines += ["", "| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
            for method, m in ds["methods"].items():
                cells = [_cell(m["results"].get(str(k)), metric) for k in ks]
                lines.append("| " + " | ".join([method, *cells]) + " |")
        if any(
            e["truncated_classes"] for m in ds["methods"].values() for e in m["results"].values()
        ):
            lines += ["", "† some classes had fewer than k train windows; all of them were used."]
    return "\n".join(lines) + "\n"


def write_report(
    report: dict,
    outdir: str | os.PathLike,
    *,
    plots: bool = True,
    plot_metric: str = "accuracy",
) -> dict[str, str]:
    """Validates ``report`` and writes ``fewshot.json``, ``fewshot.md`` and one PNG per dataset.

    Plots need matplotlib (the ``[plots]`` extra); without it they are skipped with a warning.

    Returns:
        File kind (``"json"``, ``"markdown"``, ``"plot:<dataset>"``) -> path written.
    """
    typed = report_types.parse(report)
    outdir = paths.makedirs(outdir)
    written = {
        "json": paths.write_text(
            outdir / "fewshot.json", json.dumps(typed.to_dict(), indent=1, allow_nan=False) + "\n"
        ),
        "markdown": paths.write_text(outdir / "fewshot.md", to_markdown(report)),
    }
    if plots:
        try:
            for name in report["datasets"]:
                path = outdir / f"fewshot_{plots_lib.safe_name(name)}.png"
                written[f"plot:{name}"] = plots_lib.plot_dataset(
                    report, name, path, metric=plot_metric
                )
        except plots_lib.MissingMatplotlib as e:
            logging.warning("%s; skipping plots", e)
    return written
