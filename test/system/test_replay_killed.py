"""A replay killed with SIGKILL (the OOM killer, ``kill -9``, a CI timeout) runs no clean-up:
its node processes must still end, or they would serve the next replay in the domain."""

from __future__ import annotations

import os
from pathlib import Path
import signal
import subprocess
import sys
import time

from helpers.processes import processes_with
import pytest

pytest.importorskip('rclpy')
pytest.importorskip('rosbags')

REPO_ROOT = Path(__file__).resolve().parents[2]
DEMO_BAG = REPO_ROOT / 'demo' / 'field_demo.mcap'
START_TIMEOUT_S = 90.0
# Generous: the nodes only need to stop as on a Ctrl-C; a failing run waits this long once.
EXIT_TIMEOUT_S = 60.0


def wait_for_processes(find: object, done: object, timeout_s: float) -> list[int]:
    """Poll ``find()`` until ``done(found)`` holds or ``timeout_s`` passes; return the last."""
    deadline = time.monotonic() + timeout_s
    found = find()
    while not done(found) and time.monotonic() < deadline:
        time.sleep(0.2)
        found = find()
    return found


def _text(path: Path) -> str:
    """Return the file's text, '' while it does not exist."""
    try:
        return path.read_text(errors='replace')
    except OSError:
        return ''


def test_the_nodes_of_a_replay_killed_with_sigkill_end(tmp_path: Path, harness: object) -> None:
    """kill -9 of a replay under way (its recorder has placed a detection): its three node
    processes stop by themselves."""
    namespace = f'killed_{os.getpid()}'
    replay = subprocess.Popen(
        [sys.executable, '-m', 'plant_disease_ros.cli.main', 'replay', str(DEMO_BAG),
         '--rate', '0.5', '--out', str(tmp_path / 'out'), '--namespace', namespace,
         '--quiet'], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    children: list[int] = []
    left: list[int] = []
    try:
        def find() -> list[int]:
            return processes_with(f'__ns:=/{namespace}')

        children = wait_for_processes(
            find, lambda found: len(found) >= 3 or replay.poll() is not None,
            START_TIMEOUT_S)
        assert len(children) == 3 and replay.poll() is None
        recorder_log = tmp_path / 'out' / 'logs' / 'disease_map_recorder.log'
        located = wait_for_processes(
            lambda: [1] if 'ENU origin' in _text(recorder_log) else [],
            lambda found: bool(found) or replay.poll() is not None, START_TIMEOUT_S)
        assert located and replay.poll() is None, _text(recorder_log)
        replay.kill()
        replay.wait()
        left = wait_for_processes(find, lambda found: not found, EXIT_TIMEOUT_S)
    finally:
        if replay.poll() is None:
            replay.kill()
            replay.wait()
        for pid in set(left) | set(processes_with(f'__ns:=/{namespace}')):
            try:
                os.kill(pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
    assert not left, f'still running after the replay was killed: {left}'
    # The killed replay's /clock stays listed until its DDS lease ends (a later replay in
    # this domain would be refused until then): let it go before the next test.
    harness.wait(lambda: harness.node.count_publishers('/clock') == 0, EXIT_TIMEOUT_S)
