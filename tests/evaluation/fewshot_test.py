"""The few-shot sweep driver end to end on synthetic embeddings (D = 16, C = 4)."""

import dataclasses

import jax.numpy as jnp
import numpy as np
import pytest

from primus_jax.evaluation import evaluators, fewshot, probe, task

D, C = 16, 4


def _dataset(n_train, n_test, spread, seed=0):
    rng = np.random.default_rng(seed)
    centres = rng.normal(size=(C, D))
    y_tr, y_te = rng.integers(0, C, n_train), rng.integers(0, C, n_test)
    x_tr = centres[y_tr] + spread * rng.normal(size=(n_train, D))
    x_te = centres[y_te] + spread * rng.normal(size=(n_test, D))
    return x_tr.astype(np.float32), y_tr, x_te.astype(np.float32), y_te, centres


def test_separable_embeddings_reach_full_accuracy():
    x_tr, y_tr, x_te, y_te, centres = _dataset(300, 400, spread=0.05)
    prompts = [centres[c] + 0.01 * np.ones((3, D)) for c in range(C)]
    res = fewshot.run_fewshot(  # JAX arrays work as well as NumPy ones
        jnp.asarray(x_tr),
        jnp.asarray(y_tr),
        x_te,
        y_te,
        shots=(1, 5),
        trials=3,
        class_prompt_emb=prompts,
    )
    assert set(res["methods"]) == {"logreg", "ridge", "logreg_zs", "zeroshot"}
    for name in ("logreg", "logreg_zs"):
        for k in ("1", "5"):
            assert res["methods"][name]["results"][k]["accuracy"]["mean"] == 1.0
    assert res["methods"]["ridge"]["results"]["5"]["accuracy"]["mean"] == 1.0
    zero = res["methods"]["zeroshot"]["results"]["0"]
    assert zero["accuracy"] == {"mean": 1.0, "stderr": None, "trials": [1.0]}
    assert zero["n_train"] == 0


def test_shuffled_labels_give_chance():
    # Permuting train and test labels independently leaves no feature-label relation, so any
    # probe must score 1/C up to binomial noise (sd ~0.007 at 4000 test windows).
    x_tr, y_tr, x_te, y_te, _ = _dataset(400, 4000, spread=0.05, seed=1)
    rng = np.random.default_rng(2)
    y_tr, y_te = rng.permutation(y_tr), rng.permutation(y_te)
    res = fewshot.run_fewshot(
        x_tr, y_tr, x_te, y_te, shots=(20,), trials=3, methods=("logreg", "ridge")
    )
    for name in ("logreg", "ridge"):
        acc = res["methods"][name]["results"]["20"]["accuracy"]["mean"]
        assert abs(acc - 1 / C) < 0.04, (name, acc)


def test_same_seed_identical_numbers_and_different_seed_differs():
    x_tr, y_tr, x_te, y_te, _ = _dataset(200, 300, spread=0.9, seed=3)
    kwargs = dict(shots=(1, 3), trials=3, methods=("logreg", "ridge"))
    a = fewshot.run_fewshot(x_tr, y_tr, x_te, y_te, seed=5, **kwargs)
    b = fewshot.run_fewshot(x_tr, y_tr, x_te, y_te, seed=5, **kwargs)
    assert a["methods"] == b["methods"]  # exact equality, solver diagnostics included
    c = fewshot.run_fewshot(x_tr, y_tr, x_te, y_te, seed=6, **kwargs)
    assert a["methods"] != c["methods"]
    trials = a["methods"]["logreg"]["results"]["1"]["accuracy"]["trials"]
    assert len(trials) == 3 and len(set(trials)) > 1  # trials really are different draws


def test_result_records_shots_truncation_and_diagnostics():
    x_tr, y_tr, x_te, y_te, _ = _dataset(60, 50, spread=0.5, seed=4)
    y_tr[y_tr == 2] = 0
    y_tr[:2] = 2  # class 2 has exactly two train windows
    y_te[:3] = -1  # unlabelled test windows are dropped
    res = fewshot.run_fewshot(x_tr, y_tr, x_te, y_te, shots=(1, 4), trials=2, num_classes=C)
    entry = res["methods"]["logreg"]["results"]["4"]
    assert entry["shots_per_class"][2] == 2 and entry["truncated_classes"] == [2]
    assert entry["n_train"] == sum(entry["shots_per_class"])
    assert entry["n_test"] == res["n_test"] == 47
    assert res["unlabelled_dropped"] == {"train": 0, "test": 3}
    assert np.sum(entry["confusion"]) == 2 * 47
    assert entry["fit"]["converged"] == [True, True]
    ridge_fit = res["methods"]["ridge"]["results"]["4"]["fit"]
    assert ridge_fit == {"l2": [1024.0, 1024.0], "l2_source": ["default", "default"]}
    assert res["train_class_counts"][2] == 2 and res["shots"] == [1, 4]
    assert set(res["timing_s"]) == {"logreg", "ridge"}


