"""keep_frame_buffers_resident: when it tunes glibc malloc; frames then stay on the heap."""

from __future__ import annotations

import ctypes
import platform
import subprocess
import sys

import pytest

from plant_disease_ros.core.allocator_tuning import (
    DEFAULT_TRIM_THRESHOLD_BYTES,
    ENV_SWITCH,
    keep_frame_buffers_resident,
    MAX_MMAP_THRESHOLD_BYTES,
)

GLIBC = platform.libc_ver()[0] == 'glibc'


@pytest.mark.parametrize('value', ['0', 'off', 'false', 'No'])
def test_switched_off_by_environment(value: str) -> None:
    tuning = keep_frame_buffers_resident(environ={ENV_SWITCH: value})
    assert not tuning.applied
    assert ENV_SWITCH in tuning.reason


@pytest.mark.parametrize('variable', ['MALLOC_MMAP_THRESHOLD_', 'MALLOC_TRIM_THRESHOLD_'])
def test_user_malloc_settings_win(variable: str) -> None:
    tuning = keep_frame_buffers_resident(environ={variable: '65536'})
    assert not tuning.applied
    assert 'MALLOC_' in tuning.reason


@pytest.mark.parametrize(('mmap_bytes', 'trim_bytes'), [(0, 1), (1, 0), (-5, 10)])
def test_thresholds_must_be_positive(mmap_bytes: int, trim_bytes: int) -> None:
    with pytest.raises(ValueError, match='positive'):
        keep_frame_buffers_resident(mmap_bytes, trim_bytes, environ={})


def test_mmap_threshold_is_capped_at_what_glibc_accepts() -> None:
    # glibc refuses more than 4 MiB * sizeof(long); asking for more must not fail.
    assert MAX_MMAP_THRESHOLD_BYTES == 4 * 1024 * 1024 * ctypes.sizeof(ctypes.c_long)
    if not GLIBC:
        pytest.skip('mallopt is glibc only')
    # In a child process: the setting is process-wide.
    code = (
        'from plant_disease_ros.core.allocator_tuning import keep_frame_buffers_resident\n'
        't = keep_frame_buffers_resident(1 << 40, environ={})\n'
        'print(t.applied, t.mmap_threshold_bytes, t.trim_threshold_bytes)\n')
    out = subprocess.run([sys.executable, '-c', code], capture_output=True, text=True,
                         check=True).stdout.split()
    assert out == ['True', str(MAX_MMAP_THRESHOLD_BYTES), str(DEFAULT_TRIM_THRESHOLD_BYTES)]


# Allocates and frees an 8 MB frame-sized buffer and prints how many bytes glibc had in
# mmapped chunks while it was alive (mallinfo2().hblkhd, the 5th size_t field).
_MMAPPED_BYTES_PROBE = """
import ctypes, sys
import numpy as np
from plant_disease_ros.core.allocator_tuning import keep_frame_buffers_resident
if sys.argv[1] == 'tuned':
    assert keep_frame_buffers_resident(environ={}).applied
libc = ctypes.CDLL('libc.so.6')
class MallInfo2(ctypes.Structure):
    _fields_ = [(name, ctypes.c_size_t) for name in (
        'arena', 'ordblks', 'smblks', 'hblks', 'hblkhd', 'usmblks', 'fsmblks', 'uordblks',
        'fordblks', 'keepcost')]
libc.mallinfo2.restype = MallInfo2
before = libc.mallinfo2().hblkhd
frame = np.ones(8 * 1024 * 1024, np.uint8)
during = libc.mallinfo2().hblkhd
del frame
print(during - before)
"""


@pytest.mark.skipif(not GLIBC, reason='mallopt is glibc only')
def test_frame_buffers_come_from_the_heap_once_tuned() -> None:
    def mmapped_bytes(mode: str) -> int:
        result = subprocess.run([sys.executable, '-c', _MMAPPED_BYTES_PROBE, mode],
                                capture_output=True, text=True, check=True,
                                env={'PATH': '/usr/bin:/bin', 'PYTHONPATH': ':'.join(sys.path)})
        return int(result.stdout.strip())

    # glibc's default: a fresh 8 MB block is mmapped (and unmapped again when freed, so
    # the next frame faults its pages in again).
    assert mmapped_bytes('default') >= 8 * 1024 * 1024
    # Tuned: the block comes from the heap, which keeps it resident after the free.
    assert mmapped_bytes('tuned') == 0
