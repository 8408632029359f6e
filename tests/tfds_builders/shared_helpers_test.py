"""Tests for the helpers shared by the builders: splits, narrations, CSV, event windows."""

import io
from collections import Counter

import numpy as np
import pytest

from primus_jax.data import signal
from tfds_builders import event_windows, narration, raw_io, splits


class TestSplits:
    def test_stable_hash_is_fixed(self):
        # A constant: must never change, or every split assignment would move.
        assert splits.stable_hash("take-1", "salt") == int.from_bytes(
            __import__("hashlib").sha256(b"salt:take-1").digest()[:8], "big"
        )

    def test_stratified_disjoint_and_deterministic(self):
        strata = {f"g{i}": i % 3 for i in range(30)}
        fr = {"train": 0.5, "val": 0.25, "test": 0.25}
        a = splits.assign_groups(strata, fr, salt="s")
        assert a == splits.assign_groups(dict(reversed(strata.items())), fr, salt="s")
        assert set(a) == set(strata)
        for stratum in range(3):
            got = Counter(s for g, s in a.items() if strata[g] == stratum)
            assert got == {"train": 5, "val": 3, "test": 2} or got == {
                "train": 5,
                "val": 2,
                "test": 3,
            }
        assert a != splits.assign_groups(strata, fr, salt="other")

    def test_small_strata_and_bad_fractions(self):
        a = splits.assign_groups({"x": 0, "y": 0, "z": 0}, {"a": 0.5, "b": 0.25, "c": 0.25}, "s")
        assert sorted(a.values()) == ["a", "b", "c"]
        with pytest.raises(ValueError, match="sum to 1"):
            splits.assign_groups({"x": 0}, {"a": 0.5}, "s")


@pytest.mark.parametrize(
    ("raw", "want"),
    [
        ("#C C opens the fridge", "opens the fridge"),
        ("#c c picks a knife.", "picks a knife"),
        ("C stirs the pan with the spatula.", "stirs the pan with the spatula"),
        ("C performs CPR on the manikin", "performs cpr on the manikin"),
        ("#O man X hands C a cup", "man x hands c a cup"),
        ("C picks #unsure from the table", "picks something from the table"),
        ("  Cuts the CARROT  ", "cuts the carrot"),
        ("#summary C cooks", "cooks"),
        ("", ""),
    ],
)
def test_clean_narration(raw, want):
    assert narration.clean_narration(raw) == want


def test_clean_narration_truncates_on_word():
    s = narration.clean_narration("C " + "word " * 60)
    assert len(s) <= narration.MAX_CHARS and s.endswith("word")


def test_is_camera_wearer():
    assert narration.is_camera_wearer("#C C opens")
    assert narration.is_camera_wearer(" #c c opens")
    assert not narration.is_camera_wearer("#O man opens")
    assert not narration.is_camera_wearer("C opens")


class TestReadCsv:
    def test_columns_by_name_case_insensitive(self):
        f = io.BytesIO(b"ID, Attr_Time ,attr_x\n1,1000,0.5\n2,1020,0.7\n")
        got = raw_io.read_csv_columns(f, ["attr_time", "attr_x"], name="f.csv")
        np.testing.assert_array_equal(got["attr_time"], [1000, 1020])
        np.testing.assert_array_equal(got["attr_x"], [0.5, 0.7])

    def test_aliases_and_bad_rows_become_nan(self):
        f = io.StringIO("t,x\n1,2\n3,\n4,oops\n5\n6,7\n")
        got = raw_io.read_csv_columns(f, ["time", "x"], name="f", aliases={"time": ["t"]})
        np.testing.assert_array_equal(got["time"], [1, 3, 4, 5, 6])
        np.testing.assert_array_equal(np.isnan(got["x"]), [False, True, True, True, False])

    def test_missing_column_and_empty(self):
        with pytest.raises(raw_io.MalformedFileError, match=r"f\.csv: no column 'y'"):
            raw_io.read_csv_columns(io.StringIO("x\n1\n"), ["y"], name="f.csv")
        with pytest.raises(raw_io.MalformedFileError, match="empty"):
            raw_io.read_csv_columns(io.StringIO(""), ["y"], name="f.csv")
        got = raw_io.read_csv_columns(io.StringIO("x,y\n"), ["y"], name="f.csv")
        assert got["y"].shape == (0,)

    def test_load_npz(self, tmp_path):
        np.savez(tmp_path / "a.npz", t=np.arange(3.0))
        with open(tmp_path / "a.npz", "rb") as f:
            assert raw_io.load_npz(f, ["t"], name="a")["t"].shape == (3,)
        with (
            open(tmp_path / "a.npz", "rb") as f,
            pytest.raises(raw_io.MalformedFileError, match="missing"),
        ):
            raw_io.load_npz(f, ["imu"], name="a")
        with pytest.raises(raw_io.MalformedFileError, match="not a readable npz"):
            raw_io.load_npz(io.BytesIO(b"garbage"), ["t"], name="b")


