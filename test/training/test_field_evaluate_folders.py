"""``evaluate --field-split``: where the photo folders of the manifests are looked for.

The shipped manifests name their folders relative to the repository root
(``../shared/data/...``). Run from another folder, every domain must still be found (or
the missing one named), never scored on no photos; ``--field-data`` and ``--negatives``
replace the manifest's folders. A tiny untrained uint8 model and copies of the test
leaves, laid out as the repository and its data are.
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path
import shutil

from conftest import TEST_IMAGES_DIR
from helpers.tiny_model import build_tiny_model
import pytest

from plant_disease_ros.cli.main import main

LABELS = ['Apple___Apple_scab', 'Apple___healthy', 'no_leaf']
PER_CLASS = 4


def photo_folder(folder: Path, source: Path) -> None:
    """Fill ``folder`` with PER_CLASS copies of one real photo."""
    folder.mkdir(parents=True)
    for number in range(PER_CLASS):
        shutil.copyfile(source, folder / f'{number}.jpg')


@pytest.fixture(scope='module')
def model(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Return a tiny 3-label uint8 model with its labels.txt beside it."""
    pytest.importorskip('tensorflow')
    path = build_tiny_model(tmp_path_factory.mktemp('model') / 'model_int8.tflite',
                            num_classes=len(LABELS), input_size=32)
    (path.parent / 'labels.txt').write_text(''.join(f'{name}\n' for name in LABELS))
    return path


