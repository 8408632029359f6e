"""Inference API and CLI: batching/sharding parity, layouts, streams, validation, units."""

import re
import warnings

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from absl import flags
from support.checkpoints import write_checkpoint

import primus_jax
from primus_jax import inference
from primus_jax.data import conditioning, signal
from primus_jax.models.encoder import PrimusEncoder
from primus_jax.tools import embed_imu

G = signal.G


@pytest.fixture(scope="module")
def workdir(tmp_path_factory):
    d = tmp_path_factory.mktemp("run")
    params = write_checkpoint(d)
    return d, params


@pytest.fixture(scope="module")
def encoder(workdir):
    # 8 fake CPU devices (conftest): each batch of 16 is sharded 2 rows per device.
    return primus_jax.load_encoder(workdir[0], batch_size=16)


def realistic_windows(n, seed=0):
    """Gravity-including acc (m/s²) and small rotations (rad/s), like real data."""
    rng = np.random.default_rng(seed)
    t = np.arange(250) / 50.0
    x = 0.5 * rng.normal(size=(n, 250, 6))
    x += np.sin(2 * np.pi * rng.uniform(0.5, 3, size=(n, 1, 6)) * t[:, None])
    x[..., 2] += G
    return x.astype(np.float32)


def reference(params, x, mm_dim=384):
    out = PrimusEncoder(mm_dim=mm_dim).apply({"params": params}, jnp.asarray(x))
    return {k: np.asarray(v) for k, v in out.items()}


def test_embed_matches_model_across_padded_batches(encoder, workdir):
    _, params = workdir
    x = realistic_windows(37)  # 3 batches of 16, the last one padded with 11 zero rows
    out = encoder.embed(x)
    assert encoder.batch_size == 16 and len(encoder.devices) == jax.local_device_count()
    assert encoder.dims == {"emb": 512, "ssl": 512, "mmcl": 384} and encoder.step == 0
    want = reference(params, x)
    assert set(out) == {"emb", "ssl", "mmcl"}
    for k in want:
        assert out[k].shape == want[k].shape and out[k].dtype == np.float32
        np.testing.assert_allclose(out[k], want[k], atol=1e-5, rtol=0, err_msg=k)
    # A single window gives the same row: padding never leaks into real rows.
    one = encoder(x[5:6])
    np.testing.assert_allclose(one["mmcl"], out["mmcl"][5:6], atol=1e-6)
    empty = encoder.embed(x[:0])
    assert empty["mmcl"].shape == (0, 384)


def test_single_device_agrees_with_sharded(workdir, encoder):
    d, _ = workdir
    x = realistic_windows(5, seed=1)
    single = inference.load_encoder(d, batch_size=4, devices=jax.local_devices()[:1])
    assert single.batch_size == 4
    a, b = single.embed(x), encoder.embed(x)
    for k in a:
        np.testing.assert_allclose(a[k], b[k], atol=1e-5, rtol=0)


def test_channels_first_only_when_asked(encoder):
    x = realistic_windows(3)
    torch_layout = np.ascontiguousarray(x.transpose(0, 2, 1))
    np.testing.assert_allclose(
        encoder.embed(torch_layout, layout="channels_first")["mmcl"],
        encoder.embed(x)["mmcl"],
        atol=1e-6,
    )
    with pytest.raises(ValueError, match='layout="channels_first"'):
        encoder.embed(torch_layout)
    with pytest.raises(ValueError, match="layout must be"):
        encoder.embed(x, layout="NCW")


@pytest.mark.parametrize(
    ("x", "match"),
    [
        (np.zeros((250, 6)), r"for one window use x\[None\]"),
        (np.zeros((2, 250, 3)), "expected 6 channels"),
        (np.zeros((2, 200, 6)), "250 samples"),
        (np.zeros((2, 250, 6, 1)), r"got shape \(2, 250, 6, 1\)"),
        (np.array([[["a"] * 6] * 250]), "real numeric array"),
    ],
)
def test_window_validation_errors(encoder, x, match):
    with pytest.raises((ValueError, TypeError), match=match):
        encoder.embed(x)


