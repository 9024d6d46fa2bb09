"""disease_map_recorder on a disk that fills up, then gets space back (a real tmpfs).

``map_dir`` is a 64 KiB tmpfs (or a loop-mounted ext4 image). The test records some
detections, fills the file system with a filler file until writes fail with ENOSPC,
publishes more detections, then deletes the filler. Counted: records on disk + held +
dropped = detections published at every step, never a partial line in the file, ERROR
in diagnostics with the number held, and every held detection appended, in order, once
space returns. Skipped (with the reason) where no file system can be mounted.
"""

from __future__ import annotations

from collections.abc import Iterator
import json
from pathlib import Path

from helpers.filesystems import fill, small_filesystem
from helpers.ros import diagnostics_collector, Harness, latest_diagnostics, parameters, statuses
import pytest

from plant_disease_ros.core.map_file import encode_record, RECORD_SEPARATOR, scan_geojson_seq

rclpy = pytest.importorskip('rclpy')

from diagnostic_msgs.msg import DiagnosticStatus  # noqa: E402
from std_msgs.msg import String  # noqa: E402

from plant_disease_ros.nodes.disease_map_recorder import DiseaseMapRecorder  # noqa: E402
from plant_disease_ros.ros.qos import detections_qos  # noqa: E402

NODE = 'disease_map_recorder'
# As the classifier publishes detections (the recorder's subscription is transient local).
RELIABLE = detections_qos()
WAIT_S = 20.0


def detection(sequence: int) -> dict:
    """Return a detection Feature numbered ``sequence`` (about 300 bytes as a record)."""
    return {'type': 'Feature',
            'geometry': {'type': 'Point', 'coordinates': [4.35 + sequence * 1e-5, 50.85]},
            'properties': {'stamp': {'sec': sequence, 'nanosec': 0}, 'frame_id': 'camera',
                           'label': 'Tomato___Late_blight', 'confidence': 0.9,
                           'healthy': False, 'fix_status': 'interpolated',
                           'note': 'x' * 120}}


class DiskRig:
    """A recorder on ``map_dir`` and a test node publishing numbered detections."""

    def __init__(self, context: object, map_dir: Path, **overrides: object) -> None:
        values = {'map_dir': str(map_dir), 'run_name': 'field', **overrides}
        self.recorder = DiseaseMapRecorder(context=context,
                                           parameter_overrides=parameters(**values))
        self.harness = Harness(context, [self.recorder], name='disk_full_test')
        self.publisher = self.harness.node.create_publisher(String, 'detections', RELIABLE)
        self.diagnostics = diagnostics_collector(self.harness.node)
        self.published = 0
        self.harness.wait_for_subscribers(self.publisher)

    def publish(self, count: int) -> None:
        for _ in range(count):
            self.publisher.publish(String(data=json.dumps(detection(self.published))))
            self.published += 1

    def wait(self, predicate, timeout_s: float = WAIT_S) -> bool:
        return self.harness.wait(predicate, timeout_s)

    def on_disk(self) -> list[int]:
        """Return the sequence numbers in the records file; assert it has no partial line."""
        path = self.recorder.records_path
        if not path.exists():
            return []
        data = path.read_bytes()
        assert data == b'' or data.endswith(b'\n'), data[-80:]
        features, stats = scan_geojson_seq(path)
        assert (stats.skipped, stats.truncated_tail) == (0, False)
        assert data.count(RECORD_SEPARATOR) == len(features)
        return [feature['properties']['stamp']['sec'] for feature in features]

    def accounted(self) -> int:
        """Return records on disk + held + dropped (what a published detection became)."""
        return (len(self.on_disk()) + self.recorder.records_held
                + self.recorder.records_dropped)

    def diagnostics_values(self) -> dict[str, str]:
        return latest_diagnostics(self.diagnostics, NODE) or {}

    def latest_level(self) -> int | None:
        found = statuses(self.diagnostics, NODE)
        return found[-1].level if found else None

    def close(self) -> None:
        self.harness.close()


@pytest.fixture
def map_dir(tmp_path: Path) -> Iterator[Path]:
    with small_filesystem(tmp_path / 'maps', size_kib=64) as mount_point:
        yield mount_point


