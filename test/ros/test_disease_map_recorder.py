"""disease_map_recorder with real rclpy: records, markers, save, diagnostics, kill -9.

In-process tests run the node and a test node in one executor on the ``ros_context``
fixture; the crash test starts the console script as a process (the test run's ROS
environment), SIGKILLs it mid-stream and restarts it on the same run.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
import gc
import json
from pathlib import Path
import signal
import time
import tracemalloc

from helpers.processes import node_processes
from helpers.ros import (
    classifier_stand_in,
    diagnostics_collector,
    Harness,
    latest_diagnostics,
    parameters,
    statuses,
)
import pytest

from plant_disease_ros.core.geodesy import enu_to_geodetic
from plant_disease_ros.core.map_file import GeoJsonSeqWriter, read_geojson_seq, RECORD_SEPARATOR
from plant_disease_ros.core.map_markers import cell_glyph, map_palette

rclpy = pytest.importorskip('rclpy')

from diagnostic_msgs.msg import DiagnosticStatus  # noqa: E402
from rclpy.qos import DurabilityPolicy, QoSProfile, ReliabilityPolicy  # noqa: E402
from std_msgs.msg import String  # noqa: E402
from std_srvs.srv import Trigger  # noqa: E402
from visualization_msgs.msg import Marker, MarkerArray  # noqa: E402

from plant_disease_ros.nodes.disease_map_recorder import DiseaseMapRecorder  # noqa: E402
from plant_disease_ros.ros.markers import glyph_to_markers  # noqa: E402
from plant_disease_ros.ros.qos import detections_qos  # noqa: E402

DATUM = (50.8503, 4.3517, 60.0)
# As the classifier publishes detections (the recorder's subscription is transient local).
RELIABLE = detections_qos()
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


def view(arrays: list[MarkerArray]) -> dict[tuple[str, int], Marker]:
    """Return what a viewer (RViz) shows after ``arrays``, by (namespace, id).

    A marker replaces the one of its namespace and id; DELETEALL clears everything.
    """
    shown: dict[tuple[str, int], Marker] = {}
    for array in arrays:
        for marker in array.markers:
            if marker.action == Marker.DELETEALL:
                shown.clear()
            elif marker.action == Marker.ADD:
                shown[(marker.ns, marker.id)] = marker
    return shown


def cells_in(arrays: list[MarkerArray], namespace: str = 'disease_cells'
             ) -> dict[int, Marker]:
    """Return the cell shape markers a viewer shows after ``arrays``, by id."""
    return {marker_id: marker for (ns, marker_id), marker in view(arrays).items()
            if ns == namespace}


def cell_positions(arrays: list[MarkerArray]) -> set[tuple[float, float]]:
    """Return the (x, y) of every cell marker shown, rounded to the micrometre."""
    return {(round(m.pose.position.x, 6), round(m.pose.position.y, 6))
            for m in cells_in(arrays).values()}


class RecorderRig:
    """A recorder node and a test node that talks to it, in one harness."""

    def __init__(self, context: object, map_dir: Path, **overrides: object) -> None:
        values = {'map_dir': str(map_dir), 'run_name': 'field', 'use_datum': True,
                  'datum_latitude': DATUM[0], 'datum_longitude': DATUM[1],
                  'datum_altitude': DATUM[2], 'marker_period_s': 0.2, **overrides}
        self.recorder = DiseaseMapRecorder(context=context,
                                           parameter_overrides=parameters(**values))
        self.harness = Harness(context, [self.recorder], name='recorder_test_client')
        node = self.harness.node
        self.publisher = node.create_publisher(String, 'detections', RELIABLE)
        self.markers: list[MarkerArray] = []
        node.create_subscription(MarkerArray, 'markers', self.markers.append, LATCHED)
        self.diagnostics = diagnostics_collector(node)
        self.save_client = node.create_client(Trigger, '/disease_map_recorder/save')

    def wait(self, predicate, timeout_s: float = 10.0) -> bool:
        return self.harness.wait(predicate, timeout_s)

    def connect(self) -> None:
        self.harness.wait_for_subscribers(self.publisher)

    def publish(self, value: object) -> None:
        data = value if isinstance(value, str) else json.dumps(value)
        self.publisher.publish(String(data=data))

    def save(self) -> Trigger.Response:
        assert self.save_client.wait_for_service(timeout_sec=10.0)
        future = self.save_client.call_async(Trigger.Request())
        assert self.wait(future.done)
        return future.result()

    def latest_status_values(self) -> dict[str, str]:
        return latest_diagnostics(self.diagnostics, 'disease_map_recorder') or {}

    def status_levels(self) -> list[int]:
        return [status.level for status in statuses(self.diagnostics, 'disease_map_recorder')]

    def close(self) -> None:
        self.harness.close()


@pytest.fixture
def harness(ros_context: object, tmp_path: Path) -> Iterator[RecorderRig]:
    rig = RecorderRig(ros_context, tmp_path / 'maps')
    try:
        yield rig
    finally:
        rig.close()


def test_records_markers_save_and_diagnostics(harness: RecorderRig, tmp_path: Path) -> None:
    harness.connect()
    sent = [
        detection(1, -0.5, -0.5, LATE_BLIGHT, 0.7),   # cell (0, 0): [-1, 1) m
        detection(2, 0.5, 0.0, LATE_BLIGHT, 0.95),    # cell (0, 0)
        detection(3, 0.0, 0.9, HEALTHY, 0.8),         # cell (0, 0)
        detection(4, 6.5, -3.5, HEALTHY, 0.85),       # cell (3, -2)
        detection(5, None, None, LATE_BLIGHT, 0.9),   # no position
    ]
    for feature in sent[:3]:
        harness.publish(feature)
    harness.publish('{"type": "Feature", "geometry": ')   # not JSON
    harness.publish('{"type": "Point", "coordinates": [4.3, 50.8]}')  # JSON, not a Feature
    harness.publish('{"type": "Feature", "geometry": null, "properties": {"x": NaN}}')
    harness.publish('[' * 100_000 + ']' * 100_000)  # overflows Python's stack when parsed
    for feature in sent[3:]:
        harness.publish(feature)
    recorder = harness.recorder
    assert harness.wait(lambda: recorder.records_written == 5)
    assert recorder.rejected == {'invalid_json': 3, 'not_a_feature': 1}

    records_path = tmp_path / 'maps' / 'field.geojsons'
    assert recorder.records_path == records_path
    lines = records_path.read_bytes().split(b'\n')
    assert lines[-1] == b'' and len(lines) == 6
    assert all(line.startswith(RECORD_SEPARATOR) for line in lines[:-1])
    assert [json.loads(line[1:]) for line in lines[:-1]] == sent

    assert harness.wait(lambda: bool(harness.markers)
                              and len(cells_in(harness.markers)) == 2)
    shapes = cells_in(harness.markers)
    texts = cells_in(harness.markers, 'disease_cell_labels')
    assert set(texts) == set(shapes)
    by_position = {(round(m.pose.position.x, 6), round(m.pose.position.y, 6)): m
                   for m in shapes.values()}
    assert set(by_position) == {(0.0, 0.0), (6.0, -4.0)}
    diseased, healthy = by_position[(0.0, 0.0)], by_position[(6.0, -4.0)]
    assert diseased.header.frame_id == 'map'
    assert diseased.type == Marker.CYLINDER and healthy.type == Marker.SPHERE
    assert diseased.color.r > diseased.color.g  # the late blight colour, not green
    assert healthy.color.g > healthy.color.r
    assert diseased.scale.z > healthy.scale.z  # three detections against one
    assert 'Late blight' in texts[diseased.id].text and '3x' in texts[diseased.id].text
    assert texts[diseased.id].type == Marker.TEXT_VIEW_FACING
    # Published when a detection changed a cell, only then: nothing new for 5 periods.
    published = len(harness.markers)
    assert not harness.wait(lambda: len(harness.markers) > published, timeout_s=1.0)

    assert harness.wait(
        lambda: harness.latest_status_values().get('records_written') == '5'
        and harness.latest_status_values().get('received') == '9'),\
        harness.latest_status_values()
    values = harness.latest_status_values()
    assert (values['received'], values['processed']) == ('9', '5')
    assert values['rejected.invalid_json'] == '3'
    assert values['rejected.not_a_feature'] == '1'
    assert values['rejected'] == '4'
    assert values['file'] == str(records_path)
    assert values['records_file_replaced'] == '0'   # counted from the start
    assert (values['located'], values['unlocated'], values['cells']) == ('4', '1', '2')
    assert float(values['latency_mean_ms']) > 0.0  # append + fsync per record
    assert DiagnosticStatus.WARN in harness.status_levels()
    # The status message names the recorder's own inputs: detections, not frames.
    messages = [status.message for status in statuses(harness.diagnostics,
                                                        'disease_map_recorder')]
    assert any('rejected in the last period: detection invalid_json' in message
               for message in messages), messages
    assert not any('frame invalid_json' in message for message in messages)

    response = harness.save()
    assert response.success, response.message
    collection = json.loads((tmp_path / 'maps' / 'field.geojson').read_text())
    assert collection == {'type': 'FeatureCollection', 'features': sent}
    summary = json.loads((tmp_path / 'maps' / 'field_summary.json').read_text())
    assert summary['detections'] == 5
    assert (summary['located'], summary['unlocated']) == (4, 1)
    assert summary['detections_per_label'] == {LATE_BLIGHT: 3, HEALTHY: 2}
    assert summary['diseased_cells_per_label'] == {LATE_BLIGHT: 1}
    assert summary['rejected_this_session'] == {'invalid_json': 3, 'not_a_feature': 1}
    assert summary['origin'] == {'latitude': DATUM[0], 'longitude': DATUM[1],
                                 'altitude': DATUM[2]}

    # A detection in a third cell: the next array holds that cell only (a large map's
    # whole array takes longer to serialise than a period); the viewer shows all three,
    # the first two with the same ids and markers as before.
    published = len(harness.markers)
    harness.publish(detection(6, 12.6, 5.2, HEALTHY, 0.6))
    assert harness.wait(lambda: len(cells_in(harness.markers)) == 3)
    assert len(harness.markers) == published + 1
    assert len(cells_in(harness.markers[-1:])) == 1
    after = cells_in(harness.markers)
    assert {marker_id: after[marker_id] for marker_id in shapes} == shapes
    # A viewer that joins now gets the latched array, then the whole map.
    late: list[MarkerArray] = []
    harness.harness.node.create_subscription(MarkerArray, 'markers', late.append, LATCHED)
    assert harness.wait(lambda: cells_in(late) == after)
    assert harness.wait(lambda: recorder.set_parameters(
        parameters(map_frame='odom'))[0].successful)
    # A new frame rebuilds every cell's markers.
    assert harness.wait(lambda: {m.header.frame_id for m in
                                 cells_in(harness.markers).values()} == {'odom'})
    assert len(cells_in(harness.markers)) == 3


def test_colours_follow_the_maps_labels_and_a_replaced_viewer_gets_the_whole_map(
        harness: RecorderRig) -> None:
    """A new label recolours every cell (alphabetical, as the PNG legend); a subscriber that
    replaces another between two ticks (the count unchanged) still gets the whole map."""
    harness.connect()
    harness.publish(detection(1, 0.0, 0.0, LATE_BLIGHT))
    harness.publish(detection(2, 6.0, 0.0, HEALTHY))
    assert harness.wait(lambda: len(cells_in(harness.markers)) == 2)
    # A label alphabetically before the others moves their colours: all cells again.
    published = len(harness.markers)
    black_rot = 'Apple___Black_rot'
    harness.publish(detection(3, 12.0, 0.0, black_rot))
    assert harness.wait(lambda: len(cells_in(harness.markers)) == 3)
    assert len(cells_in(harness.markers[published:])) == 3
    palette = map_palette([LATE_BLIGHT, HEALTHY, black_rot])
    shown = {round(marker.pose.position.x): (marker.color.r, marker.color.g, marker.color.b)
             for marker in cells_in(harness.markers).values()}
    assert shown == {
        east: tuple(pytest.approx(value) for value in palette.rgb(label))
        for east, label in ((0, LATE_BLIGHT), (6, HEALTHY), (12, black_rot))}
    # A known label in a new cell: that cell only, which stays the latched array.
    published = len(harness.markers)
    harness.publish(detection(4, 18.0, 0.0, HEALTHY))
    assert harness.wait(lambda: len(cells_in(harness.markers)) == 4)
    assert len(cells_in(harness.markers[published:])) == 1
    # RViz's display toggled: one subscription gone, another made, no tick between.
    node = harness.harness.node
    first: list[MarkerArray] = []
    subscription = node.create_subscription(MarkerArray, 'markers', first.append, LATCHED)
    assert harness.wait(lambda: len(cells_in(first)) == 4)
    harness.publish(detection(5, 24.0, 0.0, HEALTHY))   # latched: this cell only
    assert harness.wait(lambda: len(cells_in(first)) == 5)
    node.destroy_subscription(subscription)
    second: list[MarkerArray] = []
    node.create_subscription(MarkerArray, 'markers', second.append, LATCHED)
    assert harness.wait(lambda: len(cells_in(second)) == 5), len(cells_in(second))


def test_parameters_are_described_and_validated(harness: RecorderRig) -> None:
    recorder = harness.recorder
    descriptor = recorder.describe_parameter('cell_size_m')
    assert descriptor.read_only and descriptor.description
    assert descriptor.floating_point_range[0].from_value == pytest.approx(0.1)
    assert recorder.describe_parameter('run_name').read_only
    assert not recorder.set_parameters(parameters(cell_size_m=5.0))[0].successful
    assert not recorder.set_parameters(parameters(map_frame=''))[0].successful
    assert not recorder.set_parameters(
        parameters(marker_period_s=0.0))[0].successful
    assert recorder.set_parameters(parameters(map_frame='odom'))[0].successful
    assert recorder.set_parameters(parameters(marker_period_s=0.1))[0].successful
    harness.connect()
    harness.markers.clear()
    harness.publish(detection(1, 2.0, 2.0))
    assert harness.wait(lambda: any(
        marker.header.frame_id == 'odom' and marker.ns == 'disease_cells'
        for array in harness.markers for marker in array.markers))


def test_continues_an_existing_run(ros_context: object, tmp_path: Path) -> None:
    map_dir = tmp_path / 'maps'
    first = RecorderRig(ros_context, map_dir, use_datum=False)
    try:
        first.connect()
        for sequence in range(3):
            first.publish(detection(sequence, 3.0 * sequence, 0.0))
        assert first.wait(lambda: first.recorder.records_written == 3)
        assert first.wait(lambda: bool(first.markers)
                          and len(cells_in(first.markers)) == 3)
        cells = cell_positions(first.markers)
    finally:
        first.close()
    second = RecorderRig(ros_context, map_dir, use_datum=False)
    try:
        assert second.recorder.records_at_start == 3
        # The ENU origin is again the run's first fix, so cells keep their places.
        assert second.wait(lambda: bool(second.markers)
                           and len(cells_in(second.markers)) == 3)
        assert cell_positions(second.markers) == cells
        second.connect()
        second.publish(detection(10, 1.0, 1.0))
        assert second.wait(lambda: second.recorder.records_written == 1)
    finally:
        second.close()
    assert sequences(read_geojson_seq(map_dir / 'field.geojsons')) == [0, 1, 2, 10]


def test_unwritable_map_dir_refuses_to_start(ros_context: object, tmp_path: Path) -> None:
    """A map_dir below a file cannot hold the run: the node does not start half-made."""
    blocker = tmp_path / 'not_a_directory'
    blocker.write_text('x')
    for map_dir in (blocker, blocker / 'maps'):
        with pytest.raises(ValueError, match='not a directory'):
            RecorderRig(ros_context, map_dir)


def test_a_second_recorder_of_the_same_run_refuses_to_start(ros_context: object,
                                                            tmp_path: Path) -> None:
    """A respawned launch beside the running one: one writer per run, the first keeps it."""
    map_dir = tmp_path / 'maps'
    first = RecorderRig(ros_context, map_dir, use_datum=False)
    refused = r'cannot record to .*field\.geojsons: another process is writing it'
    try:
        # Before the first has recorded anything (no file yet), and after.
        with pytest.raises(ValueError, match=refused):
            RecorderRig(ros_context, map_dir, use_datum=False)
        assert not map_dir.exists()
        first.connect()
        first.publish(detection(0, 0.0, 0.0))
        assert first.wait(lambda: first.recorder.records_written == 1)
        with pytest.raises(ValueError, match=refused):
            RecorderRig(ros_context, map_dir, use_datum=False)
        first.publish(detection(1, 3.0, 0.0))
        assert first.wait(lambda: first.recorder.records_written == 2)
    finally:
        first.close()
    assert sequences(read_geojson_seq(map_dir / 'field.geojsons')) == [0, 1]


def test_two_cameras_in_two_namespaces_record_two_default_runs(
        ros_context: object, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Two node sets (namespaces left and right) with the same map_dir and the default
    run_name: each recorder gets its own run, where the second used to be refused. Their
    /diagnostics name the files absolutely: the relative map_dir of two recorders started
    in two folders must not read as one hardware_id."""
    monkeypatch.chdir(tmp_path)
    recorders = [DiseaseMapRecorder(context=ros_context, namespace=namespace,
                                    parameter_overrides=parameters(map_dir='maps'))
                 for namespace in ('/left', '/right', '/plant_disease')]
    try:
        names = [recorder.records_path.name for recorder in recorders]
        hardware_ids = [recorder.diagnostics.hardware_id for recorder in recorders]
        files = [recorder.diagnostics.values['file'] for recorder in recorders]
    finally:
        for recorder in recorders:
            recorder.destroy_node()
    date = time.strftime('%Y-%m-%d')
    assert names == [f'{date}_left.geojsons', f'{date}_right.geojsons', f'{date}.geojsons']
    assert hardware_ids == files == [str(tmp_path / 'maps' / name) for name in names]


