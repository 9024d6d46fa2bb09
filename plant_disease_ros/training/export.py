"""Full-integer int8 TFLite export of a trained Keras classifier.

Weights and activations are int8; the input is uint8 (raw pixels, scale 1, zero point 0
when the representative sample spans 0..255) or int8; the output is uint8/int8
probabilities. Calibration uses a representative sample of the training split only.
"""

from __future__ import annotations

import contextlib
from dataclasses import dataclass
import io
from pathlib import Path
import shutil
import sys

import numpy as np

from plant_disease_ros.core.atomic_files import replacing, write_bytes_atomic, write_text_atomic
from plant_disease_ros.core.interpreter_loader import ModelLoadError
from plant_disease_ros.core.labels import load_labels
from plant_disease_ros.core.output_paths import check_output_file
from plant_disease_ros.training.calibration import ScoreScaling, with_score_scaling
from plant_disease_ros.training.dataset import (
    DatasetError,
    load_images,
    print_progress,
    read_manifest,
    Split,
    subsample,
)


@dataclass
class ExportResult:
    """Where the model went and what it is."""

    tflite_path: Path
    labels_path: Path
    size_bytes: int
    calibration_images: int  # training photos (a black and a white frame come on top)


def representative_images(manifest: dict, size: int, count: int = 300,
                          seed: int = 7, cache_dir: str | None = None,
                          data_dir: str | Path | None = None) -> np.ndarray:
    """Return up to ``count`` training-split photos, balanced across classes, for calibration.

    ``manifest`` is a split manifest as read by :func:`read_manifest`; its photos are
    read under ``data_dir`` when given, else under the manifest's ``root``.
    """
    split = Split.from_manifest(manifest)
    root = Path(data_dir or manifest['root'])
    if not root.is_dir():
        raise DatasetError(f'photo folder {root} of the split manifest is missing: pass the '
                           'training photos as --data')
    per_class = max(1, int(np.ceil(count / len(split.classes))))
    files = subsample(split.parts['train'], per_class, seed=seed)
    images, _, unreadable = load_images(root, files, size, cache_dir=cache_dir,
                                        progress=print_progress('calibration photos'))
    if not len(images):
        raise DatasetError(f'no readable calibration photos under {root} ({len(unreadable)} '
                           'training photos of the split manifest unreadable or missing)')
    return images


