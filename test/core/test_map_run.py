"""MapRun: a run's records file (continued, appended), collection and summary."""

from __future__ import annotations

from datetime import datetime, timezone
import errno
import json
import os
from pathlib import Path
import re
import shutil
import time

from helpers.filesystems import fill, small_filesystem, unmount
import pytest

from plant_disease_ros.cli.main import main
from plant_disease_ros.core import map_file, map_run
from plant_disease_ros.core.map_file import (
    GeoJsonSeqWriter,
    json_depth,
    read_geojson_seq,
    RecordsFileBusy,
    tail_geojson_seq,
)
from plant_disease_ros.core.map_grid import MapSummary
from plant_disease_ros.core.map_run import (
    check_writable_directory,
    default_run_name,
    earlier_runs_tail,
    format_origin,
    MapRun,
    name_max,
    parse_detection,
    validate_run_name,
)


def feature(sequence: int) -> dict:
    return {'type': 'Feature', 'geometry': {'type': 'Point', 'coordinates': [4.35, 50.85]},
            'properties': {'sequence': sequence}}


@pytest.mark.parametrize('name', ['', ' x', 'x ', '.hidden', 'a/b', 'a\\b', 'a\x00b'])
def test_bad_run_names_are_refused(name: str) -> None:
    with pytest.raises(ValueError, match='run_name'):
        validate_run_name(name)
    with pytest.raises(ValueError, match='run_name'):
        MapRun('maps', name)


def test_default_run_name_is_a_date() -> None:
    assert re.fullmatch(r'\d{4}-\d{2}-\d{2}', default_run_name())
    assert validate_run_name(default_run_name())


@pytest.mark.parametrize(('namespace', 'tag'), [
    ('', ''), ('/', ''), ('/left', '_left'), ('/robot1/right', '_robot1_right')])
def test_a_namespace_gets_its_own_default_run(namespace: str, tag: str) -> None:
    name = default_run_name(namespace)
    assert re.fullmatch(r'\d{4}-\d{2}-\d{2}' + tag, name), name
    assert validate_run_name(name)


def write_records(path: Path, sequences: range) -> None:
    """Write the features of ``sequences`` as a records file."""
    with GeoJsonSeqWriter(path) as writer:
        for sequence in sequences:
            writer.append(feature(sequence))


