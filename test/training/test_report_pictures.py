"""Where the report's pictures come from, and how the page refers to them.

An evaluation folder supplies pictures only once its evaluation is shown; picture URLs
survive any page name; a self-contained page loads nothing from the network; the ids of
the page are unique; a card cannot pull files from outside the folders searched.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from training.test_report import PageLinks, report_inputs, unresolved_links  # noqa: F401
from training.test_user_run_report import POTATO, report, section, write_evaluation, write_png


@pytest.fixture
def exported_run(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """Return runs/mine: exported, with a card, no curves and no evaluation of its own."""
    monkeypatch.chdir(tmp_path)
    run = tmp_path / 'runs' / 'mine'
    run.mkdir(parents=True)
    (run / 'model_int8.tflite').write_bytes(b'TFL3' + bytes(3000))
    (run / 'labels.txt').write_text(''.join(f'{name}\n' for name in POTATO))
    (run / 'train_summary.json').write_text(json.dumps({'epochs_run': 1}))
    (run / 'MODEL_CARD.md').write_text('# Model card\n\n![curves](training_curves.png)\n\n'
                                       '![matrix](confusion_matrix.png)\n')
    return run


def test_a_rejected_evaluation_folder_supplies_no_picture(
        exported_run: Path, tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    other = tmp_path / 'other_model'
    other_model = other / 'other.tflite'
    other_model.parent.mkdir()
    other_model.write_bytes(b'TFL3 another model')
    write_evaluation(other, other_model, 0.9)
    write_png(other / 'training_curves.png', (9, 9, 9))
    states, page = report(exported_run, capsys, '--eval', str(other))
    assert states['evaluation'].startswith(f'skipped {other / "evaluation.json"}')
    assert states['training'] == 'no training_curves.png'
    files = exported_run / 'report' / 'index_files'
    assert not files.exists() or not any(files.iterdir()), list(files.iterdir())
    assert 'picture not available: curves' in section(page, 'model')
    assert 'picture not available: matrix' in section(page, 'model')
    # Shown once accepted: the evaluation's pictures (the Training section's curves are
    # still the run's alone).
    write_evaluation(other, exported_run / 'model_int8.tflite', 0.9)
    states, page = report(exported_run, capsys, '--eval', str(other))
    assert states['evaluation'] == 'ok' and states['training'] == 'no training_curves.png'
    assert 'picture not available: matrix' not in page
