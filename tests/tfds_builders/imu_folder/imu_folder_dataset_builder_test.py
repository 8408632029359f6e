"""Builds imu_folder from the generated messy folder (dummy_data) and from broken variants."""

import os
import re

import numpy as np
import pytest
import yaml
from support import REPO

import tfds_builders.imu_folder as imu_folder_pkg
from primus_jax.data import signal
from tfds_builders import testing_utils
from tfds_builders.imu_folder import imu_folder_dataset_builder as folder
from tfds_builders.imu_folder import manifest as manifest_lib

DUMMY = os.path.join(os.path.dirname(imu_folder_pkg.__file__), "dummy_data")
SPLITS = ("train", "val", "test")


@pytest.fixture(scope="module")
def built(tmp_path_factory):
    builder = testing_utils.build(folder.Builder, tmp_path_factory.mktemp("folder"), DUMMY)
    return builder, {s: testing_utils.read_split(builder, s) for s in SPLITS}


def _ids(exs, recording):
    return sorted(round(float(e["start_s"]) * 1000) for e in exs if e["recording"] == recording)


def test_windows_per_split_and_skips_counted(built):
    builder, data = built
    train = data["train"]
    # s01: 30 s at 100 Hz with a 1 s hole at 22-23 s: 11 windows, the 3 touching it dropped.
    assert _ids(train, "s01_morning") == [0, 2500, 5000, 7500, 10000, 12500, 15000, 25000]
    assert _ids(train, "s03_lab") == [2500 * i for i in range(11)]
    assert _ids(train, "s04_home") == [2500 * i for i in range(11)]
    # s02: acc from 0 s, gyro from 0.3 s: the joint grid starts at 0.3 s.
    assert _ids(data["test"], "s02_walk") == [300 + 2500 * i for i in range(10)]
    assert _ids(data["val"], "s05_short") == [0, 2500, 5000]
    assert {s: {e["subject"] for e in v} for s, v in data.items()} == {
        "train": {"s01", "s03", "s04"},
        "val": {"s05"},
        "test": {"s02"},
    }
    events = builder.info.metadata["build_stats"]["events"]
    assert events["train"] == {
        "rows_dropped_nonfinite": 3,
        "rows_dropped_duplicate_time": 3,
        "files_reordered": 1,
        "skipped_window_across_gap": 3,
        "narrations_not_used": 2,  # s01/s03: the note at 95 s, after the recording
        "windows_without_video_emb": 5,
    }
    assert events["test"] == {"skipped_malformed_file": 1}  # s02_evening lacks gz
    assert events["val"] == {"skipped_missing_file": 1, "skipped_units_mismatch": 1}
    assert events["all"] == {"files_not_in_manifest": 1}  # notes.txt
    balance = builder.info.metadata["build_stats"]["class_balance"]
    assert balance["test"] == {"walking": 5, "sitting": 4, "<unlabelled>": 1}
    md = builder.info.metadata
    assert md["label_names"] == ["walking", "sitting"]
    assert md["class_prompts"][0] == ["a person is walking", "someone walks down a corridor"]
    assert md["subjects"] == {"train": ["s01", "s03", "s04"], "val": ["s05"], "test": ["s02"]}
    assert md["recordings"]["s02_walk"] == {
        "subject": "s02",
        "device": "phone",
        "position": "pocket",
    }
    assert md["video_emb_dim"] == 384 and "sha256=" in md["source"]


