"""Deterministic, group-disjoint split assignment (subjects, takes or videos).

Every builder assigns whole groups to splits, never single windows, so no person/take/video
contributes to two splits. Order within a stratum comes from SHA-256 of ``salt:group``, which
is stable across machines, Python versions and numpy versions (unlike a seeded RNG over a set).
"""

from __future__ import annotations

import hashlib
from collections import defaultdict
from collections.abc import Hashable, Mapping


def stable_hash(key: str, salt: str) -> int:
    """A 64-bit hash of ``salt:key`` that never changes between runs or machines."""
    return int.from_bytes(hashlib.sha256(f"{salt}:{key}".encode()).digest()[:8], "big")


def _allocate(n: int, fractions: Mapping[str, float]) -> dict[str, int]:
    """Splits n items by fractions with largest-remainder rounding (ties: split order)."""
    exact = {s: n * f for s, f in fractions.items()}
    counts = {s: int(v) for s, v in exact.items()}
    order = sorted(fractions, key=lambda s: -(exact[s] - counts[s]))
    for s in order[: n - sum(counts.values())]:
        counts[s] += 1
    return counts


def assign_groups(
    strata: Mapping[str, Hashable], fractions: Mapping[str, float], salt: str
) -> dict[str, str]:
    """Assigns groups to splits, stratified so every stratum is split in the same proportions.

    Args:
        strata: ``{group: stratum}``, e.g. ``{take_uid: class_index}``; use one stratum for
            an unstratified split.
        fractions: ``{split: fraction}`` in the order splits are filled; must sum to 1.
        salt: Changes the assignment (the "seed").

    Returns:
        ``{group: split}``.
    """
    if abs(sum(fractions.values()) - 1.0) > 1e-9:
        raise ValueError(f"fractions must sum to 1, got {dict(fractions)}")
    by_stratum: dict[Hashable, list[str]] = defaultdict(list)
    for group, stratum in strata.items():
        by_stratum[stratum].append(group)
    out: dict[str, str] = {}
    for groups in by_stratum.values():
        groups.sort(key=lambda g: (stable_hash(g, salt), g))
        i = 0
        for split, count in _allocate(len(groups), fractions).items():
            for g in groups[i : i + count]:
                out[g] = split
            i += count
    return out
