"""One command that checks a GPU/TPU host end to end and writes a JSON and a markdown report.

    bash launch/accelerator_check.sh OUT_DIR
    python -m primus_jax.tools.accelerator_check --out_dir=OUT_DIR [--batches=1024,4096] \\
        [--torch_reference=PATH/torch_reference_step.py] [--max_batch=262144]

In order: the device, jax version and memory; the train-step benchmark at each batch in
float32 and bfloat16, the encoder forward, the device-resident input mode and, when torch
with CUDA is importable and ``--torch_reference`` names the PyTorch step script, that step on
the same GPU at the same batches; 20 steps of ``configs/smoke.py`` (the loss must fall), whose
first 3 losses must match a 3-step run of the same code on the host CPU
(``jax.devices("cpu")``) within ``--rtol`` (both under ``highest`` matmul precision, so TF32
or one-pass bf16 dots do not count as a mismatch); a StableHLO export for the platform, timed
there; the largest train-step batch that fits. Needs only jax, flax, optax, orbax, numpy, absl
and ml_collections (the synthetic source; no grain, TFDS, clu or TensorBoard). Every section
is recorded even when another fails; the exit code is 1 if any check failed.
"""

from __future__ import annotations

import importlib.util
import json
import os
import subprocess
import sys
import time
import traceback

import numpy as np
from absl import flags, logging
from ml_collections import config_flags

from primus_jax import cli_errors, contract

_OUT = flags.DEFINE_string("out_dir", None, "Directory for report.json and report.md.")
_CONFIG = config_flags.DEFINE_config_file(
    "config", "configs/smoke.py", "Config of the training and CPU-agreement checks."
)
_BENCH_CONFIG = config_flags.DEFINE_config_file(
    "bench_config", "configs/primus.py", "Config of the benchmarks (full-size model)."
)
_BATCHES = flags.DEFINE_list("batches", ["1024", "4096"], "Train-step benchmark batches.")
_DTYPES = flags.DEFINE_list("dtypes", ["float32", "bfloat16"], "Train-step benchmark dtypes.")
_STEPS = flags.DEFINE_integer("bench_steps", 10, "Timed steps per benchmark.")
_WARMUP = flags.DEFINE_integer("bench_warmup", 2, "Untimed steps per benchmark.")
_TRAIN_STEPS = flags.DEFINE_integer("train_steps", 20, "Steps of the training check.")
_COMPARE_STEPS = flags.DEFINE_integer("compare_steps", 3, "Steps compared with the CPU.")
_RTOL = flags.DEFINE_float("rtol", 1e-3, "Relative tolerance of the CPU agreement check.")
_MAX_BATCH = flags.DEFINE_integer("max_batch", 262144, "Upper end of the largest-batch search.")
_EXPORT_BATCHES = flags.DEFINE_list("export_batches", ["1", "64"], "Exported-model batches.")
_TORCH = flags.DEFINE_string(
    "torch_reference",
    os.environ.get("PRIMUS_TORCH_REFERENCE", ""),
    "Path of the PyTorch reference step script (run when torch with CUDA is importable).",
)


def device_info() -> dict:
    import jax

    devs = jax.devices()
    d = devs[0]
    try:
        stats = d.memory_stats() or {}
    except Exception:  # CPU: no allocator statistics
        stats = {}
    mem = stats.get("bytes_limit")
    if mem is None and d.platform == "cpu":
        with open("/proc/meminfo") as f:
            mem = int(f.readline().split()[1]) * 1024  # MemTotal
    from primus_jax.benchmarks import measure

    return {
        "platform": d.platform,
        "device_kind": d.device_kind,
        "device_count": len(devs),
        "process_count": jax.process_count(),
        "memory_gb": None if mem is None else round(mem / 1e9, 2),
        "jax": jax.__version__,
        "jaxlib": getattr(jax.lib, "__version__", None) or _version("jaxlib"),
        "cpu_model": measure.cpu_model(),
        "cpu_id": measure.cpu_id(),
        "xla_flags": measure.xla_flags(),
    }


def _version(name):
    from importlib import metadata

    try:
        return metadata.version(name)
    except metadata.PackageNotFoundError:
        return None


