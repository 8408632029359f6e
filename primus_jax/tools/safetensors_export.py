"""Shareable encoder weights: a folder with ``model.safetensors``, ``config.json``, ``README.md``.

    python -m primus_jax.tools.export --format safetensors --checkpoint runs/primus \\
        --output primus_safetensors [--report runs/primus_eval/fewshot.json]

The tensors carry the reference ``MW2StackRNNPoolingMultihead`` key names in the PyTorch
layout (the inverse of ``tools.import_torch``'s key table), so a PyTorch user loads them with
``load_state_dict``; ``config.json`` holds the widths and the input contract, ``README.md`` is
the model card (training data, objective, few-shot table). ``primus_jax.load_encoder`` reads
the folder back through the importer's converter, without torch. See ``docs/interop.md``.
"""

from __future__ import annotations

import json
import os
from collections.abc import Mapping

import numpy as np

from primus_jax import contract
from primus_jax.tools.import_torch import convert, keys

FORMAT = "primus_jax.safetensors/1"
WEIGHTS = "model.safetensors"
CONFIG = "config.json"
CARD = "README.md"
DIMS = ("hidden", "ssl_dim", "mm_dim", "conv_channels", "pool_bins")


def state_dict(params: Mapping) -> dict[str, np.ndarray]:
    """Encoder linen params -> reference-named float32 tensors in the torch layout."""
    out = {}
    for (mod, name), ref_key, _flat, how in keys.KEY_TABLE:
        out[ref_key] = keys.to_torch(np.asarray(params[mod][name], np.float32), how)
    return out


def is_folder(path: str | os.PathLike) -> bool:
    """Whether ``path`` is a folder written by :func:`write_folder`."""
    p = os.fspath(path)
    return os.path.isfile(os.path.join(p, WEIGHTS)) and os.path.isfile(os.path.join(p, CONFIG))


def _card(config: Mapping | None, cfg: dict, report_md: str | None, report_src: str) -> str:
    run = dict(config or {})
    data, loss = run.get("data") or {}, run.get("loss") or {}
    train = run.get("train") or {}
    m = cfg["model"]
    lines = [
        "# PRIMUS IMU encoder (primus_jax export)",
        "",
        "An IMU encoder pretrained with PRIMUS-style objectives (Das et al., *Pretraining IMU "
        "Encoders with Multimodal and Self-Supervised Learning*), exported by primus_jax.",
        "",
        "## Model",
        "",
        f"`MW2StackRNNPoolingMultihead` tree: GroupNorm, three dilated conv blocks, GroupNorm, "
        f"GRU (hidden {m['hidden']}, over {m['gru_over']}), heads `ssl` ({m['ssl_dim']}) and "
        f"`mmcl` ({m['mm_dim']}, the downstream embedding). Weights: `{WEIGHTS}` "
        "(reference key names, PyTorch layout); widths and input contract: `config.json`.",
        "",
        "## Input",
        "",
        f"{contract.DESCRIPTION}. Channel order {', '.join(contract.CHANNELS)}; "
        "channels-last `(N, 250, 6)` in JAX, channels-first `(N, 6, 250)` in PyTorch.",
        "",
        "## Training",
        "",
        f"- data: `{data.get('name', 'unknown')}` (split `{data.get('split', '?')}`, source "
        f"`{data.get('source', '?')}`, multimodal fraction {data.get('multimodal_fraction', '?')})",
        f"- objective: `{run.get('objective', 'unknown')}`; loss weights alpha (SS) "
        f"{loss.get('alpha', '?')}, beta (MM) {loss.get('beta', '?')}, gamma (NN) "
        f"{loss.get('gamma', '?')}; MM terms `{loss.get('mm_terms', '?')}`, NN terms "
        f"`{loss.get('nn_terms', '?')}`",
        f"- steps: {cfg.get('step')} of {train.get('num_steps', '?')}, seed {run.get('seed', '?')}",
        "",
        "## Evaluation",
        "",
    ]
    if report_md:
        lines += [f"Few-shot report `{report_src}`:", "", report_md.strip(), ""]
    else:
        lines += [
            "No few-shot report was found in the checkpoint's workdir (pass `--report` with a "
            "`fewshot.json`); evaluate with `python -m primus_jax.main --config=configs/"
            "fewshot.py --config.checkpoint=<workdir>`.",
            "",
        ]
    lines += [
        "## Use",
        "",
        "JAX: `primus_jax.load_encoder(folder).embed(windows)`. PyTorch: see primus_jax's "
        "`docs/interop.md` (load `model.safetensors` into the reference module).",
    ]
    return "\n".join(lines) + "\n"


