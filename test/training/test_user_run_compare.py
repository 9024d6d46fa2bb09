"""``compare runs/before/eval runs/mine/eval``, as the README shows it.

The two evaluations are named after their runs (not both ``eval``), and a second
comparison never silently replaces the first: it goes to ``comparison-2``.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from plant_disease_ros.cli.main import main
from plant_disease_ros.training.field_evaluate import PREDICTION_COLUMNS


def evaluation_folder(folder: Path, right: list[bool]) -> Path:
    """Write an evaluation folder of a photo folder: ``right[i]`` says photo i is right."""
    folder.mkdir(parents=True)
    (folder / 'evaluation.json').write_text(json.dumps({'model': str(folder), 'split': 'all'}))
    rows = [','.join(PREDICTION_COLUMNS)]
    for index, correct in enumerate(right):
        label = 'Apple___healthy' if correct else 'Apple___Black_rot'
        values = {'domain': 'photos', 'frame': f'Apple___healthy/{index:03d}.jpg',
                  'truth': 'Apple___healthy', 'label': label, 'published': label,
                  'score': '0.9', 'top3': label, 'correct': '1' if correct else '0',
                  'outcome': 'right' if correct else 'wrong'}
        rows.append(','.join(values.get(column, '') for column in PREDICTION_COLUMNS))
    (folder / 'predictions.csv').write_text('\n'.join(rows) + '\n')
    return folder


def test_names_tell_two_run_evaluations_apart() -> None:
    from plant_disease_ros.training.compare import default_names

    assert default_names('runs/before/eval', 'runs/mine/eval') == ('before', 'mine')
    assert default_names('runs/before/evaluation', 'runs/mine') == ('before', 'mine')
    assert default_names('a/mine/eval', 'b/mine/eval') == ('a/mine', 'b/mine')
    assert default_names('runs/base', 'runs/new') == ('base', 'new')


def test_compare_names_the_runs_and_keeps_an_earlier_comparison(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
        capsys: pytest.CaptureFixture) -> None:
    monkeypatch.chdir(tmp_path)
    evaluation_folder(tmp_path / 'runs' / 'before' / 'eval', [False] * 10 + [True] * 30)
    evaluation_folder(tmp_path / 'runs' / 'mine' / 'eval', [True] * 40)
    assert main(['compare', 'runs/before/eval', 'runs/mine/eval']) == 0
    printed = capsys.readouterr().out
    assert 'base: before (runs/before/eval)' in printed
    assert 'new:  mine (runs/mine/eval)' in printed
    assert 'written: comparison/comparison.json' in printed
    first = json.loads((tmp_path / 'comparison' / 'comparison.json').read_text())
    assert (first['base_name'], first['new_name']) == ('before', 'mine')
    kept = {path.name: path.read_bytes() for path in (tmp_path / 'comparison').iterdir()}

    # The other way round: the first comparison stays, this one goes beside it.
    assert main(['compare', 'runs/mine/eval', 'runs/before/eval']) == 0
    printed = capsys.readouterr().out
    assert 'comparison holds an earlier comparison: kept; this one goes to comparison-2' \
        in printed
    assert 'written: comparison-2/comparison.json' in printed
    assert {path.name: path.read_bytes()
            for path in (tmp_path / 'comparison').iterdir()} == kept
    second = json.loads((tmp_path / 'comparison-2' / 'comparison.json').read_text())
    assert (second['base_name'], second['new_name']) == ('mine', 'before')
    assert main(['compare', 'runs/mine/eval', 'runs/before/eval']) == 0
    assert (tmp_path / 'comparison-3' / 'comparison.png').is_file()


def test_a_comparison_into_the_current_folder_is_numbered_too(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """--out . holding a comparison: the next goes beside it, not an error about a name."""
    from plant_disease_ros.training.compare import free_output_folder

    monkeypatch.chdir(tmp_path)
    (tmp_path / 'comparison.json').write_text('{}')
    assert free_output_folder('.') == tmp_path.with_name(f'{tmp_path.name}-2')
    assert free_output_folder('fresh') == Path('fresh')


class ClosedPipe:
    """A standard output whose reader has gone (``compare A B | head -3``, after 3 lines)."""

    def write(self, text: str) -> int:
        raise BrokenPipeError(32, 'Broken pipe')

    def flush(self) -> None:
        raise BrokenPipeError(32, 'Broken pipe')


def test_the_comparison_is_written_before_the_table_is_printed(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A closed pipe ended compare before it wrote any file."""
    import sys

    monkeypatch.chdir(tmp_path)
    evaluation_folder(tmp_path / 'base', [False] * 10 + [True] * 30)
    evaluation_folder(tmp_path / 'new', [True] * 40)
    monkeypatch.setattr(sys, 'stdout', ClosedPipe())
    main(['compare', 'base', 'new'])
    written = json.loads((tmp_path / 'comparison' / 'comparison.json').read_text())
    assert (written['base_name'], written['new_name']) == ('base', 'new')
    assert (tmp_path / 'comparison' / 'comparison.md').is_file()
    assert (tmp_path / 'comparison' / 'comparison.png').is_file()


def test_compare_into_a_closed_pipe_ends_quietly_with_its_files_written(
        tmp_path: Path) -> None:
    """``plant-disease compare a b | head``: no error line, the status of SIGPIPE."""
    import os
    import subprocess
    import sys

    evaluation_folder(tmp_path / 'base', [False] * 10 + [True] * 30)
    evaluation_folder(tmp_path / 'new', [True] * 40)
    reader, writer = os.pipe()
    os.close(reader)  # the reader has gone before the first line
    try:
        done = subprocess.run(
            [sys.executable, '-m', 'plant_disease_ros.cli.main', 'compare', 'base', 'new'],
            cwd=tmp_path, stdout=writer, stderr=subprocess.PIPE, text=True, timeout=300,
            env={**os.environ, 'PYTHONPATH': str(Path(__file__).resolve().parents[2])})
    finally:
        os.close(writer)
    assert (done.returncode, done.stderr) == (141, '')
    written = json.loads((tmp_path / 'comparison' / 'comparison.json').read_text())
    assert (written['base_name'], written['new_name']) == ('base', 'new')


def test_a_broken_pipe_that_is_not_standard_output_is_still_an_error(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
        capsys: pytest.CaptureFixture) -> None:
    """Only a closed standard output is the reader having gone; any other pipe fails."""
    import plant_disease_ros.cli.compare as compare_cli

    def broken(args: object) -> int:
        raise BrokenPipeError(32, 'Broken pipe')

    monkeypatch.setattr(compare_cli, 'run', broken)
    assert main(['compare', 'base', 'new']) == 2
    assert 'plant-disease compare: error: [Errno 32] Broken pipe' in capsys.readouterr().err