def benchmarks(config, batches, dtypes, steps, warmup) -> list[dict]:
    from primus_jax.benchmarks import train_step

    rows = []
    for batch in batches:
        for dtype in dtypes:
            c = config.copy_and_resolve_references()
            c.model.compute_dtype = dtype
            c.queue.size = _queue_for(c.queue.size, batch)
            rows.append(train_step.run(c, batch=batch, steps=steps, warmup=warmup, mode="train"))
    c = config.copy_and_resolve_references()
    rows.append(train_step.run(c, batch=batches[0], steps=steps, warmup=warmup, mode="forward"))
    c.data.synthetic.num_examples = max(c.data.synthetic.num_examples, 4 * batches[0])
    c.queue.size = _queue_for(c.queue.size, batches[0])
    rows.append(
        train_step.run(
            c, batch=batches[0], steps=steps, warmup=warmup, mode="train", data="resident"
        )
    )
    return rows


def torch_step(script: str, batches, steps, warmup) -> dict:
    """The PyTorch step on the same GPU (a child process, so this one never imports torch)."""
    if not script:
        return {"skipped": "no --torch_reference script given"}
    if not os.path.exists(script):
        return {"skipped": f"--torch_reference {script}: no such file"}
    if importlib.util.find_spec("torch") is None:
        return {"skipped": "torch is not importable"}
    probe = subprocess.run(
        [sys.executable, "-c", "import torch; print(torch.cuda.is_available())"],
        capture_output=True,
        text=True,
    )
    if probe.stdout.strip() != "True":
        return {"skipped": "torch has no CUDA device here"}
    from primus_jax.benchmarks import measure

    rows = []
    for batch in batches:
        for bf16 in (False, True):
            cmd = [sys.executable, script, "--batch", str(batch), "--device", "cuda"]
            cmd += ["--nn-lookup", "matmul", "--steps", str(steps), "--warmup", str(warmup)]
            r = measure.run_child(cmd + (["--bf16"] if bf16 else []), timeout=300)
            rows.append(
                {"batch": batch, "bf16": bf16, "returncode": r["returncode"], **(r["record"] or {})}
            )
    return {"rows": rows}


_PROGRAMS: dict = {}  # (config, devices) -> (create, step): a CPU host reuses its program


def train_losses(config, steps: int, devices) -> list[float]:
    """Losses of ``steps`` training steps of ``config`` on ``devices`` (synthetic source)."""
    import jax

    from primus_jax import input_pipeline, sharding

    key = (
        config.to_json_best_effort(sort_keys=True),
        tuple(d.id for d in devices),
        devices[0].platform,
    )
    if key not in _PROGRAMS:
        _PROGRAMS[key] = _programs(config, devices)
    create, step, mesh = _PROGRAMS[key]
    state = create()
    data = input_pipeline.make_train_iterator(config)
    losses = []
    with jax.default_matmul_precision("highest"):
        for _ in range(steps):
            state, metrics = step(state, sharding.global_batch(next(data), mesh))
            losses.append(float(metrics["loss"]))
    return losses


def _programs(config, devices):
    import functools

    import jax

    from primus_jax import objectives, optim, sharding
    from primus_jax import state as state_lib
    from primus_jax.models import build

    mesh = jax.sharding.Mesh(
        np.array(devices), (sharding.DATA_AXIS,), axis_types=(jax.sharding.AxisType.Auto,)
    )
    objective = objectives.resolve(config, num_devices=len(devices))
    model = build.encoder_from_config(config.model)
    tx = optim.make_optimizer(config)
    create = functools.partial(state_lib.create_train_state, config, model, tx, objective)
    st_sharding = sharding.state_shardings(jax.eval_shape(create), mesh)
    step = sharding.jit_train_step(
        objective.make_train_step(config, model, tx, optim.make_schedule(config)),
        st_sharding,
        mesh,
    )
    return jax.jit(create, out_shardings=st_sharding), step, mesh


