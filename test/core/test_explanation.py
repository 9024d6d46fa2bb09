"""The classifier node's explanation image, on the shipped int8 model and real leaf photos."""

from __future__ import annotations

from pathlib import Path

import cv2
from helpers.shipped_model import shipped_classifier
import numpy as np
import pytest

from plant_disease_ros.core.annotation import annotate
from plant_disease_ros.core.explanation import (
    EXPLANATION_GRID,
    explanation_image,
    informative_map,
    MIN_DROP_STEPS,
    UprightFrame,
)
from plant_disease_ros.core.occlusion import occlusion_heatmap, output_quantum
from plant_disease_ros.core.outcome import frame_outcome
from plant_disease_ros.core.vegetation import check_frame

LEAVES = Path(__file__).resolve().parents[1] / 'data' / 'leaves'
INVOKES = EXPLANATION_GRID ** 2 + 1


def frame(name: str) -> np.ndarray:
    """Return test leaf ``name`` as a 640x480 RGB camera frame."""
    return cv2.cvtColor(cv2.resize(cv2.imread(str(LEAVES / f'{name}.jpg')), (640, 480)),
                        cv2.COLOR_BGR2RGB)


def explain(rgb: np.ndarray, threshold: float = 0.5):
    classifier = shipped_classifier()
    classification = classifier.classify(rgb)
    outcome = frame_outcome(classification, threshold, check_frame(rgb))
    return classification, explanation_image(classifier, rgb, classification, outcome)


def test_no_map_of_rounding_noise_is_shown() -> None:
    """On every test leaf a map is either shown (its largest drop above MIN_DROP_STEPS
    output steps, with the larger patch where one cell moved nothing) or the plain frame
    is captioned flat: the raw 4x4 map of a confident leaf moves by at most two steps,
    which the node stretched to full red before."""
    classifier = shipped_classifier()
    step = output_quantum(classifier)
    assert step > 0.0  # the int8 model: scores in steps of 1/256
    states, noisy = [], 0
    for path in sorted(LEAVES.glob('*.jpg')):
        rgb = frame(path.stem)
        classification, explanation = explain(rgb)
        raw = occlusion_heatmap(UprightFrame(classifier), rgb, grid=EXPLANATION_GRID,
                                target_index=classification.top.index)
        noisy += float(raw.max()) <= MIN_DROP_STEPS * step
        states.append(explanation.state)
        if explanation.state == 'flat':
            assert np.array_equal(explanation.image, annotate(rgb, explanation.caption))
            assert explanation.invokes == 2 * INVOKES and 'flat' in explanation.caption
        else:
            assert explanation.state == 'map'
            heat, patch, invokes = informative_map(UprightFrame(classifier), rgb,
                                                   EXPLANATION_GRID,
                                                   classification.top.index)
            assert heat is not None and float(heat.max()) > MIN_DROP_STEPS * step
            assert explanation.invokes == invokes == (1 if patch == 1 else 2) * INVOKES
            assert ('(3x3)' in explanation.caption) == (patch == 3)
            assert not np.array_equal(explanation.image, annotate(rgb, explanation.caption))
    assert noisy >= 5  # the case is real on these photos
    assert states.count('map') >= 15


def test_a_frame_the_gate_turned_away_gets_its_caption_and_no_map() -> None:
    """The model did not answer for a grey frame: no invoke, the plain frame, the gate's
    reason."""
    grey = np.full((480, 640, 3), 128, np.uint8)
    _, explanation = explain(grey)
    assert explanation.state == 'gate' and explanation.invokes == 0
    assert explanation.caption.startswith('no leaf: ') and 'vegetation gate' in explanation.caption
    assert np.array_equal(explanation.image, annotate(grey, explanation.caption))


def test_an_unknown_frame_names_the_class_the_map_is_of() -> None:
    """Below score_threshold the published label is unknown; the caption names the model's
    class and score the map explains."""
    rgb = frame('Potato___Late_blight')
    classification, explanation = explain(rgb, threshold=1.01)
    top = classification.top
    assert explanation.caption.startswith(f'unknown (Potato: Late blight {top.score:.2f})')


def test_the_map_is_of_the_upright_frame_whatever_the_poses() -> None:
    """With test_time_poses 8 the explanation still costs 17 invokes a try: its scores
    are those of one pose (the upright frame), not the mean of eight."""
    classifier = shipped_classifier()
    rgb = frame('Tomato___Early_blight')
    eight = classifier.probabilities(rgb, poses=8)
    one = classifier.probabilities(rgb, poses=1)
    assert not np.allclose(eight, one)
    classifier.set_poses(8)
    try:
        assert np.array_equal(UprightFrame(classifier).probabilities(rgb), one)
        assert np.array_equal(classifier.probabilities(rgb), eight)
        _, explanation = explain(rgb)
        assert explanation.invokes in (INVOKES, 2 * INVOKES)
    finally:
        classifier.set_poses(1)


def test_a_pose_count_the_model_cannot_take_is_refused() -> None:
    with pytest.raises(ValueError):
        shipped_classifier().probabilities(frame('Tomato___healthy'), poses=3)


def test_the_crops_filter_does_not_magnify_rounding_noise_into_a_map() -> None:
    """crops Tomato, a frame of an apple leaf: the filter divides the tomato scores by their
    small sum, and a one-step ripple of the model's output became a 9-step 'map'. The
    flatness is judged on the model's own scores: the frame is captioned flat."""
    classifier = shipped_classifier()
    rgb = frame('Apple___Black_rot')
    classifier.set_crops(['Tomato'])
    try:
        classification, explanation = explain(rgb)
        assert classification.top.label.startswith('Tomato___')
        raw = occlusion_heatmap(UprightFrame(classifier), rgb, grid=EXPLANATION_GRID,
                                target_index=classification.top.index)
        assert float(raw.max()) <= MIN_DROP_STEPS * output_quantum(classifier)
        assert explanation.state == 'flat', explanation.caption
    finally:
        classifier.set_crops([])
