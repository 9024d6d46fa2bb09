"""Grad-CAM, ``explain`` and ``embed`` with Keras models (TensorFlow, one import per session).

Exact checks use a small untrained network of the project's architecture: with global
average pooling and a dense head right after the feature map, Grad-CAM must equal the
class activation map ``A · W[:, c] / (h·w)``. Content checks use the trained float model
(``models/plant_disease_float.keras``, else ``runs/plantvillage/model.keras``) and skip
without it.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

from conftest import MODELS_DIR, REPO_ROOT, TEST_IMAGES_DIR
import cv2
import numpy as np
import pytest

from plant_disease_ros.core.occlusion import leaf_mask, peak_on_mask

LEAVES = sorted((TEST_IMAGES_DIR / 'leaves').glob('*.jpg'))
# The model folder under test; PLANT_DISEASE_MODELS_DIR checks another export.
MODELS = Path(os.environ.get('PLANT_DISEASE_MODELS_DIR', MODELS_DIR))
MODEL = MODELS / 'plant_disease_int8.tflite'
LABELS = MODELS / 'labels.txt'
KERAS_CANDIDATES = (MODELS / 'plant_disease_float.keras',
                    REPO_ROOT / 'runs' / 'plantvillage' / 'model.keras')
PEAK_ON_LEAF_BAR = 0.7


def read_photo(path: Path) -> np.ndarray:
    return cv2.cvtColor(cv2.imread(str(path)), cv2.COLOR_BGR2RGB)


def at_size(photo: np.ndarray, size: int) -> np.ndarray:
    return cv2.resize(photo, (size, size), interpolation=cv2.INTER_AREA)


@pytest.fixture(scope='session')
def tf():
    """Import TensorFlow once (slow), quietly."""
    import os

    os.environ.setdefault('TF_CPP_MIN_LOG_LEVEL', '2')
    return pytest.importorskip('tensorflow')


# Architecture -> (feature map side at 64 px, an inner layer and its side).
ARCHITECTURES = {'resnet_lite': (4, 'stage3_out', 8),
                 'resnet_lite_deep': (4, 'stage3_2_out', 8),
                 'mobilenet_v2': (2, 'block_13_expand_relu', 4)}


@pytest.fixture(scope='session')
def mini_models(tf) -> dict:
    """Return untrained 3-class networks of the project's architectures at 64 px."""
    from plant_disease_ros.training.model import build_model, ModelConfig

    tf.keras.utils.set_random_seed(3)
    return {name: build_model(ModelConfig(num_classes=3, input_size=64, width=0.35,
                                          architecture=name))
            for name in ARCHITECTURES}


@pytest.fixture(scope='session')
def mini_model(mini_models):
    """Return the untrained network of the default architecture."""
    from plant_disease_ros.training.model import ModelConfig

    return mini_models[ModelConfig(num_classes=3).architecture]


@pytest.fixture(scope='session')
def trained_keras(tf):
    """Return the trained float model (skip when there is none; fail when it is untrained)."""
    path = next((candidate for candidate in KERAS_CANDIDATES if candidate.is_file()), None)
    if path is None:
        pytest.skip('no float Keras model at ' + ' or '.join(map(str, KERAS_CANDIDATES)))
    model = tf.keras.models.load_model(str(path), compile=False)
    labels = LABELS.read_text().split()
    size = int(model.input_shape[1])
    batch = np.stack([at_size(read_photo(p), size) for p in LEAVES]).astype(np.float32)
    predicted = np.asarray(model(batch, training=False)).argmax(axis=1)
    correct = sum(labels[i] == p.stem for i, p in zip(predicted, LEAVES, strict=True))
    # A committed model this wrong is a regression, not a placeholder to skip.
    assert correct >= 0.5 * len(LEAVES), \
        f'{path} gets only {correct}/{len(LEAVES)} test photos right'
    return model


def class_activation_map(model, images: np.ndarray, target: int) -> np.ndarray:
    """Return Zhou et al.'s CAM of a GAP + dense head: A · W[:, target] / (h·w)."""
    from plant_disease_ros.training.explain import find_backbone

    backbone = find_backbone(model)
    features = np.asarray(backbone(model.get_layer('normalise')(images), training=False))
    kernel = np.asarray(model.get_layer('probs').kernel)
    height, width = features.shape[1:3]
    return features @ kernel[:, target] / (height * width)


