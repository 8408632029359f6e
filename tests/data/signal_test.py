"""Tests for primus_jax.data.signal against hand-computed values and plain numpy."""

import math

import numpy as np
import pytest

from primus_jax.data import signal


class TestCleanTimestamps:
    def test_drops_nonfinite_sorts_and_dedups(self):
        t = np.array([0.0, 0.2, 0.1, np.nan, 0.3, 0.3, 0.4])
        x = np.array([0.0, 2.0, 1.0, 9.0, 3.0, 99.0, np.inf])
        t2, x2, rep = signal.clean_timestamps(t, x)
        np.testing.assert_array_equal(t2, [0.0, 0.1, 0.2, 0.3])
        np.testing.assert_array_equal(x2[:, 0], [0.0, 1.0, 2.0, 3.0])  # first of the 0.3 pair
        assert rep == signal.CleanReport(n_in=7, n_nonfinite=2, n_duplicates=1, reordered=True)
        assert rep.n_out == 4

    def test_clean_input_unchanged(self):
        t = np.arange(5) * 0.02
        x = np.arange(10.0).reshape(5, 2)
        t2, x2, rep = signal.clean_timestamps(t, x)
        np.testing.assert_array_equal(t2, t)
        np.testing.assert_array_equal(x2, x)
        assert rep == signal.CleanReport(5, 0, 0, False)

    def test_unrecoverable_raises(self):
        with pytest.raises(ValueError, match="only 1 usable samples of 3"):
            signal.clean_timestamps([0.0, np.nan, 0.0], [1.0, 2.0, 3.0])
        with pytest.raises(ValueError, match="timestamps but"):
            signal.clean_timestamps([0.0, 1.0], np.zeros((3, 2)))


class TestResample:
    def test_linear_ramp_exact_and_grid(self):
        t = np.array([0.0, 0.013, 0.031, 0.05, 0.07, 0.101])  # irregular, ~50 Hz
        x = np.stack([3 * t + 1, -t], axis=1)
        r = signal.resample(t, x, 50.0, antialias=False)
        np.testing.assert_allclose(r.t, [0.0, 0.02, 0.04, 0.06, 0.08, 0.10])
        np.testing.assert_allclose(r.x, np.stack([3 * r.t + 1, -r.t], axis=1), atol=1e-12)
        assert r.valid.all()

    def test_matches_np_interp_for_jittery_same_rate(self):
        rng = np.random.default_rng(0)
        t = np.cumsum(rng.uniform(0.015, 0.025, size=400))
        x = rng.normal(size=(400, 3))
        r = signal.resample(t, x, 50.0, t0=t[0] + 0.1, t1=t[-1] - 0.1)
        assert r.t.shape[0] == math.floor((t[-1] - t[0] - 0.2) * 50 + 1e-6) + 1
        want = np.stack([np.interp(r.t, t, x[:, c]) for c in range(3)], axis=1)
        np.testing.assert_allclose(r.x, want)  # median rate ~50 Hz: no filtering

    def test_antialias_removes_alias_and_keeps_band(self):
        t = np.arange(0, 20, 1e-3)  # 1 kHz
        inband = np.sin(2 * np.pi * 5 * t)
        alias = 0.5 * np.sin(2 * np.pi * 40 * t)  # folds onto 10 Hz at 50 Hz
        x = np.stack([9.81 + inband + alias, np.full_like(t, 9.81)], axis=1)
        r = signal.resample(t, x, 50.0, t0=2.0, t1=18.0)
        want = 9.81 + np.sin(2 * np.pi * 5 * r.t)
        assert np.max(np.abs(r.x[:, 0] - want)) < 0.02
        np.testing.assert_allclose(r.x[:, 1], 9.81, rtol=1e-9)  # unit DC gain
        naive = signal.resample(t, x, 50.0, t0=2.0, t1=18.0, antialias=False)
        assert np.max(np.abs(naive.x[:, 0] - want)) > 0.4

    def test_lowpass_taps(self):
        taps = signal.lowpass_taps(0.1, 40)
        assert taps.shape == (81,)
        np.testing.assert_allclose(taps.sum(), 1.0)
        np.testing.assert_allclose(taps, taps[::-1])
        h = np.abs(np.fft.rfft(taps, 4096))
        f = np.fft.rfftfreq(4096)
        assert np.all(np.abs(h[f < 0.06] - 1) < 0.01)
        assert np.all(h[f > 0.15] < 0.01)

    def test_coverage_error(self):
        t = np.linspace(1.0, 2.0, 51)
        with pytest.raises(signal.CoverageError, match="data cover"):
            signal.resample(t, t, 50.0, t0=0.5)
        with pytest.raises(signal.CoverageError):
            signal.resample(t, t, 50.0, t0=1.0, t1=2.5)

    def test_gap_marks_invalid(self):
        t = np.concatenate([np.arange(0, 1, 0.02), np.arange(1.5, 2.5, 0.02)])
        r = signal.resample(t, np.ones_like(t), 50.0, max_gap_s=0.1)
        bad = r.t[~r.valid]
        assert bad.min() > 0.98 - 1e-9 and bad.max() < 1.5
        assert np.all(r.valid[(r.t < 0.97) | (r.t >= 1.5 - 1e-9)])

    def test_gap_marks_invalid_through_filter(self):
        t = np.concatenate([np.arange(0, 5, 1e-3), np.arange(6, 11, 1e-3)])
        r = signal.resample(t, np.ones_like(t), 50.0, max_gap_s=0.1)
        assert not r.valid[(r.t > 5.0) & (r.t < 6.0)].any()
        assert r.valid[(r.t < 4.5) | (r.t > 6.5)].all()


