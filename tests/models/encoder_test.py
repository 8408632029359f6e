"""Encoder: layer shapes, parameter count, PyTorch binning, GroupNorm accuracy on realistic
IMU windows (against float64 and PyTorch), and the custom-VJP GRU."""

import copy

import jax
import jax.numpy as jnp
import ml_collections
import numpy as np
import pytest
from support import realistic_imu as imu

from primus_jax import sharding
from primus_jax.models import gru as gru_lib
from primus_jax.models.encoder import (
    GroupNorm,
    PrimusEncoder,
    adaptive_avg_pool_matrix,
    count_params,
)

B, T, C = 3, 250, 6


@pytest.fixture(scope="module")
def params():
    return PrimusEncoder().init(jax.random.key(0), jnp.zeros((1, T, C)))


def test_layer_shapes(params):
    out, inter = PrimusEncoder().apply(params, jnp.ones((B, T, C)), return_intermediates=True)
    expected = {
        "norm_in": (B, 250, 6),
        "conv1": (B, 232, 32),
        "pool1": (B, 77, 32),
        "conv2": (B, 69, 32),
        "pool2": (B, 23, 32),
        "conv3": (B, 15, 32),
        "pool3": (B, 32, 32),  # adaptive average pool upsamples 15 -> 32 at 50 Hz
        "norm_out": (B, 32, 32),
    }
    assert {k: v.shape for k, v in inter.items()} == expected
    assert {k: v.shape for k, v in out.items()} == {
        "emb": (B, 512),
        "ssl": (B, 512),
        "mmcl": (B, 512),
    }
    assert all(v.dtype == jnp.float32 for v in out.values())


def test_parameter_count_matches_reference(params):
    # docs/differences.md: 1,376,204 = backbone 850,892 + two heads 525,312. We keep
    # PyTorch's two GRU bias vectors, so the count is exact (not Flax GRUCell's 1,375,180).
    p = params["params"]
    assert count_params(p) == 1_376_204
    heads = count_params(p["ssl_head"]) + count_params(p["mmcl_head"])
    assert heads == 525_312
    assert count_params(p) - heads == 850_892
    assert count_params(p["gru"]) == 838_656


def test_mm_dim_adapts_to_embedding_width():
    p = PrimusEncoder(mm_dim=384).init(jax.random.key(0), jnp.zeros((1, T, C)))
    out = PrimusEncoder(mm_dim=384).apply(p, jnp.ones((2, T, C)))
    assert out["mmcl"].shape == (2, 384) and out["ssl"].shape == (2, 512)


def test_adaptive_pool_matches_pytorch_bins():
    # torch.nn.AdaptiveAvgPool1d bins: [floor(i*L/n), ceil((i+1)*L/n)), written out by hand
    # for 15 -> 32 (upsampling) and 10 -> 4 (downsampling).
    m = adaptive_avg_pool_matrix(15, 32)
    x = np.arange(15, dtype=np.float64) ** 2
    got = x @ m
    want = []
    for i in range(32):
        s, e = (i * 15) // 32, int(np.ceil((i + 1) * 15 / 32))
        want.append(x[s:e].mean())
    np.testing.assert_allclose(got, want, rtol=1e-6)
    # 10 -> 4: bins [0,3), [2,5), [5,8), [7,10)
    y = np.arange(10, dtype=np.float64)
    np.testing.assert_allclose(y @ adaptive_avg_pool_matrix(10, 4), [1.0, 3.0, 6.0, 8.0], rtol=1e-6)


