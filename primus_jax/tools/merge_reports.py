"""Merges few-shot reports of several encoders into one table and plot.

    python -m primus_jax.tools.merge_reports --output runs/hapt_demo \
        PRIMUS=runs/hapt_demo/eval_primus/fewshot.json:logreg \
        SimCLR=runs/hapt_demo/eval_simclr/fewshot.json:logreg \
        "Standard Training=runs/hapt_demo/eval_random/fewshot.json:standard_training"

Each input is ``NAME=PATH[:METHOD]``: the report at PATH, keeping only METHOD (every method
when omitted, then named ``NAME/<method>``) renamed to NAME. Reports on different splits are
refused (``primus_jax.evaluation.merge_reports``). Writes fewshot.json, fewshot.md and one
plot per dataset into ``--output``.
"""

from __future__ import annotations

import argparse
import copy

from primus_jax import evaluation as ev


def _select(report: dict, name: str, method: str | None) -> dict:
    report = copy.deepcopy(report)
    for ds_name, ds in report["datasets"].items():
        if method is None:
            ds["methods"] = {f"{name}/{m}": e for m, e in ds["methods"].items()}
        elif method not in ds["methods"]:
            known = sorted(ds["methods"])
            raise SystemExit(f"{name}: {ds_name} has no method {method!r} (has {known})")
        else:
            ds["methods"] = {name: ds["methods"][method]}
    return report


def main(argv=None) -> dict:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("inputs", nargs="+", help="NAME=PATH[:METHOD]")
    ap.add_argument("--output", required=True)
    ap.add_argument("--no_plots", action="store_true")
    args = ap.parse_args(argv)
    reports = []
    for spec in args.inputs:
        name, sep, rest = spec.partition("=")
        if not sep or not name:
            raise SystemExit(f"bad input {spec!r}: expected NAME=PATH[:METHOD]")
        path, method = (rest, "") if rest.endswith(".json") else rest.rsplit(":", 1)
        reports.append(_select(ev.load_report(path), name, method or None))
    merged = ev.merge_reports(reports)
    paths = ev.write_report(merged, args.output, plots=not args.no_plots)
    print(ev.to_markdown(merged))
    print("wrote", ", ".join(paths.values()))
    return merged


if __name__ == "__main__":
    main()
