"""Helpers for the builder tests: build into a temp dir, read back, write tiny stores.

Tests build with ``file_format="array_record"`` and read with ``as_data_source`` because
``tfds.testing.DatasetBuilderTestCase`` needs TensorFlow, which this project does not install.
"""

from __future__ import annotations

import filecmp
import json
import os
import shutil
from collections.abc import Sequence

import numpy as np
import tensorflow_datasets as tfds

from primus_jax.embed.store import FORMAT
from tfds_builders import segment_format

_TEXT_FIELDS = ("id", "subject", "recording", "label_name", "text")


def build(builder_cls, data_dir, manual_dir=None, config="raw"):
    """Builds ``builder_cls`` into ``data_dir`` (ArrayRecord) and returns the builder."""
    builder = builder_cls(data_dir=os.fspath(data_dir), config=config)
    dl_config = tfds.download.DownloadConfig(
        manual_dir=None if manual_dir is None else os.fspath(manual_dir)
    )
    builder.download_and_prepare(file_format="array_record", download_config=dl_config)
    return builder


def assert_dummy_data_regenerates(generator, dummy_dir, out_dir) -> None:
    """``generator.main(out_dir)`` rewrites every file of ``dummy_dir`` byte for byte."""
    generator.main(os.fspath(out_dir))
    for dirpath, _, files in os.walk(dummy_dir):
        rel = os.path.relpath(dirpath, dummy_dir)
        for name in files:
            got = os.path.join(os.fspath(out_dir), rel, name)
            assert filecmp.cmp(os.path.join(dirpath, name), got, shallow=False), got


def read_split(builder, split: str) -> list[dict]:
    """All examples of a split, with text fields decoded to ``str``."""
    source = builder.as_data_source(split=split)
    out = []
    for ex in source.__getitems__(list(range(len(source)))):
        ex = dict(ex)
        for k in _TEXT_FIELDS:
            ex[k] = ex[k].decode("utf-8")
        out.append(ex)
    return out


def copy_tree(src, dst) -> str:
    """Copies a dummy_data folder so a test can break files without touching the original."""
    shutil.copytree(os.fspath(src), os.fspath(dst))
    return os.fspath(dst)


def write_store(
    path,
    ids: Sequence[str],
    modality: str,
    dim: int,
    *,
    encoder: str = "test-encoder",
    seed: int = 0,
    shard_size: int = 3,
) -> dict[str, np.ndarray]:
    """Writes an embedding store (``docs/data.md``) of random unit vectors.

    Returns:
        ``{id: embedding}`` as written.
    """
    os.makedirs(path, exist_ok=True)
    rng = np.random.default_rng(seed)
    emb = rng.normal(size=(len(ids), dim)).astype(np.float32)
    emb /= np.linalg.norm(emb, axis=1, keepdims=True)
    shards = []
    for i in range(0, max(len(ids), 1), shard_size):
        name = f"shard-{i // shard_size:05d}.npz"
        np.savez(
            os.path.join(path, name),
            ids=np.array(ids[i : i + shard_size], dtype=str),
            emb=emb[i : i + shard_size],
        )
        shards.append(name)
    meta = {
        "format": FORMAT,
        "encoder": encoder,
        "modality": modality,
        "dim": dim,
        "normalized": True,
        "shards": shards,
    }
    with open(os.path.join(path, "store.json"), "w", encoding="utf-8") as f:
        json.dump(meta, f)
    return dict(zip(ids, emb))


class TinySegments(tfds.core.GeneratorBasedBuilder, skip_registration=True):
    """40 segment-format examples for pipeline tests: example ``i`` has ``imu == i``, label
    ``i % 2``, subject ``s{i % 4}``, recording ``rec{i // 4}`` (4 consecutive windows each) and
    the text embedding ``e_(i % 8)`` (8-d: texts repeat, like templated text)."""

    name = "tiny_segments"
    VERSION = tfds.core.Version("1.0.0")
    NUM_EXAMPLES = 40
    DIM = 8

    def _info(self):
        return self.dataset_info_from_configs(
            features=segment_format.features(),
            metadata=segment_format.metadata(["a", "b"], text_emb_dim=self.DIM),
        )

    def _split_generators(self, dl_manager):
        del dl_manager
        return {"train": self._generate_examples()}

    def _generate_examples(self):
        for i in range(self.NUM_EXAMPLES):
            emb = np.zeros(self.DIM, np.float32)
            emb[i % self.DIM] = 1.0
            yield segment_format.make_example(
                label_names=["a", "b"],
                imu=np.full((250, 6), float(i), np.float32),
                recording=f"rec{i // 4}",
                subject=f"s{i % 4}",
                start_s=5.0 * (i % 4),
                label=i % 2,
                text=f"text {i}",
                text_emb=emb,
            )
