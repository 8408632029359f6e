"""Report building, format checks, merging, markdown and plots."""

import copy
import json

import numpy as np
import pytest

from primus_jax.evaluation import fewshot, plots, report, report_types

D, C = 16, 4


@pytest.fixture(scope="module")
def results():
    rng = np.random.default_rng(0)
    centres = rng.normal(size=(C, D))
    y_tr, y_te = np.repeat(np.arange(C), 12), np.repeat(np.arange(C), 10)
    x_tr = centres[y_tr] + 0.8 * rng.normal(size=(len(y_tr), D))
    x_te = centres[y_te] + 0.8 * rng.normal(size=(len(y_te), D))
    return fewshot.run_fewshot(
        x_tr,
        y_tr,
        x_te,
        y_te,
        shots=(1, 2, 20),
        trials=3,
        class_prompt_emb=centres,
        class_names=["walk", "run", "sit", "stand"],
    )


def test_report_validates_and_files_are_written(results, tmp_path):
    rep = report.make_report(
        {"toy": results}, run_id="r1", encoder_checkpoint="/ckpt/7", embedding_key="mmcl"
    )
    paths = report.write_report(rep, tmp_path)
    assert set(paths) == {"json", "markdown", "plot:toy"}
    loaded = report.load_report(paths["json"])  # load_report validates against the schema
    assert loaded == json.loads(json.dumps(rep))
    assert loaded["schema"] == report_types.SCHEMA_VERSION
    run = loaded["runs"]["r1"]
    assert run["encoder_checkpoint"] == "/ckpt/7" and run["embedding_key"] == "mmcl"
    assert run["seed"] == 0 and run["trials"] == 3 and run["shots"] == [1, 2, 20]
    assert run["hardware"]["jax_backend"] == "cpu" and run["software"]["jax"]
    entry = loaded["datasets"]["toy"]["methods"]["logreg"]["results"]["2"]
    assert set(entry["accuracy"]) == {"mean", "stderr", "trials"}
    assert entry["n_train"] == 8 and entry["n_test"] == 40
    with open(paths["plot:toy"], "rb") as f:
        assert f.read(8) == b"\x89PNG\r\n\x1a\n"
    md = open(paths["markdown"], encoding="utf-8").read()
    assert "| method | zero-shot | k=1 | k=2 | k=20 |" in md
    assert "## toy: macro-f1 (%)" in md and "†" in md  # k=20 exceeds the 12 windows per class
    mean = 100 * entry["accuracy"]["mean"]
    stderr = 100 * entry["accuracy"]["stderr"]
    assert f"{mean:.1f} ± {stderr:.1f}" in md


def test_schema_rejects_malformed_reports(results):
    rep = report.make_report({"toy": results}, run_id="r1")
    report_types.validate(rep)
    broken = copy.deepcopy(rep)
    del broken["datasets"]["toy"]["methods"]["ridge"]["results"]["1"]["macro_f1"]
    with pytest.raises(report_types.ReportError, match="macro_f1"):
        report_types.validate(broken)
    broken = copy.deepcopy(rep)
    broken["datasets"]["toy"]["methods"]["ridge"]["results"]["1"]["accuracy"]["mean"] = "0.5"
    with pytest.raises(report_types.ReportError, match="expected number"):
        report_types.validate(broken)
    broken = copy.deepcopy(rep)
    broken["datasets"]["toy"]["methods"]["ridge"]["results"]["1"]["accuracy"]["mean"] = np.nan
    with pytest.raises(report_types.ReportError):
        report_types.validate(broken)
    broken = copy.deepcopy(rep)
    broken["datasets"]["toy"]["methods"]["ridge"]["results"]["one"] = {}
    with pytest.raises(report_types.ReportError, match="does not match"):
        report_types.validate(broken)
    broken = copy.deepcopy(rep)
    broken["schema"] = "primus_jax.fewshot/0"
    with pytest.raises(report_types.ReportError):
        report_types.validate(broken)
    broken = copy.deepcopy(rep)
    broken["runs"]["r1"]["seed"] = True  # a bool is not a JSON integer
    with pytest.raises(report_types.ReportError):
        report_types.validate(broken)


def test_merge_reports(results):
    primus = report.make_report({"toy": results}, run_id="primus", encoder_checkpoint="a")
    baseline = report.make_report({"toy": results}, run_id="imu2clip", encoder_checkpoint="b")
    with pytest.raises(ValueError, match="occurs twice"):
        report.merge_reports([primus, baseline])
    merged = report.merge_reports([primus, baseline], prefixes=["primus", "imu2clip"])
    methods = merged["datasets"]["toy"]["methods"]
    assert "primus/logreg" in methods and "imu2clip/ridge" in methods
    assert methods["imu2clip/ridge"]["run_id"] == "imu2clip"
    assert set(merged["runs"]) == {"primus", "imu2clip"}
    assert "imu2clip/logreg" in report.to_markdown(merged)
    other_split = copy.deepcopy(baseline)
    other_split["datasets"]["toy"]["label_fingerprint"] = "0" * 64
    with pytest.raises(ValueError, match="different splits"):
        report.merge_reports([primus, other_split], prefixes=["p", "b"])


def test_make_report_rejects_mixed_runs(results):
    other = copy.deepcopy(results)
    other["seed"] = 1
    with pytest.raises(ValueError, match="seed"):
        report.make_report({"a": results, "b": other})


def test_plots_degrade_without_matplotlib(results, tmp_path, monkeypatch, caplog):
    def missing():
        raise plots.MissingMatplotlib("plots need matplotlib")

    monkeypatch.setattr(plots, "_matplotlib", missing)
    rep = report.make_report({"toy/v2": results}, run_id="r1")
    paths = report.write_report(rep, tmp_path)
    assert set(paths) == {"json", "markdown"}
    assert "plots need matplotlib" in caplog.text
    with pytest.raises(ImportError):
        plots.plot_dataset(rep, "toy/v2", tmp_path / "x.png")
    assert plots.safe_name("toy/v2") == "toy_v2"
