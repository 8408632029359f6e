"""The merge_reports CLI: NAME=PATH[:METHOD] inputs into one report, table and plot."""

import json
import os
import subprocess
import sys

import pytest
from absl import app
from support import REPO

from primus_jax.tools import merge_reports

GOLDEN = os.path.join(REPO, "tests", "evaluation", "golden", "fewshot_report.json")


def test_merge_selects_and_renames_methods(tmp_path):
    merged = merge_reports.merge(
        [f"Logistic={GOLDEN}:logreg", f"ST={GOLDEN}:standard_training", f"all={GOLDEN}"],
        str(tmp_path),
        plots=False,
    )
    methods = merged["datasets"]["toy"]["methods"]
    assert list(methods)[:2] == ["Logistic", "ST"] and "all/zeroshot" in methods
    with open(GOLDEN, encoding="utf-8") as f:
        golden = json.load(f)["datasets"]["toy"]["methods"]
    assert methods["ST"] == golden["standard_training"]
    assert json.loads((tmp_path / "fewshot.json").read_text()) == merged
    assert "| Logistic |" in (tmp_path / "fewshot.md").read_text()
    with pytest.raises(app.UsageError, match="no method 'svm'"):
        merge_reports.merge([f"x={GOLDEN}:svm"], str(tmp_path))
    with pytest.raises(app.UsageError, match="NAME=PATH"):
        merge_reports.merge([GOLDEN], str(tmp_path))


def test_cli(tmp_path):
    r = subprocess.run(
        [
            sys.executable,
            "-m",
            "primus_jax.tools.merge_reports",
            "--output",
            str(tmp_path),
            "--no_plots",
            f"PRIMUS={GOLDEN}:logreg",
            f"Ridge={GOLDEN}:ridge",
        ],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert r.returncode == 0, r.stderr[-3000:]
    merged = json.loads((tmp_path / "fewshot.json").read_text())
    assert list(merged["datasets"]["toy"]["methods"]) == ["PRIMUS", "Ridge"]
    assert not list(tmp_path.glob("*.png"))
