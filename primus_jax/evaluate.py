"""Few-shot evaluation of a (frozen) encoder: ``evaluate(config, workdir)``.

    python -m primus_jax.main --config=configs/fewshot.py \
        --config.checkpoint=runs/hapt --config.data=uci_hapt/minilm --workdir=runs/hapt_eval

Steps: load the encoder (an empty ``checkpoint`` = random init: the random-init baseline) ->
load the labelled dataset (TFDS name or ``npz:<path>``) -> embed train and test windows once,
jitted and sharded over the devices, the last partial batch padded and masked -> zero-shot
from class prompts (when the dataset's text encoder is available and matches the encoder's
``mmcl`` width) -> k-shot probes (``primus_jax.evaluation``) and, optionally, Standard
Training -> IMU<->text retrieval on the test split when it carries text -> ``fewshot.json``,
``fewshot.md`` and a plot in ``workdir``.
"""

from __future__ import annotations

import json
import os
import time

import jax
import numpy as np
from absl import logging

from primus_jax.data import labelled
from primus_jax.models import build

EMBEDDINGS = ("mmcl", "emb", "ssl")


def validate(config) -> list[str]:
    """Checks a few-shot config before any work; returns the method list."""
    from primus_jax import evaluation as ev
    from primus_jax.config import ConfigError

    if not config.data:
        raise ConfigError("data", "give a TFDS dataset name or npz:<path>")
    if config.embedding not in EMBEDDINGS:
        raise ConfigError("embedding", f"{config.embedding!r} is not one of {EMBEDDINGS}")
    for key in ("shots", "standard_training_shots"):
        spec = config[key]
        if key == "standard_training_shots" and not spec:
            continue
        try:
            shots = [int(k) for k in spec.split(",")]
        except ValueError:
            raise ConfigError(key, f"{spec!r} is not a comma-separated list of ints") from None
        if min(shots) < 1:
            raise ConfigError(key, f"shots per class must be >= 1, got {spec!r}")
    if config.trials < 1:
        raise ConfigError("trials", f"must be >= 1, got {config.trials}")
    if config.batch_size < 1:
        raise ConfigError("batch_size", f"must be >= 1, got {config.batch_size}")
    methods = [m.strip() for m in config.methods.split(",") if m.strip()]
    known = set(ev.DEFAULT_METHODS) | {"standard_training"}
    unknown = [m for m in methods if m not in known]
    if not methods or unknown:
        raise ConfigError("methods", f"unknown {unknown or methods}; choose from {sorted(known)}")
    return methods


def tau_mm_of(params, checkpoint: str = "", tau_min: float = 0.0) -> float:
    """The multimodal temperature τ_mm the checkpoint's loss used.

    Checkpoints store it as ``log_tau_mm`` (τ = exp, ``loss.temperature=log``) or as
    ``tau_mm`` (raw τ, clamped at the run's ``loss.tau_min``, ``loss.temperature=raw``); both
    are read with ``losses.temperature``, the training loss's own accessor. A checkpoint with
    neither (e.g. a torch import without temperatures) gets the pretraining default 0.1, with a
    warning.
    """
    from primus_jax import losses
    from primus_jax.config import base_config

    key = next((k for k in ("log_tau_mm", "tau_mm") if k in params), None)
    if key is None:
        tau = float(base_config().loss.tau_init)
        logging.warning(
            "eval: %s has no log_tau_mm or tau_mm; logreg_zs uses tau %.3g", checkpoint, tau
        )
        return tau
    raw = {key: np.asarray(params[key], np.float64)}
    tau = float(np.asarray(losses.temperature(raw, "mm", tau_min)))
    if not (np.isfinite(tau) and tau > 0):
        raise ValueError(
            f"{checkpoint}: params[{key!r}] = {float(raw[key])} gives tau_mm = {tau}, "
            "not a positive number"
        )
    return tau


def load_encoder(config):
    """``(ImuEncoder, tau_mm, description)`` from ``config.checkpoint`` or random init.

    Evaluation always embeds with float32 operands, whatever precision the run trained with.
    """
    from primus_jax import checkpointing
    from primus_jax import state as state_lib
    from primus_jax.config import base_config
    from primus_jax.inference import ImuEncoder

    if config.checkpoint:
        params, run_config, step = checkpointing.load_checkpoint_params(config.checkpoint)
        enc = ImuEncoder(params["encoder"], run_config, batch_size=config.batch_size, step=step)
        tau_min = float(((run_config or {}).get("loss") or {}).get("tau_min", 0.0))
        tau = tau_mm_of(params, config.checkpoint, tau_min)
        return enc, tau, f"{config.checkpoint} (step {step})"
    base = base_config()
    base.model.update(config.model.to_dict())
    model = build.encoder_from_config(base.model)
    init_key, _ = state_lib.root_keys(config.seed)
    params = jax.device_get(build.init_params(model, init_key))
    enc = ImuEncoder(params, {"model": base.model.to_dict()}, batch_size=config.batch_size)
    return enc, float(base.loss.tau_init), "random init"


def _prompt_embeddings(config, data: labelled.LabelledData, mm_dim: int):
    """(C, P, D) prompt embeddings with the dataset's text encoder, or None with a reason."""
    encoder = config.text_encoder or data.text_encoder
    if encoder in (None, "", "none") or not data.prompts:
        return None, "no text encoder for this dataset"
    try:
        from primus_jax.embed import embed_texts
    except ImportError as e:  # the [text] extra is missing
        return None, f"text encoder unavailable ({e})"
    try:
        flat = [p for ps in data.prompts for p in ps]
        emb = embed_texts(flat, encoder=encoder, model_dir=config.text_encoder_dir or None)
    except Exception as e:
        return None, f"could not embed prompts with {encoder}: {e}"
    if emb.shape[1] != mm_dim:
        return None, f"{encoder} is {emb.shape[1]}-d but the encoder's mmcl head is {mm_dim}-d"
    out, i = [], 0
    for ps in data.prompts:
        out.append(emb[i : i + len(ps)])
        i += len(ps)
    return out, None


