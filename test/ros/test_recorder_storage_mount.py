"""disease_map_recorder's ``storage_mount`` with a real stick: a tmpfs bind-mounted on it.

The stick is a tmpfs (its files survive a pull) mounted with ``mount --bind`` on the
mount point and unmounted from it. A recorder started while it is not mounted starts the
run only once it is: an earlier session of the run on it is continued then, before the
detections taken meanwhile are judged, so the classifier's history is not written twice
and the map's origin is the run's first record. Needs root to mount: skipped otherwise.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
import errno
import fcntl
import json
from pathlib import Path
import subprocess

from helpers.filesystems import mount_small, unmount
from helpers.ros import Harness, parameters
import pytest

from plant_disease_ros.core.map_file import read_geojson_seq

rclpy = pytest.importorskip('rclpy')

from std_msgs.msg import String  # noqa: E402

from plant_disease_ros.nodes.disease_map_recorder import DiseaseMapRecorder  # noqa: E402
from plant_disease_ros.ros.qos import detections_qos  # noqa: E402

WAIT_S = 20.0


def detection(sequence: int) -> dict:
    """Return a located detection numbered ``sequence`` (its stamp), 70 m apart each."""
    return {'type': 'Feature',
            'geometry': {'type': 'Point', 'coordinates': [4.35 + 0.001 * sequence, 50.85]},
            'properties': {'stamp': {'sec': sequence, 'nanosec': 0}, 'frame_id': 'camera',
                           'label': 'Tomato___Late_blight', 'confidence': 0.9}}


def message(sequence: int) -> String:
    """Return detection ``sequence`` as the classifier publishes it."""
    return String(data=json.dumps(detection(sequence)))


def stamps(path: Path) -> list[int]:
    """Return the stamps of the records in ``path``, in file order."""
    return [feature['properties']['stamp']['sec'] for feature in read_geojson_seq(path)]


class Stick:
    """A tmpfs standing for a USB stick, bind-mounted on ``usb`` by :meth:`plug`."""

    def __init__(self, tmp_path: Path) -> None:
        """Mount the stick's file system; skip the test when it cannot be mounted."""
        self.data = tmp_path / 'stick'
        self.usb = tmp_path / 'usb'
        self.usb.mkdir()
        reason = mount_small(self.data, 4096)
        if reason is not None:
            pytest.skip(f'cannot mount a small file system (needs root): {reason}')
        self.mounted = False

    def plug(self, *options: str) -> None:
        """Mount the stick on ``usb`` (``options``: e.g. ``ro``)."""
        subprocess.run(['mount', '--bind', str(self.data), str(self.usb)], check=True)
        self.mounted = True
        if options:
            subprocess.run(['mount', '-o', f"remount,bind,{','.join(options)}",
                            str(self.usb)], check=True)

    def pull(self) -> None:
        """Unmount the stick from ``usb``: the bare folder is left."""
        unmount(self.usb)
        self.mounted = False

    def close(self) -> None:
        """Unmount everything."""
        if self.mounted:
            self.pull()
        unmount(self.data)


@pytest.fixture
def stick(tmp_path: Path) -> Iterator[Stick]:
    """Yield a stick, not plugged in yet."""
    made = Stick(tmp_path)
    try:
        yield made
    finally:
        made.close()


def recorder_factory(ros_context, stick: Stick, **options: object
                     ) -> Callable[[], DiseaseMapRecorder]:
    """Return a function that makes a recorder of run 'field' on the stick."""
    def make() -> DiseaseMapRecorder:
        return DiseaseMapRecorder(context=ros_context, parameter_overrides=parameters(
            map_dir=str(stick.usb / 'maps'), run_name='field', storage_mount=str(stick.usb),
            **options))
    return make


