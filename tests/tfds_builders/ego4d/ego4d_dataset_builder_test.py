"""Builds ego4d from dummy_data (CLI layout) and checks windows, labels, splits, bad input."""

import collections
import json
import logging
import os

import numpy as np
import pytest
from etils import epath

import tfds_builders.ego4d as ego4d_pkg
from primus_jax.data import signal
from tests.support import fuzz
from tfds_builders import segment_format, splits, testing_utils
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
    want.update({f"{u}/1500": "moves" for u in ("farmmkt-0", "listen-0", "dog-0", "resto-0")})
    want.update(
        {
            "cook-0/0": "picks a knife",  # 1.0 s and 1.5 s both clamp to [0, 5]: first kept
            "cook-0/2500": "cuts the carrot something",  # pass 2; "#unsure" -> "something"
            "walk-0/1500": "walks",
            "amb-0/0": "saws a plank",
            "multi-0/1500": "moves",
            "build-0/3500": "tiles",
        }
    )
    assert {k: ex["text"] for k, ex in exs.items()} == want
    for ex in exs.values():
        assert ex["imu"].shape == (250, 6) and ex["imu"].dtype == np.float32
        assert ex["recording"] == ex["id"].split("/")[0]
        assert ex["start_s"] == pytest.approx(int(ex["id"].split("/")[1]) / 1000)
        assert np.linalg.norm(ex["imu"][:, :3], axis=1).mean() == pytest.approx(signal.G, abs=0.3)
    assert exs["walk-0/1500"]["label_name"] == "walking"  # acc was in g: converted
    assert exs["cook-1/500"]["label_name"] == "cooking"
    assert exs["build-0/3500"]["label_name"] == "construction"  # the name with a newline
    # Reference rule: two scenarios, or a near-miss name, leave a video unlabelled.
    for uid in ("amb-0", "multi-0", "farmmkt-0", "listen-0", "dog-0", "resto-0"):
        ex = next(e for k, e in exs.items() if k.startswith(uid + "/"))
        assert ex["label"] == -1 and ex["label_name"] == "", uid


def test_window_values_match_csv(built):
    """A 50 Hz file on the 50 Hz grid: the window is the CSV rows, gyro/accl swapped."""
    _, data = built
    ex = next(e for v in data.values() for e in v if e["id"] == "cook-1/500")
    raw = np.loadtxt(os.path.join(DUMMY, "v2", "imu", "cook-1.csv"), delimiter=",", skiprows=1)
    rows = raw[25:275]  # 0.5 s .. 5.48 s
    np.testing.assert_array_equal(rows[:, 2], 500 + 20 * np.arange(250))
    np.testing.assert_allclose(ex["imu"][:, :3], rows[:, 6:9], atol=1e-5)  # accl_x..z
    np.testing.assert_allclose(ex["imu"][:, 3:], rows[:, 3:6], atol=1e-5)  # gyro_x..z


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


def test_participant_disjoint_stratified_splits(built):
    builder, data = built
    split_of = {}
    for s, v in data.items():
        for ex in v:
            assert split_of.setdefault(ex["subject"], s) == s, ex["subject"]  # one split each
    recs = {ex["recording"]: ex["subject"] for v in data.values() for ex in v}
    assert recs["cook-0"] == recs["cook-1"] == "participant1"  # fb_participant_id
    assert recs["amb-0"] == "amb-0"  # no participant id: the video is its own group
    assert builder.info.metadata["split"] == "participant"
    # Cooking stratum: 7 participants (1, 2, 3, 4 with windows; 6, 8, 9 with bad files)
    # -> 60/10/30 by largest remainder = 4/1/2 participants.
    assert builder.info.metadata["videos"] == {"test": 5, "train": 10, "val": 2}
    cooking = {s for p, s in split_of.items() if p in {f"participant{i}" for i in (1, 2, 3, 4)}}
    assert cooking == {"train", "val", "test"}


def _merged(events: dict) -> dict:
    merged = {}
    for split in ("train", "val", "test"):
        for k, v in events.get(split, {}).items():
            merged[k] = merged.get(k, 0) + v
    return merged


