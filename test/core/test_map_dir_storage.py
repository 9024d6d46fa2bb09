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
from plant_disease_ros.core.map_run import check_storage_mount, MapRun, StorageGone


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


def mounted_run(mounts: FakeMounts, map_dir: Path, storage_mount: Path, run_name: str = 'field',
                **options: int) -> MapRun:
    """Return a MapRun with ``storage_mount`` whose mount and device look-ups go through
    ``mounts``."""
    run = MapRun(map_dir, run_name, storage_mount=storage_mount, **options)
    run.device_of = mounts
    run.is_mount = mounts.is_mount
    return run


def test_storage_mount_not_mounted_at_start_holds_then_writes_in_order(
        tmp_path: Path, mounts: FakeMounts) -> None:
    """A stick not mounted at boot: nothing made in the bare folder; mounted: all, in order."""
    usb = tmp_path / 'usb'
    usb.mkdir()  # the bare mount point on the root file system
    run = mounted_run(mounts, usb / 'maps', usb)
    run.claim()
    expected = f'storage_mount {usb} is not mounted'
    assert run.storage_gone == run.write_error == expected  # before any record
    assert [run.record(feature(sequence)) for sequence in range(3)] == [False] * 3
    assert run.write_held() == 0  # the retry timer's call
    assert run.check_storage() == expected
    with pytest.raises(OSError, match='is not mounted'):
        run.save({})
    assert list(usb.iterdir()) == []
    assert (run.records_held, run.records_written, run.storage_gone) == (3, 0, expected)

    mounts.plug(usb, STICK)
    assert run.write_held() == 3
    assert (run.records_held, run.write_error, run.storage_gone) == (0, '', '')
    assert run.record(feature(3))
    assert (run.records_at_start, run.files_replaced) == (0, 0)
    assert run.save({}) == 4
    run.close()
    assert on_disk(run.records_path) == [0, 1, 2, 3]


def test_storage_mount_mounted_later_continues_the_run_on_it(
        tmp_path: Path, mounts: FakeMounts) -> None:
    """The run's file of an earlier session is on the stick: it cannot be continued before
    the stick is mounted (nothing is read), then it is, and claimed (locked)."""
    usb = tmp_path / 'usb'
    mounts.plug(usb, STICK)
    earlier = MapRun(usb / 'maps', 'field')
    assert earlier.record(feature(0)) and earlier.record(feature(1))
    earlier.close()
    mounts.pull(usb)  # not mounted when the recorder starts again

    run = mounted_run(mounts, usb / 'maps', usb)
    continued: list[int] = []
    with pytest.raises(StorageGone, match=f'storage_mount {usb} is not mounted'):
        run.continue_existing(lambda item: continued.append(
            item['properties']['sequence']))
    run.claim()  # the run is claimed; no file is opened in the bare folder
    assert run.check_storage() == f'storage_mount {usb} is not mounted'
    assert (continued, run.records_at_start, list(usb.iterdir())) == ([], 0, [])

    mounts.plug(usb, STICK_AGAIN)
    assert run.check_storage() == '' and run.storage_gone == ''
    run.continue_existing(lambda item: continued.append(item['properties']['sequence']))
    run.claim()
    assert (continued, run.records_at_start) == ([0, 1], 2)
    assert run.record(feature(2))
    assert run.records_in_file == 3
    run.close()
    assert on_disk(run.records_path) == [0, 1, 2]


def test_storage_mount_unmounted_while_running_holds_again(
        tmp_path: Path, mounts: FakeMounts) -> None:
    """Pulled mid-run: held with the mount named; a new stick gets map_dir made on it."""
    usb = tmp_path / 'usb'
    mounts.plug(usb, STICK)
    run = mounted_run(mounts, usb / 'maps', usb)
    run.continue_existing(lambda item: None)
    run.claim()
    assert run.storage_gone == ''
    assert run.record(feature(0)) and run.record(feature(1))

    mounts.pull(usb)
    assert not run.record(feature(2)) and not run.record(feature(3))
    assert run.storage_gone == f'storage_mount {usb} is not mounted'
    assert list(usb.iterdir()) == []
    mounts.plug(usb, STICK_AGAIN)
    assert run.write_held() == 2
    assert run.record(feature(4))
    assert on_disk(run.records_path) == [0, 1, 2, 3, 4]

    mounts.pull(usb)
    assert not run.record(feature(5))
    shutil.rmtree(tmp_path / 'stick_contents')  # another, empty stick is mounted instead
    mounts.plug(usb, STICK)
    assert run.write_held() == 1  # map_dir made on it: the mount decides, not the device
    run.close()
    assert on_disk(run.records_path) == [5]