def test_full_disk_holds_detections_then_appends_them(ros_context, map_dir: Path) -> None:
    rig = DiskRig(ros_context, map_dir)
    filler = map_dir.parent / 'unused'
    try:
        rig.publish(10)
        assert rig.wait(lambda: rig.recorder.records_written == 10)

        filler = map_dir / 'filler'
        assert fill(filler) > 0
        rig.publish(30)
        assert rig.wait(lambda: rig.recorder.records_held + rig.recorder.records_written
                        == 40 and rig.recorder.records_held > 0)
        held = rig.recorder.records_held
        # The filesystem's last partial page may have taken a record or two; the rest
        # are held, and nothing half-written is left in the file.
        assert len(rig.on_disk()) == 40 - held
        assert rig.accounted() == rig.published == 40
        assert rig.recorder.records_dropped == 0
        assert rig.wait(lambda: rig.latest_level() == DiagnosticStatus.ERROR
                        and rig.diagnostics_values().get('records_held') == str(held))
        message = statuses(rig.diagnostics, NODE)[-1].message
        assert f'{held} detection(s) held in memory' in message, message
        assert 'No space left on device' in message, message

        filler.unlink()
        assert rig.wait(lambda: rig.recorder.records_held == 0)
        assert rig.on_disk() == list(range(40))
        assert rig.wait(lambda: rig.latest_level() == DiagnosticStatus.OK
                        and rig.diagnostics_values().get('records_held') == '0')
        print(f'disk full: published {rig.published}, held at most {held}, on disk '
              f'{len(rig.on_disk())}, dropped {rig.recorder.records_dropped}')
    finally:
        rig.close()


def test_a_full_queue_drops_the_oldest_and_the_summary_says_so(ros_context,
                                                                map_dir: Path) -> None:
    rig = DiskRig(ros_context, map_dir, max_held_records=5)
    try:
        rig.publish(3)
        assert rig.wait(lambda: rig.recorder.records_written == 3)
        filler = map_dir / 'filler'
        fill(filler)
        # More than the file's last partial page can take, and than the queue holds.
        rig.publish(40)
        assert rig.wait(lambda: rig.accounted() == 43 and rig.recorder.records_held == 5)
        dropped = rig.recorder.records_dropped
        assert dropped == 43 - 5 - len(rig.on_disk()) and dropped > 0
        filler.unlink()
        assert rig.wait(lambda: rig.recorder.records_held == 0)
        on_disk = rig.on_disk()
        # The newest held records went to the file, in order, after the older ones.
        assert on_disk == sorted(on_disk) and on_disk[-5:] == list(range(38, 43))
        assert len(on_disk) + dropped == rig.published == 43
        ok, message = rig.recorder.save()
        assert ok, message
        summary = json.loads(rig.recorder.run.summary_path.read_text())
        assert summary['records_dropped_queue_full'] == dropped
        assert summary['records_held_unwritten'] == 0
        assert summary['features_in_collection'] == len(on_disk)
        print(f'queue overflow: published {rig.published}, on disk {len(on_disk)}, '
              f'dropped {dropped}')
    finally:
        rig.close()


def drop_onto_a_full_disk(rig: DiskRig, map_dir: Path) -> Path:
    """Record 2 detections, fill the disk, publish 30 more until some are dropped (a rig
    without a queue); return the filler file."""
    rig.publish(2)
    assert rig.wait(lambda: rig.recorder.records_written == 2)
    filler = map_dir / 'filler'
    fill(filler)
    rig.publish(30)
    assert rig.wait(lambda: rig.accounted() == 32 and rig.recorder.records_dropped > 0)
    return filler


def test_no_queue_drops_each_detection_and_says_so(ros_context, map_dir: Path) -> None:
    """max_held_records 0: a failed write drops the detection at once, ERROR and a warning."""
    rig = DiskRig(ros_context, map_dir, max_held_records=0)
    try:
        filler = drop_onto_a_full_disk(rig, map_dir)
        assert rig.recorder.records_held == 0
        dropped = rig.recorder.records_dropped
        # A dropped detection is not processed: only the written ones are.
        assert rig.recorder.diagnostics.processed == 32 - dropped
        assert rig.wait(lambda: rig.latest_level() == DiagnosticStatus.ERROR
                        and rig.diagnostics_values().get('records_dropped') == str(dropped))
        message = statuses(rig.diagnostics, NODE)[-1].message
        assert f'{dropped} dropped' in message and 'No space left on device' in message, message
        filler.unlink()
        rig.publish(1)
        assert rig.wait(lambda: rig.recorder.records_written == 33 - dropped)
        assert rig.wait(lambda: rig.latest_level() == DiagnosticStatus.OK)
        assert rig.on_disk()[-1] == 32
    finally:
        rig.close()


def test_no_queue_a_dropped_detection_from_before_the_start_is_not_recovered(
        ros_context, map_dir: Path) -> None:
    """max_held_records 0, a full disk: a detection of the classifier's history (published
    before the start, not in the file) that cannot be written is dropped, not counted in
    detections_recovered nor processed; one written once there is room is."""
    recorder = DiseaseMapRecorder(context=ros_context, parameter_overrides=parameters(
        map_dir=str(map_dir), run_name='field', max_held_records=0))
    try:
        filler = map_dir / 'filler'
        fill(filler)
        history = String(data=json.dumps(detection(1)))
        assert recorder._on_detection(history, before_start=True) != 'recovered'
        assert (recorder.records_written, recorder.records_dropped) == (0, 1)
        assert recorder.diagnostics.values['detections_recovered'] == 0
        assert recorder.diagnostics.processed == 0
        filler.unlink()
        history = String(data=json.dumps(detection(2)))
        assert recorder._on_detection(history, before_start=True) == 'recovered'
        assert recorder.records_written == 1
        assert recorder.diagnostics.values['detections_recovered'] == 1
        assert recorder.diagnostics.processed == 1
    finally:
        recorder.destroy_node()


