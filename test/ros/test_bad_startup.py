"""Bad start-up: the console scripts end with one clear line and a non-zero exit status.

A robot that boots with a missing or damaged model, a labels file of another model (or
with a duplicate or a blank line), a delegate library that does not load, a params file
that cannot be read or gives one key the wrong type, or a ``map_dir`` it cannot write to
must say so in one line an operator can act on, not print a Python traceback or keep
running half-configured. Each case runs the installed console script as a subprocess (in
parallel, bounded in time).
"""

from __future__ import annotations

from dataclasses import dataclass
import os
from pathlib import Path
import shutil
import time

import pytest

pytest.importorskip('rclpy')

from helpers.filesystems import mount_small, unmount  # noqa: E402
from helpers.processes import child_environment, node_argv, owned_shared_memory  # noqa: E402
from helpers.shipped_model import LABELS_PATH, MODEL_PATH  # noqa: E402

from plant_disease_ros.tools.process import ChildProcess, start, stop  # noqa: E402

NODES_WITH_MODEL = ('disease_classifier', 'plant_disease_pipeline')
ALL_NODES = ('camera_subscriber', 'disease_classifier', 'disease_map_recorder',
             'plant_disease_pipeline')
TIMEOUT_S = 60.0
MAX_OUTPUT_LINES = 6
# How often the running children's open files are listed (for their shared-memory
# segments). A failing child owns its segment from its DDS participant's creation to its
# release: about 0.15 s here, 0.05 s in a process that exits right after making a node.
OWNERSHIP_POLL_S = 0.005
# One key of the wrong type per node (a string where a number is declared).
WRONG_TYPE_KEY = {'camera_subscriber': 'max_rate_hz', 'disease_classifier': 'num_threads',
                  'disease_map_recorder': 'cell_size_m', 'plant_disease_pipeline': 'num_threads'}


@dataclass
class StartupCase:
    """One node started with one problem; ``names`` must appear in what it prints."""

    node: str
    problem: str
    ros_args: list[str]
    names: tuple[str, ...]


def _write_files(folder: Path, model_path: Path, labels_path: Path) -> dict[str, Path]:
    """Write the broken inputs into ``folder``; return them by problem."""
    truncated = folder / 'truncated_model.tflite'
    truncated.write_bytes(model_path.read_bytes()[:4096])
    not_tflite = folder / 'not_a_model.tflite'
    not_tflite.write_text('this is a text file, not a flatbuffer\n' * 20)
    short_labels = folder / 'five_labels.txt'
    short_labels.write_text(''.join(f'Crop{i}___disease_{i}\n' for i in range(5)))
    garbage = folder / 'garbage_params.yaml'
    garbage.write_bytes(b'{{{: [\n\x00\xff garbage')
    directory = folder / 'directory_params.yaml'
    directory.mkdir()
    labels = labels_path.read_text().splitlines()
    duplicate_labels = folder / 'duplicate_labels.txt'
    duplicate_labels.write_text('\n'.join([*labels[:-1], labels[0]]) + '\n')
    blank_labels = folder / 'blank_line_labels.txt'
    blank_labels.write_text('\n'.join([*labels[:2], '', *labels[3:]]) + '\n')
    files = {'missing': folder / 'missing_model.tflite', 'truncated': truncated,
             'not_tflite': not_tflite, 'labels': short_labels, 'garbage': garbage,
             'unreadable': directory, 'absent': folder / 'absent_params.yaml',
             'duplicate_labels': duplicate_labels, 'blank_labels': blank_labels}
    for node, key in WRONG_TYPE_KEY.items():
        wrong = folder / f'wrong_type_{node}.yaml'
        wrong.write_text(f'/**:\n  ros__parameters:\n    {key}: not_a_number\n')
        files[f'wrong_type_{node}'] = wrong
    blocker = folder / 'a_file'
    blocker.write_text('not a directory\n')
    files['map_dir_under_file'] = blocker / 'maps'
    files['missing_delegate'] = folder / 'libedgetpu.so.1'
    return files


