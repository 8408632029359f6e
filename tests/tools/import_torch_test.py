"""PyTorch checkpoint import: parity with a torch model, key layouts, errors, safe loading."""

import collections
import contextlib
import json
import os
import pickle
import shutil

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from support import realistic_imu as imu

from primus_jax import checkpointing, load_encoder
from primus_jax.config import base_config
from primus_jax.models.encoder import PrimusEncoder
from primus_jax.tools import import_torch

torch = pytest.importorskip("torch")
nn = torch.nn
from support import torch_reference as tref  # noqa: E402  (after the skip: it needs torch)

pytestmark = pytest.mark.torch


def _flat_names(sd):
    """The same weights under the flat names (norm_in, conv1..3, norm_out, gru)."""
    rename = {
        "backbone.0.": "norm_in.",
        "backbone.1.net.0.": "conv1.",
        "backbone.2.net.0.": "conv2.",
        "backbone.3.net.0.": "conv3.",
        "backbone.4.": "norm_out.",
        "backbone.5.": "gru.",
    }
    out = {}
    for k, v in sd.items():
        for old, new in rename.items():
            if k.startswith(old):
                k = new + k[len(old) :]
        out[k] = v
    return out


@pytest.fixture(scope="module")
def torch_model():
    return tref.make_torch_model(0)


@pytest.fixture(scope="module")
def inputs():
    """Realistic windows (still, walking, saturated, transitions) and unit noise, per case."""
    return imu.stacked()


def _small_config():
    """Paper defaults with a small synthetic set and queue, so an import takes ~1 s."""
    c = base_config()
    c.data.batch_size = 16
    c.data.synthetic.num_examples = 64
    c.queue.size = 64
    return c


def _jax_outputs(params, x, **kw):
    out, inter = PrimusEncoder(**kw).apply(
        {"params": params}, jnp.asarray(x), return_intermediates=True
    )
    assert set(out) == {"emb", "ssl", "mmcl"}
    return {k: np.asarray(v) for k, v in {**out, **inter}.items()}


def _assert_parity(params, model, inputs, **kw):
    """Outputs and GroupNorm outputs against PyTorch and float64 on every case."""
    x, cases = inputs
    want, want64 = tref.torch_outputs(model, x), tref.torch_outputs(model, x, float64=True)
    tref.assert_parity(_jax_outputs(params, x, **kw), want, want64, cases)


def _restored_log_taus(workdir):
    import orbax.checkpoint as ocp

    d, step = checkpointing.resolve_checkpoint(workdir)
    h = ocp.PyTreeCheckpointer()
    tree = h.metadata(d / str(step) / "state").item_metadata.tree
    args = jax.tree.map(lambda _: ocp.RestoreArgs(restore_type=np.ndarray), tree)
    p = h.restore(d / str(step) / "state", restore_args=args)["params"]
    return float(p["log_tau_mm"]), float(p["log_tau_ss"])


def test_raw_temperature_config_stores_tau_itself(tmp_path, torch_model):
    ckpt = tmp_path / "primus.ckpt"
    temps = {"mmcl_loss.temperature": nn.Parameter(torch.tensor(0.07))}
    torch.save(tref.lightning_checkpoint(torch_model, **temps), ckpt)
    config = _small_config()
    config.loss.temperature = "raw"
    import_torch.import_checkpoint(ckpt, tmp_path / "run", config)
    params, _, _ = checkpointing.load_checkpoint_params(tmp_path / "run")
    assert "log_tau_mm" not in params and "log_tau_ss" not in params
    np.testing.assert_allclose(params["tau_mm"], 0.07, rtol=1e-6)  # from the checkpoint
    np.testing.assert_allclose(params["tau_ss"], config.loss.tau_init, rtol=1e-6)  # config


