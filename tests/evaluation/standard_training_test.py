"""Standard Training: it learns, it is deterministic, its schedule is the reference's, and in
the trial loop its report is valid and paired with the probes (same k-shot windows).

Every fit here has the same shape (120 windows, batch 32, 120 steps, small encoder), so the
train step compiles once for the whole file."""

import dataclasses

import jax
import numpy as np
import optax
import pytest

from primus_jax import evaluation
from primus_jax.data.synthetic import SyntheticPairedSource
from primus_jax.evaluation import selection
from primus_jax.evaluation import standard_training as sup
from primus_jax.models import build

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
        config=kw.pop("config", CFG),
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


@pytest.mark.slow
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


# The fair budget and fine-tuning: 25 shots per class, 5 of them held out, so the fitted part
# is again 120 windows in batches of 32 and the train step compiled above is reused.
K_HOLD = 25
FAIR = dataclasses.replace(sup.FAIR_BUDGET, steps=150, batch_size=32, patience=4)


@pytest.fixture(scope="module")
def kshot25(data):
    return evaluation.sample_kshot(data["train_y"], K_HOLD, seed=0, num_classes=C).indices


def test_named_budgets_and_the_fair_schedule():
    methods = evaluation.DEFAULT_METHODS
    assert methods["standard_training_reference"] == sup.SupervisedConfig()  # 20 epochs
    assert methods["standard_training"] == sup.FAIR_BUDGET
    assert methods["finetune"].init == "encoder" and methods["finetune"].lr == 1e-4
    # ~100 epochs of batches of 64, clipped to [300, 2000] steps.
    assert sup.schedule_lengths(48, sup.FAIR_BUDGET) == (300, 10)
    assert sup.schedule_lengths(240, sup.FAIR_BUDGET) == (375, 10)
    assert sup.schedule_lengths(2329, sup.FAIR_BUDGET) == (2000, 20)
    # Held-out split: floor(20 %) of each class with >= 5 shots, none from smaller classes.
    y = np.repeat(np.arange(3), [25, 5, 4])
    fit, hold = sup.holdout_split(y, sup.FAIR_BUDGET, seed=1)
    assert np.bincount(y[hold], minlength=3).tolist() == [5, 1, 0]
    assert len(np.intersect1d(fit, hold)) == 0 and len(fit) + len(hold) == len(y)
    again = sup.holdout_split(y, sup.FAIR_BUDGET, seed=1)
    np.testing.assert_array_equal(again[1], hold)
    assert not np.array_equal(sup.holdout_split(y, sup.FAIR_BUDGET, seed=2)[1], hold)


def test_fair_budget_fits_the_shots_and_keeps_the_best_held_out_check(data, kshot25):
    fit = _fit(data, kshot25, seed=0, config=FAIR)
    info = fit.info
    assert (info["n_fit"], info["n_holdout"], info["batch_size"]) == (120, 30, 32)
    assert info["train_accuracy"] >= 0.95, info  # a trained model on the shots
    steps, losses = zip(*info["holdout_checks"], strict=True)
    assert info["kept_step"] == steps[int(np.argmin(losses))]
    assert info["holdout_loss"] == min(losses)
    acc = np.mean(fit.predict(data["test_x"]) == data["test_y"])
    assert acc > 0.45, acc
    # A learning rate that overfits: the held-out loss stops improving, training stops
    # `patience` checks after the best one, and the best check's weights are the ones kept.
    hot = _fit(
        data, kshot25, seed=0, config=dataclasses.replace(FAIR, lr=3e-2, patience=2, steps=50)
    )
    steps, losses = zip(*hot.info["holdout_checks"], strict=True)
    if hot.info["stopped_early"]:
        best = int(np.argmin(losses))
        assert len(steps) == best + 1 + 2 and hot.info["kept_step"] == steps[best]
    assert hot.info["steps_run"] == steps[-1]


@pytest.mark.slow
def test_finetune_changes_the_encoder_and_beats_its_frozen_probe(data, monkeypatch):
    """A random encoder's frozen mmcl features are poor here; fine-tuning the same encoder on
    the same shots (and reading the same L2-normalised mmcl) must do at least as well."""
    settings = dict(sup.model_settings(MODEL))
    model = build.encoder_from_config(settings)
    start = jax.device_get(build.init_params(model, jax.random.key(0)))
    emb = {k: model.apply({"params": start}, data[f"{k}_x"])["mmcl"] for k in ("train", "test")}
    flat = {k: np.asarray(v) for k, v in emb.items()}
    ft = sup.StandardTraining(
        "finetune",
        dataclasses.replace(sup.FINETUNE_BUDGET, steps=150, batch_size=32, patience=4),
        model=MODEL,
        init_params=start,
    )
    assert ft.report_config()["kind"] == "finetune"
    fits, fit_sup = [], sup.fit_supervised
    monkeypatch.setattr(
        sup, "fit_supervised", lambda *a, **kw: fits.append(fit_sup(*a, **kw)) or fits[-1]
    )
    out = evaluation.run_fewshot(
        flat["train"],
        data["train_y"],
        flat["test"],
        data["test_y"],
        train_windows=data["train_x"],
        test_windows=data["test_x"],
        methods={"logreg": evaluation.LogisticConfig(), "finetune": ft},
        shots=[K_HOLD],
        trials=1,
        seed=0,
        num_classes=C,
    )
    probe = out["methods"]["logreg"]["results"][str(K_HOLD)]["accuracy"]["mean"]
    tuned = out["methods"]["finetune"]["results"][str(K_HOLD)]
    assert probe < 0.35  # the frozen random encoder is poor on this set
    assert tuned["accuracy"]["mean"] >= probe
    assert tuned["training"]["n_holdout"] == [30] and tuned["training"]["budget_steps"] == 150
    evaluation.validate(evaluation.make_report({"toy": out}))

    (fit,) = fits
    moved = jax.tree.map(
        lambda a, b: float(np.max(np.abs(np.asarray(a) - b))), fit.params["encoder"], start
    )
    del moved["ssl_head"]  # not on the path to the head: no gradient
    assert min(jax.tree.leaves(moved)) > 0, moved  # every other encoder tensor was trained
    with pytest.raises(ValueError, match="init_params"):
        _fit(data, np.arange(12), seed=0, config=ft.config)
