"""TFDS segments (ArrayRecord) -> grain -> per-process batches, plus dataset preparation.

Train pipeline (``make_train_iterator``):

    tfds.data_source(name, split)           random access, no TensorFlow
    grain.MapDataset.range(steps).map(...)  element ``s`` = this process's rows of global
                                            batch ``s``, in the shared visiting order
                                            (primus_jax.data.order: reshuffled every epoch,
                                            remainder dropped, same order for any process
                                            count and for the device-resident mode)
    -> features per record                  fixed widths; seeded multimodal-fraction masking
                                            by record index; segment/recording identities
    -> to_iter_dataset(ReadOptions)         prefetching threads (or worker processes)

The iterator is a grain iterator: its position is saved in every checkpoint by grain's own
orbax handler, and a resumed run sees exactly the batches an uninterrupted one would.

All imports of tensorflow_datasets and grain are lazy, so the model and train step stay
importable without them (e.g. on an accelerator host that only has jax/flax/optax).
"""

from __future__ import annotations

import importlib
import importlib.util
import os

import numpy as np
from absl import logging

from primus_jax import rng_streams
from primus_jax.data import identity
from primus_jax.data.summary import sample_indices, summarize_rows

OUR_DATASETS = ("egoexo4d", "ego4d", "realworld", "uci_hapt")


def default_data_dir() -> str:
    return os.environ.get("TFDS_DATA_DIR") or os.path.expanduser("~/tensorflow_datasets")


def import_builder_module(name: str):
    """Imports ``tfds_builders.<dataset>`` so TFDS knows the builder (``name`` may carry a
    config: ``uci_hapt/minilm``)."""
    dataset = name.split("/")[0].split(":")[0]
    module = f"tfds_builders.{dataset}.{dataset}_dataset_builder"
    if importlib.util.find_spec("tfds_builders") is None:
        raise ModuleNotFoundError(
            "tfds_builders is not importable: install the project (pip install -e .) or run "
            "from the repository root"
        )
    if importlib.util.find_spec(f"tfds_builders.{dataset}") is None:
        return None  # not one of ours: a dataset registered elsewhere (tfds' catalogue)
    return importlib.import_module(module)


def _builder(name: str, data_dir: str):
    import tensorflow_datasets as tfds

    import_builder_module(name)
    return tfds.builder(name, data_dir=data_dir)


def _download_config(manual_dir: str | None):
    import tensorflow_datasets as tfds

    return tfds.download.DownloadConfig(manual_dir=manual_dir or None)


def prepare_dataset(name: str, data_dir: str, manual_dir: str | None = None) -> None:
    """Builds ``name`` into ``data_dir`` (ArrayRecord) unless it is already there.

    A config whose text-embedding store does not exist yet (e.g. ``uci_hapt/minilm`` on a
    fresh machine) is prepared in three steps: build the dataset's ``raw`` config, embed its
    texts with the encoder the config is named after (``python -m primus_jax.embed``'s
    library), then build the requested config from that store. The store is written under
    ``<data_dir>/manual/<dataset>/`` unless ``manual_dir`` is given.
    """
    builder = _builder(name, data_dir)
    if builder.is_prepared():
        return
    dataset = builder.name
    cfg = builder.builder_config
    manual_dir = manual_dir or os.path.join(data_dir, "manual", dataset)
    text_store = getattr(cfg, "text_store", None)
    if text_store and not os.path.isabs(text_store):
        store_dir = os.path.join(manual_dir, text_store)
        if not os.path.exists(os.path.join(store_dir, "store.json")):
            _embed_texts_of_raw(dataset, data_dir, manual_dir, store_dir, encoder=cfg.name)
    logging.info("data: building %s into %s (manual dir %s)", name, data_dir, manual_dir)
    builder.download_and_prepare(
        file_format="array_record", download_config=_download_config(manual_dir)
    )


def _embed_texts_of_raw(dataset, data_dir, manual_dir, store_dir, *, encoder):
    from primus_jax.embed import write_text_store

    raw = _builder(f"{dataset}/raw", data_dir)
    if not raw.is_prepared():
        logging.info("data: building %s/raw into %s", dataset, data_dir)
        raw.download_and_prepare(
            file_format="array_record", download_config=_download_config(manual_dir)
        )
    ids, texts = [], []
    for split in raw.info.splits:
        src = raw.as_data_source(split=split)
        for ex in src.__getitems__(list(range(len(src)))):
            text = ex["text"].decode("utf-8") if isinstance(ex["text"], bytes) else ex["text"]
            if text:
                ids.append(ex["id"].decode("utf-8") if isinstance(ex["id"], bytes) else ex["id"])
                texts.append(text)
    logging.info(
        "data: embedding %d texts of %s with %s -> %s", len(texts), dataset, encoder, store_dir
    )
    write_text_store(ids, texts, store_dir, encoder=encoder)


def open_source(name: str, split: str, data_dir: str):
    """``(data_source, info)`` for a built dataset (``tfds.data_source``)."""
    import tensorflow_datasets as tfds

    import_builder_module(name)
    try:
        builder = tfds.builder(name, data_dir=data_dir)
    except tfds.core.registered.DatasetNotFoundError:
        raise FileNotFoundError(
            f"config.data.name={name!r}: no such dataset is registered and none is built in "
            f"{data_dir}; ours are {sorted(OUR_DATASETS)} (tfds_builders/)"
        ) from None
    if not builder.is_prepared():
        raise FileNotFoundError(
            f"dataset {name} is not built in {data_dir}: set config.data.prepare=True or run "
            f"`tfds build` for it (ArrayRecord: --file_format=array_record)"
        )
    return builder.as_data_source(split=split), builder.info


def embedding_dims(info) -> dict[str, int]:
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


def _prepare_once(name: str, data_dir: str, manual_dir: str | None) -> None:
    """Builds the dataset on process 0 only; the others wait (one shared data_dir), at a
    barrier that outlasts a long build (a device collective under gloo waits only 30 s)."""
    import jax

    from primus_jax import sharding

    if jax.process_index() == 0:
        prepare_dataset(name, data_dir, manual_dir)
    sharding.wait_for_all_processes("dataset_prepared")


def open_train_source(config, prepare: bool = True):
    """``(source, features)`` of the configured training split: prepared if allowed, embedding
    widths checked against ``model.mm_dim``, multimodal-fraction mask applied."""
    d = config.data
    data_dir = d.data_dir or default_data_dir()
    if d.prepare and prepare:
        _prepare_once(d.name, data_dir, d.manual_dir or None)
    source, info = open_source(d.name, d.split, data_dir)
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
    source, features = open_train_source(config, prepare=False)
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