def test_units_labels_text(built):
    _, data = built
    for ex in (e for v in data.values() for e in v):
        assert ex["imu"].shape == (250, 6) and np.isfinite(ex["imu"]).all()
        # Every file, whatever its unit (g, m/s², deg/s, rad/s), ends in m/s² and rad/s.
        assert np.linalg.norm(ex["imu"][:, :3], axis=1).mean() == pytest.approx(signal.G, abs=0.6)
        start = float(ex["start_s"])
        walking = np.clip(15 - start, 0, 5) / 5  # labels: walking [0, 15), sitting [15, 30)
        want = "walking" if walking >= 0.8 else "sitting" if walking <= 0.2 else ""
        assert ex["label_name"] == want, ex["id"]  # label_coverage 0.8
        if start + 5 <= 15:
            assert np.abs(ex["imu"][:, 3]).max() == pytest.approx(1.0, abs=0.1)  # rad/s
        elif start >= 15:  # still, after the filter's 0.2 s edge
            assert np.abs(ex["imu"][10:, 3:]).max() < 0.1
    by_id = {e["id"]: e for v in data.values() for e in v}
    assert by_id["s01_morning/0"]["text"] == "walks to the kitchen, then back"
    assert by_id["s01_morning/5000"]["text"] == "walking down the corridor"
    assert by_id["s01_morning/2500"]["text"] == "walks to the kitchen, then back"
    assert by_id["s02_walk/15300"]["text"] == "sitting on a bench"  # interval midpoint 18.5 s
    lab = sorted(
        (e for e in data["train"] if e["recording"] == "s03_lab"), key=lambda e: e["start_s"]
    )
    assert [e["has_video"] for e in lab] == [i % 2 == 0 for i in range(11)]
    for e in lab:
        if e["has_video"]:
            assert e["video_emb"].shape == (384,)
            assert np.linalg.norm(e["video_emb"]) == pytest.approx(1.0, abs=1e-5)


def test_values_match_independent_interpolation(built):
    """s02: acc ~50 Hz in g (no anti-aliasing: plain interpolation), epoch milliseconds."""
    _, data = built
    ex = next(e for e in data["test"] if e["id"] == "s02_walk/5300")
    acc = np.loadtxt(os.path.join(DUMMY, "s02_walk_acc.csv"), delimiter=",", skiprows=1)
    t = (acc[:, 0] - acc[0, 0]) / 1000.0  # origin: the earlier first sample (acc)
    grid = 5.3 + np.arange(250) / 50
    want = np.stack([np.interp(grid, t, acc[:, c]) for c in (1, 2, 3)], 1) * 9.80665
    np.testing.assert_allclose(ex["imu"][:, :3], want, atol=2e-4)
    gyro = np.loadtxt(os.path.join(DUMMY, "s02_walk_gyro.csv"), delimiter=",", skiprows=1)
    tg = (gyro[:, 0] - acc[0, 0]) / 1000.0
    want = np.stack([np.interp(grid, tg, gyro[:, c]) for c in (1, 2, 3)], 1) * np.pi / 180
    # 200 Hz -> 50 Hz is low-pass filtered first: the 0.9/1.8 Hz motion passes, noise does not.
    assert np.abs(ex["imu"][:, 3:] - want).mean() < 0.01
    assert np.abs(ex["imu"][:, 3:] - want).max() < 0.05


def _variant(tmp_path, edit):
    """A copy of the dummy folder with its manifest edited by ``edit(dict)``."""
    root = testing_utils.copy_tree(DUMMY, tmp_path / "folder")
    path = os.path.join(root, "manifest.yaml")
    with open(path, encoding="utf-8") as f:
        m = yaml.safe_load(f)
    edit(m)
    with open(path, "w", encoding="utf-8") as f:
        yaml.safe_dump(m, f)
    return root


def test_narration_windows_and_declared_mismatches(tmp_path):
    def edit(m):
        m["windows"] = "narration"
        recs = {r["id"]: r for r in m["recordings"]}
        recs["s04_home"]["rate_hz"] = 50  # the file is 100 Hz, no time column: half speed
        recs["s03_lab"]["rate_hz"] = 100  # timestamps say 64 Hz
        recs["s05_short"]["time_unit"] = "ms"  # seconds read as ms: 100 kHz

    root = _variant(tmp_path, edit)
    builder = testing_utils.build(folder.Builder, tmp_path / "data", root)
    train = testing_utils.read_split(builder, "train")
    # One window per narration, centred: 3.1 s -> [0.6, 5.6), 8.4 -> [5.9, 10.9), 26.0 ->
    # [23.5, 28.5); 19.5 s -> [17, 22) ends within the filter's reach of the 22-23 s hole.
    assert _ids(train, "s01_morning") == [600, 5900, 23500]
    assert {e["text"] for e in train if e["recording"] == "s01_morning"} == {
        "walks to the kitchen, then back",
        "walking down the corridor",
        "types on the laptop while seated",
    }
    # s04 at a stated 50 Hz lasts 60 s: the notes at 3.5, 18.5, 25.5 s still get windows.
    assert len(_ids(train, "s04_home")) == 3
    events = builder.info.metadata["build_stats"]["events"]
    assert events["train"]["skipped_rate_mismatch"] == 1
    assert events["train"]["skipped_narration_gap"] == 1
    assert events["train"]["skipped_narration_outside"] == 1  # 95 s
    assert events["val"]["skipped_implausible_rate"] == 1
    assert "val" not in builder.info.splits  # s05_short gone, and it has no narrations


