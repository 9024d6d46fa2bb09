"""What the models look at: Grad-CAM on the float Keras model, occlusion on the int8 model.

For each photo: a Grad-CAM map of the float model (gradient of the target class's logit
with respect to the backbone's last convolutional feature map, channel-weighted), an
occlusion sensitivity map of the deployed TFLite model (:mod:`plant_disease_ros.core
.occlusion`), both overlaid on the photo in one PNG with the top-3 classes of each model,
and the IoU of the two maps' top-20 % regions: a low IoU means quantisation (or the model
change) moved what the decision rests on. ``explanations.json`` sums it up, including
whether each map's peak lies on the leaf (for photos whose leaf the mask separates from
the background: a leaf on a plain background, as in lab photos).

The leaf mask and the figure work on a copy of the photo at most ``ANALYSIS_LONG_SIDE``
pixels long (the maps are upsampled to it); the models get the photo itself.

TensorFlow is imported only when a Grad-CAM is asked for; occlusion alone needs LiteRT.
"""

from __future__ import annotations

from collections.abc import Collection, Sequence
from dataclasses import dataclass, field
import json
import os
from pathlib import Path
import statistics
from typing import Any

import cv2
import numpy as np

from plant_disease_ros.core.atomic_files import sha256_of
from plant_disease_ros.core.occlusion import (
    FALLBACK_PATCHES,
    is_flat,
    leaf_mask,
    leaf_separable,
    occlusion_map,
    overlay_heatmap,
    peak_on_mask,
    top_region_iou,
    upsample_heatmap,
)
from plant_disease_ros.core.preprocessing import resize_to_input
from plant_disease_ros.training.calibration import ScoreScaling
from plant_disease_ros.training.dataset import (
    IMAGE_SUFFIXES,
    ProgressCallback,
    read_photo,
    UnreadablePhoto,
)

FLOAT_MODEL_FILENAME = 'plant_disease_float.keras'
# The float model a training run saves, beside its export.
RUN_FLOAT_MODEL_FILENAME = 'model.keras'
SUMMARY_FILENAME = 'explanations.json'
TOP_FRACTION = 0.2
# The long side, in pixels, of the copy of a photo the leaf mask and the figure are made of:
# a 24 MP phone photo at full size took ~30 s and 2.3 GB for them alone.
ANALYSIS_LONG_SIDE = 1024
# Where a run records the score scaling its int8 export carries beyond the float model
# (read in this order, as export reads them); the shipped models keep their stages' ones.
CALIBRATION_FILENAMES = ('train_summary.json', 'calibration.json')
SHIPPED_STAGES = 'stages'
# The float scores' label when the int8 model's score calibration is not known.
UNCALIBRATED = 'float, without score calibration'


@dataclass(frozen=True)
class FloatCalibration:
    """What the int8 model does to its scores beyond its float twin, and where it was read.

    The temperature is folded into the float model already; ``scaling`` is the per-frame
    score scale of an ``adaptive`` calibration that only the int8 graph has (None: none,
    the float scores are comparable as they are).
    """

    source: Path
    scaling: ScoreScaling | None

    def describe(self) -> str:
        """Return how the float scores were made comparable, for the JSON and report."""
        if self.scaling is None:
            return f'float; the int8 model adds no score scaling ({self.source})'
        return f'float with the score scaling of the int8 model (from {self.source})'


def read_float_calibration(path: str | os.PathLike) -> FloatCalibration:
    """Read the score scaling of a run's ``train_summary.json``/``calibration.json``.

    ValueError when the file cannot be read or its ``score_scaling`` is malformed.
    """
    path = Path(path)
    try:
        summary = json.loads(path.read_text())
    except (OSError, ValueError) as error:
        raise ValueError(f'cannot read the calibration of {path}: {error}') from error
    if not isinstance(summary, dict):
        raise ValueError(f'{path} is not a training summary (a JSON object)')
    data = summary.get('score_scaling')
    try:
        scaling = ScoreScaling.from_json(data) if data is not None else None
    except ValueError as error:
        raise ValueError(f'{path}: {error}') from error
    return FloatCalibration(path, scaling)


