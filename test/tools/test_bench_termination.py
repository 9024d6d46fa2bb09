"""plant-disease bench: SIGTERM stops its node processes as Ctrl-C does (real processes)."""

from __future__ import annotations

import os
from pathlib import Path
import signal
import subprocess
import sys

from helpers.processes import child_environment, children_of, signal_once_started
import pytest

from plant_disease_ros.tools.bench import worker_command

# A bound on a hang (the publisher used to stay blocked on its stdin for good), not on speed.
HANG_S = 30.0


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


def ignore_sigint() -> None:
    """Start the child with SIGINT ignored, as a shell's background job starts it."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)


@pytest.mark.parametrize('signum', [signal.SIGTERM, signal.SIGINT])
def test_the_camera_worker_ends_on_a_stop_signal_with_sigint_inherited_ignored(
        signum: signal.Signals) -> None:
    """One signal, no 'quit' and stdin left open: the publisher destroys its node, exits 0.

    It used to stay blocked reading its stdin (rclpy's SIGTERM handler only shut the
    context down; SIGINT was ignored), and the bench killed it after 7 s at every rig.
    """
    pytest.importorskip('rclpy')
    publisher = subprocess.Popen(
        worker_command('publisher'), env=child_environment(), stdin=subprocess.PIPE,
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, preexec_fn=ignore_sigint)
    try:
        assert publisher.stdout is not None
        assert '"ready"' in publisher.stdout.readline()
        publisher.send_signal(signum)
        try:
            # Not communicate(): it would close the stdin, which ends the worker anyway.
            publisher.wait(timeout=HANG_S)
        except subprocess.TimeoutExpired:
            pytest.fail(f'the publisher was still running {HANG_S:g} s after '
                        f'{signum.name}')
        _, stderr = publisher.communicate()
    finally:
        if publisher.poll() is None:
            publisher.kill()
            publisher.communicate()
    assert publisher.returncode == 0, stderr
    assert f'bench publisher: terminated by {signum.name}, stopping' in stderr
