"""Builds uci_hapt from dummy_data (UCI raw layout) and from the installed package."""

import collections
import filecmp
import logging
import os

import numpy as np
import pytest

import tfds_builders.uci_hapt as uci_hapt_pkg
from primus_jax.data import signal
from tfds_builders import segment_format, testing_utils
from tfds_builders.uci_hapt import hapt_pickle
from tfds_builders.uci_hapt import uci_hapt_dataset_builder as hapt

DUMMY = os.path.join(os.path.dirname(uci_hapt_pkg.__file__), "dummy_data")


@pytest.fixture(scope="module")
def built(tmp_path_factory):
    builder = testing_utils.build(hapt.Builder, tmp_path_factory.mktemp("hapt"), DUMMY)
    return builder, {s: testing_utils.read_split(builder, s) for s in ("train", "val", "test")}


def test_counts_and_splits(built):
    builder, data = built
    assert {s: len(v) for s, v in data.items()} == {"train": 10, "val": 5, "test": 4}
    assert builder.info.splits["train"].num_examples == 10
    subjects = {s: {ex["subject"] for ex in v} for s, v in data.items()}
    assert subjects == {"train": {"user01"}, "val": {"user05"}, "test": {"user02"}}
    for split, exs in data.items():
        for ex in exs:
            assert hapt.subject_splits()[int(ex["subject"][4:])] == split


def test_subject_split_lists():
    by_user = hapt.subject_splits()
    assert sorted(by_user) == list(range(1, 31))
    assert sorted(u for u, s in by_user.items() if s == "test") == sorted(hapt.TEST_SUBJECTS)
    assert sorted(u for u, s in by_user.items() if s == "val") == [5, 8, 25]  # as documented


def test_examples_shapes_units_labels(built):
    _, data = built
    exs = [ex for v in data.values() for ex in v]
    ids = [ex["id"] for ex in exs]
    assert len(set(ids)) == len(ids)
    for ex in exs:
        assert ex["imu"].shape == (250, 6) and ex["imu"].dtype == np.float32
        assert np.isfinite(ex["imu"]).all()
        assert ex["id"] == segment_format.segment_id(ex["recording"], float(ex["start_s"]))
        assert ex["label_name"] == hapt.LABEL_NAMES[ex["label"]]
        assert ex["text"] in hapt.TEMPLATES[ex["label"]]
        assert not ex["has_text"] and ex["text_emb"].shape == (0,)
        assert not ex["has_video"] and ex["video_emb"].shape == (0,)
        mag = np.linalg.norm(ex["imu"][:, :3], axis=1)
        if ex["label_name"] in ("sitting", "standing", "laying"):
            assert mag.mean() == pytest.approx(signal.G, abs=0.05)  # 1 g at rest -> m/s²
            assert np.abs(ex["imu"][:, 3:]).max() < 0.2  # rad/s, no rotation
        else:
            assert mag.mean() == pytest.approx(signal.G, abs=0.5)
    by_id = {ex["id"]: ex for ex in exs}
    # user01 exp01 standing segment covers rows 100-499: windows start at rows 100 and 225.
    assert {"user01_session1/2000", "user01_session1/4500"} <= by_id.keys()
    assert by_id["user01_session1/2000"]["label_name"] == "standing"
    assert by_id["user01_session1/2000"]["start_s"] == pytest.approx(2.0)
    raw = np.loadtxt(os.path.join(DUMMY, "RawData", "acc_exp01_user01.txt"))
    np.testing.assert_allclose(
        by_id["user01_session1/2000"]["imu"][:, :3], raw[100:350] * signal.G, rtol=1e-6
    )


