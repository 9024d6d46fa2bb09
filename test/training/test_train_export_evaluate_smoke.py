"""Smoke test of the offline half: train -> int8 export -> evaluate on a few real photos."""

from __future__ import annotations

import json
from pathlib import Path
import shutil

from conftest import DATA_DIR
from helpers.images import LEAVES_DIR
from helpers.photo_folders import class_folder
import numpy as np
import pytest

pytest.importorskip('tensorflow')

CLASSES = ('Apple___Cedar_apple_rust', 'Potato___Late_blight', 'Tomato___healthy')
PER_CLASS = 8


@pytest.fixture(scope='module')
def tiny_dataset(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Copy a few real photos of three classes, plus one corrupt file, into a temp folder."""
    if not DATA_DIR.is_dir():
        pytest.skip(f'leaf photos not found at {DATA_DIR}')
    root = class_folder(DATA_DIR, tmp_path_factory.mktemp('leaves'), CLASSES, PER_CLASS)
    (root / CLASSES[0] / 'truncated.jpg').write_bytes(
        (DATA_DIR / CLASSES[0]).joinpath(sorted((DATA_DIR / CLASSES[0]).iterdir())[0].name)
        .read_bytes()[:10])
    return root


@pytest.fixture(scope='module')
def trained_run(tiny_dataset: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    from plant_disease_ros.cli.main import main

    out = tmp_path_factory.mktemp('run')
    status = main(['train', '--data', str(tiny_dataset), '--out', str(out), '--init', 'scratch',
                   '--epochs', '2',
                   '--input-size', '48', '--width', '0.35', '--batch-size', '8',
                   '--val-fraction', '0.2', '--test-fraction', '0.25', '--cache-dir', '',
                   '--quiet'])
    assert status == 0
    return out


def test_training_writes_split_curves_and_model(trained_run: Path) -> None:
    manifest = json.loads((trained_run / 'split.json').read_text())
    assert manifest['classes'] == list(CLASSES)
    assert manifest['skipped_unreadable'] == [f'{CLASSES[0]}/truncated.jpg']
    parts = {name: {p for p, _ in manifest['splits'][name]} for name in ('train', 'val', 'test')}
    assert not parts['test'] & (parts['train'] | parts['val'])
    assert len(parts['test']) == 3 * 2  # 25 % of 8 a class
    summary = json.loads((trained_run / 'train_summary.json').read_text())
    assert summary['epochs_run'] == 2 and 0.0 <= summary['best_val_accuracy'] <= 1.0
    assert (trained_run / 'model.keras').stat().st_size > 10_000
    assert (trained_run / 'training_curves.png').read_bytes()[:4] == b'\x89PNG'
    assert len((trained_run / 'history.csv').read_text().splitlines()) == 3


def test_export_and_model_card_write_into_the_run_by_default(
        trained_run: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """Without --out a user's run never replaces the shipped model, labels or card."""
    import hashlib

    from conftest import MODELS_DIR

    from plant_disease_ros.cli.main import main

    shipped = {name: hashlib.sha256((MODELS_DIR / name).read_bytes()).hexdigest()
               for name in ('plant_disease_int8.tflite', 'labels.txt', 'MODEL_CARD.md')}
    run = Path(shutil.copytree(trained_run, tmp_path / 'run'))
    assert main(['model-card', '--run', str(run), '--evaluation', str(tmp_path)]) != 0
    assert 'model_int8.tflite not found: export the run first' in capsys.readouterr().err
    assert main(['export', '--run', str(run), '--calibration-count', '12',
                 '--cache-dir', '']) == 0
    assert (run / 'model_int8.tflite').stat().st_size > 1000
    assert (run / 'labels.txt').read_text().split() == list(CLASSES)
    assert shipped == {name: hashlib.sha256((MODELS_DIR / name).read_bytes()).hexdigest()
                       for name in shipped}


def test_export_and_evaluate(trained_run: Path, tiny_dataset: Path, tmp_path: Path) -> None:
    from plant_disease_ros.cli.main import main
    from plant_disease_ros.core.interpreter_loader import load_interpreter

    model_path = tmp_path / 'model_int8.tflite'
    float_path = tmp_path / 'float.keras'
    assert main(['export', '--run', str(trained_run), '--out', str(model_path),
                 '--calibration-count', '12', '--cache-dir', '', '--float-out',
                 str(float_path)]) == 0
    # Saved without the optimizer's state: smaller than the training checkpoint.
    assert 0 < float_path.stat().st_size < (trained_run / 'model.keras').stat().st_size
    loaded = load_interpreter(model_path, num_threads=1)
    assert loaded.input.dtype == np.uint8 and tuple(loaded.input.shape[1:]) == (48, 48, 3)
    assert loaded.output.dtype == np.uint8 and loaded.output.shape[-1] == len(CLASSES)
    assert (loaded.input.scale, loaded.input.zero_point) == (pytest.approx(1.0), 0)
    assert (tmp_path / 'labels.txt').read_text().split() == list(CLASSES)

    out = tmp_path / 'eval'
    assert main(['evaluate', '--model', str(model_path), '--labels',
                 str(tmp_path / 'labels.txt'), '--split-manifest',
                 str(trained_run / 'split.json'), '--data', str(tiny_dataset),
                 '--keras', str(trained_run / 'model.keras'), '--out', str(out),
                 '--cache-dir', '']) == 0
    report = json.loads((out / 'evaluation.json').read_text())
    assert report['photos'] == 6
    assert 0.0 <= report['int8']['top1'] <= report['int8']['top3'] <= 1.0
    assert report['int8']['top3'] == 1.0  # three classes: the truth is always in the top 3
    assert 0.0 <= report['int8_float_agreement'] <= 1.0
    matrix = np.load(out / 'confusion_matrix.npy')
    assert matrix.sum() == 6 and matrix.sum(axis=1).tolist() == [2, 2, 2]
    assert (out / 'confusion_matrix.png').read_bytes()[:4] == b'\x89PNG'
    assert report['latency_ms']['invoke_p50'] > 0
    # A row per photo, named by its path under the photo folder; its right answers are
    # the report's top-1 and its truths the confusion matrix's rows.
    import csv

    with open(out / 'predictions.csv', newline='') as handle:
        rows = list(csv.DictReader(handle))
    test_files = [path for path, _ in json.loads(
        (trained_run / 'split.json').read_text())['splits']['test']]
    assert sorted(row['frame'] for row in rows) == sorted(test_files)
    assert {row['domain'] for row in rows} == {'photos'}
    assert sum(row['correct'] == '1' for row in rows) == report['int8']['correct']
    assert all(row['truth'] == row['frame'].split('/')[0] for row in rows)


def test_evaluate_rejects_classes_unknown_to_the_model(trained_run: Path, tmp_path: Path,
                                                        capsys: pytest.CaptureFixture) -> None:
    from plant_disease_ros.cli.main import main

    other = tmp_path / 'other'
    for name in ('Grape___healthy', 'Apple___Cedar_apple_rust'):
        (other / name).mkdir(parents=True)
        shutil.copyfile(sorted((DATA_DIR / 'Apple___Cedar_apple_rust').iterdir())[0],
                        other / name / 'a.jpg')
    model_path = tmp_path / 'm.tflite'
    assert main(['export', '--run', str(trained_run), '--out', str(model_path),
                 '--calibration-count', '6', '--cache-dir', '']) == 0
    status = main(['evaluate', '--model', str(model_path), '--labels',
                   str(tmp_path / 'labels.txt'), '--data', str(other), '--out',
                   str(tmp_path / 'e'), '--cache-dir', ''])
    assert status == 2
    assert 'not among the model labels: Grape___healthy' in capsys.readouterr().err


def test_train_reports_a_single_class_folder(tmp_path: Path,
                                             capsys: pytest.CaptureFixture) -> None:
    from plant_disease_ros.cli.main import main

    (tmp_path / 'data' / 'only').mkdir(parents=True)
    # One of the repository's own test photos: the check needs no shared data.
    shutil.copyfile(LEAVES_DIR / f'{CLASSES[0]}.jpg', tmp_path / 'data' / 'only' / 'a.jpg')
    status = main(['train', '--data', str(tmp_path / 'data'), '--out', str(tmp_path / 'o')])
    assert status == 2
    assert 'single class' in capsys.readouterr().err


def test_the_split_follows_split_seed_not_seed(tiny_dataset: Path, tmp_path: Path) -> None:
    """Another training seed keeps the same test photos; another split seed moves them."""
    from plant_disease_ros.training.train import prepare_split, TrainOptions

    def split_of(name: str, seed: int, split_seed: int) -> dict:
        options = TrainOptions(data_dir=str(tiny_dataset), out_dir=str(tmp_path / name),
                               input_size=32, val_fraction=0.25, test_fraction=0.25,
                               seed=seed, split_seed=split_seed, cache_dir=None)
        prepare_split(options)
        return json.loads((tmp_path / name / 'split.json').read_text())['splits']

    first = split_of('a', seed=1, split_seed=42)
    assert split_of('b', seed=2, split_seed=42) == first
    assert split_of('c', seed=1, split_seed=3) != first
