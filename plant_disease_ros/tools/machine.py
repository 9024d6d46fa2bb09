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


def cpu_time_counters(stat_path: Path = Path('/proc/stat')) -> tuple[int, int] | None:
    """Return (steal, total) CPU time of all cores in clock ticks, or None off Linux.

    Steal is time a virtual machine's cores were ready to run but the host ran something
    else: on a shared VM it is what makes two runs of the same benchmark differ.
    """
    try:
        with open(stat_path, encoding='ascii') as stat:
            fields = stat.readline().split()
    except OSError:
        return None
    if not fields or fields[0] != 'cpu' or len(fields) < 9:
        return None
    # user nice system idle iowait irq softirq steal [guest guest_nice]: guest time is
    # already counted in user and nice.
    ticks = [int(value) for value in fields[1:9]]
    return ticks[7], sum(ticks)


def steal_percent(before: tuple[int, int] | None,
                  after: tuple[int, int] | None) -> float | None:
    """Return the share of CPU time stolen by the host between two counter readings."""
    if before is None or after is None or after[1] <= before[1]:
        return None
    return round(100.0 * (after[0] - before[0]) / (after[1] - before[1]), 1)
