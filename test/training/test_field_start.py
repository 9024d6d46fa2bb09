"""The field recipe's start model: its classes must be the lab split's (then no_leaf)."""

from __future__ import annotations

import json
from pathlib import Path

from helpers.photo_folders import touch_tree
import pytest

from plant_disease_ros.training.dataset import split_files, write_manifest
from plant_disease_ros.training.field_train import check_start_classes
from plant_disease_ros.training.transfer import TransferError

LAB_CLASSES = ('Apple___Black_rot', 'Apple___healthy', 'Tomato___healthy')
SHIPPED = ('Apple___Apple_scab', 'Apple___Black_rot', 'Apple___Cedar_apple_rust',
           'Apple___healthy', 'Tomato___Early_blight', 'no_leaf')


def start_with_labels(folder: Path, labels: tuple[str, ...]) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    (folder / 'labels.txt').write_text('\n'.join(labels) + '\n')
    return folder / 'model.keras'


@pytest.mark.parametrize('labels', [LAB_CLASSES, (*LAB_CLASSES, 'no_leaf')])
def test_the_lab_classes_with_or_without_no_leaf_are_accepted(tmp_path: Path,
                                                              labels: tuple[str, ...]) -> None:
    start = start_with_labels(tmp_path / 'run', labels)
    check_start_classes(start, LAB_CLASSES, len(labels), 'split.json')


@pytest.mark.parametrize('labels, said', [
    (SHIPPED, 'its Apple___Apple_scab, Apple___Cedar_apple_rust, Tomato___Early_blight '
              'against Tomato___healthy'),
    (SHIPPED[:3], 'its Apple___Apple_scab, Apple___Cedar_apple_rust against Apple___healthy, '
                  'Tomato___healthy'),
    (tuple(reversed(LAB_CLASSES)), 'in another order'),
    ((*LAB_CLASSES, 'Grape___Esca'), 'its Grape___Esca against none'),
])
def test_other_classes_are_refused_in_one_line(tmp_path: Path, labels: tuple[str, ...],
                                               said: str) -> None:
    start = start_with_labels(tmp_path / 'run', labels)
    with pytest.raises(TransferError) as error:
        check_start_classes(start, LAB_CLASSES, len(labels), 'RUN/split.json')
    message = str(error.value)
    assert said in message and '--lab-split RUN/split.json' in message
    assert f'--init-weights {start}' in message and '\n' not in message


def test_a_summary_recording_the_model_wins_over_labels(tmp_path: Path) -> None:
    start = start_with_labels(tmp_path / 'run', SHIPPED)
    start.write_bytes(b'model bytes')
    import hashlib

    (tmp_path / 'run' / 'train_summary.json').write_text(json.dumps(
        {'classes': list(LAB_CLASSES),
         'model_sha256': hashlib.sha256(b'model bytes').hexdigest()}))
    check_start_classes(start, LAB_CLASSES, 3, 'split.json')


def test_unknown_classes_and_another_output_count_are_refused(tmp_path: Path) -> None:
    with pytest.raises(TransferError, match='cannot tell which classes'):
        check_start_classes(tmp_path / 'alone' / 'model.keras', LAB_CLASSES, 3, 'split.json')
    # A split.json there but not the one the summary records: that is said, not "no
    # split.json beside it".
    other = start_with_labels(tmp_path / 'cut short', LAB_CLASSES)
    (other.parent / 'labels.txt').unlink()
    (other.parent / 'split.json').write_text(json.dumps({'classes': list(LAB_CLASSES)}))
    (other.parent / 'train_summary.json').write_text(json.dumps({'split_sha256': '0' * 64}))
    with pytest.raises(TransferError) as error:
        check_start_classes(other, LAB_CLASSES, 3, 'split.json')
    message = str(error.value)
    assert 'cannot tell which classes' in message and 'no train_summary.json' not in message
    assert f'{other.parent / "split.json"} is not the split' in message
    assert '\n' not in message
    start = start_with_labels(tmp_path / 'run', LAB_CLASSES)
    with pytest.raises(TransferError, match='has 22 outputs but --lab-split split.json has 3'):
        check_start_classes(start, LAB_CLASSES, 22, 'split.json')


