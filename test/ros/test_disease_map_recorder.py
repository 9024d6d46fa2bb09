"""disease_map_recorder with real rclpy: records, markers, save, diagnostics, kill -9.

In-process tests run the node and a test node in one executor on the ``ros_context``
fixture; the crash tests start the console script as a subprocess (loopback DDS, the test
run's domain id), SIGKILL it mid-stream and restart it on the same run.
"""

from __future__ import annotations

from collections.abc import Iterator
import json
import os
from pathlib import Path
import signal
import subprocess
import sys
import time

from conftest import spin_until
import pytest

from plant_disease_ros.core.geodesy import enu_to_geodetic
from plant_disease_ros.core.map_file import read_geojson_seq, RECORD_SEPARATOR

rclpy = pytest.importorskip('rclpy')

from diagnostic_msgs.msg import DiagnosticArray, DiagnosticStatus  # noqa: E402
from rclpy.executors import SingleThreadedExecutor  # noqa: E402
from rclpy.parameter import Parameter  # noqa: E402
from rclpy.qos import DurabilityPolicy, QoSProfile, ReliabilityPolicy  # noqa: E402
from std_msgs.msg import String  # noqa: E402
from std_srvs.srv import Trigger  # noqa: E402
from visualization_msgs.msg import Marker, MarkerArray  # noqa: E402

from plant_disease_ros.nodes.disease_map_recorder import DiseaseMapRecorder  # noqa: E402

DATUM = (50.8503, 4.3517, 60.0)
RELIABLE = QoSProfile(depth=100, reliability=ReliabilityPolicy.RELIABLE)
LATCHED = QoSProfile(depth=1, reliability=ReliabilityPolicy.RELIABLE,
                     durability=DurabilityPolicy.TRANSIENT_LOCAL)
LATE_BLIGHT = 'Tomato___Late_blight'
HEALTHY = 'Tomato___healthy'


def detection(sequence: int, east: float | None = 0.0, north: float | None = 0.0,
              label: str = LATE_BLIGHT, confidence: float = 0.9) -> dict:
    """Return a detection Feature at ENU ``east, north`` from DATUM (None: no position)."""
    geometry = None
    if east is not None and north is not None:
        lat, lon, alt = enu_to_geodetic(east, north, 0.0, *DATUM)
        geometry = {'type': 'Point', 'coordinates': [lon, lat, alt]}
    return {'type': 'Feature', 'geometry': geometry, 'properties': {
        'stamp': {'sec': sequence, 'nanosec': 0}, 'frame_id': 'camera', 'label': label,
        'class_index': 3, 'confidence': confidence,
        'top_k': [{'label': label, 'index': 3, 'score': confidence}],
        'healthy': label.endswith('healthy'),
        'fix_status': 'interpolated' if geometry else 'stale', 'fix_age_s': 0.1,
        'horizontal_accuracy_m': None}}


def sequences(features: list[dict]) -> list[int]:
    return [feature['properties']['stamp']['sec'] for feature in features]


class Harness:
    """A recorder node and a test node that talks to it, spun by one executor."""

    def __init__(self, context: object, map_dir: Path, **parameters: object) -> None:
        overrides = {'map_dir': str(map_dir), 'run_name': 'field', 'use_datum': True,
                     'datum_latitude': DATUM[0], 'datum_longitude': DATUM[1],
                     'datum_altitude': DATUM[2], 'marker_period_s': 0.2, **parameters}
        self.recorder = DiseaseMapRecorder(
            context=context,
            parameter_overrides=[Parameter(name, value=value)
                                 for name, value in overrides.items()])
        self.node = rclpy.create_node('recorder_test_client', context=context)
        self.publisher = self.node.create_publisher(String, 'detections', RELIABLE)
        self.markers: list[MarkerArray] = []
        self.diagnostics: list[DiagnosticArray] = []
        self.node.create_subscription(MarkerArray, 'markers', self.markers.append, LATCHED)
        self.node.create_subscription(DiagnosticArray, '/diagnostics',
                                      self.diagnostics.append, 10)
        self.save_client = self.node.create_client(Trigger, '/disease_map_recorder/save')
        self.executor = SingleThreadedExecutor(context=context)
        self.executor.add_node(self.recorder)
        self.executor.add_node(self.node)

    def spin_until(self, predicate, timeout_s: float = 10.0) -> bool:
        return spin_until(self.executor, predicate, timeout_s)

    def connect(self) -> None:
        assert self.spin_until(lambda: self.publisher.get_subscription_count() > 0)

    def publish(self, value: object) -> None:
        data = value if isinstance(value, str) else json.dumps(value)
        self.publisher.publish(String(data=data))

    def save(self) -> Trigger.Response:
        assert self.save_client.wait_for_service(timeout_sec=5.0)
        future = self.save_client.call_async(Trigger.Request())
        assert self.spin_until(future.done)
        return future.result()

    def latest_status_values(self) -> dict[str, str]:
        for array in reversed(self.diagnostics):
            for status in array.status:
                if status.name.startswith('disease_map_recorder'):
                    return {item.key: item.value for item in status.values}
        return {}

    def close(self) -> None:
        self.executor.shutdown()
        self.recorder.destroy_node()
        self.node.destroy_node()