def test_leakage_guards():
    x_tr, y_tr, x_te, y_te, _ = _dataset(40, 20, spread=0.5, seed=5)
    ids_tr = [f"rec/{i}" for i in range(40)]
    ids_te = [f"rec/{i}" for i in range(39, 59)]  # rec/39 is in both splits
    with pytest.raises(ValueError, match="both train and test"):
        fewshot.run_fewshot(x_tr, y_tr, x_te, y_te, shots=(1,), train_ids=ids_tr, test_ids=ids_te)
    ids_te = [f"rec/{i}" for i in range(40, 60)]
    x_te[0] = x_tr[7]  # a duplicated window
    res = fewshot.run_fewshot(
        x_tr,
        y_tr,
        x_te,
        y_te,
        shots=(1,),
        trials=1,
        methods=("ridge",),
        train_ids=ids_tr,
        test_ids=ids_te,
    )
    assert res["checks"] == {"ids_disjoint": True, "n_test_rows_identical_to_train": 1}


def test_input_validation():
    x_tr, y_tr, x_te, y_te, _ = _dataset(40, 20, spread=0.5, seed=6)
    with pytest.raises(ValueError, match="no train windows"):
        fewshot.run_fewshot(x_tr, np.where(y_tr == 1, 0, y_tr), x_te, y_te, shots=(1,))
    with pytest.raises(ValueError, match="needs class_prompt_emb"):
        fewshot.run_fewshot(x_tr, y_tr, x_te, y_te, shots=(1,), methods=("zeroshot",))
    with pytest.raises(ValueError, match="unknown methods"):
        fewshot.run_fewshot(x_tr, y_tr, x_te, y_te, shots=(1,), methods=("svm",))
    with pytest.raises(ValueError):
        fewshot.run_fewshot(x_tr, y_tr, x_te[:, :8], y_te, shots=(1,))
    with pytest.raises(ValueError):
        fewshot.run_fewshot(x_tr, y_tr, x_te, y_te, shots=(0,))


def test_identical_row_count_is_exact(monkeypatch):
    rng = np.random.default_rng(7)
    train = rng.normal(size=(500, 8)).astype(np.float32)
    train[:50] = 0.0  # many duplicated degenerate rows
    test = rng.normal(size=(100, 8)).astype(np.float32)
    test[:10] = 0.0
    test[10:13] = train[[60, 61, 499]]
    test[13] = train[62] + np.float32(1e-6)  # near but not bit-identical
    test[14] = -0.0  # -0.0 differs from 0.0 in its bits
    assert task._count_identical_rows(train, test) == 13
    # The same answer when every row collides in the hash, which forces the exact fallback.
    monkeypatch.setattr(task, "_row_hashes", lambda x: np.zeros(len(x), np.uint64))
    assert task._count_identical_rows(train, test) == 13


def test_cross_validated_methods_record_their_choice():
    x_tr, y_tr, x_te, y_te, _ = _dataset(200, 100, spread=0.9, seed=8)
    res = fewshot.run_fewshot(
        x_tr, y_tr, x_te, y_te, shots=(1, 6), trials=2, methods=("logreg_cv", "ridge_cv")
    )
    for name, grid in (
        ("logreg_cv", evaluators.LOGISTIC_L2_GRID),
        ("ridge_cv", evaluators.RIDGE_L2_GRID),
    ):
        assert res["methods"][name]["results"]["1"]["fit"]["l2_source"] == ["default"] * 2
        fit = res["methods"][name]["results"]["6"]["fit"]
        assert fit["l2_source"] == ["cv", "cv"] and set(fit["l2"]) <= set(grid)


def test_with_ids_results_do_not_depend_on_window_order():
    x_tr, y_tr, x_te, y_te, _ = _dataset(120, 60, spread=0.9, seed=9)
    ids_tr = np.array([f"tr/{i:04d}" for i in range(120)])
    ids_te = np.array([f"te/{i:04d}" for i in range(60)])
    kwargs = dict(shots=(2,), trials=2, methods=("ridge",))
    a = fewshot.run_fewshot(x_tr, y_tr, x_te, y_te, train_ids=ids_tr, test_ids=ids_te, **kwargs)
    p, q = np.random.default_rng(0).permutation(120), np.random.default_rng(1).permutation(60)
    b = fewshot.run_fewshot(
        x_tr[p], y_tr[p], x_te[q], y_te[q], train_ids=ids_tr[p], test_ids=ids_te[q], **kwargs
    )
    assert a["methods"] == b["methods"] and a["label_fingerprint"] == b["label_fingerprint"]
    with pytest.raises(ValueError, match="not unique"):
        fewshot.run_fewshot(
            x_tr, y_tr, x_te, y_te, train_ids=np.repeat(ids_tr[:60], 2), test_ids=ids_te, **kwargs
        )