def _cut_off_run_file(path: Path, size: int) -> tuple[bytes, int]:
    """Write whole records then a cut-off one (a kill mid-write), ``size`` bytes in all.

    Return the file's bytes and the number of whole records. A page-sized file fills its
    last tmpfs page: the line feed that ends the cut-off record needs a page of its own.
    """
    whole = b''
    count = 0
    while len(whole) + len(encode_record(detection(count))) < size:
        whole += encode_record(detection(count))
        count += 1
    fragment = encode_record(detection(count))[:size - len(whole)]
    assert 0 < len(fragment) and not fragment.endswith(b'\n')
    path.write_bytes(whole + fragment)
    return whole + fragment, count


def test_a_cut_off_run_file_on_a_full_disk_starts_and_holds_detections(
        ros_context, map_dir: Path) -> None:
    """kill -9 mid-record, then the disk filled: the restart records all the same.

    The line feed that ends the cut-off record cannot be written: the recorder starts
    (before, it exited with 'No space left on device'), says ERROR naming the file, holds
    the detections, and once there is room writes the line feed and then them.
    """
    records = map_dir / 'field.geojsons'
    before, whole = _cut_off_run_file(records, 4096)
    filler = map_dir / 'filler'
    assert fill(filler) > 0
    rig = DiskRig(ros_context, map_dir)
    try:
        assert rig.recorder.records_at_start == whole
        assert rig.wait(lambda: rig.latest_level() == DiagnosticStatus.ERROR)
        message = statuses(rig.diagnostics, NODE)[-1].message
        assert str(records.absolute()) in message and 'No space left' in message, message
        rig.publish(3)
        assert rig.wait(lambda: rig.recorder.records_held == 3)
        assert records.read_bytes() == before   # nothing written, nothing cut
        filler.unlink()
        assert rig.wait(lambda: rig.recorder.records_held == 0)
        data = records.read_bytes()
        assert data.startswith(before + b'\n' + RECORD_SEPARATOR), data[len(before) - 20:]
        features, stats = scan_geojson_seq(records)
        assert (stats.records, stats.skipped, stats.truncated_tail) == (whole + 3, 1, False)
        assert [f['properties']['stamp']['sec'] for f in features[whole:]] == [0, 1, 2]
        assert rig.wait(lambda: rig.latest_level() == DiagnosticStatus.OK)
    finally:
        rig.close()


def test_a_cut_off_run_file_on_a_full_disk_without_a_queue_says_detections_are_dropped(
        ros_context, map_dir: Path, capfd: pytest.CaptureFixture[str]) -> None:
    """max_held_records 0, the restart's line feed not writable: the start-up ERROR says
    the detections are dropped, not 'held in memory (at most 0)'."""
    records = map_dir / 'field.geojsons'
    _cut_off_run_file(records, 4096)
    fill(map_dir / 'filler')
    recorder = DiseaseMapRecorder(context=ros_context, parameter_overrides=parameters(
        map_dir=str(map_dir), run_name='field', max_held_records=0))
    try:
        assert recorder.started and 'No space left' in recorder.run.write_error
        log = capfd.readouterr().err
        assert f'cannot write {records.absolute()}' in log, log
        assert 'cut-off last record cannot be ended yet); detections are dropped' in log, log
        assert 'at most 0' not in log
    finally:
        recorder.destroy_node()


def test_without_a_queue_the_error_ends_when_the_disk_is_freed(ros_context,
                                                               map_dir: Path) -> None:
    """max_held_records 0: nothing is held to retry, yet once the disk has room again the
    ERROR ends without waiting for the next detection."""
    rig = DiskRig(ros_context, map_dir, max_held_records=0)
    try:
        filler = drop_onto_a_full_disk(rig, map_dir)
        assert rig.wait(lambda: rig.latest_level() == DiagnosticStatus.ERROR)
        # Full still: the retry timer keeps the error (two turns of it, at least).
        assert not rig.wait(lambda: rig.latest_level() != DiagnosticStatus.ERROR,
                            timeout_s=2.5)
        written = rig.recorder.records_written
        filler.unlink()
        assert rig.wait(lambda: rig.latest_level() == DiagnosticStatus.OK)
        assert rig.recorder.run.write_error == ''
        assert (rig.recorder.records_written, rig.published) == (written, 32)
        rig.publish(1)
        assert rig.wait(lambda: rig.recorder.records_written == written + 1)
        assert rig.on_disk()[-1] == 32
    finally:
        rig.close()