@pytest.mark.parametrize(
    "edit, key",
    [
        (lambda m: m["recordings"][1]["units"].update(acc="G"), "recordings[1].units"),
        (lambda m: m["recordings"][0].pop("subject"), "recordings[0].subject"),
        (lambda m: m["recordings"][0].update(rate=100), "recordings[0]: unknown key"),
        (lambda m: m.update(windows="every_second"), "windows"),
        (lambda m: m.update(hop_s=0.011), "hop_s"),
        (lambda m: m["recordings"][2].update(id="s01_morning"), "recordings[2].id"),
        (lambda m: m["splits"].update(test=[]), "splits: subjects ['s02']"),
        (lambda m: m["recordings"][3].update(file="s03_lab.xlsx"), "recordings[3].file"),
        (lambda m: m.update(time_column=None), "recordings[1]: needs time_column or rate_hz"),
    ],
)
def test_manifest_errors_name_the_key(tmp_path, edit, key):
    root = _variant(tmp_path, edit)
    with pytest.raises(manifest_lib.ManifestError) as e:
        manifest_lib.load(root)
    assert str(e.value).startswith(os.path.join(root, "manifest.yaml") + ": ")
    assert key in str(e.value)


def test_no_manifest_and_no_windows_fail_naming_files(tmp_path):
    with pytest.raises(manifest_lib.ManifestError, match="no manifest"):
        manifest_lib.load(os.fspath(tmp_path))

    def edit(m):
        m["recordings"] = [r for r in m["recordings"] if r["id"] in ("s05_stairs", "s05_desk")]
        m["splits"] = {"train": ["s05"]}

    root = _variant(tmp_path, edit)
    with pytest.raises(ValueError, match="no windows") as e:
        testing_utils.build(folder.Builder, tmp_path / "data", root)
    assert "s05_stairs_gyro.csv not found (missing_file)" in str(e.value)
    assert "s05_desk.csv: acc declared 'm/s2'" in str(e.value)


def test_default_splits_give_a_few_subjects_a_test_split():
    got = {
        n: folder.splits.assign_groups(
            {f"p{i}": 0 for i in range(n)}, manifest_lib.DEFAULT_SPLITS, "imu_folder/v1"
        )
        for n in (2, 3)
    }
    assert [sorted(a.values()) for a in got.values()] == [
        ["test", "train"],
        ["test", "train", "train"],
    ]


def test_walkthrough_manifest_example_loads(tmp_path):
    """The manifest shown in docs/own_recordings.md and the README's full example parse."""
    pages = [
        os.path.join(REPO, "docs", "own_recordings.md"),
        os.path.join(DUMMY, "..", "README.md"),
    ]
    for page in pages:
        with open(page, encoding="utf-8") as f:
            block = re.search(r"```yaml\n(.*?)```", f.read(), flags=re.S).group(1)
        d = tmp_path / os.path.basename(page)
        d.mkdir()
        (d / "manifest.yaml").write_text(block, encoding="utf-8")
        m = manifest_lib.load(os.fspath(d))
        assert m.recordings and all(r.subject for r in m.recordings)


def test_dummy_data_is_reproducible(tmp_path):
    from tfds_builders.imu_folder import dummy_data_generation

    testing_utils.assert_dummy_data_regenerates(dummy_data_generation, DUMMY, tmp_path)
