"""conv1's convolution with the GEMM input gradient, against XLA's autodiff in float64."""

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np
import pytest
from jax import lax

from primus_jax.models import conv
from primus_jax.models.encoder import PrimusEncoder


@pytest.fixture
def x64():
    jax.config.update("jax_enable_x64", True)
    yield
    jax.config.update("jax_enable_x64", False)


def _imu(rng, b, t):
    """Head-worn IMU-like windows: gravity split over the accelerometer axes, a still stretch,
    a saturated one, small gyro noise."""
    x = np.zeros((b, t, 6))
    g = rng.normal(size=(b, 3))
    x[:, :, :3] = 9.81 * (g / np.linalg.norm(g, axis=1, keepdims=True))[:, None]
    x[:, t // 3 :, :3] += rng.normal(scale=0.8, size=(b, t - t // 3, 3))
    x[:, :, 3:] = rng.normal(scale=0.05, size=(b, t, 3))
    x[:, -t // 5 :, 0] = 16.0  # clipped at the sensor's range
    return x


def _lax_conv(x, w, d):
    return lax.conv_general_dilated(
        x, w, (1,), "VALID", rhs_dilation=(d,), dimension_numbers=("NWC", "WIO", "NWC")
    )


@pytest.mark.parametrize("k, d", [(10, 2), (5, 2), (3, 1), (4, 3)])
def test_value_and_gradients_match_xla_float64(x64, k, d):
    rng = np.random.default_rng(k * 10 + d)
    x = jnp.asarray(_imu(rng, 3, 40))
    w = jnp.asarray(rng.uniform(-0.13, 0.13, size=(k, 6, 8)))
    ct = jnp.asarray(rng.normal(size=(3, 40 - d * (k - 1), 8)))
    ours = jax.vjp(lambda x, w: conv.valid_conv1d(x, w, d), x, w)
    ref = jax.vjp(lambda x, w: _lax_conv(x, w, d), x, w)
    np.testing.assert_allclose(ours[0], ref[0], rtol=1e-13, atol=1e-12)
    for got, want in zip(ours[1](ct), ref[1](ct), strict=True):
        np.testing.assert_allclose(got, want, rtol=1e-12, atol=1e-12)


def test_input_gradient_float32_batch_of_windows():
    # The training shapes (250 samples, kernel 10, dilation 2) in float32: the sums run in a
    # different order than XLA's, so agreement is to float32 rounding of the largest terms.
    rng = np.random.default_rng(0)
    x = jnp.asarray(_imu(rng, 8, 250), jnp.float32)
    w = jnp.asarray(rng.uniform(-0.13, 0.13, size=(10, 6, 32)), jnp.float32)
    ct = jnp.asarray(rng.normal(size=(8, 232, 32)), jnp.float32)
    got = jax.vjp(lambda x: conv.valid_conv1d(x, w, 2), x)[1](ct)[0]
    want = jax.vjp(lambda x: _lax_conv(x, w, 2), x)[1](ct)[0]
    np.testing.assert_allclose(got, want, rtol=1e-5, atol=1e-5 * float(jnp.abs(want).max()))


def test_flax_conv_uses_it_and_keeps_its_parameters(monkeypatch):
    x = jnp.asarray(_imu(np.random.default_rng(1), 2, 30), jnp.float32)
    kw = dict(features=4, kernel_size=(3,), kernel_dilation=(2,), padding="VALID", use_bias=False)
    ours, plain = nn.Conv(**kw, conv_general_dilated=conv.conv_general_dilated), nn.Conv(**kw)
    params = plain.init(jax.random.key(0), x)
    assert jax.tree.map(jnp.shape, ours.init(jax.random.key(0), x)) == jax.tree.map(
        jnp.shape, params
    )
    calls = []
    real = conv.valid_conv1d
    monkeypatch.setattr(conv, "valid_conv1d", lambda *a: calls.append(a[2]) or real(*a))
    np.testing.assert_allclose(ours.apply(params, x), plain.apply(params, x), rtol=1e-6)
    assert calls == [2]


@pytest.mark.parametrize(
    "kw",
    [
        dict(strides=(2,)),
        dict(padding="SAME"),
        dict(padding=((1, 2),)),
        dict(feature_group_count=2, padding="VALID"),
    ],
)
def test_other_convolutions_go_to_lax_unchanged(kw):
    x = jnp.asarray(_imu(np.random.default_rng(2), 2, 30), jnp.float32)
    base = dict(features=4, kernel_size=(3,), use_bias=False) | kw
    ours, plain = nn.Conv(**base, conv_general_dilated=conv.conv_general_dilated), nn.Conv(**base)
    params = plain.init(jax.random.key(0), x)
    np.testing.assert_array_equal(ours.apply(params, x), plain.apply(params, x))


def test_encoder_gradients_unchanged(monkeypatch):
    # The whole encoder against the same encoder built on flax's own convolution: every
    # parameter's gradient, norm_in's (which flow through conv1's input gradient) included.
    x = jnp.asarray(_imu(np.random.default_rng(3), 4, 250), jnp.float32)
    model = PrimusEncoder()
    params = model.init(jax.random.key(0), x)
    loss = lambda p: jnp.sum(jnp.sin(model.apply(p, x)["mmcl"]))
    got = jax.grad(loss)(params)
    monkeypatch.setattr(conv, "conv_general_dilated", lax.conv_general_dilated)
    want = jax.grad(loss)(params)
    for (path, g), w in zip(
        jax.tree_util.tree_leaves_with_path(got), jax.tree.leaves(want), strict=True
    ):
        scale = float(jnp.abs(w).max())
        np.testing.assert_allclose(g, w, rtol=2e-4, atol=2e-5 * scale, err_msg=str(path))
