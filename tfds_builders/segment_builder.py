"""Base class of the four segment builders: features, configs, embedding merge, build log.

A subclass sets ``LABEL_NAMES``, ``CLASS_PROMPTS`` (zero-shot sentences per class, written to
``info.metadata["class_prompts"]``), ``TEXT_FROM_LABELS``, ``BUILDER_CONFIGS``
(``SegmentConfig``s, which may bring their own classes and prompts) and implements
``_split_generators`` / ``_generate_examples``, producing examples with ``self._example``. It
reports bad raw input with ``self.stats.skip(split, reason, where)`` (logged) and
expected exclusions with ``self.stats.note(split, what)`` (counted only); each split's generator
ends with ``self._finish_split(split)``, which logs the skip counts and the class balance and
stores both in ``info.metadata["build_stats"]``.
"""

from __future__ import annotations

import collections
import os
from collections.abc import Sequence
from typing import ClassVar

import tensorflow_datasets as tfds
from absl import logging
from etils import epath

from primus_jax.embed.store import EmbeddingStore
from tfds_builders import segment_format

_MAX_LOGGED_PER_REASON = 5


class BuildStats:
    """Per-split counts of skipped/noted inputs and of examples per class."""

    def __init__(self, dataset: str):
        self.dataset = dataset
        self.events: dict[str, collections.Counter] = collections.defaultdict(collections.Counter)
        self.balance: dict[str, collections.Counter] = collections.defaultdict(collections.Counter)
        self._logged: collections.Counter = collections.Counter()

    def skip(self, split: str, reason: str, where: str, n: int = 1) -> None:
        """Counts ``n`` windows/files/recordings dropped for bad input; logs the first few."""
        what = f"skipped_{reason}"
        self._logged[(split, what)] += 1
        if self._logged[(split, what)] <= _MAX_LOGGED_PER_REASON:
            logging.warning("%s [%s] %s: %s", self.dataset, split, what, where)
        self.events[split][what] += n

    def note(self, split: str, what: str, n: int = 1) -> None:
        """Counts an expected event (e.g. a segment excluded by design); summary only."""
        self.events[split][what] += n

    def count(self, split: str, label_name: str) -> None:
        self.balance[split][label_name or "<unlabelled>"] += 1

    def summary(self, split: str) -> str:
        bal = self.balance[split]
        total = sum(bal.values())
        parts = [f"{k}={v} ({100 * v / max(total, 1):.1f}%)" for k, v in sorted(bal.items())]
        events = ", ".join(f"{k}={v}" for k, v in sorted(self.events[split].items())) or "none"
        return (
            f"{self.dataset} split {split!r}: {total} examples; class balance: "
            f"{', '.join(parts) or 'empty'}; skipped/noted: {events}"
        )

    def as_dict(self) -> dict:
        return {
            "class_balance": {s: dict(c) for s, c in sorted(self.balance.items())},
            "events": {s: dict(c) for s, c in sorted(self.events.items())},
        }


