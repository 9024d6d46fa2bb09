"""User mistakes of the offline commands end in one clear line, before any output is written.

No training here: the evaluation runs the shipped int8 model, the export tests stop
before TensorFlow, and the model card reads a hand-written run.
"""

from __future__ import annotations

import json
from pathlib import Path
import re
import shutil

import cv2
from helpers.shipped_model import LABELS_PATH, MODEL_PATH, require_shipped_model
import numpy as np
import pytest

from plant_disease_ros.cli.main import main
from plant_disease_ros.training.dataset import DatasetError, read_manifest

SHIPPED_SPLITS = MODEL_PATH.parent


def make_dataset(root: Path, counts: dict[str, int]) -> Path:
    """Write ``<root>/<class>/NNN.png`` plain-coloured photos."""
    for number, (name, count) in enumerate(counts.items()):
        (root / name).mkdir(parents=True)
        for index in range(count):
            cv2.imwrite(str(root / name / f'{index:03d}.png'),
                        np.full((40, 50, 3), (number * 40, index * 9, 100), np.uint8))
    return root


def error_line(capsys: pytest.CaptureFixture, command: str) -> str:
    """Return the one error line the CLI printed (and check it is one line)."""
    lines = capsys.readouterr().err.strip().splitlines()
    assert lines and lines[-1].startswith(f'plant-disease {command}: error: '), lines
    assert not any('Traceback' in line for line in lines)
    return lines[-1]


def evaluate(out: Path, *args: str) -> int:
    require_shipped_model()
    return main(['evaluate', '--model', str(MODEL_PATH), '--labels', str(LABELS_PATH),
                 '--out', str(out), '--cache-dir', '', '--threads', '1', *args])


# B1: a file that is not a split manifest.

