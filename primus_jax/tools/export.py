"""Serialized StableHLO export of the encoder (``jax.export``), with size and CPU latency.

    python -m primus_jax.tools.export --checkpoint runs/primus --output primus.stablehlo \\
        [--batch_size 0] [--platforms cpu,cuda,tpu] [--runs 30] [--tflite primus.tflite]

Writes the serialized ``jax.export.Exported`` (StableHLO, weights baked in) and a ``.json``
description beside it, checks it against ``PrimusEncoder.apply`` and prints its size and the
CPU latency per window. The batch dimension is symbolic unless ``--batch_size N``; lowered for
CPU, CUDA and TPU. ``--tflite`` (optional TensorFlow) converts a fixed-batch CPU export.
``--format safetensors`` writes shareable weights instead (``tools/safetensors_export.py``).
Using the artifact, and the TFLite caveats: ``docs/interop.md``.
"""

from __future__ import annotations

import json
import os
import statistics
import sys
import tempfile
import time
from collections.abc import Mapping, Sequence

import numpy as np
from absl import app, flags

from primus_jax import cli_errors, contract

DEFAULT_PLATFORMS = ("cpu", "cuda", "tpu")
BENCH_BATCHES = (1, 64)
TFLITE_INSTALL = "pip install tensorflow-cpu==2.21.0 (about 1.4 GB)"


def export_encoder(
    params: Mapping,
    config: Mapping | None = None,
    *,
    batch_size: int | None = None,
    platforms: Sequence[str] = DEFAULT_PLATFORMS,
):
    """Exports the float32 encoder forward pass with ``params`` baked in.

    Args:
      params: the encoder's linen ``params``.
      config: the run's config dict (for ``model.gru_over``).
      batch_size: a fixed batch size, or ``None`` for a symbolic batch dimension ``b``.
      platforms: lowering platforms (``"cpu"``, ``"cuda"``, ``"rocm"``, ``"tpu"``).

    Returns:
      A ``jax.export.Exported``: ``(b, 250, 6) float32 -> {"emb", "ssl", "mmcl"}: (b, D)``.
    """
    import jax
    import jax.numpy as jnp

    from primus_jax.models import build

    model = build.encoder_from_params(params, (config or {}).get("model"))
    consts = jax.tree.map(lambda a: jnp.asarray(a, jnp.float32), params)

    def forward(x):
        return model.apply({"params": consts}, x)

    if batch_size is None:
        (b,) = jax.export.symbolic_shape("b")
    else:
        if batch_size <= 0:
            raise ValueError(f"batch_size must be positive or None, got {batch_size}")
        b = batch_size
    spec = jax.ShapeDtypeStruct((b, *contract.SHAPE), jnp.float32)
    return jax.export.export(jax.jit(forward), platforms=tuple(platforms))(spec)


def serialize(exported) -> bytes:
    """``exported.serialize()`` with a clear message when ``flatbuffers`` is missing."""
    try:
        return bytes(exported.serialize())
    except ImportError as e:
        raise ImportError(
            f"{e}. jax.export serialization needs the 'flatbuffers' package: "
            "pip install flatbuffers"
        ) from None


def load(path: str | os.PathLike):
    """Deserializes an exported encoder written by :func:`save`."""
    import jax

    with open(path, "rb") as f:
        return jax.export.deserialize(bytearray(f.read()))


def save(exported, path: str | os.PathLike, metadata: Mapping | None = None) -> int:
    """Writes the serialized artifact and a ``<path>.json`` description; returns its size."""
    import jax

    blob = serialize(exported)
    with open(path, "wb") as f:
        f.write(blob)
    (in_aval,) = exported.in_avals
    outs = jax.tree.unflatten(exported.out_tree, exported.out_avals)
    desc = {
        "format": "jax.export.Exported, serialized (StableHLO); load with "
        "jax.export.deserialize(bytes).call(x)",
        "jax_version": jax.__version__,
        "calling_convention_version": exported.calling_convention_version,
        "platforms": list(exported.platforms),
        "input": {
            "shape": [str(d) for d in in_aval.shape],
            "dtype": str(in_aval.dtype),
            "layout": "channels_last (batch, samples, channels)",
            "channels": contract.DESCRIPTION,
            "rate_hz": contract.RATE_HZ,
        },
        "outputs": {k: [str(d) for d in v.shape] for k, v in outs.items()},
        "bytes": len(blob),
        **dict(metadata or {}),
    }
    with open(f"{os.fspath(path)}.json", "w") as f:
        json.dump(desc, f, indent=2)
    return len(blob)


