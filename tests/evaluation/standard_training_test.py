"""Standard Training: it learns, it is deterministic, its schedule is the reference's, and in
the trial loop its report is valid and paired with the probes (same k-shot windows).

Every fit here has the same shape (120 windows, batch 32, 120 steps, small encoder), so the
train step compiles once for the whole file."""

import jax
import numpy as np
import optax
import pytest

from primus_jax import evaluation
from primus_jax.data.synthetic import SyntheticPairedSource
from primus_jax.evaluation import selection
from primus_jax.evaluation import standard_training as sup

C = 6
K = 20  # shots per class: n = 120 windows per fit
MODEL = dict(hidden=64, ssl_dim=32, mm_dim=32)
CFG = sup.SupervisedConfig(steps=120, lr=3e-3, batch_size=32)


@pytest.fixture(scope="module")
def data():
    src = SyntheticPairedSource(900, 8, 0, num_classes=C)
    y = src.label.astype(np.int64)
    return {
        "train_x": src.imu[:600],
        "train_y": y[:600],
        "test_x": src.imu[600:],
        "test_y": y[600:],
    }


@pytest.fixture(scope="module")
def kshot(data):
    return evaluation.sample_kshot(data["train_y"], K, seed=0, num_classes=C).indices


def _fit(data, idx, seed, **kw):
    return sup.fit_supervised(
        data["train_x"][idx],
        data["train_y"][idx],
        C,
        seed=seed,
        model_config=MODEL,
        config=CFG,
        **kw,
    )


def test_schedule_lengths_follow_the_reference():
    d = sup.SupervisedConfig()
    assert sup.schedule_lengths(80, d) == (20, 10)  # 8 classes x 10 shots: T_max 20, warmup 10
    assert sup.schedule_lengths(6, d) == (20, 10)
    assert sup.schedule_lengths(3000, d) == (234, 10)  # int(3000 / 256 * 20)
    assert sup.schedule_lengths(51200, d) == (4000, 40)  # warmup = T_max // 100
    assert sup.schedule_lengths(3000, sup.SupervisedConfig(steps=50)) == (50, 10)
    assert sup.schedule_lengths(3000, sup.SupervisedConfig(steps=5)) == (5, 4)  # capped
    assert sup.schedule_lengths(3000, sup.SupervisedConfig(epochs=2)) == (23, 10)
    lr = optax.warmup_cosine_decay_schedule(0.0, 1e-4, 10, 20, 0.0)  # what a fit builds
    assert float(lr(0)) == 0.0 and float(lr(10)) == pytest.approx(1e-4)
    assert float(lr(20)) == pytest.approx(0.0, abs=1e-12)


def test_fit_learns_and_is_deterministic(data, kshot):
    fit = _fit(data, kshot, seed=0)
    assert fit.info["steps"] == 120 and fit.info["batch_size"] == 32
    assert fit.losses.shape == (120,)
    assert fit.losses[-10:].mean() < 0.7 * fit.losses[:10].mean()
    logits = fit.logits(data["test_x"])
    acc = np.mean(np.argmax(logits, 1) == data["test_y"])
    assert acc > 0.45, acc  # 300 held-out windows; chance is 1/6

    again = _fit(data, kshot, seed=0)
    np.testing.assert_array_equal(again.losses, fit.losses)
    np.testing.assert_array_equal(again.logits(data["test_x"]), logits)
    other = _fit(data, kshot, seed=1)
    assert not np.array_equal(other.losses, fit.losses)

    # Fine-tuning given encoder parameters: they are copied, not consumed by the donated step.
    start = fit.params["encoder"]
    tuned = _fit(data, kshot, seed=0, init_params=start)
    assert not np.array_equal(tuned.losses, fit.losses)
    jax.tree.map(np.asarray, start)  # still alive (reading a donated array would raise)
    with pytest.raises(ValueError, match="model_config"):
        sup.fit_supervised(
            data["train_x"][kshot], data["train_y"][kshot], C, seed=0, init_params=start
        )


def test_sweep_is_schema_valid_and_paired_with_run_fewshot(data, monkeypatch):
    rng = np.random.default_rng(1)
    train_ids = np.array([f"tr{i:04d}" for i in range(600)])
    test_ids = np.array([f"te{i:04d}" for i in range(300)])
    flat = {k: data[k].reshape(len(data[k]), -1) for k in ("train_x", "test_x")}

    # Record the windows each method trains on (both sides call these module attributes).
    seen = {"probe": [], "supervised": []}
    fit_probe, fit_sup = selection.fit_probe, sup.fit_supervised

    def probe_spy(x, *a, **kw):
        seen["probe"].append(np.asarray(x))
        return fit_probe(x, *a, **kw)

    def sup_spy(x, *a, **kw):
        seen["supervised"].append(np.asarray(x).reshape(len(x), -1))
        return fit_sup(x, *a, **kw)

    monkeypatch.setattr(selection, "fit_probe", probe_spy)
    monkeypatch.setattr(sup, "fit_supervised", sup_spy)

    common = dict(shots=[K], trials=2, seed=3, num_classes=C, class_names=list("abcdef"))
    probes = evaluation.run_fewshot(
        flat["train_x"],
        data["train_y"],
        flat["test_x"],
        data["test_y"],
        methods=["logreg"],
        train_ids=train_ids,
        test_ids=test_ids,
        **common,
    )
    # The supervised sweep gets the windows in another order: ids make the draws identical.
    o_tr, o_te = rng.permutation(600), rng.permutation(300)
    out = evaluation.run_fewshot(
        None,
        data["train_y"][o_tr],
        None,
        data["test_y"][o_te],
        train_windows=data["train_x"][o_tr],
        test_windows=data["test_x"][o_te],
        train_ids=train_ids[o_tr],
        test_ids=test_ids[o_te],
        methods={"standard_training": sup.StandardTraining(config=CFG, model=MODEL)},
        **common,
    )
    assert len(seen["probe"]) == len(seen["supervised"]) == 2
    for a, b in zip(seen["probe"], seen["supervised"], strict=True):
        np.testing.assert_array_equal(a, b)  # the same k-shot windows, in the same order

    # Same structure as run_fewshot's output, and the same dataset facts.
    assert set(out) == set(probes)
    for key in ("label_fingerprint", "n_train_pool", "n_test", "train_class_counts", "checks"):
        assert out[key] == probes[key], key
    assert out["embedding_dim"] == MODEL["mm_dim"]
    method = out["methods"]["standard_training"]
    assert method["probe"] == "logistic" and method["config"]["trains"] == "encoder+head"
    entry = method["results"][str(K)]
    assert entry["n_train"] == C * K and entry["shots_per_class"] == [K] * C
    assert len(entry["accuracy"]["trials"]) == 2
    assert entry["accuracy"]["mean"] > 0.4
    assert np.sum(entry["confusion"]) == 2 * 300

    # Schema-valid alone, beside the probes in one report, and through merge_reports.
    report = evaluation.make_report({"synthetic": out}, embedding_key="mmcl")
    evaluation.validate(report)
    both = {**probes, "methods": {**probes["methods"], **out["methods"]}}
    both["timing_s"] = {**probes["timing_s"], **out["timing_s"]}
    evaluation.validate(evaluation.make_report({"synthetic": both}))
    merged = evaluation.merge_reports(
        [evaluation.make_report({"synthetic": probes}), report], prefixes=["probe", "baseline"]
    )
    assert set(merged["datasets"]["synthetic"]["methods"]) == {
        "probe/logreg",
        "baseline/standard_training",
    }
