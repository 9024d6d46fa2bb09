"""``report --run RUN`` after ``train --overwrite`` into RUN, before exporting again.

The earlier run's export, card, evaluation and explanations stay in the folder; the new
``train_summary.json`` lists them under ``replaced_outputs`` (``model-card`` refuses
them): the report must not show them as this run's model's, and says how to redo them.
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import pytest

from plant_disease_ros.training.train import earlier_derived_hashes
from training.test_user_run_report import (
    POTATO,
    report,
    section,
    write_evaluation,
    write_explanations,
    write_png,
)


@pytest.fixture
def retrained_run(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """Return runs/mine: exported, evaluated, explained, then trained again over."""
    monkeypatch.chdir(tmp_path)
    run = tmp_path / 'runs' / 'mine'
    run.mkdir(parents=True)
    old_export = run / 'model_int8.tflite'
    old_export.write_bytes(b'TFL3' + bytes(3000))
    (run / 'labels.txt').write_text(''.join(f'{name}\n' for name in POTATO))
    (run / 'MODEL_CARD.md').write_text('# Model card: model_int8.tflite\n\nOld potato card.\n'
                                       '\n![curves](training_curves.png)\n')
    write_evaluation(run / 'eval', old_export, 0.8765)
    write_explanations(run / 'explanations', old_export, 'old_explain.png', POTATO[0])
    replaced = earlier_derived_hashes(run)
    assert sorted(replaced) == ['MODEL_CARD.md', 'eval/evaluation.json', 'model_int8.tflite']
    # The new training: a new model.keras, summary and curves; the rest stays.
    (run / 'model.keras').write_bytes(b'new keras model')
    write_png(run / 'training_curves.png', (1, 2, 3))
    (run / 'train_summary.json').write_text(json.dumps({
        'model': {'architecture': 'mobilenet_v2', 'width': 0.35, 'input_size': 96},
        'epochs_run': 1, 'best_val_accuracy': 0.5, 'train_seconds': 6, 'parameters': 9,
        'classes': POTATO,
        'model_sha256': hashlib.sha256(b'new keras model').hexdigest(),
        'replaced_outputs': replaced}))
    return run


def test_the_earlier_models_outputs_are_not_shown_as_the_runs(
        retrained_run: Path, capsys: pytest.CaptureFixture) -> None:
    states, page = report(retrained_run, capsys)
    model = section(page, 'model')
    assert 'Old potato card' not in page
    assert 'replaced_outputs' in model and 'plant-disease export --run' in model
    assert states['evaluation'].startswith(f'skipped {retrained_run / "eval"}')
    assert 'replaced_outputs' in states['evaluation']
    assert '87.65' not in page
    assert states['explanations'].startswith('skipped')
    assert 'old_explain.png' not in page
    # The training section is the new run's.
    assert states['training'] == 'ok'


def test_the_earlier_export_named_as_models_is_refused(
        retrained_run: Path, capsys: pytest.CaptureFixture) -> None:
    states, page = report(retrained_run, capsys, '--models', str(retrained_run))
    assert states['model'].startswith(f'skipped {retrained_run / "model_int8.tflite"}')
    assert 'Old potato card' not in page
    assert 'replaced_outputs' in section(page, 'model')
    assert states['evaluation'].startswith('skipped') and '87.65' not in page


def test_an_export_of_the_new_model_is_shown(retrained_run: Path,
                                             capsys: pytest.CaptureFixture) -> None:
    (retrained_run / 'model_int8.tflite').write_bytes(b'TFL3' + bytes(2000))
    (retrained_run / 'MODEL_CARD.md').write_text('# Model card\n\nNew potato card.\n')
    write_evaluation(retrained_run / 'eval', retrained_run / 'model_int8.tflite', 0.4321)
    states, page = report(retrained_run, capsys)
    assert states['model'] == 'ok' and 'New potato card' in page
    assert states['evaluation'] == 'ok' and '43.21 %' in page
    assert 'replaced_outputs' not in section(page, 'model')


def test_a_run_without_an_export_says_the_shipped_model_is_shown(
        retrained_run: Path, capsys: pytest.CaptureFixture) -> None:
    for name in ('model_int8.tflite', 'MODEL_CARD.md', 'labels.txt'):
        (retrained_run / name).unlink()
    states, page = report(retrained_run, capsys, '--models', str(Path.cwd() / 'nothing'))
    model = section(page, 'model')
    assert 'has no export' in model and 'not the run' in model
    assert f'plant-disease export --run {retrained_run}' in model




def test_a_new_export_beside_the_earlier_card_does_not_show_that_card(
        retrained_run: Path, capsys: pytest.CaptureFixture) -> None:
    """Exported again, model-card not run again: the card still describes the earlier
    model (it was shown as this one's, 'ok'); the page says so and how to write it."""
    (retrained_run / 'model_int8.tflite').write_bytes(b'TFL3' + bytes(2000))
    states, page = report(retrained_run, capsys)
    model = section(page, 'model')
    assert 'Old potato card' not in page
    assert states['model'] == (f'card skipped {retrained_run / "MODEL_CARD.md"}: an earlier '
                               'model (replaced_outputs)')
    assert f'plant-disease model-card --run {retrained_run}' in model
    assert 'model_int8.tflite' in model  # the new export itself is shown
