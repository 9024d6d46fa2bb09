"""disease_map_recorder when map_dir's storage goes away mid-run (a USB stick pulled).

The stick is simulated without root (``helpers.filesystems.FakeMounts``): its files
are real files in the folder standing for the mount point, and the run's ``device_of``
hook makes that folder report the stick's device while it is plugged in and its parent's
once it is pulled (its files moved out). Counted: nothing made under the bare mount point,
ERROR in diagnostics naming map_dir and the detections held, then, with the stick back
under another device number, every detection in the file, in order, once, and OK again.
With ``storage_mount`` the same from the start, the stick not mounted yet at boot.
"""

from __future__ import annotations

import json
from pathlib import Path

from helpers.filesystems import FakeMounts, STICK, STICK_AGAIN
from helpers.ros import diagnostics_collector, Harness, latest_diagnostics, parameters, statuses
import pytest

from plant_disease_ros.core.map_file import read_geojson_seq

rclpy = pytest.importorskip('rclpy')

from diagnostic_msgs.msg import DiagnosticStatus  # noqa: E402
from std_msgs.msg import String  # noqa: E402

from plant_disease_ros.nodes.disease_map_recorder import _finish, DiseaseMapRecorder  # noqa: E402
from plant_disease_ros.ros.qos import detections_qos, RECORDER_QUEUE_DEPTH  # noqa: E402

NODE = 'disease_map_recorder'
# As the classifier publishes detections (the recorder's subscription is transient local).
RELIABLE = detections_qos()
WAIT_S = 20.0


def detection(sequence: int) -> dict:
    """Return a detection Feature numbered ``sequence``."""
    return {'type': 'Feature', 'geometry': {'type': 'Point', 'coordinates': [4.35, 50.85]},
            'properties': {'stamp': {'sec': sequence, 'nanosec': 0}, 'frame_id': 'camera',
                           'label': 'Tomato___Late_blight', 'confidence': 0.9}}



class Rig:
    """A recorder under test, spun with a publisher of detections and a diagnostics listener."""

    def __init__(self, ros_context, recorder: DiseaseMapRecorder, name: str) -> None:
        """Spin ``recorder`` with a test node ``name``; wait for the publisher to match."""
        self.harness = Harness(ros_context, [recorder], name=name)
        self.publisher = self.harness.node.create_publisher(String, 'detections', RELIABLE)
        self.diagnostics = diagnostics_collector(self.harness.node)
        self.harness.wait_for_subscribers(self.publisher)
        self.published = 0

    def publish(self, count: int) -> None:
        """Publish the next ``count`` detections, numbered on from the last."""
        for _ in range(count):
            self.publisher.publish(String(data=json.dumps(detection(self.published))))
            self.published += 1

    def last_status(self) -> DiagnosticStatus | None:
        """Return the recorder's newest diagnostics status, or None before the first."""
        found = statuses(self.diagnostics, NODE)
        return found[-1] if found else None

    def level(self) -> int | None:
        """Return the level of the recorder's newest diagnostics status (None: none yet)."""
        status = self.last_status()
        return status.level if status else None


def test_storage_gone_holds_detections_with_an_error_then_writes_them(
        ros_context, tmp_path: Path) -> None:
    usb = (tmp_path / 'usb').absolute()
    stick = FakeMounts(tmp_path)
    stick.plug(usb, STICK)
    map_dir = usb / 'maps'
    recorder = DiseaseMapRecorder(context=ros_context, parameter_overrides=parameters(
        map_dir=str(map_dir), run_name='field'))
    recorder.run.device_of = stick  # map_dir is made by the first record, through it
    rig = Rig(ros_context, recorder, 'recorder_storage_test')
    harness, diagnostics, publish, level = rig.harness, rig.diagnostics, rig.publish, rig.level
    try:
        publish(3)
        assert harness.wait(lambda: recorder.records_written == 3, WAIT_S)

        stick.pull(usb)
        publish(3)
        assert harness.wait(lambda: recorder.records_held == 3, WAIT_S)
        expected = f'map_dir {map_dir}: its storage is gone (was device 8:17; {usb}'
        assert harness.wait(
            lambda: level() == DiagnosticStatus.ERROR
            and 'holding 3 detection(s)' in statuses(diagnostics, NODE)[-1].message, WAIT_S)
        message = statuses(diagnostics, NODE)[-1].message
        assert message.startswith(expected), message
        harness.wait(lambda: False, 2.5)  # two turns of the retry timer
        assert list(usb.iterdir()) == []  # nothing made on the root device
        assert (recorder.records_held, recorder.records_written) == (3, 3)

        stick.plug(usb, STICK_AGAIN)
        assert harness.wait(lambda: recorder.records_held == 0, WAIT_S)
        publish(1)
        assert harness.wait(lambda: recorder.records_written == 7, WAIT_S)
        assert harness.wait(lambda: level() == DiagnosticStatus.OK, WAIT_S)
        values = latest_diagnostics(diagnostics, NODE) or {}
        assert values.get('records_file_replaced') == '1', values
        assert values.get('records_in_file') == '7', values
        assert [feature['properties']['stamp']['sec']
                for feature in read_geojson_seq(recorder.records_path)] == list(range(7))
        ok, message = recorder.save()
        assert ok, message
        summary = json.loads(recorder.run.summary_path.read_text())
        assert (summary['features_in_collection'], summary['records_held_unwritten']) == (7, 0)
    finally:
        harness.close()


