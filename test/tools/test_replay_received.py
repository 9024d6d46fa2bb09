"""The replay keeps the detections it receives in a temporary file, not in memory. No ROS.

A day's bag (8 h at 10 detections/s) brings about 300,000 detections; the recorder once
held every one in a list until the end. Here: its memory stays bounded however many come,
the map made from them is the one the list made, a full disk or a folder that cannot be
written is said, and the file never outlives the replay.
"""

from __future__ import annotations

import gc
import json
import os
from pathlib import Path
import subprocess
import sys
import tracemalloc

from helpers.filesystems import small_filesystem
from helpers.maps import EARLY_BLIGHT, feature_at, HEALTHY, LATE_BLIGHT
import pytest

from plant_disease_ros.core.map_file import GeoJsonSeqWriter, write_feature_collection
from plant_disease_ros.tools.replay import OutputRecorder, ReceivedDetections, ReplaySummary
from plant_disease_ros.tools.replay.outputs import write_map
from plant_disease_ros.tools.replay.received import BATCH_BYTES, stale_received_files

rosbags = pytest.importorskip('rosbags')

TOPICS = {'/ns/classification': 'std_msgs/msg/String', '/ns/detections': 'std_msgs/msg/String'}
LABELS = (LATE_BLIGHT, EARLY_BLIGHT, HEALTHY)


class NullWriter:
    """A stand-in for the rosbags Writer that keeps nothing (the bag is not measured)."""

    def add_connection(self, topic: str, msgtype: str, typestore: object) -> str:
        return topic

    def write(self, connection: str, log_ns: int, data: bytes) -> None:
        pass


@pytest.fixture(scope='module')
def store() -> object:
    """Return the rosbags typestore the replay uses."""
    from rosbags.typesys import get_typestore, Stores

    return get_typestore(Stores.LATEST)


def detections(count: int) -> list[dict]:
    """Return ``count`` detections along a row, every 50th without a position."""
    return [feature_at(None if number % 50 == 49 else 0.3 * number, 0.1 * (number % 7),
                       LABELS[number % 3], 0.5 + (number % 40) / 100, sec=number)
            for number in range(count)]


def detection_cdr(store: object, feature: dict) -> bytes:
    """Return a detection as the classifier publishes it: std_msgs/String CDR of its JSON."""
    message = store.types['std_msgs/msg/String'](data=json.dumps(feature))
    return bytes(store.serialize_cdr(message, 'std_msgs/msg/String'))


def traced_growth(store: object, received: ReceivedDetections, count: int) -> int:
    """Return the bytes the recorder holds after ``count`` detections more than after 100."""
    recorder = OutputRecorder(NullWriter(), store, TOPICS, received)
    message = detection_cdr(store, detections(1)[0])
    for _ in range(100):  # the typestore's deserialiser, the counters' keys
        recorder.receive('/ns/detections', 'detections', message)
    gc.collect()
    tracemalloc.start()
    try:
        before = tracemalloc.get_traced_memory()[0]
        for _ in range(count):
            recorder.receive('/ns/detections', 'detections', message)
        gc.collect()
        return tracemalloc.get_traced_memory()[0] - before
    finally:
        tracemalloc.stop()


def test_the_recorder_holds_no_memory_per_detection(store: object, tmp_path: Path) -> None:
    """20,000 detections leave the recorder's memory where a batch leaves it: no list.

    Held in a list, each detection (a parsed Feature, about 2 KB of Python objects)
    took 41 MB here (now about 3 bytes a detection: the batch not yet written); the bound
    is a quarter of a megabyte over one batch, so 17 bytes a detection kept would fail.
    """
    received = ReceivedDetections.create(tmp_path, 'disease_map')
    try:
        growth = traced_growth(store, received, 20_000)
        assert received.received == 20_100 and received.lost == 0
    finally:
        received.discard()
    assert growth < BATCH_BYTES + 256 * 1024, f'{growth} bytes after 20,000 detections'


def test_the_map_is_the_one_the_list_made(tmp_path: Path) -> None:
    """The FeatureCollection made from the file is, byte for byte, the one made before
    from the detections held in a list (write_feature_collection of that list)."""
    features = detections(600)  # several batches, and detections without a position
    received = ReceivedDetections.create(tmp_path, 'disease_map')
    for feature in features:
        received.add(feature)
    assert received.write_collection(tmp_path / 'from_file.geojson') == 600
    write_feature_collection(tmp_path / 'from_list.geojson', features)
    assert ((tmp_path / 'from_file.geojson').read_bytes()
            == (tmp_path / 'from_list.geojson').read_bytes())
    received.discard()