def test_train_field_refuses_before_writing_or_decoding(tmp_path: Path) -> None:
    """The reviewer's case: a 5-class model with a split of its own, against a 3-class lab."""
    pytest.importorskip('tensorflow')
    from plant_disease_ros.training.field_train import FieldTrainOptions, train_field
    from plant_disease_ros.training.model import build_model, ModelConfig

    lab = touch_tree(tmp_path / 'lab', {name: 6 for name in LAB_CLASSES})
    files = [(f'{name}/{i:03d}.jpg', c) for c, name in enumerate(LAB_CLASSES) for i in range(6)]
    write_manifest(tmp_path / 'split.json', split_files(files, LAB_CLASSES), lab)
    touch_tree(tmp_path / 'field' / 'plantdoc', {'Apple___healthy': 4})
    touch_tree(tmp_path / 'negatives', {'sky': 4})
    other = touch_tree(tmp_path / 'other', {name: 6 for name in SHIPPED[:5]})
    other_files = [(f'{name}/{i:03d}.jpg', c) for c, name in enumerate(SHIPPED[:5])
                   for i in range(6)]
    (tmp_path / 'start').mkdir()
    write_manifest(tmp_path / 'start' / 'split.json', split_files(other_files, SHIPPED[:5]),
                   other)
    build_model(ModelConfig(num_classes=5, input_size=32, width=0.35)).save(
        str(tmp_path / 'start' / 'model.keras'))
    options = FieldTrainOptions(
        lab_data=str(lab), lab_split=str(tmp_path / 'split.json'),
        field_data=str(tmp_path / 'field'), negatives=str(tmp_path / 'negatives'),
        init_weights=str(tmp_path / 'start' / 'model.keras'), out_dir=str(tmp_path / 'out'),
        input_size=32, cache_size=40, epochs=1, steps_per_epoch=1, batch_size=4)
    with pytest.raises(TransferError, match='was trained on other classes'):
        train_field(options)
    assert not (tmp_path / 'out').exists()


@pytest.fixture()
def lab_run(tmp_path: Path) -> dict:
    """A lab folder of undecodable stand-ins, its split and an untrained 3-class lab model."""
    pytest.importorskip('tensorflow')
    from plant_disease_ros.training.model import build_model, ModelConfig

    lab = touch_tree(tmp_path / 'lab', {name: 6 for name in LAB_CLASSES})
    files = [(f'{name}/{i:03d}.jpg', c) for c, name in enumerate(LAB_CLASSES) for i in range(6)]
    (tmp_path / 'labrun').mkdir()
    write_manifest(tmp_path / 'labrun' / 'split.json', split_files(files, LAB_CLASSES), lab)
    build_model(ModelConfig(num_classes=3, input_size=32, width=0.35)).save(
        str(tmp_path / 'labrun' / 'model.keras'))
    touch_tree(tmp_path / 'field' / 'plantdoc', {'Apple___healthy': 4})
    touch_tree(tmp_path / 'negatives', {'sky': 4})
    return {'root': tmp_path, 'lab': lab, 'split': tmp_path / 'labrun' / 'split.json',
            'start': tmp_path / 'labrun' / 'model.keras'}


def field_options(lab_run: dict, out: Path, **changes):
    from plant_disease_ros.training.field_train import FieldTrainOptions

    root = lab_run['root']
    options = FieldTrainOptions(
        lab_data=str(lab_run['lab']), lab_split=str(lab_run['split']),
        field_data=str(root / 'field'), negatives=str(root / 'negatives'),
        init_weights=str(lab_run['start']), out_dir=str(out), input_size=32, cache_size=40,
        epochs=1, steps_per_epoch=1, batch_size=4)
    for name, value in changes.items():
        setattr(options, name, value)
    return options


@pytest.mark.parametrize('case', ['field class the lab lacks', 'empty negatives',
                                  'missing start model', 'no field sets'])
def test_a_refused_field_run_writes_nothing(lab_run: dict, case: str) -> None:
    """Refusals come before --out is made or its split files are replaced."""
    from plant_disease_ros.training.dataset import DatasetError
    from plant_disease_ros.training.field_train import train_field

    root = lab_run['root']
    changes, expected = {}, DatasetError
    if case == 'field class the lab lacks':
        touch_tree(root / 'field' / 'my_farm', {'Grape___Black_rot': 4})
    elif case == 'empty negatives':
        (root / 'no_scenes').mkdir()
        changes['negatives'] = str(root / 'no_scenes')
    elif case == 'missing start model':
        changes['init_weights'] = str(root / 'nowhere' / 'model.keras')
        expected = TransferError
    else:
        (root / 'empty_field').mkdir()
        changes['field_data'] = str(root / 'empty_field')
    with pytest.raises(expected):
        train_field(field_options(lab_run, root / 'new', **changes))
    assert not (root / 'new').exists()
    # --overwrite into an earlier run: its split files stay beside its model.
    earlier = root / 'earlier'
    earlier.mkdir()
    for name in ('split.json', 'field_split.json', 'model.keras'):
        (earlier / name).write_text(f'the earlier {name}')
    with pytest.raises(expected):
        train_field(field_options(lab_run, earlier, **changes))
    for name in ('split.json', 'field_split.json', 'model.keras'):
        assert (earlier / name).read_text() == f'the earlier {name}'
    assert sorted(path.name for path in earlier.iterdir()) == [
        'field_split.json', 'model.keras', 'split.json']


