"""``train_and_evaluate(config, workdir)``: the pretraining loop shared by the CLI, tests and
notebooks.

Order of events: validate the config (before any compilation) -> optional
``jax.distributed.initialize`` -> mesh -> input iterator -> model/optimizer -> restore the
latest checkpoint in ``workdir`` or initialise -> one jitted step with donated state -> loop
with periodic metrics, checkpoints and SIGTERM handling -> final checkpoint.
"""

from __future__ import annotations

import functools
import json
import time

import jax
from absl import logging

from primus_jax import (
    checkpointing,
    distributed,
    host_memory,
    input_pipeline,
    metric_writer,
    nonfinite,
    objectives,
    optim,
    paths,
    sharding,
)
from primus_jax import state as state_lib
from primus_jax import workdir as workdir_lib
from primus_jax.models import build
from primus_jax.models.encoder import count_params
from primus_jax.programs import ProgramCache


def _compile_step(programs, config, jitted, state, inputs):
    """Compiles the train step ahead of time; with several processes, waits for all of them.

    A process compiles at its own pace, and gloo (multi-process CPU) gives up on a collective
    whose peers are more than 30 s late, so nobody runs the first step before everyone has
    compiled it (:func:`distributed.wait_for_all_processes`).
    """
    compiled = programs.compile("train step", config, jitted, state, inputs)
    distributed.wait_for_all_processes("train_step_compiled")
    return compiled


def _log_nn_setup(config, objective, summary: dict) -> None:
    q = config.queue
    logging.info(
        "nn: queue %d, lookup %s, exclude %s; %d training segments (video %.0f%%, repeated "
        "texts %.0f%%)",
        q.size,
        q.lookup,
        q.exclude,
        summary["num_examples"],
        100 * summary["video_frac"],
        100 * summary["text_duplicate_frac"],
    )
    for message in objective.nn_supervision_warnings(config, summary):
        logging.warning("nn: %s", message)


def train_and_evaluate(config, workdir: str, *, step_hook=None, programs=None, evaluate=None):
    """Pretrains PRIMUS per ``config``, checkpointing into ``workdir``; returns the state.

    Args:
      config: a ``ml_collections.ConfigDict`` from ``configs/``.
      workdir: output directory (checkpoints, metrics, TensorBoard events). A run restarted
        with the same workdir resumes from its latest readable checkpoint. One run at a
        time: the workdir is locked (``primus_jax.workdir``) before anything is written.
      step_hook: optional ``fn(step, state)`` called after every step (tests use it to
        simulate crashes).
      programs: a :class:`~primus_jax.programs.ProgramCache` shared with earlier runs in
        this process (a resume, a sweep, a notebook) to skip recompilation; None = compile.
      evaluate: optional ``fn(step, state, workdir) -> {name: scalar}`` (built from
        ``config.eval`` by ``evaluation.in_training``), called on every process every
        ``config.eval.every`` steps (if > 0) and after the last step; its scalars are
        written as ``eval/<name>``.
    """
    distributed.maybe_initialize(config)
    objective = objectives.resolve(
        config, num_devices=jax.device_count(), process_count=jax.process_count()
    )
    lease = config.train.get("lock_lease_s", 600.0)
    with workdir_lib.hold(
        workdir, lease_s=lease, process_index=jax.process_index(), subdirs=("checkpoints",)
    ):
        return _train(
            config, workdir, objective, step_hook=step_hook, programs=programs, evaluate=evaluate
        )


def _write_eval(evaluate, step, state, workdir, writer) -> None:
    writer.write_scalars(step, {f"eval/{k}": v for k, v in evaluate(step, state, workdir).items()})
    writer.flush()


