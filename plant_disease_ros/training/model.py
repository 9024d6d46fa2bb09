"""The classifier network and its training-time augmentation (TensorFlow/Keras).

The network takes raw RGB pixels (0..255, float32) and normalises them itself, so the
exported TFLite model needs nothing but a resize in front of it (the model contract of
the robot side).
"""

from __future__ import annotations

from dataclasses import dataclass

ARCHITECTURES = ('mobilenet_v2', 'mobilenet_v3_small')


@dataclass(frozen=True)
class ModelConfig:
    """What defines a network: architecture, width multiplier, input size, head dropout."""

    num_classes: int
    input_size: int = 128
    width: float = 0.5
    architecture: str = 'mobilenet_v2'
    dropout: float = 0.2


def build_model(config: ModelConfig):
    """Build an untrained Keras classifier for raw RGB uint8-range input."""
    import tensorflow as tf

    keras = tf.keras
    if config.architecture not in ARCHITECTURES:
        raise ValueError(f'unknown architecture {config.architecture!r}; '
                         f'choose one of {", ".join(ARCHITECTURES)}')
    shape = (config.input_size, config.input_size, 3)
    inputs = keras.Input(shape=shape, name='rgb')
    # Normalisation lives in the model: the robot feeds raw pixels.
    x = keras.layers.Rescaling(1.0 / 127.5, offset=-1.0, name='normalise')(inputs)
    if config.architecture == 'mobilenet_v2':
        backbone = keras.applications.MobileNetV2(
            input_shape=shape, alpha=config.width, include_top=False, weights=None)
    else:
        backbone = keras.applications.MobileNetV3Small(
            input_shape=shape, alpha=config.width, include_top=False, weights=None,
            include_preprocessing=False, minimalistic=True)
    # Keras' applications use BatchNorm momentum 0.999, tuned for ImageNet-sized epochs;
    # with a few hundred steps an epoch the moving statistics would lag the weights for
    # many epochs and validation would sit at chance. 0.99 tracks within ~2 epochs.
    for layer in backbone.layers:
        if isinstance(layer, keras.layers.BatchNormalization):
            layer.momentum = 0.99
    x = backbone(x)
    x = keras.layers.GlobalAveragePooling2D(name='pool')(x)
    x = keras.layers.Dropout(config.dropout, name='dropout')(x)
    outputs = keras.layers.Dense(config.num_classes, activation='softmax', name='probs')(x)
    return keras.Model(inputs, outputs, name=f'{config.architecture}_{config.width:g}_'
                                              f'{config.input_size}px')


def feature_model(model):
    """Return a Keras model mapping the input to the pooled penultimate features."""
    import tensorflow as tf

    return tf.keras.Model(model.inputs, model.get_layer('pool').output)


def make_augmenter(seed: int, strength: float = 1.0):
    """Return a function that augments a float32 batch (B×H×W×3, 0..255) in a tf.data map.

    Geometry (flips, rotation, zoom) teaches pose invariance; photometric jitter
    (brightness, contrast, saturation, hue) and occasional blur make the lab photos less
    unlike a moving robot's frames.
    """
    import tensorflow as tf

    keras = tf.keras
    geometry = keras.Sequential([
        keras.layers.RandomFlip('horizontal_and_vertical', seed=seed),
        keras.layers.RandomRotation(0.08 * strength, fill_mode='reflect', seed=seed + 1),
        keras.layers.RandomZoom((-0.15 * strength, 0.1 * strength), fill_mode='reflect',
                                seed=seed + 2),
    ], name='augment_geometry')
    generator = tf.random.Generator.from_seed(seed + 3)

    def blur(batch):
        kernel_1d = tf.constant([1.0, 4.0, 6.0, 4.0, 1.0]) / 16.0
        kernel = tf.tensordot(kernel_1d, kernel_1d, axes=0)[:, :, None, None]
        kernel = tf.tile(kernel, [1, 1, 3, 1])
        return tf.nn.depthwise_conv2d(batch, kernel, [1, 1, 1, 1], 'SAME')

    def augment(images, labels):
        images = geometry(images, training=True)
        batch = tf.shape(images)[0]
        scaled = images / 255.0
        brightness = generator.uniform([batch, 1, 1, 1], -0.15, 0.15) * strength
        contrast = 1.0 + generator.uniform([batch, 1, 1, 1], -0.2, 0.2) * strength
        mean = tf.reduce_mean(scaled, axis=[1, 2, 3], keepdims=True)
        scaled = (scaled - mean) * contrast + mean + brightness
        grey = tf.reduce_mean(scaled, axis=-1, keepdims=True)
        saturation = 1.0 + generator.uniform([batch, 1, 1, 1], -0.25, 0.25) * strength
        scaled = (scaled - grey) * saturation + grey
        hue = generator.uniform([batch, 1, 1, 3], -0.03, 0.03) * strength
        scaled = scaled + hue
        use_blur = tf.cast(generator.uniform([batch, 1, 1, 1]) < 0.2 * strength, tf.float32)
        scaled = use_blur * blur(scaled) + (1.0 - use_blur) * scaled
        return tf.clip_by_value(scaled, 0.0, 1.0) * 255.0, labels

    return augment
