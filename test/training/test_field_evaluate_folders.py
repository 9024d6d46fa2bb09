"""``evaluate --field-split``: where the photo folders of the manifests are looked for.

The shipped manifests name their folders relative to the repository root
(``../shared/data/...``). Run from another folder, every domain must still be found (or
the missing one named), never scored on no photos; ``--field-data`` and ``--negatives``
replace the manifest's folders. A tiny untrained uint8 model and copies of the test
leaves, laid out as the repository and its data are.
"""

from __future__ import annotations

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
    manifest = make_field_split(
        [DomainSource('plantdoc', data / 'field' / 'plantdoc'),
         DomainSource('negatives', data / 'negatives', negative=True)],
        LABELS, models / 'split.json')
    # Relative to the repository root, as the shipped manifests are.
    manifest['domains']['plantdoc']['root'] = '../shared/data/field/plantdoc'
    manifest['domains']['negatives']['root'] = '../shared/data/negatives'
    write_field_split(models / 'field_split.json', manifest)
    lab = json.loads((models / 'split.json').read_text())
    lab['root'] = '../shared/data/plantvillage'
    (models / 'split.json').write_text(json.dumps(lab))
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
