"""Fuzzed folders: every file of the messy dummy folder, the manifest too, damaged at random.

Each case either builds, with the damaged file skipped and counted (or its damage dropped as
counted rows), or fails with an error naming the file; never an unnamed crash, never a window
holding NaN/inf (``support.fuzz.check_outcome``). The windows are generated without writing
ArrayRecord files: the same code path as a build, minus TFDS's writer.
"""

import os
import types

import numpy as np
import pytest
from etils import epath
from support import fuzz

import tfds_builders.imu_folder as imu_folder_pkg
from tfds_builders import testing_utils
from tfds_builders.imu_folder import imu_folder_dataset_builder as folder

DUMMY = os.path.join(os.path.dirname(imu_folder_pkg.__file__), "dummy_data")
TEXT = ("manifest.yaml", "s01_morning.csv", "s02_walk_acc.csv", "s02_walk_gyro.csv")
TEXT += ("s03_lab_labels.csv", "s01_morning_notes.csv", "s02_walk_notes.csv")
BINARY = ("s03_lab.parquet", "s04_home.npz", "s03_lab_video.npz")
N_CASES = 36


def _generate(data_dir, root):
    """``(examples per split, events)`` of a build of ``root``, without writing it."""
    builder = folder.Builder(data_dir=os.fspath(data_dir), config="raw")
    gens = builder._split_generators(types.SimpleNamespace(manual_dir=epath.Path(root)))
    out = {split: [ex for _, ex in gen] for split, gen in gens.items()}
    return out, {s: dict(c) for s, c in builder.stats.events.items()}


@pytest.fixture(scope="module")
def baseline(tmp_path_factory):
    return _generate(tmp_path_factory.mktemp("data"), DUMMY)


def _cases():
    text = fuzz.cases(list(TEXT), fuzz.MUTATIONS, N_CASES * 2 // 3, seed=9)
    binary = fuzz.cases(list(BINARY), fuzz.BINARY_MUTATIONS, N_CASES // 3, seed=10)
    return text + [(f, m, i + 1000) for f, m, i in binary]


def test_fuzzed_folder_builds_or_names_the_file(tmp_path, baseline):
    base_out, base_events = baseline
    base_ids = {ex["id"] for exs in base_out.values() for ex in exs}
    outcomes = {"ok": 0, "error": 0}
    for i, (name, mutation, seed) in enumerate(_cases()):
        root = testing_utils.copy_tree(DUMMY, tmp_path / f"case{i}")
        path = os.path.join(root, name)
        fuzz.corrupt_file(path, mutation, seed)
        run = lambda d=tmp_path / f"data{i}", r=root: _generate(d, r)
        kind, result = fuzz.check_outcome(run, path)
        outcomes[kind] += 1
        if kind == "error":
            continue
        out, events = result
        ids = set()
        for exs in out.values():
            for ex in exs:
                assert np.isfinite(ex["imu"]).all(), (name, mutation, ex["id"])
                ids.add(ex["id"])
        if events == base_events:  # nothing counted: the damage changed no window's existence
            assert ids <= base_ids, (name, mutation, sorted(ids - base_ids))
        if mutation in ("empty", "random_bytes") and name != "manifest.yaml":
            skipped = lambda ev: sum(
                n for c in ev.values() for k, n in c.items() if k.startswith("skipped_")
            )
            assert skipped(events) > skipped(base_events), (name, mutation, events)
    assert outcomes["ok"] and outcomes["error"]  # both paths were exercised