def test_lightning_checkpoint_imports_with_parity(tmp_path, torch_model, inputs):
    ckpt = tmp_path / "primus.ckpt"
    torch.save(
        tref.lightning_checkpoint(
            torch_model,
            **{
                "mmcl_loss.temperature": nn.Parameter(torch.tensor(0.07)),
                "ssl_loss.temperature": nn.Parameter(torch.tensor(0.2)),
            },
        ),
        ckpt,
    )
    with pytest.raises(pickle.UnpicklingError):  # the restricted fallback is really exercised
        torch.load(ckpt, weights_only=True)

    summary = import_torch.import_checkpoint(ckpt, tmp_path / "run", _small_config())
    assert summary["loader"] == "restricted_unpickler"
    assert summary["format"] == "lightning" and summary["epoch"] == 7
    assert summary["layout"] == "reference" and summary["prefix"] == "imu_encoder."
    assert summary["used_keys"] == 17  # 15 encoder tensors + 2 temperatures
    assert summary["ignored_keys"] == 2
    assert summary["temperatures"]["log_tau_mm"]["source"] == "checkpoint"

    params, config, step = checkpointing.load_encoder_params(tmp_path / "run")
    assert step == 0 and config["model"]["mm_dim"] == 512
    meta = json.loads((tmp_path / "run/checkpoints/0/meta/metadata").read_text())
    assert meta["imported_from"]["sha256"] == summary["sha256"]
    _assert_parity(params, torch_model, inputs)
    np.testing.assert_allclose(_restored_log_taus(tmp_path / "run"), np.log([0.07, 0.2]), 1e-6)
    # The inference API on the imported run (batched over the devices, last batch padded).
    x, cases = inputs
    got = load_encoder(tmp_path / "run", batch_size=16).embed(x, check_units="off")
    want = tref.torch_outputs(torch_model, x)
    tref.assert_parity(got, want, tref.torch_outputs(torch_model, x, float64=True), cases)


@pytest.mark.parametrize("prefix", ["", "imu_encoder."])
def test_bare_state_dict_imports_with_parity(tmp_path, inputs, prefix):
    # A different head width: mm_dim is inferred from the mmcl_head shape (384 = MiniLM).
    model = tref.make_torch_model(1, mm_dim=384)
    torch.save({prefix + k: v for k, v in model.state_dict().items()}, tmp_path / "sd.pt")
    summary = import_torch.import_checkpoint(tmp_path / "sd.pt", tmp_path / "run", _small_config())
    assert summary["loader"] == "weights_only" and summary["format"] == "state_dict"
    assert summary["prefix"] == prefix and summary["ignored_keys"] == 0
    assert summary["config_overrides"] == {"model.mm_dim": 384}
    assert summary["temperatures"]["log_tau_ss"] == {"tau": pytest.approx(0.1), "source": "config"}
    params, config, _ = checkpointing.load_encoder_params(tmp_path / "run")
    assert config["model"]["mm_dim"] == 384
    _assert_parity(params, model, inputs, mm_dim=384)


def test_flat_bench_names_convert(torch_model, inputs):
    conv = import_torch.convert_state_dict(_flat_names(torch_model.state_dict()))
    assert conv.layout == "flat" and conv.prefix == ""
    _assert_parity(conv.params, torch_model, inputs)


def test_missing_and_misshaped_keys_are_all_listed(torch_model):
    sd = {"imu_encoder." + k: v for k, v in torch_model.state_dict().items()}
    del sd["imu_encoder.backbone.4.bias"], sd["imu_encoder.ssl_head.bias"]
    sd["imu_encoder.backbone.2.net.0.weight"] = torch.zeros(32, 32, 7)
    sd["imu_encoder.backbone.5.bias_hh_l0"] = torch.zeros(10)
    with pytest.raises(import_torch.CheckpointImportError) as e:
        import_torch.convert_state_dict(sd)
    msg = str(e.value)
    assert "4 problem(s)" in msg
    for key in (
        "backbone.4.bias",
        "ssl_head.bias",
        "backbone.2.net.0.weight",
        "backbone.5.bias_hh_l0",
    ):
        assert f"imu_encoder.{key}" in msg
    assert "expected (5, 32, 32)" in msg and "expected (1536,)" in msg


def test_no_encoder_and_ambiguous_prefix(torch_model):
    with pytest.raises(import_torch.CheckpointImportError, match="no PRIMUS IMU encoder"):
        import_torch.convert_state_dict({"clip.weight": torch.zeros(3)})
    sd = torch_model.state_dict()
    both = {**{"a." + k: v for k, v in sd.items()}, **{"b." + k: v for k, v in sd.items()}}
    with pytest.raises(import_torch.CheckpointImportError, match="--prefix"):
        import_torch.convert_state_dict(both)
    assert import_torch.convert_state_dict(both, prefix="b.").prefix == "b."


