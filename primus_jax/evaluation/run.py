"""Few-shot evaluation of a (frozen) encoder from a settings block: ``evaluate(config, workdir)``.

Loads the encoder (empty ``checkpoint`` = random init) and the labelled dataset, embeds both
splits once, embeds the class prompts for zero-shot, runs the k-shot trial loop over the
configured methods, measures IMU<->text retrieval on a test split with text, and writes
``fewshot.json``, ``fewshot.md`` and a plot into ``workdir``. See ``docs/evaluation.md``.
"""

from __future__ import annotations

import dataclasses
import json
import time

import jax
import numpy as np
from absl import logging

from primus_jax import paths, rng_streams
from primus_jax.evaluation import evaluators as evaluators_lib
from primus_jax.evaluation import fewshot, labelled, maps, probe, report, retrieval, settings
from primus_jax.models import build


def tau_mm_of(params, checkpoint: str = "", tau_min: float = 0.0) -> float:
    """The multimodal temperature τ_mm the checkpoint's loss used.

    Stored as ``log_tau_mm`` (τ = exp) or ``tau_mm`` (raw τ, clamped at the run's
    ``loss.tau_min``); both are read with ``losses.temperature``, the training loss's own
    accessor. A checkpoint with neither gets the pretraining default 0.1, with a warning.
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
    init_key, _ = rng_streams.root_keys(config.seed)
    params = jax.device_get(build.init_params(model, init_key))
    enc = ImuEncoder(params, {"model": base.model.to_dict()}, batch_size=config.batch_size)
    return enc, float(base.loss.tau_init), "random init"


def _prompt_cache_root(config, data: labelled.LabelledData) -> str | None:
    root = config.get("prompt_cache", "")
    if root == "none":
        return None
    if root:
        return root
    from primus_jax.embed import prompts as prompt_lib

    return prompt_lib.default_cache_root(data.data_dir) if data.data_dir else None


def _prompt_embeddings(config, data: labelled.LabelledData, mm_dim: int):
    """(C, P, D) prompt embeddings with the dataset's text encoder, or None with a reason.

    Read from the prompt cache (``embed/prompts.py``) when they are there: then no torch."""
    encoder = config.text_encoder or data.text_encoder
    if encoder in (None, "", "none") or not data.prompts:
        return None, "no text encoder for this dataset"
    from primus_jax.embed import prompts as prompt_lib

    flat = [p for ps in data.prompts for p in ps]
    try:
        emb, stats = prompt_lib.embed_prompts(
            flat,
            encoder=encoder,
            model_dir=config.text_encoder_dir or None,
            cache_root=_prompt_cache_root(config, data),
        )
    except ImportError as e:  # the [torch] extra is missing and the prompts are not cached
        return None, f"text encoder unavailable ({e})"
    except Exception as e:
        return None, f"could not embed prompts with {encoder}: {e}"
    logging.info("eval: %d zero-shot prompts with %s: %s", len(flat), encoder, stats.describe())
    if emb.shape[1] != mm_dim:
        return None, f"{encoder} is {emb.shape[1]}-d but the encoder's mmcl head is {mm_dim}-d"
    out, i = [], 0
    for ps in data.prompts:
        out.append(emb[i : i + len(ps)])
        i += len(ps)
    return out, None


def _retrieval(data: labelled.LabelledData, test_emb: dict, mm_dim: int):
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


def encoder_settings(encoder) -> dict:
    """The model settings (keys of ``base_config().model``) of an ``ImuEncoder``'s network."""
    from primus_jax.config import base_config

    keys = set(base_config().model) - {"compute_dtype"}
    return {k: getattr(encoder.model, k) for k in sorted(keys)}


