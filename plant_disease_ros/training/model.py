"""The classifier network and its training-time augmentation (TensorFlow/Keras).

The network takes raw RGB pixels (0..255, float32) and normalises them itself, so the
exported TFLite model needs nothing but a resize in front of it (the model contract of
the robot side).
"""

from __future__ import annotations

from dataclasses import dataclass

ARCHITECTURES = ('resnet_lite', 'resnet_lite_deep', 'mobilenet_v2', 'mobilenet_v3_small')
# resnet_lite_deep: resnet_lite with a second residual block in stage 3 (the extra block is
# named stage3_2 so that per-stage freezing treats it as part of stage 3).


@dataclass(frozen=True)
class ModelConfig:
    """What defines a network: architecture, width multiplier, input size, head dropout."""

    num_classes: int
    input_size: int = 96
    width: float = 0.75
    architecture: str = 'resnet_lite'
    dropout: float = 0.2
    # resnet_lite's fewest channels; 8 only to rebuild a narrow network trained before
    # the floor was raised (see MIN_CHANNELS and min_channels_of).
    min_channels: int = 16


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
    if config.architecture in ('resnet_lite', 'resnet_lite_deep'):
        backbone = resnet_lite_backbone(shape, config.width,
                                        deep=config.architecture == 'resnet_lite_deep',
                                        min_channels=config.min_channels)
    elif config.architecture == 'mobilenet_v2':
        backbone = keras.applications.MobileNetV2(
            input_shape=shape, alpha=config.width, include_top=False, weights=None)
    else:
        backbone = keras.applications.MobileNetV3Small(
            input_shape=shape, alpha=config.width, include_top=False, weights=None,
            include_preprocessing=False, minimalistic=True)
    # Keras' applications use BatchNorm momentum 0.999, tuned for ImageNet-sized runs;
    # with a few hundred steps an epoch the moving statistics would lag the weights for
    # many epochs (inference-mode accuracy sat at chance while training mode learned,
    # measured here with 0.999 and 0.99). 0.9 tracks the weights within a few steps.
    for layer in backbone.layers:
        if isinstance(layer, keras.layers.BatchNormalization):
            layer.momentum = BATCH_NORM_MOMENTUM
    x = backbone(x)
    x = keras.layers.GlobalAveragePooling2D(name='pool')(x)
    x = keras.layers.Dropout(config.dropout, name='dropout')(x)
    outputs = keras.layers.Dense(config.num_classes, activation='softmax', name='probs')(x)
    return keras.Model(inputs, outputs, name=f'{config.architecture}_{config.width:g}_'
                                              f'{config.input_size}px')


BATCH_NORM_MOMENTUM = 0.9


# Fewest channels of a layer. TensorFlow 2.21's oneDNN CPU kernels crash the process
# (double free, segfault) when training a network with an 8-channel stage on two or more
# threads (width 0.25 or 0.3 from scratch, measured here); 16 runs.
MIN_CHANNELS = 16


