"""Device-resident FIFO feature queue for nearest-neighbour (NN) supervision.

The queue is part of the train state (replicated over the mesh), so it is donated, updated in
place, checkpointed and restored with everything else. All functions are pure.

Semantics (paper §2 / App. A.2, with the reference's defects fixed, reference-spec §5):

* three aligned queues: video and text embeddings (frozen encoders, ``mm_dim`` wide) and IMU
  keys (the ``ssl`` head on the raw view, ``ssl_dim`` wide), each stored L2-normalised, plus
  per-slot flags saying whether the video/text entry exists;
* lookup happens **before** the current batch is enqueued, so a segment is never its own
  neighbour;
* top-1 neighbour by cosine similarity of the current segment's video embedding against the
  video queue; rows without video fall back to text, then to the IMU key (``lookup="auto"``);
* slots never filled can never be chosen (the reference lets all-zero slots win); rows with
  no admissible slot get ``valid = False`` and are masked out of the NN losses;
* entries are stop-gradient (they are stored values, never differentiated);
* FIFO with a write pointer and a fill count; the global batch size divides the queue size
  (checked in the config), so a batch is written with one ``dynamic_update_slice``.
"""

from __future__ import annotations

import flax.struct
import jax
import jax.numpy as jnp

from primus_jax.losses import l2_normalize

LOOKUP_MODES = ("auto", "video", "text", "imu")
DOMAINS = ("video", "text", "imu")  # domain codes 0, 1, 2 in lookup results


@flax.struct.dataclass
class QueueState:
    video: jax.Array  # (K, mm_dim) L2-normalised
    text: jax.Array  # (K, mm_dim) L2-normalised
    imu: jax.Array  # (K, ssl_dim) L2-normalised
    has_video: jax.Array  # (K,) bool
    has_text: jax.Array  # (K,) bool
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
        ptr=jnp.zeros((), jnp.int32),
        count=jnp.zeros((), jnp.int32),
    )


def filled(queue: QueueState):
    """(K,) bool: slots that hold an entry. Writing starts at 0, so these are [0, count)."""
    return jnp.arange(queue.size) < queue.count


def _similarities(query, bank, slot_ok):
    """Cosine similarities (B, K) with inadmissible slots at -inf."""
    sim = l2_normalize(query) @ bank.T
    return jnp.where(slot_ok[None, :], sim, -jnp.inf)


def nearest_neighbour(
    queue: QueueState,
    *,
    video,
    text,
    imu,
    has_video,
    has_text,
    mode: str = "auto",
    key=None,
):
    """Top-1 neighbour of each row among the filled queue slots.

    Args:
      queue: the queue *before* this batch is enqueued.
      video, text: (B, mm_dim) current frozen-encoder embeddings (any norm).
      imu: (B, ssl_dim) current IMU keys (``ssl`` head, raw view); stop-gradient is applied.
      has_video, has_text: (B,) bool, which rows carry video / text.
      mode: "auto" (video, else text, else IMU, per row), or force one domain.
      key: optional PRNG key that breaks exact ties at random (templated text repeats one
        embedding across many slots; without it argmax always returns the lowest slot).

    Returns:
      dict with ``index`` (B,) int32, ``valid`` (B,) bool (a neighbour exists), ``domain``
      (B,) int32 (0 video, 1 text, 2 imu) and ``similarity`` (B,) of the chosen slot.
    """
    if mode not in LOOKUP_MODES:
        raise ValueError(f"queue lookup mode must be one of {LOOKUP_MODES}, got {mode!r}")
    imu = jax.lax.stop_gradient(imu)
    full = filled(queue)
    b = video.shape[0]
    slots = {
        "video": full & queue.has_video,
        "text": full & queue.has_text,
        "imu": full,
    }
    row_has = {"video": has_video, "text": has_text, "imu": jnp.ones((b,), bool)}
    queries = {"video": video, "text": text, "imu": imu}
    banks = {"video": queue.video, "text": queue.text, "imu": queue.imu}
    order = DOMAINS if mode == "auto" else (mode,)

    sim = jnp.full((b, queue.size), -jnp.inf, jnp.float32)
    domain = jnp.full((b,), -1, jnp.int32)
    for code, name in enumerate(DOMAINS):
        if name not in order:
            continue
        # A row uses this domain if it has not been assigned yet, carries the modality, and
        # the queue holds at least one admissible slot of it.
        use = (domain < 0) & row_has[name] & jnp.any(slots[name])
        # Skip the (B, K) GEMM when no row needs this domain (the common case for text/IMU
        # fallbacks on fully paired data).
        sim = jax.lax.cond(
            jnp.any(use),
            lambda s, n=name, u=use: jnp.where(
                u[:, None], _similarities(queries[n], banks[n], slots[n]), s
            ),
            lambda s: s,
            sim,
        )
        domain = jnp.where(use, code, domain)
    if key is not None:
        # A per-slot offset far below the gaps between distinct cosines: it only reorders
        # exact ties (a new order every step).
        sim = sim + 1e-6 * jax.random.uniform(key, (queue.size,), sim.dtype)
    index = jnp.argmax(sim, axis=1).astype(jnp.int32)
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
    }


def enqueue(queue: QueueState, *, video, text, imu, has_video, has_text) -> QueueState:
    """Writes the batch at the pointer (FIFO, wrapping); B must divide K."""
    b = video.shape[0]
    if queue.size % b:
        raise ValueError(f"queue size {queue.size} is not a multiple of the batch size {b}")

    def write(buf, rows):
        rows = jax.lax.stop_gradient(rows).astype(buf.dtype)
        return jax.lax.dynamic_update_slice_in_dim(buf, rows, queue.ptr, axis=0)

    return queue.replace(
        video=write(queue.video, l2_normalize(video) * has_video[:, None]),
        text=write(queue.text, l2_normalize(text) * has_text[:, None]),
        imu=write(queue.imu, l2_normalize(imu)),
        has_video=write(queue.has_video, has_video),
        has_text=write(queue.has_text, has_text),
        ptr=(queue.ptr + b) % queue.size,
        count=jnp.minimum(queue.count + b, queue.size),
    )