def test_construction_alone_writes_nothing(ros_context: object, tmp_path: Path) -> None:
    rig = RecorderRig(ros_context, tmp_path / 'maps')
    rig.close()
    assert not (tmp_path / 'maps').exists()


# Bytes a cell's two cached markers may hold (tracemalloc, deterministic): about 850 with
# the frame's parts shared, 2,250 when each marker held its own header, texture, lists...
# (benchmarks/results/2026-12-07-recorder-memory.md).
MARKER_BYTES_PER_CELL = 1200


def test_cell_markers_share_their_frame_parts(harness: RecorderRig) -> None:
    """The markers kept per cell stay small, and equal to markers built alone."""
    recorder = harness.recorder
    cells = 400
    for number in range(cells):
        recorder._add_to_map(detection(number, 2.0 * (number % 20), 2.0 * (number // 20)))
    recorder.build_markers()
    # Every cell's markers built again (as a new map_frame does), counting only them.
    recorder._changed_cells.update(recorder._cell_markers)
    tracemalloc.start()
    try:
        gc.collect()
        start = tracemalloc.get_traced_memory()[0]
        array = recorder.build_markers(full=False)
        del array
        gc.collect()
        kept = tracemalloc.get_traced_memory()[0] - start
    finally:
        tracemalloc.stop()
    assert kept / cells < MARKER_BYTES_PER_CELL
    shape, caption = recorder._cell_markers[(0, 0)]
    glyph = cell_glyph(recorder._aggregator.cell((0, 0)), 2.0, recorder._palette)
    alone = glyph_to_markers(glyph, shape.id, 'map')
    assert (shape, caption) == alone
    assert shape.header is caption.header and shape.points is caption.points
    assert recorder._cell_markers[(1, 0)][0].texture is shape.texture


# --- the console script as a process: kill -9 and restart -------------------------------

class Streamer:
    """Publish numbered detections and watch the recorder's file for them."""

    def __init__(self, context: object, records_path: Path) -> None:
        self.harness = Harness(context, name='recorder_crash_test')
        self.publisher = self.harness.node.create_publisher(String, 'detections', RELIABLE)
        self.diagnostics = diagnostics_collector(self.harness.node)
        self.records_path = records_path
        self.next_sequence = 1000

    def publish_next(self) -> int:
        sequence = self.next_sequence
        self.next_sequence += 1
        self.publisher.publish(String(data=json.dumps(
            detection(sequence, 0.4 * (sequence % 100), 2.0 * (sequence // 100)))))
        return sequence

    def recorded(self) -> list[int]:
        if not self.records_path.exists():
            return []
        return sequences(read_geojson_seq(self.records_path))

    def wait_until_delivering(self, processes, timeout_s: float = 60.0) -> int:
        """Publish probes until one reaches the file (both sides matched); return it."""
        def probe_recorded() -> bool:
            processes.check_alive()
            probe = self.publish_next()
            return self.harness.wait(lambda: probe in self.recorded(), 0.5)

        assert self.harness.wait(probe_recorded, timeout_s), \
            'the recorder never recorded a detection'
        return self.next_sequence - 1

    def close(self) -> None:
        self.harness.close()


def test_kill_9_mid_run_then_restart_continues(ros_context: object, tmp_path: Path) -> None:
    """What was confirmed before a kill -9 stays; the restart continues the same file."""
    map_dir = tmp_path / 'maps'
    records_path = map_dir / 'crash.geojsons'
    recorder_args = ('-p', f'map_dir:={map_dir}', '-p', 'run_name:=crash')
    streamer = Streamer(ros_context, records_path)
    try:
        with node_processes(tmp_path / 'logs') as processes:
            recorder = processes.start('disease_map_recorder', *recorder_args)
            first_probe = streamer.wait_until_delivering(processes)
            # A batch, confirmed in the file: the recorder took all of it before the kill.
            confirmed = [streamer.publish_next() for _ in range(50)]
            assert streamer.harness.wait(lambda: confirmed[-1] in streamer.recorded(), 30.0)
            # Another batch still on its way or being written when the recorder dies.
            in_flight = [streamer.publish_next() for _ in range(50)]
            processes.kill_9('disease_map_recorder')
            assert recorder.popen.returncode == -signal.SIGKILL
            after_kill = [streamer.publish_next() for _ in range(10)]

            data = records_path.read_bytes()
            complete_lines = data.split(b'\n')[:-1]  # after the last LF: an incomplete record
            recorded = []
            for line in complete_lines:
                assert line.startswith(RECORD_SEPARATOR), line[:40]
                feature = json.loads(line[1:])
                assert feature['type'] == 'Feature'
                recorded.append(feature['properties']['stamp']['sec'])
            # No duplicate, in order from the first probe that reached the file on, nothing
            # confirmed missing, nothing sent after the kill. The probes before it were
            # published while no recorder ran: the new run records them too, as its
            # transient-local subscription matches, before or after the live ones.
            from_probe = [item for item in recorded if item >= first_probe]
            assert from_probe == sorted(from_probe) and len(recorded) == len(set(recorded))
            assert {first_probe, *confirmed} <= set(recorded)
            assert max(recorded) <= in_flight[-1] < after_kill[0]

            # Restart on the same run: the file is continued, never rewritten.
            recorder = processes.restart('disease_map_recorder')
            restart_probe = streamer.wait_until_delivering(processes)
            after = [streamer.publish_next() for _ in range(20)]
            assert streamer.harness.wait(lambda: set(after) <= set(streamer.recorded()), 30.0)
            assert records_path.read_bytes().startswith(data)
            # Nothing published is missing, nothing is twice: what the kill cut off and
            # what came while no recorder ran arrive with the publisher's last detections
            # (transient local), and the restarted recorder takes those its file lacks.
            everything = list(range(1000, streamer.next_sequence))
            assert streamer.harness.wait(
                lambda: sorted(streamer.recorded()) == everything, 30.0), streamer.recorded()
            final = streamer.recorded()
            assert final[:len(recorded)] == recorded
            rest = final[len(recorded):]
            # The live detections in order; the earlier ones (below) may come before or
            # after the first live one, as the recorder's two subscriptions match.
            assert restart_probe in rest and [item for item in rest if item in after] == after

            # A clean stop saves the collection and the summary of the whole run. The
            # recorder counts a record just after writing it: stop once it has counted all.
            assert streamer.harness.wait(lambda: (latest_diagnostics(
                streamer.diagnostics, 'disease_map_recorder') or {}).get(
                'records_in_file') == str(len(final)), 30.0)
            processes.stop()
            assert recorder.popen.returncode == 0, processes.logs()
    finally:
        streamer.close()
    collection = json.loads((map_dir / 'crash.geojson').read_text())
    assert sequences(collection['features']) == final
    summary = json.loads((map_dir / 'crash_summary.json').read_text())
    assert summary['detections'] == len(final)
    assert summary['records_continued'] == len(recorded)


def send(publisher: object, numbers: Iterable[int]) -> None:
    """Publish the detections numbered ``numbers`` on ``publisher``."""
    for sequence in numbers:
        publisher.publish(String(data=json.dumps(detection(sequence))))


def record_five_then_stop(context: object, map_dir: Path, publisher: object,
                          stand_in: Harness, **overrides: object) -> None:
    """Record detections 1 to 5 from ``publisher`` with a recorder, then stop it."""
    first = RecorderRig(context, map_dir, **overrides)
    try:
        assert first.wait(lambda: publisher.get_subscription_count() >= 1)
        send(publisher, range(1, 6))
        assert first.wait(lambda: first.recorder.run.records_written == 5)
    finally:
        first.close()
    assert stand_in.wait(lambda: publisher.get_subscription_count() == 0)


def test_a_restarted_recorder_records_what_it_missed_and_nothing_twice(
        ros_context: object, tmp_path: Path) -> None:
    """The classifier keeps its last detections for a recorder that joins late (transient
    local): a recorder started again after a stop records the ones published while it was
    down, and skips those its file already holds."""
    with classifier_stand_in(ros_context) as (stand_in, publisher):
        record_five_then_stop(ros_context, tmp_path, publisher, stand_in)
        send(publisher, range(6, 9))                  # nobody records these now
        second = RecorderRig(ros_context, tmp_path)
        try:
            assert second.wait(lambda: second.recorder.run.records_written == 3), \
                second.recorder.run.records_written
            assert (second.recorder.recovered_detections,
                    second.recorder.earlier_detections) == (3, 5)
            assert second.wait(lambda: (
                second.latest_status_values().get('detections_recovered') == '3'
                and second.latest_status_values().get('detections_from_before_skipped')
                == '5'))
            values = second.latest_status_values()
            # Each message once, though two subscriptions take it: in = recorded + skipped.
            assert (values['received'], values['processed'], values['dropped']) == \
                ('8', '3', '5')
        finally:
            second.close()
        records_path = tmp_path / 'field.geojsons'
        assert sequences(read_geojson_seq(records_path)) == list(range(1, 9))


def test_a_new_run_does_not_start_with_the_detections_of_an_earlier_one(
        ros_context: object, tmp_path: Path) -> None:
    """A recorder started for a new run gets the classifier's last detections too, but they
    belong to the run before: it records none of them."""
    with classifier_stand_in(ros_context) as (stand_in, publisher):
        record_five_then_stop(ros_context, tmp_path, publisher, stand_in, run_name='monday')
        second = RecorderRig(ros_context, tmp_path, run_name='tuesday')
        try:
            assert second.wait(lambda: second.recorder.earlier_detections == 5)
            publisher.publish(String(data=json.dumps(detection(6))))
            assert second.wait(lambda: second.recorder.run.records_written == 1)
            assert second.recorder.recovered_detections == 0
        finally:
            second.close()
        assert sequences(read_geojson_seq(tmp_path / 'tuesday.geojsons')) == [6]
        assert sequences(read_geojson_seq(tmp_path / 'monday.geojsons')) == [1, 2, 3, 4, 5]


def test_a_new_run_records_what_no_earlier_run_holds(ros_context: object,
                                                     tmp_path: Path) -> None:
    """A recorder restarted after midnight starts a new run (the default name is the
    date): the detections published while it was down are in no file, and recorded."""
    with classifier_stand_in(ros_context) as (stand_in, publisher):
        record_five_then_stop(ros_context, tmp_path, publisher, stand_in,
                              run_name='2026-05-04')
        send(publisher, range(6, 9))                  # nobody records these now
        second = RecorderRig(ros_context, tmp_path, run_name='2026-05-05')
        try:
            assert second.wait(lambda: second.recorder.run.records_written == 3)
            assert second.wait(lambda: second.recorder.earlier_detections == 5)
            assert second.recorder.recovered_detections == 3
            publisher.publish(String(data=json.dumps(detection(9))))
            assert second.wait(lambda: second.recorder.run.records_written == 4)
        finally:
            second.close()
        assert sequences(read_geojson_seq(tmp_path / '2026-05-05.geojsons')) == [6, 7, 8, 9]
        assert sequences(read_geojson_seq(tmp_path / '2026-05-04.geojsons')) == [1, 2, 3, 4, 5]


def write_run(path: Path, sequences_: range) -> None:
    """Write the detections of ``sequences_`` as a run's records file."""
    with GeoJsonSeqWriter(path) as writer:
        for sequence in sequences_:
            writer.append(detection(sequence))


def test_a_new_run_skips_the_history_of_the_newest_of_many_earlier_runs(
        ros_context: object, tmp_path: Path) -> None:
    """Three days of 1500 records each in map_dir, the classifier's last 200 detections
    from the newest: a new run records none of them (the older days' tails crowded the
    newest one's out of a bounded memory, and the 200 were recorded twice)."""
    import os

    for day, first in enumerate((10_000, 20_000, 30_000)):
        path = tmp_path / f'2026-05-0{day + 1}.geojsons'
        write_run(path, range(first, first + 1500))
        os.utime(path, (1_700_000_000 + day * 86_400,) * 2)
    with classifier_stand_in(ros_context) as (stand_in, publisher):
        send(publisher, range(31_300, 31_500))       # the newest day's last 200
        rig = RecorderRig(ros_context, tmp_path, run_name='2026-05-04')
        try:
            assert rig.wait(lambda: rig.recorder.earlier_detections == 200), \
                (rig.recorder.earlier_detections, rig.recorder.recovered_detections)
            assert rig.recorder.run.records_written == 0
        finally:
            rig.close()


def test_a_respawn_continuing_todays_run_skips_yesterdays_history(ros_context: object,
                                                                  tmp_path: Path) -> None:
    """Yesterday's run holds 1-5, today's (started after midnight) 6 and 7; a second
    respawn today gets the classifier's 1-8: only 8 is new (1-5 were recorded again)."""
    import os

    write_run(tmp_path / '2026-05-04.geojsons', range(1, 6))
    os.utime(tmp_path / '2026-05-04.geojsons', (1_700_000_000,) * 2)
    write_run(tmp_path / '2026-05-05.geojsons', range(6, 8))
    with classifier_stand_in(ros_context) as (stand_in, publisher):
        send(publisher, range(1, 9))
        rig = RecorderRig(ros_context, tmp_path, run_name='2026-05-05')
        try:
            assert rig.wait(lambda: rig.recorder.run.records_written == 1)
            assert rig.wait(lambda: rig.recorder.earlier_detections == 7)
        finally:
            rig.close()
    assert sequences(read_geojson_seq(tmp_path / '2026-05-05.geojsons')) == [6, 7, 8]


def test_history_and_new_detections_reach_the_file_in_published_order(
        ros_context: object, tmp_path: Path) -> None:
    """50 detections published before the recorder started, 10 after, all waiting when it
    first spins: the file holds them in the order published (rclpy takes one message per
    ready subscription at a time, and the two subscriptions interleaved them)."""
    with classifier_stand_in(ros_context) as (stand_in, publisher):
        send(publisher, range(1, 51))
        rig = RecorderRig(ros_context, tmp_path, run_name='ordered')
        try:
            assert stand_in.wait(lambda: publisher.get_subscription_count() >= 2)
            send(publisher, range(1001, 1011))       # the recorder has not spun yet
            assert rig.wait(lambda: rig.recorder.run.records_written == 60)
            assert (rig.recorder.recovered_detections, rig.recorder.earlier_detections) == \
                (50, 0)
        finally:
            rig.close()
    assert sequences(read_geojson_seq(tmp_path / 'ordered.geojsons')) == \
        [*range(1, 51), *range(1001, 1011)]


def test_detections_wait_in_the_queue_while_the_recorder_is_busy(ros_context: object,
                                                                 tmp_path: Path) -> None:
    """A save of a day's run holds the recorder's one thread for seconds (a minute on a
    Pi): 600 detections sent meanwhile, three times the classifier's history, all wait in
    the recorder's queue and are recorded once it spins again."""
    rig = RecorderRig(ros_context, tmp_path)
    try:
        rig.connect()
        rig.publish(detection(0))
        assert rig.wait(lambda: rig.recorder.run.records_written == 1)
        publisher = rig.harness.node.create_publisher(String, 'detections', detections_qos())
        assert rig.wait(lambda: publisher.get_subscription_count() >= 2)
        send(publisher, range(1, 601))       # nothing spins: the recorder takes none now
        assert rig.wait(lambda: rig.recorder.run.records_written == 601, 60.0), \
            rig.recorder.run.records_written
    finally:
        rig.close()
    assert sequences(read_geojson_seq(tmp_path / 'field.geojsons')) == list(range(601))


def test_live_detections_are_recorded_after_the_clock_stepped_back(
        ros_context: object, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """The wall clock read 3 h ahead when the recorder started (then chrony stepped it
    back; or the classifier's machine is 3 h behind): every live detection's source
    timestamp is before the recorder's start. Its volatile copy still says it is live."""
    real_time_ns = time.time_ns
    with classifier_stand_in(ros_context) as (_, publisher):
        monkeypatch.setattr(time, 'time_ns', lambda: real_time_ns() + 3 * 3600 * 10 ** 9)
        rig = RecorderRig(ros_context, tmp_path, run_name='fresh')
        monkeypatch.setattr(time, 'time_ns', real_time_ns)
        try:
            assert rig.wait(lambda: publisher.get_subscription_count() >= 2)
            send(publisher, range(1, 6))
            assert rig.wait(lambda: rig.recorder.run.records_written == 5), \
                (rig.recorder.run.records_written, rig.recorder.earlier_detections)
            assert rig.wait(lambda: rig.recorder.earlier_detections == 0)
            # Live, not recovered from before the start, whichever copy came first.
            assert rig.wait(lambda: rig.recorder.recovered_detections == 0)
            assert rig.wait(lambda: (rig.latest_status_values().get('received'),
                                     rig.latest_status_values().get('dropped'),
                                     rig.latest_status_values().get(
                                         'detections_from_before_skipped'))
                            == ('5', '0', '0'))
        finally:
            rig.close()
    assert sequences(read_geojson_seq(tmp_path / 'fresh.geojsons')) == [1, 2, 3, 4, 5]


def test_a_volatile_publisher_still_reaches_the_recorder(ros_context: object,
                                                         tmp_path: Path) -> None:
    """An older classifier or a bag recorded with a volatile QoS: each detection once."""
    rig = RecorderRig(ros_context, tmp_path)
    try:
        volatile = rig.harness.node.create_publisher(
            String, 'detections', QoSProfile(depth=10, reliability=ReliabilityPolicy.RELIABLE,
                                             durability=DurabilityPolicy.VOLATILE))
        # Only the recorder's volatile subscription can match it.
        assert rig.wait(lambda: volatile.get_subscription_count() >= 1)
        for sequence in range(1, 4):
            volatile.publish(String(data=json.dumps(detection(sequence))))
        assert rig.wait(lambda: rig.recorder.run.records_written == 3)
        assert not rig.wait(lambda: rig.recorder.run.records_written > 3, timeout_s=0.5)
    finally:
        rig.close()
    assert sequences(read_geojson_seq(tmp_path / 'field.geojsons')) == [1, 2, 3]


def test_a_lone_surrogate_is_rejected_as_bad_text_not_as_a_failed_write(
        harness: RecorderRig, capfd: pytest.CaptureFixture[str]) -> None:
    """``"Tomato\\ud800"`` is valid JSON but no text: rejected when parsed, under its own
    reason, not counted as a write that failed (which sends the user to the disk)."""
    harness.connect()
    harness.publish('{"type":"Feature","geometry":null,"properties":{"label":"Tomato\\ud800",'
                    '"stamp":{"sec":1,"nanosec":0}}}')
    harness.publish(detection(2))
    assert harness.wait(lambda: harness.recorder.records_written == 1
                        and harness.latest_status_values().get('received') == '2'), \
        harness.latest_status_values()
    values = harness.latest_status_values()
    assert values.get('rejected.bad_text') == '1', values
    assert 'rejected.write_failed' not in values
    assert (values['rejected'], values['processed']) == ('1', '1')
    assert harness.recorder.rejected == {'bad_text': 1}
    log = capfd.readouterr().err
    assert 'detection rejected (bad_text)' in log and 'surrogates not allowed' in log, log
    assert 'cannot append' not in log
    assert [feature['properties']['stamp']['sec']
            for feature in read_geojson_seq(harness.recorder.records_path)] == [2]
