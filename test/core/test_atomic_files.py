"""core.atomic_files: a file is either the old one or the whole new one."""

from __future__ import annotations

import os
from pathlib import Path
import signal
import subprocess
import sys

import pytest

from plant_disease_ros.core import atomic_files
from plant_disease_ros.core.atomic_files import (
    replacing,
    replacing_set,
    write_bytes_atomic,
    write_text_atomic,
)


def test_a_write_replaces_the_file_and_leaves_nothing_beside_it(tmp_path: Path) -> None:
    target = tmp_path / 'new' / 'card.md'
    assert write_text_atomic(target, 'first\n') == target
    write_text_atomic(target, 'second, longer\n')
    assert target.read_text() == 'second, longer\n'
    assert os.listdir(target.parent) == ['card.md']


def test_a_failed_write_leaves_the_old_file_whole(tmp_path: Path) -> None:
    target = tmp_path / 'map.png'
    target.write_bytes(b'old map')
    with pytest.raises(OSError, match='No space left'):
        with replacing(target) as temporary:
            assert temporary.parent == tmp_path and temporary.suffix == '.png'
            temporary.write_bytes(b'half a ne')
            raise OSError(28, 'No space left on device')
    assert target.read_bytes() == b'old map'
    assert os.listdir(tmp_path) == ['map.png']


def test_a_file_size_limit_midway_keeps_the_old_file(tmp_path: Path) -> None:
    """A real failed write: the kernel's file-size limit (RLIMIT_FSIZE) stops it."""
    target = tmp_path / 'comparison.json'
    target.write_text('{"old": true}\n')
    script = (
        'import resource, signal, sys\n'
        'signal.signal(signal.SIGXFSZ, signal.SIG_IGN)\n'
        'resource.setrlimit(resource.RLIMIT_FSIZE, (4096, 4096))\n'
        'from plant_disease_ros.core.atomic_files import write_bytes_atomic\n'
        'write_bytes_atomic(sys.argv[1], b"x" * 100_000)\n')
    done = subprocess.run([sys.executable, '-c', script, str(target)], capture_output=True,
                          text=True, timeout=60)
    assert done.returncode != 0 and 'File too large' in done.stderr
    assert target.read_text() == '{"old": true}\n'
    assert os.listdir(tmp_path) == ['comparison.json']
    write_bytes_atomic(target, b'x' * 100_000)  # without the limit it goes through
    assert target.stat().st_size == 100_000


def earlier_set(folder: Path) -> dict[str, bytes]:
    """Write an earlier evaluation's files (and a file of no evaluation) into ``folder``."""
    files = {'evaluation.json': b'{"old": 1}', 'predictions.csv': b'old rows',
             'mistakes_lab.png': b'old mistakes', 'mistakes_field.png': b'old too',
             'notes.txt': b'mine'}
    folder.mkdir()
    for name, data in files.items():
        (folder / name).write_bytes(data)
    return files