def test_nan_is_rejected_with_its_position(encoder):
    x = realistic_windows(2)
    x[1, 17, 4] = np.nan
    with pytest.raises(ValueError, match=r"1 NaN/inf values \(first at index \(1, 17, 4\)\)"):
        encoder.embed(x)


def test_unit_check_warns_by_default(encoder):
    x = realistic_windows(2)
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # plausible SI data: no warning at all
        encoder.embed(x)
    in_g = x.copy()
    in_g[..., :3] /= G
    with pytest.warns(conditioning.UnitWarning, match="looks like g"):
        encoder.embed(in_g)
    with pytest.raises(ValueError, match="implausible units"):
        encoder.embed(in_g, check_units="error")
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        encoder.embed(in_g, check_units="off")
    deg = x.copy()
    deg[..., 3:] *= 180 / np.pi * 10  # fast rotations in deg/s
    assert "deg/s" in " ".join(_problems(deg.reshape(-1, 6)))
    swapped = x[..., [3, 4, 5, 0, 1, 2]].reshape(-1, 6)
    assert "swapped" in " ".join(_problems(swapped))


def _problems(x):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return conditioning.check_unit_plausibility(x, "warn")


def smooth_stream(rate_hz, seconds, t0=0.0):
    """Band-limited (< 3 Hz) SI signal sampled at rate_hz; acc with gravity."""
    t = t0 + np.arange(round(seconds * rate_hz)) / rate_hz
    f = np.array([0.7, 1.3, 2.1, 0.9, 1.7, 2.9])
    x = np.sin(2 * np.pi * f * t[:, None] + np.arange(6))
    x[:, :3] *= 2.0
    x[:, 2] += G
    return t, x


def test_stream_at_50hz_si_is_cut_exactly(encoder):
    _, x = smooth_stream(50, 12.0)  # 600 samples -> windows at 0, 2.5, 5 s (+7.5 s ends at 12.5)
    out = encoder.embed_stream(x, rate_hz=50)
    np.testing.assert_allclose(out["start_s"], [0.0, 2.5, 5.0])
    wins = np.stack([x[s : s + 250] for s in (0, 125, 250)]).astype(np.float32)
    want = encoder.embed(wins)
    for k in ("emb", "ssl", "mmcl"):
        np.testing.assert_allclose(out[k], want[k], atol=1e-6)


def test_stream_units_order_and_rate_are_converted():
    # 100 Hz, g and deg/s, gyro columns first: after conversion, resampling and cutting the
    # windows equal the same signal sampled at 50 Hz in SI units (up to the anti-alias
    # filter's passband ripple and edge effects, ~0.3% for this < 3 Hz signal).
    _, si50 = smooth_stream(50, 15.0)
    _, si100 = smooth_stream(100, 15.0)
    raw = np.concatenate([np.rad2deg(si100[:, 3:]), si100[:, :3] / G], axis=1)
    start, wins = conditioning.stream_windows(
        raw, 100, acc_unit="g", gyro_unit="deg/s", channel_order="gx,gy,gz,ax,ay,az", hop_s=5.0
    )
    np.testing.assert_allclose(start, [0.0, 5.0, 10.0])  # 1500 samples up to 14.99 s
    want = np.stack([si50[0:250], si50[250:500], si50[500:750]])
    np.testing.assert_allclose(wins[:, 20:-20], want[:, 20:-20], atol=5e-3, rtol=1e-3)
    assert wins.dtype == np.float32 and wins.shape == (3, 250, 6)


def test_stream_with_timestamps_skips_gaps(encoder):
    t, x = smooth_stream(100, 20.0, t0=1000.0)
    keep = (t < 1008.0) | (t > 1008.5)  # a 0.5 s hole
    out = encoder.embed_stream(x[keep], timestamps=t[keep], hop_s=2.5)
    # Windows covering [1008, 1008.5] are skipped; times stay on the timestamps' clock.
    np.testing.assert_allclose(out["start_s"], [1000.0, 1002.5, 1010.0, 1012.5, 1015.0])
    assert out["mmcl"].shape == (5, 384)
    with pytest.warns(UserWarning, match="median rate"):
        conditioning.stream_windows(x, 50, timestamps=t)


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        (dict(x=np.zeros((6, 1000)), rate_hz=50), r"channels-first: pass x\.T"),
        (dict(x=np.zeros((100, 6)), rate_hz=50), "at least one 5 s window"),
        (dict(x=np.zeros((1000, 6)), rate_hz=50, hop_s=0.01), "hop_s=0.01"),
        (dict(x=np.zeros((1000, 6)), rate_hz=None), "rate_hz must be a positive number"),
        (dict(x=np.zeros((1000, 6)), rate_hz=50, channel_order="ax,ay,az,gx,gy"), "permutation"),
        (dict(x=np.zeros((1000, 6)), rate_hz=50, acc_unit="ft/s2"), "unknown units"),
    ],
)
def test_stream_validation_errors(kwargs, match):
    kwargs.setdefault("check_units", "off")
    with pytest.raises(ValueError, match=match):
        conditioning.stream_windows(**kwargs)


