"""Distillation targets from a lab teacher (a real, tiny Keras model)."""

from __future__ import annotations

import numpy as np
import pytest

from plant_disease_ros.training.distill import blend_targets

tf = pytest.importorskip('tensorflow')


def test_blend_touches_only_the_named_rows() -> None:
    targets = np.eye(4, dtype=np.float32)[[0, 1, 2, 3]]
    teacher = np.full((2, 4), 0.25, np.float32)
    blended = blend_targets(targets, np.array([1, 3]), teacher, 0.6)
    assert np.array_equal(blended[[0, 2]], targets[[0, 2]])
    assert np.allclose(blended[1], [0.15, 0.55, 0.15, 0.15])
    assert np.allclose(blended.sum(axis=1), 1.0)
    assert np.array_equal(targets, np.eye(4, dtype=np.float32))  # input left as it was
    with pytest.raises(ValueError, match='0..1'):
        blend_targets(targets, np.array([0]), teacher[:1], 1.5)


def _lab_model(path, num_classes: int, size: int = 16):
    from plant_disease_ros.training.model import build_model, ModelConfig

    tf.keras.utils.set_random_seed(0)
    model = build_model(ModelConfig(num_classes=num_classes, input_size=size, width=0.25))
    model.save(str(path))
    return model


def test_teacher_softens_and_leaves_no_leaf_at_zero(tmp_path) -> None:
    from plant_disease_ros.training.distill import LabTeacher

    model = _lab_model(tmp_path / 'lab.keras', 3)
    images = np.random.default_rng(1).uniform(0, 255, (5, 16, 16, 3)).astype(np.float32)
    raw = model.predict(images, verbose=0)
    sharp = LabTeacher(str(tmp_path / 'lab.keras'), 4, 16, temperature=1.0)
    soft = LabTeacher(str(tmp_path / 'lab.keras'), 4, 16, temperature=4.0)
    assert np.allclose(sharp.probabilities(images)[:, :3], raw, atol=1e-5)
    scores = soft.probabilities(images)
    assert scores.shape == (5, 4) and np.all(scores[:, 3] == 0.0)
    assert np.allclose(scores.sum(axis=1), 1.0, atol=1e-5)
    assert np.array_equal(scores[:, :3].argmax(axis=1), raw.argmax(axis=1))
    assert np.all(scores[:, :3].max(axis=1) <= raw.max(axis=1) + 1e-6)  # softer
    bigger = np.random.default_rng(2).uniform(0, 255, (2, 24, 24, 3))
    resized = LabTeacher(str(tmp_path / 'lab.keras'), 4, 24)
    assert resized.probabilities(bigger).shape == (2, 4)


def test_teacher_must_have_the_labels_without_no_leaf(tmp_path) -> None:
    from plant_disease_ros.training.distill import LabTeacher

    _lab_model(tmp_path / 'lab.keras', 3)
    with pytest.raises(ValueError, match='3 outputs.*needs one of 5'):
        LabTeacher(str(tmp_path / 'lab.keras'), 6, 16)
    with pytest.raises(ValueError, match='temperature'):
        LabTeacher(str(tmp_path / 'lab.keras'), 4, 16, temperature=0)


def test_pose_teacher_is_the_mean_of_the_model_over_the_poses(tmp_path) -> None:
    from plant_disease_ros.core.preprocessing import pose_views
    from plant_disease_ros.training.distill import PoseTeacher

    model = _lab_model(tmp_path / 'field.keras', 4)
    images = np.random.default_rng(3).uniform(0, 255, (3, 16, 16, 3)).astype(np.float32)
    one = PoseTeacher(str(tmp_path / 'field.keras'), 4, 16, poses=1)
    assert np.allclose(one.probabilities(images), model.predict(images, verbose=0), atol=1e-5)
    four = PoseTeacher(str(tmp_path / 'field.keras'), 4, 16, poses=4)
    expected = np.mean([model.predict(np.ascontiguousarray(view), verbose=0)
                        for view in pose_views(images, 4, axes=(1, 2))], axis=0)
    scores = four.probabilities(images)
    assert np.allclose(scores, expected, atol=1e-5)
    # An untrained network is not pose-invariant: the mean differs from one pass.
    assert not np.allclose(scores, one.probabilities(images), atol=1e-4)
    assert np.allclose(scores.sum(axis=1), 1.0, atol=1e-5)
    assert four.probabilities(images[:0]).shape == (0, 4)


def test_pose_teacher_must_have_every_label_and_a_pose_count(tmp_path) -> None:
    from plant_disease_ros.training.distill import PoseTeacher

    _lab_model(tmp_path / 'field.keras', 4)
    with pytest.raises(ValueError, match='4 outputs; it must be a field model of the same 5'):
        PoseTeacher(str(tmp_path / 'field.keras'), 5, 16, poses=4)
    with pytest.raises(ValueError, match='3'):
        PoseTeacher(str(tmp_path / 'field.keras'), 4, 16, poses=3)
