"""glibc's malloc, told to keep the memory a training step frees instead of unmapping it.

A step allocates and frees the same tens of megabytes of activations and gradients each
time. glibc serves each block over its mmap threshold (128 KB at start, rising to at
most 32 MB as blocks are freed) with a fresh mmap and unmaps it on free, so every step
page-faults its buffers in again: the cpu preset's 512-wide LSTM step at 64 x 128 (its
batch then; bf16, a 67 MB gate buffer among others) took ~39,000 page faults, and
trained at 35-48k chars/s on the AMX Xeon (2 cores). With mmap off for allocations and a
high trim threshold, the freed blocks stay in the heap for the next step: 0-70 faults a
step and 67-98k chars/s in the same runs. The width probe (engine/config/sizing.py), which
runs first in a cold process, read even further under what training then reached.

Set once per process, on Linux with glibc only (the mallopt call), before the run's
first step; a user's own glibc malloc settings (MALLOC_*_ variables, GLIBC_TUNABLES)
are left alone. The cost is memory kept rather than given back: up to TRIM_THRESHOLD of
freed heap stays mapped, and a process's footprint stays near its peak. Where glibc
cannot grow its heap it still falls back to mmap, so an allocation never fails for it.
"""

from __future__ import annotations

import ctypes
import os
import sys

_M_TRIM_THRESHOLD = -1  # glibc's mallopt parameter numbers (malloc.h)
_M_MMAP_MAX = -4
TRIM_THRESHOLD = 1 << 30  # free heap kept at its top before any is given back
_USER_SETTINGS = (
    "MALLOC_MMAP_MAX_",
    "MALLOC_MMAP_THRESHOLD_",
    "MALLOC_TRIM_THRESHOLD_",
    "MALLOC_TOP_PAD_",
    "GLIBC_TUNABLES",
)

_applied: bool | None = None


def keep_freed_memory() -> bool:
    """Tell glibc (once a process) to serve large blocks from its heap and keep what is
    freed there; whether it was set."""
    global _applied
    if _applied is None:
        _applied = _set_malloc_options()
    return _applied


def _set_malloc_options() -> bool:
    if not sys.platform.startswith("linux") or any(os.environ.get(v) for v in _USER_SETTINGS):
        return False
    try:
        mallopt = ctypes.CDLL(None).mallopt  # glibc; musl has no mallopt
    except (OSError, AttributeError):
        return False
    mallopt.argtypes = (ctypes.c_int, ctypes.c_int)
    mallopt.restype = ctypes.c_int
    return bool(mallopt(_M_TRIM_THRESHOLD, TRIM_THRESHOLD) and mallopt(_M_MMAP_MAX, 0))
