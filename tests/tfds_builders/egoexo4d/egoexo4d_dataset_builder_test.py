"""Builds egoexo4d from dummy_data and checks windows, labels, leakage-free splits, bad input."""

import os

import numpy as np
import pytest

import tfds_builders.egoexo4d as egoexo4d_pkg
from primus_jax.data import signal
from tfds_builders import testing_utils
from tfds_builders.egoexo4d import aria_imu, egoexo_meta
from tfds_builders.egoexo4d import egoexo4d_dataset_builder as ee

DUMMY = os.path.join(os.path.dirname(egoexo4d_pkg.__file__), "dummy_data")


@pytest.fixture(scope="module")
def built(tmp_path_factory):
    builder = testing_utils.build(ee.Builder, tmp_path_factory.mktemp("ee"), DUMMY)
    return builder, {s: testing_utils.read_split(builder, s) for s in ee.SPLITS}


def _takes(exs):
    return {ex["recording"] for ex in exs}


def test_splits_are_take_disjoint_and_leak_free(built):
    builder, data = built
    takes = {s: _takes(v) for s, v in data.items()}
    for a in ee.SPLITS:
        for b in ee.SPLITS:
            assert a == b or not takes[a] & takes[b]
    pretrain = takes["train"] | takes["val"]
    downstream = takes["downstream_train"] | takes["downstream_val"] | takes["downstream_test"]
    assert all(t.startswith("tr-") for t in pretrain)  # official train only
    assert all(t.startswith("vl-") for t in downstream)  # official val only
    assert "tr-music-0" in takes["train"]  # in both official files: pretraining only
    assert "vl-misc-0" not in downstream  # unlabelled official-val take: unused
    assert "vl-cook-0" not in downstream  # its participant (102) has pretraining takes
    cook = {s: {t for t in v if t.startswith("tr-cook")} for s, v in takes.items()}
    assert cook["val"] == {"tr-cook-1", "tr-cook-4"}  # participant 101: 1 of 5 cooking groups
    cpr = {s: {t for t in v if "cpr" in t} for s, v in takes.items() if s.startswith("down")}
    assert sorted(len(v) for v in cpr.values()) == [1, 1, 4]  # 4 participants: 2/1/1
    meta = builder.info.metadata
    assert meta["takes"] == {
        "downstream_test": 1,
        "downstream_train": 6,
        "downstream_val": 1,
        "train": 9,
        "val": 2,
    }
    assert meta["split_groups"] == "participant_or_take"  # some dummy takes have no id
    assert meta["participants"] == {
        "downstream_test": 1,
        "downstream_train": 3,
        "downstream_val": 1,
        "train": 2,
        "val": 1,
    }


def test_all_takes_of_a_participant_land_in_one_split(built):
    _, data = built
    split_of = {}  # participant -> splits holding any of their windows
    takes_of = {}
    for split, exs in data.items():
        for ex in exs:
            if ex["subject"].startswith("participant_"):
                split_of.setdefault(ex["subject"], set()).add(split)
                takes_of.setdefault(ex["subject"], set()).add(ex["recording"])
    assert all(len(s) == 1 for s in split_of.values()), split_of
    assert takes_of["participant_200"] == {"vl-cpr-0", "vl-cpr-1", "vl-cpr-2"}
    assert split_of["participant_200"] == {"downstream_train"}
    assert len(takes_of["participant_100"]) == 2 and len(takes_of["participant_300"]) == 2
    # A participant with pretraining takes never appears downstream (vl-cook-0 is unused).
    assert split_of["participant_102"] == {"train"}


def test_split_policy_names_the_grouping():
    def take(uid, participant):
        return egoexo_meta.Take(
            uid,
            uid,
            f"participant_{participant}" if participant is not None else uid,
            "",
            None,
            0,
            has_participant=participant is not None,
        )

    assert egoexo_meta.split_policy([take("a", 1), take("b", 1)]) == "participant"
    assert egoexo_meta.split_policy([take("a", None), take("b", None)]) == "take"
    assert egoexo_meta.split_policy([take("a", 1), take("b", None)]) == "participant_or_take"
    # Without participant ids the assignment is the take-wise one (each take its own group).
    takes = {f"t{i}": take(f"t{i}", None) for i in range(8)}
    by_take = egoexo_meta._assign_by_group(sorted(takes), takes, {"a": 0.5, "b": 0.5}, "s")
    from tfds_builders import splits

    assert by_take == splits.assign_groups({u: 0 for u in takes}, {"a": 0.5, "b": 0.5}, "s")


