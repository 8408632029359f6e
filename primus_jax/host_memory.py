"""Host memory of a CPU process: the compiler's freed heap, and the step's temporaries.

XLA's compiler (LLVM on CPU) allocates a few hundred MB of small objects and frees them when
the program is built. glibc keeps that freed heap mapped, and the step's large temporaries
are then allocated beside it, so a CPU process's peak resident set is roughly the compile
peak plus the step's working set (batch 256: 1.1 GB, of which ~300 MB is dead compiler
heap). ``release_free_heap()`` (glibc ``malloc_trim(0)``) returns the free pages, and the
step's memory reuses them (batch 256 fp32, with the reshape max pool: peak RSS 1,069 ->
748 MB; docs/benchmarks.md).
A no-op, returning 0, where the C library has no ``malloc_trim`` (macOS, musl).

The step's temporaries (batch 256: one ~300 MB block, mostly GRU scan residuals) are
allocated and freed by XLA at every execution. glibc serves blocks that large with a fresh
``mmap`` and unmaps them on free, so every step page-faults ~77K zeroed pages back in, ~12% of
a CPU step. :func:`keep_step_temporaries` keeps freed blocks on the heap instead; that needs
the program to run inline in the calling thread (:func:`run_cpu_programs_inline`, set before
jax starts), or the next step's block is allocated by another thread before the last one is
freed and the heap holds two (docs/benchmarks.md).
"""

from __future__ import annotations

import ctypes
import ctypes.util
import functools
import os

# glibc's mallopt parameters (malloc.h).
_M_TRIM_THRESHOLD, _M_MMAP_MAX = -1, -4
# A user who tuned the allocator keeps their settings.
_USER_MALLOC_SETTINGS = (
    "MALLOC_MMAP_MAX_",
    "MALLOC_MMAP_THRESHOLD_",
    "MALLOC_TRIM_THRESHOLD_",
    "GLIBC_TUNABLES",
)


@functools.cache
def _libc_fn(name: str, argtypes: tuple):
    try:
        fn = getattr(ctypes.CDLL(ctypes.util.find_library("c")), name)
    except (OSError, AttributeError, TypeError):
        return None
    fn.argtypes = list(argtypes)
    fn.restype = ctypes.c_int
    return fn


def _malloc_trim():
    return _libc_fn("malloc_trim", (ctypes.c_size_t,))


def resident_mb() -> float:
    """This process's current resident set in MiB (Linux), or -1 where unknown."""
    try:
        with open("/proc/self/statm") as f:
            pages = int(f.read().split()[1])
    except (OSError, ValueError, IndexError):
        return -1.0
    return round(pages * os.sysconf("SC_PAGE_SIZE") / 2**20, 1)


def release_free_heap() -> float:
    """Returns the C heap's free pages to the OS; the MiB of resident set released (0 if
    nothing could be done or measured)."""
    trim = _malloc_trim()
    if trim is None:
        return 0.0
    before = resident_mb()
    trim(0)
    after = resident_mb()
    return max(0.0, round(before - after, 1)) if before >= 0 else 0.0


def run_cpu_programs_inline() -> bool:
    """Makes jax run single-device CPU programs in the calling thread (no async dispatch).

    Only possible before a jax backend exists; returns whether CPU programs now run inline
    (also when the user chose so, e.g. ``JAX_CPU_ENABLE_ASYNC_DISPATCH=false``). Programs over
    several devices keep their threads. Accelerators are unaffected.
    """
    import jax
    from jax._src import xla_bridge

    if not xla_bridge.backends_are_initialized():
        jax.config.update("jax_cpu_enable_async_dispatch", False)
    return not jax.config.read("jax_cpu_enable_async_dispatch")


def keep_step_temporaries(compiled, enabled: bool = True) -> str:
    """After compiling a step: keeps freed large blocks on the C heap when it pays.

    That is, when ``compiled`` runs on one CPU device, inline (:func:`run_cpu_programs_inline`),
    under glibc and with no allocator settings of the user's: then ``mallopt`` stops serving
    large blocks by ``mmap`` and stops trimming the heap, so each step reuses the pages of the
    last one's temporaries. ``enabled``: ``train.keep_cpu_temporaries``. Returns a one-line
    account for the log, starting "kept" or "not kept".
    """
    import jax

    devices = set()
    for sharding in jax.tree.leaves(compiled.input_shardings):
        devices |= sharding.device_set
    mallopt = _libc_fn("mallopt", (ctypes.c_int, ctypes.c_int))
    reason = None
    if not enabled:
        reason = "train.keep_cpu_temporaries=False"
    elif jax.default_backend() != "cpu" or any(d.platform != "cpu" for d in devices):
        reason = "not a CPU program"
    elif len(devices) != 1:
        reason = f"{len(devices)} devices run in threads of their own"
    elif jax.config.read("jax_cpu_enable_async_dispatch"):
        reason = "CPU programs dispatch asynchronously (jax started before it could be changed)"
    elif mallopt is None or _malloc_trim() is None:
        reason = "the C library is not glibc"
    elif user := [k for k in _USER_MALLOC_SETTINGS if k in os.environ]:
        reason = f"{', '.join(user)} set by the user"
    if reason:
        return f"not kept: {reason}"
    mallopt(_M_MMAP_MAX, 0)
    mallopt(_M_TRIM_THRESHOLD, 2**31 - 1)
    try:
        temp_mb = compiled.memory_analysis().temp_size_in_bytes / 2**20
    except Exception:  # no memory analysis on this backend
        temp_mb = float("nan")
    return f"kept on the heap between steps ({temp_mb:.0f} MB, mallopt M_MMAP_MAX=0)"