def first_session(harness: Harness, make: Callable[[], DiseaseMapRecorder], publisher
                  ) -> tuple[float, float, float]:
    """Record detections 0, 1, 2 with a recorder, stop it; return its map's origin."""
    recorder = make()
    harness.add(recorder)
    harness.wait_for_subscribers(publisher)
    for sequence in range(3):
        publisher.publish(message(sequence))
    assert harness.wait(lambda: recorder.records_written == 3, WAIT_S)
    origin = recorder._aggregator.origin
    assert origin is not None
    harness.executor.remove_node(recorder)
    harness.nodes.remove(recorder)
    recorder.destroy_node()
    return origin



@dataclass
class Session:
    """A run recorded once on the stick (its recorder stopped), and what made it."""

    harness: Harness
    make: Callable[[], DiseaseMapRecorder]
    publisher: object
    origin: tuple[float, float, float]


@contextmanager
def after_a_first_session(ros_context, stick: Stick, name: str,
                          **options: object) -> Iterator[Session]:
    """Plug the stick, record detections 0, 1, 2 with a recorder and stop it; yield.

    ``options``: the recorder's parameters beyond the stick's; ``name``: the test node's.
    """
    stick.plug()
    make = recorder_factory(ros_context, stick, **options)
    harness = Harness(ros_context, [], name=name)
    publisher = harness.node.create_publisher(String, 'detections', detections_qos())
    try:
        yield Session(harness, make, publisher, first_session(harness, make, publisher))
    finally:
        harness.close()


@pytest.mark.parametrize('mounted_at_restart', [True, False])
def test_a_restart_of_the_run_does_not_record_the_classifiers_history_twice(
        ros_context, stick: Stick, mounted_at_restart: bool) -> None:
    """The classifier (transient local) keeps 0, 1, 2: the restarted run skips them."""
    with after_a_first_session(ros_context, stick, 'storage_mount_restart_test') as session:
        harness, make, publisher = session.harness, session.make, session.publisher
        if not mounted_at_restart:
            stick.pull()
        recorder = make()
        harness.add(recorder)
        harness.wait_for_subscribers(publisher)
        if mounted_at_restart:
            assert harness.wait(lambda: recorder.earlier_detections == 3, WAIT_S)
        else:
            assert not recorder.started
            # The history is queued, not judged: nothing in the map yet.
            assert harness.wait(lambda: recorder.records_held == 3, WAIT_S)
            assert (recorder.earlier_detections, recorder._summary.detections) == (0, 0)
        publisher.publish(message(50))
        if not mounted_at_restart:
            assert harness.wait(lambda: recorder.records_held == 4, WAIT_S)
            stick.plug()
        assert harness.wait(lambda: recorder.records_written == 1
                            and recorder.records_held == 0, WAIT_S)
        assert stamps(recorder.records_path) == [0, 1, 2, 50]
        assert (recorder.records_at_start, recorder.earlier_detections,
                recorder.recovered_detections) == (3, 3, 0)
        assert recorder._aggregator.origin == session.origin
        ok, text = recorder.save()
        assert ok, text
        summary = json.loads(recorder.run.summary_path.read_text())
        assert (summary['features_in_collection'], summary['detections']) == (4, 4)


def test_the_origin_after_an_unmounted_restart_is_the_runs_first_record(
        ros_context, stick: Stick) -> None:
    """No datum: the earlier session's first record, not the first queued detection.

    The classifier restarted too (no history); the queue holds 2: the oldest is dropped.
    """
    with after_a_first_session(ros_context, stick, 'storage_mount_origin_test',
                               max_held_records=2) as session:
        harness, make, origin = session.harness, session.make, session.origin
        harness.node.destroy_publisher(session.publisher)
        stick.pull()
        recorder = make()
        harness.add(recorder)
        publisher = harness.node.create_publisher(String, 'detections', detections_qos())
        harness.wait_for_subscribers(publisher)
        for sequence in (500, 501, 502):
            publisher.publish(message(sequence))
        assert harness.wait(lambda: (recorder.records_held, recorder.records_dropped)
                            == (2, 1), WAIT_S)
        assert harness.wait(lambda: 'holding 2 detection(s) in memory, 1 dropped'
                            in recorder.diagnostics.error, WAIT_S)
        assert recorder._aggregator.origin is None
        stick.plug()
        assert harness.wait(lambda: recorder.started and recorder.records_held == 0, WAIT_S)
        assert stamps(recorder.records_path) == [0, 1, 2, 501, 502]
        assert recorder._aggregator.origin == origin
        ok, text = recorder.save()
        assert ok, text
        summary = json.loads(recorder.run.summary_path.read_text())
        assert summary['origin'] == dict(zip(('latitude', 'longitude', 'altitude'), origin,
                                                 strict=True))
        assert (summary['records_dropped_queue_full'], summary['detections']) == (1, 5)


