"""Zero-shot class prompts, embedded once per text encoder and kept in an embedding store.

Zero-shot evaluation needs each class's prompt sentences embedded by the dataset's frozen
text encoder. Loading that encoder (torch + transformers) for a few dozen sentences costs
~12 s per evaluation run on CPU and needs the ``[torch]`` extra; as with the segments' own
texts, the encoder should run once, offline. So the prompts go into an ordinary text store
(``store.py``) keyed by the sentence itself, one store per checkpoint,
``<cache root>/<encoder>-<sha256 of the weights, 12 hex>``, by default under
``<data_dir>/prompt_embeddings``. ``data.prepare`` fills it when it builds a dataset;
evaluation embeds (and adds) only the prompts it lacks, so a run whose prompts are cached
imports no torch.
"""

from __future__ import annotations

import dataclasses
import functools
import os
from collections.abc import Sequence
from pathlib import Path

import numpy as np
from absl import logging

from primus_jax.embed import encoders as enc_lib
from primus_jax.embed import pipeline
from primus_jax.embed import store as store_lib

CACHE_DIRNAME = "prompt_embeddings"


def default_cache_root(data_dir: str) -> str:
    """``<data_dir>/prompt_embeddings``: the cache next to the datasets it serves."""
    return os.path.join(data_dir, CACHE_DIRNAME)


@functools.lru_cache(maxsize=8)
def _fingerprint(model_dir: Path, stamp: tuple) -> str:
    del stamp  # part of the cache key only: a checkpoint rewritten in place is hashed again
    return enc_lib.model_fingerprint(model_dir)


def cache_path(cache_root: str | os.PathLike, encoder: str, model_dir=None) -> Path:
    """The store of ``encoder``'s prompts under ``cache_root`` (hashes the weights, no torch).

    Raises:
      encoders.ModelDirError: the checkpoint cannot be found.
    """
    path = enc_lib.resolve_model_dir(encoder, model_dir)
    files = sorted(p for p in path.iterdir() if p.suffix in (".json", ".safetensors", ".bin"))
    stamp = tuple((p.name, p.stat().st_size, p.stat().st_mtime_ns) for p in files)
    return Path(cache_root) / f"{encoder}-{_fingerprint(path, stamp)[:12]}"


@dataclasses.dataclass
class PromptStats:
    """Where a call's prompt embeddings came from."""

    cached: int = 0  # distinct prompts read from the cache
    embedded: int = 0  # distinct prompts run through the encoder now
    store: str | None = None  # the cache used, None = none
    note: str = ""  # why the cache was not used or not updated, if so

    def describe(self) -> str:
        where = f" (cache {self.store})" if self.store else ""
        note = f"; {self.note}" if self.note else ""
        return f"{self.cached} cached, {self.embedded} embedded now{where}{note}"


def embed_prompts(
    texts: Sequence[str],
    *,
    encoder: str,
    model_dir=None,
    cache_root: str | os.PathLike | None = None,
) -> tuple[np.ndarray, PromptStats]:
    """``(N, D)`` float32 unit-norm embeddings of ``texts``, in order, and where they came from.

    With ``cache_root``, prompts already in the encoder's store are read from it and the
    others are embedded and added to it. A cache that cannot be written (read-only, another
    writer holds it, made another way) is not an error: the prompts are then embedded live,
    as with ``cache_root=None``, and ``stats.note`` says why.

    Raises:
      ImportError: prompts must be embedded and torch/transformers are missing.
      encoders.ModelDirError: the encoder's checkpoint cannot be found.
      ValueError: a text is empty or not a string.
    """
    pipeline.check_texts(texts, "prompts")
    if cache_root is None:
        emb = pipeline.embed_texts(texts, encoder=encoder, model_dir=model_dir)
        return emb, PromptStats(embedded=len(set(texts)))
    path = cache_path(cache_root, encoder, model_dir)
    distinct = list(dict.fromkeys(texts))
    enc: str | enc_lib.TextEncoder = encoder  # loaded at most once, only if something is new
    try:
        have = set(store_lib.read_ids(path))
        todo = [t for t in distinct if t not in have]
        if todo:
            store_lib.check_compatible(path, encoder=encoder, modality="text")
            enc = enc_lib.load_text_encoder(encoder, model_dir)
            pipeline.write_text_store(todo, todo, path, encoder=enc)
        emb, found = store_lib.EmbeddingStore(path).lookup(list(texts))
        if not found.all():  # write_text_store stores every non-empty text it is given
            raise store_lib.StoreError(f"{int((~found).sum())} prompts missing after writing")
    except (OSError, store_lib.StoreError) as e:
        logging.warning("prompt cache %s not used (%s); embedding the prompts live", path, e)
        emb = pipeline.embed_texts(texts, encoder=enc, model_dir=model_dir)
        return emb, PromptStats(embedded=len(distinct), note=f"cache {path} not used: {e}")
    return emb, PromptStats(cached=len(distinct) - len(todo), embedded=len(todo), store=str(path))