def float_calibration_beside(keras_path: str | os.PathLike) -> FloatCalibration | None:
    """Return the calibration of the run a float Keras model comes from, or None if unknown.

    A run folder's ``train_summary.json`` (else ``calibration.json``) beside the model; for
    the shipped float model, the last stage summary in ``models/stages/`` (the shipped
    model's own run).
    """
    folder = Path(keras_path).parent
    for name in CALIBRATION_FILENAMES:
        if (folder / name).is_file():
            return read_float_calibration(folder / name)
    if Path(keras_path).name == FLOAT_MODEL_FILENAME:
        # Named <n>_<run>.json, oldest first: the highest number, not the last name.
        stages = sorted((folder / SHIPPED_STAGES).glob('*.json'), key=_stage_number)
        if stages:
            return read_float_calibration(stages[-1])
    return None


def _stage_number(path: Path) -> tuple[int, str]:
    """Return the sort key of a stage summary ``<n>_<run>.json``: its number, then its name."""
    number = path.name.split('_', 1)[0]
    return (int(number) if number.isdigit() else -1, path.name)


def default_keras_path() -> Path:
    """Return the shipped float Keras model: beside the shipped int8 model."""
    from plant_disease_ros.core.classifier import default_model_path

    return default_model_path().parent / FLOAT_MODEL_FILENAME


def keras_model_beside(model_path: str | os.PathLike) -> Path | None:
    """Return the float Keras twin beside a TFLite model, or None when there is none.

    A training run folder holds ``model.keras`` beside its export ``model_int8.tflite``;
    the shipped models folder holds ``plant_disease_float.keras``.
    """
    folder = Path(model_path).parent
    for name in (RUN_FLOAT_MODEL_FILENAME, FLOAT_MODEL_FILENAME):
        if (folder / name).is_file():
            return folder / name
    return None


def expand_image_paths(items: Sequence[str | os.PathLike],
                       exclude: str | os.PathLike | None = None) -> list[Path]:
    """Return the image files named by ``items``; folders are searched recursively, sorted.

    A folder's search skips ``exclude`` and everything under it (the output folder: a
    second run must not explain the first one's figures). Raises FileNotFoundError for a
    missing path and ValueError when nothing is left.
    """
    skipped = Path(exclude).resolve() if exclude is not None else None
    paths: list[Path] = []
    for item in items:
        path = Path(item)
        if path.is_dir():
            paths.extend(sorted(candidate for candidate in path.rglob('*')
                                if candidate.is_file()
                                and candidate.suffix.lower() in IMAGE_SUFFIXES
                                and (skipped is None
                                     or not candidate.resolve().is_relative_to(skipped))))
        elif path.is_file():
            paths.append(path)
        else:
            raise FileNotFoundError(f'{path} does not exist')
    if not paths:
        raise ValueError('no image files among ' + ', '.join(str(item) for item in items))
    return paths


