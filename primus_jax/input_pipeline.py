"""Training input: per-process batches of paired segments, with a checkpointable position.

``make_train_iterator(config)`` returns an iterator of this process's rows of each global
batch (numpy dicts: ``imu``, ``video``, ``text``, ``has_video``, ``has_text``, ``segment_id``,
``recording_id``) that has
``get_state`` / ``set_state`` (or is a grain iterator, checkpointed by grain's own handler).
``make_resident_data(config, mesh)`` instead puts the whole split on the mesh
(``config.data.device_resident``).
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


def train_data_summary(config) -> dict:
    """:func:`summarize_rows` of the configured training split (before fraction masking)."""
    if config.data.source == "synthetic":
        src = _synthetic_source(config)
        return summarize_rows(src.get_batch(sample_indices(len(src))), len(src))
    from primus_jax.data import tfds_input

    return tfds_input.train_data_summary(config)
