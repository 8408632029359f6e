"""Writing an embedding store: append-only, crash-safe, resumable, one writer at a time.

Shards are written under a temporary name, fsynced and renamed, and count only once
``store.json`` lists them (:mod:`primus_jax.embed.store` describes the layout); a lock file
keeps a second writer out, and a writer refuses to append to a store made with another
encoder, width or configuration.
"""

from __future__ import annotations

import fcntl
import json
import os
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
from absl import logging

from primus_jax.embed.store import (
    _LOCK_NAME,
    _NORM_TOL,
    _SHARD_RE,
    _TMP_PREFIX,
    DEFAULT_SHARD_SIZE,
    FORMAT,
    MANIFEST_NAME,
    MODALITIES,
    StoreError,
    _shard_name,
    atomic_write,
    check_compatible,
    read_ids,
)


class EmbeddingStoreWriter:
    """Appends embeddings to a store, one atomically written shard at a time.

    Re-opening an existing store resumes it: ids already stored are skipped by :meth:`add` (and
    can be filtered up front with :meth:`missing`). An exclusive lock file keeps two writers
    from interleaving updates of ``store.json``.

    Example::

        with EmbeddingStoreWriter(out, encoder="minilm", modality="text", dim=384) as w:
            todo = w.missing(ids)
            ...
            w.add(batch_ids, batch_emb)   # flushes a shard every ``shard_size`` rows

    Args:
      path: store directory (created if needed).
      encoder: encoder name stored in (or checked against) the manifest.
      modality: ``"text"`` or ``"video"``.
      dim: embedding width.
      config: provenance for ``store.json``. When the store exists, every key given here must
        equal the stored value; keys the store lacks are added.
      shard_size: rows per shard; also the most work lost by a hard crash.

    Raises:
      StoreError: the existing store has another encoder, modality, dim or config, or another
        writer holds it.
    """

    def __init__(
        self,
        path: str | os.PathLike,
        *,
        encoder: str,
        modality: str,
        dim: int,
        config: Mapping[str, Any] | None = None,
        shard_size: int = DEFAULT_SHARD_SIZE,
    ):
        if modality not in MODALITIES:
            raise ValueError(f"modality must be one of {MODALITIES}, got {modality!r}")
        if dim <= 0 or shard_size <= 0:
            raise ValueError(f"dim and shard_size must be positive, got {dim}, {shard_size}")
        self.path = Path(path)
        self.path.mkdir(parents=True, exist_ok=True)
        self.shard_size = shard_size
        self._lock_fd: int | None = None
        self._acquire_lock()
        try:
            self._open(encoder, modality, dim, dict(config or {}))
        except BaseException:
            self._release_lock()
            raise
        self._buf_ids: list[str] = []
        self._buf_emb: list[np.ndarray] = []
        self.num_added = 0

    # -- opening -------------------------------------------------------------------------

    def _acquire_lock(self) -> None:
        fd = os.open(self.path / _LOCK_NAME, os.O_RDWR | os.O_CREAT, 0o644)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            os.close(fd)
            raise StoreError(f"{self.path} is being written by another process") from None
        self._lock_fd = fd

    def _release_lock(self) -> None:
        if self._lock_fd is not None:
            fcntl.flock(self._lock_fd, fcntl.LOCK_UN)
            os.close(self._lock_fd)
            self._lock_fd = None

    def _open(self, encoder: str, modality: str, dim: int, config: dict[str, Any]) -> None:
        for tmp in self.path.glob(f"{_TMP_PREFIX}*"):
            logging.info("removing leftover temporary file %s", tmp)
            tmp.unlink()
        if not (self.path / MANIFEST_NAME).exists():
            self._manifest = {
                "format": FORMAT,
                "encoder": encoder,
                "modality": modality,
                "dim": dim,
                "normalized": True,
                "shards": [],
                "config": config,
            }
            self._write_manifest()
            self._done: set[str] = set()
            self._next_shard = 0
            return

        manifest = check_compatible(
            self.path, encoder=encoder, modality=modality, dim=dim, config=config
        )
        stored_config = manifest["config"]
        config_grew = any(k not in stored_config for k in config)
        if config_grew:
            manifest["config"] = {**stored_config, **config}
        self._manifest = manifest

        listed = set(manifest["shards"])
        indices = []
        for p in self.path.iterdir():
            m = _SHARD_RE.match(p.name)
            if not m:
                continue
            if p.name in listed:
                indices.append(int(m.group(1)))
            else:
                # Written by a run that died before it could list it: not part of the store.
                logging.warning("removing unlisted shard %s (left by an interrupted run)", p)
                p.unlink()
        self._next_shard = max(indices, default=-1) + 1
        self._done = set(read_ids(self.path))
        if config_grew:
            self._write_manifest()

    def _write_manifest(self) -> None:
        text = json.dumps(self._manifest, indent=1, sort_keys=True) + "\n"
        atomic_write(self.path / MANIFEST_NAME, lambda f: f.write(text.encode()))

    # -- public API ----------------------------------------------------------------------

    @property
    def dim(self) -> int:
        return self._manifest["dim"]

    def __contains__(self, key: object) -> bool:
        return key in self._done

    def __len__(self) -> int:
        """Number of ids stored or buffered."""
        return len(self._done)

    def missing(self, ids: Iterable[str]) -> list[str]:
        """Returns the ids not yet stored (or buffered), in input order."""
        return [k for k in ids if k not in self._done]

    def add(self, ids: Sequence[str], emb: np.ndarray) -> int:
        """Buffers new embeddings, flushing full shards.

        Args:
          ids: (N,) segment ids.
          emb: (N, D) L2-normalised embeddings.

        Returns:
          The number of rows added; ids already present (or repeated in ``ids``) are skipped.

        Raises:
          StoreError: wrong shape, non-finite values or rows that are not unit norm. Nothing of
            the call is stored then.
        """
        emb = np.asarray(emb, dtype=np.float32)
        if emb.ndim != 2 or emb.shape != (len(ids), self.dim):
            raise StoreError(
                f"expected embeddings of shape ({len(ids)}, {self.dim}), got {emb.shape}"
            )
        if not np.isfinite(emb).all():
            raise StoreError("refusing to store non-finite embeddings")
        norms = np.linalg.norm(emb, axis=1)
        bad = np.abs(norms - 1.0) > _NORM_TOL
        if bad.any():
            i = int(np.argmax(bad))
            raise StoreError(f"embedding of {ids[i]!r} has norm {norms[i]:.4g}, expected 1")
        keep = []
        for i, key in enumerate(ids):
            if not isinstance(key, str) or not key:
                raise StoreError(f"ids must be non-empty strings, got {key!r}")
            if key not in self._done:
                self._done.add(key)
                keep.append(i)
        if keep:
            self._buf_ids.extend(ids[i] for i in keep)
            self._buf_emb.append(emb[keep])
        self.num_added += len(keep)
        while len(self._buf_ids) >= self.shard_size:
            self._write_shard(self.shard_size)
        return len(keep)

    def flush(self) -> None:
        """Writes all buffered rows as one shard (a no-op when nothing is buffered)."""
        if self._buf_ids:
            self._write_shard(len(self._buf_ids))

    def _write_shard(self, n: int) -> None:
        ids = np.asarray(self._buf_ids[:n], dtype=str)
        emb = np.concatenate(self._buf_emb)
        name = _shard_name(self._next_shard)
        atomic_write(self.path / name, lambda f: np.savez(f, ids=ids, emb=emb[:n]))
        # The shard exists from here on only once the manifest lists it.
        self._manifest["shards"].append(name)
        self._write_manifest()
        self._next_shard += 1
        self._buf_ids = self._buf_ids[n:]
        self._buf_emb = [emb[n:]] if len(emb) > n else []

    def close(self) -> None:
        """Flushes and releases the lock. Safe to call twice."""
        if self._lock_fd is None:
            return
        try:
            self.flush()
        finally:
            self._release_lock()

    def __enter__(self) -> EmbeddingStoreWriter:
        return self

    def __exit__(self, *exc: object) -> None:
        # Flushes on errors too: every buffered row was validated, so finished work is kept.
        self.close()
