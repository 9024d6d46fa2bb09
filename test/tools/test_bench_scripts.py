"""The benchmark scripts of ``benchmarks/``: a script stopped by SIGTERM leaves no process.

Real processes, small sizes; nothing here is timed.
"""

from __future__ import annotations

from pathlib import Path
import signal
import subprocess
import sys

from helpers.processes import child_environment, children_of, signal_once_started
import pytest

REPOSITORY = Path(__file__).resolve().parents[2]


def test_sigterm_stops_the_recorder_start_floods_recorder() -> None:
    """SIGTERM while a round floods its recorder: the recorder is stopped, exit 143.

    It used to be started with a bare Popen and left running (re-parented to PID 1).
    """
    pytest.importorskip('rclpy')
    script = subprocess.Popen(
        [sys.executable, str(REPOSITORY / 'benchmarks' / 'recorder_start_flood.py'),
         '--records', '2000', '--detections', '1000000', '--rate', '200', '--rounds', '1'],
        cwd=REPOSITORY, env=child_environment(), stdout=subprocess.PIPE,
        stderr=subprocess.PIPE, text=True)
    run = signal_once_started(script, lambda: children_of(script.pid), 1, signal.SIGTERM)
    assert not run.left, f'left running: {run.left}\n{run.stderr}'
    assert run.returncode == 128 + signal.SIGTERM, run.stderr
    assert 'terminated by SIGTERM; its recorder was stopped' in run.stderr
