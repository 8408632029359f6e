"""The t-SNE map of the test embeddings and its panels next to the accuracy curves."""

import numpy as np
import pytest

from primus_jax.evaluation import maps, plots

pytest.importorskip("sklearn")


def _clusters(n_per=60, c=3, dim=24, seed=0):
    rng = np.random.default_rng(seed)
    centres = rng.normal(size=(c, dim)) * 3
    y = np.repeat(np.arange(c), n_per)
    return centres[y] + rng.normal(size=(len(y), dim)), y


def test_subsample_is_stratified_seeded_and_bounded():
    y = np.repeat(np.arange(3), [100, 100, 5])
    idx = maps.subsample(y, 60, seed=0)
    assert len(idx) == 60 and np.all(np.diff(idx) > 0)
    assert np.bincount(y[idx]).tolist()[2] == 5  # the small class is kept whole
    np.testing.assert_array_equal(idx, maps.subsample(y, 60, seed=0))
    assert not np.array_equal(idx, maps.subsample(y, 60, seed=1))
    np.testing.assert_array_equal(maps.subsample(y, 500, seed=0), np.arange(len(y)))


def test_map_keeps_clusters_apart_and_is_deterministic():
    x, y = _clusters()
    y_unlabelled = y.copy()
    y_unlabelled[:10] = -1
    m = maps.embedding_map(x, y_unlabelled, n=120, seed=3)
    assert m["n"] == 120 and len(m["xy"]) == 120 and -1 not in m["labels"]
    xy, lab = np.asarray(m["xy"]), np.asarray(m["labels"])
    # Nearest neighbour in the map has the same class (well-separated clusters stay apart).
    d = ((xy[:, None] - xy[None]) ** 2).sum(-1) + np.eye(len(xy)) * 1e18
    assert np.mean(lab[np.argmin(d, 1)] == lab) > 0.95
    assert maps.embedding_map(x, y_unlabelled, n=120, seed=3) == m


def test_plot_adds_one_map_panel_per_encoder(tmp_path):
    pytest.importorskip("matplotlib")
    x, y = _clusters(n_per=20)
    m = maps.embedding_map(x, y, n=60, seed=0)
    res = {"accuracy": {"mean": 0.5, "stderr": 0.1, "trials": [0.4, 0.6]}}
    report = {
        "runs": {r: {"trials": 2, "notes": {"embedding_map": {"toy": m}}} for r in ("a", "b")},
        "datasets": {
            "toy": {
                "num_classes": 3,
                "class_names": ["sit", "stand", "walk"],
                "methods": {
                    "A": {"run_id": "a", "results": {"1": res, "5": res}},
                    "B": {"run_id": "b", "results": {"1": res, "5": res}},
                },
            }
        },
    }
    assert [t for t, _ in plots.embedding_maps(report, "toy")] == ["A", "B"]
    with_maps = plots.plot_dataset(report, "toy", tmp_path / "maps.png", dpi=50)
    for run in report["runs"].values():
        run["notes"] = {}
    plain = plots.plot_dataset(report, "toy", tmp_path / "plain.png", dpi=50)
    from matplotlib.image import imread

    assert imread(with_maps).shape[1] > 2 * imread(plain).shape[1]  # two panels beside it
