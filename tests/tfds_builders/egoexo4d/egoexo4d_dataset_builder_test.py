"""Builds egoexo4d from dummy_data and checks windows, labels, leakage-free splits, bad input.

The module build reads the dummy ``.vrs`` files with ``fake_vrs`` (projectaria_tools' API and
failure modes over a tiny format); ``test_real_provider_*`` use the real library when it is
installed.
"""

import os

import numpy as np
import pandas as pd
import pytest

import tfds_builders.egoexo4d as egoexo4d_pkg
from primus_jax.data import signal
from tfds_builders import segment_format, testing_utils
from tfds_builders.egoexo4d import aria_imu, egoexo_meta, fake_vrs, timesync
from tfds_builders.egoexo4d import egoexo4d_dataset_builder as ee

DUMMY = os.path.join(os.path.dirname(egoexo4d_pkg.__file__), "dummy_data")


@pytest.fixture(scope="module")
def built(tmp_path_factory):
    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(aria_imu, "provider_module", lambda: fake_vrs)
        builder = testing_utils.build(ee.Builder, tmp_path_factory.mktemp("ee"), DUMMY)
    return builder, {s: testing_utils.read_split(builder, s) for s in ee.SPLITS}


def _take_time(take_name: str, t_ns: np.ndarray) -> np.ndarray:
    """Seconds on the take timeline, computed as the docs and the gaze tutorial do it."""
    takes = {
        t["take_name"]: t
        for t in pd.read_json(os.path.join(DUMMY, "takes.json")).to_dict("records")
    }
    take = takes[take_name]
    sync = pd.read_csv(
        os.path.join(DUMMY, "captures", take["capture"]["capture_name"], "timesync.csv")
    )
    t0 = int(sync.iloc[take["timesync_start_idx"] + 1]["aria01_214-1_capture_timestamp_ns"])
    return (t_ns - t0) / 1e9


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
        "train": 14,  # tr-rej-1 (every annotation rejected) is left out
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


@pytest.mark.parametrize(
    ("key", "take_dir", "start"),
    [
        ("vl-cpr-0/100", "nus_cpr_00_1", 0.1),
        ("vl-soccer-1/4500", "iiith_soccer_001_3", 4.5),  # 2nd take of its capture: row 323
    ],
)
def test_window_values_are_the_resampled_take(built, key, take_dir, start):
    _, data = built
    ex = next(e for v in data.values() for e in v if e["id"] == key)
    with np.load(os.path.join(DUMMY, "takes", take_dir, "imu.npz")) as z:
        t, x = _take_time(take_dir, z["t_ns"]), z["imu"]
    assert t[0] == pytest.approx(-0.2)  # the IMU starts before the take's first frame
    grid = start + np.arange(250) / 50  # 50 Hz source: plain interpolation
    want = np.stack([np.interp(grid, t, x[:, c]) for c in range(6)], 1)
    np.testing.assert_allclose(ex["imu"], want, atol=1e-5)


def test_vrs_take_drops_invalid_records(built):
    """tr-bike-1: 1 kHz fake VRS whose 40 invalid-flag records hold 60 m/s² / 30 rad/s junk."""
    _, data = built
    ex = {e["id"]: e for v in data.values() for e in v}["tr-bike-1/280"]  # 3.0 s, end-clamped
    assert ex["text"] == "turns the wheel"
    p = fake_vrs.create_vrs_data_provider(
        os.path.join(DUMMY, "takes", "cmu_bike_02_3", "aria01_noimagestreams.vrs")
    )
    recs = [p.get_imu_data_by_index("1202-1", i) for i in range(p.get_num_data("1202-1"))]
    t = _take_time("cmu_bike_02_3", np.array([r.capture_timestamp_ns for r in recs]))
    x = np.array([list(r.accel_msec2) + list(r.gyro_radsec) for r in recs])
    ok = np.array([r.accel_valid and r.gyro_valid for r in recs])
    assert (~ok).sum() == 40 and np.abs(x[~ok, 0]).min() == 60
    grid = 0.28 + np.arange(250) / 50

    def interp(keep):
        return np.stack([np.interp(grid, t[keep], x[keep, c]) for c in range(6)], 1)

    # 1 kHz -> 50 Hz goes through the anti-aliasing filter: equal to the valid samples up to
    # the filtered-out noise; with the junk kept the window would be off by > 10 m/s².
    np.testing.assert_allclose(ex["imu"], interp(ok), atol=0.25)
    assert np.abs(interp(np.ones_like(ok)) - interp(ok)).max() > 10
    assert np.abs(ex["imu"][:, :3]).max() < 12


