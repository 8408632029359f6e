"""Training input: per-process batches of paired segments, with a checkpointable position.

``make_train_iterator(config)`` returns an iterator of this process's rows of each global
batch (numpy dicts: ``imu``, ``video``, ``text``, ``has_video``, ``has_text``, ``segment_id``,
``recording_id``) that has
``get_state`` / ``set_state`` (or is a grain iterator, checkpointed by grain's own handler).
``make_resident_data(config, mesh)`` instead puts the whole split on the mesh
(``config.data.device_resident``); ``choose_input_mode(config)`` picks between the two
(``config.data.input_mode``).
"""

from __future__ import annotations

import json

import jax
import numpy as np

from primus_jax.data import synthetic
from primus_jax.data.summary import sample_indices, summarize_rows

_SYNTHETIC_CACHE: dict = {}  # the last source built, keyed by its config (summary + iterator)


def _synthetic_source(config):
    key = json.dumps(
        [
            config.data.synthetic.to_dict(),
            config.model.mm_dim,
            config.seed,
            config.data.multimodal_fraction,
        ],
        sort_keys=True,
    )
    if key not in _SYNTHETIC_CACHE:
        _SYNTHETIC_CACHE.clear()
        _SYNTHETIC_CACHE[key] = _build_synthetic_source(config)
    return _SYNTHETIC_CACHE[key]


def _build_synthetic_source(config):
    s = config.data.synthetic
    source = synthetic.SyntheticPairedSource(
        s.num_examples,
        config.model.mm_dim,
        config.seed,
        num_classes=s.num_classes,
        latent_dim=s.latent_dim,
        imu_noise=s.imu_noise,
        emb_noise=s.emb_noise,
        video_fraction=s.video_fraction,
        text_fraction=s.text_fraction,
        windows_per_recording=s.get("windows_per_recording", 1),
    )
    if config.data.multimodal_fraction < 1.0:
        from primus_jax.data.tfds_input import multimodal_keep_mask

        keep = multimodal_keep_mask(len(source), config.data.multimodal_fraction, config.seed)
        source.mask_multimodal(keep)
    return source


def make_train_iterator(config):
    process_index, process_count = jax.process_index(), jax.process_count()
    d = config.data
    if d.source == "synthetic":
        return synthetic.EpochBatchIterator(
            _synthetic_source(config),
            d.batch_size,
            config.seed,
            process_index=process_index,
            process_count=process_count,
        )
    from primus_jax.data import tfds_input

    return tfds_input.make_train_iterator(config, process_index, process_count)


def make_resident_data(config, mesh):
    from primus_jax.data.resident import ResidentData

    if config.data.source == "synthetic":
        src = _synthetic_source(config)
        arrays = src.get_batch(np.arange(len(src)))
    else:
        from primus_jax.data import tfds_input

        arrays = tfds_input.load_train_arrays(config)
    return ResidentData(arrays, config.data.batch_size, config.seed, mesh)


INPUT_MODES = ("host", "resident", "auto")
RESIDENT_MEMORY_FRACTION = 0.25  # "auto": the split may take this share of device memory


def bytes_per_example(config) -> int:
    """Device bytes of one resident example: IMU window, two embeddings, flags and ids."""
    from primus_jax import contract

    imu = int(np.prod(contract.SHAPE)) * 4
    return imu + 2 * config.model.mm_dim * 4 + 2 + 4 * 4


def device_memory_bytes(device=None) -> int:
    """One device's memory limit (an accelerator's allocator limit; on CPU, MemAvailable)."""
    device = device or jax.local_devices()[0]
    try:
        limit = (device.memory_stats() or {}).get("bytes_limit")
    except Exception:
        limit = None
    if limit:
        return int(limit)
    try:
        with open("/proc/meminfo") as f:
            for line in f:
                if line.startswith("MemAvailable:"):
                    return int(line.split()[1]) * 1024
    except OSError:
        pass
    return 0


def choose_input_mode(config, *, num_examples=None, memory_bytes=None) -> tuple[str, str]:
    """``("resident" | "host", reason)`` for ``config.data.input_mode`` (and the older
    ``data.device_resident = True``). "auto" keeps the split on the mesh when it fits: on two
    CPU cores the host pipeline competes with the step, and on an accelerator the resident
    mode removes host batching and host-to-device copies (docs/benchmarks.md)."""
    from primus_jax.config import ConfigError

    d = config.data
    mode = d.get("input_mode", "host")
    if mode not in INPUT_MODES:
        raise ConfigError("data.input_mode", f"must be one of {INPUT_MODES}, got {mode!r}")
    if d.device_resident:
        return "resident", "data.device_resident=True"
    if mode != "auto":
        return mode, f"data.input_mode={mode}"
    if num_examples is None:
        if d.source == "synthetic":
            num_examples = d.synthetic.num_examples
        else:
            from primus_jax.data import tfds_input

            num_examples = len(tfds_input.open_train_source(config)[0])
    need = num_examples * bytes_per_example(config)
    have = device_memory_bytes() if memory_bytes is None else memory_bytes
    budget = RESIDENT_MEMORY_FRACTION * have
    verdict = "fits" if need <= budget else "does not fit"
    why = (
        f"data.input_mode=auto: the split ({num_examples} segments, {need / 2**20:.0f} MB) "
        f"{verdict} in {RESIDENT_MEMORY_FRACTION:.0%} of device memory ({have / 2**30:.1f} GB)"
    )
    return ("resident" if need <= budget else "host"), why


def train_data_summary(config) -> dict:
    """:func:`summarize_rows` of the configured training split (before fraction masking)."""
    if config.data.source == "synthetic":
        src = _synthetic_source(config)
        return summarize_rows(src.get_batch(sample_indices(len(src))), len(src))
    from primus_jax.data import tfds_input

    return tfds_input.train_data_summary(config)