def test_bad_input_counted(built):
    builder, _ = built
    ev = builder.info.metadata["build_stats"]["events"]
    assert ev["all"] == {
        "videos_multi_scenario": 2,  # amb-0, multi-0
        "videos_no_class_scenario": 4,  # the four near misses
        "videos_not_in_ego4d_json": 1,  # orphan-0
        "videos_without_participant_id": 6,
    }
    assert _merged(ev) == {
        "skipped_malformed_file": 1,  # bad-0
        "skipped_video_without_narrations": 1,  # orphan-0
        "skipped_narration_outside": 1,  # cook-0 at 30 s
        "skipped_narration_gap": 1,  # amb-0 at 6 s
        "narrations_sharing_a_window": 1,  # cook-0 at 1.5 s
        "rows_dropped": 2,  # amb-0: a NULL time and a repeated row
        "videos_acc_in_g_converted": 1,  # walk-0
        "skipped_imu_acc_norm_implausible": 1,  # sample-0 (|acc| 2.7)
        "videos_acc_y_equals_z": 1,  # sample-0
        "skipped_imu_acc_missing": 1,  # noacc-0
    }


def test_acc_norm_distribution_recorded(built):
    builder, _ = built
    dist = builder.info.metadata["acc_norm_per_file"]
    # 14 files read (17 minus bad-0, orphan-0 and noacc-0): walk-0 in g, sample-0 at 2.7.
    assert dist["files"] == 14
    assert dist["histogram"] == {
        "[0, 0.5)": 0,
        "[0.5, 2)": 1,
        "[2, 5)": 1,
        "[5, 20)": 12,
        "[20, inf)": 0,
    }
    assert dist["quantiles"]["p50"] == pytest.approx(signal.G, abs=0.05)


@pytest.mark.parametrize(
    ("scenarios", "reference", "keyword"),
    [
        (["Cooking"], (2, "ok"), (2, "ok")),
        (["Carpenter"], (0, "ok"), (0, "ok")),
        (["Cleaning / laundry"], (1, "ok"), (1, "ok")),
        (["Crafting/knitting/sewing/drawing/painting"], (3, "ok"), (3, "ok")),
        (["Practicing a musical instrument"], (7, "ok"), (7, "ok")),
        (["Walking on street"], (8, "ok"), (8, "ok")),
        ([ego4d_meta.REFERENCE_SCENARIOS[14]], (9, "ok"), (9, "ok")),
        (["Household management - caring for kids"], (6, "ok"), (6, "ok")),
        (["Farmers market"], (-1, "no_class"), (5, "ok")),
        (["Listening to music"], (-1, "no_class"), (7, "ok")),
        (["Walking the dog / pet"], (-1, "no_class"), (8, "ok")),
        (["Eating at a restaurant"], (-1, "no_class"), (4, "ok")),
        (["Construction site"], (-1, "no_class"), (9, "ok")),
        (["Car mechanic"], (-1, "no_class"), (-1, "no_class")),  # a dropped reference class
        (["cooking"], (-1, "no_class"), (2, "ok")),  # exact: case matters
        (["Cooking", "Baker"], (-1, "multi_scenario"), (2, "ok")),
        (["Cooking", "Cooking"], (-1, "multi_scenario"), (2, "ok")),
        (["Cooking", "Cleaning / laundry"], (-1, "multi_scenario"), (-1, "ambiguous")),
        ([], (-1, "no_scenario"), (-1, "no_class")),
    ],
)
def test_scenario_rules(scenarios, reference, keyword):
    assert ego4d_meta.scenario_class(scenarios) == reference
    assert ego4d_meta.scenario_class(scenarios, "reference") == reference
    assert ego4d_meta.scenario_class(scenarios, "keyword") == keyword


