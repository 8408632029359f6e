"""The grain training pipeline: TFDS segments (ArrayRecord) -> per-process batches.

    tfds.data_source(name, split)           random access, no TensorFlow
    grain.MapDataset.range(steps).map(...)  element ``s`` = this process's rows of global
                                            batch ``s``, in the shared visiting order
                                            (``data.order``; the same for any process count
                                            and for the device-resident mode)
    -> features per record                  fixed widths; seeded multimodal-fraction masking
                                            by record index; segment/recording identities
    -> to_iter_dataset(ReadOptions)         prefetching threads (or worker processes)

The iterator's position is saved in every checkpoint (grain's orbax handler), so a resumed run
sees exactly the batches an uninterrupted one would. Datasets are built and opened by
``data.prepare``; grain is imported lazily.
"""

from __future__ import annotations

import numpy as np
from absl import logging

from primus_jax import identity, rng_streams
from primus_jax.data import prepare
from primus_jax.data.summary import sample_indices, summarize_rows


def embedding_dims(info) -> dict[str, int]:
    """Widths of the stored text and video embeddings (0: none stored)."""
    md = info.metadata or {}
    return {"text": int(md.get("text_emb_dim", 0)), "video": int(md.get("video_emb_dim", 0))}


def multimodal_keep_mask(n: int, fraction: float, seed: int) -> np.ndarray:
    """Seeded subset of ``round(fraction * n)`` records that keep their video/text (paper
    Fig. 3: PRIMUS with only a fraction of the segments paired). Fixed per record index, so
    it does not change from epoch to epoch."""
    if fraction >= 1.0:
        return np.ones(n, bool)
    keep = np.zeros(n, bool)
    rng = np.random.default_rng([seed, rng_streams.NP_MULTIMODAL_MASK])
    chosen = rng.permutation(n)[: round(fraction * n)]
    keep[chosen] = True
    return keep


class PairedFeatures:
    """Turns a segment-format example into the train step's row (fixed widths)."""

    def __init__(self, mm_dim: int, keep: np.ndarray):
        self.mm_dim = mm_dim
        self.keep = keep

    def _emb(self, ex, key, has):
        e = np.asarray(ex[f"{key}_emb"], np.float32)
        if not has or e.size == 0:
            return np.zeros((self.mm_dim,), np.float32), False
        return e, True

    def __call__(self, index: int, ex: dict) -> dict:
        # grain passes the index of the repeated dataset (epoch * n + record).
        keep = bool(self.keep[index % len(self.keep)])
        video, has_video = self._emb(ex, "video", keep and bool(ex["has_video"]))
        text, has_text = self._emb(ex, "text", keep and bool(ex["has_text"]))
        return {
            "imu": np.asarray(ex["imu"], np.float32),
            "video": video,
            "text": text,
            "has_video": np.bool_(has_video),
            "has_text": np.bool_(has_text),
            **identity.row_identity(ex["id"], ex["recording"]),
        }


def check_dims(name: str, info, mm_dim: int) -> dict[str, int]:
    """Raises ConfigError when the stored embedding widths disagree with ``model.mm_dim``."""
    from primus_jax.config import ConfigError

    dims = embedding_dims(info)
    for modality, d in dims.items():
        if d and d != mm_dim:
            raise ConfigError(
                "model.mm_dim",
                f"{mm_dim}, but dataset {name} stores {d}-d {modality} embeddings; set "
                f"--config.model.mm_dim={d}",
            )
    if not any(dims.values()):
        logging.warning(
            "data: %s stores no video or text embeddings: only L_SS and the IMU NN term can "
            "learn (use a config with embeddings, e.g. uci_hapt/minilm)",
            name,
        )
    return dims