def _fitted_case(seed=0, n_pre=600, n_train=200, n_test=500):
    """Embeddings of a tiny fitted IMU->text map, and noisy per-class prompt embeddings.

    Features carry a weak class signal in heavy noise; a linear head is fitted by least squares
    to map "pretraining" features onto their class's text vector (an IMU2CLIP-like fit), then
    embeds fresh train/test features. Classes overlap (zero-shot is far from 0 or 100%), and
    prompt counts and spreads differ per class, so renormalising the class means matters.
    """
    rng = np.random.default_rng(seed)
    f_dim = 24
    text = rng.normal(size=(C, D))
    text /= np.linalg.norm(text, axis=1, keepdims=True)
    signal = rng.normal(size=(C, f_dim))

    def features(n):
        y = rng.integers(0, C, n)
        return signal[y] + 1.6 * rng.normal(size=(n, f_dim)), y

    f_pre, y_pre = features(n_pre)
    head, *_ = np.linalg.lstsq(f_pre, text[y_pre], rcond=None)
    (f_tr, y_tr), (f_te, y_te) = features(n_train), features(n_test)
    prompts = [text[c] + (0.2 + 0.3 * c) * rng.normal(size=(3 + c, D)) for c in range(C)]
    return (f_tr @ head).astype(np.float32), y_tr, (f_te @ head).astype(np.float32), y_te, prompts


@pytest.mark.parametrize("renormalize", [True, False])
def test_logreg_zs_without_steps_is_exactly_the_reported_zeroshot(renormalize):
    x_tr, y_tr, x_te, y_te, prompts = _fitted_case()
    scale = 1 / 0.077  # a learned 1/tau_mm
    methods = {
        "zeroshot": evaluators.ZeroShotConfig(renormalize=renormalize),
        "logreg_zs": probe.LogisticConfig(init="prompts", init_scale=scale, max_iter=0),
    }
    res = fewshot.run_fewshot(
        x_tr, y_tr, x_te, y_te, shots=(1, 5), trials=2, methods=methods, class_prompt_emb=prompts
    )
    zero = res["methods"]["zeroshot"]["results"]["0"]
    assert 0.35 < zero["accuracy"]["mean"] < 0.9  # realistic: neither chance nor separable
    # Independent zero-shot reference in numpy: (re)normalised mean of normalised prompts.
    means = np.stack([(p / np.linalg.norm(p, axis=1, keepdims=True)).mean(0) for p in prompts])
    if renormalize:
        means /= np.linalg.norm(means, axis=1, keepdims=True)
    ref_pred = np.argmax((x_te / np.linalg.norm(x_te, axis=1, keepdims=True)) @ means.T, axis=1)
    assert zero["accuracy"]["mean"] == pytest.approx(np.mean(ref_pred == y_te), abs=1e-12)
    confusion = np.zeros((C, C), int)
    np.add.at(confusion, (y_te, ref_pred), 1)
    assert zero["confusion"] == confusion.tolist()
    for k in ("1", "5"):
        entry = res["methods"]["logreg_zs"]["results"][k]
        assert entry["accuracy"]["trials"] == [zero["accuracy"]["mean"]] * 2
        assert entry["confusion"] == (2 * confusion).tolist()
        assert entry["fit"]["iterations"] == [0, 0]
        assert entry["fit"]["init"] == {"from": "zeroshot_classifier", "scale": scale}


def test_logreg_zs_initial_weights_are_the_zeroshot_vectors_times_scale():
    x_tr, y_tr, _, _, prompts = _fitted_case(seed=1)
    configs = {"zeroshot": evaluators.ZeroShotConfig()}
    class_vecs = evaluators.zeroshot_classifier(configs, prompts)
    means = np.stack([(p / np.linalg.norm(p, axis=1, keepdims=True)).mean(0) for p in prompts])
    want = means / np.linalg.norm(means, axis=1, keepdims=True)
    np.testing.assert_allclose(class_vecs, want, rtol=0, atol=1e-6)  # float32 vs float64
    scale = 12.5
    cfg = probe.LogisticConfig(init="prompts", init_scale=scale, max_iter=0)
    start = np.float32(scale) * class_vecs
    fitted = probe.fit_logistic(x_tr, y_tr, C, config=cfg, init_weights=start)
    np.testing.assert_array_equal(fitted.weights, start)
    np.testing.assert_array_equal(fitted.bias, np.zeros(C, np.float32))
    assert fitted.info["iterations"] == 0
    # With steps the probe moves away from the start (and one step is enough to move).
    moved = probe.fit_logistic(
        x_tr, y_tr, C, config=dataclasses.replace(cfg, max_iter=1), init_weights=start
    )
    assert moved.info["iterations"] == 1 and not np.array_equal(moved.weights, start)


def test_one_zeroshot_classifier_per_run():
    _, _, _, _, prompts = _fitted_case()
    configs = {
        "zeroshot": evaluators.ZeroShotConfig(),
        "zeroshot_ref": evaluators.ZeroShotConfig(renormalize=False),
    }
    with pytest.raises(ValueError, match="2 different zero-shot classifiers"):
        evaluators.zeroshot_classifier(configs, prompts)
