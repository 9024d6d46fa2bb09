"""``search`` prints a train line that can be pasted, and keeps an earlier search."""

from __future__ import annotations

from dataclasses import dataclass
import json
from pathlib import Path
import shlex

import pytest

from plant_disease_ros.cli import search as search_cli
from plant_disease_ros.cli.main import build_parser, main
from plant_disease_ros.training.search import check_search_out_dir, knob_search, SearchSpace
from plant_disease_ros.training.train import TrainOptions


@dataclass
class FakeResult:
    best_val_accuracy: float = 0.5
    epochs_run: int = 1
    seconds: float = 1.0


@pytest.fixture
def photos(tmp_path: Path) -> Path:
    (tmp_path / 'my photos' / 'A___x').mkdir(parents=True)
    return tmp_path / 'my photos'


def test_the_best_line_names_an_out_folder_and_parses_as_train(
        photos: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
        capsys: pytest.CaptureFixture[str]) -> None:
    def fake_search(base: TrainOptions, space: SearchSpace, budget_min: float) -> list[dict]:
        return [{'learning_rate': 5e-4, 'unfreeze': 2, 'input_size': None,
                 'augment_strength': 1.0, 'width': None, 'changed': 'learning_rate',
                 'status': 'done', 'run': 'trial02', 'val_accuracy': 0.9, 'epochs': 6,
                 'seconds': 60.0}]

    monkeypatch.setattr(search_cli, 'knob_search', fake_search)
    out = tmp_path / 'runs' / 'search'
    assert main(['search', '--data', str(photos), '--out', str(out), '--seed', '7']) == 0
    line = next(line for line in capsys.readouterr().out.splitlines()
                if line.startswith('best: '))
    words = shlex.split(line.removeprefix('best: '))
    assert words[0] == 'plant-disease'
    args = build_parser().parse_args(words[1:])  # train's required --out is there
    assert (args.command, args.data, args.out) == ('train', str(photos),
                                                   str(tmp_path / 'runs' / 'search_best'))
    assert (args.learning_rate, args.unfreeze, args.seed) == (5e-4, 2, 7)


def test_an_earlier_search_is_refused_unless_overwrite(tmp_path: Path,
                                                       photos: Path,
                                                       capsys: pytest.CaptureFixture) -> None:
    out = tmp_path / 'search'
    check_search_out_dir(out)  # a new folder
    (out / 'trial01').mkdir(parents=True)
    (out / 'trial01' / 'checkpoint.keras').write_bytes(b'interrupted')
    check_search_out_dir(out)  # a trial cut short is no search result
    (out / 'trial01' / 'train_summary.json').write_text('{}')
    assert main(['search', '--data', str(photos), '--out', str(out)]) == 2
    assert 'already holds a search (trial01)' in capsys.readouterr().err
    trials: list[TrainOptions] = []

    def run_trial(options: TrainOptions) -> FakeResult:
        trials.append(options)
        return FakeResult()

    rows = knob_search(TrainOptions(data_dir=str(photos), out_dir=str(out), overwrite=True),
                       SearchSpace(learning_rate=(None,), unfreeze=(None,),
                                   input_size=(None,), augment_strength=(1.0,)),
                       budget_min=1.0, run_trial=run_trial)
    assert len(rows) == 1 and trials[0].overwrite
    assert json.loads((out / 'search_results.json').read_text())[0]['status'] == 'done'
    with pytest.raises(FileExistsError, match='search_results.json'):
        knob_search(TrainOptions(data_dir=str(photos), out_dir=str(out)), SearchSpace(),
                    budget_min=1.0, run_trial=lambda options: pytest.fail('trained'))


def test_a_search_whose_every_trial_was_skipped_says_so_and_fails(
        photos: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
        capsys: pytest.CaptureFixture[str]) -> None:
    def fake_search(base: TrainOptions, space: SearchSpace, budget_min: float) -> list[dict]:
        return [{'learning_rate': None, 'unfreeze': 0, 'input_size': None,
                 'augment_strength': 1.0, 'width': None, 'changed': 'unfreeze',
                 'status': 'skipped: --unfreeze 0 with no head epochs leaves nothing to train'}]

    monkeypatch.setattr(search_cli, 'knob_search', fake_search)
    assert main(['search', '--data', str(photos), '--out', str(tmp_path / 'search')]) == 1
    captured = capsys.readouterr()
    assert 'no trial ran to the end' in captured.err
    assert 'best:' not in captured.out


def test_a_width_the_start_model_does_not_have_is_a_conflict_a_search_skips(
        tmp_path: Path) -> None:
    from plant_disease_ros.training.train import OptionConflict, resolve_options

    pytest.importorskip('tensorflow')
    photos = tmp_path / 'photos'
    for name in ('A___x', 'A___y'):
        (photos / name).mkdir(parents=True)
    with pytest.raises(OptionConflict, match='--width 0.5 does not match'):
        resolve_options(TrainOptions(data_dir=str(photos), out_dir=str(tmp_path / 'out'),
                                     width=0.5))


@pytest.mark.parametrize('inside', ['', 'A___x', 'A___x/new'])
def test_an_out_inside_the_photo_folder_is_refused_before_anything_is_written(
        photos: Path, inside: str, monkeypatch: pytest.MonkeyPatch,
        capsys: pytest.CaptureFixture[str]) -> None:
    monkeypatch.setattr(search_cli, 'knob_search',
                        lambda *args, **kwargs: pytest.fail('searched'))
    before = sorted(path.relative_to(photos) for path in photos.rglob('*'))
    out = photos / inside if inside else photos
    assert main(['search', '--data', str(photos), '--out', str(out)]) == 2
    assert 'lies in the photo folder' in capsys.readouterr().err
    assert sorted(path.relative_to(photos) for path in photos.rglob('*')) == before