def test_first_non_rejected_annotation_is_used(built):
    _, data = built
    texts = {e["id"]: e["text"] for v in data.values() for e in v}
    assert {k: v for k, v in texts.items() if k.startswith("tr-rej-")} == {
        "tr-rej-0/3500": "opens the door"  # 6.0 s, from the second (accepted) annotation
    }
    assert not any("rejected" in v for v in texts.values())


def test_descriptions_of_others_dropped_by_default(built):
    _, data = built
    texts = {e["id"]: e["text"] for v in data.values() for e in v}
    assert "tr-cook-0/2500" not in texts  # "The man X hands C a knife." (subject "O")
    assert texts["tr-music-0/500"] == "strums the guitar"  # docs' "narration_subject" key
    assert egoexo_meta.description_subject({"text": "C cuts it"}) == "C"  # no subject field
    assert egoexo_meta.description_subject({"text": "The ball bounces"}) == "O"


def test_all_narrators_config_and_no_vrs_reader(tmp_path):
    """narrators="all" keeps the "O" description; without projectaria-tools (and no fake)
    the VRS-only takes are counted as no_imu."""
    cfg = segment_format.SegmentConfig(name="raw_all", narrators="all")
    builder = testing_utils.build(ee.Builder, tmp_path, DUMMY, config=cfg)
    exs = {e["id"]: e for s in ("train", "val") for e in testing_utils.read_split(builder, s)}
    assert exs["tr-cook-0/2500"]["text"] == "the man x hands c a knife"
    ev = builder.info.metadata["build_stats"]["events"]
    assert "descriptions_of_others_dropped" not in ev["all"]
    if aria_imu.provider_module() is None:
        assert ev["train"]["skipped_no_imu"] == 4  # tr-bike-0 (2), tr-bike-1, tr-bike-2
    with pytest.raises(ValueError, match="narrators='me'"):
        bad = segment_format.SegmentConfig(name="raw_me", narrators="me")
        testing_utils.build(ee.Builder, tmp_path / "bad", DUMMY, config=bad)


