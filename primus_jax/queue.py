"""Device-resident FIFO feature queue for nearest-neighbour (NN) supervision.

The queue is part of the train state (replicated over the mesh), so it is donated, updated in
place, checkpointed and restored with everything else. All functions are pure.

Semantics (paper §2 / App. A.2, with the reference's defects fixed, docs/differences.md):

* three aligned queues: video and text embeddings (frozen encoders, ``mm_dim`` wide) and IMU
  keys (the ``ssl`` head on the raw view, ``ssl_dim`` wide), each stored L2-normalised, plus
  per-slot flags saying whether the video/text entry exists and each entry's segment and
  recording identity (:mod:`primus_jax.identity`);
* a row never finds its own segment: lookup happens before the batch is enqueued, and slots
  holding the row's own segment from an earlier step or epoch are excluded (``exclude="self"``;
  ``"recording"`` also excludes the other windows of its recording, ``"none"`` is the
  reference's behaviour, where a dataset no larger than the queue self-matches from epoch 2);
* top-1 neighbour by cosine similarity of the row's video embedding against the video queue;
  rows without video fall back to text, then to the IMU key (``mode="auto"``);
* exact ties are broken at random per (row, slot), so rows with the same query spread over
  the tied slots (templated text repeats one embedding across many slots);
* slots never filled can never be chosen (the reference lets all-zero slots win); rows with
  no admissible slot get ``valid = False`` and are masked out of the NN losses;
* entries are stop-gradient (stored values, never differentiated);
* FIFO with a write pointer and a fill count; the global batch size divides the queue size
  (checked in the config), so a batch is written with one ``dynamic_update_slice``.
"""

from __future__ import annotations

import flax.struct
import jax
import jax.numpy as jnp

from primus_jax.identity import ID_WORDS
from primus_jax.losses import l2_normalize

LOOKUP_MODES = ("auto", "video", "text", "imu")
DOMAINS = ("video", "text", "imu")  # domain codes 0, 1, 2 in lookup results
EXCLUDE_MODES = ("self", "recording", "none")


@flax.struct.dataclass
class QueueState:
    video: jax.Array  # (K, mm_dim) L2-normalised
    text: jax.Array  # (K, mm_dim) L2-normalised
    imu: jax.Array  # (K, ssl_dim) L2-normalised
    has_video: jax.Array  # (K,) bool
    has_text: jax.Array  # (K,) bool
    segment_id: jax.Array  # (K, 2) uint32, (0, 0) = none
    recording_id: jax.Array  # (K, 2) uint32
    ptr: jax.Array  # () int32, next slot to write
    count: jax.Array  # () int32, number of filled slots (<= K)

    @property
    def size(self) -> int:
        return self.video.shape[0]


def init_queue(size: int, mm_dim: int, ssl_dim: int) -> QueueState:
    return QueueState(
        video=jnp.zeros((size, mm_dim), jnp.float32),
        text=jnp.zeros((size, mm_dim), jnp.float32),
        imu=jnp.zeros((size, ssl_dim), jnp.float32),
        has_video=jnp.zeros((size,), bool),
        has_text=jnp.zeros((size,), bool),
        segment_id=jnp.zeros((size, ID_WORDS), jnp.uint32),
        recording_id=jnp.zeros((size, ID_WORDS), jnp.uint32),
        ptr=jnp.zeros((), jnp.int32),
        count=jnp.zeros((), jnp.int32),
    )


def filled(queue: QueueState):
    """(K,) bool: slots that hold an entry. Writing starts at 0, so these are [0, count)."""
    return jnp.arange(queue.size) < queue.count


def same_identity(rows, bank):
    """(B, K) bool: row identity ``rows[i]`` equals slot identity ``bank[j]`` (both words)."""
    return jnp.all(rows[:, None, :] == bank[None, :, :], axis=-1)


def admissible(queue: QueueState, segment_id, recording_id, exclude: str):
    """(B, K) bool: filled slots a row may take as its neighbour under ``exclude``."""
    if exclude not in EXCLUDE_MODES:
        raise ValueError(f"queue exclude mode must be one of {EXCLUDE_MODES}, got {exclude!r}")
    ok = jnp.broadcast_to(filled(queue)[None, :], (segment_id.shape[0], queue.size))
    if exclude == "none":
        return ok
    ok = ok & ~same_identity(segment_id, queue.segment_id)
    if exclude == "recording":
        ok = ok & ~same_identity(recording_id, queue.recording_id)
    return ok


def _fmix32(h):
    """MurmurHash3's 32-bit finaliser: a cheap bijective mixer of uint32 values."""
    h = h ^ (h >> 16)
    h = h * jnp.uint32(0x85EBCA6B)
    h = h ^ (h >> 13)
    h = h * jnp.uint32(0xC2B2AE35)
    return h ^ (h >> 16)


def tie_priorities(key, rows: int, slots: int):
    """(rows, slots) uint32 pseudo-random priorities, all odd (so never 0), a new set per key.

    One random word per row, mixed with the slot index: different rows order the slots
    differently, which is what spreads rows with identical queries over tied slots. Cheaper
    than drawing rows x slots threefry numbers (the lookup runs every step on B x K).
    """
    salt = jax.random.bits(key, (rows, 1), jnp.uint32)
    slot = jnp.arange(slots, dtype=jnp.uint32)[None, :] * jnp.uint32(0x9E3779B9)
    return _fmix32(salt ^ slot) | jnp.uint32(1)


