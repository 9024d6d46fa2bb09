"""``train`` keeps a trained run unless told to replace it; its summary names its model."""

from __future__ import annotations

import argparse
import hashlib
import json
from pathlib import Path
import re

from conftest import DATA_DIR
from helpers.photo_folders import class_folder
import pytest

from plant_disease_ros.cli import train as train_cli
from plant_disease_ros.cli.main import main
from plant_disease_ros.training.train import check_out_dir, earlier_derived_hashes

CLASSES = ('Apple___Cedar_apple_rust', 'Potato___Late_blight', 'Tomato___healthy')
PER_CLASS = 6


def sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def earlier_run(folder: Path) -> dict[str, bytes]:
    """Leave what a finished run leaves in ``folder``; return the files and their bytes."""
    folder.mkdir(parents=True)
    files = {'model.keras': b'the earlier best checkpoint', 'history.csv': b'epoch,loss\n',
             'train_summary.json': b'{}', 'training_curves.png': b'png'}
    for name, data in files.items():
        (folder / name).write_bytes(data)
    return files


@pytest.mark.parametrize('recipe', [
    [],
    ['--recipe', 'field', '--init-weights', 'lab.keras', '--lab-split', 'split.json',
     '--field-data', 'field', '--negatives', 'negatives'],
])
def test_a_folder_holding_a_trained_run_is_refused_before_anything_is_written(
        tmp_path: Path, recipe: list[str], monkeypatch: pytest.MonkeyPatch,
        capsys: pytest.CaptureFixture[str]) -> None:
    out = tmp_path / 'runs' / 'mine'
    files = earlier_run(out)
    monkeypatch.setattr(train_cli, 'train', lambda options: pytest.fail('trained'))
    status = main(['train', '--data', str(tmp_path / 'photos'), '--out', str(out), *recipe])
    assert status == 2
    error = capsys.readouterr().err
    assert error.count('\n') == 1, error
    assert 'already holds a trained run (model.keras, train_summary.json)' in error
    assert 'give a new --out, or --overwrite' in error
    assert {path.name: path.read_bytes() for path in out.iterdir()} == files


def test_an_interrupted_runs_checkpoint_is_kept_unless_overwrite(tmp_path: Path) -> None:
    """An interrupted run leaves checkpoint.keras: the shipped recipe reruns with --overwrite."""
    (tmp_path / 'split.json').write_text('{}')
    check_out_dir(tmp_path)
    (tmp_path / 'checkpoint.keras').write_bytes(b'best so far')
    with pytest.raises(FileExistsError) as error:
        check_out_dir(tmp_path)
    assert str(error.value) == (
        f'--out {tmp_path} holds checkpoint.keras, the best checkpoint of an interrupted run; '
        'training into it would replace it: continue from it with --init-weights '
        f'{tmp_path / "checkpoint.keras"} and a new --out, or --overwrite to replace it')
    check_out_dir(tmp_path, overwrite=True)
    (tmp_path / 'model.keras').write_bytes(b'finished')
    with pytest.raises(FileExistsError, match=r'\(model.keras\)'):
        check_out_dir(tmp_path)
    check_out_dir(tmp_path, overwrite=True)


def test_input_size_help_names_the_shipped_models_size() -> None:
    """The lab default is the start model's size: the shipped model's, by default."""
    pytest.importorskip('tensorflow')
    from plant_disease_ros.training.transfer import load_source, shipped_float_model_path

    if not shipped_float_model_path().is_file():
        pytest.skip('shipped float model not present')
    size = load_source(shipped_float_model_path())[1].input_size
    parser = argparse.ArgumentParser()
    train_cli.add_arguments(parser)
    action = next(item for item in parser._actions if '--input-size' in item.option_strings)
    assert f'{size} for the shipped one' in action.help
    assert f'field: {train_cli.FIELD_DEFAULTS["input_size"]},' in action.help


@pytest.fixture(scope='module')
def photos(tmp_path_factory: pytest.TempPathFactory) -> Path:
    if not DATA_DIR.is_dir():
        pytest.skip(f'leaf photos not found at {DATA_DIR}')
    return class_folder(DATA_DIR, tmp_path_factory.mktemp('leaves'), CLASSES, PER_CLASS)


def tiny_train(photos: Path, out: Path, *extra: str) -> int:
    return main(['train', '--data', str(photos), '--out', str(out), '--init', 'scratch',
                 '--epochs', '1', '--input-size', '32', '--width', '0.25', '--batch-size',
                 '8', '--val-fraction', '0.2', '--test-fraction', '0.2', '--cache-dir', '',
                 '--quiet', *extra])