def test_storage_mount_not_mounted_at_start_holds_detections_until_it_is(
        ros_context, tmp_path: Path) -> None:
    """storage_mount: the recorder starts with the stick not mounted, holds, then writes.

    At the start the real ``os.path.ismount`` says the bare folder is no mount point; then
    the run's look-ups go through the simulated stick.
    """
    usb = (tmp_path / 'usb').absolute()
    usb.mkdir()  # the bare mount point on the root file system
    stick = FakeMounts(tmp_path)
    map_dir = usb / 'maps'
    recorder = DiseaseMapRecorder(context=ros_context, parameter_overrides=parameters(
        map_dir=str(map_dir), run_name='field', storage_mount=str(usb)))
    assert recorder.describe_parameter('storage_mount').read_only
    recorder.run.device_of = stick
    recorder.run.is_mount = stick.is_mount
    rig = Rig(ros_context, recorder, 'recorder_storage_mount_test')
    harness, publish, level = rig.harness, rig.publish, rig.level

    def says(text: str) -> bool:
        status = rig.last_status()
        return status is not None and status.level == DiagnosticStatus.ERROR and (
            status.message == text)

    not_mounted = f'storage_mount {usb} is not mounted; holding'
    try:
        # ERROR before any detection: the operator sees it at the start.
        assert harness.wait(lambda: says(f'{not_mounted} 0 detection(s) in memory'), WAIT_S)
        publish(3)
        assert harness.wait(lambda: recorder.records_held == 3, WAIT_S)
        assert harness.wait(lambda: says(f'{not_mounted} 3 detection(s) in memory'), WAIT_S)
        harness.wait(lambda: False, 2.5)  # two turns of the retry timer
        assert list(usb.iterdir()) == []  # nothing made in the bare folder
        assert (recorder.records_held, recorder.records_written) == (3, 0)

        stick.plug(usb, STICK)
        assert harness.wait(lambda: recorder.records_held == 0, WAIT_S)
        publish(1)
        assert harness.wait(lambda: recorder.records_written == 4, WAIT_S)
        assert harness.wait(lambda: level() == DiagnosticStatus.OK, WAIT_S)

        stick.pull(usb)  # pulled mid-run: held again, with the mount named
        publish(2)
        assert harness.wait(lambda: recorder.records_held == 2, WAIT_S)
        assert harness.wait(lambda: says(f'{not_mounted} 2 detection(s) in memory'), WAIT_S)
        assert list(usb.iterdir()) == []

        stick.plug(usb, STICK_AGAIN)
        assert harness.wait(lambda: recorder.records_held == 0, WAIT_S)
        assert harness.wait(lambda: level() == DiagnosticStatus.OK, WAIT_S)
        assert [feature['properties']['stamp']['sec']
                for feature in read_geojson_seq(recorder.records_path)] == list(range(6))
        ok, message = recorder.save()
        assert ok, message
        summary = json.loads(recorder.run.summary_path.read_text())
        assert (summary['features_in_collection'], summary['records_held_unwritten']) == (6, 0)
    finally:
        harness.close()


@pytest.mark.parametrize(('storage_mount', 'refused'), [
    ('media/usb', "storage_mount must be an absolute path (a mount point), got 'media/usb'"),
    ('/media/usb', 'is not in storage_mount /media/usb: it must be on the mount'),
])
def test_a_bad_storage_mount_refuses_to_start(ros_context, tmp_path: Path, storage_mount: str,
                                              refused: str) -> None:
    with pytest.raises(ValueError) as error:
        DiseaseMapRecorder(context=ros_context, parameter_overrides=parameters(
            map_dir=str(tmp_path / 'maps'), run_name='field', storage_mount=storage_mount))
    assert refused in str(error.value)
    assert not (tmp_path / 'maps').exists()