def _find_report(checkpoint: str, report: str | None) -> str | None:
    if report:
        return report
    from primus_jax import checkpointing

    ckpt_dir, _ = checkpointing.resolve_checkpoint(checkpoint)
    candidate = os.path.join(os.fspath(ckpt_dir.parent), "fewshot.json")
    return candidate if os.path.isfile(candidate) else None


def write_folder(
    params: Mapping,
    config: Mapping | None,
    out_dir: str | os.PathLike,
    *,
    step: int | None = None,
    checkpoint: str | None = None,
    report: str | None = None,
) -> dict[str, str]:
    """Writes the weights, ``config.json`` and the model card into ``out_dir``.

    Args:
      params: the encoder's linen params.
      config: the run's config dict (model settings, data, loss for the card).
      out_dir: the folder (created).
      step: the checkpoint step.
      checkpoint: where the params came from (recorded).
      report: a ``fewshot.json`` whose tables go into the card, or None.

    Returns:
      ``{"weights", "config", "card"}`` -> path.
    """
    from safetensors.numpy import save_file

    from primus_jax.evaluation import report as report_lib
    from primus_jax.models import build

    model = build.encoder_from_params(params, (config or {}).get("model"))
    cfg = {
        "format": FORMAT,
        "architecture": "MW2StackRNNPoolingMultihead",
        "key_layout": "reference",
        "model": {**{d: int(getattr(model, d)) for d in DIMS}, "gru_over": model.gru_over},
        "input": {
            "window_samples": contract.SHAPE[0],
            "channels": contract.SHAPE[1],
            "rate_hz": contract.RATE_HZ,
            "channel_order": list(contract.CHANNELS),
            "description": contract.DESCRIPTION,
            "units": {"acc": "m/s^2 (with gravity)", "gyro": "rad/s"},
            "layout": {"jax": "channels_last (N, 250, 6)", "torch": "channels_first (N, 6, 250)"},
        },
        "outputs": {"emb": model.hidden, "ssl": model.ssl_dim, "mmcl": model.mm_dim},
        "downstream_output": "mmcl",
        "step": step,
        "source_checkpoint": checkpoint,
    }
    out = os.fspath(out_dir)
    os.makedirs(out, exist_ok=True)
    paths = {k: os.path.join(out, f) for k, f in (("weights", WEIGHTS), ("config", CONFIG))}
    paths["card"] = os.path.join(out, CARD)
    save_file(state_dict(params), paths["weights"], metadata={"format": "pt", "primus": FORMAT})
    with open(paths["config"], "w", encoding="utf-8") as f:
        json.dump(cfg, f, indent=2)
        f.write("\n")
    md = None
    if report:
        md = report_lib.to_markdown(report_lib.load_report(report))
    with open(paths["card"], "w", encoding="utf-8") as f:
        f.write(_card(config, cfg, md, report or ""))
    return paths


def load_folder(path: str | os.PathLike) -> tuple[dict, dict, int | None]:
    """``(encoder_params, config, step)`` of a folder from :func:`write_folder`, like
    ``checkpointing.load_encoder_params``; ``config`` has the ``model`` section. No torch
    needed: the tensors go through the importer's converter and its shape checks."""
    from safetensors.numpy import load_file

    p = os.fspath(path)
    with open(os.path.join(p, CONFIG), encoding="utf-8") as f:
        cfg = json.load(f)
    if cfg.get("format") != FORMAT:
        raise ValueError(f"{os.path.join(p, CONFIG)}: format {cfg.get('format')!r} != {FORMAT!r}")
    model = cfg["model"]
    converted = convert.convert_state_dict(
        load_file(os.path.join(p, WEIGHTS)), prefix="", gru_over=model["gru_over"]
    )
    return converted.params, {"model": dict(model)}, cfg.get("step")
