"""Merges few-shot reports of several encoders into one table and plot.

    python -m primus_jax.tools.merge_reports --output runs/hapt_demo \
        PRIMUS=runs/hapt_demo/eval_primus/fewshot.json:logreg \
        SimCLR=runs/hapt_demo/eval_simclr/fewshot.json:logreg \
        "Standard Training=runs/hapt_demo/eval_random/fewshot.json:standard_training"

Each input is ``NAME=PATH[:METHOD]``: the report at PATH, keeping only METHOD renamed to NAME
(every method, named ``NAME/<method>``, when omitted). Reports on different splits are refused.
Writes fewshot.json, fewshot.md and one plot per dataset into ``--output``.
"""

from __future__ import annotations

import copy
from collections.abc import Sequence

from absl import app, flags

from primus_jax import cli_errors
from primus_jax.evaluation import report

_OUTPUT = flags.DEFINE_string("output", None, "Directory for the merged report.")
_NO_PLOTS = flags.DEFINE_boolean("no_plots", False, "Skip the PNG plots.")


def _select(rep: dict, name: str, method: str | None) -> dict:
    rep = copy.deepcopy(rep)
    for ds_name, ds in rep["datasets"].items():
        if method is None:
            ds["methods"] = {f"{name}/{m}": e for m, e in ds["methods"].items()}
        elif method not in ds["methods"]:
            known = sorted(ds["methods"])
            raise app.UsageError(f"{name}: {ds_name} has no method {method!r} (has {known})")
        else:
            ds["methods"] = {name: ds["methods"][method]}
    return rep


def merge(inputs: Sequence[str], output: str, *, plots: bool = True) -> dict:
    """Merges ``NAME=PATH[:METHOD]`` inputs, writes them into ``output``; returns the report."""
    reports = []
    for spec in inputs:
        name, sep, rest = spec.partition("=")
        if not sep or not name:
            raise app.UsageError(f"bad input {spec!r}: expected NAME=PATH[:METHOD]")
        path, method = (
            (rest, "") if rest.endswith(".json") or ":" not in rest else rest.rsplit(":", 1)
        )
        reports.append(_select(report.load_report(path), name, method or None))
    try:
        merged = report.merge_reports(reports)
    except ValueError as e:  # the reports disagree (splits, run metadata, duplicate names)
        raise cli_errors.UserError(f"cannot merge {', '.join(inputs)}: {e}") from None
    paths = report.write_report(merged, output, plots=plots)
    print(report.to_markdown(merged))
    print("wrote", ", ".join(paths.values()))
    return merged


def main(argv: Sequence[str]) -> None:
    if len(argv) < 2:
        raise app.UsageError("give at least one NAME=PATH[:METHOD]")
    merge(argv[1:], _OUTPUT.value, plots=not _NO_PLOTS.value)


if __name__ == "__main__":
    flags.mark_flag_as_required("output")
    cli_errors.run(main)