def test_bad_input_counted(built):
    builder, _ = built
    ev = builder.info.metadata["build_stats"]["events"]
    assert ev["all"] == {
        "empty_descriptions": 1,
        "descriptions_of_others_dropped": 1,  # tr-cook-0's "O" description
        "takes_first_annotation_rejected": 2,  # tr-rej-0, tr-rej-1
        "takes_all_annotations_rejected": 1,  # tr-rej-1
        "takes_in_both_official_splits_kept_for_pretraining": 1,
        "official_val_takes_unlabelled_unused": 1,
        "official_val_takes_of_pretraining_participants_unused": 1,
    }
    assert ev["train"] == {
        "skipped_vrs_unreadable": 2,  # tr-bike-0: aria01.vrs does not open, 2 descriptions
        "skipped_vrs_no_imu_stream": 1,  # tr-bike-2: only imu-left
        "skipped_no_timesync": 4,  # tr-nosync-0 (no timesync.csv), -1 (empty cell): 2 each
        "skipped_malformed_file": 2,  # tr-bad-0
        "skipped_unusable_imu": 2,  # tr-short-0: 3 s
        "skipped_description_outside": 1,  # tr-cook-0 at 12 s
        "descriptions_sharing_a_window": 1,  # tr-cook-0 at 1.0 s
        "rows_dropped": 1,  # tr-cook-0: a NaN sample
        "imu_samples_invalid_dropped": 43,  # tr-bike-1's 40 records, tr-cook-0's npz says 3
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


def test_find_vrs_prefers_the_noimagestreams_file(tmp_path):
    (tmp_path / "aria01.vrs").write_bytes(b"")
    assert aria_imu.find_vrs(str(tmp_path)).endswith("/aria01.vrs")
    (tmp_path / "aria01_noimagestreams.vrs").write_bytes(b"")
    assert aria_imu.find_vrs(str(tmp_path)).endswith("/aria01_noimagestreams.vrs")
    assert aria_imu.find_vrs(str(tmp_path / "missing")) is None
    assert aria_imu.device_of("/x/aria02_noimagestreams.vrs") == "aria02"
    assert aria_imu.device_of("/x/aria01.vrs") == "aria01"
    assert aria_imu.device_of("/x/recording.vrs") is None


def _providers():
    out = [fake_vrs]
    try:
        from projectaria_tools.core import data_provider

        out.append(data_provider)
    except ImportError:
        pass
    return out


@pytest.mark.parametrize("module", _providers(), ids=lambda m: m.__name__)
def test_real_provider_or_fake_unreadable_vrs_is_a_named_vrs_error(module):
    """The real projectaria_tools (when installed) and the fake both give ``None`` for a file
    that is not a VRS; read_vrs turns that into VrsError("vrs_unreadable") naming it."""
    path = os.path.join(DUMMY, "takes", "cmu_bike_01_2", "aria01.vrs")
    with pytest.raises(aria_imu.VrsError, match=r"cmu_bike_01_2/aria01\.vrs") as e:
        aria_imu.read_vrs(path, module)
    assert e.value.reason == "vrs_unreadable"
    missing = os.path.join(DUMMY, "takes", "nope.vrs")
    with pytest.raises(aria_imu.VrsError, match=r"nope\.vrs"):
        aria_imu.read_vrs(missing, module)


def test_fake_vrs_missing_stream_and_library_errors():
    left_only = os.path.join(DUMMY, "takes", "cmu_bike_03_1", "aria01_noimagestreams.vrs")
    p = fake_vrs.create_vrs_data_provider(left_only)
    assert p.get_stream_id_from_label("imu-right") == "1202-1"  # static Gen1 table
    assert not p.check_stream_is_active("1202-1")
    with pytest.raises(aria_imu.VrsError, match="imu-right") as e:
        aria_imu.read_vrs(left_only, fake_vrs)
    assert e.value.reason == "vrs_no_imu_stream"

    class Throws:  # a library error mid-read is a VrsError too, not a crash
        @staticmethod
        def create_vrs_data_provider(path):
            p = fake_vrs.create_vrs_data_provider(path)
            p.get_imu_data_by_index = lambda sid, i: (_ for _ in ()).throw(RuntimeError("boom"))
            return p

    good = os.path.join(DUMMY, "takes", "cmu_bike_02_3", "aria01_noimagestreams.vrs")
    with pytest.raises(aria_imu.VrsError, match="RuntimeError: boom") as e:
        aria_imu.read_vrs(good, Throws)
    assert e.value.reason == "vrs_unreadable"


def test_npz_cache_equals_the_vrs_read(tmp_path, monkeypatch, capsys):
    """``aria_imu`` writes the device-time cache; the builder's npz and VRS paths then share
    one time base (timesync), so the source does not move the windows."""
    root = testing_utils.copy_tree(DUMMY, tmp_path / "d")
    monkeypatch.setattr(aria_imu, "provider_module", lambda: fake_vrs)
    assert aria_imu.main([root, "cmu_bike_02_3", "cmu_bike_03_1", "cmu_bike_01_2"]) == 1
    err = capsys.readouterr().err
    assert "cmu_bike_03_1: vrs_no_imu_stream" in err and "cmu_bike_01_2: vrs_unreadable" in err
    vrs = os.path.join(root, "takes", "cmu_bike_02_3", "aria01_noimagestreams.vrs")
    t_ns, imu, invalid = aria_imu.read_vrs(vrs, fake_vrs)
    with np.load(os.path.join(root, "takes", "cmu_bike_02_3", "imu.npz")) as z:
        np.testing.assert_array_equal(z["t_ns"], t_ns)
        np.testing.assert_array_equal(z["imu"], imu)
        assert (str(z["device"]), int(z["invalid_samples"]), invalid) == ("aria01", 40, 40)
    assert not os.path.exists(os.path.join(root, "takes", "cmu_bike_03_1", "imu.npz"))


def test_timesync_row_and_errors(tmp_path):
    path = tmp_path / "timesync.csv"
    path.write_text("cam01_pts,aria01_214-1_capture_timestamp_ns\n0,100\n1,200\n2,\n3,abc\n")
    cells = timesync.read_column(str(path), timesync.column("aria01"))
    assert timesync.take_start_ns(cells, 0, str(path)) == 200  # row start_idx + 1
    for idx, what in ((1, "no timestamp"), (2, "no timestamp"), (5, "no row 6")):
        with pytest.raises(timesync.TimesyncError, match=rf"timesync\.csv: .*{what}"):
            timesync.take_start_ns(cells, idx, str(path))
    rows = "\n".join(f"{i},{1000 + 33 * i}" for i in range(8))
    path.write_text(f"cam01_pts,aria01_214-1_capture_timestamp_ns\n{rows}\n")
    cells = timesync.read_column(str(path), timesync.column("aria01"))
    assert timesync.take_start_ns(cells, 1, str(path)) == 1066
    cells[2] = "1000"  # a damaged digit: not one frame before the next row
    with pytest.raises(timesync.TimesyncError, match="not about one frame before row 3"):
        timesync.take_start_ns(cells, 1, str(path))
    path.write_text(f"cam01_pts,aria01_214-1_capture_timestamp_ns\n0,1\n1,2,3\n{rows}\n")
    cells = timesync.read_column(str(path), timesync.column("aria01"))
    with pytest.raises(timesync.TimesyncError, match="row 1 has the wrong number of fields"):
        timesync.take_start_ns(cells, 3, str(path))
    with pytest.raises(timesync.TimesyncError, match=r"timesync\.csv: no column"):
        timesync.read_column(str(path), timesync.column("aria02"))
    assert timesync.capture_name("cmu_bike01_5", None) == "cmu_bike01"  # the tutorial's rule
    assert timesync.capture_name("cmu_bike01_5", "cmu_bike01x") == "cmu_bike01x"


def test_clip4clip_config_needs_stores(tmp_path):
    with pytest.raises(FileNotFoundError, match=r"store\.json"):
        testing_utils.build(ee.Builder, tmp_path / "data", DUMMY, config="clip4clip")


def test_dummy_data_is_reproducible(tmp_path):
    from tfds_builders.egoexo4d import dummy_data_generation

    testing_utils.assert_dummy_data_regenerates(dummy_data_generation, DUMMY, tmp_path)


def test_old_npz_layout_is_a_named_malformed_file(tmp_path, caplog):
    root = testing_utils.copy_tree(DUMMY, tmp_path / "d")
    npz = os.path.join(root, "takes", "georgiatech_cooking_02_1", "imu.npz")
    np.savez(npz, t=np.arange(500) / 50, imu=np.zeros((500, 6), np.float32))  # 1.1.0 layout
    builder = testing_utils.build(ee.Builder, tmp_path / "o", root)
    assert builder.info.metadata["build_stats"]["events"]["train"]["skipped_malformed_file"] == 4
    assert "georgiatech_cooking_02_1/imu.npz: missing arrays ['t_ns']" in caplog.text
    assert "re-run python -m tfds_builders.egoexo4d.aria_imu" in caplog.text