@pytest.fixture
def harness(ros_context: object, tmp_path: Path) -> Iterator[Harness]:
    rig = Harness(ros_context, tmp_path / 'maps')
    try:
        yield rig
    finally:
        rig.close()


def test_records_markers_save_and_diagnostics(harness: Harness, tmp_path: Path) -> None:
    harness.connect()
    sent = [
        detection(1, 0.5, 0.5, LATE_BLIGHT, 0.7),     # cell (0, 0)
        detection(2, 1.5, 1.0, LATE_BLIGHT, 0.95),    # cell (0, 0)
        detection(3, 1.0, 1.9, HEALTHY, 0.8),         # cell (0, 0)
        detection(4, 7.0, -3.0, HEALTHY, 0.85),       # cell (3, -2)
        detection(5, None, None, LATE_BLIGHT, 0.9),   # no position
    ]
    for feature in sent[:3]:
        harness.publish(feature)
    harness.publish('{"type": "Feature", "geometry": ')   # not JSON
    harness.publish('{"type": "Point", "coordinates": [4.3, 50.8]}')  # JSON, not a Feature
    harness.publish('{"type": "Feature", "geometry": null, "properties": {"x": NaN}}')
    for feature in sent[3:]:
        harness.publish(feature)
    recorder = harness.recorder
    assert harness.spin_until(lambda: recorder.records_written == 5)
    assert recorder.rejected == {'invalid_json': 2, 'not_a_feature': 1}

    records_path = tmp_path / 'maps' / 'field.geojsons'
    assert recorder.records_path == records_path
    lines = records_path.read_bytes().split(b'\n')
    assert lines[-1] == b'' and len(lines) == 6
    assert all(line.startswith(RECORD_SEPARATOR) for line in lines[:-1])
    assert [json.loads(line[1:]) for line in lines[:-1]] == sent

    def cells_in(array: MarkerArray) -> dict[int, Marker]:
        return {marker.id: marker for marker in array.markers
                if marker.ns == 'disease_cells' and marker.action == Marker.ADD}

    harness.markers.clear()
    assert harness.spin_until(lambda: len(harness.markers) >= 2
                              and len(cells_in(harness.markers[-1])) == 2)
    shapes = cells_in(harness.markers[-1])
    texts = {marker.id: marker for marker in harness.markers[-1].markers
             if marker.ns == 'disease_cell_labels'}
    assert set(texts) == set(shapes)
    by_position = {(round(m.pose.position.x, 6), round(m.pose.position.y, 6)): m
                   for m in shapes.values()}
    assert set(by_position) == {(1.0, 1.0), (7.0, -3.0)}
    diseased, healthy = by_position[(1.0, 1.0)], by_position[(7.0, -3.0)]
    assert diseased.header.frame_id == 'map'
    assert diseased.type == Marker.CYLINDER and healthy.type == Marker.SPHERE
    assert diseased.color.r > diseased.color.g  # the late blight colour, not green
    assert healthy.color.g > healthy.color.r
    assert diseased.scale.z > healthy.scale.z  # three detections against one
    assert 'Late blight' in texts[diseased.id].text and '3x' in texts[diseased.id].text
    assert texts[diseased.id].type == Marker.TEXT_VIEW_FACING
    # Ids stay with their cells from one publication to the next.
    assert {m.id: (m.pose.position.x, m.pose.position.y) for m in
            cells_in(harness.markers[-2]).values()} == {
        m.id: (m.pose.position.x, m.pose.position.y) for m in shapes.values()}

    assert harness.spin_until(
        lambda: harness.latest_status_values().get('records_written') == '5', 5.0)
    values = harness.latest_status_values()
    assert (values['received'], values['processed']) == ('8', '5')
    assert values['rejected.invalid_json'] == '2'
    assert values['rejected.not_a_feature'] == '1'
    assert values['rejected'] == '3'
    assert values['file'] == str(records_path)
    assert (values['located'], values['unlocated'], values['cells']) == ('4', '1', '2')
    assert float(values['latency_mean_ms']) > 0.0  # append + fsync per record
    assert any(status.level == DiagnosticStatus.WARN for array in harness.diagnostics
               for status in array.status if status.name.startswith('disease_map_recorder'))

    response = harness.save()
    assert response.success, response.message
    collection = json.loads((tmp_path / 'maps' / 'field.geojson').read_text())
    assert collection == {'type': 'FeatureCollection', 'features': sent}
    summary = json.loads((tmp_path / 'maps' / 'field_summary.json').read_text())
    assert summary['detections'] == 5
    assert (summary['located'], summary['unlocated']) == (4, 1)
    assert summary['detections_per_label'] == {LATE_BLIGHT: 3, HEALTHY: 2}
    assert summary['diseased_cells_per_label'] == {LATE_BLIGHT: 1}
    assert summary['rejected_this_session'] == {'invalid_json': 2, 'not_a_feature': 1}
    assert summary['origin'] == {'latitude': DATUM[0], 'longitude': DATUM[1],
                                 'altitude': DATUM[2]}