def test_keyword_config_labels_near_misses(tmp_path):
    builder = testing_utils.build(e4.Builder, tmp_path, DUMMY, config="raw_keyword")
    exs = {
        ex["recording"]: ex
        for s in builder.info.splits
        for ex in testing_utils.read_split(builder, s)
    }
    got = {
        u: exs[u]["label_name"] for u in ("farmmkt-0", "listen-0", "dog-0", "resto-0", "multi-0")
    }
    assert got == {
        "farmmkt-0": "farmer",
        "listen-0": "music",
        "dog-0": "walking",
        "resto-0": "eating",
        "multi-0": "cooking",
    }
    assert exs["amb-0"]["label"] == -1  # Carpenter + Construction site: two classes
    balance = builder.info.metadata["build_stats"]["class_balance"]
    total = collections.Counter()
    for c in balance.values():
        total.update(c)
    # 20 windows under either rule; the keyword rule labels 5 more (cooking: 12 + multi-0).
    assert total == {
        "cooking": 13,
        "walking": 2,
        "construction": 1,
        "farmer": 1,
        "music": 1,
        "eating": 1,
        "<unlabelled>": 1,
    }
    assert builder.info.metadata["scenario_rule"] == "keyword"


def _reference_assignment() -> dict[str, str]:
    """The reference's split, computed here from ego4d.json as its scripts do."""
    from sklearn.model_selection import train_test_split

    with open(os.path.join(DUMMY, "ego4d.json"), encoding="utf-8") as f:
        videos = json.load(f)["videos"]
    names = list(ego4d_meta.REFERENCE_SCENARIOS)
    class2video = {}
    for v in videos:  # construct_ego_labels.py
        if len(v["scenarios"]) == 1 and v["scenarios"][0] in names:
            class2video.setdefault(names.index(v["scenarios"][0]), []).append(v["video_uid"])
    class2dict = {e: k for k, v in class2video.items() for e in v}  # custom_split_ego.py
    x, y = list(class2dict.keys()), list(class2dict.values())
    x_train, x_temp, _, y_temp = train_test_split(x, y, test_size=0.2, random_state=42, stratify=y)
    x_val, x_test, _, _ = train_test_split(
        x_temp, y_temp, test_size=0.5, stratify=y_temp, random_state=42
    )
    return {
        **dict.fromkeys(x_train, "train"),
        **dict.fromkeys(x_val, "val"),
        **dict.fromkeys(x_test, "test"),
    }


def test_reference_split_config(tmp_path, caplog):
    caplog.set_level(logging.INFO)
    builder = testing_utils.build(e4.Builder, tmp_path, DUMMY, config="raw_reference_split")
    want = _reference_assignment()
    # 45 videos of the 15 reference scenarios: 36 train, then the 9 halved (4 val, 5 test).
    assert collections.Counter(want.values()) == {"train": 36, "val": 4, "test": 5}
    got = {}
    for s in builder.info.splits:
        for ex in testing_utils.read_split(builder, s):
            got[ex["recording"]] = s
    assert got == {u: want[u] for u in got}
    assert got == {
        **{f"cook-{i}": "train" for i in (0, 1, 2, 3)},
        "build-0": "train",
        "cook-4": "val",
        "walk-0": "test",
    }
    # Near misses and multi-scenario videos are outside the reference's 15 classes.
    assert (
        builder.info.metadata["build_stats"]["events"]["all"]["videos_outside_reference_split"] == 7
    )
    log = caplog.text
    assert "rejected " + os.path.join(DUMMY, "v2", "imu", "sample-0.csv") in log
    assert "acc_norm_implausible: median accelerometer norm 2.71" in log
    assert "acc_missing" in log and "noacc-0.csv" in log
    assert "median |acc| per file over" in log and "[2, 5): 1" in log


def test_empty_split_fails_naming_its_files(tmp_path):
    manual = testing_utils.copy_tree(DUMMY, tmp_path / "manual")
    path = os.path.join(manual, "v2", "imu", "walk-0.csv")  # the only test video
    with open(path, "w", encoding="ascii") as f:
        f.write("canonical_timestamp_ms,gyro_x\n")
    with pytest.raises(Exception, match=r"split 'test' has no usable window.*walk-0\.csv"):
        testing_utils.build(e4.Builder, tmp_path / "data", manual, config="raw_reference_split")


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


FUZZ_FILES = [
    "ego4d.json",
    "v2/annotations/narration.json",
    "v2/imu/cook-1.csv",
    "v2/imu/walk-0.csv",
    "v2/imu/amb-0.csv",
    "v2/imu/build-0.csv",
]
FUZZ_CASES = 20


