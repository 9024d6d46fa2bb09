"""A normal evaluation (a photo folder, no ``--field-split``) prints top-1 with its interval.

The README says ``evaluate`` prints a Wilson 95 % interval beside each top-1: a user's
evaluation of their own photo folder gets it too, and ``evaluation.json`` records it as
a field evaluation records each domain's (``top1_interval``).
"""

from __future__ import annotations

import csv
import hashlib
import json
from pathlib import Path
import re
import shutil

from conftest import TEST_IMAGES_DIR
from helpers.shipped_model import LABELS_PATH, MODEL_PATH, require_shipped_model
import pytest

from plant_disease_ros.cli.main import main
from plant_disease_ros.training.evaluate import format_report
from plant_disease_ros.training.metrics import wilson_interval

CLASSES = ('Apple___healthy', 'Potato___Early_blight', 'Tomato___Late_blight')


def one_photo_a_class(data: Path) -> Path:
    """Return ``data`` holding one test photo, ``one.jpg``, in a folder per class of CLASSES."""
    for name in CLASSES:
        (data / name).mkdir(parents=True)
        shutil.copy(TEST_IMAGES_DIR / 'leaves' / f'{name}.jpg', data / name / 'one.jpg')
    return data


def test_top1_is_printed_and_recorded_with_its_wilson_interval(
        tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    require_shipped_model()
    data = one_photo_a_class(tmp_path / 'photos')
    out = tmp_path / 'eval'
    assert main(['evaluate', '--model', str(MODEL_PATH), '--labels', str(LABELS_PATH),
                 '--data', str(data), '--out', str(out), '--cache-dir', '',
                 '--threads', '1']) == 0
    report = json.loads((out / 'evaluation.json').read_text())
    correct = round(report['int8']['top1'] * report['photos'])
    low, high = wilson_interval(correct, 3)
    assert report['int8']['top1_interval'] == pytest.approx([low, high])
    printed = capsys.readouterr().out
    line = next(line for line in printed.splitlines() if line.startswith('int8  top-1'))
    assert re.search(rf'top-1 {100 * report["int8"]["top1"]:.2f} % '
                     rf'\(95 % {100 * low:.1f}–{100 * high:.1f}\)', line), line
    assert "Wilson 95 % interval of the model's top-1 on photos of this kind" in printed


def test_the_model_is_recorded_by_its_resolved_path(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Typed relative, recorded absolute: compare then sees one model in two evaluations."""
    require_shipped_model()
    data = tmp_path / 'photos' / CLASSES[0]
    data.mkdir(parents=True)
    shutil.copy(TEST_IMAGES_DIR / 'leaves' / f'{CLASSES[0]}.jpg', data / 'one.jpg')
    shutil.copy(MODEL_PATH, tmp_path / 'model_int8.tflite')
    monkeypatch.chdir(tmp_path)
    assert main(['evaluate', '--model', 'model_int8.tflite', '--labels', str(LABELS_PATH),
                 '--data', 'photos', '--out', 'eval', '--cache-dir', '', '--threads',
                 '1']) == 0
    report = json.loads((tmp_path / 'eval' / 'evaluation.json').read_text())
    assert report['model'] == str((tmp_path / 'model_int8.tflite').resolve())


def test_the_split_manifest_is_recorded_and_one_the_run_beside_did_not_train_with_refused(
        tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    """model-card tells the run's own split from another by the recorded sha256."""
    require_shipped_model()
    data = one_photo_a_class(tmp_path / 'photos')
    run = tmp_path / 'run'
    run.mkdir()
    test = [[f'{name}/one.jpg', number] for number, name in enumerate(CLASSES)]
    (run / 'split.json').write_text(json.dumps({
        'version': 1, 'root': str(data), 'seed': 42, 'fractions': {'val': 0.2, 'test': 0.2},
        'classes': list(CLASSES), 'splits': {'train': [], 'val': [], 'test': test}}))
    digest = hashlib.sha256((run / 'split.json').read_bytes()).hexdigest()
    (run / 'train_summary.json').write_text(json.dumps({'split_sha256': digest}))
    command = ['evaluate', '--model', str(MODEL_PATH), '--labels', str(LABELS_PATH),
               '--split-manifest', str(run / 'split.json'), '--out', str(tmp_path / 'eval'),
               '--cache-dir', '', '--threads', '1']
    assert main(command) == 0
    assert 'is not the split.json' not in capsys.readouterr().err
    report = json.loads((tmp_path / 'eval' / 'evaluation.json').read_text())
    assert report['split_manifest'] == {'path': str((run / 'split.json').resolve()),
                                        'sha256': digest}
    # A later run into the folder, cut short, wrote another split.json beside the model:
    # for the run's own model refused, before anything is written; a model of another
    # folder (trained on the same split) is evaluated with a warning.
    (run / 'train_summary.json').write_text(json.dumps({'split_sha256': 'f' * 64}))
    assert main([*command[:-6], '--out', str(tmp_path / 'other'), *command[-4:]]) == 0
    assert 'is not the split.json' in capsys.readouterr().err
    shutil.copy(MODEL_PATH, run / 'model_int8.tflite')
    command[2] = str(run / 'model_int8.tflite')
    assert main([*command[:-6], '--out', str(tmp_path / 'again'), *command[-4:]]) == 2
    error = capsys.readouterr().err
    assert error.count('\n') == 1
    assert (f'{(run / "split.json").resolve()} is not the split '
            f'{(run / "train_summary.json").resolve()} was trained with') in error
    assert not (tmp_path / 'again').exists()


def test_a_report_written_before_the_interval_still_prints_one() -> None:
    report = {'photos': 40, 'split': 'test', 'backend': 'LiteRT',
              'int8': {'top1': 0.75, 'top3': 1.0, 'macro_f1': 0.7},
              'float': {'top1': 1.0, 'top3': 1.0}, 'int8_float_agreement': 0.75,
              'latency_ms': {'invoke_p50': None}, 'per_class': [], 'most_confused': []}
    text = format_report(report)
    assert 'int8  top-1 75.00 % (95 % 59.8–85.8)' in text
    assert 'float top-1 100.00 % (95 % 91.2–100.0)' in text


def test_a_folder_of_one_class_is_evaluated_and_an_unknown_class_named(
        tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    require_shipped_model()
    data = tmp_path / 'photos'
    (data / 'Tomato___healthy').mkdir(parents=True)
    for number in range(2):
        shutil.copy(TEST_IMAGES_DIR / 'leaves' / 'Tomato___healthy.jpg',
                    data / 'Tomato___healthy' / f'{number}.jpg')
    out = tmp_path / 'eval'
    command = ['evaluate', '--model', str(MODEL_PATH), '--labels', str(LABELS_PATH),
               '--data', str(data), '--out', str(out), '--cache-dir', '', '--threads', '1']
    assert main(command) == 0, capsys.readouterr().err
    report = json.loads((out / 'evaluation.json').read_text())
    assert report['photos'] == 2
    support = {row['class']: row['support'] for row in report['per_class']}
    assert support['Tomato___healthy'] == 2 and sum(support.values()) == 2
    # A class the model does not know is still refused, by name.
    (data / 'Tomato___healthy').rename(data / 'Tomato___unknown')
    assert main(command) == 2
    assert capsys.readouterr().err.strip().endswith(
        'dataset classes not among the model labels: Tomato___unknown')


def test_only_classes_with_photos_or_predictions_are_listed(
        tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    """Every model label was listed, one with no photo and no prediction as 0.000 rows."""
    require_shipped_model()
    data = one_photo_a_class(tmp_path / 'photos')
    out = tmp_path / 'eval'
    assert main(['evaluate', '--model', str(MODEL_PATH), '--labels', str(LABELS_PATH),
                 '--data', str(data), '--out', str(out), '--cache-dir', '', '--threads', '1',
                 '--no-vegetation-gate']) == 0
    report = json.loads((out / 'evaluation.json').read_text())
    with open(out / 'predictions.csv', newline='') as handle:
        predicted = {row['label'] for row in csv.DictReader(handle)}
    listed = [row['class'] for row in report['per_class']]
    assert set(listed) == set(CLASSES) | predicted
    assert len(listed) < len(LABELS_PATH.read_text().split())
    with open(out / 'per_class.csv', newline='') as handle:
        assert [row['class'] for row in csv.DictReader(handle)] == listed
    table = capsys.readouterr().out
    for label in set(LABELS_PATH.read_text().split()) - set(listed):
        assert f'\n{label} ' not in table


def test_the_vegetation_gate_is_recorded(tmp_path: Path) -> None:
    """compare names a difference in it (two evaluations differing only in the gate)."""
    require_shipped_model()
    data = one_photo_a_class(tmp_path / 'photos')
    command = ['evaluate', '--model', str(MODEL_PATH), '--labels', str(LABELS_PATH),
               '--data', str(data), '--cache-dir', '', '--threads', '1']
    assert main([*command, '--out', str(tmp_path / 'on')]) == 0
    assert main([*command, '--out', str(tmp_path / 'off'), '--no-vegetation-gate']) == 0
    gates = [json.loads((tmp_path / name / 'evaluation.json').read_text())['vegetation_gate']
             for name in ('on', 'off')]
    assert gates == [True, False]


def test_a_missing_keras_model_fails_before_any_photo_is_scored(
        tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    require_shipped_model()
    data = one_photo_a_class(tmp_path / 'photos')
    missing = tmp_path / 'no_such.keras'
    assert main(['evaluate', '--model', str(MODEL_PATH), '--labels', str(LABELS_PATH),
                 '--data', str(data), '--out', str(tmp_path / 'eval'), '--cache-dir', '',
                 '--threads', '1', '--keras', str(missing)]) == 2
    error = capsys.readouterr().err
    assert error.strip().endswith(f'float Keras model {missing} (--keras) not found')
    assert 'int8 inference' not in error
    assert not (tmp_path / 'eval').exists()


def test_the_keras_model_of_the_float_figures_is_recorded(tmp_path: Path) -> None:
    """model-card tells the run's own float model from another by it."""
    require_shipped_model()
    keras = MODEL_PATH.parent / 'plant_disease_float.keras'
    if not keras.is_file():
        pytest.skip(f'{keras} not present')
    pytest.importorskip('tensorflow')
    data = one_photo_a_class(tmp_path / 'photos')
    command = ['evaluate', '--model', str(MODEL_PATH), '--labels', str(LABELS_PATH),
               '--data', str(data), '--cache-dir', '', '--threads', '1']
    assert main([*command, '--keras', str(keras), '--out', str(tmp_path / 'eval')]) == 0
    report = json.loads((tmp_path / 'eval' / 'evaluation.json').read_text())
    assert report['keras_model'] == {
        'path': str(keras.resolve()), 'sha256': hashlib.sha256(keras.read_bytes()).hexdigest()}
    assert 'top1' in report['float']
    assert main([*command, '--out', str(tmp_path / 'int8')]) == 0
    assert json.loads((tmp_path / 'int8' / 'evaluation.json').read_text())['keras_model'] \
        is None
