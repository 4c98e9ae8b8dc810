"""How the process's C allocator treats freed memory (`train.retain_freed_memory`).

A training step allocates and frees the same large buffers every step (the recurrent kernel's gate
workspace, the outputs of every timestep: tens of MB at batch 128 x 400 steps). glibc's malloc serves blocks
above its mmap threshold (which adapts, up to 32 MB) with a fresh `mmap`, unmaps them on `free` and trims the
top of its heap, so every step touches those pages for the first time again: one page fault per 4 KiB. On
the 2-core VM of bench/README.md that kernel time was half the CPU time of a bidirectional LSTM layer's
forward + backward (bench/bench_lstm_kernel.py). Telling malloc to serve every block from its heap and never
trim it keeps the pages mapped for later steps (from the first few on: until the heap holds a free block an
aligned request fits in, a step may still grow it); the price is that the process keeps its peak memory
reserved (and what fragmentation adds to it). This is glibc's own switch (`mallopt`), not a replacement
allocator (jemalloc or tcmalloc via LD_PRELOAD do the same from outside the process).
"""

from __future__ import annotations

import ctypes
import logging
import platform

log = logging.getLogger(__name__)

M_TRIM_THRESHOLD = -1  # malloc.h: release the heap's top to the OS only above this many free bytes
M_MMAP_MAX = -4  # malloc.h: at most this many blocks served by mmap; 0 serves every block from the heap
NEVER_TRIM = 2**31 - 1  # mallopt takes an int


def retain_freed_memory() -> bool:
    """Make glibc's malloc keep freed memory mapped for reuse in this process (and processes it forks).

    True when applied; False (and a log line) where the C library is not glibc, which has other defaults."""
    if platform.libc_ver()[0] != "glibc":
        log.info("train.retain_freed_memory: the C library is not glibc; its allocator is left as it is")
        return False
    libc = ctypes.CDLL(None)
    return bool(libc.mallopt(M_MMAP_MAX, 0)) and bool(libc.mallopt(M_TRIM_THRESHOLD, NEVER_TRIM))
