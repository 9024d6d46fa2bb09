"""Build tiny TFLite models of the model contract (and broken variants) for loader tests.

The models are untrained (random weights); they exist to exercise input/output dtypes,
quantisation and the loader's checks without the shipped model. TensorFlow is imported
only when a model is built; tests skip when it is not installed.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest

INPUT_SIZE = 96
NUM_CLASSES = 21

# name -> keyword arguments of build_tiny_model
VARIANTS: dict[str, dict] = {
    'uint8': {'quantize': 'uint8'},
    'int8': {'quantize': 'int8'},
    'float32': {'quantize': 'float32'},
    'grey_input': {'quantize': 'uint8', 'channels': 1},
    'two_outputs': {'quantize': 'float32', 'num_outputs': 2},
    'float32_nan': {'quantize': 'float32', 'nan_scores': True},
}

_BUILT: dict[Path, dict[str, Path]] = {}


def _representative_images(input_size: int, channels: int, count: int = 8) -> Iterator:
    """Yield calibration batches spanning the full 0..255 pixel range."""
    rng = np.random.default_rng(0)
    for index in range(count):
        image = rng.uniform(0, 255, (1, input_size, input_size, channels))
        image[0, 0, 0, :] = 0.0 if index % 2 else 255.0
        yield [image.astype(np.float32)]


def build_tiny_model(path: Path, *, num_classes: int = NUM_CLASSES,
                     input_size: int = INPUT_SIZE, quantize: str = 'uint8',
                     channels: int = 3, num_outputs: int = 1, seed: int = 0,
                     nan_scores: bool = False) -> Path:
    """Write a Rescaling -> Conv -> GAP -> Dense softmax TFLite model to ``path``.

    ``quantize`` is 'uint8' or 'int8' (full-integer model with that input and output
    type) or 'float32' (no quantisation). ``nan_scores`` makes the head's bias NaN, so
    every score is NaN (a float model gone bad; only float32).
    """
    import tensorflow as tf

    tf.keras.utils.set_random_seed(seed)
    keras = tf.keras
    inputs = keras.Input(shape=(input_size, input_size, channels), name='rgb')
    x = keras.layers.Rescaling(1.0 / 127.5, offset=-1.0)(inputs)
    x = keras.layers.Conv2D(8, 3, strides=4, activation='relu')(x)
    x = keras.layers.GlobalAveragePooling2D()(x)
    outputs = [keras.layers.Dense(num_classes, activation='softmax', name=f'probs{i}')(x)
               for i in range(num_outputs)]
    model = keras.Model(inputs, outputs if num_outputs > 1 else outputs[0])
    if nan_scores:
        head = model.get_layer('probs0')
        kernel, bias = head.get_weights()
        head.set_weights([kernel, np.full_like(bias, np.nan)])
    converter = tf.lite.TFLiteConverter.from_keras_model(model)
    if quantize in ('uint8', 'int8'):
        converter.optimizations = [tf.lite.Optimize.DEFAULT]
        converter.representative_dataset = lambda: _representative_images(input_size,
                                                                           channels)
        converter.target_spec.supported_ops = [tf.lite.OpsSet.TFLITE_BUILTINS_INT8]
        dtype = tf.uint8 if quantize == 'uint8' else tf.int8
        converter.inference_input_type = dtype
        converter.inference_output_type = dtype
    elif quantize != 'float32':
        raise ValueError(f'unknown quantize {quantize!r}')
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(converter.convert())
    return path


def write_labels(path: Path, count: int = NUM_CLASSES) -> Path:
    """Write ``count`` PlantVillage-style labels to ``path``."""
    path.write_text(''.join(f'Crop{i}___condition_{i}\n' for i in range(count)))
    return path


def tiny_models(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """Build every variant once per test session; skip the test without TensorFlow."""
    pytest.importorskip('tensorflow')
    directory = tmp_path_factory.getbasetemp() / 'tiny_models'
    if directory not in _BUILT:
        _BUILT[directory] = {
            name: build_tiny_model(directory / f'{name}.tflite', **kwargs)
            for name, kwargs in VARIANTS.items()}
        write_labels(directory / 'labels.txt')
    return _BUILT[directory]
