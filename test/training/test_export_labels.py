"""`export` never gives another model the wrong labels: the labels.txt beside --out is checked.

The nodes read a model's labels from the labels.txt beside it. Exporting a new model into a
folder that holds another model (the shipped `models/`, a `deploy/` folder of several crops)
used to replace that labels.txt: the other model's nodes then refused to start (a wrong
count) or, worse, put the new model's disease names on the map (the same count).
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path
import shutil

from conftest import MODELS_DIR
import pytest

from plant_disease_ros.cli.main import main
from plant_disease_ros.training.export import labels_conflict

POTATO = ['Potato___Early_blight', 'Potato___Late_blight', 'Potato___healthy']


def digest(path: Path) -> str:
    """Return the sha256 of a file."""
    return hashlib.sha256(path.read_bytes()).hexdigest()


def shipped_copy(folder: Path) -> Path:
    """Copy the shipped model and its labels into ``folder``; return the model's path."""
    folder.mkdir(parents=True, exist_ok=True)
    for name in ('plant_disease_int8.tflite', 'labels.txt'):
        shutil.copyfile(MODELS_DIR / name, folder / name)
    return folder / 'plant_disease_int8.tflite'


def potato_run(folder: Path) -> Path:
    """Return a run folder whose split manifest names three Potato classes.

    Its model.keras is not a model: the check comes before the model is loaded, so a
    refused export reads nothing else.
    """
    folder.mkdir(parents=True)
    (folder / 'split.json').write_text(json.dumps({'classes': POTATO, 'root': str(folder),
                                                   'splits': {}}))
    (folder / 'model.keras').write_bytes(b'not loaded when the export is refused')
    return folder


def test_a_new_model_beside_another_models_labels_is_refused_and_nothing_changes(
        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    deploy = tmp_path / 'deploy'
    shipped = shipped_copy(deploy)
    before = {path.name: digest(path) for path in deploy.iterdir()}
    run = potato_run(tmp_path / 'run')
    assert main(['export', '--run', str(run), '--out', str(deploy / 'potato.tflite'),
                 '--cache-dir', '']) == 2
    error = capsys.readouterr().err
    assert f'{deploy / "labels.txt"} holds the 22 labels of {shipped.name}' in error
    assert 'not the 3 of this model' in error and 'a folder of its own' in error
    assert {path.name: digest(path) for path in deploy.iterdir()} == before


def test_labels_conflict_allows_the_same_labels_and_replacing_the_folders_only_model(
        tmp_path: Path) -> None:
    shipped = shipped_copy(tmp_path / 'models')
    labels = (tmp_path / 'models' / 'labels.txt').read_text().split()
    # Another export of a model with the same labels (a retrained variant) is fine.
    assert labels_conflict(tmp_path / 'models' / 'variant.tflite', labels) is None
    # Replacing the folder's only model replaces its labels with it (a new shipped model).
    assert labels_conflict(shipped, POTATO) is None
    # A second model there would keep the old labels' owner: refused.
    shutil.copyfile(shipped, tmp_path / 'models' / 'other.tflite')
    assert 'other.tflite' in (labels_conflict(shipped, POTATO) or '')
    # An empty folder, or one without labels.txt, has nothing to break.
    assert labels_conflict(tmp_path / 'new' / 'model.tflite', POTATO) is None
    # An explicit labels file elsewhere is what is checked.
    elsewhere = tmp_path / 'potato_labels.txt'
    elsewhere.write_text('\n'.join(POTATO) + '\n')
    assert labels_conflict(tmp_path / 'models' / 'x.tflite', POTATO, elsewhere) is None
