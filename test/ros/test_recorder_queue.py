"""disease_map_recorder: no detection lost silently in a DDS queue that overflows.

A recorder (re)started on a long run reads the run's file before it spins (11 s for a
day's 360,000 records here, a minute on a Pi). What the classifier sends meanwhile waits
in the subscriptions' keep-last DDS queues, which drop their oldest when full and say
nothing. The recorder now takes what waits every few records of the read into its own
queue (``max_held_records``, drops counted); and a detection that still never reaches it
(a gap in its publisher's sequence numbers) is counted in ``detections_lost``, warned
about and makes ``/diagnostics`` WARN.

The DDS queue is made 50 deep here (the node's is 5,000), so that a few hundred
detections overflow it; the detections are sent at set records of the read (a subclass
hooks the read), each batch acknowledged by the recorder's readers before the read goes
on: nothing depends on how fast the host reads.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
import json
from pathlib import Path

from helpers.ros import (
    classifier_stand_in,
    diagnostics_collector,
    Harness,
    latest_diagnostics,
    parameters,
    statuses,
)
import pytest

from plant_disease_ros.core.map_file import GeoJsonSeqWriter, read_geojson_seq

rclpy = pytest.importorskip('rclpy')

from diagnostic_msgs.msg import DiagnosticStatus  # noqa: E402
from rclpy.duration import Duration  # noqa: E402
from std_msgs.msg import String  # noqa: E402

from plant_disease_ros.nodes import disease_map_recorder  # noqa: E402
from plant_disease_ros.nodes.disease_map_recorder import DiseaseMapRecorder  # noqa: E402
from plant_disease_ros.ros.qos import recorder_detections_qos  # noqa: E402

NODE = 'disease_map_recorder'
QUEUE = 50          # the recorder's DDS queue in these tests
ACK_S = 10.0
RUN_RECORDS = 1000


def detection(sequence: int) -> dict:
    """Return a detection Feature numbered ``sequence`` (its stamp's seconds)."""
    return {'type': 'Feature', 'geometry': {'type': 'Point', 'coordinates': [4.35, 50.85]},
            'properties': {'stamp': {'sec': sequence, 'nanosec': 0}, 'frame_id': 'camera',
                           'label': 'Tomato___Late_blight', 'confidence': 0.9}}


def numbers(path: Path) -> list[int]:
    """Return the detection numbers in a records file, in file order."""
    return [feature['properties']['stamp']['sec'] for feature in read_geojson_seq(path)]


@pytest.fixture
def shallow_queue(monkeypatch: pytest.MonkeyPatch) -> None:
    """Give the recorder's detection subscriptions a DDS queue of QUEUE."""
    def shallow(transient_local: bool):
        profile = recorder_detections_qos(transient_local)
        profile.depth = QUEUE
        return profile
    monkeypatch.setattr(disease_map_recorder, 'recorder_detections_qos', shallow)


@pytest.fixture
def classifier(ros_context: object) -> Iterator[tuple[Harness, object]]:
    """Yield a node standing in for the classifier and its detections publisher."""
    with classifier_stand_in(ros_context) as pair:
        yield pair


def wait_matched(stand_in: Harness, publisher: object, node: DiseaseMapRecorder) -> None:
    """Wait until the publisher sees the recorder's two readers and both see it."""
    assert stand_in.wait(lambda: publisher.get_subscription_count() >= 2, ACK_S)
    assert stand_in.wait(lambda: all(reader.get_publisher_count() >= 1
                                     for reader in node._detection_subscriptions), ACK_S)


def send_acknowledged(publisher: object, sequences: range) -> None:
    """Publish the detections ``sequences``; return once every reader acknowledged them.

    A reader acknowledges a message once its DDS queue holds it, whether or not its node
    took it: so these sit in the recorder's queue (or pushed older ones out of it).
    """
    for sequence in sequences:
        publisher.publish(String(data=json.dumps(detection(sequence))))
    assert publisher.wait_for_all_acked(Duration(seconds=ACK_S))


class FloodedRecorder(DiseaseMapRecorder):
    """A recorder that calls ``during_read(records read)`` after each record of its run."""

    during_read: Callable[[DiseaseMapRecorder, int], None] = staticmethod(lambda node, n: None)

    def _continue_with(self, feature: dict) -> None:
        super()._continue_with(feature)
        self._test_records_read = getattr(self, '_test_records_read', 0) + 1
        type(self).during_read(self, self._test_records_read)


def recorder_parameters(map_dir: Path) -> list:
    return parameters(map_dir=str(map_dir), run_name='field', marker_period_s=0.2)


def write_run(path: Path, count: int) -> None:
    """Write a run's records file of detections 1 to ``count``."""
    with GeoJsonSeqWriter(path) as writer:
        for sequence in range(1, count + 1):
            writer.append(detection(sequence))


def test_detections_sent_while_a_long_run_is_read_are_all_recorded(
        ros_context: object, tmp_path: Path, shallow_queue: None,
        classifier: tuple[Harness, object]) -> None:
    """160 detections sent during the read, 40 at a time, into a DDS queue of 50: all
    reach the file after the run's 1000 records, in the order sent, none lost. Before,
    the queue kept the last 50 and the other 110 were gone without a word."""
    stand_in, publisher = classifier
    write_run(tmp_path / 'field.geojsons', RUN_RECORDS)
    batches = {100: range(10_001, 10_041), 300: range(10_041, 10_081),
               500: range(10_081, 10_121), 700: range(10_121, 10_161)}

    def flood(node: DiseaseMapRecorder, records_read: int) -> None:
        sequences = batches.get(records_read)
        if sequences is None:
            return
        if sequences.start == 10_001:   # the recorder's readers and the publisher match
            wait_matched(stand_in, publisher, node)
        send_acknowledged(publisher, sequences)

    FloodedRecorder.during_read = staticmethod(flood)
    recorder = FloodedRecorder(context=ros_context,
                               parameter_overrides=recorder_parameters(tmp_path))
    harness = Harness(ros_context, [recorder], name='recorder_queue_test')
    try:
        assert harness.wait(lambda: recorder.run.records_written >= 160), \
            recorder.run.records_written
        assert recorder.run.records_written == 160
        assert recorder.messages_taken() == 320    # both copies of each, none more
        assert (recorder.detections_lost, recorder.records_dropped) == (0, 0)
    finally:
        harness.close()
    assert numbers(tmp_path / 'field.geojsons') == [*range(1, RUN_RECORDS + 1),
                                                    *range(10_001, 10_161)]


@pytest.mark.parametrize(('max_held', 'kept'), [(60, 60), (0, QUEUE)])
def test_more_than_max_held_records_during_the_read_are_dropped_and_counted(
        ros_context: object, tmp_path: Path, shallow_queue: None,
        classifier: tuple[Harness, object], max_held: int, kept: int) -> None:
    """max_held_records 60, 120 detections sent during the read: the oldest 60 are
    dropped, counted in records_dropped and said; the newest 60 are recorded. With
    max_held_records 0 (hold nothing while the disk is full) the read still keeps what
    the DDS queue kept before: the newest 50."""
    stand_in, publisher = classifier
    write_run(tmp_path / 'field.geojsons', RUN_RECORDS)
    batches = {100: range(1, 41), 300: range(41, 81), 500: range(81, 121)}

    def flood(node: DiseaseMapRecorder, records_read: int) -> None:
        sequences = batches.get(records_read)
        if sequences is None:
            return
        if sequences.start == 1:
            wait_matched(stand_in, publisher, node)
        send_acknowledged(publisher, range(sequences.start + 20_000, sequences.stop + 20_000))

    FloodedRecorder.during_read = staticmethod(flood)
    recorder = FloodedRecorder(context=ros_context, parameter_overrides=parameters(
        map_dir=str(tmp_path), run_name='field', max_held_records=max_held))
    harness = Harness(ros_context, [recorder], name='recorder_queue_test')
    diagnostics = diagnostics_collector(harness.node)
    try:
        assert harness.wait(lambda: recorder.run.records_written >= kept), \
            recorder.run.records_written
        assert recorder.run.records_written == kept
        assert recorder.records_dropped == 120 - kept
        assert recorder.detections_lost == 0
        assert harness.wait(lambda: (latest_diagnostics(diagnostics, NODE) or {}).get(
            'records_dropped') == str(120 - kept))
    finally:
        harness.close()
    assert numbers(tmp_path / 'field.geojsons')[RUN_RECORDS:] == \
        list(range(20_121 - kept, 20_121))


def test_a_gap_in_the_publishers_numbers_is_counted_lost_and_warned(
        ros_context: object, tmp_path: Path, shallow_queue: None,
        classifier: tuple[Harness, object]) -> None:
    """The recorder takes one detection, then is held up (not spun) while 80 more come
    into its DDS queue of 50: it records the newest 50 and counts the other 30 lost, with
    a warning and WARN in /diagnostics; a later detection adds none."""
    stand_in, publisher = classifier
    recorder = DiseaseMapRecorder(context=ros_context,
                                  parameter_overrides=recorder_parameters(tmp_path))
    harness = Harness(ros_context, [recorder], name='recorder_queue_test')
    diagnostics = diagnostics_collector(harness.node)
    try:
        harness.wait_for_subscribers(publisher, count=2)
        send_acknowledged(publisher, range(1, 2))
        assert harness.wait(lambda: recorder.run.records_written == 1)
        send_acknowledged(publisher, range(2, 82))    # nothing spins meanwhile
        assert harness.wait(lambda: recorder.run.records_written == 51)
        assert recorder.detections_lost == 30
        send_acknowledged(publisher, range(82, 83))
        assert harness.wait(lambda: recorder.run.records_written == 52)
        assert recorder.detections_lost == 30

        def lost_status() -> DiagnosticStatus | None:
            found = [status for status in statuses(diagnostics, NODE)
                     if any(value.key == 'detections_lost' and value.value == '30'
                            for value in status.values)]
            return found[-1] if found else None

        assert harness.wait(lambda: lost_status() is not None)
        status = lost_status()
        assert status.level == DiagnosticStatus.WARN
        assert '30 detection(s) never reached this recorder' in status.message
    finally:
        harness.close()
    assert numbers(tmp_path / 'field.geojsons') == [1, *range(32, 83)]


def test_history_behind_live_copies_is_no_loss(
        ros_context: object, tmp_path: Path, classifier: tuple[Harness, object],
        capfd: pytest.CaptureFixture[str]) -> None:
    """20 detections published before the recorder started come from the transient-local
    subscription while the volatile one already hands over the 10 sent after: the two
    together run out of order, each alone does not. Nothing is counted lost or warned
    (counted on both together, 19 were "lost" until the history caught up)."""
    stand_in, publisher = classifier
    send_acknowledged(publisher, range(1, 21))     # no reader yet: kept as history
    recorder = DiseaseMapRecorder(context=ros_context,
                                  parameter_overrides=recorder_parameters(tmp_path))
    harness = Harness(ros_context, [recorder], name='recorder_queue_test')
    diagnostics = diagnostics_collector(harness.node)
    try:
        harness.wait_for_subscribers(publisher, count=2)
        send_acknowledged(publisher, range(21, 31))    # both queues hold these
        lost_seen = []
        assert harness.wait(lambda: lost_seen.append(recorder.detections_lost) or
                            recorder.run.records_written == 30)
        assert harness.wait(lambda: (latest_diagnostics(diagnostics, NODE) or {}).get(
            'records_written') == '30')
        assert set(lost_seen) == {0}
        assert all(status.level == DiagnosticStatus.OK
                   for status in statuses(diagnostics, NODE))
    finally:
        harness.close()
    assert 'never reached this recorder' not in capfd.readouterr().err
    assert numbers(tmp_path / 'field.geojsons') == list(range(1, 31))


def test_copies_left_while_the_queue_is_recorded_are_no_dropped_detection(
        ros_context: object, tmp_path: Path, shallow_queue: None,
        classifier: tuple[Harness, object]) -> None:
    """A queue limit of 50: 45 detections come during the read, 40 more at the first take
    while the queue is recorded. The limit then drops the other copies of detections
    recorded already, not detections: all 85 recorded, none counted dropped (16 were,
    with a warning, when a recorded detection's other copy still counted as queued)."""
    stand_in, publisher = classifier
    write_run(tmp_path / 'field.geojsons', 100)
    sent_while_recording = []

    class RecordingFlooded(FloodedRecorder):
        def _take_waiting(self) -> None:
            if self._file_tail is None and not sent_while_recording:   # in _take_queue
                sent_while_recording.append(True)
                send_acknowledged(publisher, range(46, 86))
            super()._take_waiting()

    def flood(node: DiseaseMapRecorder, records_read: int) -> None:
        if records_read == 10:
            wait_matched(stand_in, publisher, node)
            send_acknowledged(publisher, range(1, 46))

    RecordingFlooded.during_read = staticmethod(flood)
    recorder = RecordingFlooded(context=ros_context, parameter_overrides=parameters(
        map_dir=str(tmp_path), run_name='field', max_held_records=0))
    harness = Harness(ros_context, [recorder], name='recorder_queue_test')
    try:
        assert sent_while_recording
        assert harness.wait(lambda: recorder.run.records_written >= 85), \
            recorder.run.records_written
        assert (recorder.run.records_written, recorder.records_dropped) == (85, 0)
    finally:
        harness.close()
    assert numbers(tmp_path / 'field.geojsons')[100:] == list(range(1, 86))


def held_bytes(root: object) -> int:
    """Return the bytes of ``root`` and of every object it holds, each counted once.

    Follows tuples, lists, deques, dicts and ROS messages (their slots); strings, bytes
    and numbers end a path.
    """
    import sys
    seen: set[int] = set()
    stack = [root]
    total = 0
    while stack:
        item = stack.pop()
        if id(item) in seen:
            continue
        seen.add(id(item))
        total += sys.getsizeof(item)
        if isinstance(item, dict):
            stack.extend(item.keys())
            stack.extend(item.values())
        elif isinstance(item, (tuple, list)) or type(item).__name__ == 'deque':
            stack.extend(item)
        elif hasattr(type(item), '__slots__') and not callable(item):
            stack.extend(getattr(item, name) for name in type(item).__slots__
                         if hasattr(item, name))
    return total


def test_a_queued_detection_is_kept_once_with_part_of_its_info(
        ros_context: object, tmp_path: Path, classifier: tuple[Harness, object]) -> None:
    """300 detections of about 1 KB come while the run is read, each taken from both
    subscriptions as rclpy hands messages over. The queue holds each detection's text
    once and of each copy's info only what the recorder reads: under 2,200 B a detection
    (about 2,000 B here; two texts and two whole infos took about 4,500 B)."""
    stand_in, publisher = classifier
    write_run(tmp_path / 'field.geojsons', RUN_RECORDS)
    padding = 'x' * 700   # a classifier's Feature carries top-k, fix age, accuracy...
    measured: list[tuple[int, int]] = []

    def flood(node: DiseaseMapRecorder, records_read: int) -> None:
        if records_read == 10:
            wait_matched(stand_in, publisher, node)
            for sequence in range(1, 301):
                feature = detection(sequence)
                feature['properties']['note'] = padding
                publisher.publish(String(data=json.dumps(feature)))
            assert publisher.wait_for_all_acked(Duration(seconds=ACK_S))
        elif records_read == 900:
            measured.append((held_bytes(node._queued), len(node._queued)))

    FloodedRecorder.during_read = staticmethod(flood)
    recorder = FloodedRecorder(context=ros_context,
                               parameter_overrides=recorder_parameters(tmp_path))
    harness = Harness(ros_context, [recorder], name='recorder_queue_test')
    try:
        assert harness.wait(lambda: recorder.run.records_written >= 300)
    finally:
        harness.close()
    held, copies = measured[0]
    assert copies == 600
    assert held / 300 < 2200, held / 300
