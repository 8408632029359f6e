"""Builds realworld from dummy_data (archive layout, nested zips and broken files)."""

import os

import numpy as np
import pytest
import tensorflow_datasets as tfds
from etils import epath

import tfds_builders.realworld as realworld_pkg
from primus_jax.data import signal
from tfds_builders import testing_utils
from tfds_builders.realworld import archive
from tfds_builders.realworld import realworld_dataset_builder as rw

DUMMY = os.path.join(os.path.dirname(realworld_pkg.__file__), "dummy_data")
SPLITS = ("train", "val", "test")


@pytest.fixture(scope="module")
def built(tmp_path_factory):
    builder = testing_utils.build(rw.Builder, tmp_path_factory.mktemp("rw"), DUMMY)
    return builder, {s: testing_utils.read_split(builder, s) for s in SPLITS}


def test_counts_and_subject_disjoint(built):
    builder, data = built
    ids = {s: sorted(ex["id"] for ex in v) for s, v in data.items()}
    assert ids["train"] == [
        f"proband02_climbingdown{sfx}/{ms}" for sfx in ("", "_2") for ms in (0, 2500, 5000)
    ]
    assert ids["val"] == [
        f"proband01_{a}/{ms}" for a in ("sitting", "walking") for ms in (0, 2500, 5000)
    ]
    # lying: 19.68 s of overlap -> 6 windows, 2 of them across the 1 s gyro hole.
    assert ids["test"] == sorted(
        [f"proband03_lying/{ms}" for ms in (0, 2500, 10000, 12500)]
        + [f"proband03_walking/{ms}" for ms in (0, 2500, 5000)]
    )
    subjects = {s: {ex["subject"] for ex in v} for s, v in data.items()}
    assert subjects == {"train": {"proband02"}, "val": {"proband01"}, "test": {"proband03"}}
    assert builder.info.metadata["subjects"] == {
        "train": [2, 4, 7, 9, 10, 11, 12, 14, 15],
        "val": [1, 13],
        "test": [3, 5, 6, 8],
    }


def test_shapes_units_labels(built):
    _, data = built
    for ex in (ex for v in data.values() for ex in v):
        assert ex["imu"].shape == (250, 6) and ex["imu"].dtype == np.float32
        assert ex["label_name"] == rw.LABEL_NAMES[ex["label"]]
        assert ex["recording"].split("_")[1] == archive.ACTIVITIES[ex["label"]]
        assert ex["text"] == "" and not ex["has_text"] and not ex["has_video"]
        mag = np.linalg.norm(ex["imu"][:, :3], axis=1).mean()
        assert mag == pytest.approx(signal.G, abs=0.3)  # m/s², gravity included
        if ex["label_name"] in ("sitting", "lying"):
            assert np.abs(ex["imu"][:, 3:]).max() < 0.15  # rad/s at rest


def test_values_match_independent_interpolation(built):
    _, data = built
    ex = next(e for e in data["val"] if e["id"] == "proband01_sitting/2500")
    import io
    import zipfile

    base = os.path.join(DUMMY, "realworld2016_dataset", "proband1", "data")
    with zipfile.ZipFile(os.path.join(base, "acc_sitting_csv.zip")) as zf:
        acc = np.loadtxt(io.BytesIO(zf.read("acc_sitting_head.csv")), delimiter=",", skiprows=1)
    with zipfile.ZipFile(os.path.join(base, "gyr_sitting_csv.zip")) as zf:
        gyr = np.loadtxt(
            io.BytesIO(zf.read("Gyroscope_sitting_head.csv")), delimiter=",", skiprows=1
        )
    t0 = max(acc[0, 1], gyr[0, 1]) / 1000  # the grid starts where both streams exist
    grid = t0 + 2.5 + np.arange(250) / 50
    want = np.stack([np.interp(grid, acc[:, 1] / 1000, acc[:, c]) for c in (2, 3, 4)], 1)
    np.testing.assert_allclose(ex["imu"][:, :3], want, atol=1e-4)
    want = np.stack([np.interp(grid, gyr[:, 1] / 1000, gyr[:, c]) for c in (2, 3, 4)], 1)
    np.testing.assert_allclose(ex["imu"][:, 3:], want, atol=1e-5)


def test_bad_input_counted(built):
    builder, _ = built
    events = builder.info.metadata["build_stats"]["events"]
    assert events["train"] == {"skipped_missing_file": 1, "skipped_shorter_than_window": 1}
    assert events["test"] == {
        "rows_dropped_nonfinite": 3,
        "rows_dropped_duplicate_time": 1,
        "files_reordered": 1,
        "skipped_window_across_gap": 2,
        "skipped_malformed_file": 1,
    }
    assert events.get("val", {}) == {}


def test_archive_parsing_quirks():
    found = list(
        archive.find_files(
            2, epath.Path(DUMMY) / "realworld2016_dataset" / "proband2", lambda r, w: pytest.fail(w)
        )
    )
    nested = [f for f in found if f.session == 2 and f.sensor == "gyr"]
    assert len(nested) == 1 and nested[0].where.count("!") == 2  # zip inside a zip
    assert nested[0].activity == "climbingdown" and nested[0].position == "head"
    assert {(f.sensor, f.position) for f in found if f.activity == "running"} == {
        ("acc", "head"),
        ("gyr", "chest"),
    }


def test_bad_zip_is_skipped(tmp_path):
    manual = testing_utils.copy_tree(DUMMY, tmp_path / "manual")
    bad = os.path.join(manual, "realworld2016_dataset", "proband1", "data", "acc_walking_csv.zip")
    with open(bad, "wb") as f:
        f.write(b"not a zip")
    builder = testing_utils.build(rw.Builder, tmp_path / "data", manual)
    events = builder.info.metadata["build_stats"]["events"]["val"]
    assert events == {"skipped_bad_zip": 1, "skipped_missing_file": 1}
    assert builder.info.splits["val"].num_examples == 3


def test_download_path(tmp_path, monkeypatch):
    calls = []

    def fake_download_and_extract(self, url):
        calls.append(url)
        return epath.Path(DUMMY)

    monkeypatch.setattr(
        tfds.download.DownloadManager, "download_and_extract", fake_download_and_extract
    )
    builder = testing_utils.build(rw.Builder, tmp_path)  # no manual dir
    assert calls == [rw.URL]
    assert builder.info.splits["test"].num_examples == 7


def test_dummy_data_is_reproducible(tmp_path):
    from tfds_builders.realworld import dummy_data_generation

    testing_utils.assert_dummy_data_regenerates(dummy_data_generation, DUMMY, tmp_path)


def test_metadata_prompts(built):
    builder, _ = built
    meta = builder.info.metadata
    assert meta["class_prompts"] == [list(p) for p in rw.CLASS_PROMPTS]
    assert [p[0] for p in meta["class_prompts"]] == [  # the reference's first prompt per class
        "climbing down",
        "climbing up",
        "jumping",
        "lying down",
        "running",
        "sitting",
        "standing",
        "walking",
    ]
    assert all(len(p) == 9 for p in meta["class_prompts"])
    assert meta["text_from_labels"] is False