def test_stream_nan_and_unit_warning():
    _, x = smooth_stream(50, 10.0)
    bad = x.copy()
    bad[40, 1] = np.inf
    with pytest.raises(ValueError, match="timestamps="):
        conditioning.stream_windows(bad, 50)
    with pytest.warns(conditioning.UnitWarning, match="acc_unit='m/s2'"):
        conditioning.stream_windows(x / np.array([G, G, G, 1, 1, 1]), 50)  # g passed as m/s2


def _embed_imu(argv):
    """``python -m primus_jax.tools.embed_imu ARGV`` in-process (own flag registry)."""
    fv = flags.FlagValues()
    embed_imu.define_flags(fv)
    return embed_imu.main(fv(["embed_imu", *argv]), fv)


def test_cli_windows_and_stream(tmp_path, workdir, capsys):
    d, params = workdir
    x = realistic_windows(5)
    np.savez(tmp_path / "w.npz", X=x)
    assert _embed_imu(
        ["--checkpoint", str(d), "--input", str(tmp_path / "w.npz"), "--output",
         str(tmp_path / "o.out"), "--batch_size", "8"]
    ) == 0  # fmt: skip
    with np.load(tmp_path / "o.out") as out:  # the exact path, no ".npz" appended
        assert sorted(out.files) == ["emb", "mmcl", "ssl"]
        np.testing.assert_allclose(out["mmcl"], reference(params, x)["mmcl"], atol=1e-5)

    _, s = smooth_stream(100, 10.0)
    raw = np.concatenate([s[:, :3] / G, s[:, 3:]], axis=1)
    np.savez(tmp_path / "s.npz", X=raw)
    args = ["--checkpoint", str(d), "--input", str(tmp_path / "s.npz"),
            "--output", str(tmp_path / "so.npz"), "--rate_hz", "100", "--acc_unit", "g",
            "--batch_size", "8"]  # fmt: skip
    assert _embed_imu(args) == 0
    with np.load(tmp_path / "so.npz") as out:
        np.testing.assert_allclose(out["start_s"], [0.0, 2.5, 5.0])  # 9.99 s of samples
        assert out["mmcl"].shape == (3, 384)
    assert "embedded 3 windows" in capsys.readouterr().out


@pytest.mark.parametrize(
    ("arrays", "extra", "match"),
    [
        (dict(Y=np.zeros((2, 250, 6))), [], "has no key 'X' \\(keys: Y\\)"),
        (dict(X=np.zeros((500, 6))), [], r"key 'X' has shape \(500, 6\).*--rate_hz"),
        (dict(X=np.zeros((2, 250, 6))), ["--rate_hz", "50"], r"expects one recording .*\(T, 6\)"),
        (dict(X=np.zeros((500, 6))), ["--stream"], "needs --rate_hz or a key 't'"),
        (dict(X=np.zeros((2, 6, 250))), [], "key 'X': .*layout=\"channels_first\""),
    ],
)
def test_cli_input_errors_name_the_key(tmp_path, workdir, capsys, arrays, extra, match):
    np.savez(tmp_path / "in.npz", **arrays)
    args = ["--checkpoint", str(workdir[0]), "--input", str(tmp_path / "in.npz"),
            "--output", str(tmp_path / "o.npz"), *extra]  # fmt: skip
    assert _embed_imu(args) == 2
    assert re.search(match, capsys.readouterr().err)
    assert not (tmp_path / "o.npz").exists()
