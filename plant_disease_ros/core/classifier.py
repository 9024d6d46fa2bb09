"""Plant disease classifier in the style of the TFLite Task / MediaPipe image classifier.

``DiseaseClassifier.create_from_options(ClassifierOptions(...))`` loads the model and its
labels once; ``classify(rgb)`` runs preprocess (resize, quantise) -> invoke ->
postprocess (dequantise, the crops of the field, top-k), timing each stage. With
``poses`` above 1 the model is invoked on that many right-angle poses of the frame (turned,
mirrored) and their probabilities are averaged: a better-ranked answer for that many
times the invoke time.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass
from pathlib import Path
import threading
import time

import numpy as np

from plant_disease_ros.core.crops import CropFilter, DEFAULT_OTHER_CROPS_WEIGHT
from plant_disease_ros.core.interpreter_loader import (
    load_interpreter,
    LoadedModel,
    ModelLoadError,
    TensorSpec,
)
from plant_disease_ros.core.labels import load_labels
from plant_disease_ros.core.preprocessing import check_pose_count, pose_views, resize_to_input

PACKAGE_NAME = 'plant_disease_ros'
MODEL_FILENAME = 'plant_disease_int8.tflite'
LABELS_FILENAME = 'labels.txt'


@dataclass
class ClassifierOptions:
    """What to load and how to run it; empty paths mean the shipped model and labels."""

    model_path: str = ''
    labels_path: str = ''
    num_threads: int = 2
    top_k: int = 3
    delegate_path: str = ''
    # The crops of the field (see core.crops); empty = every crop of the model.
    crops: tuple[str, ...] = ()
    other_crops_weight: float = DEFAULT_OTHER_CROPS_WEIGHT
    # Right-angle poses of each frame whose probabilities are averaged (1, 2, 4 or 8).
    poses: int = 1


@dataclass(frozen=True)
class Category:
    """One class of a result: its index in the labels, its label and its probability."""

    index: int
    label: str
    score: float


@dataclass(frozen=True)
class Classification:
    """The top-k categories of one image, best first, and the time each stage took.

    ``crops`` are the crops the scores were restricted to (empty: every crop); ``poses``
    the number of poses of the frame the scores are the mean of (``invoke_ms`` covers them
    all).
    """

    categories: tuple[Category, ...]
    preprocess_ms: float
    invoke_ms: float
    postprocess_ms: float
    crops: tuple[str, ...] = ()
    poses: int = 1

    @property
    def top(self) -> Category:
        """Return the best category."""
        return self.categories[0]

    @property
    def total_ms(self) -> float:
        """Return preprocess + invoke + postprocess time in milliseconds."""
        return self.preprocess_ms + self.invoke_ms + self.postprocess_ms

    def timings_ms(self) -> dict[str, float]:
        """Return the stage times as a dictionary (for JSON and diagnostics)."""
        return {'preprocess': self.preprocess_ms, 'invoke': self.invoke_ms,
                'postprocess': self.postprocess_ms, 'total': self.total_ms}


def _share_models_dir() -> Path | None:
    """Return ``share/plant_disease_ros/models`` from the ament index, if installed."""
    try:
        from ament_index_python.packages import get_package_share_directory
    except Exception:  # noqa: BLE001 - no ament index: fall back to the source tree
        return None
    try:
        return Path(get_package_share_directory(PACKAGE_NAME)) / 'models'
    except Exception:  # noqa: BLE001 - PackageNotFoundError, or no AMENT_PREFIX_PATH
        return None


def source_models_dir() -> Path:
    """Return ``<repo>/models`` next to the package source."""
    return Path(__file__).resolve().parents[2] / 'models'


def _default_path(filename: str) -> Path:
    """Return the installed share copy of ``filename`` if present, else the source copy."""
    share = _share_models_dir()
    if share is not None and (share / filename).is_file():
        return share / filename
    return source_models_dir() / filename


def default_model_path() -> Path:
    """Return the shipped model: the package share (ament index) first, else ``<repo>``."""
    return _default_path(MODEL_FILENAME)


def default_labels_path() -> Path:
    """Return the shipped labels file, found like :func:`default_model_path`."""
    return _default_path(LABELS_FILENAME)


def labels_beside(model_path: Path) -> Path:
    """Return the labels of ``model_path`` when none is named: the ``labels.txt`` beside it.

    ``export`` writes one beside every model it makes; a model without one (a file copied
    alone) gets the shipped labels, as before, and a count that differs stops the start.
    """
    beside = Path(model_path).with_name(LABELS_FILENAME)
    return beside if beside.is_file() else default_labels_path()


def _shipped_labels_note(model_path: Path, labels_path: Path) -> str:
    """Return why the shipped labels were tried for another model, and what to do, or ''.

    A model copied without its labels finds no ``labels.txt`` beside it and gets the
    shipped labels (:func:`labels_beside`), which then do not fit.
    """
    shipped = default_labels_path()
    if (Path(model_path).with_name(LABELS_FILENAME).is_file()
            or not shipped.is_file() or not Path(labels_path).is_file()
            or not Path(labels_path).samefile(shipped)
            or Path(model_path).resolve() == default_model_path().resolve()):
        return ''
    return (f': no {LABELS_FILENAME} was found beside the model, so the shipped labels were '
            f'tried; copy the {LABELS_FILENAME} that export wrote beside the model, or set '
            'labels_path (--labels)')


def _integer_range(dtype: type) -> tuple[int, int]:
    info = np.iinfo(dtype)
    return int(info.min), int(info.max)


class DiseaseClassifier:
    """Classify RGB images with a TFLite model following the model contract.

    Not re-entrant per instance: calls are serialised with a lock, since an interpreter
    must not be invoked from two threads at once.
    """

    def __init__(self, model: LoadedModel, labels: list[str], top_k: int = 3) -> None:
        """Wrap a loaded model and its labels; prefer :meth:`create_from_options`."""
        if model.num_outputs != len(labels):
            raise ModelLoadError(
                f'{model.path}: model has {model.num_outputs} outputs but the labels file '
                f'has {len(labels)} labels')
        self.model = model
        self.labels = list(labels)
        self.top_k = self._check_top_k(top_k)
        # Replaced whole (never changed in place), so a frame sees one filter or the other.
        self.crop_filter = CropFilter(self.labels)
        self.input_size: tuple[int, int] = model.input_size
        self.poses = 1
        self._lock = threading.Lock()
        # Reused for every frame: set_tensor copies from it, no per-frame allocation.
        self._input_buffer = np.zeros(model.input.shape, dtype=model.input.dtype)
        self._quantise = self._make_quantiser(model.input)

    @classmethod
    def create_from_options(cls, options: ClassifierOptions) -> DiseaseClassifier:
        """Load the model and labels named by ``options``; ModelLoadError on any problem."""
        model_path = Path(options.model_path) if options.model_path else default_model_path()
        labels_path = (Path(options.labels_path) if options.labels_path
                       else labels_beside(model_path))
        labels = load_labels(labels_path)
        model = load_interpreter(model_path, num_threads=options.num_threads,
                                 delegate_path=options.delegate_path)
        if model.num_outputs != len(labels):
            raise ModelLoadError(
                f'{model_path}: model has {model.num_outputs} outputs but {labels_path} has '
                f'{len(labels)} labels' + _shipped_labels_note(model_path, labels_path))
        classifier = cls(model, labels, top_k=options.top_k)
        try:
            classifier.set_crops(options.crops, options.other_crops_weight)
            classifier.set_poses(options.poses)
        except ValueError as error:
            raise ModelLoadError(f'{model_path}: {error}') from error
        return classifier

    def set_crops(self, crops: Iterable[str],
                  other_crops_weight: float = DEFAULT_OTHER_CROPS_WEIGHT) -> CropFilter:
        """Restrict the scores to the labels of ``crops`` (empty: every crop); return it.

        ``other_crops_weight``: the prior weight of other crops' labels (see core.crops).
        ValueError (naming the model's crops) for a crop the labels do not name, or a
        weight outside [0, 1]; the previous crops then stay.
        """
        crop_filter = CropFilter(self.labels, crops, other_crops_weight)
        self.crop_filter = crop_filter
        return crop_filter

    def set_poses(self, poses: int) -> int:
        """Average the probabilities of ``poses`` right-angle poses of each frame.

        1 (one invoke, the default), 2 (the frame and its half turn), 4 (its quarter turns)
        or 8 (those of the frame and of its mirror image); 4 and 8 need a square input.
        ValueError otherwise, and the previous count stays. Returns the count.
        """
        self.poses = check_pose_count(poses, *self.input_size)
        return self.poses

    @staticmethod
    def _check_top_k(top_k: int) -> int:
        value = int(top_k)
        if value < 1:
            raise ValueError(f'top_k must be >= 1, got {top_k}')
        return value

    @property
    def num_classes(self) -> int:
        """Return the number of classes (labels)."""
        return len(self.labels)

    @staticmethod
    def _make_quantiser(spec: TensorSpec) -> Callable[[np.ndarray, np.ndarray], None]:
        """Return a function writing a uint8 H×W×3 image into an input-typed array."""
        dtype = np.dtype(spec.dtype)
        if dtype.kind == 'f' or spec.scale <= 0.0:
            # Float models take raw 0..255 pixels: normalisation is inside the model.
            def copy_raw(pixels: np.ndarray, out: np.ndarray) -> None:
                np.copyto(out, pixels, casting='unsafe')
            return copy_raw
        low, high = _integer_range(dtype.type)
        if spec.scale == 1.0 and low <= spec.zero_point and spec.zero_point + 255 <= high:
            offset = int(spec.zero_point)

            def shift(pixels: np.ndarray, out: np.ndarray) -> None:
                if offset:
                    np.add(pixels, offset, out=out, dtype=np.int16, casting='unsafe')
                else:
                    np.copyto(out, pixels, casting='unsafe')
            return shift
        inverse_scale = np.float32(1.0 / spec.scale)
        zero_point = np.float32(spec.zero_point)

        def affine(pixels: np.ndarray, out: np.ndarray) -> None:
            values = np.rint(pixels.astype(np.float32) * inverse_scale + zero_point)
            np.clip(values, low, high, out=values)
            np.copyto(out, values, casting='unsafe')
        return affine

    def _dequantise(self, raw: np.ndarray) -> np.ndarray:
        spec = self.model.output
        values = raw.reshape(-1)
        if spec.quantized:
            return ((values.astype(np.float32) - np.float32(spec.zero_point))
                    * np.float32(spec.scale))
        return values.astype(np.float32, copy=True)

    def _run(self, rgb: np.ndarray, poses: int | None = None,
             ) -> tuple[np.ndarray, float, float, float, int]:
        """Return (probabilities, preprocess_ms, invoke_ms, postprocess start, poses).

        Each extra pose's quantise counts as preprocess, its invoke as invoke. ``poses``:
        this call's count instead of :meth:`set_poses`'s.
        """
        image = np.asarray(rgb)
        if image.ndim != 3 or image.shape[2] != 3 or image.dtype != np.uint8:
            raise ValueError(
                f'expected an HxWx3 uint8 RGB image, got shape {image.shape} dtype '
                f'{image.dtype}')
        interpreter = self.model.interpreter
        with self._lock:
            poses = self.poses if poses is None else check_pose_count(poses, *self.input_size)
            start = time.perf_counter()
            height, width = self.input_size
            resized = resize_to_input(image, height, width)
            preprocess_s, invoke_s = time.perf_counter() - start, 0.0
            total: np.ndarray | None = None
            for view in pose_views(resized, poses):
                posed = time.perf_counter()
                self._quantise(view, self._input_buffer[0])
                interpreter.set_tensor(self.model.input_index, self._input_buffer)
                preprocessed = time.perf_counter()
                interpreter.invoke()
                invoked = time.perf_counter()
                preprocess_s += preprocessed - posed
                invoke_s += invoked - preprocessed
                probabilities = self._dequantise(
                    interpreter.get_tensor(self.model.output_index))
                total = probabilities if total is None else total + probabilities
        assert total is not None  # every count has at least one pose
        if not np.isfinite(total).all():
            # Only a float model can: NaN would pass every threshold check as a leaf and
            # cannot be written as JSON.
            raise ValueError(f'the model gave {int(np.count_nonzero(~np.isfinite(total)))} '
                             'non-finite scores (NaN or infinity)')
        if poses > 1:
            total /= np.float32(poses)
        return total, preprocess_s * 1e3, invoke_s * 1e3, invoked, poses

    def probabilities(self, rgb: np.ndarray, poses: int | None = None,
                      crops: bool = True) -> np.ndarray:
        """Return the class probabilities (float32, one per label) of an RGB image.

        Given the crops of :meth:`set_crops`: the labels of other crops hold 0 (``crops``
        false: the model's own scores, unfiltered). ``poses``: the mean of that many poses
        for this image alone (default: :meth:`set_poses`'s).
        """
        raw = self._run(rgb, poses)[0]
        return self.crop_filter.apply(raw) if crops else raw

    def classify(self, rgb: np.ndarray, top_k: int | None = None) -> Classification:
        """Classify an H×W×3 uint8 RGB image; return the ``top_k`` best categories.

        ``top_k`` defaults to the options' value and is capped at the number of classes
        (of the crops set with :meth:`set_crops`, whose labels alone are ranked). Ties keep
        the lower class index first.
        """
        crop_filter = self.crop_filter
        kept = crop_filter.kept_indices
        k = min(self._check_top_k(self.top_k if top_k is None else top_k), len(kept))
        raw, preprocess_ms, invoke_ms, invoked, poses = self._run(rgb)
        probabilities = crop_filter.apply(raw)
        # Stable sort on the negated scores: highest first, ties by index.
        order = kept[np.argsort(-probabilities[kept], kind='stable')[:k]]
        categories = tuple(
            Category(index=int(i), label=self.labels[int(i)], score=float(probabilities[i]))
            for i in order)
        postprocess_ms = (time.perf_counter() - invoked) * 1e3
        return Classification(categories=categories, preprocess_ms=preprocess_ms,
                              invoke_ms=invoke_ms, postprocess_ms=postprocess_ms,
                              crops=crop_filter.crops, poses=poses)


__all__ = [
    'Category', 'Classification', 'ClassifierOptions', 'DiseaseClassifier', 'ModelLoadError',
    'default_labels_path', 'default_model_path',
]
