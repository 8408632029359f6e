"""host_memory.release_free_heap: freed small-object heap goes back to the OS (glibc)."""

import sys

import pytest

from primus_jax import host_memory


@pytest.mark.skipif(
    not sys.platform.startswith("linux") or host_memory._malloc_trim() is None,
    reason="needs glibc's malloc_trim",
)
def test_freed_heap_is_released():
    host_memory.release_free_heap()
    # ~200 MB of 1 KB blocks (above pymalloc's 512-byte limit, below glibc's mmap threshold:
    # on the C heap), every 16th kept alive, as a compiler leaves its heap: the free holes
    # cannot be trimmed from the top by free() and stay mapped until malloc_trim.
    blocks = [bytes(1000) + i.to_bytes(4, "little") for i in range(200_000)]
    keep = blocks[::16]
    del blocks
    released = host_memory.release_free_heap()
    assert len(keep) == 12_500 and released > 50, released
    assert host_memory.resident_mb() > 0