def _evaluators(
    plan: settings.Plan,
    have_prompts: bool,
    zeroshot: bool,
    tau_mm: float,
    encoder=None,
    embedding: str = "mmcl",
) -> dict:
    """Name -> plug-in: embedding methods in the given order, then ``zeroshot`` (added when
    prompts exist), then window methods. Prompt methods are dropped without prompts. Window
    methods train the evaluated encoder's architecture with a head on ``embedding``;
    ``finetune`` starts from the evaluated encoder's parameters."""
    known = evaluators_lib.DEFAULT_METHODS
    evs = {n: evaluators_lib.make_evaluator(n, known[n]) for n in plan.methods}
    if not have_prompts:
        evs = {n: e for n, e in evs.items() if not e.needs_prompts}
    elif zeroshot and "zeroshot" not in evs:
        evs["zeroshot"] = evaluators_lib.make_evaluator("zeroshot", known["zeroshot"])
    for n, e in evs.items():
        cfg = e.config
        if isinstance(cfg, probe.LogisticConfig) and cfg.init == "prompts":
            # Start at the reported zero-shot classifier times the encoder's 1/tau_mm.
            evs[n] = dataclasses.replace(e, config=dataclasses.replace(cfg, init_scale=1 / tau_mm))
        elif e.needs_windows:
            steps = plan.standard_training_steps
            cfg = cfg if steps is None else dataclasses.replace(cfg, steps=steps)
            cfg = dataclasses.replace(cfg, head_input=embedding)
            extra = {}
            if encoder is not None:
                extra["model"] = encoder_settings(encoder)
                if cfg.init == "encoder":
                    extra["init_params"] = jax.device_get(encoder.params)
            evs[n] = dataclasses.replace(e, config=cfg, shots=plan.standard_training_shots, **extra)
    return {n: e for n, e in evs.items() if not e.needs_windows} | {
        n: e for n, e in evs.items() if e.needs_windows
    }


def evaluate(config, workdir: str) -> dict:
    """Runs the evaluation a settings block (``configs/fewshot.py``) describes; returns the
    report (also written to ``workdir``)."""
    t0 = time.perf_counter()
    plan = settings.validate(config, evaluators_lib.DEFAULT_METHODS)
    paths.makedirs(workdir)
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
    embed_s = time.perf_counter() - t_embed
    logging.info(
        "eval: embedded %d + %d windows in %.1f s", len(data.train), len(data.test), embed_s
    )
    key = config.embedding
    mm_dim = test_emb["mmcl"].shape[1]
    prompts, why_not = (None, "disabled")
    if config.zeroshot and key == "mmcl":
        prompts, why_not = _prompt_embeddings(config, data, mm_dim)
    if why_not:
        logging.info("eval: no zero-shot (%s)", why_not)
    evaluators = _evaluators(plan, prompts is not None, config.zeroshot, tau_mm, encoder, key)
    windows = any(e.needs_windows for e in evaluators.values())
    t_fit = time.perf_counter()
    results = fewshot.run_fewshot(
        train_emb[key],
        data.train.y,
        test_emb[key],
        data.test.y,
        shots=plan.shots,
        trials=config.trials,
        seed=config.seed,
        methods=evaluators,
        class_prompt_emb=prompts,
        num_classes=data.num_classes,
        class_names=data.class_names,
        train_ids=data.train.ids,
        test_ids=data.test.ids,
        train_windows=data.train.imu if windows else None,
        test_windows=data.test.imu if windows else None,
    )
    fit_s = time.perf_counter() - t_fit
    logging.info(
        "eval: %d shots x %d trials x %d methods fitted in %.1f s (embedding %.1f s)",
        len(plan.shots),
        config.trials,
        len(evaluators),
        fit_s,
        embed_s,
    )
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
    n_map = int(config.get("embedding_map", 0))
    if n_map:
        try:
            t_map = time.perf_counter()
            notes["embedding_map"] = {
                data.name: maps.embedding_map(test_emb[key], data.test.y, n=n_map, seed=config.seed)
            }
            logging.info(
                "eval: t-SNE map of %d test windows in %.1f s",
                min(n_map, len(data.test)),
                time.perf_counter() - t_map,
            )
        except maps.MissingScikitLearn as e:
            logging.warning("%s; no embedding map", e)
    retr = _retrieval(data, test_emb, mm_dim) if config.retrieval else None
    if retr is not None:
        notes["retrieval_test"] = retr
        logging.info("eval: retrieval on %s test: %s", config.data, json.dumps(retr))
    rep = report.make_report(
        {data.name: results},
        run_id=config.run_name or None,
        encoder_checkpoint=config.checkpoint or None,
        embedding_key=key,
        notes=notes,
    )
    written = report.write_report(rep, workdir)
    logging.info("eval: wrote %s", ", ".join(written.values()))
    logging.info("\n%s", report.to_markdown(rep))
    return rep
