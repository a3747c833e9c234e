"""The process's heap under glibc: large buffers the pipeline frees go back to the operating system.

Lance's compactions and index updates, a tokenizer.json being parsed and Arrow scans allocate and free buffers
of megabytes. glibc serves a block above its mmap threshold with a mapping of its own, returned to the system
on free, but it raises that threshold to the size of each such block freed; after that, blocks of that size
come from the heap, and a heap whose top is still in use keeps what is freed below it. A long cold ingest then
grows by about 0.9 MB per thousand texts cached (measured: 120 cache commits of 1,024 vectors each with their
compactions, +107 MB), which at a million chunks is a gigabyte the process never uses again. Fixing both
thresholds at glibc's starting value stops the growth (+10 MB over the same commits).
"""

from __future__ import annotations

import ctypes
import os
from functools import cache

# mallopt parameters (malloc.h) and the value both thresholds are fixed at: glibc's default start, 128 KiB
M_TRIM_THRESHOLD = -1
M_MMAP_THRESHOLD = -3
THRESHOLD_BYTES = 128 * 1024
# Environment variables with which an operator sets the thresholds (glibc reads them at start-up): then
# they are left as set.
_TUNABLES = ("MALLOC_MMAP_THRESHOLD_", "MALLOC_TRIM_THRESHOLD_", "GLIBC_TUNABLES")


@cache
def _libc() -> ctypes.CDLL | None:
    try:
        libc = ctypes.CDLL("libc.so.6")
        libc.mallopt  # noqa: B018 - glibc has it; another libc under that name might not
    except (OSError, AttributeError):
        return None
    return libc


@cache
def bound_heap() -> bool:
    """Fix glibc's mmap and trim thresholds for this process (once; call it before the heavy work starts).
    False where the C library is not glibc or the operator set them."""
    libc = _libc()
    if libc is None or any(name in os.environ for name in _TUNABLES):
        return False
    return bool(libc.mallopt(M_MMAP_THRESHOLD, THRESHOLD_BYTES)) and bool(
        libc.mallopt(M_TRIM_THRESHOLD, THRESHOLD_BYTES)
    )


def release_freed_memory() -> None:
    """Give the memory a loader freed back to the operating system now (glibc keeps it otherwise, and later
    work on other threads does not reuse it): parsing a large tokenizer.json frees hundreds of MB of scratch."""
    libc = _libc()
    if libc is not None:
        libc.malloc_trim(0)
