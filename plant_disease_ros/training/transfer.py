"""Start a run from a trained network: its backbone, a new head, stages to unfreeze.

The source is the shipped float model (``models/plant_disease_float.keras``) or any run's
``model.keras`` of the same architecture. Its backbone (the nested convolutional model)
is copied into a freshly built network of the run's input size; the classification head
is copied too only when the source was trained on the same class names.

BatchNorm: while a network is fine-tuned on a few hundred photos, batch statistics of
32 photos are noisy and the moving averages lag the weights, so inference-mode accuracy
falls behind training-mode accuracy. Transfer runs keep every BatchNorm layer of the
backbone in inference mode (Keras runs a BatchNorm layer with ``trainable = False`` in
inference mode) in both stages: the network trained is exactly the network exported.
By default :func:`adapt_batch_norm` first re-estimates the statistics on the new photos
(the source's describe lab leaves), then they stay frozen likewise. On the apple orchard
stand-in the two choices differed by less than its test set can resolve (one run each, a
difference within the ±2 points of its 225 test photos).
"""

from __future__ import annotations

from dataclasses import dataclass
import json
from pathlib import Path

from plant_disease_ros.core.atomic_files import sha256_of
from plant_disease_ros.training.run_files import (
    check_split_manifest,
    recorded_summary,
    RunFilesMismatch,
)

SHIPPED = 'shipped'
SCRATCH = 'scratch'
FLOAT_MODEL_FILENAME = 'plant_disease_float.keras'
# resnet_lite's layers, input side first; "unfreeze 2" trains the last two (stage3, stage4).
RESNET_LITE_STAGES = ('stem', 'stage1', 'stage2', 'stage3', 'stage4')


class TransferError(ValueError):
    """A source model that cannot start this run, with the reason in the message."""


@dataclass(frozen=True)
class TransferSource:
    """A trained network to start from, and what is known about it."""

    path: Path
    architecture: str
    width: float
    input_size: int
    classes: tuple[str, ...] | None


def shipped_float_model_path() -> Path:
    """Return the shipped float Keras model (the int8 model's twin) in the source tree."""
    from plant_disease_ros.core.classifier import default_model_path

    beside = default_model_path().with_name(FLOAT_MODEL_FILENAME)
    if beside.is_file():
        return beside
    # The installed share holds only the int8 model; the float twin stays in the source.
    return Path(__file__).resolve().parents[2] / 'models' / FLOAT_MODEL_FILENAME


def resolve_init(init: str) -> Path | None:
    """Return the model file ``init`` names (``shipped``, ``scratch``, a path or a run).

    A training run folder stands for its ``model.keras``.
    """
    if init == SCRATCH:
        return None
    path = shipped_float_model_path() if init == SHIPPED else Path(init)
    if path.is_dir():
        if (path / 'model.keras').is_file():
            return path / 'model.keras'  # a run folder: its best checkpoint
        raise TransferError(f'cannot start from {path}: a folder without model.keras; pass '
                            'a training run folder or its model.keras')
    if not path.is_file():
        hint = ' (the float twin ships in the source tree: run from a clone)' \
            if init == SHIPPED else ''
        raise TransferError(f'cannot start from {path}: no such file{hint}')
    return path


def backbone_layer(model):
    """Return the nested backbone model of a classifier built by ``build_model``."""
    import tensorflow as tf

    nested = [layer for layer in model.layers if isinstance(layer, tf.keras.Model)]
    if len(nested) != 1:
        raise TransferError(f'{model.name}: expected one nested backbone model, found '
                            f'{len(nested)}; was it built by plant-disease train?')
    return nested[0]


def _architecture_of(backbone_name: str) -> tuple[str, float | None]:
    if backbone_name.startswith('resnet_lite_deep_'):
        return 'resnet_lite_deep', float(backbone_name.rsplit('_', 1)[1])
    if backbone_name.startswith('resnet_lite_'):
        return 'resnet_lite', float(backbone_name.rsplit('_', 1)[1])
    if backbone_name.startswith('mobilenetv2'):
        return 'mobilenet_v2', None
    if backbone_name.startswith('MobileNetV3'):
        return 'mobilenet_v3_small', None
    return backbone_name, None


def source_classes(path: Path) -> tuple[str, ...] | None:
    """Return the class names a model was trained on, from its run or model folder.

    A run folder's ``train_summary.json`` names them when it records this very file
    (``model_sha256``). Its ``split.json`` is trusted only when it is the split the summary
    records: ``train --overwrite`` cut short leaves the new run's split beside the earlier
    run's model (and checkpoint). Otherwise the classes are unknown (None).
    """
    try:
        summary = recorded_summary(path.parent)
    except RunFilesMismatch:
        return None
    classes = summary.get('classes')
    if summary.get('model_sha256') and isinstance(classes, list) and path.is_file() \
            and sha256_of(path) == summary['model_sha256']:
        return tuple(str(name) for name in classes)
    split = path.parent / 'split.json'
    if split.is_file():
        try:
            check_split_manifest(split)
            return tuple(json.loads(split.read_text())['classes'])
        except (OSError, ValueError, KeyError, TypeError):
            return None  # RunFilesMismatch is a ValueError: the split of another run
    labels = path.parent / 'labels.txt'
    if labels.is_file():
        return tuple(line.strip() for line in labels.read_text().splitlines() if line.strip())
    return None


def unknown_classes_reason(path: Path) -> str:
    """Return why :func:`source_classes` could not name the classes of ``path``.

    The run's own files say it when they disagree (a ``split.json`` that is not the split
    the summary records, a summary that cannot be read): that text, else the files missing.
    """
    try:
        recorded_summary(path.parent)
        check_split_manifest(path.parent / 'split.json')
    except RunFilesMismatch as error:
        return str(error)
    if (path.parent / 'split.json').is_file():
        return f'{path.parent / "split.json"} names no classes that can be read'
    return 'no train_summary.json recording it, split.json or labels.txt beside it'


