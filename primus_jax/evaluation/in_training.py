"""Few-shot probes of the encoder while it pretrains, and the closing summary of a run.

``train(config, workdir)`` is what ``python -m primus_jax.main`` runs for pretraining: it builds
the ``evaluate`` hook of ``config.eval`` (None when ``eval.methods`` is empty), runs
``train.train_and_evaluate`` with it, and ends the log with the last probe's table, the paths
written and the next commands. The hook probes the in-memory parameters (no reload) with the
trial loop of ``fewshot.run_fewshot``; defaults not set in ``config.eval`` are those of
``settings.settings()``.

Several processes: process 0 loads the labelled data first (building a missing TFDS dataset),
then the others (a bad dataset stops process 0 with its error before training, the others at
the barrier's timeout). Only process 0 embeds and fits, on its local devices (the parameters
are replicated, so it holds them all); the others wait at a coordination-service barrier, not
a device collective, so no collective is left unmatched and gloo's 30 s timeout never applies.
"""

from __future__ import annotations

import time

import jax
import numpy as np
from absl import logging

from primus_jax import distributed, paths
from primus_jax.config import ConfigError
from primus_jax.evaluation import evaluators as evaluators_lib
from primus_jax.evaluation import fewshot, labelled, report, settings

REPORT_DIR = "fewshot"  # <workdir>/fewshot/fewshot.{json,md}: the last probe's report


def settings_of(config):
    """The few-shot settings block ``config.eval`` describes, or None when it is off."""
    e = config.get("eval")
    if e is None or not settings._items(e.methods):
        return None
    s = settings.settings()
    s.seed = config.seed
    s.data = e.data or (config.data.name if config.data.source == "tfds" else "")
    s.data_dir = config.data.data_dir
    s.prepare = config.data.prepare
    s.methods = tuple(e.methods)
    for key in ("shots", "trials", "train_split", "test_split", "embedding"):
        if e[key]:
            s[key] = e[key]
    s.zeroshot = s.retrieval = False  # probes only: no text encoder during training
    s.embedding_map = 0
    return s


def _validate(s) -> settings.Plan:
    if not s.data:
        raise ConfigError("eval.data", 'give a labelled dataset ("uci_hapt/minilm", npz:<path>)')
    try:
        plan = settings.validate(s, evaluators_lib.DEFAULT_METHODS)
    except ConfigError as e:
        raise ConfigError(f"eval.{e.key}", str(e).split(": ", 1)[1]) from None
    bad = [m for m in plan.methods if _needs(m)]
    if bad:
        raise ConfigError("eval.methods", f"{bad} need prompts or train encoders; use probes")
    return plan


def _needs(method: str) -> bool:
    ev = evaluators_lib.make_evaluator(method, evaluators_lib.DEFAULT_METHODS[method])
    return ev.needs_prompts or ev.needs_windows


def host_params(params):
    """Numpy copy of replicated parameters from this process's first device."""
    return jax.tree.map(lambda a: np.asarray(a.addressable_data(0)), params)


def _load(s) -> labelled.LabelledData:
    """The labelled splits on every process; a missing TFDS dataset is built by process 0 only
    (one shared data_dir), the others wait for it at a barrier."""
    kw = dict(data_dir=s.data_dir, train_split=s.train_split, test_split=s.test_split, seed=s.seed)
    if jax.process_count() == 1:
        return labelled.load_labelled(s.data, prepare=s.prepare, **kw)
    first = (
        labelled.load_labelled(s.data, prepare=s.prepare, **kw)
        if jax.process_index() == 0
        else None
    )
    distributed.wait_for_all_processes("eval_data_prepared")
    return first if first is not None else labelled.load_labelled(s.data, prepare=False, **kw)