@pytest.mark.parametrize('architecture', list(ARCHITECTURES))
def test_gradcam_equals_the_class_activation_map(mini_models, architecture: str) -> None:
    from plant_disease_ros.training.explain import GradCam

    model = mini_models[architecture]
    side = ARCHITECTURES[architecture][0]
    images = np.random.default_rng(1).integers(0, 256, (2, 64, 64, 3)).astype(np.float32)
    gradcam = GradCam(model)
    maps, probabilities = gradcam(images, [2, 2])
    assert maps.shape == (2, side, side) and probabilities.shape == (2, 3)
    np.testing.assert_allclose(probabilities, np.asarray(model(images)), atol=1e-5)
    expected = class_activation_map(model, images, 2)
    np.testing.assert_allclose(maps, expected, rtol=1e-3, atol=1e-6)
    # Default target: each image's top class.
    top = probabilities.argmax(axis=1)
    default_maps, _ = gradcam(images)
    for row in range(2):
        np.testing.assert_allclose(default_maps[row],
                                   class_activation_map(model, images, top[row])[row],
                                   rtol=1e-3, atol=1e-6)


@pytest.mark.parametrize('architecture', list(ARCHITECTURES))
def test_gradcam_on_an_inner_layer(mini_models, architecture: str) -> None:
    from plant_disease_ros.training.explain import GradCam

    _, layer, side = ARCHITECTURES[architecture]
    images = np.random.default_rng(2).integers(0, 256, (1, 64, 64, 3)).astype(np.float32)
    gradcam = GradCam(mini_models[architecture], layer)
    maps, _ = gradcam(images)
    assert gradcam.layer_name == layer
    assert maps.shape == (1, side, side) and np.isfinite(maps).all() and maps.std() > 0


def test_gradcam_on_a_flat_model(tf) -> None:
    from plant_disease_ros.training.explain import GradCam

    keras = tf.keras
    inputs = keras.Input((16, 16, 3))
    x = keras.layers.Conv2D(4, 3, padding='same', activation='relu', name='conv')(inputs)
    x = keras.layers.GlobalAveragePooling2D()(x)
    outputs = keras.layers.Dense(2, activation='softmax', name='head')(x)
    flat = keras.Model(inputs, outputs)
    gradcam = GradCam(flat)
    assert gradcam.layer_name == 'conv'
    small = np.random.default_rng(3).uniform(0, 1, (1, 16, 16, 3)).astype(np.float32)
    maps, _ = gradcam(small, [1])
    feature_map = np.asarray(keras.Model(inputs, flat.get_layer('conv').output)(small))
    expected = feature_map @ np.asarray(flat.get_layer('head').kernel)[:, 1] / 256
    np.testing.assert_allclose(maps, expected, rtol=1e-3, atol=1e-7)


def test_gradcam_peak_lies_on_the_leaf(trained_keras) -> None:
    from plant_disease_ros.training.explain import GradCam

    gradcam = GradCam(trained_keras)
    size = gradcam.input_size[0]
    photos = [read_photo(path) for path in LEAVES]
    maps, _ = gradcam(np.stack([at_size(photo, size) for photo in photos]))
    assert maps.shape[1:] == tuple(trained_keras.get_layer(index=2).output.shape[1:3])
    on_leaf = [peak_on_mask(cam, leaf_mask(photo)) for cam, photo in
               zip(maps, photos, strict=True)]
    fraction = sum(on_leaf) / len(on_leaf)
    off = [path.stem for path, ok in zip(LEAVES, on_leaf, strict=True) if not ok]
    print(f'Grad-CAM peak on the leaf: {sum(on_leaf)}/{len(on_leaf)} = {fraction:.2f}; off '
          f'leaf: {", ".join(off) or "none"}')
    assert fraction >= PEAK_ON_LEAF_BAR


@pytest.fixture(scope='session')
def trained_int8():
    """Return the shipped int8 classifier; fail when it is untrained."""
    from plant_disease_ros.core.classifier import ClassifierOptions, DiseaseClassifier

    classifier = DiseaseClassifier.create_from_options(
        ClassifierOptions(model_path=str(MODEL), labels_path=str(LABELS)))
    correct = sum(classifier.labels[int(np.argmax(classifier.probabilities(read_photo(p))))]
                  == p.stem for p in LEAVES)
    assert correct >= 0.5 * len(LEAVES), \
        f'the shipped int8 model gets only {correct}/{len(LEAVES)} test photos right'
    return classifier


def test_explain_float_and_int8_agree(trained_keras, trained_int8) -> None:
    from plant_disease_ros.training.explain import explain_images, format_summary

    result = explain_images(LEAVES, model_path=MODEL, labels_path=LABELS, keras_path=None,
                            keras_model=trained_keras, out_dir=None)
    summary = result.summary
    print(format_summary(summary))
    assert summary['images'] == len(LEAVES)
    assert summary['occlusion_peak_on_leaf_fraction'] >= PEAK_ON_LEAF_BAR
    assert summary['gradcam_peak_on_leaf_fraction'] >= PEAK_ON_LEAF_BAR
    if not KERAS_CANDIDATES[0].is_file():
        pytest.skip(f'{KERAS_CANDIDATES[0]} is not shipped: the Keras model of the run need not '
                    'be the twin of the shipped int8 model')
    assert summary['top1_agreement'] >= 0.8
    # Chance IoU of two unrelated top-20 % regions is about 0.11.
    assert summary['iou_top20']['mean'] > 0.15


