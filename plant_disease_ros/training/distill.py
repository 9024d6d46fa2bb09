"""Distillation from the lab model: soft targets that keep what it knew (TensorFlow/Keras).

A field fine-tune sees lab leaves in only part of each batch and drifts away from the
lab model's accuracy on them. :class:`LabTeacher` scores the plain lab rows of a batch
with the lab model; :func:`blend_targets` mixes its (softened) opinion into those rows'
one-hot targets, so the student is pulled towards the teacher where the teacher is good
and learns the field and ``no_leaf`` from the labels alone.

A temperature above 1 softens the teacher's scores (more of its "dark knowledge"), but
the student then also learns to be less sure of lab leaves: with temperature 2 and weight
0.6 the lab test leaves came out at 0.74 mean confidence for 94 % right, 16 % of them
under a 0.5 threshold. The default is therefore 1.

:class:`PoseTeacher` is the other teacher: the start model's own opinion of a frame,
averaged over right-angle poses of it. Averaging poses at run time is a small ensemble
that ranks better than one pass (``test_time_poses``), but costs an invoke a pose on the
robot; learning the averaged scores during the fine-tune moves part of that gain into the
single pass the robot runs.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np

from plant_disease_ros.core.preprocessing import check_pose_count, pose_views


def load_scorer(model_path: str, input_size: int) -> tuple[Any, Callable[[Any], Any]]:
    """Load a Keras teacher; return it and a compiled scorer of input_size² frames.

    The scorer resizes the frames to the teacher's own input size when it differs.
    """
    import tensorflow as tf

    model = tf.keras.models.load_model(model_path, compile=False)
    teacher_size = int(model.input_shape[1])

    @tf.function(input_signature=[tf.TensorSpec((None, input_size, input_size, 3),
                                                tf.float32)])
    def score(images):
        if teacher_size != input_size:
            images = tf.image.resize(images, (teacher_size, teacher_size))
        return model(images, training=False)

    return model, score


class LabTeacher:
    """A trained lab model (the first ``num_classes - 1`` labels, no ``no_leaf``)."""

    def __init__(self, model_path: str, num_classes: int, input_size: int,
                 temperature: float = 1.0) -> None:
        if temperature <= 0:
            raise ValueError(f'distillation temperature must be > 0, got {temperature}')
        self.model, self._score = load_scorer(model_path, input_size)
        outputs = int(self.model.output_shape[-1])
        if outputs != num_classes - 1:
            raise ValueError(f'{model_path}: the teacher has {outputs} outputs; a field model '
                             f'of {num_classes} labels needs one of {num_classes - 1} '
                             '(its labels without no_leaf)')
        self.num_classes, self.temperature = num_classes, temperature

    def probabilities(self, images: np.ndarray) -> np.ndarray:
        """Return N×num_classes softened teacher probabilities (0 for ``no_leaf``)."""
        scores = self._score(images.astype(np.float32)).numpy().astype(np.float64)
        soft = np.power(np.clip(scores, 1e-12, 1.0), 1.0 / self.temperature)
        soft /= soft.sum(axis=1, keepdims=True)
        out = np.zeros((len(images), self.num_classes), np.float32)
        out[:, :soft.shape[1]] = soft
        return out


class PoseTeacher:
    """A field model (all ``num_classes`` labels) scoring each frame in ``poses`` poses."""

    def __init__(self, model_path: str, num_classes: int, input_size: int,
                 poses: int) -> None:
        self.poses = check_pose_count(poses)
        self.model, self._score = load_scorer(model_path, input_size)
        outputs = int(self.model.output_shape[-1])
        if outputs != num_classes:
            raise ValueError(f'{model_path}: the pose teacher has {outputs} outputs; it must '
                             f'be a field model of the same {num_classes} labels')

    def probabilities(self, images: np.ndarray) -> np.ndarray:
        """Return N×num_classes probabilities, the mean over the poses of each frame."""
        if len(images) == 0:
            return np.zeros((0, int(self.model.output_shape[-1])), np.float32)
        views = pose_views(np.asarray(images, np.float32), self.poses, axes=(1, 2))
        stacked = np.concatenate([np.ascontiguousarray(view) for view in views])
        scores = self._score(stacked).numpy().astype(np.float64)
        mean = scores.reshape(self.poses, len(images), -1).mean(axis=0)
        return (mean / mean.sum(axis=1, keepdims=True)).astype(np.float32)


def blend_targets(targets: np.ndarray, rows: np.ndarray, teacher_probabilities: np.ndarray,
                  weight: float) -> np.ndarray:
    """Return ``targets`` with ``rows`` set to (1 - weight)·one-hot + weight·teacher."""
    if not 0.0 <= weight <= 1.0:
        raise ValueError(f'distillation weight must be in 0..1, got {weight}')
    out = targets.copy()
    out[rows] = (1.0 - weight) * targets[rows] + weight * teacher_probabilities
    return out
