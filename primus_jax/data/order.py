"""The order in which training examples are visited, shared by every input mode.

Epoch ``e`` visits the examples in ``permutation(fold_in(rng_streams.data_key(seed), e), n)``
(jax.random, threefry: the same numbers on every backend). Global batch ``b`` of the epoch is
rows ``[b*B, (b+1)*B)`` of it, and the last ``n % B`` examples of each epoch are dropped, so a
batch never holds the same example twice. Process ``p`` of ``P`` reads rows
``[p*B/P, (p+1)*B/P)`` of every global batch.

The host pipelines (synthetic and grain over TFDS) and the device-resident mode all call these
functions, so switching modes, process counts or restarting from a checkpoint never changes
which examples a step sees.
"""

from __future__ import annotations

import threading

import jax
import jax.numpy as jnp
import numpy as np

from primus_jax import rng_streams


def epoch_key(seed: int, epoch):
    return jax.random.fold_in(rng_streams.data_key(seed), epoch)


def epoch_permutation(seed: int, epoch, n: int):
    """Jittable: the visiting order of epoch ``epoch`` (int32 (n,))."""
    return jax.random.permutation(epoch_key(seed, epoch), n).astype(jnp.int32)


_permutation_jit = jax.jit(epoch_permutation, static_argnums=(0, 2))


def host_permutation(seed: int, epoch: int, n: int) -> np.ndarray:
    """:func:`epoch_permutation` computed on the host CPU (keeps accelerators free)."""
    with jax.default_device(jax.local_devices(backend="cpu")[0]):
        return np.asarray(_permutation_jit(seed, epoch, n))


def steps_per_epoch(n: int, global_batch: int, what: str = "training examples") -> int:
    """Full global batches per epoch (the remainder is dropped): at least one, else a
    ValueError naming ``config.data.batch_size``."""
    if n < global_batch:
        raise ValueError(
            f"config.data.batch_size={global_batch}: only {n} {what}, fewer than one global batch"
        )
    return n // global_batch


class EpochOrder:
    """Host-side view of the order: ``rows(step)`` -> record indices of this process's rows
    of global batch ``step`` (0-based). Caches the permutations of the last two epochs."""

    def __init__(
        self,
        n: int,
        global_batch: int,
        seed: int,
        process_index: int = 0,
        process_count: int = 1,
        what: str = "training examples",
    ):
        self.steps_per_epoch = steps_per_epoch(n, global_batch, what)
        self.n, self.global_batch, self.seed = n, global_batch, seed
        self.local = global_batch // process_count
        self.offset = process_index * self.local
        self._cache: dict[int, np.ndarray] = {}
        self._lock = threading.Lock()

    def permutation(self, epoch: int) -> np.ndarray:
        with self._lock:
            perm = self._cache.get(epoch)
            if perm is None:
                perm = host_permutation(self.seed, epoch, self.n)
                self._cache = {e: p for e, p in self._cache.items() if e >= epoch - 1}
                self._cache[epoch] = perm
            return perm

    def rows(self, step: int) -> np.ndarray:
        epoch, b = divmod(int(step), self.steps_per_epoch)
        start = b * self.global_batch + self.offset
        return self.permutation(epoch)[start : start + self.local]
