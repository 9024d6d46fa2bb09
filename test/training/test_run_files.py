"""A run folder's model.keras and split.json are paired only when they are the summary's own.

``train --overwrite`` writes the new run's split.json before it trains; cut short, it leaves
that split beside the earlier run's model.keras. ``export`` (labels and calibration photos
from the split) and ``evaluate --split-manifest RUN/split.json`` refuse the pair, by the
sha256 that ``train_summary.json`` records, before anything is loaded or written. No
training here: the model file is never read.
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import pytest

from plant_disease_ros.cli.main import main
from plant_disease_ros.training.evaluate import manifest_record
from plant_disease_ros.training.train import interrupted_message

EARLIER = ['Apple___Apple_scab', 'Apple___healthy', 'Tomato___healthy']
LATER = ['Potato___Early_blight', 'Potato___healthy', 'Strawberry___healthy']


def sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def manifest(classes: list[str], root: Path) -> str:
    return json.dumps({'version': 1, 'root': str(root), 'seed': 42,
                       'fractions': {'val': 0.2, 'test': 0.2}, 'classes': classes,
                       'splits': {'train': [], 'val': [], 'test': []}})


def earlier_run(run: Path) -> Path:
    """Return ``run``: a finished run's model, split and summary (with both sha256)."""
    run.mkdir()
    (run / 'model.keras').write_bytes(b'the earlier model, never loaded')
    (run / 'split.json').write_text(manifest(EARLIER, run))
    (run / 'train_summary.json').write_text(json.dumps({
        'classes': EARLIER, 'model_sha256': sha256(run / 'model.keras'),
        'split_sha256': sha256(run / 'split.json')}))
    return run


def test_export_refuses_the_split_of_a_later_run_cut_short(
        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    run = earlier_run(tmp_path / 'run')
    # train --overwrite, interrupted: its split.json (other classes) and its checkpoint.
    (run / 'split.json').write_text(manifest(LATER, run))
    (run / 'checkpoint.keras').write_bytes(b'the later run, cut short')
    before = sorted(path.name for path in run.iterdir())
    assert main(['export', '--run', str(run), '--cache-dir', '']) == 2
    error = capsys.readouterr().err
    assert error.count('\n') == 1 and 'Traceback' not in error
    assert f'{run / "split.json"} is not the split {run / "train_summary.json"} was ' \
        'trained with (another sha256)' in error
    assert f'--init-weights {run / "checkpoint.keras"} --out NEW_FOLDER' in error
    assert sorted(path.name for path in run.iterdir()) == before  # no model, no labels


def test_export_refuses_a_model_keras_that_is_not_the_summarys(
        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    run = earlier_run(tmp_path / 'run')
    (run / 'model.keras').write_bytes(b'another model, copied in later')
    assert main(['export', '--run', str(run), '--cache-dir', '']) == 2
    error = capsys.readouterr().err
    assert error.count('\n') == 1
    assert f'{run / "model.keras"} is not the model {run / "train_summary.json"} ' \
        'describes' in error
    assert not (run / 'model_int8.tflite').exists() and not (run / 'labels.txt').exists()


def test_evaluate_refuses_a_run_split_the_run_was_not_trained_with(tmp_path: Path) -> None:
    run = earlier_run(tmp_path / 'run')
    assert manifest_record(run / 'split.json')['sha256'] == sha256(run / 'split.json')
    (run / 'split.json').write_text(manifest(LATER, run))
    # A ValueError: the command line ends it in one line, exit status 2.
    with pytest.raises(ValueError, match='is not the split .* was trained with'):
        manifest_record(run / 'split.json', (tmp_path / 'other.tflite', run / 'model.keras'))


def test_evaluate_takes_a_run_split_for_a_model_of_another_folder_with_a_warning(
        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """A model trained from --init-weights RUN/checkpoint.keras on the same split."""
    run = earlier_run(tmp_path / 'run')
    (run / 'split.json').write_text(manifest(LATER, run))
    (run / 'checkpoint.keras').write_bytes(b'the later run, cut short')
    later = tmp_path / 'later'
    later.mkdir()
    record = manifest_record(run / 'split.json', (later / 'model_int8.tflite',
                                                  later / 'model.keras'))
    assert record == {'path': str((run / 'split.json').resolve()),
                      'sha256': sha256(run / 'split.json')}
    error = capsys.readouterr().err
    assert error.startswith(f'warning: {(run / "split.json").resolve()} is not the split.json')


def test_the_runs_own_pair_passes_and_an_unreadable_summary_is_named(tmp_path: Path) -> None:
    from plant_disease_ros.training.run_files import check_run_files, RunFilesMismatch

    run = earlier_run(tmp_path / 'run')
    check_run_files(run)
    (run / 'train_summary.json').write_text('{"cut')
    with pytest.raises(RunFilesMismatch, match=r'cannot read .*train_summary\.json'):
        check_run_files(run)


def test_the_interrupt_message_names_the_earlier_model_still_there(tmp_path: Path) -> None:
    run = earlier_run(tmp_path / 'run')
    checkpoint = run / 'checkpoint.keras'
    checkpoint.write_bytes(b'best epoch so far')
    text = interrupted_message(checkpoint, {'epoch': 2, 'val_accuracy': 0.5}, 'photos')
    assert 'no model.keras was written' not in text
    assert f"the earlier run's {run / 'model.keras'} is still there, but " \
        f"{run / 'split.json'} is now this run's: export and evaluate refuse that pair" in text
    assert f'--init-weights {checkpoint} --out NEW_FOLDER' in text
    checkpoint.unlink()
    text = interrupted_message(checkpoint, {}, 'photos')
    assert 'nothing kept' not in text and "the earlier run's" in text
    # A first run into a new folder: nothing earlier to name.
    (run / 'model.keras').unlink()
    assert interrupted_message(checkpoint, {}, 'photos').endswith(f'nothing kept in {run}')


def test_a_start_models_classes_are_its_own_runs_not_a_later_split_beside_it(
        tmp_path: Path) -> None:
    from plant_disease_ros.training.transfer import source_classes

    run = earlier_run(tmp_path / 'run')
    assert source_classes(run / 'model.keras') == tuple(EARLIER)
    # train --overwrite, cut short: the later run's split and checkpoint beside the model.
    (run / 'split.json').write_text(manifest(LATER, run))
    (run / 'checkpoint.keras').write_bytes(b'the later run, cut short')
    # The summary records this model: its classes, not the later split's.
    assert source_classes(run / 'model.keras') == tuple(EARLIER)
    # The later checkpoint is not the summary's model, and the split is not the summary's.
    assert source_classes(run / 'checkpoint.keras') is None
    # A checkpoint beside the summary's own split: the split names its classes.
    (run / 'split.json').write_text(manifest(EARLIER, run))
    assert source_classes(run / 'checkpoint.keras') == tuple(EARLIER)
