"""The embedding store: a directory of ``.npz`` shards keyed by segment id (docs/data.md).

Layout::

    <store>/
      store.json        {"format": "primus_jax.embedding_store/1", "encoder": ..., "modality": ...,
                         "dim": D, "normalized": true, "shards": ["shard-00000.npz", ...],
                         "config": {...}}            # "config" is optional provenance (see below)
      shard-00000.npz   ids: (N,) str; emb: (N, D) float32
      ...

This module imports only numpy and the standard library, so TFDS builders and the training
code can read stores without torch.

Crash safety (the reference's video cache was neither resumable nor crash-safe): every file is
written to a hidden temporary name in the same directory, fsynced and then ``os.replace``d, and a
shard only counts once ``store.json`` lists it. A crash therefore leaves either the old store or
the old store plus an unlisted shard, which the next writer deletes. ``store.json``'s optional
``config`` records how the embeddings were made (model fingerprint, frame count, ...); a writer
refuses to append to a store made with a different config rather than mix embeddings.
"""

from __future__ import annotations

import contextlib
import json
import os
import re
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from primus_jax import cli_errors

FORMAT = "primus_jax.embedding_store/1"
MANIFEST_NAME = "store.json"
MODALITIES = ("text", "video")
DEFAULT_SHARD_SIZE = 4096

_SHARD_RE = re.compile(r"^shard-(\d{5,})\.npz$")
_TMP_PREFIX = ".tmp-"
_LOCK_NAME = ".lock"
# An L2-normalised float32 row has norm 1 to ~1e-7; anything further off is a bug upstream.
_NORM_TOL = 1e-3


class StoreError(cli_errors.UserError, ValueError):
    """A store is malformed, or does not match what the caller expects."""


class StoreNotFound(cli_errors.UserError, FileNotFoundError):
    """No store at the path given."""


def _shard_name(index: int) -> str:
    return f"shard-{index:05d}.npz"


def _fsync_dir(path: Path) -> None:
    # Makes the rename itself durable; a no-op on filesystems that refuse directory fds.
    with contextlib.suppress(OSError):
        fd = os.open(path, os.O_RDONLY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)


def atomic_write(path: Path, write: Any) -> None:
    """Writes ``path`` via ``write(fileobj)`` to a temporary file, then renames it into place."""
    tmp = path.with_name(f"{_TMP_PREFIX}{path.name}.{os.getpid()}")
    try:
        with open(tmp, "wb") as f:
            write(f)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(OSError):
            tmp.unlink()
        raise
    _fsync_dir(path.parent)


def read_manifest(path: str | os.PathLike) -> dict[str, Any]:
    """Reads and validates ``<path>/store.json``.

    Args:
      path: the store directory.

    Returns:
      The manifest dict (with ``config`` defaulted to ``{}``).

    Raises:
      FileNotFoundError: no store at ``path``.
      StoreError: the manifest is not a valid store manifest.
    """
    manifest_path = Path(path) / MANIFEST_NAME
    if not manifest_path.is_file():
        raise StoreNotFound(f"no embedding store at {Path(path)} (missing {manifest_path})")
    try:
        manifest = json.loads(manifest_path.read_text())
    except json.JSONDecodeError as e:
        raise StoreError(f"{manifest_path} is not valid JSON: {e}") from e
    if manifest.get("format") != FORMAT:
        raise StoreError(f"{manifest_path}: format {manifest.get('format')!r}, expected {FORMAT!r}")
    for key, kind in (("encoder", str), ("modality", str), ("dim", int), ("shards", list)):
        if not isinstance(manifest.get(key), kind):
            raise StoreError(f"{manifest_path}: field {key!r} missing or not a {kind.__name__}")
    if manifest["modality"] not in MODALITIES:
        raise StoreError(f"{manifest_path}: modality {manifest['modality']!r} not in {MODALITIES}")
    if manifest["dim"] <= 0:
        raise StoreError(f"{manifest_path}: dim must be positive, got {manifest['dim']}")
    manifest.setdefault("normalized", True)
    manifest.setdefault("config", {})
    return manifest


def _load_shard(
    path: Path, dim: int, load_emb: bool = True
) -> tuple[np.ndarray, np.ndarray | None]:
    try:
        with np.load(path, allow_pickle=False) as z:
            ids = z["ids"]
            emb = z["emb"] if load_emb else None
    except (OSError, ValueError, KeyError) as e:
        raise StoreError(f"cannot read shard {path}: {e}") from e
    if ids.ndim != 1 or ids.dtype.kind != "U":
        raise StoreError(f"shard {path}: ids must be a 1-D str array, got {ids.dtype} {ids.shape}")
    if emb is not None and (emb.dtype != np.float32 or emb.shape != (len(ids), dim)):
        raise StoreError(
            f"shard {path}: emb must be float32 ({len(ids)}, {dim}), got {emb.dtype} {emb.shape}"
        )
    return ids, emb