def test_explain_writes_figures_and_summary(tf, tmp_path: Path) -> None:
    from plant_disease_ros.cli.main import main

    keras = next((candidate for candidate in KERAS_CANDIDATES if candidate.is_file()), None)
    photos = [str(TEST_IMAGES_DIR / 'leaves' / f'{name}.jpg')
              for name in ('Apple___Cedar_apple_rust', 'Potato___healthy')]
    # A photo cut short in a copy is skipped and named; the others are still explained.
    whole = Path(photos[0]).read_bytes()
    (tmp_path / 'cut_short.jpg').write_bytes(whole[:len(whole) // 2])
    photos.append(str(tmp_path / 'cut_short.jpg'))
    args = ['explain', *photos, '--out', str(tmp_path), '--grid', '4', '--model', str(MODEL),
            '--labels', str(LABELS)]
    args += ['--keras', str(keras)] if keras is not None else ['--no-gradcam']
    assert main(args) == 0
    document = json.loads((tmp_path / 'explanations.json').read_text())
    assert document['grid'] == 4 and len(document['images']) == 2
    assert [item['image'] for item in document['unreadable']] == [photos[2]]
    assert 'truncated JPEG' in document['unreadable'][0]['reason']
    assert document['summary']['unreadable'] == 1
    for record in document['images']:
        assert (tmp_path / record['figure']).stat().st_size > 10_000
        assert len(record['top3_int8']) == 3
        assert np.asarray(record['occlusion_grid']).shape == (4, 4)
        assert record['occlusion_patch'] in (1, 3)
        if keras is not None:
            assert len(record['top3_float']) == 3
            # A map without information (a flat one) has no top region to compare, nor
            # one whose top region is far from 20 % of the photo (a sparse map).
            if record['occlusion_flat'] or record['iou_top20_comparable'] is False:
                assert record['iou_top20'] is None
            else:
                assert 0.0 <= record['iou_top20'] <= 1.0 and record['iou_top20_comparable']
    figure = cv2.imread(str(tmp_path / document['images'][0]['figure']))
    assert figure.shape[1] > figure.shape[0] * 1.5  # photo and overlays side by side


def make_synthetic_dataset(root: Path, per_class: int = 5) -> Path:
    """Write three classes of synthetic 'leaves' (green, yellow, brown ellipses)."""
    rng = np.random.default_rng(4)
    colours = {'Crop___green': (40, 150, 50), 'Crop___yellow': (200, 190, 60),
               'Crop___brown': (120, 70, 40)}
    for name, colour in colours.items():
        folder = root / name
        folder.mkdir(parents=True)
        for number in range(per_class):
            photo = np.full((80, 80, 3), 150, dtype=np.uint8)
            centre = (int(rng.integers(30, 50)), int(rng.integers(30, 50)))
            cv2.ellipse(photo, centre, (25, 15), int(rng.integers(0, 180)), 0, 360,
                        colour[::-1], -1)
            cv2.imwrite(str(folder / f'{number}.png'), photo)
    return root


def test_embed_on_a_three_class_dataset(mini_model, tmp_path: Path) -> None:
    from plant_disease_ros.cli.main import main

    dataset = make_synthetic_dataset(tmp_path / 'photos')
    keras_path = tmp_path / 'mini.keras'
    mini_model.save(keras_path)
    out = tmp_path / 'embedding'
    assert main(['embed', str(dataset), '--keras', str(keras_path), '--all-photos',
                 '--per-class', '4', '--k', '3', '--out', str(out)]) == 0
    document = json.loads((out / 'overlap.json').read_text())
    assert document['photos'] == 12 and document['classes'] == sorted(
        ['Crop___green', 'Crop___yellow', 'Crop___brown'])
    pairs = document['pairs']
    # Untrained features of flat-coloured ellipses: brown and yellow leaves share
    # neighbours, so the list is not empty and the checks below do run.
    assert 1 <= len(pairs) <= 3, pairs
    outgoing = dict.fromkeys(document['classes'], 0.0)
    for pair in pairs:
        first, second = pair['classes']
        assert first < second and 0.0 < pair['overlap'] <= 1.0
        # Equal class sizes: the pair's overlap is the mean of its two directions.
        assert pair['overlap'] == pytest.approx(
            (pair['first_to_second'] + pair['second_to_first']) / 2, abs=1e-3)
        outgoing[first] += pair['first_to_second']
        outgoing[second] += pair['second_to_first']
    # Every neighbour is either of the photo's own class or counted in a pair.
    for name in document['classes']:
        assert document['purity'][name] + outgoing[name] == pytest.approx(1.0, abs=1e-3)
    stored = np.load(out / 'embedding.npz')
    assert stored['pca'].shape == (12, 2) and stored['tsne'].shape == (12, 2)
    assert (out / 'pca.png').stat().st_size > 0 and (out / 'tsne.png').stat().st_size > 0