def _cases(files: dict[str, Path]) -> list[StartupCase]:
    """Return every (node, problem) case."""
    cases = []
    for node in NODES_WITH_MODEL:
        for problem in ('missing', 'truncated', 'not_tflite'):
            path = files[problem]
            cases.append(StartupCase(node, problem, ['-p', f'model_path:={path}'],
                                     (path.name,)))
        cases.append(StartupCase(node, 'labels_count', ['-p', f'labels_path:={files["labels"]}'],
                                 ('labels',)))
        for problem, word in (('duplicate_labels', 'duplicate'), ('blank_labels', 'blank')):
            path = files[problem]
            cases.append(StartupCase(node, problem, ['-p', f'labels_path:={path}'],
                                     (path.name, word)))
        cases.append(StartupCase(node, 'missing_delegate',
                                 ['-p', f'delegate:={files["missing_delegate"]}'],
                                 ('delegate library', files['missing_delegate'].name)))
    for node, key in WRONG_TYPE_KEY.items():
        cases.append(StartupCase(node, 'params_wrong_type',
                                 ['--params-file', str(files[f'wrong_type_{node}'])], (key,)))
    # The pipeline's classifier starts, then its camera fails: the started node is left
    # to the process's exit (release_failed_node), the line still printed.
    cases.append(StartupCase('plant_disease_pipeline', 'camera_params_wrong_type',
                             ['--params-file', str(files['wrong_type_camera_subscriber'])],
                             (WRONG_TYPE_KEY['camera_subscriber'],)))
    recorder = 'disease_map_recorder'
    cases.append(StartupCase(recorder, 'map_dir_under_file',
                             ['-p', f'map_dir:={files["map_dir_under_file"]}'],
                             ('map_dir', 'not a directory')))
    # Every save or map would fail on a name too long (a missing map_dir: NAME_MAX is 255).
    cases.append(StartupCase(recorder, 'run_name_too_long',
                             ['-p', f'map_dir:={files["absent"].parent / "long_run_maps"}',
                              '-p', f'run_name:={"r" * 230}'],
                             ('run_name', 'too long', 'at most 198 bytes')))
    if 'map_dir_read_only' in files:
        cases.append(StartupCase(recorder, 'map_dir_read_only',
                                 ['-p', f'map_dir:={files["map_dir_read_only"]}'],
                                 ('map_dir', 'not writable')))
    for node in ALL_NODES:
        for problem in ('garbage', 'unreadable', 'absent'):
            path = files[problem]
            cases.append(StartupCase(node, f'params_{problem}', ['--params-file', str(path)],
                                     (path.name,)))
    return cases


class StartupRuns(dict):
    """case id -> (case, exit status or None, output); a short repr for failure reports.

    ``shared_memory_owned``: case id -> the Fast DDS segments (with their lock files) its
    process was seen owning while it ran; ``shared_memory_left``: case id -> the names of
    those still in /dev/shm after it had exited.
    """

    shared_memory_owned: dict[str, set[Path]] = {}
    shared_memory_left: dict[str, list[str]] = {}

    def __repr__(self) -> str:
        """Return a one-line summary (the outputs are in the assertion messages)."""
        return f'<{len(self)} start-up runs>'


def _wait_noting_shared_memory(started: list[tuple[StartupCase, ChildProcess]],
                               owned: dict[str, set[Path]], timeout_s: float) -> None:
    """Wait until every child has exited or ``timeout_s`` passed; note the segments each owns.

    What a child owns is read from its own open files (``owned_shared_memory``), so the
    segments of other processes on this host (another test run, any domain) never count,
    whenever they come or go. A child is polled before its files are read and nothing else
    reaps it: its process id cannot be another process's meanwhile.
    """
    deadline = time.monotonic() + timeout_s
    while True:
        running = [(case, child) for case, child in started if child.popen.poll() is None]
        if not running or time.monotonic() >= deadline:
            return
        for case, child in running:
            owned[f'{case.node}-{case.problem}'].update(owned_shared_memory(child.popen.pid))
        time.sleep(OWNERSHIP_POLL_S)


