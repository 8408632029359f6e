"""Fuzzed EgoExo4D raw files: every build finishes with the damage skipped and counted, or
fails with an error naming the damaged file; no window ever holds NaN/inf (tests/support/fuzz).

Seeded and bounded: 22 builds of a 5-take cut of the dummy data, one damaged file each.
"""

import functools
import json
import os
import shutil

import numpy as np
import pytest
from support import fuzz

import tfds_builders.egoexo4d as egoexo4d_pkg
from tfds_builders import testing_utils
from tfds_builders.egoexo4d import aria_imu, fake_vrs
from tfds_builders.egoexo4d import egoexo4d_dataset_builder as ee

DUMMY = os.path.join(os.path.dirname(egoexo4d_pkg.__file__), "dummy_data")


# damaged file -> the take whose windows it feeds (None: a file every take depends on)
TARGETS = {
    "takes.json": None,
    "annotations/atomic_descriptions_train.json": None,
    "takes/georgiatech_cooking_02_1/imu.npz": "tr-cook-2",
    "takes/upenn_0711_Guitar_2/imu.npz": "tr-music-0",
    "takes/cmu_bike_02_3/aria01_noimagestreams.vrs": "tr-bike-1",
    "captures/georgiatech_cooking_03/timesync.csv": "tr-cook-3",
    "captures/unc_unknowntask/timesync.csv": "tr-misc-0",
}
BINARY = (".npz", ".vrs")


def _build(root, out):
    builder = testing_utils.build(ee.Builder, out, root)
    windows = {
        ex["id"]: ex for s in builder.info.splits for ex in testing_utils.read_split(builder, s)
    }
    return builder.info.metadata["build_stats"]["events"], windows


def _skipped(events) -> int:
    return sum(n for ev in events.values() for k, n in ev.items() if k.startswith("skipped_"))


def _cases():
    """Every mutation twice: the seven on text files (JSON, CSV), the four binary ones on the
    npz/VRS files; which file each hits is drawn by ``fuzz.cases`` (seeded)."""
    text = [f for f in TARGETS if not f.endswith(BINARY)]
    binary = [f for f in TARGETS if f.endswith(BINARY)]
    out = []
    for files, mutations, seed in (
        (text, fuzz.MUTATIONS, 11),
        (binary, fuzz.BINARY_MUTATIONS, 12),
        (text, fuzz.MUTATIONS, 21),
        (binary, fuzz.BINARY_MUTATIONS, 22),
    ):
        drawn = fuzz.cases(files, mutations, len(mutations), seed=seed)
        out += [(f, m, seed * 100 + i) for (f, _, i), m in zip(drawn, mutations, strict=True)]
    return out


def _small_dummy(out: str) -> str:
    """The dummy data cut down to the takes in TARGETS (a build then takes ~0.3 s)."""
    uids = {t for t in TARGETS.values() if t}
    with open(os.path.join(DUMMY, "takes.json"), encoding="utf-8") as f:
        takes = [t for t in json.load(f) if t["take_uid"] in uids]
    for t in takes:
        for sub in (t["root_dir"], f"captures/{t['capture']['capture_name']}"):
            shutil.copytree(os.path.join(DUMMY, sub), os.path.join(out, sub))
    with open(os.path.join(out, "takes.json"), "w", encoding="utf-8") as f:
        json.dump(takes, f, indent=1)
    for split in ("train", "val"):
        name = f"annotations/atomic_descriptions_{split}.json"
        with open(os.path.join(DUMMY, name), encoding="utf-8") as f:
            doc = json.load(f)
        doc["annotations"] = {u: a for u, a in doc["annotations"].items() if u in uids}
        os.makedirs(os.path.join(out, "annotations"), exist_ok=True)
        with open(os.path.join(out, name), "w", encoding="utf-8") as f:
            json.dump(doc, f, indent=1)
    return out


@pytest.fixture(scope="module")
def baseline(tmp_path_factory):
    small = _small_dummy(os.fspath(tmp_path_factory.mktemp("small") / "d"))
    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(aria_imu, "provider_module", lambda: fake_vrs)
        return small, *_build(small, tmp_path_factory.mktemp("base"))


def test_fuzzed_raw_files_are_skipped_or_named(baseline, tmp_path, monkeypatch):
    monkeypatch.setattr(aria_imu, "provider_module", lambda: fake_vrs)
    small, base_events, base_windows = baseline
    assert {k.split("/")[0] for k in base_windows} == {t for t in TARGETS.values() if t}
    outcomes = []
    for rel, mutation, seed in _cases():
        root = testing_utils.copy_tree(small, tmp_path / f"d{seed}")
        path = os.path.join(root, rel)
        fuzz.corrupt_file(path, mutation, seed)
        out = tmp_path / f"o{seed}"
        outcome, result = fuzz.check_outcome(functools.partial(_build, root, out), path)
        outcomes.append((rel, mutation, outcome))
        if outcome == "error":
            continue
        events, windows = result
        for ex in windows.values():
            assert np.isfinite(ex["imu"]).all(), (rel, mutation, ex["id"])
        take = TARGETS[rel]
        if take is None:
            continue  # a changed takes.json/annotation file may legitimately change any take
        mine = {k: v for k, v in windows.items() if k.startswith(take + "/")}
        base = {k: v for k, v in base_windows.items() if k.startswith(take + "/")}
        same = mine.keys() == base.keys() and all(
            np.array_equal(mine[k]["imu"], base[k]["imu"]) for k in mine
        )
        if not same:  # the damage reached the windows: the take must be a counted skip
            assert not mine, (rel, mutation, sorted(mine))
            assert _skipped(events) > _skipped(base_events), (rel, mutation, events)
        others = {k for k in windows if not k.startswith(take + "/")}
        assert others == {k for k in base_windows if not k.startswith(take + "/")}
    kinds = {o for _, _, o in outcomes}
    assert "ok" in kinds, outcomes  # damaged takes were skipped with the build finishing