def test_groupnorm_is_per_sample_per_group(params):
    # The input GroupNorm(2) normalises acc and gyro separately per sample: scaling the gyro
    # channels of one sample must not change the normalised acc channels.
    x = np.random.default_rng(0).normal(size=(2, T, C)).astype(np.float32)
    x2 = x.copy()
    x2[0, :, 3:] *= 10.0
    _, i1 = PrimusEncoder().apply(params, jnp.asarray(x), return_intermediates=True)
    _, i2 = PrimusEncoder().apply(params, jnp.asarray(x2), return_intermediates=True)
    np.testing.assert_allclose(i1["norm_in"][0, :, :3], i2["norm_in"][0, :, :3], atol=1e-5)
    np.testing.assert_allclose(i1["norm_in"][1], i2["norm_in"][1], atol=1e-6)


def _numpy_gru(x, w_ih, w_hh, b_ih, b_hh):
    """Slow float64 GRU, PyTorch formulas, one sample at a time."""
    s, b, _ = x.shape
    hdim = w_hh.shape[0]
    sig = lambda v: 1 / (1 + np.exp(-v))
    out = np.zeros((b, hdim))
    for n in range(b):
        h = np.zeros(hdim)
        for t in range(s):
            gi = x[t, n] @ w_ih + b_ih
            gh = h @ w_hh + b_hh
            r = sig(gi[:hdim] + gh[:hdim])
            z = sig(gi[hdim : 2 * hdim] + gh[hdim : 2 * hdim])
            nn = np.tanh(gi[2 * hdim :] + r * gh[2 * hdim :])
            h = (1 - z) * nn + z * h
        out[n] = h
    return out


@pytest.fixture
def x64():
    jax.config.update("jax_enable_x64", True)
    yield
    jax.config.update("jax_enable_x64", False)


def _gru_args(rng, s=7, b=4, i=5, h=6, dtype=np.float64):
    u = lambda *shape: rng.uniform(-0.5, 0.5, size=shape).astype(dtype)
    return u(s, b, i), u(i, 3 * h), u(h, 3 * h), u(3 * h), u(3 * h)


def test_gru_forward_matches_numpy(x64):
    args = _gru_args(np.random.default_rng(1))
    got = gru_lib.gru_final_state(*map(jnp.asarray, args))
    np.testing.assert_allclose(got, _numpy_gru(*args), rtol=1e-12, atol=1e-12)


@pytest.mark.parametrize("steps", [1, 2, 7])
def test_gru_custom_vjp_matches_autodiff_float64(x64, steps):
    # steps=1: only the peeled first step (from h0 = 0), an empty loop after it.
    args = tuple(map(jnp.asarray, _gru_args(np.random.default_rng(2), s=steps)))
    w = jnp.asarray(np.random.default_rng(3).normal(size=(4, 6)))
    f_custom = lambda *a: jnp.sum(jnp.sin(gru_lib.gru_final_state(*a)) * w)
    f_auto = lambda *a: jnp.sum(jnp.sin(gru_lib.gru_final_state_autodiff(*a)) * w)
    g_custom = jax.grad(f_custom, argnums=tuple(range(5)))(*args)
    g_auto = jax.grad(f_auto, argnums=tuple(range(5)))(*args)
    for gc, ga in zip(g_custom, g_auto, strict=True):
        np.testing.assert_allclose(gc, ga, rtol=1e-11, atol=1e-13)