def test_a_set_replaces_the_earlier_one_with_its_last_file_moved_in_last(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    folder = tmp_path / 'eval'
    earlier_set(folder)
    moved = []
    replace = os.replace

    def recording(source: Path, target: Path) -> None:
        if not Path(target).name.startswith('.'):  # a move in, not into a temporary
            moved.append((Path(target).name, (folder / 'evaluation.json').exists()))
        replace(source, target)

    monkeypatch.setattr(atomic_files.os, 'replace', recording)
    with replacing_set(folder, 'evaluation.json',
                       removed=['mistakes_lab.png', 'mistakes_field.png']) as staging:
        assert staging.parent == folder and not any(staging.iterdir())
        (staging / 'evaluation.json').write_bytes(b'{"new": 1}')
        (staging / 'predictions.csv').write_bytes(b'new rows')
        (staging / 'mistakes_field.png').write_bytes(b'new mistakes')
    # No old evaluation.json beside a new file at any moment; the new one last.
    assert moved == [('mistakes_field.png', False), ('predictions.csv', False),
                     ('evaluation.json', False)]
    assert {path.name: path.read_bytes() for path in folder.iterdir()} == {
        'evaluation.json': b'{"new": 1}', 'predictions.csv': b'new rows',
        'mistakes_field.png': b'new mistakes', 'notes.txt': b'mine'}


def test_a_set_that_fails_leaves_the_earlier_one_whole(tmp_path: Path) -> None:
    folder = tmp_path / 'eval'
    files = earlier_set(folder)
    with pytest.raises(OSError, match='No space left'):
        with replacing_set(folder, 'evaluation.json', removed=['mistakes_lab.png']) as staging:
            (staging / 'predictions.csv').write_bytes(b'new rows')
            raise OSError(28, 'No space left on device')
    assert {path.name: path.read_bytes() for path in folder.iterdir()} == files


def test_ctrl_c_while_the_new_set_is_flushed_leaves_the_earlier_one_whole(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """The earlier set's files are removed only once every new file is on disk."""
    folder = tmp_path / 'eval'
    files = earlier_set(folder)
    flushed: list[Path] = []
    fsync_file = atomic_files._fsync_file

    def interrupted_at_the_second(path: Path) -> None:
        flushed.append(path)
        if len(flushed) == 2:
            raise KeyboardInterrupt  # Ctrl-C while the new files are flushed
        fsync_file(path)

    monkeypatch.setattr(atomic_files, '_fsync_file', interrupted_at_the_second)
    with pytest.raises(KeyboardInterrupt):
        with replacing_set(folder, 'evaluation.json', removed=['mistakes_lab.png']) as staging:
            (staging / 'predictions.csv').write_bytes(b'new rows')
            (staging / 'evaluation.json').write_bytes(b'{"new": 1}')
    assert len(flushed) == 2
    assert {path.name: path.read_bytes() for path in folder.iterdir()} == files


def test_ctrl_c_while_the_earlier_set_is_removed_waits_for_the_new_one(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """SIGINT as the earlier evaluation.json goes is held until the new set is in place."""
    folder = tmp_path / 'eval'
    earlier_set(folder)
    unlink = Path.unlink

    def interrupted(path: Path, missing_ok: bool = False) -> None:
        if path == folder / 'evaluation.json':
            signal.raise_signal(signal.SIGINT)  # Ctrl-C just as the old report goes
        unlink(path, missing_ok=missing_ok)

    monkeypatch.setattr(Path, 'unlink', interrupted)
    previous = signal.signal(signal.SIGINT, signal.default_int_handler)
    try:
        with pytest.raises(KeyboardInterrupt):
            with replacing_set(folder, 'evaluation.json',
                               removed=['mistakes_lab.png']) as staging:
                (staging / 'predictions.csv').write_bytes(b'new rows')
                (staging / 'evaluation.json').write_bytes(b'{"new": 1}')
    finally:
        signal.signal(signal.SIGINT, previous)
    assert {path.name: path.read_bytes() for path in folder.iterdir()} == {
        'evaluation.json': b'{"new": 1}', 'predictions.csv': b'new rows',
        'mistakes_field.png': b'old too', 'notes.txt': b'mine'}


def test_a_set_removes_the_staging_folders_of_killed_evaluations(tmp_path: Path) -> None:
    """A process killed during an evaluation leaves its hidden staging folder; the next
    set in that folder removes it, but never the staging folder of a running process."""
    folder = tmp_path / 'eval'
    earlier_set(folder)
    killed = (
        'import os, signal, sys\n'
        'from plant_disease_ros.core.atomic_files import replacing_set\n'
        'with replacing_set(sys.argv[1], "evaluation.json") as staging:\n'
        '    (staging / "predictions.csv").write_text("rows of a killed run")\n'
        '    (staging / "evaluation.json").write_text("{}")\n'
        '    os.kill(os.getpid(), signal.SIGKILL)\n')
    done = subprocess.run([sys.executable, '-c', killed, str(folder)], capture_output=True,
                          text=True, timeout=60)
    assert done.returncode == -signal.SIGKILL, done.stderr
    left, = (entry for entry in folder.iterdir() if entry.is_dir())
    assert left.name.startswith('.evaluation.json.') and left.name.endswith('.tmp')
    running = folder / f'.evaluation.json.{os.getpid()}.0123abcd.tmp'
    running.mkdir()
    (running / 'evaluation.json').write_bytes(b'{"being": "written"}')
    with replacing_set(folder, 'evaluation.json') as staging:
        (staging / 'evaluation.json').write_bytes(b'{"new": 1}')
    assert not left.exists()
    assert (running / 'evaluation.json').read_bytes() == b'{"being": "written"}'
    assert sorted(entry.name for entry in folder.iterdir() if entry.is_dir()) == [running.name]
    assert (folder / 'evaluation.json').read_bytes() == b'{"new": 1}'
