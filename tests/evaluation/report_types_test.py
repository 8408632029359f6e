"""The fewshot.json layout, pinned: a small deterministic evaluation (random-init encoder on a
synthetic .npz, every kind of method) against golden/fewshot_report.json next to this file,
the typed round trip, and clear errors on malformed reports.

Regenerate the golden file after an intended change of the layout or the numbers with
``PRIMUS_UPDATE_GOLDEN=1 pytest tests/evaluation/report_types_test.py``."""

import copy
import json
import os
import zlib

import numpy as np
import pytest

from primus_jax.data.synthetic import SyntheticPairedSource
from primus_jax.embed import pipeline as embed_pipeline
from primus_jax.evaluation import report, report_types, run, settings

GOLDEN = os.path.join(os.path.dirname(os.path.abspath(__file__)), "golden", "fewshot_report.json")
MM_DIM = 16
MASK = "<masked>"


def _fake_text_encoder(texts, encoder, model_dir=None):
    """Deterministic unit vectors per sentence (a stand-in for MiniLM)."""
    assert encoder == "fake"
    rows = [np.random.default_rng(zlib.crc32(t.encode())).normal(size=MM_DIM) for t in texts]
    return np.stack(rows).astype(np.float32)


def _config(path):
    c = settings.settings()
    c.mode = "fewshot"
    c.data = f"npz:{path}"
    c.shots = (1, 2, 4)
    c.trials = 2
    c.methods = ("logreg", "ridge", "ridge_cv", "logreg_zs", "standard_training")
    c.text_encoder = "fake"
    c.batch_size = 16
    c.run_name = "golden"
    c.standard_training_shots = (2,)
    c.standard_training_steps = 2
    c.embedding_map = (
        0  # t-SNE coordinates are not portable across CPUs (tests/evaluation/maps_test.py)
    )
    c.model = dict(hidden=32, ssl_dim=16, mm_dim=MM_DIM, conv_channels=8, pool_bins=8)
    return c


def _mask(rep: dict) -> dict:
    """Volatile fields (times, environment, paths, solver residuals) replaced, types kept."""
    rep = copy.deepcopy(rep)
    rep["created_utc"] = MASK
    for run_meta in rep["runs"].values():
        run_meta["created_utc"] = MASK
        run_meta["hardware"], run_meta["software"] = {}, {}
        run_meta["notes"]["wall_s"] = 0.0
        run_meta["notes"]["dataset"] = MASK
        for methods in run_meta["timing_s"].values():
            for per_k in methods.values():
                per_k.update(dict.fromkeys(per_k, 0.0))
    for ds in rep["datasets"].values():
        for m in ds["methods"].values():
            for entry in m["results"].values():
                if "max_grad_norm" in entry.get("fit", {}):
                    entry["fit"]["max_grad_norm"] = 0.0
                if "train_s" in entry.get("training", {}):
                    entry["training"]["train_s"] = [0.0] * len(entry["training"]["train_s"])
    return rep


# The golden file pins the layout: keys and their order, nesting, types, list lengths, strings
# and integers exactly. Floats may differ by one flipped prediction of the 30 test windows
# (another CPU's float rounding; the numbers themselves are checked by the evaluation tests),
# and solver diagnostics (iterations, residuals) are not compared.
_SOLVER_KEYS = {"iterations", "max_iterations", "grad_norm", "max_grad_norm", "converged"}


def assert_same_report(got, want, path="$"):
    assert type(got) is type(want), f"{path}: {type(got).__name__} != {type(want).__name__}"
    if isinstance(want, dict):
        assert list(got) == list(want), f"{path}: keys {list(got)} != {list(want)}"
        for k in want:
            if path.endswith(".fit") and k in _SOLVER_KEYS:
                continue
            assert_same_report(got[k], want[k], f"{path}.{k}")
    elif isinstance(want, list):
        assert len(got) == len(want), f"{path}: {len(got)} items != {len(want)}"
        for i, (g, w) in enumerate(zip(got, want)):
            assert_same_report(g, w, f"{path}[{i}]")
    elif isinstance(want, float):
        assert got == pytest.approx(want, rel=1e-3, abs=0.035), f"{path}: {got} != {want}"
    else:
        assert got == want, f"{path}: {got!r} != {want!r}"