def test_evaluate_names_a_file_that_is_not_a_split_manifest(
        tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    field_split = SHIPPED_SPLITS / 'field_split.json'
    assert evaluate(tmp_path / 'e', '--split-manifest', str(field_split)) == 2
    line = error_line(capsys, 'evaluate')
    assert f"{field_split} is not a split manifest (no 'classes'" in line
    assert 'pass it as --field-split' in line
    (tmp_path / 'v1.json').write_text('{"version": 1}\n')
    assert evaluate(tmp_path / 'e', '--split-manifest', str(tmp_path / 'v1.json'),
                    '--data', str(tmp_path)) == 2
    assert f"{tmp_path / 'v1.json'} is not a split manifest (no 'classes', 'seed', " \
        "'fractions', 'splits')" in error_line(capsys, 'evaluate')


def test_export_calibration_names_a_file_that_is_not_a_split_manifest(tmp_path: Path) -> None:
    from plant_disease_ros.training.export import representative_images

    path = tmp_path / 'split.json'
    path.write_text('{"version": 1, "root": "."}\n')
    with pytest.raises(DatasetError, match=f"^{path} is not a split manifest \\(no 'classes'"):
        representative_images(read_manifest(path), 32)


# B2: nothing readable to evaluate.

def manifest_with_empty_test(tmp_path: Path) -> Path:
    data = make_dataset(tmp_path / 'data', {'Apple___healthy': 2, 'Tomato___healthy': 2})
    files = [[f'{name}/{index:03d}.png', number]
             for number, name in enumerate(('Apple___healthy', 'Tomato___healthy'))
             for index in range(2)]
    path = tmp_path / 'split.json'
    path.write_text(json.dumps({
        'version': 1, 'root': str(data), 'seed': 42, 'fractions': {'val': 0.5, 'test': 0.0},
        'classes': ['Apple___healthy', 'Tomato___healthy'], 'skipped_unreadable': [],
        'splits': {'train': files[::2], 'val': files[1::2], 'test': []}}))
    return path


def test_evaluate_refuses_an_empty_split_and_keeps_earlier_outputs(
        tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    manifest = manifest_with_empty_test(tmp_path)
    out = tmp_path / 'eval'
    out.mkdir()
    (out / 'evaluation.json').write_text('{"earlier": "good"}\n')
    assert evaluate(out, '--split-manifest', str(manifest)) == 2
    assert error_line(capsys, 'evaluate').endswith(
        f"no readable photos in the 'test' split of {manifest}")
    assert sorted(path.name for path in out.iterdir()) == ['evaluation.json']
    assert json.loads((out / 'evaluation.json').read_text()) == {'earlier': 'good'}


def test_evaluate_refuses_a_folder_of_unreadable_photos(
        tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    data = tmp_path / 'data'
    for name in ('Apple___healthy', 'Tomato___healthy'):
        (data / name).mkdir(parents=True)
        (data / name / 'broken.jpg').write_bytes(b'\xff\xd8\xff\xe0 not a jpeg')
    assert evaluate(tmp_path / 'eval', '--data', str(data)) == 2
    assert error_line(capsys, 'evaluate').endswith(
        f'no readable photos in {data} (all 2 unreadable)')
    assert not (tmp_path / 'eval').exists()


# B3: a class whose files all fail to decode.

def test_training_refuses_a_class_without_readable_images(tmp_path: Path) -> None:
    from plant_disease_ros.training.train import prepare_split, TrainOptions

    data = make_dataset(tmp_path / 'data', {'a': 4, 'c': 4})
    (data / 'b').mkdir()
    for index in range(3):
        (data / 'b' / f'broken{index}.jpg').write_bytes(b'\xff\xd8\xff\xe0 not a jpeg')
    options = TrainOptions(data_dir=str(data), out_dir=str(tmp_path / 'run'), input_size=32,
                           val_fraction=0.25, test_fraction=0.25, cache_dir=None)
    with pytest.raises(DatasetError, match=f'^class b has no readable images in {data}$'):
        prepare_split(options)
    assert not (tmp_path / 'run' / 'split.json').exists()


# B5: a run used from another folder, or on another machine.

def test_export_calibration_names_a_missing_photo_folder_and_takes_data(
        tmp_path: Path) -> None:
    from plant_disease_ros.training.dataset import scan_dataset, split_files, write_manifest
    from plant_disease_ros.training.export import representative_images

    data = make_dataset(tmp_path / 'data', {'a': 4, 'b': 4})
    index = scan_dataset(data)
    write_manifest(tmp_path / 'split.json', split_files(index.files, index.classes), data)
    moved = tmp_path / 'moved'
    data.rename(moved)
    manifest = read_manifest(tmp_path / 'split.json')
    with pytest.raises(DatasetError, match=f'^photo folder {data} of the split manifest is '
                                           'missing: pass the training photos as --data$'):
        representative_images(manifest, 16)
    images = representative_images(manifest, 16, data_dir=moved)
    assert images.shape == (4, 16, 16, 3)  # the two training photos of each class


def test_export_passes_data_on(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from plant_disease_ros.cli import export as export_cli
    from plant_disease_ros.training.export import ExportResult

    seen = {}

    def fake_export(model, split, out, **kwargs):
        seen.update(kwargs)
        return ExportResult(Path(out), Path(out).parent / 'labels.txt', 1, 1)

    monkeypatch.setattr(export_cli, 'export_int8', fake_export)
    for name in ('model.keras', 'split.json'):
        (tmp_path / name).write_text('x')
    assert main(['export', '--run', str(tmp_path), '--out', str(tmp_path / 'm.tflite'),
                 '--data', 'photos']) == 0
    assert seen['data_dir'] == 'photos'


# B7, B8: the model card of a lab run tells that run's facts.

def write_run(run: Path, summary: dict, classes: list[str], seed: int) -> None:
    run.mkdir(parents=True)
    (run / 'train_summary.json').write_text(json.dumps(summary))
    splits = {'train': [[f'{name}/t{i}.jpg', number] for number, name in enumerate(classes)
                        for i in range(3)],
              'val': [[f'{name}/v.jpg', number] for number, name in enumerate(classes)],
              'test': [[f'{name}/x.jpg', number] for number, name in enumerate(classes)]}
    (run / 'split.json').write_text(json.dumps({
        'version': 1, 'root': '/photos/orchard', 'seed': seed,
        'fractions': {'val': 0.2, 'test': 0.2}, 'classes': classes, 'splits': splits}))


def card_of(tmp_path: Path, summary: dict, classes: list[str], split_seed: int,
            split: str = 'test') -> str:
    from plant_disease_ros.training.model_card import write_model_card

    write_run(tmp_path / 'run', summary, classes, split_seed)
    evaluation = tmp_path / 'eval'
    evaluation.mkdir()
    rows = [{'class': name, 'precision': 1.0, 'recall': 1.0, 'f1': 1.0, 'support': 1}
            for name in classes]
    (evaluation / 'evaluation.json').write_text(json.dumps({
        'int8': {'top1': 1.0, 'top3': 1.0, 'macro_f1': 1.0}, 'photos': len(classes),
        'most_confused': [], 'per_class': rows, 'machine': 'a CPU', 'backend': 'litert',
        'split': split}))
    model = tmp_path / 'model.tflite'
    require_shipped_model()
    shutil.copyfile(MODEL_PATH, model)  # the card reads its input and output types
    latency = [{'threads': 1, 'p50_ms': 1.0, 'p95_ms': 2.0}]
    return write_model_card(tmp_path / 'run', evaluation, tmp_path / 'CARD.md', model,
                            latency).read_text()


def options(**values) -> dict:
    base = {'input_size': 96, 'epochs': 5, 'batch_size': 32, 'learning_rate': 1e-3,
            'patience': 5, 'seed': 42, 'split_seed': 42, 'label_smoothing': 0.05,
            'augment_strength': 1.0, 'init': 'shipped', 'init_weights': None,
            'head_epochs': 2, 'unfreeze': None}
    return {**base, **values}


def summary_of(init: str, stages: list[dict], **option_values) -> dict:
    option_values = options(init=init, **option_values)
    transfer = init != 'scratch'
    return {
        'options': option_values,
        'plan': {'transfer': transfer, 'head_epochs': option_values['head_epochs'],
                 'epochs': option_values['epochs'], 'head_learning_rate': 3e-3},
        'model': {'architecture': 'resnet_lite', 'width': 0.75, 'input_size': 96},
        'init': init, 'stages': stages,
        'epochs_run': sum(stage['epochs_run'] for stage in stages),
        'best_val_accuracy': 0.9, 'train_seconds': 120.0, 'seconds_per_epoch': 20.0,
        'parameters': 123456, 'tensorflow': '2.x', 'classes': None}


CLASSES = ['Apple___healthy', 'Apple___scab', 'Pear___healthy']


def test_model_card_of_a_transfer_run(tmp_path: Path) -> None:
    stages = [{'stage': 'head', 'epochs_planned': 2, 'epochs_run': 2},
              {'stage': 'fine-tune', 'epochs_planned': 5, 'epochs_run': 3}]
    summary = summary_of('shipped', stages, seed=1, split_seed=9)
    summary['classes'] = CLASSES
    card = card_of(tmp_path, summary, CLASSES, split_seed=9)
    assert not re.search(r'\b21\b|six crops', card)
    assert 'A 3-class plant disease classifier' in card
    assert '- Output: 3 class probabilities' in card
    assert 'only knows these 3 classes' in card
    # A user's folder: nothing of the lab photos' traits, licence or file names.
    assert card.startswith('# Model card: model.tflite\n')
    # (The attribution names the shipped model's data: the run starts from its weights.)
    about_the_run = card.split('## Data attribution and licences')[0]
    assert 'PlantVillage' not in about_the_run and 'plain lab background' not in card
    assert 'Potato healthy' not in card and 'calibrated on 300' not in card
    assert "their sources and licences are their owner's to state here" in card
    assert 'train_summary.json` (`options`)' in card  # no empty Reproduce block
    assert '## Test figures (held-out test split)' in card
    assert '3 class(es) have fewer than 10 test photos' in card
    assert "transfer learning from the shipped model's backbone: a new head trained with " \
        'the backbone frozen, then the whole network fine-tuned' in card
    assert 'from scratch' not in card
    assert '`/photos/orchard`: 15 photos' in card and '3 classes from 2 crops' in card
    assert 'stratified split (seed 9)' in card  # split_seed, not the training seed 1
    assert '96 px, transfer learning' in card
    assert '5 epochs (of at most 7: head only (backbone frozen) 2 of 2, fine-tune 3 of 5)' \
        in card
    assert 'Adam (head stage at a constant 0.003, then cosine decay from 0.001)' in card


def test_model_card_of_a_scratch_run(tmp_path: Path) -> None:
    stages = [{'stage': 'train', 'epochs_planned': 40, 'epochs_run': 31}]
    summary = summary_of('scratch', stages, epochs=40, head_epochs=0, split_seed=3)
    summary['classes'] = CLASSES[:2]
    card = card_of(tmp_path, summary, CLASSES[:2], split_seed=3)
    assert 'parameters, trained from scratch (no pretrained weights).' in card
    assert '96 px, trained from scratch (no pretrained weights): 31 epochs (of at most 40), ' \
        'batch 32, Adam (cosine decay from 0.001)' in card
    assert 'A 2-class plant disease classifier' in card and '2 classes from 1 crop ' in card


def test_model_card_of_a_validation_evaluation_says_so(tmp_path: Path) -> None:
    stages = [{'stage': 'train', 'epochs_planned': 4, 'epochs_run': 4}]
    summary = summary_of('scratch', stages, epochs=4, head_epochs=0)
    summary['classes'] = CLASSES
    card = card_of(tmp_path, summary, CLASSES, split_seed=42, split='val')
    assert 'held-out' not in card
    assert ('## Figures on validation photos (they chose the checkpoint: the figures flatter '
            'the model)') in card
    assert 'on 3 val photos' in card


def test_model_card_names_the_split_seed_not_the_training_seed(tmp_path: Path) -> None:
    stages = [{'stage': 'train', 'epochs_planned': 4, 'epochs_run': 4}]
    summary = summary_of('scratch', stages, epochs=4, head_epochs=0, seed=1, split_seed=9)
    summary['classes'] = CLASSES
    card = card_of(tmp_path, summary, CLASSES, split_seed=9)
    assert 'Deterministic stratified split (seed 9)' in card
    assert '(seed 1)' not in card


@pytest.mark.parametrize('command, arguments, message', [
    ('evaluate', ['--score-threshold', 'nan'], '--score-threshold must be in'),
    ('evaluate', ['--score-threshold', '1.5'], '--score-threshold must be in'),
    ('evaluate', ['--per-class', '0'], '--per-class must be >= 1'),
    ('search', ['--budget-min', '-5'], '--budget-min must be > 0'),
    ('search', ['--budget-min', 'nan'], '--budget-min must be > 0'),
    ('search', ['--data', 'NO_SUCH_FOLDER'], 'is not a folder of class folders'),
    ('bench', ['--duration', 'inf'], '--duration must be > 0 and finite'),
    ('bench', ['--domain-id', '300'], '--domain-id must be in 0..232, got 300'),
    ('bench', ['--out', str(MODEL_PATH)], 'is one of the inputs'),
])
def test_numbers_and_paths_that_cannot_work_are_refused_before_any_run(
        tmp_path: Path, capsys: pytest.CaptureFixture, command: str, arguments: list[str],
        message: str) -> None:
    """NaN, a negative or infinite budget, an output over the model: one line, exit 2."""
    data = make_dataset(tmp_path / 'data', {'a': 3, 'b': 3})
    base = {'evaluate': ['--data', str(data), '--out', str(tmp_path / 'eval')],
            'search': ['--data', str(data), '--out', str(tmp_path / 'search')],
            'bench': ['--out', str(tmp_path / 'bench.json')]}[command]
    model_before = MODEL_PATH.read_bytes()
    assert main([command, *base, *arguments]) == 2
    assert message in error_line(capsys, command)
    assert not (tmp_path / 'eval').exists() and not (tmp_path / 'search').exists()
    assert MODEL_PATH.read_bytes() == model_before