def test_save_right_after_the_mount_starts_the_run_first(ros_context, stick: Stick) -> None:
    """~/save before the timer saw the mount: the run starts, the summary holds its file."""
    with after_a_first_session(ros_context, stick, 'storage_mount_save_test') as session:
        stick.pull()
        recorder = session.make()  # not spun: only save() can see the mount
        try:
            ok, text = recorder.save()
            assert not ok and f'storage_mount {stick.usb} is not mounted' in text, text
            assert list(stick.usb.iterdir()) == []
            stick.plug()
            ok, text = recorder.save()
            assert ok, text
            summary = json.loads(recorder.run.summary_path.read_text())
            assert (summary['features_in_collection'], summary['detections'],
                    summary['records_continued']) == (3, 3, 3)
        finally:
            recorder.destroy_node()


def test_the_records_file_is_locked_after_a_start_once_mounted(
        ros_context, stick: Stick) -> None:
    with after_a_first_session(ros_context, stick, 'storage_mount_lock_test') as session:
        stick.pull()
        recorder = session.harness.add(session.make())
        stick.plug()
        assert session.harness.wait(lambda: recorder.started, WAIT_S)
        with open(recorder.records_path, 'rb') as other:  # as another machine would
            with pytest.raises(OSError) as error:
                fcntl.flock(other.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
            assert error.value.errno in (errno.EAGAIN, errno.EWOULDBLOCK)


def test_a_read_only_stick_mounted_after_the_start_holds_until_writable(
        ros_context, stick: Stick) -> None:
    with after_a_first_session(ros_context, stick, 'storage_mount_ro_test') as session:
        harness, make = session.harness, session.make
        harness.node.destroy_publisher(session.publisher)
        stick.pull()
        recorder = make()
        harness.add(recorder)
        stick.plug('ro')
        assert harness.wait(lambda: recorder.started, WAIT_S)
        assert recorder.records_at_start == 3
        publisher = harness.node.create_publisher(String, 'detections', detections_qos())
        harness.wait_for_subscribers(publisher)
        publisher.publish(message(9))
        assert harness.wait(lambda: recorder.records_held == 1, WAIT_S)
        assert 'cannot write' in recorder.diagnostics.error
        stick.pull()
        stick.plug()
        assert harness.wait(lambda: recorder.records_held == 0, WAIT_S)
        assert stamps(recorder.records_path) == [0, 1, 2, 9]


def test_a_symlinked_storage_mount_is_its_target(ros_context, stick: Stick,
                                                  tmp_path: Path) -> None:
    """os.path.ismount is False for a link: the target is the mount looked at."""
    link = tmp_path / 'field'
    link.symlink_to(stick.usb)
    stick.plug()
    recorder = DiseaseMapRecorder(context=ros_context, parameter_overrides=parameters(
        map_dir=str(link / 'maps'), run_name='field', storage_mount=str(link)))
    harness = Harness(ros_context, [recorder], name='storage_mount_link_test')
    publisher = harness.node.create_publisher(String, 'detections', detections_qos())
    try:
        assert recorder.started
        assert (recorder.run.storage_mount, recorder.run.storage_mount_link) == (
            stick.usb, link)
        harness.wait_for_subscribers(publisher)
        publisher.publish(message(0))
        assert harness.wait(lambda: recorder.records_written == 1, WAIT_S)
        assert stamps(stick.data / 'maps' / 'field.geojsons') == [0]
        assert recorder.diagnostics.error == ''
    finally:
        harness.close()