def test_the_comparison_sees_a_layout_change():
    golden = {"a": {"fit": {"iterations": 3, "l2": 1.0}, "b": [1, 2]}, "c": 0.5}
    assert_same_report(copy.deepcopy(golden), golden)
    for edit in (
        lambda r: r.pop("c"),
        lambda r: r["a"]["b"].append(3),
        lambda r: r.update(c=0.6),
        lambda r: r["a"]["fit"].update(l2=2.0),
        lambda r: r["a"].update(b="1,2"),
    ):
        broken = copy.deepcopy(golden)
        edit(broken)
        with pytest.raises(AssertionError):
            assert_same_report(broken, golden)


@pytest.fixture(scope="module")
def evaluated(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("golden")
    src = SyntheticPairedSource(60, 8, seed=0, num_classes=3)
    names = np.array(["sit", "stand", "walk"])
    path = tmp / "toy.npz"
    np.savez(path, X=src.imu, y=names[src.label % 3], split=np.array(["train", "test"] * 30))
    mp = pytest.MonkeyPatch()
    mp.setattr(embed_pipeline, "embed_texts", _fake_text_encoder)
    try:
        rep = run.evaluate(_config(path), str(tmp / "eval"))
    finally:
        mp.undo()
    return rep, tmp / "eval" / "fewshot.json"


@pytest.mark.slow
def test_report_matches_the_golden_file(evaluated):
    rep, path = evaluated
    written = json.loads(path.read_text())
    assert written == json.loads(json.dumps(rep))
    masked = _mask(written)
    if os.environ.get("PRIMUS_UPDATE_GOLDEN") == "1":
        os.makedirs(os.path.dirname(GOLDEN), exist_ok=True)
        with open(GOLDEN, "w", encoding="utf-8") as f:
            json.dump(masked, f, indent=1)
            f.write("\n")
    with open(GOLDEN, encoding="utf-8") as f:
        golden = json.load(f)
    assert_same_report(masked, golden)
    methods = golden["datasets"]["toy"]["methods"]
    assert list(methods) == ["logreg", "ridge", "ridge_cv", "logreg_zs", "zeroshot",
                             "standard_training"]  # fmt: skip
    assert list(methods["zeroshot"]["results"]) == ["0"]
    assert list(methods["standard_training"]["results"]) == ["2"]


def test_typed_round_trip(evaluated):
    rep, _ = evaluated
    with open(GOLDEN, encoding="utf-8") as f:
        golden = json.load(f)
    for d in (golden, json.loads(json.dumps(rep))):
        typed = report_types.parse(d)
        assert isinstance(typed.datasets["toy"].methods["logreg"].results["1"].accuracy.mean, float)
        assert typed.to_dict() == d
        assert json.dumps(typed.to_dict()) == json.dumps(d)  # key order too
    fit = report_types.parse(golden).datasets["toy"].methods["logreg_zs"].results["1"].fit
    assert fit.init.from_ == "zeroshot_classifier"


@pytest.mark.parametrize(
    "edit,message",
    [
        (lambda r: r.pop("runs"), r"\$: missing required key 'runs'"),
        (
            lambda r: r["datasets"]["toy"]["methods"]["logreg"]["results"]["1"].pop("confusion"),
            r"\$\.datasets\.toy\.methods\.logreg\.results\.1: missing required key 'confusion'",
        ),
        (
            lambda r: r["datasets"]["toy"]["methods"]["ridge"].update(extra=1),
            r"\$\.datasets\.toy\.methods\.ridge: unexpected key 'extra'",
        ),
        (
            lambda r: r["datasets"]["toy"].update(n_test=-1),
            r"\$\.datasets\.toy\.n_test: -1 < minimum 0",
        ),
        (
            lambda r: r["datasets"]["toy"]["methods"]["logreg"].update(probe="svm"),
            r"\$\.datasets\.toy\.methods\.logreg\.probe: 'svm' not in",
        ),
        (
            lambda r: r["datasets"]["toy"]["methods"]["logreg"].update(run_id="nope"),
            r"run_id: 'nope' is not in runs",
        ),
        (
            lambda r: r["datasets"]["toy"]["methods"]["logreg"]["results"]["1"]["accuracy"].update(
                trials=[]
            ),
            r"accuracy\.trials: fewer than 1 items",
        ),
        (lambda r: r["runs"]["golden"].update(shots="1,2"), r"shots: expected array, got string"),
    ],
)
def test_malformed_reports_fail_naming_the_path(edit, message, tmp_path):
    with open(GOLDEN, encoding="utf-8") as f:
        broken = json.load(f)
    edit(broken)
    with pytest.raises(report_types.ReportError, match=message):
        report_types.validate(broken)
    path = tmp_path / "fewshot.json"
    path.write_text(json.dumps(broken))
    with pytest.raises(report_types.ReportError, match=message):
        report.load_report(path)