def _train(config, workdir, objective, *, step_hook, programs, evaluate):
    programs = programs if programs is not None else ProgramCache()
    is_main = jax.process_index() == 0
    workdir = paths.makedirs(workdir)
    if is_main:
        paths.write_text(workdir / "config.json", config.to_json_best_effort(indent=2))

    mesh = sharding.make_mesh(config)
    input_mode, why = input_pipeline.choose_input_mode(config)
    logging.info("data: %s input (%s)", input_mode, why)
    if input_mode == "resident":
        resident = input_pipeline.make_resident_data(config, mesh)
        data_iter = None  # the position is the train state's step
        logging.info(
            "data: %d segments resident on the mesh (%.1f MB per device)",
            resident.num_examples,
            resident.nbytes / 2**20,
        )
    else:
        resident = None
        data_iter = input_pipeline.make_train_iterator(config)
    if is_main and objective.uses_queue(config):
        _log_nn_setup(config, objective, input_pipeline.train_data_summary(config))
    model = build.encoder_from_config(config.model)
    tx = optim.make_optimizer(config)
    schedule = optim.make_schedule(config)
    create = functools.partial(state_lib.create_train_state, config, model, tx, objective)
    abstract = jax.eval_shape(create)
    state_sharding = sharding.state_shardings(abstract, mesh)

    ckpt = checkpointing.Checkpointer(
        workdir / "checkpoints", max_to_keep=config.train.keep_checkpoints
    )
    ckpt_meta = {"config": json.loads(config.to_json_best_effort())}
    target = jax.tree.map(
        lambda a, s: jax.ShapeDtypeStruct(a.shape, a.dtype, sharding=s), abstract, state_sharding
    )
    # The newest readable checkpoint (damaged ones are moved aside, see checkpointing.py).
    restored = ckpt.restore_latest(target, data_iter)
    latest = None if restored is None else restored[1]
    if restored is not None:
        state = restored[0]
    else:
        state = programs.compile("init", config, jax.jit(create, out_shardings=state_sharding))()
    # Finish the restore/init programs before the first step is dispatched.
    state = jax.block_until_ready(state)
    logging.info(
        "model: %s parameters; mesh %s; global batch %d",
        f"{count_params(state.params['encoder']):,}",
        dict(mesh.shape),
        config.data.batch_size,
    )

    on_nonfinite = config.train.get("on_nonfinite", "stop")
    train_step = nonfinite.guard(
        objective.make_train_step(config, model, tx, schedule), on_nonfinite
    )
    jitted = sharding.jit_train_step(train_step, state_sharding, mesh, resident=resident)
    if resident is not None:
        next_input = lambda: resident.arrays
    else:
        next_input = lambda: sharding.global_batch(next(data_iter), mesh)
    writer = metric_writer.MetricWriter(workdir, enabled=is_main, resume_step=latest)
    if is_main:
        writer.write_text("config", "```\n" + str(config) + "\n```")
    watcher = checkpointing.PreemptionWatcher()
    monitor = nonfinite.Monitor(on_nonfinite)

    num_steps = config.train.num_steps
    eval_every = config.eval.every if evaluate is not None and "eval" in config else 0
    start = int(jax.device_get(state.step))
    batch_size = config.data.batch_size
    t_window, steps_window = time.perf_counter(), 0
    t_start = time.perf_counter()
    step = start
    try:
        if start < num_steps:
            first_input = next_input()
            step_fn = _compile_step(programs, config, jitted, state, first_input)
            keep = config.train.get("keep_cpu_temporaries", True)
            logging.info("step temporaries: %s", host_memory.keep_step_temporaries(step_fn, keep))
        for step in range(start + 1, num_steps + 1):
            batch = first_input if step == start + 1 else next_input()
            t0 = time.perf_counter()
            state, metrics = step_fn(state, batch)
            if step == start + 1:
                jax.block_until_ready(state)
                logging.info("first step: %.1f s", time.perf_counter() - t0)
                t_window, steps_window = time.perf_counter(), 0
            else:
                steps_window += 1
            monitor.observe(step, metrics)
            if step_hook is not None:
                step_hook(step, state)

            if step % config.train.log_every == 0 or step == num_steps:
                scalars = monitor.window_scalars()
                elapsed = time.perf_counter() - t_window
                steps_per_s = steps_window / elapsed if steps_window and elapsed > 0 else 0.0
                scalars["steps_per_s"] = steps_per_s
                scalars["samples_per_s"] = steps_per_s * batch_size
                writer.write_scalars(step, {f"train/{k}": v for k, v in scalars.items()})
                writer.flush()
                eta = (num_steps - step) / steps_per_s if steps_per_s else 0.0
                if is_main:
                    metric_writer.log_progress(
                        metric_writer.progress_line(
                            step, num_steps, scalars, steps_per_s, steps_per_s * batch_size, eta
                        )
                    )
                t_window, steps_window = time.perf_counter(), 0

            preempted = watcher.reached(step)
            if step % config.train.checkpoint_every == 0 or preempted:
                monitor.check_all()  # never save the state of a bad step
                ckpt.save(step, state, data_iter, meta=ckpt_meta, force=preempted)
            if eval_every and step % eval_every == 0 and step < num_steps and not preempted:
                _write_eval(evaluate, step, state, workdir, writer)
                t_window, steps_window = time.perf_counter(), 0  # steps/s without the probe
            if preempted:
                logging.warning("stopping at step %d after a preemption notice", step)
                break
        else:
            monitor.check_all()
            if step == num_steps and ckpt.latest_step() != num_steps:
                ckpt.save(num_steps, state, data_iter, meta=ckpt_meta, force=True)
            if evaluate is not None and start < num_steps:  # after the final save
                _write_eval(evaluate, step, state, workdir, writer)
    finally:
        jax.block_until_ready(state)  # never return with a step still in flight
        ckpt.close()
        writer.close()
        watcher.close()
    if is_main:
        summary = {
            "final_step": int(jax.device_get(state.step)),
            "wall_s": round(time.perf_counter() - t_start, 2),
        }
        paths.write_text(workdir / "run_summary.json", json.dumps(summary))
    return state
