"""Smoke test of the field recipe: lab model -> field-fit train -> export -> evaluate -> card.

Tiny real photo sets (lab, field, non-leaf) and a tiny network; checks the contract of
every output, not accuracy.
"""

from __future__ import annotations

import json
from pathlib import Path
import shutil

from conftest import DATA_DIR
from helpers.photo_folders import copy_photos
import numpy as np
import pytest

pytest.importorskip('tensorflow')

FIELD_DIR = DATA_DIR.parent / 'field'
NEGATIVES_DIR = DATA_DIR.parent / 'negatives'
LAB_CLASSES = ('Apple___Apple_scab', 'Apple___healthy', 'Tomato___healthy')
FIELD_SETS = {'plantdoc': ('Apple___Apple_scab', 'Tomato___healthy'),
              'pp2021_apple': ('Apple___Apple_scab', 'Apple___healthy')}
KINDS = ('sky', 'soil')
PER_CLASS = 8


@pytest.fixture(scope='module')
def world(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """Copy a few photos of each domain into a temp tree; make a tiny lab run."""
    if not (DATA_DIR.is_dir() and FIELD_DIR.is_dir() and NEGATIVES_DIR.is_dir()):
        pytest.skip('lab, field or non-leaf photos not found beside the repository')

    root = tmp_path_factory.mktemp('world')
    for name in LAB_CLASSES:
        copy_photos(DATA_DIR / name, root / 'lab' / name, PER_CLASS)
    for field_set, classes in FIELD_SETS.items():
        for name in classes:
            copy_photos(FIELD_DIR / field_set / name, root / 'field' / field_set / name,
                      PER_CLASS)
    for kind in KINDS:
        copy_photos(NEGATIVES_DIR / kind, root / 'negatives' / kind, PER_CLASS)
    # The lab run the field recipe starts from: a split and an (untrained) lab network.
    from plant_disease_ros.training.dataset import scan_dataset, split_files, write_manifest
    from plant_disease_ros.training.model import build_model, ModelConfig

    index = scan_dataset(root / 'lab')
    (root / 'labrun').mkdir()
    write_manifest(root / 'labrun' / 'split.json', split_files(index.files, index.classes),
                   index.root)
    # Seeded, so that every test run starts from the same network (the field recipe
    # seeds the rest): its int8 export and scores are then the same from run to run.
    import keras

    keras.utils.set_random_seed(0)
    build_model(ModelConfig(num_classes=len(LAB_CLASSES), input_size=48, width=0.35)).save(
        str(root / 'labrun' / 'model.keras'))
    return {'root': root, 'lab': root / 'lab', 'labrun': root / 'labrun'}


def field_train_args(world: dict[str, Path], init: Path, out: Path, *extra: str) -> list[str]:
    """Return ``plant-disease train --recipe field`` arguments on the tiny world."""
    return ['train', '--recipe', 'field', '--data', str(world['lab']),
            '--lab-split', str(world['labrun'] / 'split.json'),
            '--field-data', str(world['root'] / 'field'),
            '--negatives', str(world['root'] / 'negatives'),
            '--init-weights', str(init), '--out', str(out), '--batch-size', '8',
            '--input-size', '48', '--cache-size', '56', '--cache-dir', '', *extra]


@pytest.fixture(scope='module')
def field_run(world: dict[str, Path]) -> Path:
    from plant_disease_ros.cli.main import main

    out = world['root'] / 'fieldrun'
    assert main(field_train_args(world, world['labrun'] / 'model.keras', out,
                                 '--epochs', '2', '--steps-per-epoch', '2')) == 0
    return out


def test_field_run_outputs(field_run: Path, world: dict[str, Path]) -> None:
    labels = (field_run / 'labels.txt').read_text().split()
    assert labels == [*LAB_CLASSES, 'no_leaf']
    manifest = json.loads((field_run / 'field_split.json').read_text())
    assert list(manifest['domains']) == ['plantdoc', 'pp2021_apple', 'negatives']
    assert (field_run / 'split.json').read_text() == \
        (world['labrun'] / 'split.json').read_text()  # the lab split is kept as it was
    summary = json.loads((field_run / 'train_summary.json').read_text())
    assert summary['epochs_run'] == 2 and summary['temperature'] > 0
    assert summary['calibration_objective'] == 'adaptive'
    assert len(summary['score_scaling']['weights']) == 4  # one per label, no_leaf included
    assert set(summary['calibration']) == {'lab', 'plantdoc', 'pp2021_apple', 'negatives',
                                           'synthetic'}
    assert len((field_run / 'history.csv').read_text().splitlines()) == 3
    for name in ('model.keras', 'model_uncalibrated.keras', 'training_curves.png'):
        assert (field_run / name).stat().st_size > 1000


def test_temperature_is_folded_into_the_head(field_run: Path) -> None:
    import tensorflow as tf

    summary = json.loads((field_run / 'train_summary.json').read_text())
    calibrated = tf.keras.models.load_model(str(field_run / 'model.keras'), compile=False)
    raw = tf.keras.models.load_model(str(field_run / 'model_uncalibrated.keras'),
                                     compile=False)
    kernel, bias = calibrated.get_layer('probs').get_weights()
    raw_kernel, raw_bias = raw.get_layer('probs').get_weights()
    np.testing.assert_allclose(kernel * summary['temperature'], raw_kernel, rtol=1e-5,
                               atol=1e-6)
    np.testing.assert_allclose(bias * summary['temperature'], raw_bias, rtol=1e-5, atol=1e-6)


def test_export_evaluate_and_card(field_run: Path, world: dict[str, Path],
                                  tmp_path: Path) -> None:
    from plant_disease_ros.cli.main import main
    from plant_disease_ros.core.interpreter_loader import load_interpreter
    from plant_disease_ros.training.evaluate import scoring_note

    candidate = tmp_path / 'candidate'
    model = candidate / 'plant_disease_int8.tflite'
    assert main(['export', '--run', str(field_run), '--out', str(model), '--float-out',
                 str(candidate / 'plant_disease_float.keras'), '--calibration-count', '12',
                 '--cache-dir', '']) == 0
    loaded = load_interpreter(model, num_threads=1)
    assert loaded.input.dtype == np.uint8 and tuple(loaded.input.shape[1:]) == (48, 48, 3)
    assert (loaded.input.scale, loaded.input.zero_point) == (pytest.approx(1.0), 0)
    assert loaded.output.dtype == np.uint8 and loaded.output.shape[-1] == 4
    # The run was calibrated 'adaptive': its per-frame scale is in the int8 graph, and the
    # int8 scores follow the float model's logits times that scale.
    assert_int8_follows_the_scaling(model, candidate / 'plant_disease_float.keras',
                                    field_run, world)
    assert (candidate / 'labels.txt').read_text().split()[-1] == 'no_leaf'
    assert (candidate / 'field_split.json').exists() and (candidate / 'split.json').exists()

    evaluation = candidate / 'eval'
    assert main(['evaluate', '--model', str(model), '--labels', str(candidate / 'labels.txt'),
                 '--field-split', str(candidate / 'field_split.json'), '--keras',
                 str(candidate / 'plant_disease_float.keras'), '--synthetic-per-kind', '2',
                 '--out', str(evaluation), '--cache-dir', '']) == 0
    report = json.loads((evaluation / 'evaluation.json').read_text())
    assert list(report['domains']) == ['lab', 'plantdoc', 'pp2021_apple', 'negatives',
                                       'synthetic']
    assert report['domains']['lab']['photos'] == len(json.loads(
        (world['labrun'] / 'split.json').read_text())['splits']['test'])
    assert report['domains']['negatives']['photos'] == 2 * len(KINDS)  # 25 % of 8 a kind
    assert report['domains']['synthetic']['photos'] == 2 * 12
    for name, domain in report['domains'].items():
        assert 0.0 <= domain['rejected'] <= 1.0 and 0.0 <= domain['ece'] <= 1.0
        assert 'float_top1' in domain
        assert (evaluation / f'confusion_{name}.png').read_bytes()[:4] == b'\x89PNG'
    assert (evaluation / 'reliability.png').read_bytes()[:4] == b'\x89PNG'
    assert (evaluation / 'thresholds.png').read_bytes()[:4] == b'\x89PNG'
    lab_sweep = report['domains']['lab']['threshold_sweep']
    assert [row['threshold'] for row in lab_sweep][:3] == [0.0, 0.05, 0.1]
    assert report['seen_as'] == 'photos'

    # The same photos as the nodes see them in 64x48 camera frames: crop, gate, resize.
    as_frames = candidate / 'eval_frames'
    assert main(['evaluate', '--model', str(model), '--labels', str(candidate / 'labels.txt'),
                 '--field-split', str(candidate / 'field_split.json'), '--synthetic-per-kind',
                 '2', '--frames', '64x48', '--out', str(as_frames), '--cache-dir', '']) == 0
    framed = json.loads((as_frames / 'evaluation.json').read_text())
    assert framed['seen_as'] == '64x48 frames (fit), centre crop 1, vegetation gate on'
    assert framed['camera'] == {'width': 64, 'height': 48, 'framing': 'fit',
                                'center_crop_fraction': 1.0, 'vegetation_gate': True,
                                'motion_blur_px': 0}
    smeared_dir = candidate / 'eval_frames_blur5'
    assert main(['evaluate', '--model', str(model), '--labels', str(candidate / 'labels.txt'),
                 '--field-split', str(candidate / 'field_split.json'), '--synthetic-per-kind',
                 '2', '--frames', '64x48', '--motion-blur', '5', '--out', str(smeared_dir),
                 '--cache-dir', '']) == 0
    smeared = json.loads((smeared_dir / 'evaluation.json').read_text())
    assert smeared['camera'] == {**framed['camera'], 'motion_blur_px': 5}
    assert {name: domain['photos'] for name, domain in framed['domains'].items()} == {
        name: domain['photos'] for name, domain in report['domains'].items()}
    synthetic = framed['domains']['synthetic']
    # Black, over-exposed and flat synthetic frames never reach the model's answer.
    assert synthetic['stopped_by_gate'] >= 0.25
    assert synthetic['labelled_no_leaf'] >= synthetic['stopped_by_gate']
    for name in ('lab', 'plantdoc', 'pp2021_apple', 'negatives'):
        assert 0.0 <= framed['domains'][name]['stopped_by_gate'] <= 1.0
    # Scored as a node told its crop: a tomato label is never the answer in the orchard.
    given_crop = candidate / 'eval_known_crop'
    assert main(['evaluate', '--model', str(model), '--labels', str(candidate / 'labels.txt'),
                 '--field-split', str(candidate / 'field_split.json'), '--synthetic-per-kind',
                 '2', '--crops', 'known', '--out', str(given_crop), '--cache-dir', '']) == 0
    known = json.loads((given_crop / 'evaluation.json').read_text())
    assert known['crops'] == 'known' and report['crops'] == 'all'
    orchard = known['domains']['pp2021_apple']
    # A class without photos in the orchard has a row only when it was predicted there.
    assert 'Tomato___healthy' not in {row['class'] for row in orchard['per_class']}
    # Fewer labels to choose from: top-1 can only rise, and non-leaf frames are taken in
    # their most leaf-like crop, so no more of them are rejected than with every crop.
    for name in ('lab', 'plantdoc', 'pp2021_apple'):
        assert known['domains'][name]['top1'] >= report['domains'][name]['top1']
    assert known['domains']['negatives']['rejected'] <= report['domains']['negatives'][
        'rejected']
    # Scored as a node averaging four poses of each frame (test_time_poses 4).
    posed_dir = candidate / 'eval_poses'
    assert main(['evaluate', '--model', str(model), '--labels', str(candidate / 'labels.txt'),
                 '--field-split', str(candidate / 'field_split.json'), '--keras',
                 str(candidate / 'plant_disease_float.keras'), '--synthetic-per-kind', '2',
                 '--poses', '4', '--out', str(posed_dir), '--cache-dir', '']) == 0
    posed = json.loads((posed_dir / 'evaluation.json').read_text())
    assert (posed['poses'], report['poses']) == (4, 1)
    assert posed['domains']['lab']['photos'] == report['domains']['lab']['photos']
    # (that the scores are the poses' mean is checked on the shipped model in
    # test/core/test_poses.py; this tiny model may score every pose alike)
    assert 0.0 <= posed['domains']['lab']['int8_float_agreement'] <= 1.0
    assert scoring_note(posed) == ', 4 poses averaged (test_time_poses)'
    assert scoring_note({**posed, 'crops': 'known'}).endswith('weigh 0.1), 4 poses averaged '
                                                           '(test_time_poses)')
    # The two evaluations of the same photos, compared photo by photo: every photo of
    # each domain is paired, and each side's top-1 is its evaluation's.
    compared = tmp_path / 'compared'
    assert main(['compare', str(evaluation), str(posed_dir), '--out', str(compared)]) == 0
    comparison = json.loads((compared / 'comparison.json').read_text())
    assert comparison['differing_settings'] == {'poses': [1, 4]}
    for name, domain in comparison['domains'].items():
        assert domain['frames'] == report['domains'][name]['photos']
        assert domain['base_top1']['share'] == pytest.approx(report['domains'][name]['top1'])
        assert domain['new_top1']['share'] == pytest.approx(posed['domains'][name]['top1'])
        assert domain['fixed'] - domain['broken'] == round(
            domain['frames'] * (domain['new_top1']['share'] - domain['base_top1']['share']))
    # Into the same folder: the first comparison is kept, the second goes to compared-2.
    assert main(['compare', str(evaluation), str(as_frames), '--out', str(compared)]) == 0
    assert json.loads((compared / 'comparison.json').read_text())['differing_settings'] == {
        'poses': [1, 4]}
    second = tmp_path / 'compared-2' / 'comparison.json'
    assert json.loads(second.read_text())['differing_settings'] == {
        'seen_as': ['photos', framed['seen_as']]}
    assert main(['evaluate', '--model', str(model), '--poses', '3', '--out',
                 str(tmp_path / 'bad_poses')]) == 2
    assert main(['evaluate', '--model', str(model), '--labels', str(candidate / 'labels.txt'),
                 '--field-split', str(candidate / 'field_split.json'), '--crops', 'Grape',
                 '--out', str(tmp_path / 'bad_crop')]) == 2
    assert main(['evaluate', '--model', str(model), '--frames', '64x48', '--out',
                 str(tmp_path / 'no_split')]) == 2
    assert main(['evaluate', '--model', str(model), '--labels', str(candidate / 'labels.txt'),
                 '--field-split', str(candidate / 'field_split.json'), '--frames', '64',
                 '--out', str(tmp_path / 'bad_size')]) == 2

    # The lab model it replaces, scored on the same domains (no no_leaf: a zero column).
    lab_model = tmp_path / 'lab' / 'plant_disease_int8.tflite'
    assert main(['export', '--run', str(world['labrun']), '--out', str(lab_model),
                 '--calibration-count', '6', '--cache-dir', '']) == 0
    baseline = tmp_path / 'baseline'
    assert main(['evaluate', '--model', str(lab_model), '--labels',
                 str(lab_model.parent / 'labels.txt'), '--field-split',
                 str(candidate / 'field_split.json'), '--synthetic-per-kind', '2',
                 '--out', str(baseline), '--cache-dir', '']) == 0
    previous = json.loads((baseline / 'evaluation.json').read_text())
    assert previous['model_has_no_leaf'] is False
    assert previous['domains']['negatives']['labelled_no_leaf'] == 0.0

    card = candidate / 'MODEL_CARD.md'
    assert main(['model-card', '--run', str(field_run), '--evaluation', str(evaluation),
                 '--model', str(model), '--labels', str(candidate / 'labels.txt'),
                 '--baseline', str(baseline), '--reference-model', str(lab_model),
                 '--out', str(card), '--train-command', 'plant-disease train --recipe field',
                 '--crops-evaluation', str(given_crop), '--poses-evaluation',
                 str(posed_dir), '--poses-evaluation', str(given_crop),
                 '--frames-evaluation', str(smeared_dir), '--frames-evaluation',
                 str(as_frames)]) == 0
    text = card.read_text()
    blur = text.split('- Motion blur:')[1].split('\n## ')[0]
    assert '| domain | sharp | 5 px |' in blur
    lab_row = next(line for line in blur.splitlines() if line.strip().startswith('| lab |'))
    sharp_lab, smeared_lab = framed['domains']['lab'], smeared['domains']['lab']
    assert lab_row.split(' | ')[2:4] == [
        f'{100 * sharp_lab["top1"]:.1f} / {100 * sharp_lab["accepted_wrong"]:.1f}',
        f'{100 * smeared_lab["top1"]:.1f} / {100 * smeared_lab["accepted_wrong"]:.1f} |']
    # A photos evaluation is not camera frames: refused with one line, no card.
    assert main(['model-card', '--run', str(field_run), '--evaluation', str(evaluation),
                 '--model', str(model), '--labels', str(candidate / 'labels.txt'),
                 '--out', str(tmp_path / 'refused.md'), '--frames-evaluation',
                 str(evaluation), '--frames-evaluation', str(smeared_dir)]) == 2
    assert not (tmp_path / 'refused.md').exists()
    poses = text.split('## More poses per frame (`test_time_poses`)')[1].split('\n## ')[0]
    assert '| domain | one pass | 4 poses | one pass, told the crop |' in poses
    lab_row = next(line for line in poses.splitlines() if line.startswith('| lab |'))
    assert lab_row.split(' | ')[2].startswith(f'{100 * posed["domains"]["lab"]["top1"]:.1f} %')
    told = text.split('## Told the crop of the field (`crops`)')[1].split('\n## ')[0]
    orchard_row = next(line for line in told.splitlines() if line.startswith('| pp2021_apple'))
    assert orchard_row.split(' | ')[2] == f'{100 * orchard["top1"]:.1f} %'
    # Both sections say, photo by photo, how many frames the setting fixed and broke.
    paired = json.loads((compared / 'comparison.json').read_text())  # eval vs as_frames
    assert '| domain | top-1, every crop | top-1, told the crop | fixed / broken |' in told
    told_pairs = [line for line in told.splitlines() if line.startswith('| lab |')][0]
    fixed, broken = (int(part) for part in told_pairs.split(' | ')[3].split(',')[0].split(
        ' / '))
    assert fixed - broken == round(report['domains']['lab']['photos'] * (
        known['domains']['lab']['top1'] - report['domains']['lab']['top1']))
    assert broken == 0  # fewer labels to choose from never breaks a right answer
    assert 'Against one pass, photo by photo' in poses
    assert paired['base'] == str(evaluation)
    for heading in ('## Test figures per domain', '## What it is still bad at',
                    '## Per class', '## Latency', '## Data attribution and licences',
                    'previous model', 'no_leaf', 'Plant Pathology 2021',
                    'by minimising the negative log-likelihood', 'wrongly accepted',
                    'per-frame scale', 'thresholds.png'):
        assert heading in text, heading


def assert_int8_follows_the_scaling(model: Path, float_model: Path, run: Path,
                                    world: dict[str, Path]) -> None:
    """The int8 model has the scaling's ops and scores frames as the float maths says.

    The frames are photos of the kinds the int8 ranges were calibrated on (lab, field and
    non-leaf photos of the world): random noise lies outside those ranges, where int8
    clips by design, so it tested the tiny model's training luck, not the export.
    """
    import tensorflow as tf

    from plant_disease_ros.core.interpreter_loader import load_interpreter
    from plant_disease_ros.training.calibration import logits_of, softmax
    from plant_disease_ros.training.dataset import decode_rgb
    from plant_disease_ros.training.field_train import run_score_scaling

    scaling = run_score_scaling(run)
    assert scaling is not None
    loaded = load_interpreter(model, num_threads=1)
    operators = {detail['op_name'] for detail in loaded.interpreter._get_ops_details()}
    assert {'EXP', 'MUL', 'SOFTMAX'} <= operators
    photos = sorted(path for path in world['root'].rglob('*.jpg')
                    if 'labrun' not in path.parts)
    frames = np.stack([decode_rgb(photo, 48) for photo in photos])
    keras_model = tf.keras.models.load_model(str(float_model), compile=False)
    logits = logits_of(keras_model, frames.astype(np.float32))
    expected = scaling.probabilities(logits)
    scale, zero_point = loaded.output.scale, loaded.output.zero_point
    got = []
    for frame in frames:
        loaded.interpreter.set_tensor(loaded.input_index, frame[None])
        loaded.interpreter.invoke()
        raw = loaded.interpreter.get_tensor(loaded.output_index)[0].astype(np.float64)
        got.append((raw - zero_point) * scale)
    error = np.abs(np.array(got) - expected)
    # Within int8's resolution of this tiny, barely trained network (0.021 mean, 0.18 at
    # most, on these 72 photos), and far nearer the scaled scores than the unscaled ones.
    unscaled = np.abs(np.array(got) - softmax(logits))
    assert error.mean() <= 0.05 and error.max() <= 0.3
    assert error.mean() < 0.5 * unscaled.mean()


def test_the_card_of_an_int8_input_export_says_int8(field_run: Path, world: dict[str, Path],
                                                    tmp_path: Path) -> None:
    """The card reads the input and output types from the model, not the uint8 default."""
    from plant_disease_ros.cli.main import main

    model = tmp_path / 'int8' / 'model_int8.tflite'
    assert main(['export', '--run', str(field_run), '--out', str(model), '--input-type',
                 'int8', '--calibration-count', '6', '--cache-dir', '']) == 0
    evaluation = tmp_path / 'int8' / 'eval'
    assert main(['evaluate', '--model', str(model), '--field-split',
                 str(model.parent / 'field_split.json'), '--synthetic-per-kind', '1',
                 '--out', str(evaluation), '--cache-dir', '', '--threads', '1']) == 0
    card = tmp_path / 'int8' / 'MODEL_CARD.md'
    assert main(['model-card', '--run', str(field_run), '--evaluation', str(evaluation),
                 '--model', str(model), '--out', str(card)]) == 0
    text = card.read_text()
    assert '- Input: RGB pixels minus 128 (int8, scale 1, zero point -128) resized' in text
    assert '- Output: 4 class probabilities (int8), in the order' in text


def test_recalibrating_a_run_updates_what_the_card_reads(field_run: Path,
                                                        tmp_path: Path) -> None:
    """``export --calibrate --calibrate-by domain-ece`` refits, refolds, rewrites the summary."""
    import tensorflow as tf

    from plant_disease_ros.cli.main import main

    run = tmp_path / 'run'
    shutil.copytree(field_run, run)
    assert main(['export', '--run', str(run), '--out', str(tmp_path / 'm.tflite'),
                 '--calibrate', '--calibrate-by', 'domain-ece', '--calibration-count', '6',
                 '--cache-dir', '']) == 0
    summary = json.loads((run / 'train_summary.json').read_text())
    written = json.loads((run / 'calibration.json').read_text())
    assert summary['calibration_objective'] == written['objective'] == 'domain-ece'
    assert summary['temperature'] == written['temperature']
    assert set(summary['calibration']) == set(written['calibration'])
    assert summary['score_scaling'] is None and written['score_scaling'] is None
    kernel, _ = tf.keras.models.load_model(str(run / 'model.keras'),
                                           compile=False).get_layer('probs').get_weights()
    raw_kernel, _ = tf.keras.models.load_model(str(run / 'model_uncalibrated.keras'),
                                               compile=False).get_layer('probs').get_weights()
    np.testing.assert_allclose(kernel * summary['temperature'], raw_kernel, rtol=1e-5,
                               atol=1e-6)


def test_recalibrating_a_run_from_before_the_choice_keeps_its_nll_fit(field_run: Path,
                                                                      tmp_path: Path) -> None:
    """A summary without ``calibration_objective`` was fitted by NLL, and is refitted so."""
    from plant_disease_ros.training.field_train import calibrate_run

    run = tmp_path / 'run'
    shutil.copytree(field_run, run)
    summary = json.loads((run / 'train_summary.json').read_text())
    del summary['calibration_objective']
    (run / 'train_summary.json').write_text(json.dumps(summary))
    temperature, _ = calibrate_run(run, cache_dir=None)
    assert json.loads((run / 'calibration.json').read_text())['objective'] == 'nll'
    assert json.loads((run / 'train_summary.json').read_text())['temperature'] == temperature
    # The same checkpoint and validation photos: the run's own NLL temperature again.
    assert temperature == pytest.approx(summary['temperature'], rel=1e-4)


def test_field_model_keeps_the_lab_network_and_head_rows(tmp_path: Path) -> None:
    from plant_disease_ros.training.field_train import build_field_model
    from plant_disease_ros.training.model import build_model, ModelConfig

    lab = build_model(ModelConfig(num_classes=3, input_size=40, width=0.35))
    lab.save(str(tmp_path / 'lab.keras'))
    field = build_field_model(str(tmp_path / 'lab.keras'), num_classes=4, input_size=40)
    assert field.output_shape[-1] == 4 and field.name == lab.name
    backbone = 'resnet_lite_0.35'
    for mine, theirs in zip(field.get_layer(backbone).get_weights(),
                            lab.get_layer(backbone).get_weights(), strict=True):
        np.testing.assert_array_equal(mine, theirs)
    kernel, bias = field.get_layer('probs').get_weights()
    lab_kernel, lab_bias = lab.get_layer('probs').get_weights()
    np.testing.assert_array_equal(kernel[:, :3], lab_kernel)
    np.testing.assert_array_equal(bias[:3], lab_bias)
    assert np.abs(kernel[:, 3]).max() < np.abs(lab_kernel).max()
    import tensorflow as tf

    renamed = tmp_path / 'renamed.keras'
    tf.keras.Model(lab.inputs, lab.outputs, name='something_else').save(str(renamed))
    with pytest.raises(ValueError, match='not a model of this package'):
        build_field_model(str(renamed), 4, 40)


def test_growing_to_resnet_lite_deep_starts_as_the_same_function(tmp_path: Path) -> None:
    """The extra stage-3 block adds zero until trained; the rest is copied; the way back fails."""
    import tensorflow as tf

    from plant_disease_ros.training.field_train import build_field_model
    from plant_disease_ros.training.model import build_model, ModelConfig
    from plant_disease_ros.training.transfer import load_source

    tf.keras.utils.set_random_seed(3)
    field = build_model(ModelConfig(num_classes=4, input_size=40, width=0.35))
    field.save(str(tmp_path / 'field.keras'))
    grown = build_field_model(str(tmp_path / 'field.keras'), 4, 40, 'resnet_lite_deep')
    assert grown.name == 'resnet_lite_deep_0.35_40px'
    assert grown.count_params() > field.count_params()
    backbone = grown.get_layer('resnet_lite_deep_0.35')
    assert any(layer.name.startswith('stage3_2_') for layer in backbone.layers)
    images = np.random.default_rng(4).uniform(0, 255, (6, 40, 40, 3)).astype(np.float32)
    np.testing.assert_allclose(grown.predict(images, verbose=0),
                               field.predict(images, verbose=0), atol=1e-6)
    grown.save(str(tmp_path / 'grown.keras'))
    _, source = load_source(tmp_path / 'grown.keras')  # what training your own reads
    assert (source.architecture, source.width) == ('resnet_lite_deep', 0.35)
    again = build_field_model(str(tmp_path / 'grown.keras'), 4, 40)
    assert again.name == grown.name
    with pytest.raises(ValueError, match='cannot become resnet_lite'):
        build_field_model(str(tmp_path / 'grown.keras'), 4, 40, 'resnet_lite')


def test_second_stage_keeps_the_head_and_distills_from_the_lab_model(
        field_run: Path, world: dict[str, Path], tmp_path: Path,
        capsys: pytest.CaptureFixture[str]) -> None:
    """A field model fine-tuned again, with the lab teacher and a mix of its own."""
    from plant_disease_ros.cli.main import main
    from plant_disease_ros.training.field_model_card import earlier_section, training_section

    out = tmp_path / 'stage2'
    assert main(field_train_args(world, field_run / 'model.keras', out,
                                 '--distill-from', str(world['labrun'] / 'model.keras'),
                                 '--distill-weight', '0.5', '--mix', 'lab=0.5,synthetic=0.05',
                                 '--warmup-learning-rate', '2e-5', '--label-smoothing', '0',
                                 '--epochs', '1', '--steps-per-epoch', '2',
                                 # finer frames than the start's 48 px; the teacher's resized
                                 '--input-size', '56', '--cache-size', '64')) == 0
    summary = json.loads((out / 'train_summary.json').read_text())
    assert summary['init_outputs'] == len(LAB_CLASSES) + 1
    assert (summary['init_input_size'], summary['model']['input_size']) == (48, 56)
    options = summary['options']
    assert options['distill_from'] == str(world['labrun'] / 'model.keras')
    assert (options['distill_weight'], options['warmup_learning_rate']) == (0.5, 2e-5)
    assert options['label_smoothing'] == 0.0
    assert (options['mix']['lab'], options['mix']['synthetic']) == (0.5, 0.05)
    assert (out / 'field_split.json').read_text() == \
        (field_run / 'field_split.json').read_text()  # same seed, same test photos
    text = '\n'.join(training_section(summary))
    assert 'Fine-tuned from the field model' in text and 'head kept' in text
    assert 'weight 0.5, softened with temperature 1' in text
    assert 'Run at 56×56 px, where its start model took 48 px' in text
    first = '\n'.join(training_section(json.loads(
        (field_run / 'train_summary.json').read_text())))
    assert 'Transfer from the lab model' in first and 'lab rows of each batch' not in first
    earlier = earlier_section([json.loads((field_run / 'train_summary.json').read_text()),
                               summary])
    assert earlier[2].startswith('1. Transfer from the lab model')
    assert earlier[3].startswith('2. Fine-tuned from the field model')
    assert 'photometric jitter on 85 % of frames' in earlier[2] and 'best epoch' in earlier[3]
    assert earlier_section([]) == []
    capsys.readouterr()
    # A teacher that has no_leaf itself is refused with one line.
    assert main(field_train_args(world, field_run / 'model.keras', tmp_path / 'x',
                                 '--distill-from', str(field_run / 'model.keras'),
                                 '--epochs', '1', '--steps-per-epoch', '1')) != 0
    assert 'the teacher has 4 outputs' in capsys.readouterr().err


def _conv_kernels(path: Path) -> list[np.ndarray]:
    import tensorflow as tf

    from plant_disease_ros.training.transfer import backbone_layer

    model = tf.keras.models.load_model(str(path), compile=False)
    return [layer.get_weights()[0] for layer in backbone_layer(model).layers
            if layer.__class__.__name__ == 'Conv2D']


def test_cutmix_is_recorded_and_a_bad_share_refused(field_run: Path, world: dict[str, Path],
                                                   tmp_path: Path,
                                                   capsys: pytest.CaptureFixture[str]) -> None:
    """--cutmix trains, lands in the summary and the card; a share outside 0..1 is refused."""
    from plant_disease_ros.cli.main import main
    from plant_disease_ros.training.field_model_card import training_section

    start = world['labrun'] / 'model.keras'
    run = tmp_path / 'cutmix'
    assert main(field_train_args(world, start, run, '--epochs', '1', '--steps-per-epoch', '2',
                                 '--cutmix', '0.5')) == 0
    summary = json.loads((run / 'train_summary.json').read_text())
    assert summary['options']['cutmix'] == 0.5
    assert 'CutMix on 50 % of the field and composited lab rows' in '\n'.join(
        training_section(summary))
    capsys.readouterr()
    assert main(field_train_args(world, start, tmp_path / 'bad', '--cutmix', '1.5',
                                 '--epochs', '1', '--steps-per-epoch', '1')) != 0
    assert 'the CutMix share must lie in 0..1, not 1.5' in capsys.readouterr().err
    assert not (tmp_path / 'bad').exists()


def test_ema_keeps_the_averaged_weights(field_run: Path, world: dict[str, Path],
                                        tmp_path: Path,
                                        capsys: pytest.CaptureFixture[str]) -> None:
    """With --ema-momentum the epoch is scored and saved with the weights' moving average.

    The average starts from the weights after the first batch (one Adam step: each
    weight moves at most the rate, 0.01). A momentum next to 1 then hardly moves it, so
    the saved kernels stay one step from the start, while the same six steps without the
    average move them further.
    """
    from plant_disease_ros.cli.main import main
    from plant_disease_ros.training.field_model_card import training_section
    from plant_disease_ros.training.field_train import FieldTrainOptions, train_field

    start = world['labrun'] / 'model.keras'
    runs = {}
    for name, extra in (('ema', ['--ema-momentum', '0.99999']), ('plain', [])):
        runs[name] = tmp_path / name
        assert main(field_train_args(world, start, runs[name], '--epochs', '1',
                                     '--steps-per-epoch', '6', '--learning-rate', '1e-2',
                                     '--warmup-learning-rate', '1e-2', *extra)) == 0
    summary = json.loads((runs['ema'] / 'train_summary.json').read_text())
    assert summary['options']['ema_momentum'] == 0.99999
    text = '\n'.join(training_section(summary))
    assert 'weights scored and kept as their moving average (momentum 0.99999)' in text
    plain = json.loads((runs['plain'] / 'train_summary.json').read_text())
    assert plain['options']['ema_momentum'] is None
    assert 'moving average' not in '\n'.join(training_section(plain))
    before = _conv_kernels(start)
    moved = {name: max(float(np.abs(after - first).max()) for first, after in
                       zip(before, _conv_kernels(run / 'model_uncalibrated.keras'),
                           strict=True))
             for name, run in runs.items()}
    assert moved['ema'] < 0.0101 and moved['plain'] > 0.015, moved
    capsys.readouterr()
    assert main(field_train_args(world, start, tmp_path / 'bad', '--ema-momentum', '1',
                                 '--epochs', '1', '--steps-per-epoch', '1')) != 0
    assert 'the EMA momentum must lie in (0, 1), not 1' in capsys.readouterr().err
    assert not (tmp_path / 'bad').exists()  # refused before anything was decoded or written
    with pytest.raises(ValueError, match='unknown calibration objective'):
        train_field(FieldTrainOptions(
            lab_data=str(world['lab']), lab_split=str(world['labrun'] / 'split.json'),
            field_data=str(world['root'] / 'field'), negatives=str(world['root'] / 'negatives'),
            init_weights=str(start), out_dir=str(tmp_path / 'bad'),
            calibration_objective='brier'))
    assert not (tmp_path / 'bad').exists()


def test_card_says_when_a_run_grew_the_network() -> None:
    from plant_disease_ros.training.field_model_card import start_sentence

    summary = {'classes': ['a', 'b', 'no_leaf'], 'init_outputs': 3,
               'options': {'init_weights': 'field.keras', 'architecture': 'resnet_lite_deep',
                           'distill_from': None}}
    assert 'grows a second stage-3 block' in start_sentence(summary)
    summary['options']['architecture'] = None
    assert 'grows' not in start_sentence(summary)


def test_the_model_line_says_what_the_run_started_from() -> None:
    """Grown or not, head kept or new: from the run's start, not from its architecture."""
    from plant_disease_ros.training.field_model_card import network_description

    summary = {'classes': ['a', 'b', 'no_leaf'], 'init_outputs': 3,
               'model': {'architecture': 'resnet_lite_deep'},
               'options': {'init_weights': 'field.keras', 'architecture': None}}
    assert network_description(summary) == "the field model's network with its 3-output " \
        'head kept'
    summary['options']['architecture'] = 'resnet_lite_deep'  # before init_architecture
    assert network_description(summary) == "the field model's network grown by a second " \
        'stage-3 block, with its 3-output head kept'
    summary['init_architecture'] = 'resnet_lite_deep'  # it was deep already
    assert 'grown' not in network_description(summary)
    summary.update(init_outputs=2, init_architecture='resnet_lite')
    assert network_description(summary) == "the lab model's network grown by a second " \
        'stage-3 block, with a new head'


def test_the_float_twin_named_is_the_one_used(tmp_path: Path) -> None:
    from plant_disease_ros.training.field_model_card import float_model_name

    run, shipped = tmp_path / 'run', tmp_path / 'models'
    for folder in (run, shipped):
        folder.mkdir()
    # A user's run exported into itself: its float model is RUN/model.keras.
    assert float_model_name({}, run, run / 'model_int8.tflite') == 'model.keras'
    assert float_model_name({}, run, tmp_path / 'm.tflite') == str(run / 'model.keras')
    # The shipped pair: the float twin export --float-out wrote beside the int8 model.
    (shipped / 'plant_disease_float.keras').write_bytes(b'float')
    assert float_model_name({}, run, shipped / 'plant_disease_int8.tflite') == \
        'plant_disease_float.keras'
    # The --keras model the evaluation scored, whatever lies beside.
    other = tmp_path / 'other.keras'
    assert float_model_name({'keras_model': {'path': str(other), 'sha256': '0' * 64}}, run,
                            shipped / 'plant_disease_int8.tflite') == str(other)


def test_the_shipped_cards_model_line_is_what_the_generator_writes() -> None:
    """The card said "grown ..., with a new head" and, below, "its 22-output head kept"."""
    from plant_disease_ros.training.field_model_card import (
        network_description,
        read_stage_summary,
    )

    models = Path(__file__).resolve().parents[2] / 'models'
    summary = read_stage_summary(models / 'stages' / '6_field_blur.json')
    line = (models / 'MODEL_CARD.md').read_text().splitlines()[6]
    assert line.startswith('- Architecture: resnet_lite_deep width 0.75, input 144×144 RGB')
    assert line.endswith(f'parameters; {network_description(summary)}.')
    assert 'its 22-output head kept' in line


def test_card_says_when_a_run_learned_the_pose_mean() -> None:
    from plant_disease_ros.training.field_model_card import start_sentence

    summary = {'classes': ['a', 'no_leaf'], 'init_outputs': 2,
               'options': {'init_weights': 'field.keras', 'distill_from': None,
                           'pose_distill': 4, 'pose_distill_weight': 0.5}}
    assert ("the start model's own scores averaged over 4 right-angle poses of the frame "
            '(weight 0.5)') in start_sentence(summary)
    summary['options']['pose_distill'] = 0
    assert 'poses' not in start_sentence(summary)
    del summary['options']['pose_distill']  # runs from before the option
    assert 'poses' not in start_sentence(summary)


def test_card_says_when_a_run_changed_the_input_size() -> None:
    from plant_disease_ros.training.field_model_card import start_sentence

    summary = {'classes': ['a', 'no_leaf'], 'init_outputs': 2, 'init_input_size': 128,
               'options': {'init_weights': 'field.keras', 'input_size': 144,
                           'distill_from': None}}
    assert 'Run at 144×144 px, where its start model took 128 px' in start_sentence(summary)
    assert 'finer detail' in start_sentence(summary)
    summary['init_input_size'] = 144
    assert 'Run at' not in start_sentence(summary)
    del summary['init_input_size']  # runs from before the size was recorded
    assert 'Run at' not in start_sentence(summary)


def test_still_bad_at_names_under_and_over_confident_domains() -> None:
    from plant_disease_ros.training.field_model_card import still_bad_at

    def leaf(top1: float, confidence: float) -> dict:
        return {'negative': False, 'top1': top1, 'rejected': 0.1, 'ece': 0.05,
                'mean_confidence': confidence, 'per_class': []}

    evaluation = {'domains': {'lab': leaf(0.96, 0.87), 'orchard': leaf(0.86, 0.84),
                              'web': leaf(0.40, 0.64)}}
    text = '\n'.join(still_bad_at(evaluation))
    assert 'Under-confident on lab (mean score 0.87, 96.0 % right)' in text
    assert 'Over-confident on web (mean score 0.64, 40.0 % right)' in text
    assert 'orchard (mean' not in text


def blur_evaluation(px: int, top1: float, wrong: float, rejected: float,
                    width: int = 640) -> dict:
    """Return a minimal evaluation of camera frames smeared by ``px`` (one leaf domain)."""
    return {'camera': {'width': width, 'height': 480, 'framing': 'fit',
                       'center_crop_fraction': 1.0, 'vegetation_gate': True,
                       'motion_blur_px': px},
            'model_bytes': 1000, 'model_sha256': 'a' * 64, 'split': 'test', 'poses': 1,
            'domains': {'lab': {'negative': False, 'photos': 100, 'top1': top1,
                                'accepted_wrong': wrong, 'rejected': rejected},
                        'negatives': {'negative': True, 'photos': 10, 'top1': 1.0,
                                      'accepted_wrong': 0.0, 'rejected': 1.0}}}


def test_motion_blur_lines_say_where_the_lost_leaves_go() -> None:
    from plant_disease_ros.training.field_model_card import motion_blur_lines

    sharp = blur_evaluation(0, 0.98, 0.01, 0.01)
    confident = '\n'.join(motion_blur_lines([blur_evaluation(33, 0.90, 0.07, 0.03),
                                              sharp, blur_evaluation(9, 0.97, 0.02, 0.01)]))
    assert '| domain | sharp | 9 px | 33 px |' in confident  # sorted by the smear
    assert '| lab | 98.0 / 1.0 | 97.0 / 2.0 | 90.0 / 7.0 |' in confident
    assert 'negatives' not in confident.split('At 33 px')[0]
    assert 'At 33 px the leaf domains have +6 frames with a wrong map point and +2 rejected'\
        in confident
    assert 'more leaves into wrong map points than into `unknown`' in confident
    cautious = '\n'.join(motion_blur_lines([sharp, blur_evaluation(33, 0.90, 0.02, 0.09)]))
    assert '+1 frames with a wrong map point and +8 rejected' in cautious
    assert 'more of the lost leaves become `unknown`' in cautious


def test_motion_blur_lines_refuse_frames_that_do_not_match() -> None:
    from plant_disease_ros.training.field_model_card import motion_blur_lines

    sharp = blur_evaluation(0, 0.98, 0.01, 0.01)
    with pytest.raises(ValueError, match='one evaluation of sharp frames'):
        motion_blur_lines([sharp, blur_evaluation(0, 0.9, 0.0, 0.0)])
    with pytest.raises(ValueError, match='one evaluation of sharp frames'):
        motion_blur_lines([sharp])
    mismatch = 'at 9 px is not of the same model, photos, camera and settings'
    with pytest.raises(ValueError, match=mismatch):
        motion_blur_lines([sharp, blur_evaluation(9, 0.9, 0.0, 0.0, width=320)])
    # Another model of the same size (the shipped models are all 915,696 bytes).
    with pytest.raises(ValueError, match=mismatch):
        motion_blur_lines([sharp, {**blur_evaluation(9, 0.9, 0.0, 0.0), 'model_sha256': 'b'}])
    with pytest.raises(ValueError, match=mismatch):
        motion_blur_lines([sharp, {**blur_evaluation(9, 0.9, 0.0, 0.0), 'poses': 4}])
    with pytest.raises(ValueError, match='of photos, not camera frames'):
        motion_blur_lines([{**sharp, 'camera': None}, blur_evaluation(9, 0.9, 0.0, 0.0)])
    older = {key: value for key, value in sharp.items() if key != 'camera'}
    with pytest.raises(ValueError, match='evaluate again'):
        motion_blur_lines([older, blur_evaluation(9, 0.9, 0.0, 0.0)])


def test_a_stage_summary_is_read_from_its_run_folder_or_a_kept_file(tmp_path: Path) -> None:
    from plant_disease_ros.training.field_model_card import earlier_section, read_stage_summary

    kept = sorted((Path(__file__).resolve().parents[2] / 'models' / 'stages').glob('*.json'))
    assert kept, "models/stages/ keeps the summaries of the shipped model's stages"
    summaries = [read_stage_summary(path) for path in kept]
    run = tmp_path / 'run'
    run.mkdir()
    (run / 'train_summary.json').write_text(json.dumps(summaries[0]))
    assert read_stage_summary(run) == summaries[0]
    lines = earlier_section(summaries)
    assert len([line for line in lines if line[:1].isdigit()]) == len(kept)
    for line, summary in zip(lines[2:], summaries, strict=False):
        assert f'best epoch {summary["best_epoch"]} (lab ' in line
        assert summary['options']['init_weights'] in line


def test_card_says_when_a_run_smeared_its_frames() -> None:
    from plant_disease_ros.training.field_model_card import streak_clause

    options = {'augment': {'motion_blur_probability': 0.25, 'motion_blur_max_px': 16}}
    assert streak_clause(options) == (', a motion streak of 3 to 16 px along the rows or the '
                                      'columns on 25 % of the frames (a camera moving during '
                                      'the exposure)')
    assert streak_clause({'augment': {'motion_blur_probability': 0.0}}) == ''
    assert streak_clause({}) == ''