def test_non_positive_temperature_is_rejected(tmp_path, torch_model):
    ckpt = tmp_path / "bad_tau.ckpt"
    torch.save(
        tref.lightning_checkpoint(torch_model, **{"mmcl_loss.temperature": torch.tensor(-0.01)}),
        ckpt,
    )
    with pytest.raises(import_torch.CheckpointImportError, match="not a positive number"):
        import_torch.import_checkpoint(ckpt, tmp_path / "run", _small_config())
    assert not (tmp_path / "run" / "checkpoints").exists()
    # Opting out of the checkpoint's temperatures imports it.
    conv_taus = import_torch.log_temperatures({"log_tau_mm": -0.01}, "config", 0.1)
    assert conv_taus == {"log_tau_mm": np.log(0.1), "log_tau_ss": np.log(0.1)}


class _Exploit:
    def __init__(self, marker):
        self.marker = marker

    def __reduce__(self):
        return (os.system, (f"touch {self.marker}",))


@pytest.mark.parametrize("fmt", ["torch_zip", "raw_pickle"])
def test_malicious_pickle_is_refused_and_not_executed(tmp_path, torch_model, fmt):
    marker = tmp_path / "pwned"
    # The exploit comes first, so the loader meets os.system before anything else.
    payload = {"hook": _Exploit(marker), "state_dict": dict(torch_model.state_dict())}
    path = tmp_path / "evil.ckpt"
    if fmt == "torch_zip":
        torch.save(payload, path)
    else:
        with open(path, "wb") as f:
            pickle.dump(payload, f, protocol=2)
    with pytest.raises(import_torch.UnsafeCheckpointError, match="refusing to load"):
        import_torch.import_checkpoint(path, tmp_path / "run")
    assert not marker.exists()
    # Exploit last: torch's weights-only pass and the fallback stop on the tensors first.
    payload = {"state_dict": dict(torch_model.state_dict()), "hook": _Exploit(marker)}
    with open(path, "wb") as f:
        pickle.dump(payload, f, protocol=2)
    with pytest.raises(pickle.UnpicklingError):
        import_torch.load_torch_file(path)
    assert not marker.exists()


def test_unknown_classes_become_inert_stubs(tmp_path, torch_model):
    # A class the loader cannot know (and must not import) is kept as a stub; its code never runs.
    path = tmp_path / "x.ckpt"
    ckpt = tref.lightning_checkpoint(torch_model)
    ckpt["hyper_parameters"]["extra"] = _Recorder(tmp_path / "ran")
    torch.save(ckpt, path)
    obj, loader = import_torch.load_torch_file(path)
    assert loader == "restricted_unpickler"
    assert "Namespace" in repr(obj["hyper_parameters"]["args"])
    assert isinstance(obj["state_dict"]["imu_encoder.ssl_head.weight"], torch.Tensor)
    assert not (tmp_path / "ran").exists()


class _Recorder:
    def __init__(self, path):
        self.path = str(path)

    def __setstate__(self, state):  # would run on a normal unpickle
        open(state["path"], "w").close()


@pytest.mark.slow
def test_import_then_finetune_resumes_from_step_0(tmp_path, torch_model):
    from primus_jax import train

    config = _small_config()
    config.train.num_steps = 2
    config.train.log_every = 1
    config.train.checkpoint_every = 2
    config.optim.lr = 1e-4
    config.mesh.data = 1  # one device and no NN term: a smaller step to compile
    config.loss.gamma = 0.0
    ckpt = tmp_path / "primus.ckpt"
    torch.save(tref.lightning_checkpoint(torch_model), ckpt)
    import_torch.import_checkpoint(ckpt, tmp_path / "run", config)
    imported, _, _ = checkpointing.load_encoder_params(tmp_path / "run")

    state = train.train_and_evaluate(config, str(tmp_path / "run"))
    assert int(state.step) == 2
    tuned = jax.device_get(state.params["encoder"])
    # Two Adam steps of 1e-4 move each weight by at most ~2e-4: training started from the
    # imported weights, not from a fresh initialisation.
    diffs = jax.tree.map(lambda a, b: float(np.max(np.abs(a - b))), tuned, imported)
    assert max(jax.tree.leaves(diffs)) < 1e-3
    assert max(jax.tree.leaves(diffs)) > 0


