"""Times the jitted train step (or the encoder forward) on whatever backend jax sees.

    python -m primus_jax.benchmarks.train_step --config=configs/primus.py --batch 256
    ... --batch 4096 --dtype bfloat16 | --mode forward | --data host | --data resident

Steady state: a full NN queue, batches already on the device (``--data device``; ``host`` =
the config's input pipeline, ``resident`` = its split on the mesh), ``block_until_ready`` on
the whole state every step; compilation is timed on its own. Prints one JSON line
(``samples_per_s``, ``step_ms_median``, ``compile_s``, ``peak_mem_mb``, ``cpu_model``,
``peak_rss_mb``, ``xla_flags``, ...). How to compare
it with the PyTorch reference step: docs/benchmarks.md.
"""

from __future__ import annotations

import functools
import json
import statistics
import sys
import time

from absl import flags
from ml_collections import config_flags

from primus_jax import cli_errors, contract, host_memory, programs
from primus_jax.benchmarks import measure


def flops_per_sample(config) -> dict:
    """Analytic FLOPs (1 MAC = 2 FLOP), the same model as the PyTorch baseline's."""
    m = config.model
    t, ch = contract.WINDOW_T, m.conv_channels
    l1 = t - 2 * 9
    p1 = l1 // 3
    l2 = p1 - 2 * 4
    p2 = l2 // 3
    l3 = p2 - 2 * 4
    seq = feat = m.pool_bins
    fwd = (
        2 * l1 * ch * 6 * 10
        + 2 * l2 * ch * ch * 5
        + 2 * l3 * ch * ch * 5
        + 2 * seq * 3 * m.hidden * feat
        + 2 * seq * 3 * m.hidden * m.hidden
        + seq * m.hidden * 14
        + 2 * m.hidden * (m.ssl_dim + m.mm_dim)
    )
    return {"forward": fwd}


def _peak_mem_mb(devices) -> float:
    peaks = []
    for d in devices:
        try:
            stats = d.memory_stats() or {}
        except Exception:
            stats = {}
        if "peak_bytes_in_use" in stats:
            peaks.append(stats["peak_bytes_in_use"])
    if peaks:
        return round(max(peaks) / 2**20, 1)
    return measure.peak_rss_mb()  # CPU: the process's peak resident set


def _full_queue(state, key):
    import jax
    import jax.numpy as jnp

    from primus_jax.losses import l2_normalize

    q = state.queue
    k1, k2, k3, k4, k5 = jax.random.split(key, 5)
    rnd = lambda k, a: l2_normalize(jax.random.normal(k, a.shape, a.dtype))
    ids = lambda k, a: jax.random.bits(k, a.shape, a.dtype)
    return state.replace(
        queue=q.replace(
            video=rnd(k1, q.video),
            text=rnd(k2, q.text),
            imu=rnd(k3, q.imu),
            has_video=jnp.ones_like(q.has_video),
            has_text=jnp.ones_like(q.has_text),
            segment_id=ids(k4, q.segment_id),
            recording_id=ids(k5, q.recording_id),
            count=jnp.asarray(q.size, q.count.dtype),
        )
    )