def training_check(config, steps, compare_steps, rtol) -> dict:
    import jax

    t0 = time.perf_counter()
    acc = train_losses(config, steps, jax.devices()[:1])
    train_s = time.perf_counter() - t0
    cpu = train_losses(config, compare_steps, jax.devices("cpu")[:1])
    # The NN terms join as the queue fills (the loss rises meanwhile): compare the 3 steps
    # after it is full with the last 3.
    full = -(-config.queue.size // config.data.batch_size)
    first = full if steps >= full + 6 else 0
    falls = bool(np.mean(acc[-3:]) < np.mean(acc[first : first + 3]))
    rel = [abs(a - c) / max(abs(c), 1e-12) for a, c in zip(acc[:compare_steps], cpu)]
    return {
        "losses": acc,
        "loss_falls": falls,
        "cpu_losses": cpu,
        "cpu_max_rel_diff": max(rel),
        "rtol": rtol,
        "cpu_agrees": bool(max(rel) <= rtol),
        "train_s": round(train_s, 2),
        "ok": falls and max(rel) <= rtol,
    }


def export_check(config, batches, runs=20) -> dict:
    import jax

    from primus_jax.models import build
    from primus_jax.tools import export

    platform = jax.devices()[0].platform
    model = build.encoder_from_config(config.model)
    x0 = np.zeros((1, *contract.SHAPE), np.float32)
    params = jax.jit(model.init)(jax.random.key(0), x0)["params"]
    exported = export.export_encoder(params, config.to_dict(), platforms=(platform,))
    blob = export.serialize(exported)
    loaded = jax.export.deserialize(bytearray(blob))
    rows = []
    for b in batches:
        r = export.latency(loaded, b, device=jax.devices()[0], runs=runs)
        rows.append(
            {
                "batch": b,
                "median_ms": round(r["median_ms"], 4),
                "per_window_ms": round(r["per_window_ms"], 5),
            }
        )
    x = np.random.default_rng(0).normal(size=(batches[-1], *contract.SHAPE)).astype(np.float32)
    x[..., 2] += 9.81
    want = model.apply({"params": params}, x)
    got = jax.jit(loaded.call)(jax.device_put(x))
    diff = max(float(np.max(np.abs(np.asarray(got[k]) - np.asarray(want[k])))) for k in want)
    return {"platform": platform, "bytes": len(blob), "latency": rows, "max_abs_diff": diff}


def _is_oom(e: Exception) -> bool:
    text = str(e).lower()
    return any(s in text for s in ("resource_exhausted", "out of memory", "oom", "allocat"))


def _queue_for(size: int, batch: int) -> int:
    """The smallest multiple of ``batch`` holding at least ``size`` entries."""
    return batch * -(-size // batch)


def largest_batch(config, start: int, cap: int, known: int | None = None, run=None) -> dict:
    """Doubles the batch until a train step no longer fits (or ``cap``): from ``2 * known``
    when ``known`` (the largest batch benchmarked) is known to fit, else from ``start``."""
    if run is None:
        from primus_jax.benchmarks import train_step

        run = train_step.run
    fits, tried, error = known, [], None
    b = start if known is None else 2 * known
    while b <= cap:
        c = config.copy_and_resolve_references()
        c.queue.size = _queue_for(c.queue.size, b)
        c.data.synthetic.num_examples = max(c.data.synthetic.num_examples, b)
        try:
            r = run(c, batch=b, steps=1, warmup=0, mode="train")
        except Exception as e:
            if not _is_oom(e):
                raise
            error = str(e).splitlines()[0][:300]
            tried.append({"batch": b, "fits": False})
            break
        tried.append({"batch": b, "fits": True, "samples_per_s": r["samples_per_s"]})
        fits = b
        b *= 2
    return {
        "largest_fitting": fits,
        "cap": cap,
        "hit_cap": error is None,
        "tried": tried,
        "error": error,
    }


def _section(report, name, fn, *args):
    t0 = time.perf_counter()
    logging.info("accelerator check: %s", name)
    try:
        report[name] = fn(*args)
    except Exception as e:  # keep going: every section is reported
        report[name] = {"error": f"{type(e).__name__}: {e}"[:2000], "ok": False}
        logging.error("%s failed:\n%s", name, traceback.format_exc())
    report.setdefault("section_s", {})[name] = round(time.perf_counter() - t0, 2)


def to_markdown(r: dict) -> str:
    d = r.get("device", {})
    lines = [
        "# Accelerator check",
        "",
        f"{d.get('device_count')} x {d.get('device_kind')} ({d.get('platform')}), "
        f"{d.get('memory_gb')} GB each, jax {d.get('jax')}, "
        f"host CPU {d.get('cpu_model')} ({d.get('cpu_id') or '?'}).",
        "",
        "| benchmark | batch | dtype | data | samples/s | step ms | compile s | peak mem MB |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for row in r.get("benchmarks", []) if isinstance(r.get("benchmarks"), list) else []:
        lines.append(
            f"| {row['mode']} | {row['batch']} | {row['compute_dtype']} | {row['data']} | "
            f"{row['samples_per_s']} | {row['step_ms_median']} | {row['compile_s']} | "
            f"{row['peak_mem_mb']} |"
        )
    t = r.get("torch", {})
    if t.get("rows"):
        lines += ["", "| PyTorch step | batch | bf16 | samples/s |", "|---|---|---|---|"]
        for row in t["rows"]:
            lines.append(f"| cuda | {row['batch']} | {row['bf16']} | {row.get('samples_per_s')} |")
    else:
        lines += ["", f"PyTorch step: {t.get('skipped', t.get('error'))}."]
    tr = r.get("training", {})
    if "losses" in tr:
        lines += [
            "",
            f"Training ({len(tr['losses'])} steps of the smoke config): loss "
            f"{tr['losses'][0]:.4f} -> {tr['losses'][-1]:.4f}, falls: {tr['loss_falls']}; "
            f"first {len(tr['cpu_losses'])} losses vs the host CPU: max relative difference "
            f"{tr['cpu_max_rel_diff']:.2e} (tolerance {tr['rtol']:g}): "
            f"{'agree' if tr['cpu_agrees'] else 'DISAGREE'}.",
        ]
    else:
        lines += ["", f"Training check failed: {tr.get('error')}"]
    ex = r.get("export", {})
    if "latency" in ex:
        lat = ", ".join(
            f"batch {x['batch']}: {x['median_ms']} ms ({x['per_window_ms']} ms/window)"
            for x in ex["latency"]
        )
        lines += [
            "",
            f"StableHLO export ({ex['platform']}, {ex['bytes']} bytes): {lat}; "
            f"max |exported - apply| {ex['max_abs_diff']:.1e}.",
        ]
    else:
        lines += ["", f"Export failed: {ex.get('error')}"]
    lb = r.get("largest_batch", {})
    if "tried" in lb:
        lines += [
            "",
            f"Largest train-step batch that fits: {lb['largest_fitting']}"
            + (f" (search capped at {lb['cap']})" if lb["hit_cap"] else "")
            + ".",
        ]
    else:
        lines += ["", f"Largest-batch search failed: {lb.get('error')}"]
    lines += [
        "",
        f"Overall: {'OK' if r.get('ok') else 'FAILED'}; sections (s): {r.get('section_s')}.",
    ]
    return "\n".join(lines) + "\n"


def run_check(
    *,
    out_dir,
    config,
    bench_config,
    batches,
    dtypes,
    steps,
    warmup,
    train_steps,
    compare_steps,
    rtol,
    max_batch,
    export_batches,
    torch_script,
) -> dict:
    t0 = time.perf_counter()
    report: dict = {}
    _section(report, "device", device_info)
    _section(report, "benchmarks", benchmarks, bench_config, batches, dtypes, steps, warmup)
    _section(report, "torch", torch_step, torch_script, batches, steps, warmup)
    _section(report, "training", training_check, config, train_steps, compare_steps, rtol)
    _section(report, "export", export_check, bench_config, export_batches)
    ok_rows = report["benchmarks"] if isinstance(report["benchmarks"], list) else []
    known = max((r["batch"] for r in ok_rows if r["mode"] == "train"), default=None)
    _section(report, "largest_batch", largest_batch, bench_config, min(batches), max_batch, known)
    failed = [k for k, v in report.items() if isinstance(v, dict) and v.get("ok") is False]
    report["failed"] = failed
    report["ok"] = not failed
    report["total_s"] = round(time.perf_counter() - t0, 1)
    os.makedirs(out_dir, exist_ok=True)
    with open(os.path.join(out_dir, "report.json"), "w") as f:
        json.dump(report, f, indent=2)
    with open(os.path.join(out_dir, "report.md"), "w") as f:
        f.write(to_markdown(report))
    return report


def main(argv):
    del argv
    if not _OUT.value:
        print("--out_dir: required (where report.json and report.md go)", file=sys.stderr)
        return 2
    report = run_check(
        out_dir=_OUT.value,
        config=_CONFIG.value,
        bench_config=_BENCH_CONFIG.value,
        batches=[int(b) for b in _BATCHES.value],
        dtypes=_DTYPES.value,
        steps=_STEPS.value,
        warmup=_WARMUP.value,
        train_steps=_TRAIN_STEPS.value,
        compare_steps=_COMPARE_STEPS.value,
        rtol=_RTOL.value,
        max_batch=_MAX_BATCH.value,
        export_batches=[int(b) for b in _EXPORT_BATCHES.value],
        torch_script=_TORCH.value,
    )
    print(to_markdown(report))
    print(json.dumps({"ok": report["ok"], "failed": report["failed"], "out_dir": _OUT.value}))
    return 0 if report["ok"] else 1


if __name__ == "__main__":
    cli_errors.run(main)
