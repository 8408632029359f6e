"""One path layer for every output and input location: local directories and ``gs://`` URLs.

Everything that writes a workdir (checkpoints, metrics JSONL, TensorBoard events, config,
run summary, few-shot reports) goes through :func:`path`, an ``etils.epath.Path``. Without
TensorFlow, epath serves ``gs://`` with fsspec + gcsfs (the ``[gcs]`` extra); orbax uses the
same epath and writes arrays with TensorStore's own GCS driver.

GCS objects cannot be appended to: :func:`append_text` rewrites the object (the metrics
writer keeps its lines and rewrites at each flush), and :func:`register_tensorboard_gcs`
makes tensorboardX write ``gs://`` event files through epath too (its built-in GCS writer
needs an authenticated ``google.cloud.storage`` client).
"""

from __future__ import annotations

import io
import os

import fsspec
from etils import epath

# gcsfs caches directory listings; orbax's arrays and the emulator-free TensorStore writes do
# not go through gcsfs, so a cached listing would miss new checkpoints. List afresh.
fsspec.config.conf.setdefault("gcs", {}).setdefault("use_listings_cache", False)


def is_remote(p) -> bool:
    """Whether ``p`` is a URL (``gs://``, ``s3://``...) rather than a local path."""
    return "://" in os.fspath(p)


def path(p) -> epath.Path:
    """``p`` as an absolute ``epath.Path`` (orbax refuses relative paths); URLs unchanged."""
    p = os.fspath(p)
    if is_remote(p):
        if not p.startswith(("gs://", "s3://", "az://", "hf://")):
            raise ValueError(f"{p}: unsupported URL scheme (use a local path or gs://)")
        return epath.Path(p)
    return epath.Path(os.path.abspath(os.path.expanduser(p)))


def makedirs(p) -> epath.Path:
    out = path(p)
    out.mkdir(parents=True, exist_ok=True)
    return out


def write_text(p, text: str) -> str:
    """Writes ``text`` to ``p`` (creating its parent); returns the path as a string."""
    out = path(p)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(text)
    return os.fspath(out)


def append_text(p, text: str) -> None:
    """Appends ``text`` to ``p``; on object stores (no append) the object is rewritten."""
    out = path(p)
    out.parent.mkdir(parents=True, exist_ok=True)
    if not is_remote(out):
        with out.open("a") as f:
            f.write(text)
        return
    old = out.read_text() if out.exists() else ""
    out.write_text(old + text)


class _EpathRecordFile:
    """A tensorboardX record file on an object store: buffered, rewritten whole at flush."""

    def __init__(self, p: str):
        self._path = path(p)
        self._buffer = io.BytesIO()
        self._dirty = False

    def write(self, data: bytes) -> None:
        self._buffer.write(data)
        self._dirty = True

    def flush(self) -> None:
        if self._dirty:
            self._path.write_bytes(self._buffer.getvalue())
            self._dirty = False

    def close(self) -> None:
        self.flush()


class _EpathRecordFactory:
    def open(self, p):
        return _EpathRecordFile(p)

    def directory_check(self, p):
        del p  # object stores have no directories to create


def register_tensorboard_gcs() -> None:
    """Routes tensorboardX's ``gs://`` event files through epath (idempotent)."""
    from tensorboardX import record_writer

    record_writer.register_writer_factory("gs", _EpathRecordFactory())
