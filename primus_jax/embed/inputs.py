"""What the embedding tool reads: JSONL manifests of texts or video windows, or the ``id``
and ``text`` of a prepared TFDS dataset."""

from __future__ import annotations

import json
import os
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from primus_jax.embed import video as video_lib


def read_jsonl(path: str | os.PathLike) -> Iterator[dict[str, Any]]:
    """Yields the JSON objects of a JSONL file (blank lines ignored), naming the bad line."""
    with open(path, encoding="utf-8") as f:
        for lineno, line in enumerate(f, 1):
            if not line.strip():
                continue
            try:
                record = json.loads(line)
            except json.JSONDecodeError as e:
                raise ValueError(f"{path}:{lineno}: not valid JSON: {e}") from e
            if not isinstance(record, dict) or "id" not in record:
                raise ValueError(f"{path}:{lineno}: expected an object with an 'id'")
            yield record


def text_records_from_manifest(path: str | os.PathLike) -> tuple[list[str], list[str]]:
    """``{"id": ..., "text": ...}`` lines → (ids, texts)."""
    ids, texts = [], []
    for r in read_jsonl(path):
        ids.append(str(r["id"]))
        texts.append(r.get("text") or "")
    return ids, texts


def _as_str(x: Any) -> str:
    if isinstance(x, np.ndarray):
        x = x.item()
    return x.decode("utf-8") if isinstance(x, bytes) else str(x)


def text_records_from_tfds(
    name: str, data_dir: str | None, splits: Sequence[str], chunk: int = 1024
) -> tuple[list[str], list[str]]:
    """Reads ``id`` and ``text`` of a prepared TFDS dataset (array_record; no TensorFlow needed).

    Args:
      name: dataset name with config, e.g. ``"uci_hapt/raw"``.
      data_dir: TFDS data directory (None = TFDS default).
      splits: split names, e.g. ``["train", "test"]``.
      chunk: examples decoded per read.
    """
    import tensorflow_datasets as tfds

    ids, texts = [], []
    for split in splits:
        source = tfds.data_source(name, split=split, data_dir=data_dir)
        for start in range(0, len(source), chunk):
            for ex in source.__getitems__(list(range(start, min(start + chunk, len(source))))):
                ids.append(_as_str(ex["id"]))
                texts.append(_as_str(ex["text"]))
    return ids, texts


def video_windows_from_manifest(
    path: str | os.PathLike,
    media_root: str | os.PathLike | None = None,
    window_s: float | None = None,
) -> list[video_lib.VideoWindow]:
    """Video manifest lines → windows.

    Each line is ``{"id", "video": <file>, "start_s", "end_s"}`` or ``{"id", "frames": <dir or
    .npy>, ["fps", "start_s", "end_s"]}``. Relative paths resolve against ``media_root``
    (default: the manifest's directory). ``end_s`` defaults to ``start_s + window_s``.
    """
    root = Path(media_root) if media_root is not None else Path(path).resolve().parent
    windows = []
    for r in read_jsonl(path):
        src = r.get("video", r.get("frames"))
        if not src:
            raise ValueError(f"{path}: record {r['id']!r} has neither 'video' nor 'frames'")
        start, end = r.get("start_s"), r.get("end_s")
        if "video" not in r and start is not None and r.get("fps") is None:
            # A video file knows its frame rate; a frame directory or array does not.
            raise ValueError(f"{path}: record {r['id']!r} windows frames without an 'fps'")
        if end is None and start is not None:
            if window_s is None:
                raise ValueError(f"{path}: record {r['id']!r} has start_s but no end_s")
            end = float(start) + window_s
        windows.append(
            video_lib.VideoWindow(
                id=str(r["id"]),
                source=video_lib.resolve_path(str(src), root),
                start_s=None if start is None else float(start),
                end_s=None if end is None else float(end),
                fps=None if r.get("fps") is None else float(r["fps"]),
            )
        )
    return windows