def test_bad_input_counted(built):
    builder, _ = built
    stats = builder.info.metadata["build_stats"]
    assert stats["events"]["all"] == {
        "skipped_missing_file": 1,
        "skipped_malformed_file": 1,
        "skipped_bad_label_row": 1,
    }
    assert stats["events"]["val"] == {
        "skipped_nonfinite_window": 2,
        "transition_segments_excluded": 2,
    }
    assert stats["events"]["train"] == {"transition_segments_excluded": 2}
    assert stats["events"]["test"] == {
        "segments_shorter_than_window": 1,
        "transition_segments_excluded": 2,
    }
    assert stats["class_balance"]["train"] == {"standing": 2, "sitting": 2, "walking": 6}
    assert builder.info.metadata["source"].startswith("uci_raw:")


def test_activity_metadata_prompts(built):
    builder, _ = built
    meta = builder.info.metadata
    assert meta["label_names"] == list(hapt.LABEL_NAMES)
    assert meta["class_prompts"] == [list(hapt.TEMPLATES[c]) for c in range(6)]
    assert meta["text_from_labels"] is True
    assert "text_encoder" not in meta  # only an embedding config's store sets it


def _labels_table():
    from tfds_builders.uci_hapt import dummy_data_generation as gen

    return gen.LABELS, gen.N


@pytest.fixture(scope="module")
def transitions(tmp_path_factory):
    builder = testing_utils.build(
        hapt.Builder, tmp_path_factory.mktemp("hapt_tr"), DUMMY, config="transitions"
    )
    return builder, {s: testing_utils.read_split(builder, s) for s in ("train", "val", "test")}


def test_transitions_windows_are_centred_on_each_transition(transitions):
    _, data = transitions
    rows, n = _labels_table()
    exp_user = {1: 1, 2: 1, 5: 2, 11: 5}  # dummy experiments holding transitions
    want = {}  # id -> (label, start row), computed independently from labels.txt
    session = {(1, 1): 1, (1, 2): 2, (2, 5): 3, (5, 11): 3}  # (user, exp) -> session rank
    for exp, user, act, lo, hi in rows:
        if act < 7 or exp not in exp_user:
            continue
        centre = (lo + hi + 1) / 2  # rows [lo, hi] inclusive: midpoint of [lo, hi + 1)
        start = int(min(max(np.floor(centre - 125), 0), n - 250))
        rec = f"user{user:02d}_session{session[(user, exp)]}"
        want[f"{rec}/{start * 20}"] = (act - 7, start, exp, user)
    del want["user05_session3/500"]  # exp11's stand_to_sit window holds a NaN: skipped
    got = {ex["id"]: ex for v in data.values() for ex in v}
    assert set(got) == set(want)
    for key, (label, start, exp, user) in want.items():
        ex = got[key]
        assert ex["label"] == label and ex["label_name"] == hapt.TRANSITION_NAMES[label]
        assert ex["text"] == "" and not ex["has_text"]
        raw = np.loadtxt(os.path.join(DUMMY, "RawData", f"acc_exp{exp:02d}_user{user:02d}.txt"))
        np.testing.assert_allclose(ex["imu"][:, :3], raw[start : start + 250] * signal.G, rtol=1e-6)
    # Unclamped windows are centred on the transition to the sample.
    assert got["user01_session1/8500"]["start_s"] == pytest.approx((500 + 600) / 2 / 50 - 2.5)
    assert got["user01_session2/0"]["start_s"] == 0.0  # sit_to_stand at rows 0-49: clamped
    assert got["user05_session3/15000"]["start_s"] == pytest.approx(15.0)  # clamped to the end


def test_transitions_splits_metadata_and_counts(transitions):
    builder, data = transitions
    by_user = hapt.subject_splits()
    for split, exs in data.items():
        for ex in exs:
            assert by_user[int(ex["subject"][4:])] == split  # the main builder's subject split
    meta = builder.info.metadata
    assert meta["label_names"] == list(hapt.TRANSITION_NAMES)
    assert meta["class_prompts"] == [list(p) for p in hapt.TRANSITION_PROMPTS]
    assert all(5 <= len(p) <= 9 for p in meta["class_prompts"])
    assert meta["text_from_labels"] is False
    assert meta["text_encoder"] == "minilm" and meta["text_emb_dim"] == 0
    stats = meta["build_stats"]
    assert stats["class_balance"] == {
        "train": {"stand_to_sit": 1, "sit_to_stand": 1},
        "test": {"lie_to_sit": 1, "stand_to_lie": 1},
        "val": {"lie_to_stand": 1},
    }
    assert stats["events"]["train"] == {"windows_clamped_to_recording": 1}
    assert stats["events"]["test"] == {"transitions_longer_than_window": 1}
    assert stats["events"]["val"] == {
        "skipped_nonfinite_window": 1,
        "windows_clamped_to_recording": 1,
    }