def latency(exported, batch: int, *, device=None, runs: int = 30, warmup: int = 3) -> dict:
    """Median wall time of ``exported.call`` at ``batch`` windows on ``device`` (default: the
    first CPU device; the accelerator check passes its own).

    Returns:
      ``{"batch", "median_ms", "per_window_ms", "runs"}``.
    """
    import jax

    device = device if device is not None else jax.local_devices(backend="cpu")[0]
    x = np.random.default_rng(0).normal(size=(batch, *contract.SHAPE)).astype(np.float32)
    x[..., 2] += 9.8
    with jax.default_device(device):
        fn = jax.jit(exported.call)
        xd = jax.device_put(x, device)
        for _ in range(warmup):
            jax.block_until_ready(fn(xd))
        times = []
        for _ in range(runs):
            t0 = time.perf_counter()
            jax.block_until_ready(fn(xd))
            times.append(time.perf_counter() - t0)
    med = statistics.median(times) * 1e3
    return {"batch": batch, "median_ms": med, "per_window_ms": med / batch, "runs": runs}


def max_abs_diff(exported, params, config, x: np.ndarray) -> dict:
    """Largest |exported - PrimusEncoder.apply| per output on ``x`` (CPU)."""
    import jax

    from primus_jax.models import build

    model = build.encoder_from_params(params, (config or {}).get("model"))
    with jax.default_device(jax.local_devices(backend="cpu")[0]):
        got = exported.call(x)
        want = model.apply({"params": params}, x)
        return {k: float(np.max(np.abs(np.asarray(got[k]) - np.asarray(want[k])))) for k in want}


def to_tflite(exported) -> bytes:
    """Converts a fixed-batch export with a CPU lowering to a TFLite flatbuffer.

    Args:
      exported: from :func:`export_encoder` with an integer ``batch_size`` and ``"cpu"`` among
        its platforms.

    Returns:
      The ``.tflite`` bytes: signature ``embed``, input ``imu`` ``(B, 250, 6)`` float32,
      outputs ``emb``, ``ssl``, ``mmcl``.

    Raises:
      ImportError: TensorFlow is not installed.
      ValueError: the export has a symbolic batch or no CPU lowering.
    """
    try:
        import tensorflow as tf
        from jax.experimental import jax2tf
    except ImportError as e:
        raise ImportError(f"TFLite export needs TensorFlow: {TFLITE_INSTALL} ({e})") from None
    (aval,) = exported.in_avals
    if not all(isinstance(d, int) for d in aval.shape):
        raise ValueError(
            "TFLite needs a fixed batch size (--batch_size N): a symbolic batch lowers to "
            "dynamic gathers that the TFLite converter rejects"
        )
    if "cpu" not in exported.platforms:
        raise ValueError(f"TFLite needs a CPU lowering; the export has {exported.platforms}")
    fn = jax2tf.convert(exported.call, native_serialization_platforms=("cpu",), with_gradient=False)
    module = tf.Module()
    module.embed = tf.function(
        lambda imu: dict(fn(imu)),
        input_signature=[tf.TensorSpec(tuple(aval.shape), tf.float32, name="imu")],
        autograph=False,
    )
    # Via a SavedModel so the flatbuffer keeps a named signature (from_concrete_functions
    # drops it and the outputs become Identity_N).
    with tempfile.TemporaryDirectory() as d:
        tf.saved_model.save(module, d, signatures={"embed": module.embed.get_concrete_function()})
        converter = tf.lite.TFLiteConverter.from_saved_model(d, signature_keys=["embed"])
        converter.target_spec.supported_ops = [tf.lite.OpsSet.TFLITE_BUILTINS]
        return bytes(converter.convert())