class TestEventWindows:
    def _stream(self, t_max=None):
        t = np.arange(0.013, 20.0, 0.01)  # 100 Hz, starting off-grid
        x = np.stack([t] * 3 + [np.zeros_like(t)] * 3, axis=1)
        keep = (t < 12.0) | (t > 13.0)  # a 1 s hole
        return event_windows.to_grid(t[keep], x[keep], max_gap_s=0.1, t_max=t_max)

    def test_grid_and_windows(self):
        s = self._stream()
        assert s.k0 == 1 and s.t_start == pytest.approx(0.02)  # first grid point with data
        out = list(event_windows.cut(s, [(5.0, "a"), (0.5, "b"), (12.4, "c"), (0.6, "d")]))
        assert [o[0] for o in out] == ["ok", "ok", "gap", "duplicate"]
        assert out[0][1] == pytest.approx(2.5) and out[1][1] == pytest.approx(0.02)
        np.testing.assert_allclose(out[0][2][:, 0], 2.5 + np.arange(250) / 50, atol=1e-3)
        assert out[0][2].shape == (250, 6) and out[3][3] == "d"

    def test_outside_and_t_max(self):
        s = self._stream(t_max=10.0)
        assert s.t_end == pytest.approx(10.0)
        out = list(event_windows.cut(s, [(15.0, "late"), (9.9, "edge")]))
        assert out[0][0] == "outside" and out[1][0] == "ok"
        assert out[1][1] == pytest.approx(5.0)  # clamped to end at t_max
        with pytest.raises(signal.CoverageError):
            self._stream(t_max=3.0)


def test_narrator_policy_is_shared_by_ego4d_and_egoexo4d(tmp_path):
    """``SegmentConfig.narrators``: "wearer" (default) drops Ego4D ``#O`` narrations and
    EgoExo4D ``subject == "O"`` descriptions alike; "all" keeps both."""
    import json
    import os

    from etils import epath

    import tfds_builders.ego4d as ego4d_pkg
    from tfds_builders.ego4d import ego4d_meta
    from tfds_builders.egoexo4d import egoexo_meta

    narr = epath.Path(ego4d_pkg.__file__).parent / "dummy_data/v2/annotations/narration.json"
    uids = set(json.loads(narr.read_text()))
    texts = {
        policy: {
            n.text for ns in ego4d_meta.load_narrations(narr, uids, policy).values() for n in ns
        }
        for policy in narration.NARRATOR_POLICIES
    }
    assert "man x talks" in texts["all"] - texts["wearer"]
    ann = {"annotations": {"t": [{"descriptions": [
        {"text": "C cuts it.", "timestamp": 1.0, "subject": "C"},
        {"text": "The man X waves.", "timestamp": 2.0, "subject": "O"},
    ]}]}}  # fmt: skip
    path = epath.Path(os.fspath(tmp_path / "a.json"))
    path.write_text(json.dumps(ann))
    notes = []
    kept = {p: egoexo_meta.load_descriptions(path, notes.append, p)["t"] for p in ("wearer", "all")}
    assert [d.text for d in kept["wearer"]] == ["cuts it"]
    assert [d.text for d in kept["all"]] == ["cuts it", "the man x waves"]
    assert notes == ["descriptions_of_others_dropped"]
    with pytest.raises(ValueError, match="narrators='O'"):
        narration.check_narrators("O")


def test_load_npz_names_a_damaged_zip(tmp_path):
    buf = io.BytesIO()
    np.savez(buf, x=np.arange(100.0))
    data = bytearray(buf.getvalue())
    data[200] ^= 0xFF  # inside the member: CRC-32 mismatch -> zipfile.BadZipFile
    with pytest.raises(raw_io.MalformedFileError, match=r"imu\.npz"):
        raw_io.load_npz(io.BytesIO(bytes(data)), ("x",), name="imu.npz")