def check_compatible(
    path: str | os.PathLike,
    *,
    encoder: str,
    modality: str,
    dim: int | None = None,
    config: Mapping[str, Any] | None = None,
) -> dict[str, Any] | None:
    """Checks that a store (if any) holds embeddings made the way this run makes them.

    Cheap (reads ``store.json`` only), so callers can fail before loading a model.

    Args:
      path: store directory.
      encoder, modality: must equal the stored ones.
      dim: must equal the stored width (skipped when None).
      config: every key also in the stored config must have the same value.

    Returns:
      The stored manifest, or None when there is no store yet.

    Raises:
      StoreError: naming the first field that differs.
    """
    path = Path(path)
    if not (path / MANIFEST_NAME).exists():
        return None
    manifest = read_manifest(path)
    expected = {"encoder": encoder, "modality": modality, "normalized": True}
    if dim is not None:
        expected["dim"] = dim
    for key, want in expected.items():
        if manifest[key] != want:
            raise StoreError(
                f"{path} holds {key}={manifest[key]!r} embeddings, but this run makes "
                f"{key}={want!r}; write to a new --output directory"
            )
    stored = manifest["config"]
    diff = [(k, stored[k], v) for k, v in (config or {}).items() if k in stored and stored[k] != v]
    if diff:
        lines = "; ".join(f"{k}: store has {a!r}, this run {b!r}" for k, a, b in diff)
        raise StoreError(
            f"{path} was written with a different configuration ({lines}); appending would mix "
            "incompatible embeddings: write to a new --output directory"
        )
    return manifest


def read_ids(path: str | os.PathLike) -> list[str]:
    """The ids of a store without loading its embeddings (empty when there is no store).

    Raises:
      StoreError: the store exists but is malformed.
    """
    path = Path(path)
    if not (path / MANIFEST_NAME).exists():
        return []
    manifest = read_manifest(path)
    ids: list[str] = []
    for name in manifest["shards"]:
        ids.extend(_load_shard(path / name, manifest["dim"], load_emb=False)[0].tolist())
    return ids


class EmbeddingStore:
    """Read-only, in-memory view of an embedding store.

    Example::

        store = EmbeddingStore("stores/hapt_minilm")
        store.dim, store.encoder          # 384, "minilm"
        "subj01_exp01/0" in store
        store["subj01_exp01/0"]           # (384,) float32
        emb, found = store.lookup(ids)    # (N, 384), (N,) bool; rows of missing ids are zero

    Attributes:
      path: the store directory.
      encoder: encoder name (e.g. ``"minilm"``, ``"clip4clip_video"``).
      modality: ``"text"`` or ``"video"``.
      dim: embedding width D.
      normalized: whether rows are L2-normalised (always true for stores this tool writes).
      config: provenance recorded by the writer (``{}`` when absent).
    """

    def __init__(self, path: str | os.PathLike):
        self.path = Path(path)
        manifest = read_manifest(self.path)
        self.encoder: str = manifest["encoder"]
        self.modality: str = manifest["modality"]
        self.dim: int = manifest["dim"]
        self.normalized: bool = bool(manifest["normalized"])
        self.config: dict[str, Any] = manifest["config"]
        ids_parts, emb_parts = [], []
        for name in manifest["shards"]:
            ids, emb = _load_shard(self.path / name, self.dim)
            ids_parts.append(ids)
            emb_parts.append(emb)
        self._ids = np.concatenate(ids_parts) if ids_parts else np.zeros((0,), dtype=str)
        self._emb = np.concatenate(emb_parts) if emb_parts else np.zeros((0, self.dim), np.float32)
        self._emb.flags.writeable = False
        self._index: dict[str, int] = {}
        for row, key in enumerate(self._ids.tolist()):
            if self._index.setdefault(key, row) != row:
                raise StoreError(f"{self.path}: id {key!r} appears in more than one row")

    def __len__(self) -> int:
        return len(self._ids)

    def __contains__(self, key: object) -> bool:
        return key in self._index

    def __getitem__(self, key: str) -> np.ndarray:
        """Returns the (D,) float32 embedding of ``key``; raises KeyError when absent."""
        return self._emb[self._index[key]]

    def get(self, key: str) -> np.ndarray | None:
        """The (D,) embedding of ``key``, or None when the store does not hold it."""
        row = self._index.get(key)
        return None if row is None else self._emb[row]

    def __repr__(self) -> str:
        return (
            f"EmbeddingStore({str(self.path)!r}, encoder={self.encoder!r}, "
            f"modality={self.modality!r}, dim={self.dim}, n={len(self)})"
        )

    @property
    def ids(self) -> list[str]:
        """All ids, in storage order."""
        return self._ids.tolist()

    @property
    def embeddings(self) -> np.ndarray:
        """All embeddings (N, D) float32, read-only, rows in the order of :attr:`ids`."""
        return self._emb

    def lookup(self, ids: Sequence[str]) -> tuple[np.ndarray, np.ndarray]:
        """Gathers embeddings for ``ids``.

        Args:
          ids: segment ids.

        Returns:
          ``(emb, found)``: ``emb`` is (N, D) float32 with zero rows where ``found`` (N,) bool
          is false. Callers must use ``found``; a zero row is never a real embedding.
        """
        rows = np.array([self._index.get(k, -1) for k in ids], dtype=np.int64)
        found = rows >= 0
        emb = np.zeros((len(rows), self.dim), np.float32)
        emb[found] = self._emb[rows[found]]
        return emb, found