def _argmax_random_ties(sim, key):
    """Row-wise argmax of ``sim`` (B, K); exactly equal maxima are chosen among at random."""
    if key is None:
        return jnp.argmax(sim, axis=1)
    best = jnp.max(sim, axis=1, keepdims=True)
    prio = tie_priorities(key, *sim.shape)
    return jnp.argmax(jnp.where(sim == best, prio, jnp.uint32(0)), axis=1)


def nearest_neighbour(
    queue: QueueState,
    *,
    video,
    text,
    imu,
    has_video,
    has_text,
    segment_id=None,
    recording_id=None,
    mode: str = "auto",
    exclude: str = "self",
    key=None,
):
    """Top-1 neighbour of each row among the admissible queue slots.

    Args:
      queue: the queue *before* this batch is enqueued.
      video, text: (B, mm_dim) current frozen-encoder embeddings (any norm).
      imu: (B, ssl_dim) current IMU keys (``ssl`` head, raw view); stop-gradient is applied.
      has_video, has_text: (B,) bool, which rows carry video / text.
      segment_id, recording_id: (B, 2) uint32 row identities; needed unless
        ``exclude="none"``.
      mode: "auto" (video, else text, else IMU, per row), or force one domain.
      exclude: "self" (never the row's own segment), "recording" (nor any window of its
        recording) or "none" (the reference).
      key: PRNG key of the per-(row, slot) random tie-break; None takes the lowest slot.

    Returns:
      dict with ``index`` (B,) int32, ``valid`` (B,) bool (a neighbour exists), ``domain``
      (B,) int32 (0 video, 1 text, 2 imu) and ``similarity`` (B,) of the chosen slot.
    """
    if mode not in LOOKUP_MODES:
        raise ValueError(f"queue lookup mode must be one of {LOOKUP_MODES}, got {mode!r}")
    b = video.shape[0]
    if exclude != "none" and (segment_id is None or recording_id is None):
        raise ValueError(f'exclude="{exclude}" needs the rows\' segment_id and recording_id')
    if segment_id is None:
        segment_id = recording_id = jnp.zeros((b, ID_WORDS), jnp.uint32)
    imu = jax.lax.stop_gradient(imu)
    allowed = admissible(queue, segment_id, recording_id, exclude)
    slot_has = {"video": queue.has_video, "text": queue.has_text, "imu": None}
    row_has = {"video": has_video, "text": has_text, "imu": jnp.ones((b,), bool)}
    queries = {"video": video, "text": text, "imu": imu}
    banks = {"video": queue.video, "text": queue.text, "imu": queue.imu}
    order = DOMAINS if mode == "auto" else (mode,)

    sim = jnp.full((b, queue.size), -jnp.inf, jnp.float32)
    domain = jnp.full((b,), -1, jnp.int32)
    for code, name in enumerate(DOMAINS):
        if name not in order:
            continue
        ok = allowed if slot_has[name] is None else allowed & slot_has[name][None, :]
        # A row uses this domain if it has not been assigned yet, carries the modality, and
        # the queue holds at least one slot of it that the row may take.
        use = (domain < 0) & row_has[name] & jnp.any(ok, axis=1)
        # Skip the (B, K) GEMM when no row needs this domain (the common case for text/IMU
        # fallbacks on fully paired data).
        sim = jax.lax.cond(
            jnp.any(use),
            lambda s, n=name, u=use, ok=ok: jnp.where(
                u[:, None] & ok, l2_normalize(queries[n]) @ banks[n].T, s
            ),
            lambda s: s,
            sim,
        )
        domain = jnp.where(use, code, domain)
    index = _argmax_random_ties(sim, key).astype(jnp.int32)
    best = jnp.take_along_axis(sim, index[:, None], axis=1)[:, 0]
    valid = (domain >= 0) & jnp.isfinite(best)
    return {
        "index": index,
        "valid": valid,
        "domain": domain,
        "similarity": jnp.where(valid, best, 0.0),
    }


def gather(queue: QueueState, index, valid):
    """Neighbour entries at ``index`` with per-modality validity masks (all stop-gradient)."""
    sg = jax.lax.stop_gradient
    return {
        "video": sg(queue.video[index]),
        "text": sg(queue.text[index]),
        "imu": sg(queue.imu[index]),
        "has_video": valid & queue.has_video[index],
        "has_text": valid & queue.has_text[index],
        "has_imu": valid,
        "segment_id": queue.segment_id[index],
        "recording_id": queue.recording_id[index],
    }


def enqueue(
    queue: QueueState,
    *,
    video,
    text,
    imu,
    has_video,
    has_text,
    segment_id=None,
    recording_id=None,
) -> QueueState:
    """Writes the batch at the pointer (FIFO, wrapping); B must divide K."""
    b = video.shape[0]
    if queue.size % b:
        raise ValueError(f"queue size {queue.size} is not a multiple of the batch size {b}")
    no_id = jnp.zeros((b, ID_WORDS), jnp.uint32)

    def write(buf, rows):
        rows = jax.lax.stop_gradient(rows).astype(buf.dtype)
        return jax.lax.dynamic_update_slice_in_dim(buf, rows, queue.ptr, axis=0)

    return queue.replace(
        video=write(queue.video, l2_normalize(video) * has_video[:, None]),
        text=write(queue.text, l2_normalize(text) * has_text[:, None]),
        imu=write(queue.imu, l2_normalize(imu)),
        has_video=write(queue.has_video, has_video),
        has_text=write(queue.has_text, has_text),
        segment_id=write(queue.segment_id, no_id if segment_id is None else segment_id),
        recording_id=write(queue.recording_id, no_id if recording_id is None else recording_id),
        ptr=(queue.ptr + b) % queue.size,
        count=jnp.minimum(queue.count + b, queue.size),
    )
