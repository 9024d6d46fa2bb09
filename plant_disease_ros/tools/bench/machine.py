"""What machine a figure was measured on, how loaded it was, and how much a VM host stole."""

from __future__ import annotations

from datetime import datetime, timezone
import math
import os
from pathlib import Path
import platform
import time
from typing import Any

from plant_disease_ros.tools.bench.environment import git_describe, package_versions


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


def busy_processes(threshold_percent: float = 20.0, sample_s: float = 0.5) -> list[dict]:
    """Return the other processes using more than ``threshold_percent`` of a core now."""
    import psutil

    own = os.getpid()
    processes = []
    for process in psutil.process_iter(['pid', 'name']):
        if process.info['pid'] == own:
            continue
        try:
            process.cpu_percent(None)
            processes.append(process)
        except (psutil.NoSuchProcess, psutil.AccessDenied):
            continue
    time.sleep(sample_s)
    busy = []
    for process in processes:
        try:
            percent = process.cpu_percent(None)
        except (psutil.NoSuchProcess, psutil.AccessDenied):
            continue
        if percent >= threshold_percent:
            busy.append({'pid': process.info['pid'], 'name': process.info['name'],
                         'cpu_percent': round(percent, 1)})
    return sorted(busy, key=lambda item: -item['cpu_percent'])


def describe_machine() -> dict[str, Any]:
    """Return the machine, its load and the library versions, for the report."""
    import psutil

    cores = os.cpu_count() or 1
    try:
        usable = len(os.sched_getaffinity(0))
    except AttributeError:
        usable = cores
    load = os.getloadavg() if hasattr(os, 'getloadavg') else (math.nan,) * 3
    busy = busy_processes()
    return {
        'date_utc': datetime.now(timezone.utc).isoformat(timespec='seconds'),
        'cpu_model': cpu_model(),
        'cores_logical': cores,
        'cores_physical': psutil.cpu_count(logical=False),
        'cores_usable': usable,
        'memory_gb': round(psutil.virtual_memory().total / 2**30, 1),
        'platform': platform.platform(),
        'machine': platform.machine(),
        'python': platform.python_version(),
        'load_average_1_5_15': [round(value, 2) for value in load],
        'busy_processes_at_start': busy,
        'busy': bool(busy) or load[0] > 0.5 * usable,
        'versions': package_versions(),
        'git': git_describe(),
    }