def test_an_out_that_cannot_be_a_folder_is_refused_before_the_search(
        photos: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
        capsys: pytest.CaptureFixture[str]) -> None:
    monkeypatch.setattr(search_cli, 'knob_search',
                        lambda *args, **kwargs: pytest.fail('searched'))
    (tmp_path / 'a file').write_text('x')
    assert main(['search', '--data', str(photos), '--out',
                 str(tmp_path / 'a file' / 'search')]) == 2
    assert 'is not a directory' in capsys.readouterr().err


def test_overwrite_deletes_the_earlier_search_trials_and_nothing_else(
        tmp_path: Path, photos: Path, capsys: pytest.CaptureFixture[str]) -> None:
    out = tmp_path / 'search'

    def trained(name: str, *extra: str) -> Path:
        folder = out / name
        folder.mkdir(parents=True)
        for file in ('split.json', 'model.keras', 'history.csv', 'training_curves.png',
                     'train_summary.json', *extra):
            (folder / file).write_text('x')
        return folder

    trained('trial01')
    trained('trial05_px96')
    trained('trial07_lr0.002')
    trained('trial03_aug0.5', 'notes.txt')  # the user's file: kept
    trained('trial_mine')  # not a name the search gives
    (out / 'trial02_unfreeze2').mkdir()
    (out / 'trial02_unfreeze2' / 'checkpoint.keras').write_text('cut short')
    (out / 'search_results.json').write_text('[]')
    names_run: list[str] = []

    def run_trial(options: TrainOptions) -> FakeResult:
        names_run.append(Path(options.out_dir).name)
        return FakeResult()

    knob_search(TrainOptions(data_dir=str(photos), out_dir=str(out), overwrite=True),
                SearchSpace(learning_rate=(None,), unfreeze=(None,), input_size=(None,),
                            augment_strength=(1.0,)),
                budget_min=1.0, run_trial=run_trial)
    assert names_run == ['trial01_aug1']
    assert sorted(entry.name for entry in out.iterdir()) == [
        'search_results.json', 'search_results.md', 'trial02_unfreeze2', 'trial03_aug0.5',
        'trial_mine']
    assert (out / 'trial03_aug0.5' / 'notes.txt').is_file()
    assert 'kept the earlier trial' in capsys.readouterr().err


def test_a_kept_trial_a_new_trial_would_use_refuses_the_search_before_any_trial(
        tmp_path: Path, photos: Path, capsys: pytest.CaptureFixture[str]) -> None:
    precious = tmp_path / 'elsewhere' / 'precious'
    precious.mkdir(parents=True)
    for file in ('split.json', 'model.keras', 'train_summary.json'):
        (precious / file).write_text('precious')
    out = tmp_path / 'search'
    out.mkdir()
    (out / 'trial01_lr0.0005_px64_aug1').symlink_to(precious)
    mine = out / 'trial02_px96'
    mine.mkdir()
    for file in ('model.keras', 'train_summary.json', 'notes.txt'):
        (mine / file).write_text('mine')
    (out / 'search_results.json').write_text('[]')
    space = SearchSpace(learning_rate=(5e-4,), unfreeze=(None,), input_size=(64, 96),
                        augment_strength=(1.0,))
    with pytest.raises(FileExistsError) as refused:
        knob_search(TrainOptions(data_dir=str(photos), out_dir=str(out), overwrite=True),
                    space, budget_min=1.0, run_trial=lambda options: pytest.fail('trained'))
    assert 'trial01_lr0.0005_px64_aug1 (it is a link)' in str(refused.value)
    assert 'trial02_px96 (it holds more than a training run writes)' in str(refused.value)
    assert all((precious / file).read_text() == 'precious'
               for file in ('split.json', 'model.keras', 'train_summary.json'))
    assert (mine / 'model.keras').read_text() == 'mine'
    assert (out / 'search_results.json').read_text() == '[]'
    # A link the new search does not train into is kept, and said to be.
    knob_search(TrainOptions(data_dir=str(photos), out_dir=str(out), overwrite=True),
                SearchSpace(learning_rate=(None,), unfreeze=(None,), input_size=(None,),
                            augment_strength=(1.0,)),
                budget_min=1.0, run_trial=lambda options: FakeResult())
    assert 'kept the earlier trial' in capsys.readouterr().err.split('it is a link')[0]
    assert (precious / 'model.keras').read_text() == 'precious'


@pytest.mark.parametrize('init', ['missing.keras', 'not_a_model.keras'])
def test_overwrite_keeps_the_earlier_trials_when_the_new_search_cannot_start(
        tmp_path: Path, photos: Path, init: str, monkeypatch: pytest.MonkeyPatch,
        capsys: pytest.CaptureFixture[str]) -> None:
    from plant_disease_ros.training import search

    def train(options: TrainOptions) -> None:  # what the real one says, without TensorFlow
        raise ValueError(f'cannot start from {options.init}: no such file')

    monkeypatch.setattr(search, 'train', train)
    (tmp_path / 'not_a_model.keras').write_text('no zip')
    out = tmp_path / 'search'
    (out / 'trial01').mkdir(parents=True)
    for file in ('split.json', 'model.keras', 'train_summary.json'):
        (out / 'trial01' / file).write_text('x')
    (out / 'search_results.json').write_text('[]')
    assert main(['search', '--data', str(photos), '--out', str(out), '--overwrite',
                 '--init', str(tmp_path / init), '--budget-min', '1']) == 2
    assert f'cannot start from {tmp_path / init}' in capsys.readouterr().err
    assert sorted(path.name for path in (out / 'trial01').iterdir()) == [
        'model.keras', 'split.json', 'train_summary.json']
    assert (out / 'search_results.json').read_text() == '[]'
