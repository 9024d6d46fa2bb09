"""What machine a figure was measured on."""

from __future__ import annotations

from pathlib import Path
import platform


def cpu_model() -> str:
    """Return the CPU model name from /proc/cpuinfo (x86 and ARM boards), else platform's."""
    try:
        for line in Path('/proc/cpuinfo').read_text().splitlines():
            if line.split(':')[0].strip() in ('model name', 'Model', 'Hardware'):
                return line.split(':', 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()
