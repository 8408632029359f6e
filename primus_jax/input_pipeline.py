"""Training input: per-process batches of paired segments, with a checkpointable position.

``make_train_iterator(config)`` returns an iterator of this process's rows of each global
batch (numpy dicts with the keys of ``train_step.BATCH_KEYS``) that has ``get_state`` /
``set_state`` (or is a grain iterator, checkpointed by grain's own handler).
"""

from __future__ import annotations

import jax

from primus_jax.data import synthetic


def make_train_iterator(config):
    process_index, process_count = jax.process_index(), jax.process_count()
    d = config.data
    if d.source == "synthetic":
        s = d.synthetic
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
        )
        return synthetic.EpochBatchIterator(
            source,
            d.batch_size,
            config.seed,
            process_index=process_index,
            process_count=process_count,
        )
    raise NotImplementedError(f"data.source={d.source!r} is not wired yet")