def test_parameters_are_described_and_validated(harness: Harness) -> None:
    recorder = harness.recorder
    descriptor = recorder.describe_parameter('cell_size_m')
    assert descriptor.read_only and descriptor.description
    assert descriptor.floating_point_range[0].from_value == pytest.approx(0.1)
    assert recorder.describe_parameter('run_name').read_only
    assert not recorder.set_parameters([Parameter('cell_size_m', value=5.0)])[0].successful
    assert not recorder.set_parameters([Parameter('map_frame', value='')])[0].successful
    assert not recorder.set_parameters(
        [Parameter('marker_period_s', value=0.0)])[0].successful
    assert recorder.set_parameters([Parameter('map_frame', value='odom')])[0].successful
    assert recorder.set_parameters([Parameter('marker_period_s', value=0.1)])[0].successful
    harness.connect()
    harness.publish(detection(1, 2.0, 2.0))
    harness.markers.clear()
    assert harness.spin_until(lambda: any(
        marker.header.frame_id == 'odom' and marker.ns == 'disease_cells'
        for array in harness.markers for marker in array.markers))


def test_continues_an_existing_run(ros_context: object, tmp_path: Path) -> None:
    map_dir = tmp_path / 'maps'
    first = Harness(ros_context, map_dir, use_datum=False)
    try:
        first.connect()
        for sequence in range(3):
            first.publish(detection(sequence, 3.0 * sequence, 0.0))
        assert first.spin_until(lambda: first.recorder.records_written == 3)
        origin = first.recorder._aggregator.origin
    finally:
        first.close()
    second = Harness(ros_context, map_dir, use_datum=False)
    try:
        assert second.recorder.records_at_start == 3
        # The ENU origin is again the run's first fix, so cells keep their places.
        assert second.recorder._aggregator.origin == origin
        second.connect()
        second.publish(detection(10, 1.0, 1.0))
        assert second.spin_until(lambda: second.recorder.records_written == 1)
    finally:
        second.close()
    assert sequences(read_geojson_seq(map_dir / 'field.geojsons')) == [0, 1, 2, 10]


def test_write_failure_is_counted_and_reported(ros_context: object, tmp_path: Path) -> None:
    blocker = tmp_path / 'not_a_directory'
    blocker.write_text('x')
    rig = Harness(ros_context, blocker)
    try:
        rig.connect()
        rig.publish(detection(1, 1.0, 1.0))
        assert rig.spin_until(lambda: rig.recorder.rejected.get('write_failed') == 1)
        assert rig.spin_until(lambda: any(
            status.level == DiagnosticStatus.ERROR for array in rig.diagnostics
            for status in array.status), 5.0)
        assert rig.recorder.records_written == 0
    finally:
        rig.close()


def test_construction_alone_writes_nothing(ros_context: object, tmp_path: Path) -> None:
    rig = Harness(ros_context, tmp_path / 'maps')
    rig.close()
    assert not (tmp_path / 'maps').exists()


# --- the console script as a process: kill -9 and restart -------------------------------

def recorder_command() -> list[str]:
    script = Path(sys.executable).with_name('disease_map_recorder')
    if script.exists():
        return [str(script)]
    return [sys.executable, '-m', 'plant_disease_ros.nodes.disease_map_recorder']


