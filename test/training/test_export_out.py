"""``export --out``: a folder is refused before any work; a model that cannot be written
leaves the folder's labels.txt as it was (the model is written before its labels).

A tiny untrained 3-class Keras run on copies of the test leaves; the conversion is real.
"""

from __future__ import annotations

import json
from pathlib import Path
import shutil

from helpers.photo_folders import leaf_copies
import pytest

from plant_disease_ros.cli.main import main

POTATO = ['Potato___Early_blight', 'Potato___Late_blight', 'Potato___healthy']


@pytest.fixture(scope='module')
def run(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Return a run folder: model.keras (3 classes, 32 px) and split.json of real photos."""
    tf = pytest.importorskip('tensorflow')
    from plant_disease_ros.training.dataset import scan_dataset, split_files, write_manifest

    root = tmp_path_factory.mktemp('export_run')
    leaf_copies(root / 'photos', POTATO, 3)
    run = root / 'run'
    run.mkdir()
    index = scan_dataset(root / 'photos')
    write_manifest(run / 'split.json', split_files(index.files, index.classes), index.root)
    keras = tf.keras
    keras.utils.set_random_seed(1)
    inputs = keras.Input(shape=(32, 32, 3))
    x = keras.layers.Rescaling(1.0 / 127.5, offset=-1.0)(inputs)
    x = keras.layers.Conv2D(4, 3, strides=4, activation='relu')(x)
    x = keras.layers.GlobalAveragePooling2D()(x)
    outputs = keras.layers.Dense(len(POTATO), activation='softmax')(x)
    keras.Model(inputs, outputs).save(run / 'model.keras')
    return run


def export(run: Path, out: Path, *options: str) -> int:
    return main(['export', '--run', str(run), '--out', str(out), '--calibration-count', '3',
                 '--cache-dir', '', *options])


def unloadable_run(run: Path) -> Path:
    """Make a run folder whose model.keras cannot load: a check must refuse before."""
    run.mkdir()
    (run / 'split.json').write_text(json.dumps({'classes': POTATO, 'root': str(run),
                                                'splits': {}}))
    (run / 'model.keras').write_bytes(b'never loaded: the check comes first')
    return run


def test_a_folder_as_out_is_refused_before_anything_is_written(
        tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    run = unloadable_run(tmp_path / 'run')
    deploy = tmp_path / 'deploy'
    deploy.mkdir()
    assert export(run, deploy) == 2
    error = capsys.readouterr().err.strip().splitlines()[-1]
    assert f'--out {deploy} is a directory; name the model file to write, e.g. ' \
        f'{deploy / "model_int8.tflite"}' in error
    assert sorted(path.name for path in tmp_path.iterdir()) == ['deploy', 'run']
    assert list(deploy.iterdir()) == []
    # --calibrate rewrites the run's model.keras: the check comes before it too.
    (run / 'field_split.json').write_text('{}')
    assert export(run, deploy, '--calibrate') == 2
    assert (run / 'model.keras').read_bytes() == b'never loaded: the check comes first'


def test_a_folder_not_there_yet_as_out_is_refused_by_its_trailing_slash(
        tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    """Path('deploy/') drops the slash: the model would be a file named deploy."""
    run = unloadable_run(tmp_path / 'run')
    deploy = f'{tmp_path / "deploy"}/'
    assert main(['export', '--run', str(run), '--out', deploy, '--cache-dir', '']) == 2
    error = capsys.readouterr().err
    assert error.count('\n') == 1
    assert f'--out {deploy} names a folder (it ends in /); name the model file to write, ' \
        f'e.g. {tmp_path / "deploy" / "model_int8.tflite"}' in error
    assert sorted(path.name for path in tmp_path.iterdir()) == ['run']
    assert sorted(path.name for path in run.iterdir()) == ['model.keras', 'split.json']


def test_a_model_that_cannot_be_written_leaves_the_old_labels(
        run: Path, tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    deploy = tmp_path / 'deploy'
    deploy.mkdir()
    # A name the file system takes (247 bytes), but not the temporary name beside it that
    # the atomic write needs (.<stem>.<pid>.<8 hex>.tmp.tflite: 262 bytes and more, whatever
    # the process id; with a 230-byte stem a 3-digit pid made exactly 255, which fits):
    # the model's write fails, for real.
    model = deploy / ('m' * 240 + '.tflite')
    model.write_bytes(b'the old model')
    (deploy / 'labels.txt').write_text('Old___one\nOld___two\n')
    assert export(run, model) == 2
    assert 'File name too long' in capsys.readouterr().err
    assert model.read_bytes() == b'the old model'
    assert (deploy / 'labels.txt').read_text() == 'Old___one\nOld___two\n'
    # A name it can write: model and labels both.
    shutil.rmtree(deploy)
    assert export(run, deploy / 'model_int8.tflite') == 0
    assert (deploy / 'labels.txt').read_text().split() == POTATO
    assert (deploy / 'model_int8.tflite').read_bytes()[4:8] == b'TFL3'


def test_calibrate_by_without_calibrate_is_refused(run: Path, tmp_path: Path,
                                                   capsys: pytest.CaptureFixture) -> None:
    """Not ignored: the export would go on with the run's own calibration."""
    assert export(run, tmp_path / 'm.tflite', '--calibrate-by', 'nll') == 2
    error = capsys.readouterr().err.strip().splitlines()[-1]
    assert error.endswith('--calibrate-by chooses how --calibrate refits the temperature: '
                          "add --calibrate (a plain export keeps the run's calibration)")
    assert list(tmp_path.iterdir()) == []


@pytest.mark.parametrize('count', ['0', '-5'])
def test_a_calibration_count_below_one_is_refused(
        tmp_path: Path, count: str, capsys: pytest.CaptureFixture) -> None:
    with pytest.raises(SystemExit) as exited:
        main(['export', '--run', str(tmp_path), '--calibration-count', count])
    assert exited.value.code == 2
    assert capsys.readouterr().err.splitlines()[-1] == (
        f'plant-disease export: error: argument --calibration-count: must be >= 1, got {count}')
    from plant_disease_ros.training.export import export_int8

    with pytest.raises(ValueError, match=f'calibration count must be >= 1, got {count}'):
        export_int8(tmp_path / 'model.keras', tmp_path / 'split.json',
                    tmp_path / 'model_int8.tflite', calibration_count=int(count))
    assert list(tmp_path.iterdir()) == []
