"""Evaluator plug-ins: a new method registered by name runs in the one trial loop on the same
k-shot draws as the built-in probes, and the registry refuses ambiguous registrations."""

import dataclasses

import numpy as np
import pytest

from primus_jax import evaluation
from primus_jax.evaluation import evaluators

D, C = 8, 3


@dataclasses.dataclass(frozen=True)
class MeanConfig:
    shrink: float = 0.0


@dataclasses.dataclass(frozen=True)
class NearestMean:
    """Nearest class mean of the k shots; records the windows it was given."""

    name: str
    config: MeanConfig
    seen: list = dataclasses.field(default_factory=list, compare=False)
    shots = None
    probe = "ridge"
    needs_prompts = False
    needs_windows = False

    def report_config(self):
        return dataclasses.asdict(self.config)

    def embedding_dim(self, task):
        return task.train_x.shape[1]

    def fit_predict(self, task, draw):
        idx = draw.sample.indices
        self.seen.append((draw.trial, draw.k, idx.copy()))
        means = np.stack([task.train_x[idx][task.train_y[idx] == c].mean(0) for c in range(C)])
        d = ((task.test_x[:, None, :] - means[None]) ** 2).sum(-1)
        return np.argmin(d, axis=1), {"l2": 0.0, "l2_source": "default"}

    def fit_summary(self, infos):
        return {"l2": [i["l2"] for i in infos], "l2_source": [i["l2_source"] for i in infos]}


@pytest.fixture
def registry(monkeypatch):
    monkeypatch.setattr(evaluators, "DEFAULT_METHODS", dict(evaluators.DEFAULT_METHODS))
    monkeypatch.setattr(evaluators, "_PLUGINS", dict(evaluators._PLUGINS))


def _data(seed=0):
    rng = np.random.default_rng(seed)
    centres = rng.normal(size=(C, D))
    y_tr, y_te = rng.integers(0, C, 90), rng.integers(0, C, 60)
    x_tr = centres[y_tr] + 0.6 * rng.normal(size=(90, D))
    x_te = centres[y_te] + 0.6 * rng.normal(size=(60, D))
    return x_tr.astype(np.float32), y_tr, x_te.astype(np.float32), y_te


def test_registered_method_runs_on_the_shared_draws(registry):
    seen = []
    evaluators.register(
        "nearest_mean",
        MeanConfig(),
        lambda name, cfg, device: NearestMean(name, cfg, seen),
    )
    x_tr, y_tr, x_te, y_te = _data()
    res = evaluation.run_fewshot(
        x_tr, y_tr, x_te, y_te, shots=(1, 3), trials=2, seed=4, methods=["nearest_mean", "ridge"]
    )
    entry = res["methods"]["nearest_mean"]["results"]["3"]
    assert entry["n_train"] == 3 * C and len(entry["accuracy"]["trials"]) == 2
    assert res["methods"]["nearest_mean"]["config"] == {"shrink": 0.0}
    assert entry["fit"] == {"l2": [0.0, 0.0], "l2_source": ["default", "default"]}
    # The draws are the sampler's, nested across k, the same as every other method's.
    for trial, k, idx in seen:
        want = evaluation.sample_kshot(y_tr, k, seed=4, trial=trial, num_classes=C).indices
        np.testing.assert_array_equal(idx, want)
    (_, _, one), (_, _, three) = seen[0], seen[2]
    assert set(one) <= set(three)
    evaluation.validate(evaluation.make_report({"toy": res}))


def test_registry_refuses_ambiguous_plugins(registry):
    with pytest.raises(ValueError, match="no plug-in"):
        evaluators.register("mystery", MeanConfig())
    evaluators.register("logreg_strong", evaluation.LogisticConfig(l2=100.0))  # reuses logistic
    ev = evaluators.make_evaluator("logreg_strong", evaluators.DEFAULT_METHODS["logreg_strong"])
    assert isinstance(ev, evaluators.ProbeEvaluator) and ev.probe == "logistic"
    with pytest.raises(ValueError, match="already has a plug-in"):
        evaluators.register("x", evaluation.RidgeConfig(), lambda n, c, d: None)
    with pytest.raises(TypeError, match="unsupported config type"):
        evaluators.make_evaluator("y", object())


def test_window_methods_need_windows():
    x_tr, y_tr, x_te, y_te = _data()
    with pytest.raises(ValueError, match="trains on windows"):
        evaluation.run_fewshot(x_tr, y_tr, x_te, y_te, shots=(1,), methods=["standard_training"])
