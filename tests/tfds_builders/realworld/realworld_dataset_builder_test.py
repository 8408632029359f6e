"""Builds realworld from dummy_data (archive layout, nested zips and broken files)."""

import collections
import io
import os
import zipfile

import numpy as np
import pytest
import tensorflow_datasets as tfds
from etils import epath

import tfds_builders.realworld as realworld_pkg
from primus_jax.data import signal
from tests.support import fuzz
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
        f"proband{rec}/{ms}"
        for rec in (
            "02_climbingdown_1",
            "02_climbingdown_2",
            "04_walking",  # acc "_2_", gyr unnumbered: one session each, paired by activity
            "07_climbingup_1",  # sessions from the nested zips' index
            "07_climbingup_2",
        )
        for ms in (0, 2500, 5000)
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
    assert subjects == {
        "train": {"proband02", "proband04", "proband07"},
        "val": {"proband01"},
        "test": {"proband03"},
    }
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


def _member(path_in_zips: list[str], member: str) -> np.ndarray:
    """A CSV member of (nested) zips under the dummy proband folders, as an array."""
    base = os.path.join(DUMMY, "realworld2016_dataset")
    with open(os.path.join(base, path_in_zips[0]), "rb") as f:
        data = f.read()
    for name in [*path_in_zips[1:], member]:
        data = zipfile.ZipFile(io.BytesIO(data)).read(name)
    return np.loadtxt(io.BytesIO(data), delimiter=",", skiprows=1)


@pytest.mark.parametrize(
    ("split", "key", "acc", "gyr"),
    [
        (
            "val",
            "proband01_sitting/2500",
            (["proband1/data/acc_sitting_csv.zip"], "acc_sitting_head.csv"),
            (["proband1/data/gyr_sitting_csv.zip"], "Gyroscope_sitting_head.csv"),
        ),
        (
            "train",
            "proband04_walking/2500",
            (["proband4/data/acc_walking_csv.zip"], "acc_walking_2_head.csv"),
            (["proband4/data/gyr_walking_csv.zip"], "Gyroscope_walking_head.csv"),
        ),
        (
            "train",
            "proband07_climbingup_2/5000",
            (
                ["proband7/data/acc_climbingup_csv.zip", "acc_climbingup_2_csv.zip"],
                "acc_climbingup_head.csv",
            ),
            (
                ["proband7/data/gyr_climbingup_csv.zip", "gyr_climbingup_2_csv.zip"],
                "Gyroscope_climbingup_2_head.csv",
            ),
        ),
    ],
)
def test_values_match_independent_interpolation(built, split, key, acc, gyr):
    _, data = built
    ex = next(e for e in data[split] if e["id"] == key)
    acc, gyr = _member(*acc), _member(*gyr)
    t0 = max(acc[0, 1], gyr[0, 1]) / 1000  # the grid starts where both streams exist
    grid = t0 + int(key.split("/")[1]) / 1000 + np.arange(250) / 50
    want = np.stack([np.interp(grid, acc[:, 1] / 1000, acc[:, c]) for c in (2, 3, 4)], 1)
    np.testing.assert_allclose(ex["imu"][:, :3], want, atol=1e-4)
    want = np.stack([np.interp(grid, gyr[:, 1] / 1000, gyr[:, c]) for c in (2, 3, 4)], 1)
    np.testing.assert_allclose(ex["imu"][:, 3:], want, atol=1e-5)


def test_bad_input_counted(built):
    builder, _ = built
    events = builder.info.metadata["build_stats"]["events"]
    assert events["train"] == {
        "skipped_missing_file": 1,  # proband2 running: no head gyr
        "skipped_shorter_than_window": 1,  # proband2 jumping
        "sessions_paired_by_activity": 1,  # proband4 walking: acc "_2_", gyr unnumbered
    }
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
    found = list(
        archive.find_files(7, epath.Path(DUMMY) / "realworld2016_dataset" / "proband7", pytest.fail)
    )
    # Session from the nested zip's index; the unnumbered gyr session zip is session 0 (= 1).
    assert sorted((f.sensor, f.session, f.where.rsplit("!", 1)[1]) for f in found) == [
        ("acc", 1, "acc_climbingup_head.csv"),
        ("acc", 2, "acc_climbingup_head.csv"),
        ("gyr", 0, "Gyroscope_climbingup_head.csv"),
        ("gyr", 2, "Gyroscope_climbingup_2_head.csv"),
    ]


def test_bad_zip_is_skipped(tmp_path):
    manual = testing_utils.copy_tree(DUMMY, tmp_path / "manual")
    bad = os.path.join(manual, "realworld2016_dataset", "proband1", "data", "acc_walking_csv.zip")
    with open(bad, "wb") as f:
        f.write(b"not a zip")
    builder = testing_utils.build(rw.Builder, tmp_path / "data", manual)
    events = builder.info.metadata["build_stats"]["events"]["val"]
    assert events == {"skipped_bad_zip": 1, "skipped_missing_file": 1}
    assert builder.info.splits["val"].num_examples == 3


ZIPPED = os.path.join(DUMMY, "zipped")


def test_zipped_archive_in_manual_dir_is_read_in_place(built, tmp_path):
    builder_dir, data = built
    builder = testing_utils.build(rw.Builder, tmp_path, ZIPPED)
    assert builder.info.metadata["source"] == ZIPPED
    for split in SPLITS:
        got = {e["id"]: e["imu"] for e in testing_utils.read_split(builder, split)}
        want = {e["id"]: e["imu"] for e in data[split]}
        assert sorted(got) == sorted(want)
        for k in want:
            np.testing.assert_array_equal(got[k], want[k])
    # Same skips as the extracted tree: the junk video and microphone members are never opened.
    events = builder.info.metadata["build_stats"]["events"]
    assert events == builder_dir.info.metadata["build_stats"]["events"]
    assert not os.path.exists(os.path.join(ZIPPED, "realworld2016_dataset"))  # nothing extracted