def test_overwrite_replaces_the_run_and_the_card_refuses_its_stale_outputs(
        photos: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    pytest.importorskip('tensorflow')
    out = tmp_path / 'mine'
    assert tiny_train(photos, out) == 0
    first = json.loads((out / 'train_summary.json').read_text())
    assert first['model_sha256'] == sha256(out / 'model.keras')
    assert first['split_sha256'] == sha256(out / 'split.json')  # model-card checks it
    assert 'replaced_outputs' not in first and not (out / 'checkpoint.keras').exists()
    # The earlier model's export and evaluation, as export and evaluate leave them.
    (out / 'model_int8.tflite').write_bytes(b'the earlier model, int8')
    (out / 'labels.txt').write_text('\n'.join(CLASSES) + '\n')
    (out / 'eval').mkdir()
    (out / 'eval' / 'evaluation.json').write_text(json.dumps({'model_bytes': 23}))
    earlier_model = (out / 'model.keras').read_bytes()
    capsys.readouterr()

    assert tiny_train(photos, out, '--seed', '7') == 2
    assert 'already holds a trained run' in capsys.readouterr().err
    assert (out / 'model.keras').read_bytes() == earlier_model

    assert tiny_train(photos, out, '--seed', '7', '--overwrite') == 0
    second = json.loads((out / 'train_summary.json').read_text())
    assert second['options']['overwrite'] and second['options']['seed'] == 7
    assert second['model_sha256'] == sha256(out / 'model.keras') != first['model_sha256']
    assert second['replaced_outputs'] == {
        'eval/evaluation.json': sha256(out / 'eval' / 'evaluation.json'),
        'model_int8.tflite': sha256(out / 'model_int8.tflite')}
    assert not (out / 'checkpoint.keras').exists()
    capsys.readouterr()
    # The card of the new run refuses the earlier model's export, before timing it.
    assert main(['model-card', '--run', str(out), '--evaluation', str(out / 'eval')]) == 2
    error = capsys.readouterr().err
    assert f'--model {out / "model_int8.tflite"} was in {out} before' in error
    assert not (out / 'MODEL_CARD.md').exists()


def test_an_interrupted_run_says_what_it_kept_and_a_rerun_keeps_it(
        photos: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
        capsys: pytest.CaptureFixture[str]) -> None:
    """Ctrl-C after epoch 2: checkpoint.keras stays, named with its epoch and accuracy."""
    pytest.importorskip('tensorflow')
    import tensorflow as tf

    from plant_disease_ros.training import train as training

    def interrupt_after_two(minutes, started=None):
        def on_epoch_end(epoch: int, logs=None) -> None:
            if epoch == 1:
                raise KeyboardInterrupt

        return tf.keras.callbacks.LambdaCallback(on_epoch_end=on_epoch_end)

    monkeypatch.setattr(training, 'time_budget_callback', interrupt_after_two)
    out = tmp_path / 'cut'
    assert tiny_train(photos, out, '--epochs', '4', '--patience', '4') == 130
    error = capsys.readouterr().err
    checkpoint = out / 'checkpoint.keras'
    found = re.search(rf'training interrupted: kept {re.escape(str(checkpoint))}, the best '
                      r'checkpoint so far \(epoch ([12]), validation accuracy (\d\.\d{4})\); '
                      'no model.keras was written', error)
    assert found, error
    assert 0.0 <= float(found[2]) <= 1.0
    assert f'--init-weights {checkpoint} --out NEW_FOLDER' in error
    assert checkpoint.is_file() and not (out / 'model.keras').exists()
    kept = checkpoint.read_bytes()
    monkeypatch.undo()
    assert tiny_train(photos, out) == 2
    error = capsys.readouterr().err
    assert 'holds checkpoint.keras, the best checkpoint of an interrupted run' in error
    assert checkpoint.read_bytes() == kept


def test_the_earlier_outputs_leave_out_the_leftovers_of_killed_writes(tmp_path: Path) -> None:
    """An evaluation killed with SIGTERM leaves its hidden staging folder, an export killed
    its temporary: neither is an earlier output of the run."""
    out = tmp_path / 'mine'
    earlier_run(out)
    outputs = {'model_int8.tflite': b'int8', 'MODEL_CARD.md': b'# card',
               'eval/evaluation.json': b'{"old": 1}', 'evaluation.json': b'{"here": 1}'}
    leftovers = {'.evaluation.json.4000001.0123abcd.tmp/evaluation.json': b'{}',
                 'eval/.evaluation.json.4000001.89abcdef.tmp/evaluation.json': b'{}',
                 '.model_int8.4000001.0123abcd.tmp.tflite': b'half a model'}
    for name, data in {**outputs, **leftovers}.items():
        (out / name).parent.mkdir(parents=True, exist_ok=True)
        (out / name).write_bytes(data)
    assert earlier_derived_hashes(out) == {
        name: hashlib.sha256(data).hexdigest() for name, data in outputs.items()}


def test_an_interrupted_field_runs_checkpoint_is_kept_unless_overwrite(tmp_path: Path) -> None:
    """A field run stopped early leaves model_uncalibrated.keras: a rerun would replace it."""
    (tmp_path / 'split.json').write_text('{}')
    (tmp_path / 'field_split.json').write_text('{}')
    (tmp_path / 'model_uncalibrated.keras').write_bytes(b'best so far')
    with pytest.raises(FileExistsError) as error:
        check_out_dir(tmp_path)
    message = str(error.value)
    assert message.startswith(f'--out {tmp_path} holds model_uncalibrated.keras')
    assert f'plant-disease export --run {tmp_path} --calibrate' in message
    assert f'--init-weights {tmp_path / "model_uncalibrated.keras"}' in message
    assert '--overwrite' in message and '\n' not in message
    check_out_dir(tmp_path, overwrite=True)


def test_an_interrupted_field_run_says_what_it_kept_and_the_ways_on(tmp_path: Path) -> None:
    from plant_disease_ros.training.field_train import interrupted_message

    checkpoint = tmp_path / 'model_uncalibrated.keras'
    assert interrupted_message(checkpoint, 0, -1.0) == (
        'training interrupted before any epoch ended: no model_uncalibrated.keras was '
        f'written to {tmp_path}')
    checkpoint.write_bytes(b'best so far')
    message = interrupted_message(checkpoint, 3, 0.61234)
    assert message.startswith(f'training interrupted: kept {checkpoint}, the best '
                              'checkpoint so far (epoch 3, mean domain accuracy 0.6123)')
    assert f'plant-disease export --run {tmp_path} --calibrate' in message
    assert f'--init-weights {checkpoint} --out NEW_FOLDER' in message