def test_stopped_while_waiting_for_storage_mount_says_what_was_not_recorded(
        ros_context, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """Never mounted: the detections queued are said on stderr; nothing is saved or made."""
    usb = (tmp_path / 'usb').absolute()
    usb.mkdir()  # the bare mount point, never mounted (the real os.path.ismount)
    recorder = DiseaseMapRecorder(context=ros_context, parameter_overrides=parameters(
        map_dir=str(usb / 'maps'), run_name='field', storage_mount=str(usb)))
    rig = Rig(ros_context, recorder, 'recorder_storage_mount_stop_test')
    harness = rig.harness
    try:
        rig.publish(2)
        assert harness.wait(lambda: recorder.records_held == 2, WAIT_S)
        assert not recorder.started
        ok, message = recorder.save()
        assert not ok and f'storage_mount {usb} is not mounted' in message, message
        harness.executor.remove_node(recorder)
        harness.nodes.remove(recorder)
        _finish(recorder)
    finally:
        harness.close()
    error = capsys.readouterr().err
    assert (f'{NODE}: error: storage_mount {usb} was not mounted: the run was never started; '
            f'2 detection(s) queued in memory were not recorded to {usb}/maps/field.geojsons'
            ', 0 dropped (queue full); the classifier keeps its last 200 for a later start'
            ) in error, error
    assert list(usb.iterdir()) == []


def test_detections_queued_for_storage_mount_are_counted_received_once(
        ros_context, tmp_path: Path) -> None:
    """Waiting for storage_mount: each detection taken counts as received at once (also
    those a full queue drops, and a rejected one), and not again once the queue is
    recorded."""
    usb = (tmp_path / 'usb').absolute()
    usb.mkdir()
    stick = FakeMounts(tmp_path)
    recorder = DiseaseMapRecorder(context=ros_context, parameter_overrides=parameters(
        map_dir=str(usb / 'maps'), run_name='field', storage_mount=str(usb),
        max_held_records=3))
    recorder.run.device_of = stick
    recorder.run.is_mount = stick.is_mount
    rig = Rig(ros_context, recorder, 'recorder_storage_received_test')
    harness = rig.harness

    def value(key: str) -> str | None:
        status = rig.last_status()
        return {item.key: item.value for item in status.values}.get(key) if status else None

    try:
        rig.publish(5)
        rig.publisher.publish(String(data='not json'))
        assert harness.wait(lambda: recorder.diagnostics.received == 6, WAIT_S), \
            recorder.diagnostics.received
        assert harness.wait(lambda: value('received') == '6', WAIT_S)
        assert (recorder.records_held, recorder.records_dropped) == (3, 3)
        assert not recorder.started

        stick.plug(usb, STICK)
        assert harness.wait(lambda: recorder.started and recorder.records_held == 0, WAIT_S)
        assert recorder.records_written == 2   # the newest two; the bad one rejected
        assert harness.wait(lambda: value('rejected.invalid_json') == '1', WAIT_S)
        assert (value('received'), value('processed')) == ('6', '2')
        rig.publish(1)
        assert harness.wait(lambda: recorder.records_written == 3, WAIT_S)
        assert harness.wait(lambda: value('received') == '7', WAIT_S)
        assert recorder.diagnostics.received == 7
    finally:
        harness.close()


def test_copies_a_full_dds_queue_apart_are_counted_received_once(
        ros_context, tmp_path: Path) -> None:
    """Waiting for storage_mount, a transient-local classifier's detections are taken from
    one subscription's full DDS queue, then their copies from the other's (as
    _take_waiting takes them): each detection is received once, not twice."""
    usb = (tmp_path / 'usb').absolute()
    usb.mkdir()
    recorder = DiseaseMapRecorder(context=ros_context, parameter_overrides=parameters(
        map_dir=str(usb / 'maps'), run_name='field', storage_mount=str(usb)))
    try:
        assert not recorder.started
        gid = bytes(range(16))
        recorder._publisher_durability[gid] = True   # the graph says: transient local

        def copy(sequence: int) -> tuple[String, dict]:
            info = {'publisher_gid': {'data': gid}, 'publication_sequence_number': sequence,
                    'source_timestamp': recorder._started_ns + sequence}
            return String(data=json.dumps(detection(sequence))), info

        sequences = range(1, RECORDER_QUEUE_DEPTH + 1)
        for sequence in sequences:
            recorder._take_transient_local(*copy(sequence))
        for sequence in sequences:
            recorder._take_volatile(*copy(sequence))
        assert recorder.diagnostics.received == RECORDER_QUEUE_DEPTH
        assert recorder.records_held == RECORDER_QUEUE_DEPTH
    finally:
        recorder.destroy_node()


@pytest.mark.parametrize('max_held, says', [
    (0, 'the detections are dropped (max_held_records 0)\n'),
    (5, 'the detections are queued in memory (at most 5) and recorded then\n')])
def test_waiting_for_storage_mount_says_what_becomes_of_detections(
        ros_context, tmp_path: Path, capfd: pytest.CaptureFixture[str], max_held: int,
        says: str) -> None:
    """Not mounted at the start: the ERROR says the detections are queued (at most
    max_held_records), or, with max_held_records 0, dropped; never 'at most 0'."""
    usb = (tmp_path / 'usb').absolute()
    usb.mkdir()
    recorder = DiseaseMapRecorder(context=ros_context, parameter_overrides=parameters(
        map_dir=str(usb / 'maps'), run_name='field', storage_mount=str(usb),
        max_held_records=max_held))
    try:
        assert not recorder.started
        log = capfd.readouterr().err
        assert f'storage_mount {usb} is not mounted' in log and says in log, log
        assert 'at most 0' not in log
    finally:
        recorder.destroy_node()