def test_align_streams_overlap_and_order():
    ta = np.arange(0.0, 10.0, 0.019)
    tg = np.arange(1.003, 12.0, 0.021)
    acc = np.stack([ta, 2 * ta, 3 * ta], axis=1)
    gyro = np.stack([-tg, tg + 1, np.zeros_like(tg)], axis=1)
    r = signal.align_streams(ta, acc, tg, gyro, 50.0, antialias=False)
    assert r.x.shape == (r.t.shape[0], 6)
    assert r.t[0] == pytest.approx(1.003) and r.t[-1] <= ta[-1]
    want = np.stack([r.t, 2 * r.t, 3 * r.t, -r.t, r.t + 1, 0 * r.t], axis=1)
    np.testing.assert_allclose(r.x, want, atol=1e-9)
    with pytest.raises(signal.CoverageError, match="overlap"):
        signal.align_streams(ta, acc, tg + 20, gyro, 50.0)


class TestWindows:
    def test_window_starts(self):
        np.testing.assert_array_equal(signal.window_starts(600, 50.0, 5.0, 2.5), [0, 125, 250])
        assert signal.window_starts(249, 50.0).size == 0
        with pytest.raises(ValueError, match="whole number"):
            signal.window_starts(600, 50.0, 5.0, 0.011)

    def test_windows_content_and_coverage(self):
        x = np.arange(600, dtype=float)[:, None] * np.array([[1.0, -1.0]])
        starts, w = signal.windows(x, 50.0)
        assert w.shape == (3, 250, 2)
        np.testing.assert_array_equal(w[1, :, 0], np.arange(125, 375))
        valid = np.ones(600, bool)
        valid[300] = False
        starts, w = signal.windows(x, 50.0, valid=valid)
        np.testing.assert_array_equal(starts, [0])
        starts, w = signal.windows(x, 50.0, valid=valid, min_coverage=0.99)
        np.testing.assert_array_equal(starts, [0, 125, 250])
        x2 = x.copy()
        x2[300] = np.nan
        starts, w = signal.windows(x2, 50.0, min_coverage=0.99)
        np.testing.assert_allclose(w[1, 175], [300.0, -300.0])  # filled by interpolation