def check_tflite(blob: bytes, exported, *, runs: int = 30) -> dict:
    """Runs a TFLite model against ``exported`` on random windows; returns diffs and latency.

    Returns:
      ``{"max_abs_diff": {key: float}, "median_ms": float, "per_window_ms": float}``.
    """
    import tensorflow as tf

    (aval,) = exported.in_avals
    b = int(aval.shape[0])
    x = np.random.default_rng(2).normal(size=(b, *contract.SHAPE)).astype(np.float32)
    x[..., 2] += 9.8
    runner = tf.lite.Interpreter(model_content=blob).get_signature_runner("embed")
    got = runner(imu=x)
    want = exported.call(x)
    diffs = {k: float(np.max(np.abs(got[k] - np.asarray(want[k])))) for k in want}
    times = []
    for _ in range(runs):
        t0 = time.perf_counter()
        runner(imu=x)
        times.append(time.perf_counter() - t0)
    med = statistics.median(times) * 1e3
    return {"max_abs_diff": diffs, "median_ms": med, "per_window_ms": med / b}


_FLAGS = ("checkpoint", "output", "batch_size", "platforms", "runs", "no_benchmark", "tflite")
FORMATS = ("stablehlo", "safetensors")


def define_flags(fv: flags.FlagValues = flags.FLAGS) -> None:
    """Defines the tool's flags on ``fv`` (the global flags when run as a program)."""
    flags.DEFINE_string("checkpoint", None, "workdir, checkpoints/ or a step dir", flag_values=fv)
    flags.DEFINE_string("output", None, "artifact path, e.g. primus.stablehlo", flag_values=fv)
    flags.DEFINE_integer("batch_size", 0, "fixed batch; 0 = symbolic", flag_values=fv)
    flags.DEFINE_list("platforms", list(DEFAULT_PLATFORMS), "comma separated", flag_values=fv)
    flags.DEFINE_integer("runs", 30, "timed runs per batch size", flag_values=fv)
    flags.DEFINE_bool("no_benchmark", False, "skip the latency measurement", flag_values=fv)
    flags.DEFINE_string(
        "tflite",
        None,
        f"also write a TFLite model (fixed batch: --batch_size or 1; {TFLITE_INSTALL})",
        flag_values=fv,
    )
    flags.DEFINE_enum(
        "format",
        "stablehlo",
        list(FORMATS),
        "stablehlo: the compiled program; safetensors: a folder of shareable weights, "
        "config.json and a model card (tools/safetensors_export.py)",
        flag_values=fv,
    )
    flags.DEFINE_string(
        "report",
        None,
        "safetensors: the fewshot.json for the model card (default: <workdir>/fewshot.json)",
        flag_values=fv,
    )
    flags.mark_flags_as_required(["checkpoint", "output"], flag_values=fv)


def main(argv: Sequence[str], fv: flags.FlagValues = flags.FLAGS) -> int:
    """Exports ``--checkpoint`` to ``--output`` (see the module docstring); the exit status."""
    if len(argv) > 1:
        raise app.UsageError(f"unexpected arguments: {list(argv[1:])}")
    if fv["format"].value == "safetensors":
        return run_safetensors(fv["checkpoint"].value, fv["output"].value, fv["report"].value)
    return run(**{name: fv[name].value for name in _FLAGS})


def run_safetensors(checkpoint: str, output: str, report: str | None = None) -> int:
    """Writes the shareable-weights folder and checks that it loads back to the same encoder."""
    from primus_jax import checkpointing
    from primus_jax.tools import safetensors_export as st

    params, config, step = checkpointing.load_encoder_params(checkpoint)
    report = st._find_report(checkpoint, report)
    paths = st.write_folder(
        params, config, output, step=step, checkpoint=os.path.abspath(checkpoint), report=report
    )
    back, _, _ = st.load_folder(output)
    x = np.random.default_rng(1).normal(size=(3, *contract.SHAPE)).astype(np.float32)
    x[..., 2] += 9.8
    from primus_jax.models import build

    model = build.encoder_from_params(params, (config or {}).get("model"))
    a, b = model.apply({"params": params}, x), model.apply({"params": back}, x)
    diff = max(float(np.max(np.abs(np.asarray(a[k]) - np.asarray(b[k])))) for k in a)
    size = os.path.getsize(paths["weights"])
    print(
        f"exported step {step} of {checkpoint} -> {output}/: {size / 2**20:.2f} MiB safetensors, "
        f"config.json, README.md (evaluation: {report or 'no few-shot report found'}); "
        f"reloaded max |diff| {diff:.1e}"
    )
    if diff != 0.0:
        print("error: the safetensors folder does not reload to the same encoder", file=sys.stderr)
        return 1
    return 0