class Probe:
    """The ``evaluate`` hook: ``probe(step, state, workdir) -> {"<method>_k<k>": accuracy}``."""

    def __init__(self, config):
        self.config = config
        self.settings = settings_of(config)
        self.plan = _validate(self.settings)
        self.data = _load(self.settings)
        s = self.settings
        self.last = None  # (step, run_fewshot results, wall_s) of the latest probe
        logging.info(
            "eval: %s %s, k=%s x %d trials on %s (%d pool / %d test windows)",
            ",".join(self.plan.methods),
            f"every {config.eval.every} steps and at the end"
            if config.eval.every
            else "at the end",
            list(self.plan.shots),
            s.trials,
            s.data,
            len(self.data.train),
            len(self.data.test),
        )

    def results(self, params) -> dict:
        """``run_fewshot`` results of the encoder ``params`` (host numpy) on the dataset."""
        from primus_jax.inference import ImuEncoder

        s, d = self.settings, self.data
        enc = ImuEncoder(params, {"model": self.config.model.to_dict()}, batch_size=s.batch_size)
        key = s.embedding
        return fewshot.run_fewshot(
            enc.embed(d.train.imu)[key],
            d.train.y,
            enc.embed(d.test.imu)[key],
            d.test.y,
            shots=self.plan.shots,
            trials=s.trials,
            seed=s.seed,
            methods=self.plan.methods,
            num_classes=d.num_classes,
            class_names=d.class_names,
            train_ids=d.train.ids,
            test_ids=d.test.ids,
        )

    def __call__(self, step, state, workdir) -> dict:
        scalars, accuracies = {}, {}
        if jax.process_index() == 0:
            t0 = time.perf_counter()
            res = self.results(host_params(state.params["encoder"]))
            wall = time.perf_counter() - t0
            self.last = (int(step), res, wall)
            for name, m in res["methods"].items():
                for k, entry in m["results"].items():
                    scalars[f"{name}_k{k}"] = accuracies[f"{name}_k{k}"] = entry["accuracy"]["mean"]
                    scalars[f"{name}_k{k}_macro_f1"] = entry["macro_f1"]["mean"]
            scalars["wall_s"] = wall
            logging.info(
                "eval step %d: %s (%.1f s)",
                step,
                " ".join(f"{k}={v:.3f}" for k, v in accuracies.items()),
                wall,
            )
        distributed.wait_for_all_processes("in_training_eval")
        return scalars

    def write_report(self, workdir) -> dict[str, str]:
        """The latest probe as ``<workdir>/fewshot/fewshot.{json,md}``; {} before any probe."""
        if self.last is None:
            return {}
        step, res, wall = self.last
        rep = report.make_report(
            {self.data.name: res},
            run_id=f"in-training probe, step {step}",
            encoder_checkpoint=str(workdir),
            embedding_key=self.settings.embedding,
            notes={"encoder": f"{workdir} (step {step}, in memory)", "wall_s": round(wall, 1)},
        )
        self.report = rep
        return report.write_report(rep, paths.path(workdir) / REPORT_DIR, plots=False)


def make_hook(config) -> Probe | None:
    """The ``evaluate`` hook of ``config.eval``; None when it is off (``eval.methods`` empty)."""
    return Probe(config) if settings_of(config) is not None else None


def closing_lines(config, workdir, probe: Probe | None, written: dict) -> list[str]:
    """What the run wrote and what to run next, as log lines."""
    wd = str(workdir)
    data = probe.settings.data if probe is not None else (config.data.name or "uci_hapt/minilm")
    lines = ["wrote:"]
    for what, rel in (
        ("checkpoints", "checkpoints/"),
        ("metrics (JSON lines)", "metrics.jsonl"),
        ("TensorBoard", "tensorboard/"),
        ("config", "config.json"),
        ("summary", "run_summary.json"),
    ):
        lines.append(f"  {what:<24} {wd}/{rel}")
    for kind, path in written.items():
        lines.append(f"  {'few-shot probe ' + kind:<24} {path}")
    lines += [
        "next:",
        "  # full few-shot evaluation (all k, logreg/ridge, zero-shot, retrieval):",
        f"  python -m primus_jax.main --config=configs/fewshot.py --config.checkpoint={wd} "
        f"--config.data={data} --workdir={wd}_fewshot",
        "  # export the encoder (StableHLO):",
        f"  python -m primus_jax.tools.export --checkpoint={wd} --output={wd}/primus.stablehlo",
        "  # embed your windows (.npz with X: (N, 250, 6)):",
        f"  python -m primus_jax.tools.embed_imu --checkpoint={wd} --input=<windows.npz> "
        f"--output={wd}/embeddings.npz",
    ]
    return lines


def train(config, workdir: str, *, programs=None, step_hook=None):
    """Pretrains with the ``config.eval`` probes, then logs the table, paths and next steps."""
    from primus_jax import train as train_lib

    distributed.maybe_initialize(config)  # before jax.process_count() (idempotent)
    probe = make_hook(config)
    state = train_lib.train_and_evaluate(
        config, workdir, programs=programs, step_hook=step_hook, evaluate=probe
    )
    if jax.process_index() == 0:
        written = {}
        if probe is not None and probe.last is not None:
            written = probe.write_report(workdir)
            logging.info(
                "few-shot probe of the encoder at step %d:\n%s",
                probe.last[0],
                report.to_markdown(probe.report),
            )
        logging.info("%s", "\n".join(closing_lines(config, workdir, probe, written)))
    return state
