"""MapRun when map_dir's storage goes away (a USB stick pulled mid-run) and comes back.

A stick is simulated without root: its files are real files in a folder standing for the
mount point, and a ``device_of`` hook (:class:`FakeMounts`) makes that folder and what is
in it report the stick's device while it is "plugged in", and the real device of the
folder (its parent's) once it is "pulled" (its files moved out, as an unmount hides them).
Existence is never faked: a missing path is missing for the hook too. The same with a real
tmpfs (needs root) is in test_map_run.py.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
import shutil

from helpers.filesystems import FakeMounts, STICK, STICK_AGAIN
import pytest

from plant_disease_ros.core import map_file
from plant_disease_ros.core.map_file import read_geojson_seq
from plant_disease_ros.core.map_run import MapRun


def feature(sequence: int) -> dict:
    return {'type': 'Feature', 'geometry': {'type': 'Point', 'coordinates': [4.35, 50.85]},
            'properties': {'sequence': sequence}}


def device_text(path: Path) -> str:
    """Return the device ``path`` is on as ``major:minor``."""
    device = os.stat(path).st_dev
    return f'{os.major(device)}:{os.minor(device)}'


def on_disk(path: Path) -> list[int]:
    return [item['properties']['sequence'] for item in read_geojson_seq(path)]


@pytest.fixture
def mounts(tmp_path: Path) -> FakeMounts:
    return FakeMounts(tmp_path)


def storage_run(mounts: FakeMounts, map_dir: Path, run_name: str, **options: int) -> MapRun:
    """Return a MapRun whose device look-ups go through ``mounts``."""
    run = MapRun(map_dir, run_name, **options)
    run.device_of = mounts
    return run


def test_a_folder_gone_with_its_storage_is_not_made_again_and_its_records_are_held(
        tmp_path: Path, mounts: FakeMounts) -> None:
    """Stick pulled: nothing is made on the root file system; back: every record, in order."""
    usb = tmp_path / 'usb'
    map_dir = usb / 'maps'
    mounts.plug(usb, STICK)
    run = storage_run(mounts, map_dir, 'field')
    assert all(run.record(feature(sequence)) for sequence in range(3))  # makes map_dir

    mounts.pull(usb)
    assert [run.record(feature(sequence)) for sequence in (3, 4)] == [False, False]
    assert not map_dir.exists()  # not made on the mount point's parent's file system
    root = device_text(tmp_path)
    expected = (f'map_dir {map_dir}: its storage is gone (was device 8:17; {usb} is now on '
                f'device {root})')
    assert run.storage_gone == run.write_error == expected
    assert (run.records_held, run.records_dropped, run.records_written) == (2, 0, 3)
    assert run.write_held() == 0  # the retry timer's call: still gone, still nothing made
    with pytest.raises(OSError, match='its storage is gone'):
        run.save({})  # a save would make map_dir there too
    assert list(usb.iterdir()) == []

    mounts.plug(usb, STICK_AGAIN)
    assert run.write_held() == 2
    assert (run.records_held, run.write_error, run.storage_gone) == (0, '', '')
    assert run.map_dir_device == STICK_AGAIN
    assert run.files_replaced == 1
    assert 'continuing the file now there, which holds 3 record(s)' in run.replaced_note
    assert run.record(feature(5))
    assert run.records_in_file == 6
    assert run.save({}) == 6
    run.close()
    assert on_disk(run.records_path) == [0, 1, 2, 3, 4, 5]  # none lost, none twice
    summary = json.loads(run.summary_path.read_text())
    assert (summary['records_held_unwritten'], summary['features_in_collection']) == (0, 6)


def test_the_device_is_remembered_at_the_start_before_any_record(
        tmp_path: Path, mounts: FakeMounts) -> None:
    """map_dir there at the start, the stick pulled before the first detection."""
    usb = tmp_path / 'usb'
    mounts.plug(usb, STICK)
    (usb / 'maps').mkdir()
    run = storage_run(mounts, usb / 'maps', 'field')
    run.claim()
    mounts.pull(usb)
    assert not run.record(feature(0))
    assert run.map_dir_device == STICK
    assert 'its storage is gone' in run.write_error
    assert list(usb.iterdir()) == []
    mounts.plug(usb, STICK)
    assert run.write_held() == 1
    assert run.files_replaced == 0  # no file was open: nothing was replaced
    run.close()
    assert on_disk(run.records_path) == [0]


def test_a_folder_removed_on_its_own_device_is_made_again(
        tmp_path: Path, mounts: FakeMounts) -> None:
    """A clean-up removes map_dir (rm -r) on the stick: made again there, as before."""
    usb = tmp_path / 'usb'
    map_dir = usb / 'maps'
    mounts.plug(usb, STICK)
    run = storage_run(mounts, map_dir, 'field')
    assert run.record(feature(0))
    shutil.rmtree(map_dir)
    assert run.record(feature(1))
    assert (run.files_replaced, run.write_error) == (1, '')
    assert 'a new file was started there' in run.replaced_note
    run.close()
    assert on_disk(run.records_path) == [1]


def test_the_new_device_of_a_stick_plugged_in_again_is_remembered(
        tmp_path: Path, mounts: FakeMounts) -> None:
    """After the stick is back on another number, a clean-up there is made again there."""
    usb = tmp_path / 'usb'
    map_dir = usb / 'maps'
    mounts.plug(usb, STICK)
    run = storage_run(mounts, map_dir, 'field')
    assert run.record(feature(0))
    mounts.pull(usb)
    assert not run.record(feature(1))
    mounts.plug(usb, STICK_AGAIN)
    assert run.write_held() == 1 and run.map_dir_device == STICK_AGAIN
    shutil.rmtree(map_dir)  # on the stick's new device: a clean-up, not storage gone
    assert run.record(feature(2))
    assert (run.files_replaced, run.storage_gone) == (2, '')
    run.close()
    assert on_disk(run.records_path) == [2]


def test_a_folder_and_its_parents_removed_on_one_device_are_made_again(
        tmp_path: Path, mounts: FakeMounts) -> None:
    """The nearest existing folder further up, but on map_dir's device: made again."""
    map_dir = tmp_path / 'a' / 'b' / 'maps'
    run = storage_run(mounts, map_dir, 'field')
    assert run.record(feature(0))
    shutil.rmtree(tmp_path / 'a')
    assert run.record(feature(1))
    run.close()
    assert on_disk(run.records_path) == [1]


