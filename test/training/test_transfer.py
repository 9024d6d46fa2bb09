"""Transfer from a trained network: backbone copied, new head, stages and BatchNorm frozen.

A tiny resnet_lite stands in for the shipped model, so these run in seconds; the shipped
model itself is exercised by test/system/test_transfer_to_node.py.
"""

from __future__ import annotations

import json
from pathlib import Path

import cv2
import numpy as np
import pytest

tf = pytest.importorskip('tensorflow')

from plant_disease_ros.training.model import (  # noqa: E402
    build_model,
    min_channels_of,
    ModelConfig,
)
from plant_disease_ros.training.train import (  # noqa: E402
    OptionConflict,
    train,
    TrainOptions,
    warm_start,
)
from plant_disease_ros.training.transfer import (  # noqa: E402
    adapt_batch_norm,
    backbone_layer,
    freeze_backbone,
    load_source,
    set_trainable,
    shipped_float_model_path,
    stage_of,
    TransferError,
    transplant,
)

SIZE = 32
CLASSES = ('blotch', 'clean', 'rust')


@pytest.fixture(scope='module')
def source(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Save a tiny 4-class resnet_lite (random weights, shifted BN statistics) with labels."""
    folder = tmp_path_factory.mktemp('source')
    tf.keras.utils.set_random_seed(1)
    model = build_model(ModelConfig(num_classes=4, input_size=SIZE, width=0.25))
    for layer in backbone_layer(model).layers:
        if isinstance(layer, tf.keras.layers.BatchNormalization):
            gamma, beta, mean, variance = layer.get_weights()
            layer.set_weights([gamma, beta, mean - 0.05, variance * 0.5])
    path = folder / 'model.keras'
    model.save(path)
    (folder / 'labels.txt').write_text('a\nb\nc\nd\n')
    return path


@pytest.fixture(scope='module')
def photos(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Write 10 synthetic photos of each of three classes (a colour cast per class)."""
    root = tmp_path_factory.mktemp('photos')
    rng = np.random.default_rng(3)
    for number, name in enumerate(CLASSES):
        (root / name).mkdir()
        for index in range(10):
            image = rng.integers(0, 120, (48, 48, 3), dtype=np.uint8)
            image[..., number] += 120
            cv2.imwrite(str(root / name / f'{index}.jpg'), image)
    return root


def test_source_is_described_and_transplanted(source: Path) -> None:
    model, described = load_source(source)
    assert (described.architecture, described.width) == ('resnet_lite', 0.25)
    assert described.input_size == SIZE and described.classes == ('a', 'b', 'c', 'd')
    target = build_model(ModelConfig(num_classes=3, input_size=48, width=0.25))
    transplant(model, target, copy_head=False)
    for left, right in zip(backbone_layer(model).get_weights(),
                           backbone_layer(target).get_weights(), strict=True):
        np.testing.assert_array_equal(left, right)
    wider = build_model(ModelConfig(num_classes=3, input_size=SIZE, width=0.5))
    with pytest.raises(TransferError, match='does not match'):
        transplant(model, wider, copy_head=False)


def test_stages_unfreeze_from_the_output_side_and_batchnorm_stays_frozen() -> None:
    model = build_model(ModelConfig(num_classes=3, input_size=SIZE, width=0.25))
    assert set_trainable(model, 2) == ['stage3', 'stage4']
    backbone = backbone_layer(model)
    for layer in backbone.layers:
        if isinstance(layer, tf.keras.layers.BatchNormalization):
            assert not layer.trainable
        elif isinstance(layer, tf.keras.layers.Conv2D):
            assert layer.trainable == (stage_of(layer.name) in ('stage3', 'stage4'))
    # Frozen BatchNorm runs in inference mode: training-mode output equals inference output.
    batch = tf.random.uniform((4, SIZE, SIZE, 3), 0, 255)
    np.testing.assert_allclose(backbone(batch, training=True), backbone(batch, training=False),
                               rtol=1e-5, atol=1e-5)
    assert set_trainable(model, None) == ['stem', 'stage1', 'stage2', 'stage3', 'stage4']
    assert set_trainable(model, 0) == [] and not backbone.trainable_weights
    set_trainable(model, None)
    freeze_backbone(model)
    assert not backbone.trainable_weights and model.get_layer('probs').trainable_weights


def test_fine_tuning_changes_only_the_unfrozen_convolutions(source: Path) -> None:
    model = build_model(ModelConfig(num_classes=3, input_size=SIZE, width=0.25))
    transplant(load_source(source)[0], model, copy_head=False)
    set_trainable(model, 1)
    before = {layer.name: layer.get_weights() for layer in backbone_layer(model).layers}
    model.compile(optimizer=tf.keras.optimizers.Adam(1e-2), loss='categorical_crossentropy')
    images = np.random.default_rng(0).uniform(0, 255, (16, SIZE, SIZE, 3)).astype(np.float32)
    model.fit(images, np.eye(3)[np.arange(16) % 3], batch_size=8, epochs=1, verbose=0)
    changed = {layer.name for layer in backbone_layer(model).layers
               if any(not np.array_equal(x, y)
                      for x, y in zip(before[layer.name], layer.get_weights(), strict=True))}
    # Only stage4's convolutions learned; every BatchNorm kept the source's statistics.
    assert changed and all(name.startswith('stage4') and name.endswith('_conv')
                           for name in changed)


def test_run_trains_a_new_head_then_fine_tunes(source: Path, photos: Path,
                                               tmp_path: Path) -> None:
    out = tmp_path / 'run'
    result = train(TrainOptions(
        data_dir=str(photos), out_dir=str(out), init=str(source), head_epochs=1, epochs=2,
        unfreeze=1, batch_size=8, cache_dir=None, verbose=0))
    summary = json.loads((out / 'train_summary.json').read_text())
    assert summary['model']['input_size'] == SIZE and summary['model']['num_classes'] == 3
    assert [stage['stage'] for stage in summary['stages']] == ['head', 'fine-tune']
    assert summary['unfrozen_stages'] == ['stage4'] and result.epochs_run == 3
    assert summary['plan']['transfer'] and summary['classes'] == list(CLASSES)
    assert len((out / 'history.csv').read_text().splitlines()) == 1 + 3
    assert result.model_path.is_file()


def test_same_classes_keep_the_head_and_skip_the_head_stage(source: Path, photos: Path,
                                                            tmp_path: Path) -> None:
    first = train(TrainOptions(data_dir=str(photos), out_dir=str(tmp_path / 'first'),
                               init=str(source), head_epochs=1, epochs=1, batch_size=8,
                               cache_dir=None, verbose=0))
    again = tmp_path / 'again'
    train(TrainOptions(data_dir=str(photos), out_dir=str(again), init=str(first.model_path),
                       epochs=1, batch_size=8, cache_dir=None, verbose=0))
    summary = json.loads((again / 'train_summary.json').read_text())
    assert summary['plan']['head_epochs'] == 0
    assert [stage['stage'] for stage in summary['stages']] == ['fine-tune']


def test_a_mismatched_width_is_refused_with_a_hint(source: Path, photos: Path,
                                                   tmp_path: Path) -> None:
    with pytest.raises(TransferError, match='--init scratch'):
        train(TrainOptions(data_dir=str(photos), out_dir=str(tmp_path), init=str(source),
                           width=0.5, cache_dir=None, verbose=0))


@pytest.mark.parametrize('flag', ['init', 'init_weights'])
def test_a_model_file_cut_short_is_named_unreadable_not_missing(
        source: Path, photos: Path, tmp_path: Path, flag: str) -> None:
    cut = tmp_path / 'cut.keras'
    cut.write_bytes(source.read_bytes()[:2000])  # an interrupted copy
    with pytest.raises(TransferError) as error:
        train(TrainOptions(data_dir=str(photos), out_dir=str(tmp_path / 'run'),
                           cache_dir=None, verbose=0, **{flag: str(cut)}))
    assert str(error.value) == (
        f'cannot load {cut}: the file exists (2000 bytes) but is not a readable Keras model '
        '(not a whole .keras zip file: cut short by an interrupted copy or save?)')
    assert not (tmp_path / 'run').exists()
    with pytest.raises(TransferError, match='no such file'):
        load_source(tmp_path / 'missing.keras')


def test_the_shipped_float_model_is_found() -> None:
    path = shipped_float_model_path()
    if not path.is_file():
        pytest.skip('shipped float model not present')
    _, described = load_source(path)
    assert (described.architecture, described.width) == ('resnet_lite_deep', 0.75)


def test_batchnorm_statistics_adapt_to_new_photos_without_changing_weights(
        source: Path) -> None:
    model = build_model(ModelConfig(num_classes=3, input_size=SIZE, width=0.25))
    transplant(load_source(source)[0], model, copy_head=False)
    freeze_backbone(model)
    stem = backbone_layer(model).get_layer('stem_bn')
    conv_before = backbone_layer(model).get_layer('stem_conv').get_weights()[0].copy()
    gamma, beta, mean_before, _ = [w.copy() for w in stem.get_weights()]
    bright = np.full((40, SIZE, SIZE, 3), 230, np.uint8)
    bright[..., 1] = np.random.default_rng(0).integers(150, 255, (40, SIZE, SIZE))
    assert adapt_batch_norm(model, bright, batch_size=16) == 3
    new_gamma, new_beta, mean_after, _ = stem.get_weights()
    assert not np.allclose(mean_before, mean_after)
    np.testing.assert_array_equal(gamma, new_gamma)
    np.testing.assert_array_equal(beta, new_beta)
    np.testing.assert_array_equal(
        conv_before, backbone_layer(model).get_layer('stem_conv').get_weights()[0])
    # The statistics now describe these photos: the stem's batch mean is the moving mean.
    features = backbone_layer(model).get_layer('stem_conv')(
        model.get_layer('normalise')(tf.constant(bright[:16], tf.float32)))
    np.testing.assert_allclose(mean_after, tf.reduce_mean(features, axis=(0, 1, 2)),
                               rtol=0.05, atol=1e-3)
    assert not stem.trainable and stem.momentum == pytest.approx(0.9)


def test_a_warm_start_takes_the_network_of_its_weights(source: Path, photos: Path,
                                                       tmp_path: Path) -> None:
    """--init-weights from a run's model: no need to repeat its architecture and size."""
    first = train(TrainOptions(data_dir=str(photos), out_dir=str(tmp_path / 'first'),
                               init=str(source), head_epochs=1, epochs=1, batch_size=8,
                               cache_dir=None, verbose=0))
    again = tmp_path / 'again'
    train(TrainOptions(data_dir=str(photos), out_dir=str(again),
                       init_weights=str(first.model_path), epochs=1, batch_size=8,
                       cache_dir=None, verbose=0))
    summary = json.loads((again / 'train_summary.json').read_text())
    assert summary['init'] == 'warm start'
    assert (summary['model']['input_size'], summary['model']['width']) == (SIZE, 0.25)
    # The fine-tune rate of a transfer, not from scratch's 2e-3.
    assert (summary['plan']['learning_rate'], summary['plan']['warm_start']) == (1e-3, True)
    with pytest.raises(TransferError, match='a warm start keeps its network'):
        train(TrainOptions(data_dir=str(photos), out_dir=str(tmp_path / 'wide'),
                           init_weights=str(first.model_path), width=0.5, cache_dir=None,
                           verbose=0))


def test_nothing_to_train_and_an_out_folder_in_the_photos_are_refused_first(
        source: Path, photos: Path, tmp_path: Path) -> None:
    with pytest.raises(OptionConflict, match='--unfreeze 0 .* leaves nothing to train'):
        train(TrainOptions(data_dir=str(photos), out_dir=str(tmp_path / 'none'),
                           init=str(source), head_epochs=0, unfreeze=0, cache_dir=None,
                           verbose=0))
    assert not (tmp_path / 'none').exists()
    inside = photos / 'runs' / 'mine'
    with pytest.raises(ValueError, match='lies in the photo folder'):
        train(TrainOptions(data_dir=str(photos), out_dir=str(inside), init=str(source),
                           cache_dir=None, verbose=0))
    assert not (photos / 'runs').exists()  # the photo folder is left as it was


def test_too_few_photos_for_a_validation_split_are_refused(source: Path,
                                                           tmp_path: Path) -> None:
    few = tmp_path / 'few'
    for name in CLASSES:
        (few / name).mkdir(parents=True)
        for index in range(2):
            cv2.imwrite(str(few / name / f'{index}.jpg'), np.full((40, 40, 3), 90, np.uint8))
    from plant_disease_ros.training.dataset import DatasetError

    with pytest.raises(DatasetError, match='no validation photo: 6 photos in 3 classes'):
        train(TrainOptions(data_dir=str(few), out_dir=str(tmp_path / 'run'), init=str(source),
                           cache_dir=str(tmp_path / 'cache'), verbose=0))
    # Before anything is decoded or written, as the README promises.
    assert not (tmp_path / 'run').exists() and not (tmp_path / 'cache').exists()


def test_warm_start_weights_of_another_class_count_are_refused_first(
        source: Path, photos: Path, tmp_path: Path) -> None:
    with pytest.raises(TransferError) as error:
        train(TrainOptions(data_dir=str(photos), out_dir=str(tmp_path / 'run'),
                           init_weights=str(source), cache_dir=str(tmp_path / 'cache'),
                           verbose=0))
    assert str(error.value).startswith(
        f'--init-weights {source} has 4 outputs but {photos} has 3 classes: ')
    assert f'--init {source} starts from its backbone' in str(error.value)
    assert not (tmp_path / 'run').exists() and not (tmp_path / 'cache').exists()


@pytest.mark.parametrize('labels, difference', [
    (('blotch', 'mildew', 'rust'), 'other classes than {photos} has (its mildew against clean)'),
    (('rust', 'clean', 'blotch'), 'the classes of {photos} in another order (rust, clean, '
                                  'blotch against blotch, clean, rust)')])
def test_warm_start_weights_of_other_classes_of_the_same_count_are_refused_first(
        photos: Path, tmp_path: Path, labels: tuple[str, ...], difference: str) -> None:
    """The same number of outputs is not the same classes: the head would keep its names."""
    from plant_disease_ros.training.train import resolve_options

    tf.keras.utils.set_random_seed(1)
    run = tmp_path / 'earlier'
    run.mkdir()
    build_model(ModelConfig(num_classes=3, input_size=SIZE, width=0.25)).save(run / 'model.keras')
    (run / 'labels.txt').write_text('\n'.join(labels) + '\n')
    options = TrainOptions(data_dir=str(photos), out_dir=str(tmp_path / 'run'),
                           init_weights=str(run / 'model.keras'),
                           cache_dir=str(tmp_path / 'cache'), verbose=0)
    with pytest.raises(TransferError) as error:
        train(options)
    assert str(error.value) == (
        f'--init-weights {run / "model.keras"} was trained on '
        f'{difference.format(photos=photos)}: a warm start keeps every weight, the output '
        'layer too, which would give these photos its names; --init '
        f'{run / "model.keras"} starts from its backbone with a new output layer for these '
        'classes')
    assert not (tmp_path / 'run').exists() and not (tmp_path / 'cache').exists()
    # The same names in the same order (split.json, as a run leaves it, before labels.txt).
    (run / 'split.json').write_text(json.dumps({'classes': list(CLASSES)}))
    resolved, plan, _, _ = resolve_options(options)
    assert plan.warm_start and resolved.width == 0.25


def test_a_run_folder_stands_for_its_model_and_a_rerun_names_what_is_stale(
        source: Path, photos: Path, tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    from plant_disease_ros.training.transfer import resolve_init

    first = train(TrainOptions(data_dir=str(photos), out_dir=str(tmp_path / 'first'),
                               init=str(source), head_epochs=1, epochs=1, batch_size=8,
                               cache_dir=None, verbose=0))
    assert resolve_init(str(tmp_path / 'first')) == first.model_path
    with pytest.raises(TransferError, match='a folder without model.keras'):
        resolve_init(str(tmp_path))
    (tmp_path / 'first' / 'model_int8.tflite').write_bytes(b'old')
    (tmp_path / 'first' / 'eval').mkdir()
    capsys.readouterr()
    train(TrainOptions(data_dir=str(photos), out_dir=str(tmp_path / 'first'),
                       init=str(source), head_epochs=1, epochs=1, batch_size=8,
                       cache_dir=None, verbose=0, overwrite=True))
    assert ("holds an earlier run's model_int8.tflite, eval: they describe the earlier "
            'model') in capsys.readouterr().err


def test_a_run_whose_budget_is_spent_before_any_stage_reports_nothing_as_its_model(
        source: Path, photos: Path, tmp_path: Path) -> None:
    """An earlier run's model.keras in --out must not become this run's result."""
    out = tmp_path / 'run'
    out.mkdir()
    (out / 'model.keras').write_bytes(b'an earlier run')
    with pytest.raises(RuntimeError, match='no training stage ran'):
        train(TrainOptions(data_dir=str(photos), out_dir=str(out), init=str(source),
                           head_epochs=0, epochs=1, batch_size=8, cache_dir=None, verbose=0,
                           time_budget_min=1e-9, overwrite=True))
    assert not (out / 'train_summary.json').exists()
    assert (out / 'model.keras').read_bytes() == b'an earlier run'


@pytest.mark.parametrize('width', [0.25, 0.3])
def test_no_layer_of_a_narrow_network_has_fewer_than_16_channels(width: float) -> None:
    """TensorFlow's oneDNN kernels crash training an 8-channel stage on 2+ threads."""
    model = build_model(ModelConfig(num_classes=3, input_size=32, width=width))
    convolutions = [layer for layer in model.get_layer(f'resnet_lite_{width:g}').layers
                    if isinstance(layer, tf.keras.layers.Conv2D)]
    assert convolutions
    assert min(layer.filters for layer in convolutions) == 16


def test_a_narrow_source_trained_before_the_channel_floor_still_transfers(
        tmp_path: Path) -> None:
    """A width-0.25 run from before the 16-channel floor (8-channel stem) is rebuilt as it
    is, so transfer and a warm start take its weights instead of a shape mismatch.

    (Nothing is fitted here: an 8-channel network is what crashes oneDNN on 2 threads.)
    """
    tf.keras.utils.set_random_seed(2)
    old = build_model(ModelConfig(num_classes=4, input_size=SIZE, width=0.25,
                                  min_channels=8))
    old_path = tmp_path / 'old' / 'model.keras'
    old_path.parent.mkdir()
    old.save(old_path)
    source_model, described = load_source(old_path)
    assert described.width == 0.25 and min_channels_of(source_model) == 8
    as_now = build_model(ModelConfig(num_classes=3, input_size=SIZE, width=0.25))
    with pytest.raises(TransferError, match='does not match'):
        transplant(source_model, as_now, copy_head=False)
    target = build_model(ModelConfig(num_classes=3, input_size=SIZE, width=0.25,
                                     min_channels=min_channels_of(source_model)))
    transplant(source_model, target, copy_head=False)
    for got, want in zip(backbone_layer(target).get_weights(),
                         backbone_layer(source_model).get_weights(), strict=True):
        np.testing.assert_array_equal(got, want)
    same = build_model(ModelConfig(num_classes=4, input_size=SIZE, width=0.25,
                                   min_channels=min_channels_of(source_model)))
    warm_start(same, source_model, str(old_path))
    assert min_channels_of(same) == 8