def test_the_tail_of_a_records_file(tmp_path: Path) -> None:
    path = tmp_path / 'day.geojsons'
    write_records(path, range(1, 101))
    assert [f['properties']['sequence'] for f in tail_geojson_seq(path, 3)] == [98, 99, 100]
    record_bytes = path.stat().st_size // 100
    # Only the last 10.5 records' bytes: the cut one is left out, 10 remain.
    tail = tail_geojson_seq(path, 50, max_bytes=record_bytes * 21 // 2)
    assert [f['properties']['sequence'] for f in tail] == list(range(91, 101))
    with open(path, 'ab') as handle:
        handle.write(b'\x1e{"type": "Feat')   # a torn last record
    assert [f['properties']['sequence'] for f in tail_geojson_seq(path, 2)] == [99, 100]
    assert tail_geojson_seq(tmp_path / 'missing.geojsons', 5) == []
    assert tail_geojson_seq(path, 0) == []


def test_a_new_run_knows_the_last_records_of_the_newest_earlier_runs(tmp_path: Path) -> None:
    for number, name in enumerate(('old', 'monday', 'left', 'today', '.hidden')):
        write_records(tmp_path / f'{name}.geojsons', range(number * 10, number * 10 + 5))
        os.utime(tmp_path / f'{name}.geojsons', (1_700_000_000 + number * 60,) * 2)
    (tmp_path / 'today.geojson').write_text('{}')   # a collection: not records
    tail = earlier_runs_tail(tmp_path, 'today', 2)
    # The other runs, each its last two, the oldest run's first: a bounded memory of
    # them keeps the newest run's.
    assert [f['properties']['sequence'] for f in tail] == [3, 4, 13, 14, 23, 24]
    assert [f['properties']['sequence'] for f in earlier_runs_tail(
        tmp_path, 'today', 2, runs=2)] == [13, 14, 23, 24]
    assert earlier_runs_tail(tmp_path / 'missing', 'today', 2) == []


def test_format_origin() -> None:
    assert format_origin((50.85034567891, 4.35171234567, 60.126)) == \
        '50.8503457, 4.3517123, 60.13 m'


@pytest.mark.parametrize(('text', 'reason'), [
    ('{"type": "Feature", "geometry": ', 'invalid_json'),
    ('{"type": "Feature", "geometry": null, "properties": {"x": NaN}}', 'invalid_json'),
    ('{"type": "Point", "coordinates": [4.3, 50.8]}', 'not_a_feature'),
    ('[1, 2]', 'not_an_object'),
    # Nested past Python's stack: a RecursionError in the parser, not a ValueError.
    ('[' * 100_000 + ']' * 100_000, 'invalid_json'),
    # Parses, but 40 levels deep in a property: refused before any reader recurses on it.
    ('{"type": "Feature", "geometry": null, "properties": {"x": ' + '[' * 40 + ']' * 40
     + '}}', 'too_deep'),
    # Valid JSON, but a lone surrogate is no text a UTF-8 record can hold.
    ('{"type": "Feature", "geometry": null, "properties": {"label": "Tomato\\ud800"}}',
     'bad_text'),
])
def test_parse_detection_refuses_with_a_reason(text: str, reason: str) -> None:
    value, got, detail = parse_detection(text)
    assert (value, got) == (None, reason) and detail


def test_a_detection_nested_within_the_limit_is_kept() -> None:
    text = ('{"type": "Feature", "geometry": null, "properties": {"x": ' + '[' * 20
            + ']' * 20 + '}}')
    value, reason, _ = parse_detection(text)
    assert reason is None
    assert json_depth(value['properties']['x']) == 20


BIG = '1' + '0' * 400  # a JSON integer too large for a float


@pytest.mark.parametrize(('text', 'reason'), [
    ('{"type":"Feature","geometry":{"type":"Point","coordinates":[BIG,0]},"properties":{}}',
     'bad_geometry'),
    ('{"type":"Feature","geometry":{"type":"Point","coordinates":[8.5,47.3,1e300]},'
     '"properties":{}}', 'bad_geometry'),
    ('{"type":"Feature","geometry":{"type":"Point","coordinates":[8.5,47.3]},'
     '"properties":{"label":"Apple___Apple_scab","confidence":BIG}}', 'bad_properties'),
    ('{"type":"Feature","geometry":{"type":"Point","coordinates":[8.5,47.3]},'
     '"properties":{"stamp":{"sec":BIG,"nanosec":0}}}', 'bad_properties'),
    ('{"type":"Feature","geometry":null,"properties":{"confidence":1e400}}',
     'bad_properties'),
])
def test_parse_detection_refuses_numbers_that_are_not_finite_floats(text: str,
                                                                    reason: str) -> None:
    text = text.replace('BIG', BIG)
    value, got, detail = parse_detection(text)
    assert (value, got) == (None, reason)
    assert detail == text[:120]


def test_parse_detection_accepts_a_2d_point() -> None:
    text = ('{"type":"Feature","geometry":{"type":"Point","coordinates":[8.5,47.3]},'
            '"properties":{"confidence":0.5}}')
    value, reason, _ = parse_detection(text)
    assert reason is None and value['geometry']['coordinates'] == [8.5, 47.3]


def test_a_stored_record_with_a_huge_number_is_skipped_on_continue(tmp_path: Path) -> None:
    run = MapRun(tmp_path, 'field')
    run.append(feature(0))
    run.close()
    with open(run.records_path, 'ab') as handle:
        handle.write(('\x1e{"type":"Feature","geometry":{"type":"Point","coordinates":'
                      '[8.5,47.3]},"properties":{"confidence":BIG,"stamp":{"sec":BIG,'
                      '"nanosec":0}}}\n').replace('BIG', BIG).encode())
    again = MapRun(tmp_path, 'field')
    summary = MapSummary(2.0)
    again.continue_existing(summary.add)
    assert (again.records_at_start, again.records_skipped_at_start) == (1, 1)
    assert (summary.detections, summary.located) == (1, 1)
    assert again.save({}) == 1


def test_parse_detection_accepts_a_feature() -> None:
    assert parse_detection(json.dumps(feature(1))) == (feature(1), None, '')


def test_no_record_no_file(tmp_path: Path) -> None:
    run = MapRun(tmp_path / 'maps', 'field')
    run.continue_existing(lambda _: pytest.fail('nothing to continue'))
    run.close()
    assert not (tmp_path / 'maps').exists()
    assert (run.records_at_start, run.records_written, run.records_in_file) == (0, 0, 0)


def test_append_continue_and_save(tmp_path: Path) -> None:
    first = MapRun(tmp_path / 'maps', 'field')
    for sequence in range(3):
        first.append(feature(sequence))
    first.close()
    assert first.records_path == tmp_path / 'maps' / 'field.geojsons'
    assert first.records_written == 3

    second = MapRun(tmp_path / 'maps', 'field')
    continued: list[dict] = []
    second.continue_existing(continued.append)
    assert continued == [feature(0), feature(1), feature(2)]
    second.append(feature(3))
    assert (second.records_at_start, second.records_written, second.records_in_file) == \
        (3, 1, 4)
    saved_at = datetime(2026, 5, 1, 12, 0, 0, tzinfo=timezone.utc)
    assert second.save({'map_frame': 'map', 'detections': 4}, saved_at=saved_at) == 4
    second.close()

    collection = json.loads(second.collection_path.read_text())
    assert [item['properties']['sequence'] for item in collection['features']] == [0, 1, 2, 3]
    summary = json.loads(second.summary_path.read_text())
    assert list(summary) == ['run_name', 'saved_at', 'records_file', 'feature_collection',
                             'features_in_collection', 'records_written_this_session',
                             'records_continued', 'records_held_unwritten',
                             'records_dropped_queue_full', 'records_file_replaced',
                             'records_file_note', 'map_frame', 'detections']
    assert summary['run_name'] == 'field'
    assert summary['saved_at'] == '2026-05-01T12:00:00+00:00'
    assert summary['features_in_collection'] == 4
    assert (summary['records_written_this_session'], summary['records_continued']) == (1, 3)


def test_a_torn_record_is_skipped_and_counted(tmp_path: Path) -> None:
    run = MapRun(tmp_path, 'field')
    run.append(feature(0))
    run.close()
    with open(run.records_path, 'ab') as handle:
        handle.write(b'\x1e{"type": "Feat')
    again = MapRun(tmp_path, 'field')
    again.continue_existing(lambda _: None)
    assert (again.records_at_start, again.records_skipped_at_start) == (1, 1)
    again.append(feature(1))
    again.close()
    assert [item['properties']['sequence'] for item in read_geojson_seq(run.records_path)] \
        == [0, 1]


def test_save_without_records_writes_an_empty_collection(tmp_path: Path) -> None:
    run = MapRun(tmp_path, 'empty')
    assert run.save({}) == 0
    assert json.loads(run.collection_path.read_text())['features'] == []


def test_records_are_held_while_the_file_cannot_be_written(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Held in order, the oldest dropped beyond max_held, appended once writes work."""
    run = MapRun(tmp_path, 'field', max_held=3)
    assert run.record(feature(0))
    real_write = map_file.os.write

    def disk_full(descriptor: int, data: bytes) -> int:
        raise OSError(28, 'No space left on device')

    monkeypatch.setattr(map_file.os, 'write', disk_full)
    held = [run.record(feature(sequence)) for sequence in range(1, 6)]
    assert held == [False] * 5
    assert (run.records_held, run.records_dropped) == (3, 2)
    assert 'No space left' in run.write_error
    assert run.write_held() == 0
    monkeypatch.setattr(map_file.os, 'write', real_write)
    assert run.write_held() == 3
    assert (run.records_held, run.records_written, run.write_error) == (0, 4, '')
    assert run.record(feature(6))
    run.save({})
    run.close()
    sequences = [item['properties']['sequence'] for item in read_geojson_seq(run.records_path)]
    assert sequences == [0, 3, 4, 5, 6]
    summary = json.loads(run.summary_path.read_text())
    assert (summary['records_held_unwritten'], summary['records_dropped_queue_full']) == (0, 2)


def test_a_backlog_is_written_in_batches_in_order(tmp_path: Path,
                                                monkeypatch: pytest.MonkeyPatch) -> None:
    """Thousands of held records: a few fsyncs (not one each), in order, all or none a batch."""
    monkeypatch.setattr(map_run, 'HELD_BATCH_BYTES', 20_000)
    run = MapRun(tmp_path, 'field', max_held=5000)
    real_write, real_fsync = map_file.os.write, map_file.os.fsync

    def disk_full(descriptor: int, data: bytes) -> int:
        raise OSError(28, 'No space left on device')

    monkeypatch.setattr(map_file.os, 'write', disk_full)
    assert not any(run.record(feature(sequence)) for sequence in range(2000))
    assert run.records_held == 2000
    fsyncs = []
    monkeypatch.setattr(map_file.os, 'fsync', lambda fd: fsyncs.append(fd) or real_fsync(fd))
    # The disk comes back for the first batch only: that batch is in, the rest still held.
    calls = []

    def first_batch_only(descriptor: int, data: bytes) -> int:
        calls.append(len(data))
        if len(calls) > 1:
            raise OSError(28, 'No space left on device')
        return real_write(descriptor, data)

    monkeypatch.setattr(map_file.os, 'write', first_batch_only)
    first = run.write_held()
    assert 0 < first < 2000 and run.records_held == 2000 - first
    assert calls[0] <= 20_000 and 'No space left' in run.write_error
    monkeypatch.setattr(map_file.os, 'write', real_write)
    fsyncs.clear()
    assert run.write_held() == 2000 - first and run.write_error == ''
    run.close()
    # One fsync a batch, not one a record. Each failed write halved the batch (down to
    # one record); each batch written doubles it, so at most 15 batches (2**15 > 20,000
    # bytes) ramp up before batches of 20,000 bytes take the rest.
    ramp = (20_000).bit_length()
    assert len(fsyncs) <= ramp + run.records_path.stat().st_size // 20_000 + 2, len(fsyncs)
    sequences = [item['properties']['sequence'] for item in read_geojson_seq(run.records_path)]
    assert sequences == list(range(2000))


def test_a_disk_with_less_room_than_a_batch_still_takes_what_fits(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A failed batch halves the next: the backlog goes in as far as the room allows."""
    run = MapRun(tmp_path, 'field', max_held=5000)
    real_write = map_file.os.write
    room = {'bytes': 0}

    def limited(descriptor: int, data: bytes) -> int:
        if len(data) > room['bytes']:
            raise OSError(28, 'No space left on device')
        room['bytes'] -= len(data)
        return real_write(descriptor, data)

    monkeypatch.setattr(map_file.os, 'write', limited)
    assert not any(run.record(feature(sequence)) for sequence in range(1000))
    record_size = len(map_file.encode_record(feature(0)))
    room['bytes'] = 40 * record_size  # room for about 40 of the 1000 held records
    for _ in range(30):  # the retry timer's calls
        run.write_held()
    assert 35 <= run.records_written <= 40
    assert run.records_held == 1000 - run.records_written
    run.close()
    sequences = [item['properties']['sequence'] for item in read_geojson_seq(run.records_path)]
    assert sequences == list(range(run.records_written))  # in order, no half record


def test_without_a_queue_a_failed_write_is_reported_and_dropped(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """max_held 0: nothing is held, but record() still says the write failed."""
    run = MapRun(tmp_path, 'field', max_held=0)
    real_write = map_file.os.write

    def disk_full(descriptor: int, data: bytes) -> int:
        raise OSError(28, 'No space left on device')

    monkeypatch.setattr(map_file.os, 'write', disk_full)
    assert [run.record(feature(sequence)) for sequence in range(2)] == [False, False]
    assert (run.records_held, run.records_dropped) == (0, 2)
    assert 'No space left' in run.write_error
    monkeypatch.setattr(map_file.os, 'write', real_write)
    assert run.record(feature(2))
    assert (run.records_written, run.write_error) == (1, '')
    run.close()


def test_check_writable_directory(tmp_path: Path) -> None:
    assert check_writable_directory(tmp_path) is None
    assert check_writable_directory(tmp_path / 'new' / 'maps') is None
    blocker = tmp_path / 'file'
    blocker.write_text('x')
    assert 'is not a directory' in check_writable_directory(blocker)
    assert 'is not a directory' in check_writable_directory(blocker / 'maps')
    assert not (tmp_path / 'new').exists()


def test_a_removed_folder_is_made_again_and_the_loss_is_said(tmp_path: Path) -> None:
    """A clean-up removes map_dir mid-run: later records are not written into the void."""
    run = MapRun(tmp_path / 'maps', 'field')
    assert all(run.record(feature(sequence)) for sequence in range(3))
    shutil.rmtree(tmp_path / 'maps')
    assert run.record(feature(3)) and run.record(feature(4))
    assert run.files_replaced == 1
    assert 'removed or replaced while open' in run.replaced_note
    assert 'the 3 record(s) in the old one' in run.replaced_note
    assert run.records_in_file == 2 and run.records_written == 5
    assert run.save({}) == 2
    run.close()
    assert [item['properties']['sequence']
            for item in read_geojson_seq(run.records_path)] == [3, 4]


def test_storage_mounted_again_is_written_to(tmp_path: Path) -> None:
    """The card unmounted (a loose cable), then mounted again: held, then written to.

    A real tmpfs (needs root). While it is away map_dir is not made on the file system
    under the mount point: the records are held. Once the card is back with its files
    (copied in: a tmpfs cannot keep them, a stick would) the held records are appended
    to its file, after the ones it had.
    """
    mount_point = tmp_path / 'card'
    card_files = tmp_path / 'card_files'
    with small_filesystem(mount_point, size_kib=256):
        run = MapRun(mount_point / 'maps', 'field')
        assert run.record(feature(0))
        shutil.copytree(mount_point / 'maps', card_files)
        unmount(mount_point)  # lazily: the open records file keeps the old mount alive
        assert not run.record(feature(1))
        assert 'its storage is gone' in run.storage_gone
        assert list(mount_point.iterdir()) == []  # nothing made under the mount point
        assert not run.record(feature(2))
        with small_filesystem(mount_point, size_kib=256):
            shutil.copytree(card_files, mount_point / 'maps')
            assert run.write_held() == 2
            assert (run.records_held, run.storage_gone, run.files_replaced) == (0, '', 1)
            assert 'continuing the file now there, which holds 1 record(s)' in \
                run.replaced_note
            run.close()
            assert [item['properties']['sequence']
                    for item in read_geojson_seq(run.records_path)] == [0, 1, 2]


def test_a_failed_write_closes_the_file_so_the_next_try_opens_it_again(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """An I/O error (a card dropping off the bus) must not pin the dead descriptor."""
    run = MapRun(tmp_path, 'field')
    assert run.record(feature(0))
    opened: list[str] = []
    real_writer = map_file.GeoJsonSeqWriter.__init__

    def counting_init(self: map_file.GeoJsonSeqWriter, path: Path) -> None:
        opened.append(str(path))
        real_writer(self, path)

    monkeypatch.setattr(map_file.GeoJsonSeqWriter, '__init__', counting_init)
    real_write = map_file.os.write

    def input_output_error(descriptor: int, data: bytes) -> int:
        raise OSError(5, 'Input/output error')

    monkeypatch.setattr(map_file.os, 'write', input_output_error)
    assert not run.record(feature(1))
    monkeypatch.setattr(map_file.os, 'write', real_write)
    assert run.write_held() == 1
    assert opened == [str(run.records_path)]  # opened anew after the failure
    run.close()
    assert [item['properties']['sequence']
            for item in read_geojson_seq(run.records_path)] == [0, 1]


def test_a_second_writer_of_the_run_is_refused(tmp_path: Path) -> None:
    """Two recorders of one run would interleave, and one's cut-back cut the other's records."""
    first = MapRun(tmp_path, 'field')
    assert first.record(feature(0))
    second = MapRun(tmp_path, 'field')
    with pytest.raises(RecordsFileBusy, match='another process is writing it'):
        second.claim()
    assert not second.record(feature(99))
    assert 'another process is writing it' in second.write_error
    assert first.record(feature(1))
    first.close()
    # Once the first has closed the run, the second may continue it.
    assert second.write_held() == 1
    second.close()
    assert [item['properties']['sequence']
            for item in read_geojson_seq(first.records_path)] == [0, 1, 99]


def test_temporaries_of_a_killed_save_are_removed_but_not_a_running_ones(
        tmp_path: Path) -> None:
    """kill -9 during a long save leaves .field.<pid>.<hex>.tmp.geojson for ever otherwise."""
    import subprocess
    import sys

    finished = subprocess.run([sys.executable, '-c', 'import os; print(os.getpid())'],
                              capture_output=True, text=True, check=True)
    dead_pid = int(finished.stdout)
    run = MapRun(tmp_path, 'field')
    left = [tmp_path / f'.field.{dead_pid}.0badc0de.tmp.geojson',
            tmp_path / f'.field_summary.{dead_pid}.12345678.tmp.json']
    running = tmp_path / f'.field.{os.getpid()}.89abcdef.tmp.geojson'
    # Yesterday's run's save, cut off: removed too. A PNG's is not a recorder's. Another
    # run's recent one may be a save by a process of another host (a share): kept.
    other_run = tmp_path / f'.2026-05-04.{dead_pid}.0badc0de.tmp.geojson'
    other_recent = tmp_path / f'.2026-05-04_right.{dead_pid}.0badc0de.tmp.geojson'
    picture = tmp_path / f'.field.{dead_pid}.0badc0de.tmp.png'
    # Written before this boot (a power cut), under a process id that runs again now.
    before_boot = tmp_path / f'.field_summary.{os.getpid()}.fedcba98.tmp.json'
    for path in (*left, running, other_run, other_recent, picture, before_boot):
        path.write_text('{')
    booted_s = time.time() - time.clock_gettime(time.CLOCK_BOOTTIME)
    os.utime(before_boot, (booted_s - 60.0,) * 2)
    os.utime(other_run, (time.time() - 7200.0,) * 2)
    removed = [*left, other_run, before_boot]
    assert sorted(run.remove_stale_temporaries()) == sorted(removed)
    assert not any(path.exists() for path in removed)
    assert running.exists() and picture.exists() and other_recent.exists()
    assert run.remove_stale_temporaries() == []


def test_a_run_is_claimed_at_start_before_any_record(tmp_path: Path) -> None:
    """A respawned recorder beside one that has not recorded yet: refused, no file made."""
    first = MapRun(tmp_path / 'maps', 'field')
    first.claim()
    second = MapRun(tmp_path / 'maps', 'field')
    with pytest.raises(RecordsFileBusy, match='another process is writing it'):
        second.claim()
    assert not (tmp_path / 'maps').exists()
    # Another run in the same folder is not affected.
    MapRun(tmp_path / 'maps', 'other').claim()
    first.close()
    second.claim()  # released with the first
    second.close()


def test_a_restored_records_file_is_continued_and_counted(tmp_path: Path) -> None:
    """The same records back under a new inode (a card mounted again): kept, not 'lost'."""
    run = MapRun(tmp_path, 'field')
    assert all(run.record(feature(sequence)) for sequence in range(3))
    copy = tmp_path / 'copy.geojsons'
    shutil.copyfile(run.records_path, copy)
    copy.replace(run.records_path)
    assert run.record(feature(3))
    assert run.files_replaced == 1
    assert 'continuing the file now there, which holds 3 record(s)' in run.replaced_note
    assert run.records_in_file == 4
    assert run.save({}) == 4
    summary = json.loads(run.summary_path.read_text())
    assert summary['records_file_replaced'] == 1
    assert summary['records_file_note'] == run.replaced_note
    run.close()


def test_recent_features_know_a_feature_again_in_any_key_order() -> None:
    """A detection sent again is known by its content, key order aside, while it is among
    the last ``capacity`` ones."""
    from plant_disease_ros.core.map_run import RecentFeatures

    recent = RecentFeatures(capacity=2)
    first, second, third = feature(1), feature(2), feature(3)
    recent.add(first)
    reordered = json.loads(json.dumps(dict(reversed(list(first.items())))))
    assert reordered in recent and second not in recent
    recent.add(second)
    recent.add(first)                                 # twice among the last two
    recent.add(third)                                 # the oldest (first) goes once
    assert first in recent and third in recent and second not in recent
    with pytest.raises(ValueError, match='capacity'):
        RecentFeatures(capacity=0)


def test_a_records_file_that_cannot_be_opened_stops_the_claim(tmp_path: Path) -> None:
    """Without storage_mount an existing records file that cannot be written is refused at
    the start (a directory in its place: EISDIR, also for root), not held for later."""
    run = MapRun(tmp_path, 'field')
    run.records_path.mkdir()
    with pytest.raises(IsADirectoryError):
        run.claim()
    run.close()


def test_a_run_name_too_long_for_its_files_is_refused_at_the_start(
        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """Every file written for the run must fit NAME_MAX: the longest is the temporary of
    the temporary grid GeoJSON that `plant-disease map RUN.geojson` writes beside the run,
    57 bytes longer than the name (a save's temporary summary adds 35, the temporary
    GeoPackage's SQLite journal 40). One byte more than fits is refused, naming the limit;
    the longest name that fits records, saves and maps."""
    limit = min(os.pathconf(tmp_path, 'PC_NAME_MAX'), 255)
    longest = limit - 57
    for name in ('r' * (longest + 1), 'é' * ((longest + 2) // 2), 'r' * 240):
        with pytest.raises(ValueError, match=f'run_name is too long .*at most {longest} '
                                             f'bytes.* at most {limit} bytes.*grid GeoJSON'):
            MapRun(tmp_path, name)
    # A folder that does not exist yet is measured against Linux's 255.
    with pytest.raises(ValueError, match='at most 198 bytes'):
        MapRun(tmp_path / 'new', 'r' * 199)
    run = MapRun(tmp_path, 'r' * longest)
    assert run.record(feature(0))
    assert run.save({}) == 1
    run.close()
    assert main(['map', str(run.collection_path)]) == 0, capsys.readouterr()
    suffixes = ['.geojsons', '.geojson', '_summary.json', '.png', '_grid.geojson']
    if '.gpkg' in capsys.readouterr().out:
        suffixes.append('_grid.gpkg')
    assert sorted(path.name for path in tmp_path.iterdir()) == sorted(
        f'{"r" * longest}{suffix}' for suffix in suffixes)


def test_a_file_system_saying_names_of_1530_bytes_is_taken_at_255(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """vfat and exFAT say NAME_MAX 1530 (255 characters of up to 6 bytes) but take 255
    characters: run names are measured against 255 there."""
    real_pathconf = os.pathconf

    def vfat(path: str | Path, name: str) -> int:
        return 1530 if name == 'PC_NAME_MAX' else real_pathconf(path, name)

    monkeypatch.setattr(os, 'pathconf', vfat)
    assert name_max(tmp_path) == 255
    with pytest.raises(ValueError, match='at most 198 bytes.* at most 255 bytes'):
        validate_run_name('r' * 199, tmp_path)
    assert validate_run_name('r' * 198, tmp_path) == 'r' * 198


@pytest.mark.parametrize('code', [errno.EFBIG, errno.EDQUOT, errno.EIO])
def test_with_nothing_held_a_probe_leaves_an_error_it_cannot_check(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch, code: int) -> None:
    """max_held 0, a write refused for a reason other than disk space (a file at FAT32's
    4 GiB, a quota, an I/O error): the file opens and the disk has free blocks, yet a
    probe leaves the error; it ends once a record is written."""
    run = MapRun(tmp_path, 'field', max_held=0)
    assert run.record(feature(0))

    def refuse(self: GeoJsonSeqWriter, records: list[bytes]) -> None:
        raise OSError(code, os.strerror(code))

    with monkeypatch.context() as patch:
        patch.setattr(GeoJsonSeqWriter, 'append_encoded_many', refuse)
        assert not run.record(feature(1))
        error = run.write_error
        assert os.strerror(code) in error and run.records_held == 0
        for _ in range(3):
            assert not run.probe() and run.write_error == error
    assert not run.probe() and run.write_error == error   # nothing written yet
    assert run.record(feature(2)) and run.write_error == ''
    run.close()
    assert [record['properties']['sequence'] for record in read_geojson_seq(
        run.records_path)] == [0, 2]


@pytest.mark.parametrize('max_held', [0, 10])
def test_a_removed_file_is_counted_replaced_once_while_it_cannot_be_opened(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch, max_held: int) -> None:
    """The records file removed under the writer, then not opened again for a while (a
    read-only remount): every retry (probe with none held, write_held with some) fails,
    and the file counts as replaced once, when it is opened again, not once a retry."""
    run = MapRun(tmp_path, 'field', max_held=max_held)
    assert run.record(feature(0))
    run.records_path.unlink()

    def read_only(path: Path) -> GeoJsonSeqWriter:
        raise OSError(errno.EROFS, os.strerror(errno.EROFS), str(path))

    with monkeypatch.context() as patch:
        patch.setattr(map_run, 'GeoJsonSeqWriter', read_only)
        assert not run.record(feature(1))
        for _ in range(3):
            assert not (run.write_held() if max_held else run.probe())
            assert 'Read-only' in run.write_error
        assert run.files_replaced == 0
    assert run.write_held() if max_held else run.probe()
    assert run.files_replaced == 1 and 'removed or replaced' in run.replaced_note
    assert run.record(feature(2)) and run.files_replaced == 1
    run.close()
    expected = [1, 2] if max_held else [2]
    assert [record['properties']['sequence'] for record in read_geojson_seq(
        run.records_path)] == expected


def test_with_nothing_held_a_probe_clears_the_error_once_the_disk_has_room(
        tmp_path: Path) -> None:
    """max_held 0 on a full disk (a real 64 KiB tmpfs; needs root): the record is dropped,
    the error stays while it is full, and a probe clears it once there is room."""
    with small_filesystem(tmp_path / 'disk', size_kib=64) as disk:
        run = MapRun(disk / 'maps', 'field', max_held=0)
        assert run.record(feature(0))
        filler = disk / 'filler'
        fill(filler)
        records = [run.record(feature(sequence)) for sequence in range(1, 40)]
        assert not all(records) and run.records_dropped > 0
        assert 'No space left' in run.write_error and run.records_held == 0
        assert not run.probe() and 'No space left' in run.write_error
        filler.unlink()
        assert run.probe() and run.write_error == ''
        assert run.record(feature(40))
        run.close()
        assert read_geojson_seq(run.records_path)[-1]['properties']['sequence'] == 40
