"""Output checks made before a long run, on a real file system."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from plant_disease_ros.core.output_paths import (
    check_not_an_input,
    check_output_file,
    directory_problem,
)


def test_a_new_folder_under_a_writable_one_is_fine(tmp_path: Path) -> None:
    assert directory_problem(tmp_path) is None
    assert directory_problem(tmp_path / 'new' / 'deeper') is None
    check_output_file(tmp_path / 'new' / 'report.json')
    check_output_file(tmp_path / 'new' / 'report.json', option='--x')
    assert not (tmp_path / 'new').exists()  # a check writes nothing


def test_a_path_under_a_file_or_a_broken_link_is_refused(tmp_path: Path) -> None:
    blocker = tmp_path / 'afile'
    blocker.write_text('x')
    assert directory_problem(blocker / 'maps') == f'{blocker} is not a directory'
    with pytest.raises(ValueError) as caught:
        check_output_file(blocker / 'bench.json', option='--out')
    assert str(caught.value) == f'--out {blocker / "bench.json"}: {blocker} is not a directory'
    link = tmp_path / 'gone'
    link.symlink_to(tmp_path / 'missing')
    assert directory_problem(link / 'maps') == f'{link} is a broken symbolic link'


def test_a_directory_is_not_a_file_and_the_hint_is_given(tmp_path: Path) -> None:
    with pytest.raises(ValueError) as caught:
        check_output_file(tmp_path, folder_hint='; give a file')
    assert str(caught.value) == f'--out {tmp_path} is a directory; give a file'


@pytest.mark.skipif(os.geteuid() == 0, reason='root may write anywhere')
def test_a_read_only_folder_or_file_is_refused(tmp_path: Path) -> None:
    locked = tmp_path / 'locked'
    locked.mkdir()
    (locked / 'old.json').write_text('{}')
    (locked / 'old.json').chmod(0o444)
    locked.chmod(0o555)
    try:
        assert directory_problem(locked / 'new') == f'{locked} is not writable'
        with pytest.raises(ValueError, match='is not writable'):
            check_output_file(locked / 'old.json')
    finally:
        locked.chmod(0o755)


def test_an_output_that_is_one_of_the_inputs_is_refused(tmp_path: Path) -> None:
    source = tmp_path / 'eval' / 'evaluation.json'
    source.parent.mkdir()
    source.write_text('{}')
    with pytest.raises(ValueError, match='is one of the inputs'):
        check_not_an_input(tmp_path / 'eval' / '..' / 'eval' / 'evaluation.json',
                           [None, tmp_path / 'other.json', source])
    (tmp_path / 'link.json').symlink_to(source)
    with pytest.raises(ValueError, match='--card .* is one of the inputs'):
        check_not_an_input(tmp_path / 'link.json', [source], option='--card')
    check_not_an_input(tmp_path / 'choice.json', [source, None])  # another file: fine
    assert source.read_text() == '{}'