def test_config_classes_fallback_matches_metadata():
    for config in ("raw", "minilm", "transitions"):
        classes = hapt.Builder.config_classes(config)
        assert len(classes["class_prompts"]) == len(classes["label_names"])
    assert hapt.Builder.config_classes("transitions")["label_names"] == list(hapt.TRANSITION_NAMES)
    assert hapt.Builder.config_classes("minilm")["text_from_labels"] is True
    with pytest.raises(ValueError, match="no config 'nope'"):
        hapt.Builder.config_classes("nope")


def test_dummy_data_is_reproducible(tmp_path):
    from tfds_builders.uci_hapt import dummy_data_generation

    dummy_data_generation.main(str(tmp_path))
    cmp = filecmp.dircmp(os.path.join(DUMMY, "RawData"), tmp_path / "RawData")
    assert not cmp.left_only and not cmp.right_only
    _, mismatch, errors = filecmp.cmpfiles(
        os.path.join(DUMMY, "RawData"), tmp_path / "RawData", cmp.common_files, shallow=False
    )
    assert not mismatch and not errors


def test_minilm_config_merges_store(built, tmp_path):
    _, data = built
    ids = sorted(ex["id"] for v in data.values() for ex in v)
    manual = testing_utils.copy_tree(DUMMY, tmp_path / "manual")
    written = testing_utils.write_store(
        os.path.join(manual, "embeddings", "minilm"), ids[1:], "text", 384
    )
    builder = testing_utils.build(hapt.Builder, tmp_path / "data", manual, config="minilm")
    assert builder.info.metadata["text_emb_dim"] == 384
    assert builder.info.metadata["text_encoder"] == "test-encoder"
    exs = {
        ex["id"]: ex
        for s in ("train", "val", "test")
        for ex in testing_utils.read_split(builder, s)
    }
    assert not exs[ids[0]]["has_text"] and exs[ids[0]]["text_emb"].shape == (0,)
    for key in ids[1:]:
        assert exs[key]["has_text"]
        np.testing.assert_array_equal(exs[key]["text_emb"], written[key])
    events = builder.info.metadata["build_stats"]["events"]
    assert sum(e.get("skipped_text_emb_missing", 0) for e in events.values()) == 1


def test_store_dim_mismatch_fails(tmp_path):
    store = tmp_path / "store"
    testing_utils.write_store(store, ["user01_session1/2000"], "text", 8)
    config = segment_format.SegmentConfig(name="bad", text_store=str(store), text_emb_dim=16)
    with pytest.raises(ValueError, match="dim 8, config 'bad' expects 16"):
        testing_utils.build(hapt.Builder, tmp_path / "data", DUMMY, config=config)


def test_no_source_fails_clearly(tmp_path, monkeypatch):
    monkeypatch.setattr(hapt_pickle, "package_pickle_path", lambda: None)
    with pytest.raises(FileNotFoundError, match="no RawData"):
        testing_utils.build(hapt.Builder, tmp_path / "data")


