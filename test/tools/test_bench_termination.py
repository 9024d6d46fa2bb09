"""plant-disease bench: SIGTERM stops its node processes as Ctrl-C does (real processes)."""

from __future__ import annotations

import os
from pathlib import Path
import signal
import subprocess
import sys

from helpers.processes import signal_once_started
import pytest


def children_of(parent: int) -> list[int]:
    """Return the ids of live (not zombie) processes whose parent is ``parent``."""
    found = []
    for entry in Path('/proc').iterdir():
        if not entry.name.isdigit():
            continue
        try:
            fields = (entry / 'stat').read_text().rsplit(') ', 1)[1].split()
        except (OSError, IndexError):
            continue
        if int(fields[1]) == parent and fields[0] != 'Z':
            found.append(int(entry.name))
    return found


def test_sigterm_stops_the_bench_processes(tmp_path: Path) -> None:
    """SIGTERM once the first rig runs: exit 143, none of its processes left behind."""
    pytest.importorskip('rclpy')
    bench = subprocess.Popen(
        [sys.executable, '-m', 'plant_disease_ros.cli.main', 'bench', '--quick',
         '--sections', 'latency', '--out', str(tmp_path / 'bench.json'),
         '--log-dir', str(tmp_path / 'logs')],
        env=dict(os.environ), stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    run = signal_once_started(bench, lambda: children_of(bench.pid), 2, signal.SIGTERM)
    assert not run.left
    assert run.returncode == 143, run.stderr
    assert run.stderr.strip().endswith('terminated by SIGTERM; its processes were stopped'), \
        run.stderr
    assert not (tmp_path / 'bench.json').exists()
