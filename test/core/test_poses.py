"""Right-angle poses of a frame, averaged by the classifier (``test_time_poses``)."""

from __future__ import annotations

from pathlib import Path

import cv2
from helpers.shipped_model import LABELS_PATH, MODEL_PATH, require_shipped_model
from helpers.tiny_model import build_tiny_model, write_labels
import numpy as np
import pytest

from plant_disease_ros.core.classifier import ClassifierOptions, DiseaseClassifier
from plant_disease_ros.core.interpreter_loader import ModelLoadError
from plant_disease_ros.core.preprocessing import (
    check_pose_count,
    POSE_COUNTS,
    pose_views,
    resize_to_input,
)

LEAF = Path(__file__).resolve().parents[1] / 'data' / 'leaves' / 'Tomato___Late_blight.jpg'


def _leaf() -> np.ndarray:
    return cv2.cvtColor(cv2.imread(str(LEAF), cv2.IMREAD_COLOR), cv2.COLOR_BGR2RGB)


@pytest.fixture(scope='module')
def classifier() -> DiseaseClassifier:
    """A classifier of its own on the shipped model (its poses are changed here)."""
    require_shipped_model()
    return DiseaseClassifier.create_from_options(ClassifierOptions(
        model_path=str(MODEL_PATH), labels_path=str(LABELS_PATH), num_threads=1))


def test_pose_views_are_turns_and_mirrors() -> None:
    image = np.arange(2 * 3 * 1).reshape(2, 3, 1)  # not square: every pose differs
    assert [view.shape[:2] for view in pose_views(image, 4)] == [(2, 3), (3, 2)] * 2
    eight = pose_views(image, 8)
    assert pose_views(image, 1)[0] is image
    assert np.array_equal(eight[1], np.rot90(image))
    assert np.array_equal(eight[2], image[::-1, ::-1])
    assert np.array_equal(eight[4], image[:, ::-1])
    assert np.array_equal(pose_views(image, 2)[1], eight[2])
    assert len({view.tobytes() + bytes(view.shape) for view in eight}) == 8
    batch = np.stack([image, image + 10])
    assert np.array_equal(pose_views(batch, 8, axes=(1, 2))[5][1], eight[5] + 10)


@pytest.mark.parametrize('count', [0, 3, 16, -1, 2.5, True, '8'])
def test_pose_count_must_be_one_of_the_counts(count: object) -> None:
    with pytest.raises((ValueError, TypeError), match='poses must be one of 1, 2, 4, 8'):
        check_pose_count(count)  # type: ignore[arg-type]


def test_quarter_turns_need_a_square_input() -> None:
    assert [check_pose_count(count, 96, 128) for count in (1, 2)] == [1, 2]
    with pytest.raises(ValueError, match='4 poses need a square model input.*128x96'):
        check_pose_count(4, 96, 128)
    assert check_pose_count(8, 144, 144) == 8 and POSE_COUNTS == (1, 2, 4, 8)


def test_classifier_averages_the_poses_of_the_resized_frame(
        classifier: DiseaseClassifier) -> None:
    leaf = _leaf()
    height, width = classifier.input_size
    resized = resize_to_input(leaf, height, width)
    classifier.set_poses(1)
    single = [classifier.probabilities(np.ascontiguousarray(view))
              for view in pose_views(resized, 8)]
    try:
        assert classifier.set_poses(8) == 8
        averaged = classifier.probabilities(leaf)
        result = classifier.classify(leaf)
    finally:
        classifier.set_poses(1)
    np.testing.assert_allclose(averaged, np.mean(single, axis=0), atol=1e-6)
    assert abs(single[0].max() - single[1].max()) > 0.02  # the poses do differ
    assert result.poses == 8 and result.top.index == int(np.argmax(averaged))
    assert result.top.score == pytest.approx(float(averaged.max()))
    assert classifier.classify(leaf).poses == 1
    np.testing.assert_array_equal(classifier.probabilities(leaf), single[0])


def test_a_refused_pose_count_keeps_the_previous_one(classifier: DiseaseClassifier) -> None:
    classifier.set_poses(2)
    try:
        with pytest.raises(ValueError, match='poses must be one of'):
            classifier.set_poses(3)
        assert classifier.poses == 2 and classifier.classify(_leaf()).poses == 2
    finally:
        classifier.set_poses(1)


def test_options_poses_and_a_non_square_model(tmp_path: Path) -> None:
    pytest.importorskip('tensorflow')
    model = build_tiny_model(tmp_path / 'wide.tflite', num_classes=4, input_size=32)
    labels = write_labels(tmp_path / 'labels.txt', 4)
    two = DiseaseClassifier.create_from_options(ClassifierOptions(
        model_path=str(model), labels_path=str(labels), poses=2))
    assert two.poses == 2 and two.classify(_leaf()).poses == 2
    with pytest.raises(ModelLoadError, match='poses must be one of 1, 2, 4, 8, got 5'):
        DiseaseClassifier.create_from_options(ClassifierOptions(
            model_path=str(model), labels_path=str(labels), poses=5))