def test_command_line_with_matching_widths(tmp_path, torch_model, inputs):
    # The common case: the official 512-d checkpoint with the default config (no width
    # override). The CLI must finish, print the fine-tune command and leave a loadable run.
    import subprocess
    import sys

    path = tmp_path / "primus.ckpt"
    torch.save(tref.lightning_checkpoint(torch_model), path)
    wd = tmp_path / "run"
    repo = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    r = subprocess.run(
        [
            sys.executable,
            "-m",
            "primus_jax.tools.import_torch",
            f"--checkpoint={path}",
            f"--workdir={wd}",
        ],
        cwd=repo,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert r.returncode == 0, r.stderr[-3000:]
    assert "Fine-tune: python -m primus_jax.main" in r.stdout
    params, _, step = checkpointing.load_encoder_params(wd)
    assert step == 0
    _assert_parity(params, torch_model, inputs)


def _damaged_state_dict(model, seed):
    """A Lightning checkpoint with one tensor misshaped, NaN, integer, not a tensor or gone."""
    rng = np.random.default_rng(seed)
    ckpt = tref.lightning_checkpoint(model)
    sd = ckpt["state_dict"]
    k = sorted(sd)[int(rng.integers(len(sd)))]
    way = int(rng.integers(5))
    if way == 0:
        sd[k] = sd[k].reshape(-1)[: max(1, sd[k].numel() - 1)]
    elif way == 1:
        sd[k] = sd[k].clone()
        sd[k].view(-1)[0] = float("nan")
    elif way == 2:
        sd[k] = sd[k].to(torch.int64)
    elif way == 3:
        sd[k] = "not a tensor"
    else:
        del sd[k]
    return ckpt


@pytest.mark.filterwarnings("ignore:Detected pickle protocol")
def test_fuzzed_checkpoints_never_run_code_and_fail_naming_the_file(tmp_path, torch_model):
    """Damaged zips, pickles that would call os.system/eval/exec (in the zip or as a legacy
    file), random opcode soups and damaged tensors: nothing runs, every error names the file."""
    from support import fuzz

    base = tmp_path / "base.ckpt"
    torch.save(tref.lightning_checkpoint(torch_model), base)
    sentinel = tmp_path / "PWNED"
    kinds = [*fuzz.BINARY_MUTATIONS, "zip_attack", "zip_random", "raw_attack", "raw_random"]
    kinds.append("tensor")
    outcomes = collections.Counter()
    for i, (_, kind, seed) in enumerate(fuzz.cases([str(base)], kinds, 36, seed=3)):
        path = tmp_path / f"case{i}.ckpt"
        if kind in fuzz.BINARY_MUTATIONS:
            shutil.copy(base, path)
            fuzz.corrupt_file(path, kind, seed)
        elif kind.startswith("zip_"):
            make = fuzz.attack_pickle if kind == "zip_attack" else fuzz.random_pickle
            fuzz.replace_zip_member(base, path, "data.pkl", make(sentinel, seed))
        elif kind.startswith("raw_"):
            make = fuzz.attack_pickle if kind == "raw_attack" else fuzz.random_pickle
            path.write_bytes(make(sentinel, seed))
        else:
            torch.save(_damaged_state_dict(torch_model, seed), path)
        result, _ = fuzz.check_outcome(lambda p=path: import_torch.read_checkpoint(p), path)
        outcomes[result, kind] += 1
        assert not sentinel.exists(), (kind, seed)
        if kind == "zip_attack" or kind == "raw_attack":
            assert result == "error"
    assert sum(n for (r, _), n in outcomes.items() if r == "error") >= 30, outcomes


def test_the_fuzz_attack_pickles_do_run_code_without_the_restriction(tmp_path):
    # The check above means something only if plain unpickling of these payloads runs code.
    from support import fuzz

    ran = 0
    for seed in range(12):
        sentinel = tmp_path / f"ran{seed}"
        with contextlib.suppress(Exception):
            pickle.loads(fuzz.attack_pickle(sentinel, seed))
        ran += sentinel.exists()
    assert ran >= 3