def load_keras_model(path: str | os.PathLike):
    """Load a Keras classifier for inference; FileNotFoundError with a hint when missing."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(
            f'Keras model {path} not found: pass --keras runs/<run>/model.keras, or '
            '--no-gradcam for occlusion only')
    import tensorflow as tf

    return tf.keras.models.load_model(str(path), compile=False)


def find_backbone(model) -> Any | None:
    """Return the nested functional model (the backbone) of ``model``, or None if flat."""
    import tensorflow as tf

    nested = [layer for layer in model.layers if isinstance(layer, tf.keras.Model)]
    if not nested:
        return None
    return max(nested, key=lambda layer: len(layer.layers))


def _last_spatial_layer(model) -> str:
    """Return the name of the last layer with a 4-D (batch, h, w, c) output."""
    for layer in reversed(model.layers):
        shape = getattr(layer, 'output', None)
        if shape is not None and len(layer.output.shape) == 4:
            return layer.name
    raise ValueError(f'model {model.name} has no layer with a spatial feature map')


class GradCam:
    """Grad-CAM for a Keras classifier of the project's shape (nested backbone or flat).

    The model is rebuilt to output both the feature map and the penultimate features; when
    the last layer is a softmax Dense layer, its logits are recomputed from those, so the
    gradient is that of the class score before the softmax (it does not vanish for
    confident predictions).
    """

    def __init__(self, model, layer_name: str | None = None,
                 score_scaling: ScoreScaling | None = None) -> None:
        """Prepare Grad-CAM on ``layer_name`` (default: the backbone's output).

        With ``score_scaling`` (the per-frame scale an ``adaptive``-calibrated run's int8
        model has before its softmax) the probabilities are the scaled ones, comparable
        with the int8 model's; the maps and the ranking are the same.
        """
        import tensorflow as tf

        keras = tf.keras
        self.model = model
        self.input_size: tuple[int, int] = (int(model.input_shape[1]),
                                            int(model.input_shape[2]))
        head = model.layers[-1]
        self._head = head if self._is_softmax_dense(head) else None
        backbone = find_backbone(model)
        if backbone is None:
            self.layer_name = layer_name or _last_spatial_layer(model)
            final = model.layers[-2].output if self._head is not None else model.output
            self._cam_model = keras.Model(
                model.input, [model.get_layer(self.layer_name).output, final])
        else:
            self.layer_name = layer_name or f'{backbone.name} output'
            self._cam_model = self._rebuild(model, backbone, layer_name)
        self._scaling = None
        self._check()
        if score_scaling is not None:
            if self._head is None:
                raise ValueError('a score scaling needs the logits: the model does not end '
                                 'in a softmax Dense layer')
            if len(score_scaling.weights) != int(model.output_shape[-1]):
                raise ValueError(f'the score scaling has {len(score_scaling.weights)} weights '
                                 f'but the model {model.output_shape[-1]} outputs')
            self._scaling = score_scaling

    @staticmethod
    def _is_softmax_dense(layer) -> bool:
        import tensorflow as tf

        activation = getattr(layer, 'activation', None)
        return isinstance(layer, tf.keras.layers.Dense) and activation is not None \
            and getattr(activation, '__name__', '') == 'softmax'

    def _rebuild(self, model, backbone, layer_name: str | None):
        """Re-apply the outer layers around a backbone that also yields the feature map."""
        import tensorflow as tf

        keras = tf.keras
        if layer_name is None:
            inner = backbone
        else:
            inner = keras.Model(backbone.inputs,
                                [backbone.get_layer(layer_name).output, backbone.output])
        inputs = keras.Input(shape=model.input_shape[1:], name='gradcam_input')
        x = inputs
        feature_map = None
        outer = [layer for layer in model.layers
                 if not isinstance(layer, keras.layers.InputLayer)]
        if self._head is not None:
            outer = outer[:-1]
        for layer in outer:
            if layer is backbone:
                if layer_name is None:
                    x = feature_map = inner(x)
                else:
                    feature_map, x = inner(x)
            else:
                x = layer(x)
        if feature_map is None:
            raise ValueError(f'model {model.name} does not call its backbone {backbone.name}')
        return keras.Model(inputs, [feature_map, x], name='gradcam')

    def _scores(self, final):
        import tensorflow as tf

        if self._head is None:
            return final, final
        logits = tf.matmul(final, self._head.kernel) + self._head.bias
        if self._scaling is not None:
            weights = tf.constant(self._scaling.weights[:, None], logits.dtype)
            scale = tf.exp(tf.matmul(logits, weights) + self._scaling.bias)
            return logits, tf.nn.softmax(logits * scale, axis=-1)
        return logits, tf.nn.softmax(logits, axis=-1)

    def _check(self) -> None:
        """Make sure the rebuilt model computes the same probabilities as the original."""
        height, width = self.input_size
        probe = np.random.default_rng(0).integers(0, 256, (1, height, width, 3))
        probe = probe.astype(np.float32)
        expected = np.asarray(self.model(probe, training=False))
        _, final = self._cam_model(probe, training=False)
        got = np.asarray(self._scores(final)[1])
        if not np.allclose(expected, got, atol=1e-4):
            raise ValueError('could not rebuild the model for Grad-CAM: its layers are not a '
                             'simple chain around the backbone')

    def __call__(self, images: np.ndarray, target_indices: Sequence[int] | None = None,
                 ) -> tuple[np.ndarray, np.ndarray]:
        """Return ``(maps B×h×w float32, probabilities B×N)`` for a batch at input size.

        ``images`` are raw RGB pixels (uint8 or float, 0..255) at the model's input size.
        Each map is the ReLU-free channel-weighted sum of the feature map (so ties are
        rare when taking its top region); overlays clip it at 0. ``target_indices``
        defaults to each image's top class.
        """
        import tensorflow as tf

        batch = np.asarray(images, dtype=np.float32)
        if batch.ndim == 3:
            batch = batch[None]
        if batch.shape[1:3] != self.input_size:
            raise ValueError(f'images must be {self.input_size}, got {batch.shape[1:3]}')
        inputs = tf.convert_to_tensor(batch)
        with tf.GradientTape() as tape:
            feature_map, final = self._cam_model(inputs, training=False)
            tape.watch(feature_map)
            scores, probabilities = self._scores(final)
            if target_indices is None:
                targets = tf.argmax(probabilities, axis=-1, output_type=tf.int32)
            else:
                targets = tf.constant(np.asarray(target_indices, dtype=np.int32))
            chosen = tf.gather(scores, targets, axis=1, batch_dims=1)
            total = tf.reduce_sum(chosen)
        gradients = tape.gradient(total, feature_map)
        weights = tf.reduce_mean(gradients, axis=(1, 2), keepdims=True)
        maps = tf.reduce_sum(weights * feature_map, axis=-1)
        return np.asarray(maps, dtype=np.float32), np.asarray(probabilities, dtype=np.float32)


def top_k(probabilities: np.ndarray, labels: Sequence[str], k: int = 3) -> list[dict]:
    """Return the ``k`` best classes as ``[{'index', 'label', 'score'}]``, best first."""
    scores = np.asarray(probabilities, dtype=np.float64).reshape(-1)
    order = np.argsort(-scores, kind='stable')[:k]
    return [{'index': int(i), 'label': labels[int(i)] if int(i) < len(labels) else str(i),
             'score': round(float(scores[i]), 4)} for i in order]


@dataclass
class ImageExplanation:
    """The maps and findings of one photo.

    ``rgb`` is the photo downscaled to at most ``ANALYSIS_LONG_SIDE`` pixels (see
    :func:`analysis_copy`). It and ``leaf`` are released (None) once the photo is done, so
    that thousands of photos fit in memory; ``leaf_fraction`` keeps the leaf's share of
    the photo. ``leaf_separable`` is false when that share is too large or too small for
    a peak on the leaf to mean anything (the peak entries are then None);
    ``iou_comparable`` is false when a map's top region is far from ``TOP_FRACTION`` of
    the photo (the IoU is then None), None when no IoU was tried.
    """

    image: Path
    rgb: np.ndarray | None
    target_index: int
    top3_int8: list[dict]
    occlusion: np.ndarray
    occlusion_patch: int = 1
    top3_float: list[dict] | None = None
    gradcam: np.ndarray | None = None
    leaf: np.ndarray | None = None
    leaf_fraction: float | None = None
    iou: float | None = None
    iou_comparable: bool | None = None
    gradcam_peak_on_leaf: bool | None = None
    occlusion_peak_on_leaf: bool | None = None
    leaf_separable: bool | None = None
    figure: Path | None = None

    def record(self, out_dir: Path | None = None) -> dict:
        """Return the JSON-ready summary of this photo (figure path relative to out_dir)."""
        figure = None
        if self.figure is not None:
            figure = (os.path.relpath(self.figure, out_dir) if out_dir is not None
                      else str(self.figure))
        return {
            'image': str(self.image),
            'figure': figure,
            'target': self.top3_int8[0] if self.top3_int8 else None,
            'top3_float': self.top3_float,
            'top3_int8': self.top3_int8,
            'top1_agree': (None if self.top3_float is None
                           else self.top3_float[0]['index'] == self.top3_int8[0]['index']),
            'iou_top20': None if self.iou is None else round(self.iou, 4),
            'iou_top20_comparable': self.iou_comparable,
            'gradcam_peak_on_leaf': self.gradcam_peak_on_leaf,
            'occlusion_peak_on_leaf': self.occlusion_peak_on_leaf,
            'leaf_fraction': (None if self.leaf_fraction is None
                              else round(self.leaf_fraction, 4)),
            'leaf_separable': self.leaf_separable,
            'occlusion_patch': self.occlusion_patch,
            'occlusion_flat': is_flat(self.occlusion),
            'occlusion_grid': np.round(self.occlusion, 4).tolist(),
            'gradcam_map': None if self.gradcam is None else np.round(self.gradcam, 4).tolist(),
        }


@dataclass(frozen=True)
class MapComparison:
    """What :func:`compare_maps` finds: the maps' agreement and where their peaks lie.

    ``iou_comparable`` is None when no IoU was tried (no Grad-CAM, or a flat map), false
    when a top region is too far from the fraction asked; ``leaf_separable`` false when
    the mask covers too much or too little of the photo for "on the leaf" to mean anything.
    """

    iou: float | None = None
    iou_comparable: bool | None = None
    occlusion_peak_on_leaf: bool | None = None
    gradcam_peak_on_leaf: bool | None = None
    leaf_separable: bool = True


def compare_maps(occlusion: np.ndarray, gradcam: np.ndarray | None, leaf: np.ndarray,
                 fraction: float = TOP_FRACTION) -> MapComparison:
    """Return the IoU of the maps' top-fraction regions and whether their peaks are on the leaf.

    Both maps are upsampled to the leaf mask's size first. A flat map has no peak and no
    top region: its entries are None. The peaks are None, for both maps, when the mask
    does not separate a leaf (:func:`~plant_disease_ros.core.occlusion.leaf_separable`);
    the IoU is None when a region is not comparable
    (:func:`~plant_disease_ros.core.occlusion.top_region_iou`).
    """
    height, width = leaf.shape
    separable = leaf_separable(leaf)

    def on_leaf(heat: np.ndarray | None) -> bool | None:
        if heat is None or is_flat(heat) or not separable:
            return None
        return peak_on_mask(heat, leaf)

    occlusion_on_leaf, gradcam_on_leaf = on_leaf(occlusion), on_leaf(gradcam)
    if gradcam is None or is_flat(occlusion) or is_flat(gradcam):
        return MapComparison(None, None, occlusion_on_leaf, gradcam_on_leaf, separable)
    iou = top_region_iou(upsample_heatmap(occlusion, height, width),
                         upsample_heatmap(gradcam, height, width), fraction)
    return MapComparison(iou, iou is not None, occlusion_on_leaf, gradcam_on_leaf, separable)


def _format_top3(title: str, top3: list[dict] | None) -> str:
    if not top3:
        return f'{title}: -'
    return f'{title}: ' + ', '.join(f'{item["label"]} {item["score"]:.2f}' for item in top3)


def save_figure(explanation: ImageExplanation, path: Path, float_title: str = 'float',
                ) -> Path:
    """Save the photo, Grad-CAM overlay and occlusion overlay side by side as a PNG.

    ``float_title`` names the float scores (:data:`UNCALIBRATED` when they lack the int8
    model's score calibration); without Grad-CAM there are none and no float line. File
    names and labels are drawn as they are: a ``$`` in them is not mathtext.
    """
    import matplotlib

    matplotlib.use('Agg')
    import matplotlib.pyplot as plt

    panels = [('photo', explanation.rgb)]
    if explanation.gradcam is not None:
        panels.append(('Grad-CAM (float Keras)',
                       overlay_heatmap(explanation.rgb, explanation.gradcam)))
    occlusion_title = 'occlusion (int8 TFLite)'
    if explanation.occlusion_patch > 1:
        occlusion_title += f', {explanation.occlusion_patch}-cell patch'
    if is_flat(explanation.occlusion):
        occlusion_title += ': flat'
    panels.append((occlusion_title, overlay_heatmap(explanation.rgb, explanation.occlusion)))
    figure, axes = plt.subplots(1, len(panels), figsize=(3.4 * len(panels), 4.1))
    for axis, (name, picture) in zip(np.atleast_1d(axes), panels, strict=True):
        axis.imshow(picture)
        axis.set_title(name, fontsize=9, parse_math=False)
        axis.axis('off')
    lines = [explanation.image.name]
    if explanation.top3_float is not None:
        lines.append(_format_top3(float_title, explanation.top3_float))
    lines.append(_format_top3('int8', explanation.top3_int8))
    if explanation.iou is not None:
        lines.append(f'IoU of top-20 % regions: {explanation.iou:.2f}')
    # parse_math (matplotlib >= 3.5): a photo named 'leaf $x^$.jpg' is no formula to parse.
    figure.suptitle('\n'.join(lines), fontsize=8, parse_math=False)
    figure.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    figure.savefig(path, dpi=90)
    plt.close(figure)
    return path


@dataclass
class ExplainResult:
    """All photos' explanations and where the summary went."""

    explanations: list[ImageExplanation]
    summary: dict
    summary_path: Path | None = None
    figures: list[Path] = field(default_factory=list)
    unreadable: list[tuple[Path, str]] = field(default_factory=list)
    """Photos skipped because they cannot be decoded, each with the reason."""


def summarise(explanations: Sequence[ImageExplanation]) -> dict:
    """Return the aggregate figures: peak-on-leaf fractions, IoU statistics, agreement.

    The peak-on-leaf fractions are of the photos whose leaf separates from the background
    (``leaf_not_separable`` counts the others), the IoU statistics of the comparable IoUs
    (``iou_top20_not_comparable`` counts the others).
    """
    def fraction(values: list[bool | None]) -> float | None:
        known = [value for value in values if value is not None]
        return round(sum(known) / len(known), 4) if known else None

    ious = [item.iou for item in explanations if item.iou is not None]
    agree = [item.top3_float[0]['index'] == item.top3_int8[0]['index']
             for item in explanations if item.top3_float]
    return {
        'images': len(explanations),
        'occlusion_fallback_patch': sum(item.occlusion_patch > 1 for item in explanations),
        'occlusion_flat': sum(is_flat(item.occlusion) for item in explanations),
        'occlusion_peak_on_leaf_fraction': fraction(
            [item.occlusion_peak_on_leaf for item in explanations]),
        'gradcam_peak_on_leaf_fraction': fraction(
            [item.gradcam_peak_on_leaf for item in explanations]),
        'leaf_not_separable': sum(item.leaf_separable is False for item in explanations),
        'iou_top20_not_comparable': sum(item.iou_comparable is False
                                        for item in explanations),
        'iou_top20': None if not ious else {
            'mean': round(statistics.fmean(ious), 4),
            'median': round(statistics.median(ious), 4),
            'min': round(min(ious), 4),
            'max': round(max(ious), 4),
        },
        'top1_agreement': round(sum(agree) / len(agree), 4) if agree else None,
    }


def _unique_figure_path(out_dir: Path, image: Path, used: set[str],
                        protected: Collection[Path] = (),
                        replaceable: Collection[Path] = ()) -> Path:
    """Return ``out_dir/<stem>_explain.png``, numbered (``<stem>_2_explain.png``) if taken.

    Taken: a name given to another photo of this run (``used``), one that resolves to a
    ``protected`` path (the photos explained) and one that exists on disk, unless it is
    ``replaceable`` (the figures of an earlier run that this one replaces). Paths in
    ``protected`` and ``replaceable`` are resolved.
    """
    stem = image.stem
    name, number = f'{stem}_explain.png', 2
    while True:
        path = out_dir / name
        resolved = path.resolve()
        if name not in used and resolved not in protected and (
                not os.path.lexists(path) or resolved in replaceable):
            break
        name, number = f'{stem}_{number}_explain.png', number + 1
    used.add(name)
    return path


def analysis_copy(rgb: np.ndarray, long_side: int = ANALYSIS_LONG_SIDE) -> np.ndarray:
    """Return ``rgb`` downscaled (area-averaged) to at most ``long_side`` pixels long.

    The leaf mask and the figure are made of it: at a phone photo's 24 MP they cost tens
    of seconds and gigabytes and show nothing more. A photo small enough is returned as is.
    """
    height, width = rgb.shape[:2]
    scale = long_side / max(height, width)
    if scale >= 1.0:
        return rgb
    size = (max(1, round(width * scale)), max(1, round(height * scale)))
    return cv2.resize(rgb, size, interpolation=cv2.INTER_AREA)


def explain_images(images: Sequence[str | os.PathLike], *, model_path: str | os.PathLike,
                   labels_path: str | os.PathLike, keras_path: str | os.PathLike | None,
                   out_dir: str | os.PathLike | None = None, grid: int = 8,
                   fill: str = 'mean', patch: int = 1, gradcam_layer: str | None = None,
                   num_threads: int = 2, batch_size: int = 16, figures: bool = True,
                   progress: ProgressCallback | None = None,
                   keras_model: Any | None = None,
                   float_calibration: FloatCalibration | None = None,
                   replace_figures: Collection[str | os.PathLike] = ()) -> ExplainResult:
    """Explain each photo with occlusion (int8) and, given a Keras model, Grad-CAM (float).

    A photo that cannot be decoded is skipped and listed in ``unreadable`` (and in
    ``explanations.json``) with the reason; ValueError only when none can be.

    Both maps explain the int8 model's top class (the robot's answer). With ``out_dir``
    ``explanations.json`` and (unless ``figures`` is false) a PNG per photo are written
    there. ``keras_model`` passes an already loaded model instead of ``keras_path``. A
    figure never overwrites a file in ``out_dir`` (a photo, a file of the user's) but the
    ``replace_figures`` of an earlier run that this one replaces; it takes a numbered name.

    The float scores get ``float_calibration``'s score scaling, so they compare with the
    int8 model's; without it they are labelled :data:`UNCALIBRATED` (figure and JSON).
    """
    from plant_disease_ros.core.classifier import ClassifierOptions, DiseaseClassifier

    paths = expand_image_paths(images, exclude=out_dir)
    classifier = DiseaseClassifier.create_from_options(ClassifierOptions(
        model_path=str(model_path), labels_path=str(labels_path), num_threads=num_threads))
    labels = classifier.labels
    gradcam = None
    if keras_model is not None or keras_path is not None:
        model = keras_model if keras_model is not None else load_keras_model(keras_path)
        outputs = int(model.output_shape[-1])
        if outputs != len(labels):
            where = 'in memory' if keras_model is not None else keras_path
            raise ValueError(f'the Keras model ({where}) has {outputs} outputs but '
                             f'{labels_path} has {len(labels)} labels: pass the float model '
                             'of the same run (--keras RUN/model.keras), or --no-gradcam '
                             'for occlusion only')
        gradcam = GradCam(model, gradcam_layer, None if float_calibration is None
                          else float_calibration.scaling)
    float_scores = None
    if gradcam is not None:
        float_scores = (UNCALIBRATED if float_calibration is None
                        else float_calibration.describe())
    float_title = UNCALIBRATED if float_calibration is None else 'float'
    out = Path(out_dir) if out_dir is not None else None
    if out is not None:
        out.mkdir(parents=True, exist_ok=True)
    explanations: list[ImageExplanation] = []
    unreadable: list[tuple[Path, str]] = []
    used_names: set[str] = set()
    protected = {path.resolve() for path in paths}
    replaceable = {Path(path).resolve() for path in replace_figures}
    for start in range(0, len(paths), batch_size):
        found, model_inputs = [], []
        for path in paths[start:start + batch_size]:
            try:
                rgb = read_photo(path)
            except UnreadablePhoto as error:
                unreadable.append((path, str(error)))
                if progress is not None:
                    progress(len(explanations) + len(unreadable), len(paths))
                continue
            probabilities = classifier.probabilities(rgb)
            target = int(np.argmax(probabilities))
            heat, used = occlusion_map(classifier, rgb, grid=grid, target_index=target,
                                       fill=fill, patch=patch)
            if gradcam is not None:
                # The same resize as the robot's classifier, so both models see one input.
                model_inputs.append(resize_to_input(rgb, *gradcam.input_size))
            # Only the small copy is kept: a batch of full-size phone photos is gigabytes.
            found.append(ImageExplanation(image=path, rgb=analysis_copy(rgb),
                                          target_index=target,
                                          top3_int8=top_k(probabilities, labels),
                                          occlusion=heat, occlusion_patch=used))
        if gradcam is not None and found:  # a batch of unreadable photos has nothing
            maps, float_probabilities = gradcam(np.stack(model_inputs),
                                                [item.target_index for item in found])
            for item, cam, probabilities in zip(found, maps, float_probabilities, strict=True):
                item.gradcam = cam
                item.top3_float = top_k(probabilities, labels)
        for item in found:
            item.leaf = leaf_mask(item.rgb)
            comparison = compare_maps(item.occlusion, item.gradcam, item.leaf)
            item.iou, item.iou_comparable = comparison.iou, comparison.iou_comparable
            item.occlusion_peak_on_leaf = comparison.occlusion_peak_on_leaf
            item.gradcam_peak_on_leaf = comparison.gradcam_peak_on_leaf
            item.leaf_separable = comparison.leaf_separable
            if out is not None and figures:
                figure = _unique_figure_path(out, item.image, used_names, protected,
                                             replaceable)
                item.figure = save_figure(item, figure, float_title)
            item.leaf_fraction = float(item.leaf.mean())
            item.rgb = item.leaf = None
            explanations.append(item)
            if progress is not None:
                progress(len(explanations) + len(unreadable), len(paths))
    if not explanations:
        raise ValueError(f'no photo could be decoded: {unreadable[0][1]}'
                         + (f' (and {len(unreadable) - 1} more)' if len(unreadable) > 1 else ''))
    summary = summarise(explanations)
    summary['unreadable'] = len(unreadable)
    # The top3_float scores: with the int8 model's score calibration, or not.
    summary['float_scores'] = float_scores
    result = ExplainResult(explanations=explanations, summary=summary,
                           figures=[item.figure for item in explanations if item.figure],
                           unreadable=unreadable)
    if out is not None:
        document = {
            'tflite_model': str(model_path),
            # Which model it was, whatever its path: a report shows only its own model's.
            'tflite_model_sha256': sha256_of(model_path),
            'labels': str(labels_path),
            'keras_model': None if gradcam is None else str(keras_path or 'in memory'),
            'gradcam_layer': None if gradcam is None else gradcam.layer_name,
            'grid': grid,
            'fill': fill,
            'patch': patch,
            'fallback_patches': [size for size in FALLBACK_PATCHES if patch < size <= grid],
            'top_fraction': TOP_FRACTION,
            'target': 'top-1 class of the int8 model, for both maps',
            'summary': summary,
            'images': [item.record(out) for item in explanations],
            'unreadable': [{'image': str(path), 'reason': reason}
                           for path, reason in unreadable],
        }
        result.summary_path = out / SUMMARY_FILENAME
        result.summary_path.write_text(json.dumps(document, indent=1) + '\n')
    return result


def format_summary(summary: dict) -> str:
    """Return a few human-readable lines of :func:`summarise`'s figures."""
    def percent(value: float | None) -> str:
        return 'n/a' if value is None else f'{100 * value:.0f} %'

    lines = [f'{summary["images"]} photos explained; occlusion retried with a larger patch '
             f'for {summary["occlusion_fallback_patch"]}, still flat for '
             f'{summary["occlusion_flat"]}',
             f'occlusion peak on the leaf: {percent(summary["occlusion_peak_on_leaf_fraction"])}',
             f'Grad-CAM peak on the leaf: {percent(summary["gradcam_peak_on_leaf_fraction"])}']
    if summary.get('leaf_not_separable'):
        lines.append(f'leaf not separable from the background: '
                     f'{summary["leaf_not_separable"]} photos (not counted above; the peak '
                     'on the leaf is for photos of a leaf on a plain background)')
    iou = summary.get('iou_top20')
    if iou:
        lines.append(f'IoU of the top-20 % regions: mean {iou["mean"]:.2f}, median '
                     f'{iou["median"]:.2f}, min {iou["min"]:.2f}, max {iou["max"]:.2f}')
    if summary.get('iou_top20_not_comparable'):
        lines.append(f'IoU not comparable: {summary["iou_top20_not_comparable"]} photos (a '
                     "map's top region is far from 20 % of the photo: few pixels where "
                     'covering lowers the score, or ties)')
    if summary.get('top1_agreement') is not None:
        lines.append(f'float/int8 top-1 agreement: {percent(summary["top1_agreement"])}')
    if summary.get('float_scores'):
        lines.append(f'float scores: {summary["float_scores"]}')
    if summary.get('unreadable'):
        lines.append(f'{summary["unreadable"]} photo(s) skipped: they cannot be decoded')
    return '\n'.join(lines)