class TestWindowAround:
    @pytest.mark.parametrize(
        ("t", "want"),
        [
            (10.0, (7.5, 12.5)),  # centred
            (1.0, (0.0, 5.0)),  # clamped at the start
            (4.0, (1.5, 6.5)),  # the reference would give [0, 5]: event near the edge
            (29.0, (25.0, 30.0)),  # clamped at the end
        ],
    )
    def test_clamped_rule(self, t, want):
        assert signal.window_around(t, 30.0) == pytest.approx(want)

    def test_reference_parity_in_the_middle(self):
        for t in np.arange(5.01, 24.99, 0.37):
            ref = signal.window_around(t, 30.0, reference=True)
            mine = signal.window_around(t, 30.0, snap_s=1.0)
            assert ref == (math.floor(t - 2.5), math.floor(t - 2.5) + 5)
            assert mine == pytest.approx(ref)

    def test_reference_defects_reproduced(self):
        assert signal.window_around(4.9, 30.0, reference=True) == (0.0, 5.0)
        assert signal.window_around(1.0, 3.0, reference=True) == (0.0, 5.0)  # past the end
        assert signal.window_around(6.0, 3.5, reference=True) == (-1.0, 3.0)  # negative start
        assert signal.window_around(7.9, 30.0, reference=True) == (5.0, 10.0)  # off-centre

    def test_none_and_snapping(self):
        assert signal.window_around(1.0, 3.0) is None  # recording shorter than a window
        assert signal.window_around(31.0, 30.0) is None  # event after the end
        assert signal.window_around(2.0, 30.0, t_min=3.0) is None  # event before the data
        s, e = signal.window_around(10.013, 30.0, snap_s=0.02)
        assert s == pytest.approx(7.5) and e == pytest.approx(12.5)
        s, e = signal.window_around(3.5, 30.0, t_min=0.51, snap_s=0.02)
        assert s == pytest.approx(1.0) and e == pytest.approx(6.0)
        s, _ = signal.window_around(1.0, 30.0, t_min=0.51, snap_s=0.02)
        assert s == pytest.approx(0.52)  # floor would leave the data: rounded up instead


class TestUnits:
    def test_constants_and_conversions(self):
        assert signal.G == 9.80665
        np.testing.assert_allclose(signal.g_to_ms2([1.0, -0.5]), [9.80665, -4.903325])
        np.testing.assert_allclose(signal.deg_to_rad([180.0, 90.0]), [math.pi, math.pi / 2])

    def test_to_si(self):
        x = np.array([[1.0, 0.0, -1.0, 180.0, 0.0, -90.0]])
        got = signal.to_si(x, "g", "deg/s")
        np.testing.assert_allclose(got, [[9.80665, 0, -9.80665, math.pi, 0, -math.pi / 2]])
        np.testing.assert_allclose(signal.to_si(x, "mg", "rad/s")[0, 0], 9.80665e-3)
        assert x[0, 0] == 1.0  # input untouched
        with pytest.raises(ValueError, match="unknown units"):
            signal.to_si(x, "ft/s2")

    def test_guess_acc_unit(self):
        at_rest_g = np.tile([0.0, 0.0, 1.0], (10, 1))
        assert signal.guess_acc_unit(at_rest_g) == "g"
        assert signal.guess_acc_unit(at_rest_g * signal.G) == "m/s2"
        assert signal.guess_acc_unit(at_rest_g * 0.01) is None

    def test_reorder_channels(self):
        x = np.arange(12.0).reshape(2, 6)  # columns gx,gy,gz,ax,ay,az
        got = signal.reorder_channels(x, "gx,gy,gz,ax,ay,az")
        np.testing.assert_array_equal(got[0], [3, 4, 5, 0, 1, 2])
        with pytest.raises(ValueError, match="permutation"):
            signal.reorder_channels(x, "ax,ay,az,gx,gy,gx")


def test_clean_timestamps_all_rows_nonfinite_is_a_value_error():
    # e.g. an Ego4D CSV whose canonical_timestamp_ms are all NULL: a clear ValueError, not an
    # IndexError from the empty duplicate mask.
    t = np.full(5, np.nan)
    with pytest.raises(
        ValueError, match=r"only 0 usable samples of 5 after cleaning \(5 non-finite"
    ):
        signal.clean_timestamps(t, np.ones((5, 3)))