class FakeClock:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


class FakeModel:
    """Scores every frame as label 0; saving writes a stand-in file."""

    stop_training = False

    def predict(self, images, batch_size: int, verbose: int):
        import numpy as np

        return np.tile([[0.9, 0.1]], (len(images), 1))

    def save(self, path: str) -> None:
        Path(path).write_bytes(b'checkpoint')


def test_epoch_lines_say_the_total_and_the_time_left_in_plain_text(
        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    import numpy as np

    from plant_disease_ros.training.field_train import DomainValidation, ValidationSet

    validation = ValidationSet(np.zeros((4, 2, 2, 3), np.uint8), np.array([0, 0, 1, 1]),
                               np.array(['lab', 'lab', 'negatives', 'negatives']))
    clock = FakeClock()
    monitor = DomainValidation(validation, tmp_path / 'model_uncalibrated.keras',
                               tmp_path / 'history.csv', None, epochs=30, clock=clock)
    model = FakeModel()
    for epoch, seconds in enumerate((100.0, 140.0)):
        monitor.epoch_clock.start_epoch()
        clock.now += seconds
        monitor.end_epoch(model, epoch, {'loss': 0.5, 'accuracy': 0.75})
    monitor.epoch_clock.start_epoch()
    clock.now += 20.0
    monitor.epoch_clock.done = 29  # the last epoch
    monitor.end_epoch(model, 29, {'loss': 0.5, 'accuracy': 0.75})
    err = capsys.readouterr().err
    assert '\r' not in err
    lines = err.splitlines()
    assert lines == [
        'epoch 1/30: loss 0.5000 acc 0.7500 | val lab 1.000 negatives 0.000 | mean 0.5000 '
        '*saved* | 1.7 min, about 48.3 min left',
        'epoch 2/30: loss 0.5000 acc 0.7500 | val lab 1.000 negatives 0.000 | mean 0.5000 | '
        '2.3 min, about 56.0 min left',
        'epoch 30/30: loss 0.5000 acc 0.7500 | val lab 1.000 negatives 0.000 | mean 0.5000 | '
        '20 s']
    assert [row['seconds'] for row in monitor.history] == [100.0, 140.0, 20.0]


def test_a_run_stopped_while_saving_keeps_the_previous_best_whole(
        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    import numpy as np

    from plant_disease_ros.training.field_train import (
        DomainValidation,
        interrupted_message,
        ValidationSet,
    )

    class StoppedWhileSaving(FakeModel):
        def save(self, path: str) -> None:
            Path(path).write_bytes(b'half a chec')
            raise KeyboardInterrupt

    validation = ValidationSet(np.zeros((2, 2, 2, 3), np.uint8), np.array([0, 1]),
                               np.array(['lab', 'negatives']))
    checkpoint = tmp_path / 'model_uncalibrated.keras'
    monitor = DomainValidation(validation, checkpoint, tmp_path / 'history.csv', None,
                               epochs=5, clock=FakeClock())
    monitor.end_epoch(FakeModel(), 0, {'loss': 1.0, 'accuracy': 0.5})
    monitor.validation = ValidationSet(validation.images, np.array([0, 0]),
                                       validation.domains)  # a better score, to be saved
    with pytest.raises(KeyboardInterrupt):
        monitor.end_epoch(StoppedWhileSaving(), 1, {'loss': 1.0, 'accuracy': 0.5})
    assert checkpoint.read_bytes() == b'checkpoint'
    assert sorted(path.name for path in tmp_path.iterdir()) == ['history.csv',
                                                                 checkpoint.name]
    assert monitor.best_epoch == 1
    assert '(epoch 1, mean domain accuracy 0.5000)' in interrupted_message(
        checkpoint, monitor.best_epoch, monitor.best_score)