@pytest.fixture(scope='module')
def startup_runs(tmp_path_factory) -> StartupRuns:
    """Run every case (a few at a time); return them by case id."""
    folder = tmp_path_factory.mktemp('bad_startup')
    files = _write_files(folder, MODEL_PATH, LABELS_PATH)
    read_only = folder / 'read_only'
    # A read-only file system stops root too; without root a read-only mode does.
    if mount_small(read_only, 64, read_only=True) is None:
        files['map_dir_read_only'] = read_only / 'maps'
    elif os.geteuid() != 0:
        read_only.chmod(0o555)
        files['map_dir_read_only'] = read_only / 'maps'
    cases = _cases(files)
    runs = StartupRuns()
    owned: dict[str, set[Path]] = {f'{case.node}-{case.problem}': set() for case in cases}
    batch = 4
    for start_index in range(0, len(cases), batch):
        started = []
        for case in cases[start_index:start_index + batch]:
            log = folder / f'{case.node}-{case.problem}.log'
            child = start(case.node, node_argv(case.node, *case.ros_args), log,
                          child_environment())
            started.append((case, child))
        _wait_noting_shared_memory(started, owned, TIMEOUT_S)
        for case, child in started:
            status = child.popen.poll()
            if status is None:
                stop([child])
            # The log's first line is the command line that process.start wrote.
            output = child.log_path.read_text(errors='replace').split('\n', 1)[-1]
            runs[f'{case.node}-{case.problem}'] = (case, status, output)
    # Every child has exited and been reaped: a segment it owned that is still there is one
    # it left. Removed once noted, so that a failing run leaves no 32 MiB files behind.
    runs.shared_memory_owned = owned
    runs.shared_memory_left = {}
    for case_id, paths in owned.items():
        left = sorted(path.name for path in paths if path.exists())
        if left:
            runs.shared_memory_left[case_id] = left
        for path in paths:
            path.unlink(missing_ok=True)
    shutil.rmtree(folder / 'directory_params.yaml', ignore_errors=True)
    unmount(read_only)
    read_only.chmod(0o755)
    return runs


def _case_ids() -> list[str]:
    names = ['missing', 'truncated', 'not_tflite', 'labels', 'garbage', 'unreadable',
             'absent', 'duplicate_labels', 'blank_labels', 'map_dir_under_file',
             'map_dir_read_only', 'missing_delegate',
             *(f'wrong_type_{node}' for node in WRONG_TYPE_KEY)]
    dummy = {name: Path(f'/x/{name}') for name in names}
    return [f'{case.node}-{case.problem}' for case in _cases(dummy)]


@pytest.mark.parametrize('case_id', _case_ids())
def test_bad_startup_is_one_clear_line(startup_runs: StartupRuns, case_id: str) -> None:
    """Exit status 1, no traceback, the problem named, a few lines at most.

    Exactly 1: a crash (a signal gives a negative status) that happened to print the
    problem first must not pass.
    """
    if case_id not in startup_runs:
        pytest.skip('no read-only file system here (root, and no tmpfs or loop mount)')
    case, status, output = startup_runs[case_id]
    assert status is not None, f'{case_id}: still running after {TIMEOUT_S:.0f} s:\n{output}'
    assert status == 1, f'{case_id}: exit status {status}, not 1:\n{output}'
    assert 'Traceback' not in output, f'{case_id}: traceback:\n{output}'
    # A finalizer's error (LiteRT's half-built Delegate) printed after the line.
    assert 'Exception ignored' not in output, f'{case_id}: ignored exception:\n{output}'
    lines = [line for line in output.splitlines() if line.strip()]
    naming = [line for line in lines if all(name in line for name in case.names)]
    assert naming, f'{case_id}: exit status {status}, no line names {case.names}:\n{output}'
    assert len(lines) <= MAX_OUTPUT_LINES, f'{case_id}: {len(lines)} lines:\n{output}'


def test_failed_starts_leave_no_shared_memory(startup_runs: StartupRuns) -> None:
    """Each failed start releases its DDS participant's 32 MiB segment in /dev/shm (RAM).

    A process that just exits leaves it behind: a node respawned after every failed
    start would fill the robot's memory. Only the segments that the failing processes
    themselves owned are checked: what other programs on this host (another test run)
    create, keep or leave in /dev/shm meanwhile is none of this test's business.
    """
    assert len(startup_runs) > 20
    # The starts that get as far as a node have a DDS participant, with its segment:
    # seen in none of them, the check below would check nothing.
    assert any(startup_runs.shared_memory_owned.values()), \
        'no failing process was seen owning a shared-memory segment: nothing checked'
    left = startup_runs.shared_memory_left
    assert left == {}, f'{len(left)} failed starts left segments: {dict(list(left.items())[:6])}'
