"""The field recipe's start model: its classes must be the lab split's (then no_leaf)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from plant_disease_ros.training.dataset import split_files, write_manifest
from plant_disease_ros.training.field_train import check_start_classes
from plant_disease_ros.training.transfer import TransferError

LAB_CLASSES = ('Apple___Black_rot', 'Apple___healthy', 'Tomato___healthy')
SHIPPED = ('Apple___Apple_scab', 'Apple___Black_rot', 'Apple___Cedar_apple_rust',
           'Apple___healthy', 'Tomato___Early_blight', 'no_leaf')


def touch_tree(root: Path, counts: dict[str, int]) -> Path:
    for name, count in counts.items():
        (root / name).mkdir(parents=True)
        for index in range(count):
            (root / name / f'{index:03d}.jpg').write_bytes(b'x')
    return root


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
