"""Stable 64-bit identities of segments and recordings (the NN queue's self-exclusion).

A segment's identity is BLAKE2b-64 of its ``id`` (``<recording>/<start_ms>`` in the segment
format), a recording's that of its ``recording`` string. Both travel with every training row
and are stored beside each queue entry, so a lookup can skip the row's own stale entry (and,
optionally, every window of its recording) whatever the input mode, process count or restart.
They are two uint32 words (high, low) because JAX runs without 64-bit integers by default;
the all-zero pair is never produced and marks "no identity" (a never-filled slot).
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable

import numpy as np

ID_WORDS = 2  # uint32 words per identity
NO_ID = (0, 0)


def hash64(value: str | bytes) -> tuple[int, int]:
    """``(high, low)`` uint32 words of BLAKE2b-64 of ``value`` (UTF-8 for str); never (0, 0)."""
    data = value.encode("utf-8") if isinstance(value, str) else bytes(value)
    h = int.from_bytes(hashlib.blake2b(data, digest_size=8).digest(), "big")
    if h == 0:  # probability 2**-64; keep 0 free for "no identity"
        h = 1
    return h >> 32, h & 0xFFFFFFFF


def hash_strings(values: Iterable[str | bytes]) -> np.ndarray:
    """(N, 2) uint32 identities of ``values``."""
    rows = [hash64(v) for v in values]
    return np.asarray(rows, np.uint32).reshape(len(rows), ID_WORDS)


def row_identity(segment: str | bytes, recording: str | bytes) -> dict[str, np.ndarray]:
    """The identity fields of one training row (``segment_id``, ``recording_id``: (2,))."""
    return {
        "segment_id": np.asarray(hash64(segment), np.uint32),
        "recording_id": np.asarray(hash64(recording), np.uint32),
    }
