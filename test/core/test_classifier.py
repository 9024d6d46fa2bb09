"""The TFLite-Task-style classifier with the shipped model and tiny contract models."""

from __future__ import annotations

from pathlib import Path
import sys
import types

import cv2
from helpers.tiny_model import tiny_models
import numpy as np
import pytest

from plant_disease_ros.core.classifier import (
    Category,
    Classification,
    ClassifierOptions,
    default_labels_path,
    default_model_path,
    DiseaseClassifier,
)
from plant_disease_ros.core.image_encoding import (
    BAYER_ENCODINGS,
    BYTES_PER_PIXEL,
    compressed_to_rgb,
    raw_to_rgb,
    rgb_to_raw,
    SUPPORTED_ENCODINGS,
)
from plant_disease_ros.core.interpreter_loader import ModelLoadError, TensorSpec
from plant_disease_ros.core.labels import (
    condition_of,
    crop_of,
    display_name,
    is_healthy,
    load_labels,
)
from plant_disease_ros.core.outcome import NO_LEAF_LABEL

REPO_ROOT = Path(__file__).resolve().parents[2]
MODEL_PATH = REPO_ROOT / 'models' / 'plant_disease_int8.tflite'
LABELS_PATH = REPO_ROOT / 'models' / 'labels.txt'
LEAVES_DIR = REPO_ROOT / 'test' / 'data' / 'leaves'
LEAF_PHOTOS = sorted(LEAVES_DIR.glob('*.jpg'))


def read_rgb(path: Path) -> np.ndarray:
    """Read a photo as RGB uint8."""
    bgr = cv2.imread(str(path), cv2.IMREAD_COLOR)
    assert bgr is not None, path
    return cv2.cvtColor(bgr, cv2.COLOR_BGR2RGB)


@pytest.fixture(scope='module')
def classifier() -> DiseaseClassifier:
    """Return a classifier on the shipped model and labels."""
    assert MODEL_PATH.is_file(), f'shipped model missing: {MODEL_PATH}'
    assert LABELS_PATH.is_file(), f'shipped labels missing: {LABELS_PATH}'
    return DiseaseClassifier.create_from_options(ClassifierOptions(
        model_path=str(MODEL_PATH), labels_path=str(LABELS_PATH), num_threads=2, top_k=3))


@pytest.fixture(scope='module')
def leaves() -> dict[str, np.ndarray]:
    """Return every class photo as RGB, keyed by its class label."""
    assert LEAF_PHOTOS, f'no photos in {LEAVES_DIR}'
    return {path.stem: read_rgb(path) for path in LEAF_PHOTOS}