def _skip_counts(events: dict) -> collections.Counter:
    out = collections.Counter()
    for ev in events.values():
        out.update({k: n for k, n in ev.items() if k.startswith("skipped_")})
    return out


def _skips(events: dict) -> int:
    return sum(_skip_counts(events).values())


def test_fuzzed_inputs_are_skipped_or_named(built, tmp_path):
    """Seeded corruptions of the raw files: skipped and counted, or an error naming the file."""
    base_builder, base = built
    n_base = sum(len(v) for v in base.values())
    base_events = base_builder.info.metadata["build_stats"]["events"]
    base_skips = _skips(base_events)
    manual = testing_utils.copy_tree(DUMMY, tmp_path / "manual")
    outcomes, reasons = collections.Counter(), collections.Counter()
    for i, (rel, mutation, seed) in enumerate(fuzz.cases(FUZZ_FILES, fuzz.MUTATIONS, FUZZ_CASES)):
        path = os.path.join(manual, rel)
        with open(path, "rb") as f:
            original = f.read()
        fuzz.corrupt_file(path, mutation, seed)
        data_dir = tmp_path / f"d{i}"
        try:
            outcome, builder = fuzz.check_outcome(
                lambda d=data_dir: testing_utils.build(e4.Builder, d, manual), path
            )
        finally:
            with open(path, "wb") as f:
                f.write(original)
        outcomes[outcome] += 1
        if outcome == "error":
            print(f"ego4d fuzz {rel} {mutation}: {builder[-160:]}")
            continue
        exs = [ex for s in builder.info.splits for ex in testing_utils.read_split(builder, s)]
        assert all(np.isfinite(ex["imu"]).all() for ex in exs), (rel, mutation)
        events = builder.info.metadata["build_stats"]["events"]
        if len(exs) < n_base:  # windows lost (a shorter file may also just move one): counted
            assert _skips(events) > base_skips, (rel, mutation, events)
        reasons.update(_skip_counts(events) - _skip_counts(base_events))
    print(f"ego4d fuzz: {dict(outcomes)}; extra skips by reason {dict(reasons)}")
    assert outcomes["ok"] and sum(outcomes.values()) == FUZZ_CASES


def test_all_null_timestamps_are_a_counted_rejection(tmp_path):
    """The docs allow NULL canonical times; a file with only NULLs is rejected, not a crash."""
    manual = testing_utils.copy_tree(DUMMY, tmp_path / "manual")
    path = os.path.join(manual, "v2", "imu", "cook-1.csv")
    with open(path, encoding="ascii") as f:
        lines = f.read().splitlines()
    rows = [line.split(",") for line in lines[1:]]
    with open(path, "w", encoding="ascii") as f:
        f.write("\n".join([lines[0]] + [",".join([r[0], "", "", *r[3:]]) for r in rows]) + "\n")
    builder = testing_utils.build(e4.Builder, tmp_path / "data", manual)
    merged = _merged(builder.info.metadata["build_stats"]["events"])
    assert merged["skipped_imu_no_usable_rows"] == 2  # cook-1's two narrations


def test_video_split_option_matches_the_pre_1_1_split(tmp_path):
    config = e4.Ego4DConfig(name="raw_video", split="video")
    builder = testing_utils.build(e4.Builder, tmp_path, DUMMY, config=config)
    got = {
        ex["recording"]: s
        for s in builder.info.splits
        for ex in testing_utils.read_split(builder, s)
    }
    labels, videos = {}, ego4d_meta.load_videos(epath.Path(DUMMY) / "ego4d.json")
    for uid in sorted(f[: -len(".csv")] for f in os.listdir(os.path.join(DUMMY, "v2", "imu"))):
        video = videos.get(uid)
        labels[uid] = ego4d_meta.scenario_class(video["scenarios"])[0] if video else -1
    want = splits.assign_groups(labels, e4.SPLIT_FRACTIONS, "ego4d/v1")  # video-level, as 1.0.0
    assert got == {u: want[u] for u in got} and set(got.values()) == {"train", "val", "test"}
    assert got["cook-0"] != got["cook-1"]  # one participant, two splits: videos only
    assert builder.info.metadata["split"] == "video"