def field_representative_images(field_split: str | Path, size: int, count: int = 300,
                                seed: int = 7, cache_dir: str | None = None,
                                lab_data: str | None = None) -> np.ndarray:
    """Return up to ``count`` training photos of every domain of a field split, for calibration.

    Half come from the lab split (balanced across classes), half from the field and
    non-leaf domains (split evenly between them), so the activation ranges cover both.
    """
    from plant_disease_ros.training.field_data import (
        domain_files,
        read_field_split,
        resolve_lab_split,
    )

    manifest = read_field_split(field_split)
    lab_manifest = read_manifest(resolve_lab_split(manifest, field_split))
    if lab_data:
        lab_manifest = {**lab_manifest, 'root': lab_data}
    parts = [representative_images(lab_manifest, size, count // 2, seed, cache_dir)]
    domains = list(manifest['domains'])
    for domain in domains:
        root, files, _ = domain_files(manifest, domain, 'train')
        if not root.is_dir():
            raise DatasetError(f'photo folder {root} of domain {domain} in {field_split} is '
                               'missing')
        per_class = max(1, int(np.ceil(count / 2 / len(domains)
                                       / max(1, len({label for _, label in files})))))
        chosen = subsample(files, per_class, seed=seed)
        images, _, _ = load_images(root, chosen, size, cache_dir=cache_dir)
        parts.append(images)
    return np.concatenate(parts)


def labels_conflict(out_path: str | Path, labels: list[str],
                    labels_path: str | Path | None = None) -> str | None:
    """Return why writing ``labels`` beside ``out_path`` would break another model, or None.

    The nodes read a model's labels from the ``labels.txt`` beside it. A different
    ``labels.txt`` already there belongs to a model in that folder: replacing it pairs that
    model with the wrong names (or a wrong count, which stops its nodes). Allowed: the same
    labels, or replacing the folder's only model (``out_path`` itself) with its labels.
    """
    out_path = Path(out_path)
    labels_path = Path(labels_path) if labels_path else out_path.parent / 'labels.txt'
    if not labels_path.exists():
        return None
    try:
        existing = load_labels(labels_path)  # as the nodes read it
    except ModelLoadError as error:
        return f'cannot read {labels_path} to check it: {error}'
    if existing == list(labels):
        return None
    others = sorted(path.name for path in out_path.parent.glob('*.tflite')
                    if path.resolve() != out_path.resolve())
    if out_path.exists() and not others:
        return None
    owners = ', '.join(others) if others else 'another model'
    return (f'{labels_path} holds the {len(existing)} labels of {owners}, not the '
            f'{len(labels)} of this model: writing them would give {owners} the wrong '
            'names. Export into a folder of its own (--out DIR/model_int8.tflite)')


def check_outputs(out_path: str | Path, float_out: str | Path | None = None,
                  labels_out: str | Path | None = None) -> None:
    """Raise ValueError, before any work, when an export output cannot be written as a file.

    ``out_path`` is the model file: a folder there is refused (the export would write
    its labels beside the folder and fail only after the whole conversion).
    """
    check_output_file(out_path, '--out', folder_hint='; name the model file to write, '
                      f'e.g. {Path(out_path) / "model_int8.tflite"}')
    if float_out:
        check_output_file(float_out, '--float-out', folder_hint='; name the .keras file')
    check_output_file(Path(labels_out) if labels_out else Path(out_path).parent / 'labels.txt',
                      'the labels file')


def export_int8(keras_model_path: str | Path, split_manifest: str | Path,
                out_path: str | Path, *, input_type: str = 'uint8',
                calibration_count: int = 300, cache_dir: str | None = None,
                labels_out: str | Path | None = None,
                float_out: str | Path | None = None,
                field_split: str | Path | None = None,
                score_scaling: ScoreScaling | None = None,
                data_dir: str | Path | None = None) -> ExportResult:
    """Convert a Keras model to a full-integer TFLite file and write its labels file.

    With ``field_split`` (a field-fit run) the calibration photos come from every domain
    and the labels are the field split's (the lab classes and ``no_leaf``). With
    ``score_scaling`` (a run calibrated ``adaptive``) the int8 graph gets the per-frame
    score scale before its softmax; ``float_out`` stays the model without it (the same
    top-1; what Grad-CAM and transfer read). ``data_dir`` is the folder of the (lab)
    training photos when it is not the one recorded in the split manifest. Raises
    ValueError, before any work, when the labels would replace those of another model
    (:func:`labels_conflict`) or when an output cannot be written as a file
    (:func:`check_outputs`).
    """
    if input_type not in ('uint8', 'int8'):
        raise ValueError(f'input type must be uint8 or int8, not {input_type!r}')
    if calibration_count < 1:
        raise ValueError(f'calibration count must be >= 1, got {calibration_count}')
    check_outputs(out_path, float_out, labels_out)
    manifest = read_manifest(split_manifest)
    labels = (list(read_manifest(field_split)['labels']) if field_split
              else list(manifest['classes']))
    conflict = labels_conflict(out_path, labels, labels_out)
    if conflict:
        raise ValueError(conflict)
    import tensorflow as tf

    model = tf.keras.models.load_model(str(keras_model_path), compile=False)
    float_model = model
    if score_scaling is not None:
        model = with_score_scaling(model, score_scaling)
    size = int(model.input_shape[1])
    if field_split:
        images = field_representative_images(field_split, size, calibration_count,
                                              cache_dir=cache_dir,
                                              lab_data=str(data_dir) if data_dir else None)
    else:
        images = representative_images(manifest, size, calibration_count,
                                       cache_dir=cache_dir, data_dir=data_dir)
    if int(model.output_shape[-1]) != len(labels):
        raise ValueError(f'{keras_model_path} has {model.output_shape[-1]} outputs but '
                         f'{len(labels)} labels')
    # Make sure the calibrated input range is the full 0..255, so a uint8 input is the raw
    # pixel (scale 1, zero point 0) whatever the sample's darkest and brightest pixels.
    extremes = np.stack([np.zeros_like(images[0]), np.full_like(images[0], 255)])
    calibration = np.concatenate([extremes, images]).astype(np.float32)

    def representative_dataset():
        for image in calibration:
            yield [image[None]]

    converter = tf.lite.TFLiteConverter.from_keras_model(model)
    converter.optimizations = [tf.lite.Optimize.DEFAULT]
    converter.representative_dataset = representative_dataset
    converter.target_spec.supported_ops = [tf.lite.OpsSet.TFLITE_BUILTINS_INT8]
    converter.inference_input_type = tf.uint8 if input_type == 'uint8' else tf.int8
    converter.inference_output_type = tf.uint8 if input_type == 'uint8' else tf.int8
    print(f'calibrating on {len(images)} training photos (and a black and a white frame '
          'for the input range)...', file=sys.stderr)
    # The converter prints every captured variable of the SavedModel it makes (80 lines a
    # run) to stdout; kept out of the user's log unless the conversion fails.
    captured = io.StringIO()
    try:
        with contextlib.redirect_stdout(captured):
            flatbuffer = converter.convert()
    except Exception:
        sys.stdout.write(captured.getvalue())
        raise
    # Written only now that everything succeeded, each file atomically: a failed export
    # (bad calibration photos, a full disk) leaves the previous model files whole.
    out_path = Path(out_path)
    labels_path = Path(labels_out) if labels_out else out_path.parent / 'labels.txt'
    if float_out:
        # Loaded uncompiled, the model is saved without the optimizer's state (a third of
        # the size): what Grad-CAM and the agreement checks need.
        with replacing(float_out) as temporary:
            float_model.save(str(temporary))
    # The model first: if it cannot be written, the old model keeps its own labels.
    write_bytes_atomic(out_path, flatbuffer)
    write_text_atomic(labels_path, '\n'.join(labels) + '\n')
    return ExportResult(tflite_path=out_path, labels_path=labels_path,
                        size_bytes=len(flatbuffer), calibration_images=len(images))


def copy_split_manifest(split_manifest: str | Path, destination: str | Path) -> Path:
    """Copy the split manifest next to the exported model (so evaluation can reuse it)."""
    destination = Path(destination)
    if Path(split_manifest).resolve() != destination.resolve():
        shutil.copyfile(split_manifest, destination)
    return destination
