"""Builds ego4d from dummy_data (CLI layout) and checks windows, labels, splits, bad input."""

import os

import numpy as np
import pytest

import tfds_builders.ego4d as ego4d_pkg
from primus_jax.data import signal
from tfds_builders import segment_format, testing_utils
from tfds_builders.ego4d import ego4d_dataset_builder as e4
from tfds_builders.ego4d import ego4d_meta

DUMMY = os.path.join(os.path.dirname(ego4d_pkg.__file__), "dummy_data")


@pytest.fixture(scope="module")
def built(tmp_path_factory):
    builder = testing_utils.build(e4.Builder, tmp_path_factory.mktemp("e4"), DUMMY)
    return builder, {s: testing_utils.read_split(builder, s) for s in ("train", "val", "test")}


def test_windows_texts_and_labels(built):
    _, data = built
    exs = {ex["id"]: ex for v in data.values() for ex in v}
    want = {f"cook-{i}/{ms}": "stirs the pot with a spoon" for i in range(5) for ms in [500]}
    want.update({f"cook-{i}/4500": "opens the fridge" for i in range(5)})
    want.update(
        {
            "cook-0/0": "picks a knife",  # 1.0 s and 1.5 s both clamp to [0, 5]: first kept
            "cook-0/2500": "cuts the carrot something",  # pass 2; "#unsure" -> "something"
            "walk-0/1500": "walks",
            "amb-0/0": "saws a plank",
        }
    )
    assert {k: ex["text"] for k, ex in exs.items()} == want
    for ex in exs.values():
        assert ex["imu"].shape == (250, 6) and ex["imu"].dtype == np.float32
        assert ex["subject"] == ex["recording"] == ex["id"].split("/")[0]
        assert ex["start_s"] == pytest.approx(int(ex["id"].split("/")[1]) / 1000)
        assert np.linalg.norm(ex["imu"][:, :3], axis=1).mean() == pytest.approx(signal.G, abs=0.3)
    assert exs["walk-0/1500"]["label_name"] == "walking"  # acc was in g: converted
    assert exs["cook-1/500"]["label_name"] == "cooking"
    assert exs["amb-0/0"]["label"] == -1 and exs["amb-0/0"]["label_name"] == ""


def test_antialiased_window_matches_source(built):
    _, data = built
    ex = next(e for v in data.values() for e in v if e["id"] == "walk-0/1500")
    raw = np.loadtxt(os.path.join(DUMMY, "v2", "imu", "walk-0.csv"), delimiter=",", skiprows=1)
    t = raw[:, 2] / 1000
    grid = 1.5 + np.arange(250) / 50
    # The 2 Hz bounce (amplitude 1.5) lies far below the 22.5 Hz cutoff and passes; only the
    # white noise (std 0.05 m/s², mostly above 22.5 Hz at 200 Hz) is filtered out.
    want = np.interp(grid, t, raw[:, 7]) * signal.G
    diff = ex["imu"][:, 1] - want
    assert np.sqrt(np.mean(diff**2)) < 0.06 and np.abs(diff).max() < 0.2


def test_video_disjoint_stratified_splits(built):
    builder, data = built
    rec = {s: {ex["recording"] for ex in v} for s, v in data.items()}
    assert not (rec["train"] & rec["val"] or rec["train"] & rec["test"] or rec["val"] & rec["test"])
    cook = {s: {r for r in v if r.startswith("cook")} for s, v in rec.items()}
    assert sorted(len(v) for v in cook.values()) == [1, 1, 3]  # 5 cooking videos: 60/10/30
    assert cook["train"] and cook["val"] and cook["test"]
    assert builder.info.metadata["videos"] == {"test": 3, "train": 5, "val": 1}


def test_bad_input_counted(built):
    builder, _ = built
    ev = builder.info.metadata["build_stats"]["events"]
    assert ev["all"] == {"videos_ambiguous_scenario": 1, "videos_not_in_ego4d_json": 1}
    merged = {}
    for split in ("train", "val", "test"):
        for k, v in ev.get(split, {}).items():
            merged[k] = merged.get(k, 0) + v
    assert merged == {
        "skipped_malformed_file": 1,  # bad-0
        "skipped_video_without_narrations": 1,  # orphan-0
        "skipped_narration_outside": 1,  # cook-0 at 30 s
        "skipped_narration_gap": 1,  # amb-0 at 6 s
        "narrations_sharing_a_window": 1,  # cook-0 at 1.5 s
        "rows_dropped": 2,  # amb-0: a NaN time and a repeated row
        "videos_acc_in_g_converted": 1,  # walk-0
    }


@pytest.mark.parametrize(
    ("scenarios", "want"),
    [
        (["Cooking"], (2, "ok")),
        (["Carpenter"], (0, "ok")),
        (["Cleaning / laundry"], (1, "ok")),
        (["Crafting/knitting/sewing/drawing/painting"], (3, "ok")),
        (["Playing music"], (7, "ok")),
        (["Walking on street"], (8, "ok")),
        (["Construction site"], (9, "ok")),
        (["Household management - caring for kids"], (6, "ok")),
        (["Cooking", "Baker"], (2, "ok")),
        (["Cooking", "Cleaning / laundry"], (-1, "ambiguous")),
        (["Baker"], (-1, "no_class")),
        ([], (-1, "no_class")),
    ],
)
def test_scenario_rules(scenarios, want):
    assert ego4d_meta.scenario_class(scenarios) == want


def test_clip4clip_config(built, tmp_path):
    _, data = built
    ids = sorted(ex["id"] for v in data.values() for ex in v)
    manual = testing_utils.copy_tree(DUMMY, tmp_path / "manual")
    text = testing_utils.write_store(f"{manual}/embeddings/clip4clip_text", ids, "text", 512)
    video = testing_utils.write_store(
        f"{manual}/embeddings/clip4clip_video", ids[:-1], "video", 512, seed=1
    )
    builder = testing_utils.build(e4.Builder, tmp_path / "data", manual, config="clip4clip")
    assert builder.info.metadata["video_emb_dim"] == 512
    exs = {ex["id"]: ex for s in builder.info.splits for ex in testing_utils.read_split(builder, s)}
    for key in ids:
        np.testing.assert_array_equal(exs[key]["text_emb"], text[key])
        assert exs[key]["has_video"] == (key in video)
    assert exs[ids[-1]]["video_emb"].shape == (0,)


def test_missing_files_fail_clearly(tmp_path):
    manual = testing_utils.copy_tree(DUMMY, tmp_path / "manual")
    os.remove(os.path.join(manual, "v2", "annotations", "narration.json"))
    with pytest.raises(FileNotFoundError, match=r"narration\.json"):
        testing_utils.build(e4.Builder, tmp_path / "data", manual)


def test_dummy_data_is_reproducible(tmp_path):
    from tfds_builders.ego4d import dummy_data_generation

    testing_utils.assert_dummy_data_regenerates(dummy_data_generation, DUMMY, tmp_path)


def test_segment_ids_are_format_ids(built):
    _, data = built
    for ex in (ex for v in data.values() for ex in v):
        assert ex["id"] == segment_format.segment_id(ex["recording"], float(ex["start_s"]))


def test_metadata_prompts(built):
    builder, _ = built
    meta = builder.info.metadata
    assert meta["class_prompts"] == [list(p) for p in ego4d_meta.CLASS_PROMPTS]
    assert len(meta["class_prompts"]) == len(meta["label_names"]) == 10
    assert meta["class_prompts"][7][0] == "Practicing a musical instrument"  # reference order
    assert meta["text_from_labels"] is False  # narrations are written by annotators
