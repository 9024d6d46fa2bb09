"""A replay refuses a namespace that already holds a pipeline (another replay, a robot's
pipeline, nodes a killed replay left): its nodes would take both replays' frames and
answer both replays' save, and the summaries would mix their detections."""

from __future__ import annotations

import os
from pathlib import Path
import subprocess
import sys

from helpers.processes import node_processes, processes_with
import pytest

pytest.importorskip('rclpy')
pytest.importorskip('rosbags')

REPO_ROOT = Path(__file__).resolve().parents[2]
DEMO_BAG = REPO_ROOT / 'demo' / 'field_demo.mcap'
# Generous bounds on things that happen; nothing here is timed.
START_TIMEOUT_S = 60.0


def test_a_replay_into_a_namespace_with_a_recorder_is_refused(
        tmp_path: Path, harness: object) -> None:
    """A recorder (a leftover's or another replay's) is running in the namespace: the
    replay exits 2 before playing, names it and the ways out, and leaves no node."""
    namespace = f'taken_{os.getpid()}'
    with node_processes(tmp_path / 'logs') as nodes:
        nodes.start('disease_map_recorder', '-r', f'__ns:=/{namespace}',
                    '-p', f'map_dir:={tmp_path / "other_maps"}')
        # The recorder is up and announced (so the replay can discover it too).
        save = f'/{namespace}/disease_map_recorder/save'
        assert harness.wait(lambda: harness.node.count_services(save) == 1,
                            START_TIMEOUT_S), nodes.logs()
        out = tmp_path / 'out'
        result = subprocess.run(
            [sys.executable, '-m', 'plant_disease_ros.cli.main', 'replay', str(DEMO_BAG),
             '--fast', '--out', str(out), '--namespace', namespace, '--quiet'],
            capture_output=True, text=True, timeout=180)
        nodes.check_alive()
    assert result.returncode == 2, result.stderr + result.stdout
    error = result.stderr.strip()
    assert error.count('\n') == 0, error
    assert f'namespace /{namespace} (domain ' in error and 'already has' in error
    # Whatever discovery showed first: the node, or its save service.
    assert 'node disease_map_recorder' in error or save in error, error
    assert 'ROS_DOMAIN_ID' in error and '--attach' in error
    assert not (out / 'summary.json').exists()
    # Its own nodes, if it started them before it saw the recorder, are stopped too.
    assert not processes_with(f'__ns:=/{namespace}')


def test_a_replay_into_a_domain_with_another_clock_is_refused(
        tmp_path: Path, harness: object) -> None:
    """Another replay (in any namespace) or a simulator publishes /clock: the nodes would
    run on both clocks, so the replay exits 2 before playing and says to use a domain."""
    from rosgraph_msgs.msg import Clock

    clock = harness.node.create_publisher(Clock, '/clock', 1)
    try:
        out = tmp_path / 'out'
        namespace = f'clocked_{os.getpid()}'
        result = subprocess.run(
            [sys.executable, '-m', 'plant_disease_ros.cli.main', 'replay', str(DEMO_BAG),
             '--fast', '--out', str(out), '--namespace', namespace, '--quiet'],
            capture_output=True, text=True, timeout=180)
    finally:
        harness.node.destroy_publisher(clock)
    assert result.returncode == 2, result.stderr + result.stdout
    error = result.stderr.strip()
    assert 'another publisher on /clock' in error, error
    assert 'different domains (ROS_DOMAIN_ID' in error
    assert not (out / 'summary.json').exists()
    assert not processes_with(f'__ns:=/{namespace}')
