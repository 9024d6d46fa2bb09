"""Ctrl-C of a launch: the detections waiting for a GPS fix still reach the map.

Launched nodes get one SIGINT each when the user presses Ctrl-C. rclpy's own handler
shuts the ROS context down inside the signal, so the classifier could no longer publish
the detections still waiting for the fix after their frames, and the recorder stopped
taking what was on its way: both were lost at every stop of a drive. These tests run the
launch default's node processes (``plant_disease_pipeline`` and ``disease_map_recorder``),
signal them together as a terminal does, and read the map file they leave.
"""

from __future__ import annotations

from collections.abc import Iterator
import json
from pathlib import Path
import signal
import time

import pytest

rclpy = pytest.importorskip('rclpy')

from helpers.gps import make_fix  # noqa: E402
from helpers.images import leaf_rgb, make_image  # noqa: E402
from helpers.maps import feature_at, LATE_BLIGHT  # noqa: E402
from helpers.processes import node_processes, NodeProcesses  # noqa: E402
from helpers.ros import (  # noqa: E402
    Collector,
    diagnostics_collector,
    Harness,
    latest_diagnostics,
    results_qos,
    wait_for,
)
from helpers.shipped_model import require_shipped_model  # noqa: E402
from rclpy.qos import QoSProfile  # noqa: E402
from sensor_msgs.msg import Image, NavSatFix  # noqa: E402
from std_msgs.msg import String  # noqa: E402

from plant_disease_ros.core.map_file import scan_geojson_seq  # noqa: E402

START_TIMEOUT_S = 60.0
EXIT_TIMEOUT_S = 30.0
FRAMES = 3
RUN_NAME = 'stop_signal'


@pytest.fixture
def harness(ros_context) -> Iterator[Harness]:
    """The test's own node: camera, GPS and listeners."""
    harness = Harness(ros_context, name='stop_signal_field')
    yield harness
    harness.close()


def recorded(path: Path) -> list[dict]:
    """Return the properties of the complete records in the map file ``path``."""
    if not path.exists():
        return []
    return [feature['properties'] for feature in scan_geojson_seq(path)[0]]


def exit_status(processes: NodeProcesses, name: str) -> int | None:
    """Wait for child ``name`` to exit; return its status (None: still running)."""
    child = processes[name]
    assert wait_for(lambda: not child.alive(), EXIT_TIMEOUT_S), f'{name} did not stop'
    return child.popen.returncode


def start_field_nodes(processes: NodeProcesses, map_dir: Path) -> None:
    """Start the launch default's processes; detections wait up to 10 s for a fix."""
    require_shipped_model()
    processes.start('plant_disease_pipeline', '-p', 'score_threshold:=0.0',
                    '-p', 'num_threads:=1', '-p', 'fix_wait_s:=10.0',
                    '-p', 'max_fix_age_s:=60.0', '-p', 'diagnostics_period_s:=0.2')
    processes.start('disease_map_recorder', '-p', f'map_dir:={map_dir}',
                    '-p', f'run_name:={RUN_NAME}')


def test_ctrl_c_records_the_detections_waiting_for_a_fix(harness: Harness,
                                                         tmp_path: Path) -> None:
    """SIGINT to both processes at once: every classified frame is in the map file."""
    node = harness.node
    images = node.create_publisher(Image, 'image_raw', QoSProfile(depth=10))
    fixes = node.create_publisher(NavSatFix, 'fix', QoSProfile(depth=10))
    results = Collector(node, [('/classification', String)], results_qos())
    diagnostics = diagnostics_collector(node)
    records_path = tmp_path / 'maps' / f'{RUN_NAME}.geojsons'
    with node_processes(tmp_path / 'logs') as processes:
        start_field_nodes(processes, tmp_path / 'maps')
        harness.wait_for_subscribers(images, timeout_s=START_TIMEOUT_S)
        harness.wait_for_subscribers(fixes, timeout_s=START_TIMEOUT_S)
        # The recorder's two subscriptions (transient local and volatile) on detections.
        assert harness.wait(lambda: node.count_subscribers('/detections') >= 2
                            and results.subscriptions[0].get_publisher_count() == 1,
                            START_TIMEOUT_S), processes.logs()
        start_s = time.time()
        fixes.publish(make_fix(47.3769, 8.5417, 408.0, stamp_s=start_s))
        assert harness.wait(lambda: (latest_diagnostics(diagnostics, 'disease_classifier')
                                     or {}).get('fixes_received') == '1', START_TIMEOUT_S)
        rgb = leaf_rgb(320, 240)
        # One at a time: the camera node keeps only the newest frame.
        for frame in range(FRAMES):
            assert harness.publish_and_wait(
                images, make_image(rgb, 'bgr8', stamp_s=start_s + 0.5 + 0.1 * frame,
                                   frame_id=f'waiting-{frame}'),
                results, '/classification', START_TIMEOUT_S), processes.logs()
        # Each waits for a fix after its stamp, which never comes: nothing recorded yet.
        assert not harness.wait(lambda: recorded(records_path), timeout_s=0.5)
        for name in ('plant_disease_pipeline', 'disease_map_recorder'):
            processes[name].popen.send_signal(signal.SIGINT)
        statuses = {name: exit_status(processes, name)
                    for name in ('plant_disease_pipeline', 'disease_map_recorder')}
        logs = processes.logs()
    assert statuses == {'plant_disease_pipeline': 0, 'disease_map_recorder': 0}, logs
    assert 'were not published' not in logs
    records = recorded(records_path)
    assert sorted(record['frame_id'] for record in records) == \
        [f'waiting-{frame}' for frame in range(FRAMES)], logs
    assert {record['fix_status'] for record in records} == {'nearest'}
    summary = json.loads((tmp_path / 'maps' / f'{RUN_NAME}_summary.json').read_text())
    assert summary['detections'] == FRAMES, summary


def test_the_recorder_stops_waiting_for_a_publisher_that_goes_on(harness: Harness,
                                                                 tmp_path: Path) -> None:
    """A classifier that is not stopping (another machine): the recorder waits, then stops."""
    node = harness.node
    detections = node.create_publisher(String, 'detections', QoSProfile(depth=10))
    records_path = tmp_path / 'maps' / f'{RUN_NAME}.geojsons'
    with node_processes(tmp_path / 'logs') as processes:
        processes.start('disease_map_recorder', '-p', f'map_dir:={tmp_path / "maps"}',
                        '-p', f'run_name:={RUN_NAME}')
        harness.wait_for_subscribers(detections, timeout_s=START_TIMEOUT_S)
        detections.publish(String(data=json.dumps(feature_at(1.0, 2.0, sec=int(time.time())))))
        assert harness.wait(lambda: len(recorded(records_path)) == 1, START_TIMEOUT_S), \
            processes.logs()
        processes['disease_map_recorder'].popen.send_signal(signal.SIGINT)
        # The test's node spins on: its publisher stays, as a running classifier's would.
        assert harness.wait(lambda: not processes['disease_map_recorder'].alive(),
                            EXIT_TIMEOUT_S), processes.logs()
        status = processes['disease_map_recorder'].popen.returncode
        logs = processes.logs()
    assert status == 0, logs
    assert 'taking the last messages on /detections' in logs
    assert '/detections still has publishers after 3 s' in logs
    assert [record['label'] for record in recorded(records_path)] == [LATE_BLIGHT]