def test_storage_mount_with_map_dir_on_another_device_is_not_written(
        tmp_path: Path, mounts: FakeMounts) -> None:
    """Mounted, but map_dir is a mount of its own inside it: not on the stick, held."""
    usb = tmp_path / 'usb'
    mounts.plug(usb, STICK)
    (usb / 'maps').mkdir()
    mounts.mounts[(usb / 'maps').absolute()] = STICK_AGAIN
    run = mounted_run(mounts, usb / 'maps', usb)
    assert not run.record(feature(0))
    assert run.storage_gone == (
        f'storage_mount {usb}: map_dir {usb / "maps"} is not on it ({usb / "maps"} is on '
        f'device 8:33, {usb} on 8:17)')
    assert list((usb / 'maps').iterdir()) == []
    del mounts.mounts[(usb / 'maps').absolute()]
    assert run.write_held() == 1
    run.close()
    assert on_disk(run.records_path) == [0]


def test_storage_mount_bounds_the_memory_as_a_full_disk_does(
        tmp_path: Path, mounts: FakeMounts) -> None:
    usb = tmp_path / 'usb'
    usb.mkdir()
    run = mounted_run(mounts, usb, usb, max_held=2)
    assert not any(run.record(feature(sequence)) for sequence in range(5))
    assert (run.records_held, run.records_dropped) == (2, 3)
    mounts.plug(usb, STICK)
    assert run.write_held() == 2
    run.close()
    assert on_disk(run.records_path) == [3, 4]


def test_storage_mount_leaves_a_stale_run_in_the_bare_folder_alone(
        tmp_path: Path, mounts: FakeMounts) -> None:
    """Records an older recorder wrote in the bare folder are neither read nor appended to."""
    usb = tmp_path / 'usb'
    (usb / 'maps').mkdir(parents=True)
    stale = usb / 'maps' / 'field.geojsons'
    stale.write_text(json.dumps(feature(99)) + '\n')
    run = mounted_run(mounts, usb / 'maps', usb)
    with pytest.raises(StorageGone):
        run.continue_existing(lambda item: None)
    run.claim()
    assert not run.record(feature(0))
    run.close()
    assert (run.records_at_start, run.records_held) == (0, 1)
    assert stale.read_text() == json.dumps(feature(99)) + '\n'


@pytest.mark.parametrize(('storage_mount', 'map_dir', 'problem'), [
    ('/media/field', '/media/field', None),
    ('/media/field/', '/media/field/maps/day', None),
    ('/media/field', '/media/field/../field/maps', None),
    ('/', '/srv/maps', None),
    ('media/field', '/media/field/maps',
     "storage_mount must be an absolute path (a mount point), got 'media/field'"),
    ('/media/field', '/media/field2/maps',
     'map_dir /media/field2/maps is not in storage_mount /media/field: it must be on the '
     'mount'),
    ('/media/field/maps', '/media/field',
     'map_dir /media/field is not in storage_mount /media/field/maps: it must be on the '
     'mount'),
])
def test_check_storage_mount(storage_mount: str, map_dir: str, problem: str | None) -> None:
    assert check_storage_mount(storage_mount, map_dir) == problem
    if problem is None:
        MapRun(map_dir, 'field', storage_mount=storage_mount)
    else:
        with pytest.raises(ValueError, match='storage_mount'):
            MapRun(map_dir, 'field', storage_mount=storage_mount)


def test_check_storage_mount_takes_a_relative_map_dir_from_the_working_directory(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    assert check_storage_mount(str(tmp_path), 'disease_maps') is None
    assert check_storage_mount(str(tmp_path / 'usb'), 'disease_maps') == (
        f'map_dir {tmp_path / "disease_maps"} is not in storage_mount {tmp_path / "usb"}: '
        'it must be on the mount')
    assert MapRun('maps', 'field', storage_mount='').storage_mount is None


def test_a_symlinked_storage_mount_is_resolved_at_the_start(
        tmp_path: Path, mounts: FakeMounts) -> None:
    """os.path.ismount is False for a symbolic link: its target is the mount looked at."""
    usb = (tmp_path / 'usb').absolute()
    link = tmp_path / 'field'
    link.symlink_to(usb)
    run = mounted_run(mounts, link / 'maps', link)
    assert (run.storage_mount, run.storage_mount_link) == (usb, link.absolute())
    assert run.check_storage() == f'storage_mount {usb} is not mounted'
    mounts.plug(usb, STICK)
    assert run.check_storage() == ''
    assert run.record(feature(0))
    run.close()
    assert on_disk(usb / 'maps' / 'field.geojsons') == [0]
    assert MapRun(usb / 'maps', 'field', storage_mount=usb).storage_mount_link is None