def test_a_failed_write_then_the_storage_gone_makes_nothing(
        tmp_path: Path, mounts: FakeMounts, monkeypatch: pytest.MonkeyPatch) -> None:
    """A pulled stick first fails a write (EIO), then is unmounted: the reopen makes nothing."""
    usb = tmp_path / 'usb'
    map_dir = usb / 'maps'
    mounts.plug(usb, STICK)
    run = storage_run(mounts, map_dir, 'field')
    assert run.record(feature(0))
    real_write = map_file.os.write

    def input_output_error(descriptor: int, data: bytes) -> int:
        raise OSError(5, 'Input/output error')

    monkeypatch.setattr(map_file.os, 'write', input_output_error)
    assert not run.record(feature(1))
    assert 'Input/output error' in run.write_error
    monkeypatch.setattr(map_file.os, 'write', real_write)
    mounts.pull(usb)  # the writer was closed by the failure; now the mount is gone
    assert not run.record(feature(2))
    assert run.write_held() == 0
    assert list(usb.iterdir()) == []
    assert 'its storage is gone' in run.write_error
    mounts.plug(usb, STICK_AGAIN)
    assert run.write_held() == 2
    run.close()
    assert on_disk(run.records_path) == [0, 1, 2]


def test_a_mount_point_as_map_dir_left_bare_is_not_written(
        tmp_path: Path, mounts: FakeMounts) -> None:
    """map_dir is the stick's mount point: once pulled it still exists, on the root device."""
    usb = tmp_path / 'usb'
    mounts.plug(usb, STICK)
    run = storage_run(mounts, usb, 'field')
    assert run.record(feature(0)) and run.record(feature(1))
    mounts.pull(usb)
    assert usb.is_dir()
    assert not run.record(feature(2))
    root = device_text(tmp_path)
    assert run.storage_gone == (
        f'map_dir {usb}: its storage is gone (was device 8:17, mounted there; it is now a '
        f'bare folder on device {root}, the one of its parent)')
    assert list(usb.iterdir()) == []
    mounts.plug(usb, STICK_AGAIN)
    assert run.write_held() == 1
    assert run.record(feature(3))
    run.close()
    assert on_disk(run.records_path) == [0, 1, 2, 3]


def test_held_records_beyond_max_held_are_dropped_while_the_storage_is_gone(
        tmp_path: Path, mounts: FakeMounts) -> None:
    """The memory bound of a full disk holds for storage gone too; the newest are kept."""
    usb = tmp_path / 'usb'
    mounts.plug(usb, STICK)
    run = storage_run(mounts, usb / 'maps', 'field', max_held=2)
    assert run.record(feature(0))
    mounts.pull(usb)
    assert not any(run.record(feature(sequence)) for sequence in range(1, 5))
    assert (run.records_held, run.records_dropped) == (2, 2)
    mounts.plug(usb, STICK)
    assert run.write_held() == 2
    run.close()
    assert on_disk(run.records_path) == [0, 3, 4]