def test_an_attached_replay_writes_the_received_map_and_leaves_no_file(
        tmp_path: Path) -> None:
    """write_map (attached) writes <run>_received.geojson as the list did; the grid and the
    PNG come from it; discard removes the temporary file."""
    pytest.importorskip('matplotlib')
    features = detections(200)
    received = ReceivedDetections.create(tmp_path, 'disease_map')
    for feature in features:
        received.add(feature)
    summary = ReplaySummary(bag=Path('field.mcap'), image_topic='/cam', fix_topic='/fix',
                            mode='fast, attached')
    write_map(summary, received, tmp_path, 'disease_map', attached=True)
    write_feature_collection(tmp_path / 'expected.geojson', features)
    assert summary.geojson == tmp_path / 'disease_map_received.geojson'
    assert summary.geojson.read_bytes() == (tmp_path / 'expected.geojson').read_bytes()
    assert summary.png is not None and summary.png.is_file()
    assert summary.grid_geojson is not None and summary.warnings == []
    received.discard()
    received.discard()  # idempotent
    assert not received.path.exists()
    assert not [path for path in tmp_path.iterdir() if path.name.startswith('.')]


def test_a_full_disk_is_counted_and_said(tmp_path: Path) -> None:
    """On a 64 KiB file system the batches that do not fit are counted, never silently
    dropped: the summary's warning says how many of how many, and why."""
    with small_filesystem(tmp_path / 'out', size_kib=64) as out:
        received = ReceivedDetections.create(out, 'disease_map')
        features = detections(400)  # about 3 batches of 64 KiB
        for feature in features:
            received.add(feature)
        received.flush()
        kept = sum(1 for _ in received.features())
        assert received.lost > 0 and kept + received.lost == 400
        assert 'No space left on device' in received.error
        assert f'{received.lost} of the 400 detection(s) received here' in received.shortfall()
        received.discard()
        assert not received.path.exists()


def test_a_detection_that_is_not_json_is_counted(tmp_path: Path) -> None:
    """A NaN (which the recorder's parser lets through) cannot be written: counted."""
    received = ReceivedDetections.create(tmp_path, 'disease_map')
    received.add({'type': 'Feature', 'geometry': None, 'properties': {'confidence': 1e400}})
    received.add(detections(1)[0])
    assert (received.received, received.lost) == (2, 1)
    assert len(list(received.features())) == 1
    assert 'not valid JSON' in received.shortfall()
    received.discard()


def test_a_folder_that_cannot_be_written_is_a_replay_error(tmp_path: Path) -> None:
    """A read-only output folder is refused at the start, in one line naming it."""
    from plant_disease_ros.tools.replay import ReplayError

    with small_filesystem(tmp_path / 'ro', size_kib=64, read_only=True) as out:
        with pytest.raises(ReplayError, match='cannot write in the output folder .*ro'):
            ReceivedDetections.create(out, 'disease_map')


def test_a_killed_replays_file_is_removed_by_the_next(tmp_path: Path) -> None:
    """The file of a replay killed with kill -9 (its process gone) goes at the next start;
    that of a replay still running stays."""
    dead = subprocess.run([sys.executable, '-c', 'import os; print(os.getpid())'],
                          capture_output=True, text=True, check=True)
    left = tmp_path / f'.disease_map_received.{int(dead.stdout)}.0123abcd.tmp.geojsons'
    left.write_bytes(b'\x1e{}\n')
    running = tmp_path / f'.disease_map-2_received.{os.getpid()}.89abcdef.tmp.geojsons'
    running.write_bytes(b'')
    assert stale_received_files(tmp_path) == [left]
    received = ReceivedDetections.create(tmp_path, 'disease_map-3')
    assert not left.exists() and running.exists() and received.path.exists()
    received.discard()


def test_a_live_replays_file_under_an_unknown_process_id_stays(tmp_path: Path) -> None:
    """A replay in another container (its process id unknown here) holds its file's lock."""
    dead = subprocess.run([sys.executable, '-c', 'import os; print(os.getpid())'],
                          capture_output=True, text=True, check=True)
    elsewhere = tmp_path / f'.disease_map_received.{int(dead.stdout)}.0123abcd.tmp.geojsons'
    writer = GeoJsonSeqWriter(elsewhere)
    try:
        assert stale_received_files(tmp_path) == []
        received = ReceivedDetections.create(tmp_path, 'disease_map-2')
        assert elsewhere.exists()
        received.discard()
    finally:
        writer.close()
    assert stale_received_files(tmp_path) == [elsewhere]