def run(
    config, *, batch, steps, warmup, mode, devices_on_axis=-1, data="device", profile_steps=0
) -> dict:
    """Benchmarks one configuration; returns the result record.

    ``data``: "device" (random batches already on the mesh: the step alone), "host" (the
    config's real input pipeline, e.g. grain over TFDS, feeding global arrays every step) or
    "resident" (the config's training split on the mesh, batched inside the jitted step).
    ``profile_steps`` > 0: that many more steps under ``jax.profiler``, their time split into
    encoder / losses / NN lookup / optimizer / ... (:mod:`primus_jax.benchmarks.profile`).
    """
    import jax
    import numpy as np

    from primus_jax import objectives, optim, sharding
    from primus_jax import state as state_lib
    from primus_jax.models import build

    config = config.copy_and_resolve_references()
    config.data.batch_size = batch
    config.mesh.data = devices_on_axis
    objective = objectives.resolve(config, num_devices=jax.device_count())
    mesh = sharding.make_mesh(config)
    model = build.encoder_from_config(config.model)
    tx = optim.make_optimizer(config)
    create = functools.partial(state_lib.create_train_state, config, model, tx, objective)
    abstract = jax.eval_shape(create)
    st_sharding = sharding.state_shardings(abstract, mesh)
    state = jax.jit(create, out_shardings=st_sharding)()
    state = jax.jit(_full_queue, out_shardings=st_sharding)(state, jax.random.key(1))

    rng = np.random.default_rng(0)
    d = config.model.mm_dim

    def unit(n):
        x = rng.normal(size=(n, d)).astype(np.float32)
        return x / np.linalg.norm(x, axis=1, keepdims=True)

    batches = [
        sharding.global_batch(
            {
                "imu": rng.normal(size=(batch, *contract.SHAPE)).astype(np.float32),
                "video": unit(batch),
                "text": unit(batch),
                "has_video": np.ones(batch, bool),
                "has_text": np.ones(batch, bool),
                "segment_id": rng.integers(0, 2**32, (batch, 2), dtype=np.uint32),
                "recording_id": rng.integers(0, 2**32, (batch, 2), dtype=np.uint32),
            },
            mesh,
        )
        for _ in range(3)
    ]

    if mode == "train":
        train_step = objective.make_train_step(config, model, tx, optim.make_schedule(config))
        if data == "resident":
            from primus_jax import input_pipeline

            resident = input_pipeline.make_resident_data(config, mesh)
            fn = sharding.jit_train_step(train_step, st_sharding, mesh, resident=resident)
            compiled, compile_s, released_mb = programs.compile_released(fn, state, resident.arrays)

            def one(i, st):
                st, _ = compiled(st, resident.arrays)
                return jax.block_until_ready(st)
        else:
            fn = sharding.jit_train_step(train_step, st_sharding, mesh)
            compiled, compile_s, released_mb = programs.compile_released(fn, state, batches[0])
            if data == "host":
                from primus_jax import input_pipeline

                data_iter = input_pipeline.make_train_iterator(config)
                next_batch = lambda i: sharding.global_batch(next(data_iter), mesh)
            else:
                next_batch = lambda i: batches[i % 3]

            def one(i, st):
                st, _ = compiled(st, next_batch(i))
                return jax.block_until_ready(st)

        flops = 3 * 2 * flops_per_sample(config)["forward"] * batch  # fwd+bwd, two views
        flops += 6 * 3 * 2 * batch * batch * d + 2 * batch * config.queue.size * d
    else:
        params = state.params["encoder"]
        fwd = jax.jit(
            sharding.under_mesh(lambda p, x: model.apply({"params": p}, x), mesh),
            in_shardings=(sharding.replicated(mesh), sharding.batch_sharding(mesh)),
        )
        compiled, compile_s, released_mb = programs.compile_released(fwd, params, batches[0]["imu"])

        def one(i, st):
            jax.block_until_ready(compiled(params, batches[i % 3]["imu"]))
            return st

        flops = flops_per_sample(config)["forward"] * batch

    temporaries = host_memory.keep_step_temporaries(
        compiled, config.train.get("keep_cpu_temporaries", True)
    )
    for i in range(warmup):
        state = one(i, state)
    times = []
    for i in range(steps):
        t0 = time.perf_counter()
        state = one(i, state)
        times.append(time.perf_counter() - t0)
    med = statistics.median(times)
    devs = mesh.devices.ravel().tolist()
    profiled = {}
    if profile_steps:
        from primus_jax.benchmarks import profile

        box = [state]

        def again():
            box[0] = one(0, box[0])

        profiled = {"profile": profile.shares(compiled, again, profile_steps)}
    return {
        "mode": mode,
        "batch": batch,
        "samples_per_s": round(batch / med, 1),
        "step_ms_median": round(med * 1e3, 3),
        "step_ms_min": round(min(times) * 1e3, 3),
        "step_ms_max": round(max(times) * 1e3, 3),
        "compile_s": round(compile_s, 2),
        "compiler_heap_released_mb": released_mb,
        "peak_mem_mb": _peak_mem_mb(devs),
        "backend": jax.default_backend(),
        "devices": len(devs),
        "device_kind": devs[0].device_kind,
        "compute_dtype": config.model.compute_dtype,
        "data": data if mode == "train" else "device",
        "queue_size": config.queue.size,
        "cpu_temporaries": temporaries,
        "gflop_per_step": round(flops / 1e9, 3),
        "gflop_per_s": round(flops / med / 1e9, 2),
        "steps": steps,
        "warmup": warmup,
        "jax": jax.__version__,
        **measure.machine_fields(),
        **profiled,
    }


def main(argv):
    del argv
    config = _CONFIG.value
    if config.train.get("keep_cpu_temporaries", True):
        host_memory.run_cpu_programs_inline()  # as primus_jax.main does, before jax starts
    if _DTYPE.value:
        config.model.compute_dtype = _DTYPE.value
    batch = _BATCH.value or config.data.batch_size
    if _QUEUE.value:
        config.queue.size = _QUEUE.value
    print(f"[bench] {_MODE.value} step, batch {batch}, {_STEPS.value} timed steps", file=sys.stderr)
    result = run(
        config,
        batch=batch,
        steps=_STEPS.value,
        warmup=_WARMUP.value,
        mode=_MODE.value,
        devices_on_axis=_DEVICES.value,
        data=_DATA.value,
        profile_steps=_PROFILE.value,
    )
    print(json.dumps(result), flush=True)


def _define_flags():
    """Flags only when run as a program, so other tools can import :func:`run`."""
    global _CONFIG, _BATCH, _STEPS, _WARMUP, _MODE, _DTYPE, _DEVICES, _DATA, _PROFILE, _QUEUE
    _CONFIG = config_flags.DEFINE_config_file("config", "configs/primus.py", "Config file.")
    _BATCH = flags.DEFINE_integer("batch", None, "Global batch (default: the config's).")
    _STEPS = flags.DEFINE_integer("steps", 20, "Timed steps.")
    _WARMUP = flags.DEFINE_integer("warmup", 3, "Untimed steps after compilation.")
    _MODE = flags.DEFINE_enum("mode", "train", ["train", "forward"], "Full step or inference.")
    _DTYPE = flags.DEFINE_enum(
        "dtype", None, ["float32", "bfloat16"], "Override model.compute_dtype."
    )
    _PROFILE = flags.DEFINE_integer(
        "profile_steps", 0, "Extra steps under jax.profiler: time shares by part (0: none)."
    )
    _QUEUE = flags.DEFINE_integer("queue", None, "NN queue size (default: the config's).")
    _DEVICES = flags.DEFINE_integer("devices", -1, "Devices on the data axis (-1: all).")
    _DATA = flags.DEFINE_enum(
        "data",
        "device",
        ["device", "host", "resident"],
        "device: batches pre-placed on the mesh (the step alone); host: the config's input "
        "pipeline every step; resident: the config's split on the mesh, batched in the step.",
    )


if __name__ == "__main__":
    _define_flags()
    cli_errors.run(main)