def load_keras_file(path: str | Path):
    """Load a Keras model file to start from; :class:`TransferError` saying why if not.

    Keras says "File not found" for a ``.keras`` file that is there but cut short (an
    interrupted copy or save); the error here tells a missing file from an unreadable one.
    """
    import zipfile

    import tensorflow as tf

    path = Path(path)
    if not path.exists():
        raise TransferError(f'cannot load {path}: no such file')
    try:
        return tf.keras.models.load_model(str(path), compile=False)
    except (OSError, ValueError, KeyError, EOFError, zipfile.BadZipFile) as error:
        reason = str(error).splitlines()[0] if str(error) else type(error).__name__
        if not path.is_file():
            what = 'a folder, not a Keras model file'
        elif reason.startswith('File not found') or not zipfile.is_zipfile(path):
            what = (f'the file exists ({path.stat().st_size} bytes) but is not a readable '
                    'Keras model (not a whole .keras zip file: cut short by an interrupted '
                    'copy or save?)')
        else:
            what = f'the file exists but is not a readable Keras model ({reason})'
        raise TransferError(f'cannot load {path}: {what}') from error


def load_source(path: Path, width: float | None = None):
    """Load a source model; return ``(keras model, TransferSource)``."""
    model = load_keras_file(path)
    architecture, found_width = _architecture_of(backbone_layer(model).name)
    classes = source_classes(path)
    if classes is not None and len(classes) != model.output_shape[-1]:
        classes = None  # the folder's labels belong to another model
    source = TransferSource(path=path, architecture=architecture,
                            width=found_width if found_width is not None else (width or 0.75),
                            input_size=int(model.input_shape[1]), classes=classes)
    return model, source


def transplant(source_model, target_model, copy_head: bool) -> None:
    """Copy the backbone (and with ``copy_head`` the output layer) into ``target_model``."""
    source_backbone = backbone_layer(source_model)
    target_backbone = backbone_layer(target_model)
    source_weights = source_backbone.get_weights()
    if [w.shape for w in source_weights] != [w.shape for w in target_backbone.get_weights()]:
        raise TransferError(f'the backbone of the source ({source_backbone.name}) does not '
                            f"match this run's ({target_backbone.name})")
    target_backbone.set_weights(source_weights)
    if copy_head:
        target_model.get_layer('probs').set_weights(
            source_model.get_layer('probs').get_weights())


def stage_of(layer_name: str) -> str | None:
    """Return the resnet_lite stage a backbone layer belongs to, or None."""
    prefix = layer_name.split('_', 1)[0]
    return prefix if prefix in RESNET_LITE_STAGES else None


def set_trainable(model, unfreeze: int | None) -> list[str]:
    """Freeze the backbone except its last ``unfreeze`` stages (None: all); return those.

    BatchNorm layers of the backbone stay frozen (inference mode) whatever ``unfreeze``
    says; the head is always trainable. ``unfreeze=0`` trains the head only.
    """
    import tensorflow as tf

    backbone = backbone_layer(model)
    backbone.trainable = True
    if unfreeze is None or unfreeze >= len(RESNET_LITE_STAGES):
        trained = list(RESNET_LITE_STAGES)
    else:
        trained = list(RESNET_LITE_STAGES[len(RESNET_LITE_STAGES) - max(0, unfreeze):])
    staged = any(stage_of(layer.name) for layer in backbone.layers)
    for layer in backbone.layers:
        if isinstance(layer, tf.keras.layers.BatchNormalization):
            layer.trainable = False
        elif staged:
            layer.trainable = stage_of(layer.name) in trained
        else:  # no stage names (MobileNet): all or nothing
            layer.trainable = unfreeze != 0
    if unfreeze == 0:
        backbone.trainable = False
        return []
    return trained if staged else ['all']


def freeze_backbone(model) -> None:
    """Freeze the whole backbone (stage 1: the head learns on fixed features)."""
    backbone_layer(model).trainable = False


def adapt_batch_norm(model, images, batch_size: int = 64, seed: int = 0) -> int:
    """Re-estimate the backbone's BatchNorm statistics on ``images`` (uint8 N×H×W×3).

    The source's moving means and variances describe its own photos (lab leaves); a new
    crop photographed in a field has other statistics. This sets each BatchNorm layer's
    statistics to the average over ``images`` of its batch statistics (with every earlier
    layer already normalised by its own), without changing any learned weight, so the
    frozen backbone normalises the new photos as it did its own. Returns the batches used.
    """
    import numpy as np
    import tensorflow as tf

    backbone = backbone_layer(model)
    norms = [layer for layer in backbone.layers
             if isinstance(layer, tf.keras.layers.BatchNormalization)]
    saved = [(layer.trainable, layer.momentum) for layer in norms]
    normalise = model.get_layer('normalise')
    # Mixed batches: batches of one class would miss the variance between the classes.
    images = images[np.random.default_rng(seed).permutation(len(images))]
    batches = 0
    try:
        for layer in norms:
            layer.trainable = True
        for start in range(0, len(images), batch_size):
            batch = images[start:start + batch_size]
            if len(batch) < 2:
                break
            # A running average: the n-th batch weighs 1/n (momentum (n-1)/n).
            for layer in norms:
                layer.momentum = batches / (batches + 1)
            backbone(normalise(tf.constant(np.asarray(batch, np.float32))), training=True)
            batches += 1
    finally:
        for layer, (trainable, momentum) in zip(norms, saved, strict=True):
            layer.trainable = trainable
            layer.momentum = momentum
    return batches