def run(
    checkpoint: str,
    output: str,
    *,
    batch_size: int = 0,
    platforms: Sequence[str] | str = DEFAULT_PLATFORMS,
    runs: int = 30,
    no_benchmark: bool = False,
    tflite: str | None = None,
) -> int:
    """Exports, checks and benchmarks a checkpoint's encoder; returns the exit status."""
    from primus_jax import checkpointing

    params, config, step = checkpointing.load_encoder_params(checkpoint)
    fixed = batch_size or None
    t0 = time.perf_counter()
    if isinstance(platforms, str):
        platforms = platforms.split(",")
    platforms = tuple(p.strip() for p in platforms if p.strip())
    exp = export_encoder(params, config, batch_size=fixed, platforms=platforms)
    out_dir = os.path.dirname(os.path.abspath(output))
    os.makedirs(out_dir, exist_ok=True)
    meta = {"checkpoint": os.path.abspath(checkpoint), "step": step}
    size = save(exp, output, meta)
    print(
        f"exported step {step} of {checkpoint} -> {output}: "
        f"{size / 2**20:.2f} MiB ({size:,} bytes), batch "
        f"{'symbolic' if fixed is None else fixed}, platforms {','.join(platforms)}, "
        f"{time.perf_counter() - t0:.1f} s"
    )
    reloaded = load(output)
    check_b = fixed or 3
    x = np.random.default_rng(1).normal(size=(check_b, *contract.SHAPE)).astype(np.float32)
    x[..., 2] += 9.8
    diffs = max_abs_diff(reloaded, params, config, x)
    shown = ", ".join(f"{k} {v:.2e}" for k, v in diffs.items())
    print(f"max |exported - PrimusEncoder.apply|: {shown}")
    if max(diffs.values()) > 1e-5:
        print("error: the exported model does not match the JAX model", file=sys.stderr)
        return 1
    if tflite:
        rc = _write_tflite(tflite, batch_size or 1, params, config, step, runs)
        if rc:
            return rc
    if not no_benchmark:
        if "cpu" not in reloaded.platforms:
            print("no CPU lowering in the artifact: latency not measured")
            return 0
        for b in BENCH_BATCHES if fixed is None else (fixed,):
            r = latency(reloaded, b, runs=runs)
            print(
                f"CPU latency, batch {b:3d}: median {r['median_ms']:8.2f} ms per call, "
                f"{r['per_window_ms']:7.3f} ms per window ({r['runs']} runs)"
            )
    return 0


def _write_tflite(path: str, batch: int, params, config, step, runs: int) -> int:
    exp = export_encoder(params, config, batch_size=batch, platforms=("cpu",))
    try:
        blob = to_tflite(exp)
    except ImportError as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    with open(path, "wb") as f:
        f.write(blob)
    r = check_tflite(blob, exp, runs=runs)
    shown = ", ".join(f"{k} {v:.2e}" for k, v in r["max_abs_diff"].items())
    print(
        f"TFLite (step {step}, batch {batch}) -> {path}: {len(blob) / 2**20:.2f} MiB; "
        f"max |tflite - exported|: {shown}; median {r['median_ms']:.2f} ms per call, "
        f"{r['per_window_ms']:.3f} ms per window"
    )
    if max(r["max_abs_diff"].values()) > 1e-5:
        print("error: the TFLite model does not match the JAX model", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    define_flags()
    cli_errors.run(main)
