"""Gives the compiler's freed heap back to the operating system after a compilation.

XLA's compiler (LLVM on CPU) allocates a few hundred MB of small objects and frees them when
the program is built. glibc keeps that freed heap mapped, and the step's large temporaries
are then allocated beside it, so a CPU process's peak resident set is roughly the compile
peak plus the step's working set (batch 256: 1.1 GB, of which ~300 MB is dead compiler
heap). ``release_free_heap()`` (glibc ``malloc_trim(0)``) returns the free pages, and the
step's memory reuses them (batch 256 fp32, with the reshape max pool: peak RSS 1,069 ->
748 MB; docs/benchmarks.md).
A no-op, returning 0, where the C library has no ``malloc_trim`` (macOS, musl).
"""

from __future__ import annotations

import ctypes
import ctypes.util
import functools
import os


@functools.cache
def _malloc_trim():
    name = ctypes.util.find_library("c")
    try:
        fn = ctypes.CDLL(name).malloc_trim
    except (OSError, AttributeError, TypeError):
        return None
    fn.argtypes = [ctypes.c_size_t]
    fn.restype = ctypes.c_int
    return fn


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