def open_train_source(config, build: bool = True):
    """``(source, features)`` of the configured training split: prepared if allowed, embedding
    widths checked against ``model.mm_dim``, multimodal-fraction mask applied."""
    d = config.data
    data_dir = prepare.local_data_dir(
        d.data_dir or prepare.default_data_dir(), "data.data_dir", d.name
    )
    if d.prepare and build:
        prepare.prepare_once(d.name, data_dir, d.manual_dir or None)
    source, info = prepare.open_source(d.name, d.split, data_dir)
    check_dims(d.name, info, config.model.mm_dim)
    keep = multimodal_keep_mask(len(source), d.multimodal_fraction, config.seed)
    return source, PairedFeatures(config.model.mm_dim, keep)


class _LocalBatch:
    """grain map: step -> this process's rows of that global batch, as stacked arrays."""

    def __init__(self, source, features, epoch_order):
        self.source = source
        self.features = features
        self.order = epoch_order

    def __call__(self, step: int) -> dict:
        rows = self.order.rows(step)
        examples = self.source.__getitems__(rows.tolist())
        feats = [self.features(int(r), ex) for r, ex in zip(rows, examples)]
        return {k: np.stack([f[k] for f in feats]) for k in feats[0]}


_MAX_STEPS = 2**40  # grain needs a length; no run gets near it


def make_train_iterator(config, process_index: int = 0, process_count: int = 1):
    """grain iterator over this process's rows of each global batch (see module doc)."""
    import grain

    from primus_jax.data.order import EpochOrder

    d = config.data
    source, features = open_train_source(config)
    n = len(source)
    what = f"examples in {d.name}[{d.split}]"
    epoch_order = EpochOrder(n, d.batch_size, config.seed, process_index, process_count, what)
    ds = grain.MapDataset.range(_MAX_STEPS).map(_LocalBatch(source, features, epoch_order))
    it = ds.to_iter_dataset(
        grain.ReadOptions(num_threads=d.num_threads, prefetch_buffer_size=d.prefetch)
    )
    if d.worker_count > 0:
        it = it.mp_prefetch(grain.MultiprocessingOptions(num_workers=d.worker_count))
    logging.info(
        "data: %s[%s]: %d segments, %d steps per epoch, multimodal fraction %.2f",
        d.name,
        d.split,
        n,
        epoch_order.steps_per_epoch,
        d.multimodal_fraction,
    )
    return iter(it)


def read_all(source, fn, *, chunk: int = 4096) -> dict[str, np.ndarray]:
    """Applies ``fn(index, example) -> dict`` to every record and stacks the fields
    (device-resident training data, evaluation sets)."""
    cols: dict[str, list] = {}
    n = len(source)
    for start in range(0, n, chunk):
        idx = list(range(start, min(n, start + chunk)))
        for i, ex in zip(idx, source.__getitems__(idx)):
            for k, v in fn(i, ex).items():
                cols.setdefault(k, []).append(v)
    return {k: np.stack(v) for k, v in cols.items()}


def train_data_summary(config) -> dict:
    """``summary.summarize_rows`` over evenly spaced records of the training split."""
    source, features = open_train_source(config, build=False)
    full = PairedFeatures(features.mm_dim, np.ones(len(source), bool))
    idx = sample_indices(len(source))
    rows = [full(int(i), ex) for i, ex in zip(idx, source.__getitems__(idx.tolist()))]
    return summarize_rows({k: np.stack([r[k] for r in rows]) for k in rows[0]}, len(source))


def load_train_arrays(config) -> dict[str, np.ndarray]:
    """The whole training split as fixed-width arrays (device-resident mode)."""
    source, features = open_train_source(config)
    return read_all(source, features)


def padded_batches(num_examples: int, batch_size: int):
    """Evaluation batching that keeps the last partial batch: yields ``(indices, mask)``,
    both of length ``batch_size``; padded slots repeat index 0 and have ``mask`` False, so
    every batch has one shape (one compilation) and nothing is dropped."""
    for start in range(0, num_examples, batch_size):
        idx = np.arange(start, start + batch_size)
        mask = idx < num_examples
        yield np.where(mask, idx, 0), mask