def test_real_hapt_from_installed_package(tmp_path, caplog):
    if hapt_pickle.package_pickle_path() is None:
        pytest.skip(f"{hapt_pickle.PACKAGE_PIN} is not installed")
    caplog.set_level(logging.INFO)
    builder = testing_utils.build(hapt.Builder, tmp_path)
    meta = builder.info.metadata
    assert "sha256=" + hapt_pickle.SHA256 in meta["source"]
    counts = {s: builder.info.splits[s].num_examples for s in ("train", "val", "test")}
    assert counts == {"train": 2911, "val": 452, "test": 1342}
    subjects = {}
    for split in counts:
        source = builder.as_data_source(split=split)
        exs = source.__getitems__(list(range(len(source))))
        subjects[split] = {ex["subject"].decode() for ex in exs}
        labels = np.array([ex["label"] for ex in exs])
        assert set(labels) == set(range(6))  # every class in every split
    assert len(subjects["train"] | subjects["val"] | subjects["test"]) == 30
    assert not subjects["train"] & subjects["test"]
    assert not subjects["train"] & subjects["val"] and not subjects["val"] & subjects["test"]
    assert {int(s[4:]) for s in subjects["test"]} == set(hapt.TEST_SUBJECTS)
    balance_lines = [r.getMessage() for r in caplog.records if "class balance" in r.getMessage()]
    assert len(balance_lines) == 3 and "walking_upstairs=" in balance_lines[0]
    assert meta["build_stats"]["class_balance"]["test"]["laying"] == 254


def test_real_hapt_transitions_from_installed_package(tmp_path):
    path = hapt_pickle.package_pickle_path()
    if path is None:
        pytest.skip(f"{hapt_pickle.PACKAGE_PIN} is not installed")
    experiments = hapt_pickle.load_path(path)
    # The pickle keeps the transition labels 7-12 (the activity builds exclude them).
    assert set(range(7, 13)) <= set(np.unique(np.concatenate([e.labels for e in experiments])))
    want = {s: np.zeros(6, int) for s in ("train", "val", "test")}
    by_user = hapt.subject_splits()
    for e in experiments:  # one window per transition run, counted independently
        runs = np.flatnonzero(np.diff(np.r_[-2, e.labels]))
        for lo in runs:
            if e.labels[lo] >= 7:
                want[by_user[e.user]][e.labels[lo] - 7] += 1
    builder = testing_utils.build(hapt.Builder, tmp_path, config="transitions")
    balance = builder.info.metadata["build_stats"]["class_balance"]
    for split, counts in want.items():
        assert builder.info.splits[split].num_examples == counts.sum()
        assert [balance[split].get(n, 0) for n in hapt.TRANSITION_NAMES] == counts.tolist()
        source = builder.as_data_source(split=split)
        exs = source.__getitems__(list(range(len(source))))
        subjects = {int(ex["subject"].decode()[4:]) for ex in exs}
        assert subjects == {u for u, s in by_user.items() if s == split}
    assert want["test"].tolist() == [18] * 6 and want["train"].sum() == 213


def test_fuzzed_raw_files_are_skipped_and_counted_or_named(tmp_path):
    """Seeded corruptions of the RawData files: each build finishes with the damaged file
    skipped and counted by reason, or fails naming it; never a window holding NaN/inf."""
    from support import fuzz

    names = sorted(os.listdir(os.path.join(DUMMY, "RawData")))
    outcomes = collections.Counter()
    for i, (name, mutation, seed) in enumerate(fuzz.cases(names, fuzz.WS_TEXT_MUTATIONS, 30)):
        manual = testing_utils.copy_tree(DUMMY, tmp_path / f"m{i}")
        damaged = os.path.join(manual, "RawData", name)
        fuzz.corrupt_file(damaged, mutation, seed)
        kind, builder = fuzz.check_outcome(
            lambda m=manual, i=i: testing_utils.build(hapt.Builder, tmp_path / f"d{i}", m), damaged
        )
        outcomes[kind] += 1
        if kind == "error":  # labels.txt, or a split left without windows: named above
            continue
        for split in builder.info.splits:
            for ex in testing_utils.read_split(builder, split):
                assert np.isfinite(ex["imu"]).all(), (name, mutation, ex["id"])
        skipped = builder.info.metadata["build_stats"]["events"]["all"]
        # The dummy data's own three bad inputs are counted as before, plus the damage.
        assert sum(skipped.values()) >= 3, (name, mutation, skipped)
    assert outcomes["ok"] >= 12, outcomes
