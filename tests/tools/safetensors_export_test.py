"""Shareable weights: the safetensors folder reloads to the same encoder in JAX, and the
documented PyTorch snippet loads it into the reference module with parity."""

import json
import os
import re

import numpy as np
import pytest
from absl import flags
from support import realistic_imu as imu
from support.checkpoints import write_checkpoint

import primus_jax
from primus_jax.models import build
from primus_jax.tools import export
from primus_jax.tools import safetensors_export as st

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


def _doc_snippet() -> str:
    with open(os.path.join(REPO, "docs", "interop.md"), encoding="utf-8") as f:
        text = f.read()
    (snippet,) = [b for b in re.findall(r"```python\n(.*?)```", text, re.S) if "load_file" in b]
    return snippet


@pytest.mark.torch
def test_folder_round_trips_in_jax_and_loads_into_the_torch_reference(tmp_path, monkeypatch):
    pytest.importorskip("torch")
    from support import torch_reference as tref

    from primus_jax.tools import import_torch

    model = tref.make_torch_model(5, hidden=64, mm_dim=32)
    params = import_torch.convert_state_dict(model.state_dict()).params
    config = {"model": {"hidden": 64, "ssl_dim": 64, "mm_dim": 32}, "data": {"name": "toy"}}
    folder = tmp_path / "primus_safetensors"
    paths = st.write_folder(params, config, folder, step=7)
    for name, a in st.state_dict(params).items():  # exactly the torch module's tensors
        np.testing.assert_array_equal(a, model.state_dict()[name].numpy())
    cfg = json.loads((folder / "config.json").read_text())
    assert cfg["model"]["mm_dim"] == 32 and cfg["input"]["rate_hz"] == 50
    assert cfg["input"]["channel_order"] == ["ax", "ay", "az", "gx", "gy", "gz"]
    card = (folder / "README.md").read_text()
    assert "`toy`" in card and "No few-shot report" in card
    assert set(paths) == {"weights", "config", "card"}

    # JAX: load_encoder reads the folder; parameters come back bit for bit.
    back, back_cfg, step = st.load_folder(folder)
    assert step == 7 and back_cfg["model"]["hidden"] == 64
    for mod in params:
        for k in params[mod]:
            np.testing.assert_array_equal(back[mod][k], params[mod][k])
    x, cases = imu.stacked()
    enc = primus_jax.load_encoder(folder, batch_size=8)
    got = enc.embed(x, check_units="off")
    want_jax = build.encoder_from_params(params).apply({"params": params}, x)
    np.testing.assert_allclose(got["mmcl"], np.asarray(want_jax["mmcl"]), atol=1e-6)  # jit

    # PyTorch: the documented snippet, verbatim, against the original torch module and JAX.
    monkeypatch.chdir(tmp_path)
    ns = {"ReferenceEncoder": tref.ReferenceEncoder, "windows": x}
    exec(compile(_doc_snippet(), "docs/interop.md", "exec"), ns)
    want, want64 = tref.torch_outputs(model, x), tref.torch_outputs(model, x, float64=True)
    np.testing.assert_array_equal(ns["mmcl"], want["mmcl"])
    tref.assert_parity({"mmcl": got["mmcl"]}, want, want64, cases)
    assert np.max(np.abs(ns["mmcl"] - got["mmcl"])) <= 1e-5


def test_cli_writes_the_folder_with_the_workdir_report(tmp_path, capsys):
    from primus_jax.evaluation import report as report_lib

    encoder = write_checkpoint(tmp_path / "run")
    golden = os.path.join(REPO, "tests", "evaluation", "golden", "fewshot_report.json")
    rep = report_lib.load_report(golden)
    with open(tmp_path / "run" / "fewshot.json", "w") as f:
        json.dump(rep, f)
    fv = flags.FlagValues()
    export.define_flags(fv)
    out = tmp_path / "shared"
    argv = ["export", "--format=safetensors", f"--checkpoint={tmp_path / 'run'}"]
    rc = export.main(fv([*argv, f"--output={out}"]), fv)
    text = capsys.readouterr().out
    assert rc == 0, text
    assert "reloaded max |diff| 0.0e+00" in text
    card = (out / "README.md").read_text()
    assert "Few-shot report" in card and "| logreg |" in card
    assert "uci_hapt" in card or "synthetic" in card  # the run config's training data
    back, _, step = st.load_folder(out)
    assert step == 0
    np.testing.assert_array_equal(back["gru"]["w_ih"], encoder["gru"]["w_ih"])