@pytest.fixture(scope='session')
def tiny(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """Return the tiny contract models (built once per session with TensorFlow)."""
    return tiny_models(tmp_path_factory)


# Labels ----------------------------------------------------------------------------------

def test_label_helpers() -> None:
    assert is_healthy('Tomato___healthy') and is_healthy('Apple___healthy')
    assert not is_healthy('Tomato___Early_blight') and not is_healthy('unknown')
    assert crop_of('Tomato___Early_blight') == 'Tomato'
    assert condition_of('Tomato___Early_blight') == 'Early_blight'
    assert crop_of('Orange___Haunglongbing_(Citrus_greening)') == 'Orange'
    assert crop_of('unknown') == '' and condition_of('unknown') == 'unknown'
    assert display_name('Tomato___Early_blight') == 'Tomato: Early blight'


def test_shipped_labels() -> None:
    labels = load_labels(LABELS_PATH)
    assert len(labels) == 22 and labels[-1] == NO_LEAF_LABEL
    assert all(crop_of(label) for label in labels[:-1])
    assert sum(is_healthy(label) for label in labels) >= 1


@pytest.mark.parametrize(('text', 'error'), [
    ('', 'empty'), ('\n\n', 'empty'), ('a\n\nb\n', 'blank label on line 2'),
    ('a\nb\na\n', 'duplicate'),
])
def test_bad_labels_files(tmp_path: Path, text: str, error: str) -> None:
    path = tmp_path / 'labels.txt'
    path.write_text(text)
    with pytest.raises(ModelLoadError, match=error):
        load_labels(path)


def test_labels_file_whitespace(tmp_path: Path) -> None:
    path = tmp_path / 'labels.txt'
    path.write_bytes('\ufeffA___healthy\r\n  B___rust  \n\n'.encode())
    assert load_labels(path) == ['A___healthy', 'B___rust']
    with pytest.raises(ModelLoadError, match='not found'):
        load_labels(tmp_path / 'missing.txt')


# Loading ---------------------------------------------------------------------------------

def test_photo_for_every_label(classifier: DiseaseClassifier) -> None:
    leaf_labels = [label for label in classifier.labels if label != NO_LEAF_LABEL]
    assert sorted(path.stem for path in LEAF_PHOTOS) == sorted(leaf_labels)


def test_model_description(classifier: DiseaseClassifier) -> None:
    assert classifier.num_classes == len(classifier.labels) == classifier.model.num_outputs
    height, width = classifier.input_size
    assert classifier.model.input.shape == (1, height, width, 3)


@pytest.mark.parametrize('count', [21, 23, 1])
def test_label_count_mismatch(tmp_path: Path, count: int) -> None:
    labels = tmp_path / 'labels.txt'
    labels.write_text(''.join(f'Crop___class_{i}\n' for i in range(count)))
    with pytest.raises(ModelLoadError) as info:
        DiseaseClassifier.create_from_options(ClassifierOptions(
            model_path=str(MODEL_PATH), labels_path=str(labels)))
    message = str(info.value)
    outputs = len(LABELS_PATH.read_text().split())
    assert f'{outputs} outputs' in message
    assert f'{count} labels' in message
    assert '\n' not in message


def test_a_model_without_labels_path_takes_the_labels_beside_it(tmp_path: Path) -> None:
    """model_path alone: the labels.txt export wrote beside it, not the shipped names."""
    import shutil

    model = tmp_path / 'mine' / 'model_int8.tflite'
    model.parent.mkdir()
    shutil.copyfile(MODEL_PATH, model)
    # Alone in its folder: the shipped labels, as before.
    alone = DiseaseClassifier.create_from_options(ClassifierOptions(model_path=str(model)))
    assert alone.labels == LABELS_PATH.read_text().split()
    # With the labels export wrote (same count, other names): those.
    names = [f'Crop___class_{index}' for index in range(len(alone.labels))]
    (model.parent / 'labels.txt').write_text('\n'.join(names) + '\n')
    beside = DiseaseClassifier.create_from_options(ClassifierOptions(model_path=str(model)))
    assert beside.labels == names


def test_a_model_copied_without_its_labels_says_so_and_what_to_do(
        tmp_path: Path, tmp_path_factory: pytest.TempPathFactory) -> None:
    """No labels.txt beside a 21-output model: the shipped 22 labels were tried; say so."""
    import shutil

    model = tmp_path / 'm' / 'grape.tflite'
    model.parent.mkdir()
    shutil.copyfile(tiny_models(tmp_path_factory)['uint8'], model)
    for labels_path in ('', str(LABELS_PATH)):  # the node's default; the CLI's labels_beside
        with pytest.raises(ModelLoadError) as info:
            DiseaseClassifier.create_from_options(ClassifierOptions(
                model_path=str(model), labels_path=labels_path))
        message = str(info.value)
        assert message.startswith(f'{model}: model has 21 outputs but {LABELS_PATH} has 22')
        assert 'no labels.txt was found beside the model, so the shipped labels were tried' \
            in message
        assert 'copy the labels.txt that export wrote beside the model, or set labels_path' \
            in message
    # Labels of its own that do not fit: no word of the shipped ones.
    (model.parent / 'labels.txt').write_text('a\nb\nc\n')
    with pytest.raises(ModelLoadError) as info:
        DiseaseClassifier.create_from_options(ClassifierOptions(model_path=str(model)))
    assert 'shipped' not in str(info.value) and '3 labels' in str(info.value)


def test_missing_and_bad_files(tmp_path: Path) -> None:
    with pytest.raises(ModelLoadError, match='labels file not found'):
        DiseaseClassifier.create_from_options(ClassifierOptions(
            model_path=str(MODEL_PATH), labels_path=str(tmp_path / 'none.txt')))
    with pytest.raises(ModelLoadError, match='model file not found'):
        DiseaseClassifier.create_from_options(ClassifierOptions(
            model_path=str(tmp_path / 'none.tflite'), labels_path=str(LABELS_PATH)))
    text_model = tmp_path / 'model.tflite'
    text_model.write_text('not a model at all, only some text\n')
    with pytest.raises(ModelLoadError, match='not a TFLite model'):
        DiseaseClassifier.create_from_options(ClassifierOptions(
            model_path=str(text_model), labels_path=str(LABELS_PATH)))


def test_default_paths_without_ament_index(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, 'ament_index_python', None)
    monkeypatch.setitem(sys.modules, 'ament_index_python.packages', None)
    assert default_model_path() == MODEL_PATH
    assert default_labels_path() == LABELS_PATH


def fake_ament_index(monkeypatch: pytest.MonkeyPatch, share: Path | None) -> None:
    """Install an ``ament_index_python`` whose package share is ``share`` (None: unknown)."""
    package = types.ModuleType('ament_index_python')
    packages = types.ModuleType('ament_index_python.packages')

    def get_package_share_directory(name: str) -> str:
        assert name == 'plant_disease_ros'
        if share is None:
            raise LookupError(f'package {name!r} not found')
        return str(share)

    packages.get_package_share_directory = get_package_share_directory
    package.packages = packages
    monkeypatch.setitem(sys.modules, 'ament_index_python', package)
    monkeypatch.setitem(sys.modules, 'ament_index_python.packages', packages)


def test_default_paths_prefer_installed_share(tmp_path: Path,
                                              monkeypatch: pytest.MonkeyPatch) -> None:
    models = tmp_path / 'share' / 'plant_disease_ros' / 'models'
    models.mkdir(parents=True)
    (models / 'plant_disease_int8.tflite').write_bytes(b'model')
    (models / 'labels.txt').write_text('a\n')
    fake_ament_index(monkeypatch, models.parent)
    assert default_model_path() == models / 'plant_disease_int8.tflite'
    assert default_labels_path() == models / 'labels.txt'


def test_default_paths_fall_back_to_repo(tmp_path: Path,
                                         monkeypatch: pytest.MonkeyPatch) -> None:
    fake_ament_index(monkeypatch, tmp_path)  # installed, but without the model files
    assert default_model_path() == MODEL_PATH
    fake_ament_index(monkeypatch, None)  # not installed
    assert default_labels_path() == LABELS_PATH


def test_empty_options_use_shipped_model(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, 'ament_index_python', None)
    classifier = DiseaseClassifier.create_from_options(ClassifierOptions(num_threads=1))
    assert classifier.model.path == MODEL_PATH
    assert classifier.model.num_threads == 1


# Accuracy on real photos ---------------------------------------------------------------

@pytest.mark.parametrize('photo', LEAF_PHOTOS, ids=[path.stem for path in LEAF_PHOTOS])
def test_class_photo_top1(classifier: DiseaseClassifier, photo: Path) -> None:
    result = classifier.classify(read_rgb(photo))
    assert result.top.label == photo.stem, (
        f'{photo.name}: got {result.top.label} ({result.top.score:.3f}); '
        f'top-k {[(c.label, round(c.score, 3)) for c in result.categories]}')


# Input paths give the same answer -------------------------------------------------------

def reference_for(encoding: str, rgb: np.ndarray) -> np.ndarray:
    """Return the rgb8 image with the content ``encoding`` can carry (luma for mono)."""
    if encoding.startswith('mono'):
        luma = cv2.cvtColor(rgb, cv2.COLOR_RGB2GRAY)
        return cv2.cvtColor(luma, cv2.COLOR_GRAY2RGB)
    return rgb


@pytest.mark.parametrize('encoding', SUPPORTED_ENCODINGS)
def test_every_encoding_same_top1_as_rgb8(classifier: DiseaseClassifier,
                                          leaves: dict[str, np.ndarray],
                                          encoding: str) -> None:
    for label, rgb in leaves.items():
        if encoding in BAYER_ENCODINGS:
            # A mosaic comes from a camera sensor: seen at its 640 px, not the 160 px photo,
            # whose every lesion edge demosaicing would smear before the model enlarges it.
            rgb = cv2.resize(rgb, None, fx=4, fy=4, interpolation=cv2.INTER_CUBIC)
        reference = reference_for(encoding, rgb)
        data, step = rgb_to_raw(reference, 'rgb8')
        expected = classifier.classify(raw_to_rgb(data, 'rgb8', rgb.shape[1], rgb.shape[0],
                                                  step)).top
        height, width = rgb.shape[:2]
        padded_step = width * BYTES_PER_PIXEL[encoding] + 32
        for step, is_bigendian in ((None, False), (padded_step, True)):
            data, used_step = rgb_to_raw(rgb, encoding, step=step, is_bigendian=is_bigendian)
            decoded = raw_to_rgb(data, encoding, width, height, used_step, is_bigendian)
            got = classifier.classify(decoded).top
            assert got.label == expected.label, (
                f'{label} as {encoding} (step {used_step}): {got.label} {got.score:.3f} '
                f'vs rgb8 {expected.label} {expected.score:.3f}')


@pytest.mark.parametrize('extension', ['.jpg', '.png'])
def test_compressed_same_top1(classifier: DiseaseClassifier, leaves: dict[str, np.ndarray],
                              extension: str) -> None:
    formats = {'.jpg': 'bgr8; jpeg compressed bgr8', '.png': 'rgb8; png compressed bgr8'}
    for label, rgb in leaves.items():
        ok, buffer = cv2.imencode(extension, cv2.cvtColor(rgb, cv2.COLOR_RGB2BGR),
                                  [cv2.IMWRITE_JPEG_QUALITY, 95])
        assert ok
        decoded = compressed_to_rgb(buffer.tobytes(), formats[extension])
        expected = classifier.classify(rgb).top
        got = classifier.classify(decoded).top
        assert got.label == expected.label, f'{label} via {extension}'


def test_original_jpeg_bytes(classifier: DiseaseClassifier) -> None:
    for photo in LEAF_PHOTOS:
        decoded = compressed_to_rgb(photo.read_bytes(), 'jpeg')
        assert classifier.classify(decoded).top == classifier.classify(read_rgb(photo)).top


# The result ------------------------------------------------------------------------------

def test_classification_fields(classifier: DiseaseClassifier,
                               leaves: dict[str, np.ndarray]) -> None:
    rgb = leaves['Tomato___healthy']
    result = classifier.classify(rgb)
    assert isinstance(result, Classification)
    assert len(result.categories) == 3
    assert all(isinstance(c, Category) for c in result.categories)
    assert result.top is result.categories[0]
    assert result.preprocess_ms > 0 and result.invoke_ms > 0 and result.postprocess_ms > 0
    assert result.total_ms == pytest.approx(
        result.preprocess_ms + result.invoke_ms + result.postprocess_ms)
    assert set(result.timings_ms()) == {'preprocess', 'invoke', 'postprocess', 'total'}
    for category in result.categories:
        assert classifier.labels[category.index] == category.label
        assert 0.0 <= category.score <= 1.0


@pytest.mark.parametrize('top_k', [1, 2, 5, 21, 100])
def test_top_k_order_and_length(classifier: DiseaseClassifier,
                                leaves: dict[str, np.ndarray], top_k: int) -> None:
    rgb = leaves['Potato___Late_blight']
    result = classifier.classify(rgb, top_k=top_k)
    assert len(result.categories) == min(top_k, classifier.num_classes)
    scores = [c.score for c in result.categories]
    assert scores == sorted(scores, reverse=True)
    indices = [c.index for c in result.categories]
    assert len(set(indices)) == len(indices)
    probabilities = classifier.probabilities(rgb)
    assert result.top.score == pytest.approx(float(probabilities.max()))
    for a, b in zip(result.categories, result.categories[1:], strict=False):
        if a.score == b.score:
            assert a.index < b.index  # ties: lower index first


def test_top_k_default_and_invalid(classifier: DiseaseClassifier,
                                   leaves: dict[str, np.ndarray]) -> None:
    rgb = leaves['Apple___healthy']
    assert len(classifier.classify(rgb).categories) == 3
    with pytest.raises(ValueError):
        classifier.classify(rgb, top_k=0)


def test_probabilities(classifier: DiseaseClassifier, leaves: dict[str, np.ndarray]) -> None:
    probabilities = classifier.probabilities(leaves['Apple___Black_rot'])
    assert probabilities.dtype == np.float32
    assert probabilities.shape == (classifier.num_classes,)
    assert np.all(probabilities >= 0.0)
    assert abs(float(probabilities.sum()) - 1.0) < 0.1
    # Deterministic, and a fresh array each time.
    again = classifier.probabilities(leaves['Apple___Black_rot'])
    np.testing.assert_array_equal(probabilities, again)
    again[:] = -1
    assert classifier.probabilities(leaves['Apple___Black_rot']).min() >= 0.0


def test_any_image_size(classifier: DiseaseClassifier, leaves: dict[str, np.ndarray]) -> None:
    rgb = leaves['Tomato___Leaf_Mold']
    for size in ((480, 640), (1080, 1920), (8, 8), (96, 96)):
        resized = cv2.resize(rgb, size[::-1])
        assert len(classifier.classify(resized).categories) == 3
    # A non-contiguous view (the leaf cropped out of a larger frame) is classified like
    # the leaf itself: same top class, same scores as its contiguous copy.
    height, width = rgb.shape[:2]
    frame = np.zeros((height + 40, width + 60, 3), dtype=np.uint8)
    frame[10:10 + height, 20:20 + width] = rgb
    strided = frame[10:10 + height, 20:20 + width]
    assert not strided.flags['C_CONTIGUOUS']
    result = classifier.classify(strided)
    assert result.top.label == 'Tomato___Leaf_Mold'
    assert result.top.score > 0.5
    assert result.categories == classifier.classify(rgb.copy()).categories


@pytest.mark.parametrize('image', [
    np.zeros((32, 32), dtype=np.uint8),
    np.zeros((32, 32, 4), dtype=np.uint8),
    np.zeros((32, 32, 3), dtype=np.float32),
])
def test_rejects_non_rgb(classifier: DiseaseClassifier, image: np.ndarray) -> None:
    with pytest.raises(ValueError, match='RGB'):
        classifier.classify(image)


# Quantisation paths (tiny models: same weights, three input/output types) ---------------

def test_quantised_and_float_models_agree(tiny: dict[str, Path],
                                          leaves: dict[str, np.ndarray]) -> None:
    labels = tiny['uint8'].parent / 'labels.txt'
    classifiers = {
        name: DiseaseClassifier.create_from_options(ClassifierOptions(
            model_path=str(tiny[name]), labels_path=str(labels), top_k=21))
        for name in ('uint8', 'int8', 'float32')}
    for rgb in list(leaves.values())[:6]:
        probabilities = {name: c.probabilities(rgb) for name, c in classifiers.items()}
        for name in ('uint8', 'int8'):
            np.testing.assert_allclose(probabilities[name], probabilities['float32'],
                                       atol=0.03)
        np.testing.assert_allclose(probabilities['int8'], probabilities['uint8'], atol=0.01)


def test_a_float_model_giving_nan_scores_is_refused_per_frame(
        tiny: dict[str, Path], leaves: dict[str, np.ndarray]) -> None:
    """NaN passes every threshold check as a leaf and is not JSON: a per-frame error."""
    labels = tiny['uint8'].parent / 'labels.txt'
    classifier = DiseaseClassifier.create_from_options(ClassifierOptions(
        model_path=str(tiny['float32_nan']), labels_path=str(labels)))
    rgb = next(iter(leaves.values()))
    with pytest.raises(ValueError, match='the model gave 21 non-finite scores'):
        classifier.classify(rgb)
    with pytest.raises(ValueError, match='non-finite'):
        classifier.probabilities(rgb)


@pytest.mark.parametrize(('dtype', 'scale', 'zero_point', 'pixels', 'expected'), [
    (np.uint8, 1.0, 0, [0, 128, 255], [0, 128, 255]),
    (np.int8, 1.0, -128, [0, 128, 255], [-128, 0, 127]),
    (np.uint8, 2.0, 3, [0, 1, 2, 255], [3, 4, 4, 130]),
    (np.int8, 0.5, 0, [0, 63, 64, 200], [0, 126, 127, 127]),
    (np.uint8, 1.0, 10, [0, 250], [10, 255]),
    (np.float32, 0.0, 0, [0, 77, 255], [0.0, 77.0, 255.0]),
])
def test_input_quantisation(dtype: type, scale: float, zero_point: int, pixels: list[int],
                            expected: list[float]) -> None:
    spec = TensorSpec((1, 1, len(pixels), 3), dtype, scale, zero_point)
    quantise = DiseaseClassifier._make_quantiser(spec)
    image = np.repeat(np.array(pixels, dtype=np.uint8)[None, :, None], 3, axis=2)
    out = np.zeros((1, len(pixels), 3), dtype=dtype)
    quantise(image, out)
    np.testing.assert_array_equal(out[0, :, 0], np.array(expected, dtype=dtype))