def resnet_lite_backbone(shape: tuple[int, int, int], width: float, deep: bool = False,
                         min_channels: int = MIN_CHANNELS):
    """Return a compact residual CNN: a stride-2 stem and four residual stages.

    ``deep`` adds a second block to stage 3 (about +25 % parameters and multiply-adds at
    width 0.75), for a network that must serve lab, field and no-leaf frames at once.

    Plain 3×3 convolutions converge in far fewer steps from scratch than depthwise
    MobileNet blocks and run several times more efficiently per multiply-accumulate on a
    CPU (measured here: 0.37 s against 0.48 s a 64-photo step at 96 px, with 0.70 M
    parameters at width 0.75). Channels are (32, 64, 128, 256) × ``width``, rounded to a
    multiple of 8 and at least ``min_channels`` (:data:`MIN_CHANNELS`).
    """
    import tensorflow as tf

    keras = tf.keras
    layers = keras.layers
    channels = [max(min_channels, int(round(base * width / 8)) * 8)
                for base in (32, 64, 128, 256)]

    def conv_bn(x, filters: int, kernel: int, stride: int, name: str, relu: bool = True):
        x = layers.Conv2D(filters, kernel, strides=stride, padding='same', use_bias=False,
                          name=f'{name}_conv')(x)
        x = layers.BatchNormalization(momentum=BATCH_NORM_MOMENTUM, name=f'{name}_bn')(x)
        return layers.ReLU(name=f'{name}_relu')(x) if relu else x

    def residual(x, filters: int, stride: int, name: str):
        shortcut = x
        x = conv_bn(x, filters, 3, stride, f'{name}_a')
        x = conv_bn(x, filters, 3, 1, f'{name}_b', relu=False)
        if stride != 1 or shortcut.shape[-1] != filters:
            shortcut = conv_bn(shortcut, filters, 1, stride, f'{name}_proj', relu=False)
        return layers.ReLU(name=f'{name}_out')(layers.Add(name=f'{name}_add')([x, shortcut]))

    inputs = keras.Input(shape=shape)
    x = conv_bn(inputs, channels[0], 3, 2, 'stem')
    x = residual(x, channels[0], 1, 'stage1')
    x = residual(x, channels[1], 2, 'stage2')
    x = residual(x, channels[2], 2, 'stage3')
    if deep:
        x = residual(x, channels[2], 1, 'stage3_2')
    x = residual(x, channels[3], 2, 'stage4')
    return keras.Model(inputs, x, name=f'resnet_lite_{"deep_" if deep else ""}{width:g}')


def feature_model(model):
    """Return a Keras model mapping the input to the pooled penultimate features."""
    import tensorflow as tf

    return tf.keras.Model(model.inputs, model.get_layer('pool').output)


def make_augmenter(seed: int, strength: float = 1.0):
    """Return a function that augments a float32 batch (B×H×W×3, 0..255) in a tf.data map.

    Geometry (flips, 90° turns, zoom and shift) teaches pose invariance; photometric jitter
    (brightness, contrast, saturation, hue) and occasional blur make the lab photos less
    unlike a moving robot's frames.
    """
    import tensorflow as tf

    generator = tf.random.Generator.from_seed(seed + 3)

    def blur(batch):
        kernel_1d = tf.constant([1.0, 4.0, 6.0, 4.0, 1.0]) / 16.0
        kernel = tf.tensordot(kernel_1d, kernel_1d, axes=0)[:, :, None, None]
        kernel = tf.tile(kernel, [1, 1, 3, 1])
        return tf.nn.depthwise_conv2d(batch, kernel, [1, 1, 1, 1], 'SAME')

    def geometry(images):
        # The dihedral group (flips, transposes) covers any leaf orientation in steps of
        # 90° at almost no cost; a random crop-and-resize adds zoom and shift.
        batch = tf.shape(images)[0]
        flip = generator.uniform([batch, 1, 1, 1]) < 0.5
        images = tf.where(flip, tf.reverse(images, axis=[2]), images)
        flip = generator.uniform([batch, 1, 1, 1]) < 0.5
        images = tf.where(flip, tf.reverse(images, axis=[1]), images)
        if images.shape[1] == images.shape[2]:
            swap = generator.uniform([batch, 1, 1, 1]) < 0.5
            images = tf.where(swap, tf.transpose(images, [0, 2, 1, 3]), images)
        scale = 1.0 - generator.uniform([batch], 0.0, 0.2 * strength)
        top = generator.uniform([batch]) * (1.0 - scale)
        left = generator.uniform([batch]) * (1.0 - scale)
        boxes = tf.stack([top, left, top + scale, left + scale], axis=1)
        size = tf.shape(images)[1:3]
        return tf.image.crop_and_resize(images, boxes, tf.range(batch), size)

    def augment(images, labels):
        images = geometry(images)
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


def min_channels_of(model) -> int:
    """Return the ``min_channels`` that rebuilds ``model``'s resnet_lite network.

    16 (:data:`MIN_CHANNELS`) unless its narrowest convolution has fewer filters: a narrow
    network trained before the floor was raised (8), which a warm start or a transfer
    must rebuild as it is.
    """
    import tensorflow as tf

    filters = [layer.filters for outer in model.layers
               for layer in getattr(outer, 'layers', [outer])
               if isinstance(layer, tf.keras.layers.Conv2D)]
    return min(MIN_CHANNELS, *filters) if filters else MIN_CHANNELS
