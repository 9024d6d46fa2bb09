"""Keep freed frame buffers in the process instead of handing them back to the kernel.

Why: glibc returns large freed blocks to the kernel, so each frame of an image stream
would fault in fresh pages for buffers of the frame's size; raising the mmap and trim
thresholds keeps those buffers on the heap, already resident.

The cost is free heap the process keeps after a peak (at most ``trim_threshold_bytes``).
``PLANT_DISEASE_TUNE_MALLOC=0`` switches it off; the user's ``MALLOC_*_THRESHOLD_``
variables win; without glibc's ``mallopt`` (musl, macOS) nothing is changed.
"""

from __future__ import annotations

import ctypes
import ctypes.util
from dataclasses import dataclass
import os

# glibc's mallopt parameter numbers (malloc.h).
_M_TRIM_THRESHOLD = -1
_M_MMAP_THRESHOLD = -3

# glibc refuses mmap thresholds above 4 MiB * sizeof(long): 32 MiB on 64-bit, 16 MiB on
# 32-bit ARM.
MAX_MMAP_THRESHOLD_BYTES = 4 * 1024 * 1024 * ctypes.sizeof(ctypes.c_long)
# Above a 4K bgr8 frame (3840 x 2160 x 3 = 24.9 MB) where glibc allows it: any frame
# buffer comes from the heap.
DEFAULT_MMAP_THRESHOLD_BYTES = MAX_MMAP_THRESHOLD_BYTES
# Free memory at the heap top that is kept rather than trimmed: a few full-HD frames and
# their copies.
DEFAULT_TRIM_THRESHOLD_BYTES = 128 * 1024 * 1024
# Set to 0 to leave the allocator at its defaults.
ENV_SWITCH = 'PLANT_DISEASE_TUNE_MALLOC'


@dataclass(frozen=True)
class AllocatorTuning:
    """What :func:`keep_frame_buffers_resident` did."""

    applied: bool
    reason: str
    mmap_threshold_bytes: int = 0
    trim_threshold_bytes: int = 0


def _mallopt() -> ctypes._CFuncPtr | None:
    """Return glibc's ``mallopt`` or None where there is none."""
    name = ctypes.util.find_library('c')
    try:
        libc = ctypes.CDLL(name) if name else ctypes.CDLL(None)
    except OSError:
        return None
    function = getattr(libc, 'mallopt', None)
    if function is None:
        return None
    function.argtypes = (ctypes.c_int, ctypes.c_int)
    function.restype = ctypes.c_int
    return function


def keep_frame_buffers_resident(
        mmap_threshold_bytes: int = DEFAULT_MMAP_THRESHOLD_BYTES,
        trim_threshold_bytes: int = DEFAULT_TRIM_THRESHOLD_BYTES,
        environ: dict[str, str] | None = None) -> AllocatorTuning:
    """Tune glibc malloc so freed frame buffers stay resident; return what was done.

    Call it once, early in a process that handles image streams. Does nothing when
    ``PLANT_DISEASE_TUNE_MALLOC=0`` is set, when the user set ``MALLOC_MMAP_THRESHOLD_``
    or ``MALLOC_TRIM_THRESHOLD_`` (their choice wins), or without glibc.
    """
    env = os.environ if environ is None else environ
    if env.get(ENV_SWITCH, '1').strip().lower() in ('0', 'false', 'no', 'off'):
        return AllocatorTuning(False, f'{ENV_SWITCH} is off')
    if 'MALLOC_MMAP_THRESHOLD_' in env or 'MALLOC_TRIM_THRESHOLD_' in env:
        return AllocatorTuning(False, 'MALLOC_*_THRESHOLD_ set in the environment')
    if mmap_threshold_bytes <= 0 or trim_threshold_bytes <= 0:
        raise ValueError('thresholds must be positive')
    mmap_bytes = min(int(mmap_threshold_bytes), MAX_MMAP_THRESHOLD_BYTES)
    trim_bytes = int(trim_threshold_bytes)
    mallopt = _mallopt()
    if mallopt is None:
        return AllocatorTuning(False, 'no mallopt (not glibc)')
    # mallopt returns 1 on success, 0 when it refuses a value.
    if not mallopt(_M_MMAP_THRESHOLD, mmap_bytes):
        return AllocatorTuning(False, f'mallopt refused an mmap threshold of {mmap_bytes} bytes')
    if not mallopt(_M_TRIM_THRESHOLD, trim_bytes):
        return AllocatorTuning(False, f'mallopt refused a trim threshold of {trim_bytes} bytes')
    return AllocatorTuning(True, 'freed frame buffers stay resident', mmap_bytes, trim_bytes)
