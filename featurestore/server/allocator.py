"""Keep the C allocator's freed memory in the server process between requests (glibc ``mallopt``)."""

from __future__ import annotations

import ctypes
import logging

__all__ = ["keep_freed_memory", "TRIM_THRESHOLD", "MMAP_THRESHOLD"]

# glibc's mallopt parameters (malloc.h).
_M_TRIM_THRESHOLD = -1
_M_MMAP_THRESHOLD = -3
# Freed memory kept at the top of the heap before it is returned to the OS (glibc's default: 128 KB).
TRIM_THRESHOLD = 64 * 1024 * 1024
# Blocks at least this large get their own mapping (glibc's default starts at 128 KB).
MMAP_THRESHOLD = 4 * 1024 * 1024

logger = logging.getLogger("featurestore.server")


def keep_freed_memory(trim: int = TRIM_THRESHOLD, mmap: int = MMAP_THRESHOLD) -> bool:
    """Raise glibc's trim and mmap thresholds for this process; return whether it took effect.

    A 100-entity Feast-shaped answer is ~110 KB, built and freed on every request. With glibc's
    defaults the freed block at the top of the heap is handed back to the OS and the next request
    faults its pages in again, zeroed: ~20 page faults per request, about a tenth of its CPU. With
    these thresholds the process keeps up to 64 MB of freed heap for reuse. Other C libraries
    (musl, macOS) are left as they are. The spool converter, which reads in 32 MB blocks, asks for
    larger thresholds.
    """
    try:
        mallopt = ctypes.CDLL(None).mallopt  # the process's own symbols: its C library's, without a lookup
    except (OSError, AttributeError, TypeError):
        return False
    mallopt.argtypes = [ctypes.c_int, ctypes.c_int]
    mallopt.restype = ctypes.c_int
    done = bool(mallopt(_M_TRIM_THRESHOLD, trim)) and bool(mallopt(_M_MMAP_THRESHOLD, mmap))
    if not done:
        logger.debug("mallopt refused the allocator thresholds; the C library's defaults stay")
    return done