class SegmentBuilder(tfds.core.GeneratorBasedBuilder, skip_registration=True):
    """Shared ``_info``, embedding-store handling and build statistics."""

    LABEL_NAMES: ClassVar[Sequence[str]] = ()
    # One tuple of sentences per class of LABEL_NAMES (zero-shot prompts); () = none.
    CLASS_PROMPTS: ClassVar[Sequence[Sequence[str]]] = ()
    # The paired text is generated from the labels (e.g. templated sentences).
    TEXT_FROM_LABELS: ClassVar[bool] = False
    HOMEPAGE: ClassVar[str] = ""

    @classmethod
    def config_classes(cls, config: str | segment_format.SegmentConfig | None) -> dict:
        """``{"label_names", "class_prompts", "text_from_labels", "text_encoder"}`` of a config.

        The same values the build writes into ``info.metadata``; evaluation falls back to
        them for datasets built before the metadata held prompts.
        """
        if config is None or isinstance(config, str):
            configs = {c.name: c for c in cls.BUILDER_CONFIGS}
            name = config or cls.BUILDER_CONFIGS[0].name
            if name not in configs:
                raise ValueError(f"{cls.__name__}: no config {name!r}; have {sorted(configs)}")
            config = configs[name]
        own = bool(config.label_names)
        return {
            "label_names": list(config.label_names or cls.LABEL_NAMES),
            "class_prompts": [
                list(p) for p in (config.class_prompts if own else cls.CLASS_PROMPTS)
            ],
            "text_from_labels": bool(
                cls.TEXT_FROM_LABELS if config.text_from_labels is None else config.text_from_labels
            ),
            "text_encoder": config.text_encoder,
        }

    @property
    def label_names(self) -> list[str]:
        """This config's class names (``info.metadata["label_names"]``)."""
        return self.config_classes(self.builder_config)["label_names"]

    def _info(self) -> tfds.core.DatasetInfo:
        cfg = self.builder_config
        classes = self.config_classes(cfg)
        extra = {"text_encoder": classes["text_encoder"]} if classes["text_encoder"] else {}
        return self.dataset_info_from_configs(
            features=segment_format.features(),
            metadata=segment_format.metadata(
                classes["label_names"],
                cfg.text_emb_dim,
                cfg.video_emb_dim,
                class_prompts=classes["class_prompts"],
                text_from_labels=classes["text_from_labels"],
                **extra,
            ),
            homepage=self.HOMEPAGE,
        )

    @property
    def stats(self) -> BuildStats:
        if not hasattr(self, "_stats"):
            self._stats = BuildStats(self.name)
        return self._stats

    @staticmethod
    def _optional_manual_dir(dl_manager) -> epath.Path | None:
        """The manual directory if one was given and is non-empty, else ``None``."""
        try:
            return dl_manager.manual_dir
        except (AssertionError, ValueError):
            return None

    def _open_stores(self, manual_dir: epath.Path | None) -> None:
        """Opens the config's embedding stores and checks their width and modality."""
        cfg = self.builder_config
        self._stores: dict[str, EmbeddingStore | None] = {}
        for modality, path, dim in (
            ("text", cfg.text_store, cfg.text_emb_dim),
            ("video", cfg.video_store, cfg.video_emb_dim),
        ):
            if path is None:
                self._stores[modality] = None
                continue
            if not os.path.isabs(path):
                if manual_dir is None:
                    raise ValueError(
                        f"config {cfg.name!r}: {modality} store {path!r} is relative to the "
                        "manual dir, but no manual dir was given (pass "
                        "download_config=tfds.download.DownloadConfig(manual_dir=...))"
                    )
                path = os.fspath(manual_dir / path)
            store = EmbeddingStore(path)
            if store.modality != modality:
                raise ValueError(f"{path}: a {store.modality} store used for {modality}_emb")
            if dim and store.dim != dim:
                raise ValueError(f"{path}: dim {store.dim}, config {cfg.name!r} expects {dim}")
            self.info.metadata[f"{modality}_emb_dim"] = store.dim
            self.info.metadata[f"{modality}_encoder"] = store.encoder
            logging.info(
                "%s: %s embeddings from %s (%d ids)", self.name, modality, path, len(store)
            )
            self._stores[modality] = store

    def _example(self, split: str, **kwargs) -> tuple[str, dict]:
        """``segment_format.make_example`` plus the embedding merge and class counting."""
        stores = getattr(self, "_stores", {})
        key = segment_format.segment_id(kwargs["recording"], kwargs["start_s"])
        text_store, video_store = stores.get("text"), stores.get("video")
        if text_store is not None and kwargs.get("text"):
            kwargs["text_emb"] = text_store.get(key)
            if kwargs["text_emb"] is None:
                self.stats.skip(split, "text_emb_missing", key)
        if video_store is not None:
            kwargs["video_emb"] = video_store.get(key)
            if kwargs["video_emb"] is None:
                self.stats.skip(split, "video_emb_missing", key)
        key, ex = segment_format.make_example(label_names=self.label_names, **kwargs)
        self.stats.count(split, ex["label_name"])
        return key, ex

    def _finish_split(self, split: str) -> None:
        """Logs the split's class balance and skip counts and records them in the metadata."""
        if not getattr(self, "_logged_global", False) and self.stats.events.get("all"):
            events = sorted(self.stats.events["all"].items())
            logging.info(
                "%s, before splitting: %s", self.name, ", ".join(f"{k}={v}" for k, v in events)
            )
            self._logged_global = True
        logging.info("%s", self.stats.summary(split))
        self.info.metadata["build_stats"] = self.stats.as_dict()