def test_download_path_reads_the_zip_in_place(tmp_path, monkeypatch):
    calls = []

    def fake_download(self, url):
        calls.append(url)
        return epath.Path(ZIPPED) / "realworld2016_dataset.zip"

    def no_extract(self, *args, **kwargs):
        raise AssertionError("the archive must not be extracted")

    monkeypatch.setattr(tfds.download.DownloadManager, "download", fake_download)
    monkeypatch.setattr(tfds.download.DownloadManager, "download_and_extract", no_extract)
    monkeypatch.setattr(tfds.download.DownloadManager, "extract", no_extract)
    builder = testing_utils.build(rw.Builder, tmp_path)  # no manual dir
    assert calls == [rw.URL]
    assert builder.info.splits["test"].num_examples == 7
    assert builder.info.splits["train"].num_examples == 15


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


_P = "realworld2016_dataset/"
FUZZ_ZIPS = [  # whole zips: byte-level damage
    _P + "proband1/data/acc_walking_csv.zip",
    _P + "proband1/data/gyr_sitting_csv.zip",
    _P + "proband7/data/acc_climbingup_csv.zip",
    "zipped/realworld2016_dataset.zip",
]
FUZZ_CSVS = [  # CSV files and CSV members of zips ("zip!member"): every mutation
    _P + "proband3/data/acc_walking_head.csv",
    _P + "proband4/data/acc_walking_csv.zip!acc_walking_2_head.csv",
    _P + "proband1/data/gyr_walking_csv.zip!Gyroscope_walking_head.csv",
    _P + "proband2/data/acc_climbingdown_csv.zip!acc_climbingdown_2_head.csv",
]


def _corrupt_member(zip_path: str, member: str, mutation: str, seed: int) -> None:
    with zipfile.ZipFile(zip_path) as zf:
        items = [(info, zf.read(info)) for info in zf.infolist()]
    with zipfile.ZipFile(zip_path, "w") as zf:
        for info, data in items:
            if info.filename == member:
                data = fuzz.MUTATIONS[mutation](data, np.random.default_rng(seed))
            zf.writestr(info, data)


def _skip_counts(events: dict) -> collections.Counter:
    out = collections.Counter()
    for ev in events.values():
        out.update({k: n for k, n in ev.items() if k.startswith("skipped_")})
    return out


def _total(events: dict) -> int:
    return sum(n for ev in events.values() for n in ev.values())


def test_fuzzed_inputs_are_skipped_or_named(built, tmp_path):
    """Seeded corruptions of files, zips and zip members: skipped and counted, or an error
    naming the file; the unextracted archive is fuzzed through the zipped manual dir."""
    base_builder, base = built
    n_base = sum(len(v) for v in base.values())
    base_events = base_builder.info.metadata["build_stats"]["events"]
    manual = testing_utils.copy_tree(DUMMY, tmp_path / "manual")
    cases = fuzz.cases(FUZZ_ZIPS, fuzz.BINARY_MUTATIONS, 6, seed=1)
    cases += fuzz.cases(FUZZ_CSVS, fuzz.MUTATIONS, 8, seed=2)
    outcomes, reasons = collections.Counter(), collections.Counter()
    for i, (rel, mutation, seed) in enumerate(cases):
        path, _, member = os.path.join(manual, rel).partition("!")
        with open(path, "rb") as f:
            original = f.read()
        if member:
            _corrupt_member(path, member, mutation, seed)
        else:
            fuzz.corrupt_file(path, mutation, seed)
        source = os.path.join(manual, "zipped") if rel.startswith("zipped/") else manual
        data_dir = tmp_path / f"d{i}"
        try:
            outcome, builder = fuzz.check_outcome(
                lambda d=data_dir, m=source: testing_utils.build(rw.Builder, d, m), path
            )
        finally:
            with open(path, "wb") as f:
                f.write(original)
        outcomes[outcome] += 1
        if outcome == "error":
            print(f"realworld fuzz {rel} {mutation}: {builder[-200:]}")
            continue
        exs = [ex for s in builder.info.splits for ex in testing_utils.read_split(builder, s)]
        assert all(np.isfinite(ex["imu"]).all() for ex in exs), (rel, mutation)
        events = builder.info.metadata["build_stats"]["events"]
        # Windows lost are counted (a skip or a dropped-row note), unless the file was only
        # cut short: a truncated but well-formed CSV is a shorter recording.
        if len(exs) < n_base and mutation != "truncate":
            assert _total(events) > _total(base_events), (rel, mutation, events)
        reasons.update(_skip_counts(events) - _skip_counts(base_events))
    print(f"realworld fuzz: {dict(outcomes)}; extra skips by reason {dict(reasons)}")
    assert outcomes["ok"] and sum(outcomes.values()) == len(cases)


def test_all_empty_times_are_a_counted_skip(tmp_path):
    manual = testing_utils.copy_tree(DUMMY, tmp_path / "manual")
    path = os.path.join(manual, _P, "proband3", "data", "acc_walking_head.csv")
    with open(path, encoding="ascii") as f:
        lines = f.read().splitlines()
    with open(path, "w", encoding="ascii") as f:
        rows = [line.split(",") for line in lines[1:]]
        f.write("\n".join([lines[0]] + [",".join([r[0], "", *r[2:]]) for r in rows]) + "\n")
    builder = testing_utils.build(rw.Builder, tmp_path / "data", manual)
    events = builder.info.metadata["build_stats"]["events"]["test"]
    assert events["skipped_unusable_recording"] == 1
    assert builder.info.splits["test"].num_examples == 4  # lying only