def test_gru_gradient_matches_finite_differences(x64):
    args = list(map(jnp.asarray, _gru_args(np.random.default_rng(4), s=3, b=2, i=2, h=3)))
    f = lambda *a: jnp.sum(gru_lib.gru_final_state(*a) ** 2)
    grads = jax.grad(f, argnums=(0, 2))(*args)
    eps = 1e-6
    for argnum, g in zip((0, 2), grads, strict=True):
        flat = np.asarray(args[argnum]).ravel()
        for j in range(0, flat.size, max(1, flat.size // 7)):
            plus, minus = flat.copy(), flat.copy()
            plus[j] += eps
            minus[j] -= eps
            a_p, a_m = list(args), list(args)
            a_p[argnum] = jnp.asarray(plus.reshape(args[argnum].shape))
            a_m[argnum] = jnp.asarray(minus.reshape(args[argnum].shape))
            fd = (f(*a_p) - f(*a_m)) / (2 * eps)
            np.testing.assert_allclose(np.asarray(g).ravel()[j], fd, rtol=1e-6, atol=1e-9)


def test_gru_custom_vjp_bfloat16_matches_autodiff():
    # The hand-written backward rounds the same GEMM operands to bf16 as autodiff does (the
    # cotangents of the gates, h and x; the weights); what differs is the order of float32
    # sums. Realistic scale: GroupNorm output ~N(0, 1), PyTorch-initialised weights.
    rng = np.random.default_rng(7)
    s, b, i, h = 6, 16, 8, 32
    bound = 1 / np.sqrt(h)
    u = lambda *shape: jnp.asarray(rng.uniform(-bound, bound, size=shape), jnp.float32)
    x = jnp.asarray(rng.normal(size=(s, b, i)), jnp.float32)
    args = (x, u(i, 3 * h), u(h, 3 * h), u(3 * h), u(3 * h))
    w = jnp.asarray(rng.normal(size=(b, h)), jnp.float32)
    loss = lambda f: lambda *a: jnp.sum(jnp.sin(f(*a, jnp.bfloat16)) * w)
    g_custom = jax.grad(loss(gru_lib.gru_final_state), argnums=tuple(range(5)))(*args)
    g_auto = jax.grad(loss(gru_lib.gru_final_state_autodiff), argnums=tuple(range(5)))(*args)
    for name, gc, ga in zip(("x", "w_ih", "w_hh", "b_ih", "b_hh"), g_custom, g_auto, strict=True):
        rel = float(jnp.linalg.norm(gc - ga) / jnp.linalg.norm(ga))
        assert rel < 1e-2, (name, rel)


def test_bfloat16_operands_stay_close_to_float32(params):
    x = jnp.asarray(np.random.default_rng(5).normal(size=(8, T, C)), jnp.float32)
    ref = PrimusEncoder().apply(params, x)
    low = PrimusEncoder(compute_dtype=jnp.bfloat16).apply(params, x)
    for k in ("emb", "mmcl"):
        assert low[k].dtype == jnp.float32
        rel = jnp.linalg.norm(low[k] - ref[k]) / jnp.linalg.norm(ref[k])
        assert rel < 2e-2, (k, float(rel))
    g32 = jax.grad(lambda p: PrimusEncoder().apply(p, x)["mmcl"].sum())(params)
    g16 = jax.grad(lambda p: PrimusEncoder(compute_dtype=jnp.bfloat16).apply(p, x)["mmcl"].sum())(
        params
    )
    a, b = g32["params"]["gru"]["w_hh"], g16["params"]["gru"]["w_hh"]
    assert jnp.linalg.norm(a - b) / jnp.linalg.norm(a) < 5e-2


@pytest.mark.parametrize("gru_over", ["channels", "time"])
def test_gru_orientation(params, gru_over):
    # The reference GRU steps over the 32 conv channels with the 32 time bins as features
    # (docs/differences.md); "time" steps over the bins with the channels as features. Check
    # each against the numpy GRU fed the GroupNorm output in that orientation.
    x = jnp.asarray(np.random.default_rng(6).normal(size=(2, T, C)), jnp.float32)
    model = PrimusEncoder(gru_over=gru_over)
    out, inter = model.apply(params, x, return_intermediates=True)
    h = np.asarray(inter["norm_out"], np.float64)  # (B, bins, channels)
    seq = h.transpose(2, 0, 1) if gru_over == "channels" else h.transpose(1, 0, 2)
    g = {k: np.asarray(v, np.float64) for k, v in params["params"]["gru"].items()}
    want = _numpy_gru(seq, g["w_ih"], g["w_hh"], g["b_ih"], g["b_hh"])
    np.testing.assert_allclose(out["emb"], want, rtol=1e-4, atol=1e-5)


def test_bad_orientation_is_rejected(params):
    with pytest.raises(ValueError, match="gru_over"):
        PrimusEncoder(gru_over="diagonal").apply(params, jnp.zeros((1, T, C)))


def _groupnorm64(x, num_groups, scale, bias, eps=1e-5):
    """float64 numpy GroupNorm of channels-last ``x``: groups of channels, all other axes."""
    x = np.asarray(x, np.float64)
    g = x.reshape(*x.shape[:-1], num_groups, -1)
    axes = (*range(1, g.ndim - 2), g.ndim - 1)
    mu = g.mean(axes, keepdims=True)
    var = ((g - mu) ** 2).mean(axes, keepdims=True)
    return ((g - mu) / np.sqrt(var + eps)).reshape(x.shape) * scale + bias


@pytest.fixture(scope="module")
def groupnorm_inputs(params):
    """Per GroupNorm: its realistic input (windows; the encoder's pool3 for norm_out), affine."""
    x, cases = imu.stacked()
    _, inter = jax.jit(lambda p, x: PrimusEncoder().apply(p, x, return_intermediates=True))(
        params, x
    )
    rng = np.random.default_rng(7)
    affine = lambda c: (rng.normal(1, 0.3, c), rng.normal(0, 0.3, c))
    pool3 = np.asarray(inter["pool3"])
    inputs = {"norm_in": (2, x, *affine(6)), "norm_out": (4, pool3, *affine(32))}
    f32 = lambda a: np.asarray(a, np.float32)
    return {k: (g, a, f32(s), f32(b)) for k, (g, a, s, b) in inputs.items()}, cases


def _flax_groupnorm(groups, x, scale, bias):
    p = {"params": {"scale": jnp.asarray(scale), "bias": jnp.asarray(bias)}}
    return np.asarray(jax.jit(GroupNorm(num_groups=groups).apply)(p, jnp.asarray(x)))


def test_groupnorm_matches_float64_on_realistic_windows(groupnorm_inputs):
    # A still window (group mean ~5.7 m/s^2 per axis, spread ~0.015) breaks the one-pass
    # variance E[x^2] - E[x]^2 (0.24 off) and a plain two-pass one (1e-4, from the float32 mean).
    inputs, cases = groupnorm_inputs
    bad = []
    for name, (groups, x, scale, bias) in inputs.items():
        got = _flax_groupnorm(groups, x, scale, bias)
        want = _groupnorm64(x, groups, scale, bias)
        for case, rows in cases.items():
            err = np.abs(got[rows] - want[rows]).max()
            if err > 1e-5:
                rel = err / np.abs(want[rows]).max()
                bad.append(f"{case}/{name}: max |flax - float64| {err:.2e} (rel {rel:.1e})")
    assert not bad, "\n".join(bad)


@pytest.mark.torch
def test_groupnorm_matches_torch_on_realistic_windows(groupnorm_inputs):
    torch = pytest.importorskip("torch")
    from support import torch_reference as tref

    inputs, cases = groupnorm_inputs
    got, want, want64 = {}, {}, {}
    for name, (groups, x, scale, bias) in inputs.items():
        gn = torch.nn.GroupNorm(groups, x.shape[-1])
        with torch.no_grad():
            gn.weight.copy_(torch.from_numpy(scale))
            gn.bias.copy_(torch.from_numpy(bias))
            xt = torch.from_numpy(np.ascontiguousarray(np.moveaxis(x, -1, 1)))
            want[name] = np.moveaxis(gn(xt).numpy(), 1, -1)
        got[name] = _flax_groupnorm(groups, x, scale, bias)
        want64[name] = _groupnorm64(x, groups, scale, bias)
    tref.assert_parity(got, want, want64, cases)


@pytest.mark.torch
def test_training_path_matches_torch_on_realistic_windows():
    # PrimusEncoder.apply as the train step runs it: jitted, batch sharded over a data mesh
    # (so the GRU runs per device in shard_map), params converted from a torch model.
    pytest.importorskip("torch")
    from support import torch_reference as tref

    from primus_jax.tools import import_torch

    model = tref.make_torch_model(2)
    params = import_torch.convert_state_dict(model.state_dict()).params
    x, cases = imu.stacked()  # 24 windows: 6 per device on a 4-device mesh
    mesh = sharding.make_mesh(ml_collections.ConfigDict({"mesh": {"data": 4}}))
    apply = lambda p, x: PrimusEncoder().apply({"params": p}, x, return_intermediates=True)
    fn = jax.jit(
        sharding.under_mesh(apply, mesh),
        in_shardings=(sharding.replicated(mesh), sharding.batch_sharding(mesh)),
    )
    out, inter = fn(params, x)
    got = {k: np.asarray(v) for k, v in {**out, **inter}.items()}
    want, want64 = tref.torch_outputs(model, x), tref.torch_outputs(model, x, float64=True)
    tref.assert_parity(got, want, want64, cases)


@pytest.mark.torch
@pytest.mark.parametrize("k", [3, 4])
def test_max_pool_first_matches_torch_on_exact_ties(k):
    # Forward and gradient of max_pool_first against torch.nn.MaxPool1d, exactly, on windows
    # full of exact ties: a held reading, a zero-padded tail, a gyro clipped at its rail, a
    # window of k equal values after one with a unique maximum, and a tail to drop.
    torch = pytest.importorskip("torch")
    from primus_jax.models.encoder import max_pool_first

    x = imu.stacked(n=1, names=["walking", "saturated_gyro"])[0][:, :101].copy()
    x[0, 40:] = x[0, 40]  # held
    x[1, 70:] = 0.0  # zero-padded
    x[1, :30, 3:] = np.clip(x[1, :30, 3:], -0.5, 0.5)  # saturated at +-0.5: runs of equal rails
    x[0, 1:3] = x[0, 0] - 1.0, x[0, 0] + 1.0  # window 0: a unique max, then...
    x[0, k : 2 * k] = x[0, k]  # ...window 1: k equal values
    x = x.astype(np.float32)
    n = x.shape[1] // k  # the last 101 % k samples are dropped
    windows = x[:, : n * k].reshape(2, n, k, 6)
    ties = (windows == windows.max(axis=2, keepdims=True)).sum(2) > 1
    assert ties.sum() > 50, "the case must hold many exact ties"
    up = np.random.default_rng(0).normal(size=(2, n, 6)).astype(np.float32)

    y, vjp = jax.vjp(lambda x: max_pool_first(x, k), jnp.asarray(x))
    (dx,) = vjp(jnp.asarray(up))
    xt = torch.from_numpy(x.transpose(0, 2, 1).copy()).requires_grad_(True)
    yt = torch.nn.MaxPool1d(k)(xt)
    yt.backward(torch.from_numpy(up.transpose(0, 2, 1).copy()))
    np.testing.assert_array_equal(np.asarray(y), yt.detach().numpy().transpose(0, 2, 1))
    np.testing.assert_array_equal(np.asarray(dx), xt.grad.numpy().transpose(0, 2, 1))


HELD_FROM = 149  # the held windows are constant from this sample to the end


def _held_windows(n=2, seed=11):
    """Walking, then the last reading held for 2 s (a logger that froze or a zero-padded tail):
    a constant stretch, so the max pools see exact ties."""
    x = imu.walking(n, seed)
    x[:, HELD_FROM + 1 :] = x[:, HELD_FROM : HELD_FROM + 1]
    return x


@pytest.mark.torch
def test_encoder_gradients_match_torch_on_realistic_windows():
    # Every parameter's gradient of a fixed linear read-out of both heads, against the
    # reference model built from torch layers (float32 and float64), on still, split-gravity,
    # walking, saturated, transition and held windows (on the held ones the input gradient
    # is compared where max-pool ties cannot move it; the first-maximum tie rule itself is
    # checked exactly in test_max_pool_first_matches_torch_on_exact_ties).
    torch = pytest.importorskip("torch")
    from support import torch_reference as tref

    from primus_jax.tools import import_torch

    model = tref.make_torch_model(3)
    params = import_torch.convert_state_dict(model.state_dict()).params
    x, _ = imu.stacked(n=2)
    x_held = _held_windows()
    x = np.concatenate([x, x_held]).astype(np.float32)
    rng = np.random.default_rng(5)
    w_ssl = rng.normal(size=(len(x), 512)).astype(np.float32)
    w_mm = rng.normal(size=(len(x), 512)).astype(np.float32)

    def loss(p, x):
        out = PrimusEncoder().apply({"params": p}, x)
        return jnp.sum(out["ssl"] * w_ssl) + jnp.sum(out["mmcl"] * w_mm)

    got, got_x = jax.tree.map(np.asarray, jax.jit(jax.grad(loss, (0, 1)))(params, x))

    def torch_grads(float64):
        m = copy.deepcopy(model).double() if float64 else model
        dt = torch.float64 if float64 else torch.float32
        m.zero_grad()
        xt = torch.from_numpy(np.ascontiguousarray(x.transpose(0, 2, 1))).to(dt)
        xt.requires_grad_(True)
        out = m(xt)
        val = (out["ssl"] * torch.from_numpy(w_ssl).to(dt)).sum()
        val = val + (out["mmcl"] * torch.from_numpy(w_mm).to(dt)).sum()
        val.backward()
        grads = {k: p.grad.detach().float() for k, p in m.named_parameters()}
        dx = xt.grad.detach().numpy().transpose(0, 2, 1)
        return {"params": import_torch.convert_state_dict(grads).params, "imu": dx}

    want = torch_grads(False)
    want64 = torch_grads(True)
    flat = lambda t: dict(jax.tree_util.tree_flatten_with_path(t)[0])

    def tie_invariant(dx):
        # On the held windows a max pool's window can hold values that tie in one rounding
        # and not in another (float32 here, float64 there; or two float32 programs), so which
        # held position gets the gradient is rounding, not the tie rule (that rule is checked
        # exactly in test_max_pool_first_matches_torch_on_exact_ties). Every tied position
        # lies in the held stretch, so its per-channel sum, and each position before it, is
        # the same whichever one wins.
        held = dx[-len(x_held) :]
        return np.concatenate(
            [
                dx[: -len(x_held)].ravel(),
                held[:, :HELD_FROM].ravel(),
                held[:, HELD_FROM:].sum(1).ravel(),
            ]
        )

    got, want, want64 = (
        flat(t)
        for t in (
            {"params": got, "imu": tie_invariant(got_x)},
            {**want, "imu": tie_invariant(want["imu"])},
            {**want64, "imu": tie_invariant(want64["imu"])},
        )
    )
    bad = []
    for path, g in got.items():
        name = jax.tree_util.keystr(path)
        scale = np.abs(want64[path]).max()
        d_torch = np.abs(g - want[path]).max() / scale
        d_f64 = np.abs(g - want64[path]).max() / scale
        torch_f64 = np.abs(want[path] - want64[path]).max() / scale
        # float32 on both sides: within 1e-4 of the largest gradient entry, and no further
        # from float64 than 10x PyTorch's own float32 distance (or 1e-5).
        if d_torch > 1e-4 or d_f64 > max(10 * torch_f64, 1e-5):
            bad.append(
                f"{name}: rel |jax-torch| {d_torch:.1e}, |jax-f64| {d_f64:.1e}, "
                f"|torch-f64| {torch_f64:.1e}"
            )
    assert len(got) == 16 and not bad, "\n".join(bad)
