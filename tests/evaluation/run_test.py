"""The evaluation entry point end to end on a user's .npz, and its bad-file errors."""

import json
import os
import subprocess
import sys

import numpy as np
import pytest
from support import REPO, xla_flags

from primus_jax.data.synthetic import SyntheticPairedSource
from primus_jax.evaluation import labelled


def _write_npz(path, **overrides):
    src = SyntheticPairedSource(96, 16, seed=0, num_classes=3)
    names = np.array(["sit", "stand", "walk"])
    arrays = {
        "X": src.imu,
        "y": names[src.label % 3],
        "subject": np.array([f"s{i % 8}" for i in range(96)]),
    }
    arrays.update(overrides)
    arrays = {k: v for k, v in arrays.items() if v is not None}
    np.savez(path, **arrays)
    return str(path)


def test_npz_contract_and_subject_split(tmp_path):
    data = labelled.load_npz(_write_npz(tmp_path / "d.npz"), seed=0)
    assert data.class_names == ["sit", "stand", "walk"]
    assert data.train.imu.shape[1:] == (250, 6) and data.train.imu.dtype == np.float32
    assert len(data.train) + len(data.test) == 96
    assert not set(data.train.subject) & set(data.test.subject)  # subject-wise
    assert not set(data.train.ids) & set(data.test.ids)
    again = labelled.load_npz(_write_npz(tmp_path / "e.npz"), seed=0)
    assert (again.train.ids == data.train.ids).all()  # seeded


def test_npz_explicit_split(tmp_path):
    split = np.array(["train"] * 60 + ["test"] * 36)
    data = labelled.load_npz(_write_npz(tmp_path / "d.npz", split=split, subject=None))
    assert len(data.train) == 60 and len(data.test) == 36


@pytest.mark.parametrize(
    "overrides,key,fragment",
    [
        ({"X": None}, "'X'", "missing"),
        ({"X": np.zeros((96, 6, 250), np.float32)}, "'X'", "(N, 250, 6)"),
        ({"X": np.full((96, 250, 6), np.nan, np.float32)}, "'X'", "NaN"),
        ({"y": np.zeros(95, np.int64)}, "'y'", "(96,)"),
        ({"y": np.full(96, -3)}, "'y'", ">= 0"),
        ({"subject": None}, "'split'", "'subject'"),
        ({"subject": None, "split": np.array(["train", "val"] * 48)}, "'split'", "'train'/'test'"),
        ({"subject": None, "split": np.array(["train"] * 96)}, "'split'", "test split is empty"),
    ],
)
def test_bad_npz_files_name_the_key(tmp_path, overrides, key, fragment):
    path = _write_npz(tmp_path / "bad.npz", **overrides)
    with pytest.raises(labelled.BadDatasetFile) as e:
        labelled.load_npz(path)
    msg = str(e.value)
    assert path in msg and f"key {key}" in msg and fragment in msg


@pytest.mark.slow
def test_fewshot_entry_point_on_npz(tmp_path):
    path = _write_npz(tmp_path / "user.npz")
    wd = tmp_path / "eval"
    env = dict(os.environ, XLA_FLAGS=xla_flags(2))
    r = subprocess.run(
        [
            sys.executable,
            "-m",
            "primus_jax.main",
            "--config=configs/fewshot.py",
            "--config.checkpoint=",
            f"--config.data=npz:{path}",
            "--config.shots=1,5",
            "--config.trials=2",
            "--config.methods=logreg,ridge",
            "--config.batch_size=16",
            f"--workdir={wd}",
        ],
        cwd=REPO,
        env=env,
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert r.returncode == 0, r.stderr[-3000:]
    report = json.loads((wd / "fewshot.json").read_text())
    ds = report["datasets"]["user"]
    assert ds["num_classes"] == 3 and ds["class_names"] == ["sit", "stand", "walk"]
    for method in ("logreg", "ridge"):
        res = ds["methods"][method]["results"]
        assert sorted(res) == ["1", "5"]
        assert len(res["5"]["accuracy"]["trials"]) == 2
        assert res["5"]["shots_per_class"] == [5, 5, 5]
    assert (wd / "fewshot.md").exists()
    run = next(iter(report["runs"].values()))
    assert run["notes"]["encoder"] == "random init"
    tsne = run["notes"]["embedding_map"]["user"]  # the report's t-SNE map of the test split
    assert tsne["method"] == "tsne" and len(tsne["xy"]) == len(tsne["labels"]) == tsne["n"] > 0


def test_tau_mm_from_either_checkpoint_key(caplog):
    from primus_jax.evaluation.run import tau_mm_of

    assert tau_mm_of({"log_tau_mm": np.float32(np.log(0.05))}) == pytest.approx(0.05, rel=1e-6)
    assert tau_mm_of({"tau_mm": np.asarray(0.077, np.float32)}) == pytest.approx(0.077, rel=1e-6)
    assert tau_mm_of({"encoder": {}}, "ckpt") == pytest.approx(0.1)  # neither: default, warned
    # Raw tau is clamped at the run's tau_min, as the training loss clamps it.
    assert tau_mm_of({"tau_mm": np.float32(0.004)}, "ckpt", tau_min=0.01) == pytest.approx(0.01)
    with pytest.raises(ValueError, match=r"ckpt: params\['tau_mm'\] = -0.5 gives tau_mm = 0.0"):
        tau_mm_of({"tau_mm": -0.5}, "ckpt")
