"""The reference encoder built from torch layers, for parity tests (skips without torch).

``ReferenceEncoder`` has ``MW2StackRNNPoolingMultihead``'s module tree (docs/differences.md), so
its state_dict carries the reference key names and goes through ``import_torch`` unchanged.
"""

import argparse
import copy

import numpy as np
import pytest

torch = pytest.importorskip("torch")
nn = torch.nn

GROUPNORMS = {"norm_in": 0, "norm_out": 4}  # our intermediate name -> index in ``backbone``


class Block(nn.Module):
    """The reference's conv block (docs/differences.md): the conv is ``net.0``."""

    def __init__(self, c_in, c_out, k, pool="max"):
        super().__init__()
        pool_fn = nn.MaxPool1d(3) if pool == "max" else nn.AdaptiveAvgPool1d(32)
        self.net = nn.Sequential(nn.Conv1d(c_in, c_out, k, dilation=2, bias=False), pool_fn)

    def forward(self, x):
        return self.net(x)


class ReferenceEncoder(nn.Module):
    """``MW2StackRNNPoolingMultihead``'s module tree, so the state_dict has its key names."""

    def __init__(self, hidden=512, mm_dim=512):
        super().__init__()
        self.backbone = nn.Sequential(
            nn.GroupNorm(2, 6),
            Block(6, 32, 10),
            Block(32, 32, 5),
            Block(32, 32, 5, pool="adaptive"),
            nn.GroupNorm(4, 32),
            nn.GRU(batch_first=True, input_size=32, hidden_size=hidden),
        )
        self.ssl_head = nn.Linear(hidden, hidden)
        self.mmcl_head = nn.Linear(hidden, mm_dim)

    def forward(self, x):  # x: (B, 6, 250)
        emb = self.backbone(x)[1][0]
        return {"ssl": self.ssl_head(emb), "mmcl": self.mmcl_head(emb), "emb": emb}


def make_torch_model(seed, **kw):
    """A seeded ``ReferenceEncoder`` in eval mode with non-trivial GroupNorm affines."""
    torch.manual_seed(seed)
    m = ReferenceEncoder(**kw).eval()
    with torch.no_grad():  # so that a swapped scale/bias shows
        for i in GROUPNORMS.values():
            m.backbone[i].weight.normal_(1.0, 0.3)
            m.backbone[i].bias.normal_(0.0, 0.3)
    return m


def torch_outputs(model, x, *, float64=False):
    """``emb``/``ssl``/``mmcl`` and the GroupNorm outputs for channels-last ``x``, as numpy.

    ``float64=True`` runs a float64 copy of the model on the same (float32) input: the
    reference both frameworks' float32 results are measured against.
    """
    if float64:
        model = copy.deepcopy(model).double()
    dtype = torch.float64 if float64 else torch.float32
    got = {}
    hooks = [
        model.backbone[i].register_forward_hook(
            lambda _m, _i, out, name=name: got.__setitem__(name, out.numpy().transpose(0, 2, 1))
        )
        for name, i in GROUPNORMS.items()
    ]
    try:
        with torch.no_grad():
            xt = torch.from_numpy(np.ascontiguousarray(x.transpose(0, 2, 1))).to(dtype)
            out = model(xt)
    finally:
        for h in hooks:
            h.remove()
    return {**{k: v.numpy() for k, v in out.items()}, **got}


OUTPUTS = ("emb", "ssl", "mmcl")


def parity_errors(got, want, want64, keys):
    """Per key: max |got - PyTorch|, its relative size, max |got - float64|, max |PyTorch - f64|."""
    errs = {}
    for k in keys:
        g, t, w = (np.asarray(a[k], np.float64) for a in (got, want, want64))
        d = np.abs(g - t).max()
        errs[k] = {
            "torch": d,
            "torch_rel": d / np.abs(t).max(),
            "f64": np.abs(g - w).max(),
            "torch_f64": np.abs(t - w).max(),
        }
    return errs


def assert_parity(got, want, want64, slices, *, atol=1e-5):
    """``got`` within ``atol`` of PyTorch (``want``) and of float64 (``want64``), per case.

    ``got``/``want``/``want64`` map output and GroupNorm names to arrays over the batch of
    ``realistic_imu.stacked``; ``slices`` says which rows are which case. On the GroupNorm
    outputs the bound against PyTorch is ``atol`` plus PyTorch's own distance from float64:
    on a still window PyTorch's ``x * scale + shift`` kernel is ~2e-5 from float64 there,
    while our GroupNorm tracks float64 (see ``primus_jax.models.encoder.GroupNorm``).
    """
    keys = [k for k in (*OUTPUTS, *GROUPNORMS) if k in got]
    bad = []
    for case, rows in slices.items():
        sub = [{k: a[k][rows] for k in keys} for a in (got, want, want64)]
        for k, e in parity_errors(*sub, keys).items():
            slack = e["torch_f64"] if k in GROUPNORMS else 0.0
            if e["f64"] > atol or e["torch"] > atol + slack:
                bad.append(
                    f"{case}/{k}: |got-torch| {e['torch']:.2e} (rel {e['torch_rel']:.1e}), "
                    f"|got-f64| {e['f64']:.2e}, |torch-f64| {e['torch_f64']:.2e}"
                )
    assert not bad, "parity failures:\n" + "\n".join(bad)


def lightning_checkpoint(model, **extra_sd):
    """The official Lightning ``.ckpt`` layout around ``model``'s encoder weights."""
    sd = {"imu_encoder." + k: v for k, v in model.state_dict().items()}
    sd.update(extra_sd)
    # Frozen CLIP4Clip weights and other modules the reference stores beside the encoder.
    sd["text_encoder.model.text_model.embeddings.token_embedding.weight"] = torch.randn(50, 8)
    sd["video_encoder.model.vision_model.post_layernorm.weight"] = torch.ones(8)
    return {
        "epoch": 7,
        "global_step": 1234,
        "pytorch-lightning_version": "2.0.9",
        "state_dict": sd,
        # Lightning pickles the CLI args: weights_only=True refuses an argparse.Namespace.
        "hyper_parameters": {"args": argparse.Namespace(lr=2e-4, multihead=True, nnclr=True)},
        "optimizer_states": [{"state": {}, "param_groups": [{"lr": 2e-4}]}],
        "callbacks": {"ModelCheckpoint": {"best_model_score": torch.tensor(1.5)}},
    }