@pytest.fixture
def world(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """Lay out repo/models/{split,field_split}.json and shared/data/...; return repo."""
    from plant_disease_ros.training.dataset import scan_dataset, split_files, write_manifest
    from plant_disease_ros.training.field_data import (
        DomainSource,
        make_field_split,
        write_field_split,
    )

    leaves = TEST_IMAGES_DIR / 'leaves'
    data = tmp_path / 'shared' / 'data'
    for name in LABELS[:2]:
        photo_folder(data / 'plantvillage' / name, leaves / f'{name}.jpg')
    photo_folder(data / 'field' / 'plantdoc' / LABELS[0], leaves / f'{LABELS[0]}.jpg')
    photo_folder(data / 'negatives' / 'soil', leaves / 'Potato___healthy.jpg')
    models = tmp_path / 'repo' / 'models'
    models.mkdir(parents=True)
    index = scan_dataset(data / 'plantvillage')
    write_manifest(models / 'split.json', split_files(index.files, index.classes),
                   index.root)
    # Relative to the repository root, as the shipped manifests are; before the field
    # split records the lab split's sha256.
    lab = json.loads((models / 'split.json').read_text())
    lab['root'] = '../shared/data/plantvillage'
    (models / 'split.json').write_text(json.dumps(lab))
    manifest = make_field_split(
        [DomainSource('plantdoc', data / 'field' / 'plantdoc'),
         DomainSource('negatives', data / 'negatives', negative=True)],
        LABELS, models / 'split.json')
    manifest['domains']['plantdoc']['root'] = '../shared/data/field/plantdoc'
    manifest['domains']['negatives']['root'] = '../shared/data/negatives'
    write_field_split(models / 'field_split.json', manifest)
    # Not a sibling of repo/: ../shared from there is no folder either.
    elsewhere = tmp_path / 'elsewhere' / 'work'
    elsewhere.mkdir(parents=True)
    monkeypatch.chdir(elsewhere)
    return tmp_path / 'repo'


def evaluate(model: Path, repo: Path, out: Path, *options: str) -> int:
    return main(['evaluate', '--model', str(model), '--field-split',
                 str(repo / 'models' / 'field_split.json'), '--synthetic-per-kind', '1',
                 '--threads', '1', '--cache-dir', '', '--out', str(out), *options])


def photos_per_domain(out: Path) -> dict[str, int]:
    report = json.loads((out / 'evaluation.json').read_text())
    return {name: domain['photos'] for name, domain in report['domains'].items()}


def test_relative_folders_are_found_from_another_working_directory(
        model: Path, world: Path, tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    out = tmp_path / 'eval'
    assert evaluate(model, world, out) == 0, capsys.readouterr().err
    photos = photos_per_domain(out)
    assert photos['lab'] >= 2 and photos['plantdoc'] >= 1 and photos['negatives'] >= 1


def test_a_missing_domain_folder_is_named_and_can_be_given(
        model: Path, world: Path, tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    moved = tmp_path / 'moved'
    shutil.move(tmp_path / 'shared' / 'data' / 'field', moved / 'field')
    out = tmp_path / 'eval'
    lab = tmp_path / 'shared' / 'data' / 'plantvillage'
    assert evaluate(model, world, out, '--data', str(lab)) == 2
    error = capsys.readouterr().err.strip().splitlines()[-1]
    assert 'photo folder ../shared/data/field/plantdoc of domain plantdoc' in error
    assert '--field-data DIR holding plantdoc/' in error
    assert not (out / 'evaluation.json').exists()

    assert evaluate(model, world, out, '--field-data', str(moved / 'field')) == 0
    assert photos_per_domain(out)['plantdoc'] >= 1


def test_negatives_replaces_the_folder_of_the_non_leaf_scenes(
        model: Path, world: Path, tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    out = tmp_path / 'eval'
    missing = tmp_path / 'no_such_folder'
    assert evaluate(model, world, out, '--negatives', str(missing)) == 2
    error = capsys.readouterr().err.strip().splitlines()[-1]
    assert f'photo folder {missing} of domain negatives (the folder --negatives)' in error
    moved = tmp_path / 'scenes'
    shutil.move(tmp_path / 'shared' / 'data' / 'negatives', moved)
    assert evaluate(model, world, out, '--negatives', str(moved)) == 0
    assert photos_per_domain(out)['negatives'] >= 1


def test_field_folders_need_a_field_split(model: Path, tmp_path: Path,
                                          capsys: pytest.CaptureFixture) -> None:
    code = main(['evaluate', '--model', str(model), '--data', str(tmp_path),
                 '--field-data', str(tmp_path), '--out', str(tmp_path / 'eval')])
    assert code == 2
    assert 'they need --field-split' in capsys.readouterr().err


def test_per_class_is_refused_for_a_field_split(model: Path, tmp_path: Path,
                                                capsys: pytest.CaptureFixture) -> None:
    """--per-class was ignored with --field-split (every photo scored, no word of it)."""
    code = main(['evaluate', '--model', str(model), '--field-split', str(tmp_path / 'x.json'),
                 '--per-class', '1', '--out', str(tmp_path / 'eval')])
    assert code == 2
    assert '--per-class picks photos of a --data or --split-manifest evaluation' in \
        capsys.readouterr().err
    assert not (tmp_path / 'eval').exists()


def test_unreadable_photos_are_named_and_recorded_per_domain(
        model: Path, world: Path, tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    """They were left out without a word: fewer lab photos, and nothing said which."""
    lab = json.loads((world / 'models' / 'split.json').read_text())
    # The training part: the largest of these tiny splits.
    missing, broken = (path for path, _ in lab['splits']['train'][:2])
    photos = tmp_path / 'shared' / 'data' / 'plantvillage'
    (photos / missing).unlink()
    (photos / broken).write_bytes(b'not a photo')
    field = json.loads((world / 'models' / 'field_split.json').read_text())
    scenes = [path for path, _ in field['domains']['negatives']['splits']['train']]
    (tmp_path / 'shared' / 'data' / 'negatives' / scenes[0]).write_bytes(b'')
    out = tmp_path / 'eval'
    assert evaluate(model, world, out, '--split', 'train') == 0, capsys.readouterr().err
    error = capsys.readouterr().err
    assert f'lab: skipped 2 unreadable photo(s) (all listed with the reason in {out}' in error
    assert 'negatives: skipped 1 unreadable photo(s)' in error
    report = json.loads((out / 'evaluation.json').read_text())
    domains = report['domains']
    assert sorted(domains['lab']['unreadable']) == sorted([missing, broken])
    assert set(domains['lab']['unreadable_reasons']) == {missing, broken}
    assert all(reason for reason in domains['lab']['unreadable_reasons'].values())
    assert domains['negatives']['unreadable'] == [scenes[0]]
    assert domains['plantdoc']['unreadable'] == []
    assert domains['lab']['photos'] == len(lab['splits']['train']) - 2


def test_a_lab_split_the_field_split_was_not_made_with_is_refused(
        model: Path, world: Path, tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    """Its test part may be the model's training photos: scored as test photos before."""
    split = world / 'models' / 'split.json'
    other = json.loads(split.read_text())
    other['splits']['test'], other['splits']['train'] = (other['splits']['train'],
                                                         other['splits']['test'])
    other['root'] = str(tmp_path / 'shared' / 'data' / 'plantvillage')
    (tmp_path / 'other.json').write_text(json.dumps(other))
    out = tmp_path / 'eval'
    assert evaluate(model, world, out, '--split-manifest', str(tmp_path / 'other.json')) == 2
    error = capsys.readouterr().err.strip().splitlines()
    assert len(error) == 1, error
    assert f'lab split {tmp_path / "other.json"} (sha256 ' in error[0]
    assert f"is not the split.json that {world / 'models' / 'field_split.json'} was made " \
        'with' in error[0]
    assert not (out / 'evaluation.json').exists()

    # The split it was made with is accepted and recorded.
    assert evaluate(model, world, out, '--split-manifest', str(split)) == 0
    record = json.loads((out / 'evaluation.json').read_text())['lab_split']
    assert record == {'path': str(split.resolve()),
                      'sha256': hashlib.sha256(split.read_bytes()).hexdigest()}


def folder_bytes(folder: Path) -> dict[str, bytes]:
    """Return every entry of ``folder`` (hidden ones too) by name, with its bytes."""
    return {path.name: path.read_bytes() if path.is_file() else b'<folder>'
            for path in folder.iterdir()}


def test_a_missing_keras_model_fails_before_any_scoring(
        model: Path, world: Path, tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    """The new predictions.csv and pictures were written beside the old evaluation.json."""
    out = tmp_path / 'eval'
    assert evaluate(model, world, out) == 0, capsys.readouterr().err
    before = folder_bytes(out)
    capsys.readouterr()
    missing = tmp_path / 'no_such.keras'
    assert evaluate(model, world, out, '--score-threshold', '0.9', '--keras',
                    str(missing)) == 2
    error = capsys.readouterr().err
    assert f'float Keras model {missing} (--keras) not found' in error
    assert 'frames scored' not in error
    assert folder_bytes(out) == before


def test_an_evaluation_that_fails_late_leaves_the_earlier_one_whole(
        model: Path, world: Path, tmp_path: Path, capsys: pytest.CaptureFixture,
        monkeypatch: pytest.MonkeyPatch) -> None:
    from plant_disease_ros.training import field_evaluate

    out = tmp_path / 'eval'
    assert evaluate(model, world, out) == 0, capsys.readouterr().err
    before = folder_bytes(out)
    assert 'evaluation.json' in before and 'predictions.csv' in before

    def full_disk(*args: object, **kwargs: object) -> None:
        raise OSError('No space left on device')

    # The last picture: every other file of the evaluation is written by then.
    plot_threshold_sweep = field_evaluate.plot_threshold_sweep
    monkeypatch.setattr(field_evaluate, 'plot_threshold_sweep', full_disk)
    assert evaluate(model, world, out, '--score-threshold', '0.9') == 2
    assert 'No space left on device' in capsys.readouterr().err
    assert folder_bytes(out) == before  # no new file, no staging folder left

    monkeypatch.setattr(field_evaluate, 'plot_threshold_sweep', plot_threshold_sweep)
    assert evaluate(model, world, out, '--score-threshold', '0.9') == 0
    assert json.loads((out / 'evaluation.json').read_text())['score_threshold'] == 0.9
    assert sorted(folder_bytes(out)) == sorted(before)


def test_the_vegetation_gate_is_recorded(model: Path, world: Path, tmp_path: Path,
                                         capsys: pytest.CaptureFixture) -> None:
    """compare names a difference in it; photos shrunk to the input pass no gate (None)."""
    out = tmp_path / 'eval'
    for options, gate in (((), None), (('--frames', '64x48'), True),
                          (('--frames', '64x48', '--no-vegetation-gate'), False)):
        assert evaluate(model, world, out, *options) == 0, capsys.readouterr().err
        assert json.loads((out / 'evaluation.json').read_text())['vegetation_gate'] is gate
