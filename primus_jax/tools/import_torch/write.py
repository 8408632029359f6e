"""Writes an imported encoder as a step-0 primus_jax checkpoint.

``<workdir>/checkpoints/0/{state,data,meta}``: a full ``TrainState`` at step 0 (fresh optimizer
state, queue and RNG; the imported encoder; ``log τ`` from the checkpoint's raw ``τ``, else
``config.loss.tau_init``) with the config in ``meta``, so ``primus_jax.load_encoder(workdir)``
evaluates it and ``primus_jax.main --workdir=<workdir>`` fine-tunes it from step 0.
"""

from __future__ import annotations

import json
import math
import os

import numpy as np
from absl import logging

from primus_jax import safe_pickle
from primus_jax.tools.import_torch.convert import (
    CheckpointImportError,
    convert_state_dict,
    extract_state_dict,
    log_temperatures,
)
from primus_jax.tools.import_torch.load import load_torch_file


def _existing_checkpoints(workdir: str) -> list[str]:
    d = os.path.join(workdir, "checkpoints")
    if not os.path.isdir(d):
        return []
    return sorted(n for n in os.listdir(d) if n.isdigit())


def read_checkpoint(
    checkpoint, *, prefix: str | None = None, gru_over: str = "channels", default_dims=None
) -> tuple:
    """``(converted encoder, format info, loader)`` of a PyTorch file, without running code
    from it; every error names the file (``CheckpointImportError`` or an
    ``UnpicklingError`` subclass from :func:`load_torch_file`)."""
    checkpoint = os.fspath(checkpoint)
    obj, loader = load_torch_file(checkpoint)
    try:
        state_dict, info = extract_state_dict(obj)
        conv = convert_state_dict(
            state_dict, prefix=prefix, gru_over=gru_over, default_dims=default_dims
        )
    except CheckpointImportError as e:
        raise CheckpointImportError(f"{checkpoint}: {e}") from None
    return conv, info, loader


def import_checkpoint(
    checkpoint: str | os.PathLike,
    workdir: str | os.PathLike,
    config=None,
    *,
    prefix: str | None = None,
    temperatures: str = "auto",
) -> dict:
    """Converts a PyTorch PRIMUS checkpoint into ``<workdir>/checkpoints/0``.

    Args:
      checkpoint: the Lightning ``.ckpt`` or a ``torch.save``\\ d state_dict.
      workdir: output run directory; must not hold checkpoints yet.
      config: an ``ml_collections.ConfigDict`` (default ``config.base_config()``). Its model
        widths are replaced by those of the checkpoint; the rest (optimizer, queue, loss)
        shapes the fresh training state for fine-tuning.
      prefix: the encoder's key prefix (default: found automatically).
      temperatures: ``"auto"``, ``"checkpoint"`` or ``"config"`` (see
        :func:`log_temperatures`).

    Returns:
      A JSON-able summary (also stored in the checkpoint's ``meta["imported_from"]``).
    """
    import jax

    from primus_jax import checkpointing, objectives, optim
    from primus_jax import config as config_lib
    from primus_jax import state as state_lib
    from primus_jax.models import build

    checkpoint, workdir = os.fspath(checkpoint), os.fspath(workdir)
    existing = _existing_checkpoints(workdir)
    if existing:
        raise FileExistsError(
            f"{workdir} already holds checkpoints {existing}; import into a new workdir "
            "(training would resume from the latest of them, not from the import)"
        )
    if config is None:
        config = config_lib.base_config()
    else:
        config = config.copy_and_resolve_references()

    conv, info, loader = read_checkpoint(
        checkpoint,
        prefix=prefix,
        gru_over=config.model.gru_over,
        default_dims={k: config.model[k] for k in ("hidden", "ssl_dim", "mm_dim")},
    )
    changed = {k: (config.model[k], v) for k, v in conv.dims.items() if config.model[k] != v}
    with config.unlocked():
        for k, v in conv.dims.items():
            config.model[k] = v
    log_taus = log_temperatures(conv.temperatures, temperatures, config.loss.tau_init)
    objective = objectives.resolve(config, num_devices=jax.device_count(), process_count=1)

    model = build.encoder_from_config(config.model)
    tx = optim.make_optimizer(config)
    # Stored in the config's parameterisation: log τ, or τ itself with loss.temperature=raw.
    raw = config.loss.get("temperature", "log") == "raw"
    taus = {
        (k[len("log_") :] if raw else k): np.asarray(math.exp(v) if raw else v, np.float32)
        for k, v in log_taus.items()
    }
    fresh = jax.eval_shape(lambda: state_lib.create_train_state(config, model, tx, objective))
    # Same encoder tree as the model's (guards against drift between KEY_TABLE and the model).
    if jax.tree.structure(conv.params) != jax.tree.structure(fresh.params["encoder"]):
        raise AssertionError("imported encoder tree differs from the model's")

    def with_import(encoder, taus):
        # A fresh state (queue, RNG, step 0, any extra heads of the objective) with the
        # imported encoder and temperatures and a matching fresh optimizer state; XLA drops
        # the unused random initialisation of the encoder.
        fresh = state_lib.create_train_state(config, model, tx, objective)
        params = {**fresh.params, "encoder": encoder, **taus}
        return fresh.replace(params=params, opt_state=tx.init(params))

    state = jax.jit(with_import)(conv.params, taus)

    summary = {
        "path": os.path.abspath(checkpoint),
        "sha256": safe_pickle.sha256_of(checkpoint),
        "loader": loader,
        **info,
        "layout": conv.layout,
        "prefix": conv.prefix,
        "used_keys": len(conv.used_keys),
        "ignored_keys": len(conv.ignored_keys),
        "model_dims": conv.dims,
        "temperatures": {
            k: {
                "tau": math.exp(v),
                "source": "checkpoint"
                if k in conv.temperatures and temperatures != "config"
                else "config",
            }
            for k, v in log_taus.items()
        },
    }
    # No data position is stored: a step-0 checkpoint starts every input pipeline afresh
    # (train.py restores iterators only from later steps), so importing never needs the
    # training data to exist.
    data_iter = None
    os.makedirs(workdir, exist_ok=True)
    ckpt = checkpointing.Checkpointer(
        os.path.join(workdir, "checkpoints"),
        max_to_keep=config.train.keep_checkpoints,
        async_save=False,
    )
    meta = {"config": json.loads(config.to_json_best_effort()), "imported_from": summary}
    try:
        ckpt.save(0, state, data_iter, meta=meta, force=True)
    finally:
        ckpt.close()
    with open(os.path.join(workdir, "config.json"), "w") as f:
        f.write(config.to_json_best_effort(indent=2))

    logging.info(
        "imported %s (%s, %s layout, prefix %r): %d tensors used, %d unrelated keys ignored",
        checkpoint,
        loader,
        conv.layout,
        conv.prefix,
        len(conv.used_keys),
        len(conv.ignored_keys),
    )
    if changed:
        logging.info("model widths from the checkpoint differ from the config: %s", changed)
    summary["config_overrides"] = {f"model.{k}": new for k, (_, new) in changed.items()}
    return summary
