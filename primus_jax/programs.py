"""A cache of compiled programs that a caller owns and passes in (no process-wide state).

A resumed run, a sweep or a notebook that re-runs a config in one process can skip
recompilation by handing the same :class:`ProgramCache` to each ``train_and_evaluate``. The
key holds everything a program depends on: its purpose, the whole config, the shapes, dtypes
and shardings of its arguments and the jax flags that change numerics.
"""

from __future__ import annotations

import collections
import time

import jax
from absl import logging

from primus_jax import host_memory


def _signature(args) -> tuple:
    leaves, treedef = jax.tree.flatten(args)
    return treedef, tuple((x.shape, x.dtype, x.sharding) for x in leaves)


def compile_released(jitted, *args):
    """``jitted.lower(*args).compile()``, then the compiler's freed heap handed back to the OS
    (:func:`host_memory.release_free_heap`); returns ``(compiled, compile seconds, MB
    released)``."""
    t0 = time.perf_counter()
    compiled = jitted.lower(*args).compile()
    seconds = time.perf_counter() - t0
    return compiled, seconds, host_memory.release_free_heap()


class ProgramCache:
    """``compile(what, config, jitted, *args)`` = ``jitted.lower(*args).compile()``, memoised;
    the ``max_entries`` most recently used programs are kept."""

    def __init__(self, max_entries: int = 8):
        self.max_entries = max_entries
        self._programs: collections.OrderedDict = collections.OrderedDict()

    def compile(self, what: str, config, jitted, *args):
        flags = (jax.config.jax_enable_x64, jax.config.jax_default_matmul_precision)
        key = (what, config.to_json_best_effort(sort_keys=True), _signature(args), flags)
        compiled = self._programs.get(key)
        if compiled is None:
            compiled, seconds, released = compile_released(jitted, *args)
            logging.info(
                "%s compiled in %.1f s (%.0f MB of freed compiler heap returned to the OS)",
                what,
                seconds,
                released,
            )
            self._programs[key] = compiled
            while len(self._programs) > self.max_entries:
                self._programs.popitem(last=False)
        else:
            self._programs.move_to_end(key)
            logging.info("%s: reusing the program compiled earlier", what)
        return compiled
