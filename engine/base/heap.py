"""Freed memory goes back to the operating system (glibc's malloc keeps much of it otherwise).

A long-running app that allocates and frees arrays of a few MiB (embeddings, slices, masks) on several
threads sees its resident set grow far past what it holds: glibc raises its mmap threshold after the
first large block is freed (up to 32 MiB), so later arrays of that size come from the heap arenas
(one per thread, up to 8 per core), and freed heap memory is returned only from the top of an arena.
Measured on the app's smoke test (a 512x512x300 CT, bench/bench_memory.py), this is a few hundred MiB.

:func:`tune_malloc` fixes the threshold at 1 MiB (so every array of 1 MiB or more is its own mapping,
unmapped when freed) and caps the arenas; :func:`release_free_memory` hands free heap pages back after a
big job. Both do nothing (and return False) where the C library is not glibc (Windows, macOS, musl).
"""

from __future__ import annotations

import ctypes
import ctypes.util
import sys

# mallopt parameters (glibc malloc.h)
_M_TRIM_THRESHOLD = -1
_M_MMAP_THRESHOLD = -3
_M_ARENA_MAX = -8

#: arrays this large or larger get their own mapping (returned to the OS when freed)
MMAP_THRESHOLD = 1 << 20
#: most malloc arenas (glibc's default is 8 per core); small objects only, once arrays are mapped
ARENA_MAX = 4


def _glibc():
    if not sys.platform.startswith("linux"):
        return None
    try:
        libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6")
        libc.mallopt.argtypes, libc.mallopt.restype = [ctypes.c_int, ctypes.c_int], ctypes.c_int
        libc.malloc_trim.argtypes, libc.malloc_trim.restype = [ctypes.c_size_t], ctypes.c_int
        return libc
    except (OSError, AttributeError):  # not glibc (musl has no mallopt)
        return None


def tune_malloc(mmap_threshold: int = MMAP_THRESHOLD, arena_max: int = ARENA_MAX) -> bool:
    """Fix glibc's mmap threshold (bytes) and cap its arenas, for this process from now on.

    Call it once, early (before the worker threads start). Returns True where it took effect."""
    libc = _glibc()
    if libc is None:
        return False
    ok = libc.mallopt(_M_MMAP_THRESHOLD, int(mmap_threshold)) == 1
    ok &= libc.mallopt(_M_TRIM_THRESHOLD, 2 * int(mmap_threshold)) == 1
    ok &= libc.mallopt(_M_ARENA_MAX, int(arena_max)) == 1
    return bool(ok)


def release_free_memory() -> bool:
    """Return free heap memory to the OS (glibc ``malloc_trim(0)``); True when some was released."""
    libc = _glibc()
    return bool(libc is not None and libc.malloc_trim(0))


__all__ = ["ARENA_MAX", "MMAP_THRESHOLD", "release_free_memory", "tune_malloc"]
