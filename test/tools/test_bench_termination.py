"""plant-disease bench: SIGTERM stops its node processes as Ctrl-C does (real processes)."""

from __future__ import annotations

import os
from pathlib import Path
import signal
import subprocess
import sys
import time

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
    children: list[int] = []
    left: list[int] = []
    try:
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline and len(children) < 2:
            children = children_of(bench.pid)
            time.sleep(0.2)
        assert len(children) >= 2
        time.sleep(1.0)
        bench.send_signal(signal.SIGTERM)
        _, err = bench.communicate(timeout=40)
    finally:
        if bench.poll() is None:
            bench.kill()
            bench.wait()
        # Survivors are noted, then killed: a failing run leaves nothing behind.
        left = [pid for pid in children if Path(f'/proc/{pid}').exists()]
        for pid in left:
            os.kill(pid, signal.SIGKILL)
    assert not left
    assert bench.returncode == 143, err
    assert err.strip().endswith('terminated by SIGTERM; its processes were stopped'), err
    assert not (tmp_path / 'bench.json').exists()