def start_recorder(map_dir: Path, run_name: str, log_path: Path) -> subprocess.Popen:
    environment = dict(os.environ, ROS_AUTOMATIC_DISCOVERY_RANGE='LOCALHOST',
                       PYTHONUNBUFFERED='1')
    environment.setdefault('ROS_DOMAIN_ID', '0')
    log = open(log_path, 'ab')
    return subprocess.Popen(
        recorder_command() + ['--ros-args', '-p', f'map_dir:={map_dir}',
                              '-p', f'run_name:={run_name}'],
        env=environment, stdout=log, stderr=subprocess.STDOUT)


class Streamer:
    """Publish numbered detections and watch the recorder's file for them."""

    def __init__(self, context: object, records_path: Path) -> None:
        self.node = rclpy.create_node('recorder_crash_test', context=context)
        self.publisher = self.node.create_publisher(String, 'detections', RELIABLE)
        self.executor = SingleThreadedExecutor(context=context)
        self.executor.add_node(self.node)
        self.records_path = records_path
        self.next_sequence = 1000
        self.sent_at: dict[int, float] = {}

    def publish_next(self) -> int:
        sequence = self.next_sequence
        self.next_sequence += 1
        self.publisher.publish(String(data=json.dumps(
            detection(sequence, 0.4 * (sequence % 100), 2.0 * (sequence // 100)))))
        self.sent_at[sequence] = time.monotonic()
        return sequence

    def recorded(self) -> list[int]:
        if not self.records_path.exists():
            return []
        return sequences(read_geojson_seq(self.records_path))

    def wait_until_delivering(self, process: subprocess.Popen, timeout_s: float = 60.0) -> int:
        """Publish probes until one reaches the file (both sides matched); return it."""
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            assert process.poll() is None, 'the recorder exited'
            probe = self.publish_next()
            if spin_until(self.executor, lambda probe=probe: probe in self.recorded(), 0.5):
                return probe
        raise AssertionError('the recorder never recorded a detection')

    def close(self) -> None:
        self.executor.shutdown()
        self.node.destroy_node()


def test_kill_9_mid_run_then_restart_continues(ros_context: object, tmp_path: Path) -> None:
    map_dir = tmp_path / 'maps'
    records_path = map_dir / 'crash.geojsons'
    log_path = tmp_path / 'recorder.log'
    streamer = Streamer(ros_context, records_path)
    process = start_recorder(map_dir, 'crash', log_path)
    try:
        first_confirmed = streamer.wait_until_delivering(process)
        # Stream at ~50 Hz and kill the recorder while the stream goes on.
        stream_start = time.monotonic()
        while time.monotonic() - stream_start < 2.5:
            streamer.publish_next()
            streamer.executor.spin_once(timeout_sec=0.02)
        kill_time = time.monotonic()
        process.send_signal(signal.SIGKILL)
        for _ in range(10):
            streamer.publish_next()
        assert process.wait(timeout=10) == -signal.SIGKILL

        data = records_path.read_bytes()
        lines = data.split(b'\n')
        complete_lines = lines[:-1]  # the part after the last LF, if any, is incomplete
        recorded = []
        for line in complete_lines:
            assert line.startswith(RECORD_SEPARATOR), line[:40]
            feature = json.loads(line[1:])
            assert feature['type'] == 'Feature'
            recorded.append(feature['properties']['stamp']['sec'])
        assert len(recorded) == len(set(recorded))
        must_have = {sequence for sequence, sent in streamer.sent_at.items()
                     if first_confirmed <= sequence and sent < kill_time - 1.0}
        assert len(must_have) > 40
        assert must_have <= set(recorded), sorted(must_have - set(recorded))[:10]

        # Restart on the same run: the file is continued, never rewritten.
        process = start_recorder(map_dir, 'crash', log_path)
        restart_probe = streamer.wait_until_delivering(process)
        after = [streamer.publish_next() for _ in range(20)]
        assert spin_until(streamer.executor,
                          lambda: set(after) <= set(streamer.recorded()), 15.0)
        assert records_path.read_bytes().startswith(data)
        final = streamer.recorded()
        assert final[:len(recorded)] == recorded
        assert final[-21:] == [restart_probe] + after

        # A clean stop saves the collection and the summary of the whole run.
        process.send_signal(signal.SIGINT)
        assert process.wait(timeout=20) == 0
        collection = json.loads((map_dir / 'crash.geojson').read_text())
        assert sequences(collection['features']) == final
        summary = json.loads((map_dir / 'crash_summary.json').read_text())
        assert summary['detections'] == len(final)
        assert summary['records_continued'] == len(recorded)
    except BaseException:
        print(log_path.read_text(errors='replace'), file=sys.stderr)
        raise
    finally:
        if process.poll() is None:
            process.kill()
            process.wait(timeout=10)
        streamer.close()