def _retrieval(data: labelled.LabelledData, test_emb: dict, mm_dim: int):
    from primus_jax.evaluation import retrieval

    s = data.test
    if s.text_emb is None or s.has_text is None or not s.has_text.any():
        return None
    if s.text_emb.shape[1] != mm_dim:
        return None
    keep = np.flatnonzero(s.has_text)
    imu, text = test_emb["mmcl"][keep], s.text_emb[keep]
    # Windows often share a sentence, and identical sentences tie exactly: a hit is any window
    # with the same text ("same_text") or, coarser, the same class ("same_label"; the only
    # meaningful level for templated text such as HAPT's, whose template is drawn per window).
    out = {
        "same_text": retrieval.retrieval_metrics(
            imu, text, match="group", groups=np.asarray(s.text)[keep]
        )
    }
    if (s.y[keep] >= 0).all():
        out["same_label"] = retrieval.retrieval_metrics(imu, text, match="group", groups=s.y[keep])
    return out


def evaluate(config, workdir: str) -> dict:
    """Runs the evaluation described by ``configs/fewshot.py``; returns the report."""
    from primus_jax import evaluation as ev

    t0 = time.perf_counter()
    methods = validate(config)
    os.makedirs(workdir, exist_ok=True)
    encoder, tau_mm, desc = load_encoder(config)
    data = labelled.load_labelled(
        config.data,
        data_dir=config.data_dir,
        train_split=config.train_split,
        test_split=config.test_split,
        seed=config.seed,
        prepare=config.prepare,
    )
    t_embed = time.perf_counter()
    train_emb = encoder.embed(data.train.imu)
    test_emb = encoder.embed(data.test.imu)
    logging.info(
        "eval: embedded %d + %d windows in %.1f s",
        len(data.train),
        len(data.test),
        time.perf_counter() - t_embed,
    )
    key = config.embedding
    mm_dim = test_emb["mmcl"].shape[1]
    prompts, why_not = (None, "disabled")
    if config.zeroshot and key == "mmcl":
        prompts, why_not = _prompt_embeddings(config, data, mm_dim)
    if why_not:
        logging.info("eval: no zero-shot (%s)", why_not)
    probe_methods = [m for m in methods if m != "standard_training"]
    if prompts is None:
        probe_methods = [m for m in probe_methods if m not in ("logreg_zs", "zeroshot")]
    elif "zeroshot" not in probe_methods and config.zeroshot:
        probe_methods.append("zeroshot")
    shots = [int(k) for k in config.shots.split(",")]
    method_cfgs = ev.resolve_methods(probe_methods, prompts is not None)
    if "logreg_zs" in method_cfgs:
        # Start the probe at the reported zero-shot classifier times the encoder's 1/tau_mm
        # (run_fewshot computes those class vectors once, for both methods).
        import dataclasses

        method_cfgs["logreg_zs"] = dataclasses.replace(
            method_cfgs["logreg_zs"], init_scale=1.0 / tau_mm
        )
    results = ev.run_fewshot(
        train_emb[key],
        data.train.y,
        test_emb[key],
        data.test.y,
        shots=shots,
        trials=config.trials,
        seed=config.seed,
        methods=method_cfgs,
        class_prompt_emb=prompts,
        num_classes=data.num_classes,
        class_names=data.class_names,
        train_ids=data.train.ids,
        test_ids=data.test.ids,
    )
    if "standard_training" in methods:
        from primus_jax.baselines import supervised

        st_shots = [int(k) for k in (config.standard_training_shots or config.shots).split(",")]
        st = supervised.run_supervised_sweep(
            data.train.imu,
            data.train.y,
            data.test.imu,
            data.test.y,
            shots=st_shots,
            trials=config.trials,
            seed=config.seed,
            num_classes=data.num_classes,
            class_names=data.class_names,
            train_ids=data.train.ids,
            test_ids=data.test.ids,
            steps=config.standard_training_steps or None,
        )
        results["methods"]["standard_training"] = st["methods"]["standard_training"]
        results["timing_s"]["standard_training"] = st["timing_s"]["standard_training"]
    notes = {
        "encoder": desc,
        "dataset": config.data,
        "zeroshot": why_not or "yes",
        # True when the paired text was generated from the class labels (HAPT's templates):
        # multimodal pretraining then saw the labels, and zero-shot is not zero-shot.
        "text_from_labels": data.text_from_labels,
        "prompts": data.prompt_source,  # "metadata", "builder" (old build) or "generic"
        "tau_mm": tau_mm,
        "wall_s": round(time.perf_counter() - t0, 1),
    }
    retr = _retrieval(data, test_emb, mm_dim) if config.retrieval else None
    if retr is not None:
        notes["retrieval_test"] = retr
        logging.info("eval: retrieval on %s test: %s", config.data, json.dumps(retr))
    report = ev.make_report(
        {data.name: results},
        run_id=config.run_name or None,
        encoder_checkpoint=config.checkpoint or None,
        embedding_key=key,
        notes=notes,
    )
    paths = ev.write_report(report, workdir)
    logging.info("eval: wrote %s", ", ".join(paths.values()))
    logging.info("\n%s", ev.to_markdown(report))
    return report