def test_windows_texts_labels_units(built):
    _, data = built
    exs = {ex["id"]: ex for v in data.values() for ex in v}
    cook0 = {k: ex["text"] for k, ex in exs.items() if k.startswith("tr-cook-0/")}
    assert cook0 == {
        "tr-cook-0/0": "picks up the cpr manual",  # 0.5 s and 1.0 s clamp to [0, 5]: first kept
        "tr-cook-0/500": "stirs the food in the pan",  # 3.0 s: [0.5, 5.5]
        "tr-cook-0/4500": "adds salt to the pan",  # 7.0 s: [4.5, 9.5]
    }
    assert exs["vl-cpr-0/100"]["text"] == "compresses the chest of the cpr manikin"  # 2.6 s
    for ex in exs.values():
        assert ex["imu"].shape == (250, 6) and ex["imu"].dtype == np.float32
        assert ex["start_s"] == pytest.approx(int(ex["id"].split("/")[1]) / 1000)
        assert np.linalg.norm(ex["imu"][:, :3], axis=1).mean() == pytest.approx(signal.G, abs=0.3)
        name = ex["label_name"]
        assert name == ("" if ex["label"] < 0 else egoexo_meta.TAKE_CLASSES[ex["label"]])
    assert exs["tr-music-0/500"]["label_name"] == "music"
    assert exs["tr-misc-0/500"]["label"] == -1
    assert exs["tr-cook-1/500"]["subject"] == "participant_101"
    assert exs["tr-music-0/500"]["subject"] == "tr-music-0"  # no participant: take uid


def test_window_values_are_the_resampled_take(built):
    _, data = built
    ex = next(e for v in data.values() for e in v if e["id"] == "vl-cpr-0/100")
    with np.load(os.path.join(DUMMY, "takes", "nus_cpr_00_1", "imu.npz")) as z:
        t, x = z["t"], z["imu"]
    grid = 0.1 + np.arange(250) / 50  # 50 Hz source: plain interpolation
    want = np.stack([np.interp(grid, t, x[:, c]) for c in range(6)], 1)
    np.testing.assert_allclose(ex["imu"], want, atol=1e-6)


def test_bad_input_counted(built):
    builder, _ = built
    ev = builder.info.metadata["build_stats"]["events"]
    assert ev["all"] == {
        "empty_descriptions": 1,
        "takes_in_both_official_splits_kept_for_pretraining": 1,
        "official_val_takes_unlabelled_unused": 1,
        "official_val_takes_of_pretraining_participants_unused": 1,
    }
    assert ev["train"] == {
        "skipped_no_imu": 2,  # tr-bike-0 (VRS only, no projectaria-tools): 2 descriptions
        "skipped_malformed_file": 2,  # tr-bad-0
        "skipped_unusable_imu": 2,  # tr-short-0: 3 s
        "skipped_description_outside": 1,  # tr-cook-0 at 12 s
        "descriptions_sharing_a_window": 1,  # tr-cook-0 at 1.0 s
        "rows_dropped": 1,  # tr-cook-0: a NaN sample
    }


@pytest.mark.parametrize(
    ("name", "label"),
    [
        ("sfu_covid_012_4", 0),
        ("utokyo_pcr_2001_30_2", 0),
        ("cmu_bike_01_2", 1),
        ("minnesota_rockclimbing_033_2", 2),
        ("uniandes_bouldering_003_10", 2),
        ("unc_basketball_03-16-23_01_1", 3),
        ("iiith_soccer_001_2", 3),
        ("nus_cpr_06_1", 4),
        ("georgiatech_cooking_01_1", 5),
        ("fair_Salad_1", 5),
        ("upenn_dance_1", 6),
        ("upenn_0711_Guitar_2", 7),
        ("indiana_Piano_1", 7),
        ("unc_unknowntask_01", -1),
    ],
)
def test_take_class_rules(name, label):
    assert egoexo_meta.take_class(name) == label


def test_metadata_prompts(built):
    builder, _ = built
    meta = builder.info.metadata
    assert meta["class_prompts"] == [list(p) for p in egoexo_meta.CLASS_PROMPTS]
    assert len(meta["class_prompts"]) == len(meta["label_names"]) == 8
    assert meta["text_from_labels"] is False  # atomic descriptions are written by annotators


def test_find_vrs_prefers_full_recording(tmp_path):
    for n in ("aria01_noimagestreams.vrs", "aria01.vrs"):
        (tmp_path / n).write_bytes(b"")
    assert aria_imu.find_vrs(str(tmp_path)).endswith("/aria01.vrs")
    assert aria_imu.find_vrs(str(tmp_path / "missing")) is None


def test_clip4clip_config_needs_stores(tmp_path):
    with pytest.raises(FileNotFoundError, match=r"store\.json"):
        testing_utils.build(ee.Builder, tmp_path / "data", DUMMY, config="clip4clip")


def test_dummy_data_is_reproducible(tmp_path):
    from tfds_builders.egoexo4d import dummy_data_generation

    testing_utils.assert_dummy_data_regenerates(dummy_data_generation, DUMMY, tmp_path)
