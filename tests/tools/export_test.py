"""StableHLO export: a serialized, deserialized artifact matches PrimusEncoder.apply, and a
torch model's weights exported this way match that torch model on realistic IMU windows."""

import json

import numpy as np
import pytest
from absl import flags
from support import realistic_imu as imu
from support.checkpoints import random_encoder_params, write_checkpoint

from primus_jax.models.encoder import PrimusEncoder
from primus_jax.tools import export

pytest.importorskip("flatbuffers")  # jax.export serialization needs it


@pytest.fixture(scope="module")
def params():
    # mm_dim 384 so the artifact's output widths are read from the parameters, not assumed.
    return random_encoder_params(384, seed=3)


def _inputs(n, seed=0):
    x = np.random.default_rng(seed).normal(size=(n, 250, 6)).astype(np.float32)
    x[..., 2] += 9.8
    return x


def _assert_matches(exported, params, x):
    got = exported.call(x)
    want = PrimusEncoder(mm_dim=384).apply({"params": params}, x)
    assert set(got) == {"emb", "ssl", "mmcl"}
    for k in want:
        assert got[k].shape == want[k].shape
        np.testing.assert_allclose(np.asarray(got[k]), np.asarray(want[k]), atol=1e-5, rtol=0)


def test_symbolic_batch_roundtrip(tmp_path, params):
    exp = export.export_encoder(params, {"model": {"gru_over": "channels"}})
    size = export.save(exp, tmp_path / "m.stablehlo", {"step": 7})
    assert size == (tmp_path / "m.stablehlo").stat().st_size > 5_000_000  # weights inside
    desc = json.loads((tmp_path / "m.stablehlo.json").read_text())
    assert desc["input"]["shape"] == ["b", "250", "6"]
    assert desc["outputs"]["mmcl"] == ["b", "384"] and desc["step"] == 7
    assert set(desc["platforms"]) == {"cpu", "cuda", "tpu"}

    loaded = export.load(tmp_path / "m.stablehlo")
    for n in (1, 5):  # one artifact, any batch size
        _assert_matches(loaded, params, _inputs(n, seed=n))


@pytest.mark.torch
def test_exported_artifact_matches_torch_on_realistic_windows(tmp_path):
    pytest.importorskip("torch")
    from support import torch_reference as tref

    from primus_jax.tools import import_torch

    model = tref.make_torch_model(3, mm_dim=384)
    params = import_torch.convert_state_dict(model.state_dict()).params
    export.save(export.export_encoder(params, platforms=("cpu",)), tmp_path / "t.stablehlo")
    loaded = export.load(tmp_path / "t.stablehlo")
    x, cases = imu.stacked()
    got = {k: np.asarray(v) for k, v in loaded.call(x).items()}
    assert set(got) == set(tref.OUTPUTS)
    want, want64 = tref.torch_outputs(model, x), tref.torch_outputs(model, x, float64=True)
    tref.assert_parity(got, want, want64, cases)


def test_fixed_batch_rejects_other_sizes(tmp_path, params):
    exp = export.export_encoder(params, batch_size=2, platforms=("cpu",))
    export.save(exp, tmp_path / "m2.stablehlo")
    loaded = export.load(tmp_path / "m2.stablehlo")
    _assert_matches(loaded, params, _inputs(2))
    with pytest.raises(ValueError, match="shape"):
        loaded.call(_inputs(3))


def _run_cli(argv):
    """``python -m primus_jax.tools.export ARGV`` in-process (own flag registry)."""
    fv = flags.FlagValues()
    export.define_flags(fv)
    return export.main(fv(["export", *argv]), fv)


def test_cli_prints_size_check_and_latency(tmp_path, capsys):
    write_checkpoint(tmp_path / "run")
    out = tmp_path / "model.stablehlo"
    args = ["--checkpoint", str(tmp_path / "run"), "--output", str(out)]
    rc = _run_cli([*args, "--platforms", "cpu", "--runs", "2"])
    text = capsys.readouterr().out
    assert rc == 0, text
    assert "MiB" in text and "max |exported - PrimusEncoder.apply|" in text
    assert "batch   1" in text and "batch  64" in text and "ms per window" in text
    assert out.exists()


def test_tflite_matches_fixed_batch_export(params):
    pytest.importorskip("tensorflow")  # optional: pip install tensorflow-cpu==2.21.0
    exp = export.export_encoder(params, batch_size=2, platforms=("cpu",))
    blob = export.to_tflite(exp)
    r = export.check_tflite(blob, exp, runs=1)
    assert max(r["max_abs_diff"].values()) < 1e-5
    with pytest.raises(ValueError, match="fixed batch"):
        export.to_tflite(export.export_encoder(params, platforms=("cpu",)))
