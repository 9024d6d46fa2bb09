"""frame_outcome and its confidence: the score of the published label, one rule everywhere."""

from __future__ import annotations

import pytest

from plant_disease_ros.core.classifier import Category, Classification
from plant_disease_ros.core.outcome import frame_outcome, GATE_CONFIDENCE, MODEL_REASON
from plant_disease_ros.core.vegetation import GateResult, NO_COLOUR, NO_VEGETATION


def classification(*categories: tuple[str, float]) -> Classification:
    """Return a classification of (label, score) categories, best first."""
    return Classification(
        categories=tuple(Category(index, label, score)
                         for index, (label, score) in enumerate(categories)),
        preprocess_ms=0.0, invoke_ms=0.0, postprocess_ms=0.0)


def rejected(reason: str) -> GateResult:
    """Return the gate's verdict on a frame it turned away for ``reason``."""
    return GateResult(passed=False, reason=reason, brightness=90.0, texture=5.0,
                      vegetation=0.0, colour=0.0 if reason == NO_COLOUR else 0.5)


BLIGHT = classification(('Tomato___Early_blight', 0.262), ('Tomato___healthy', 0.2))


@pytest.mark.parametrize('reason', [NO_VEGETATION, NO_COLOUR, 'flat'])
def test_a_frame_the_gate_turned_away_has_confidence_one(reason: str) -> None:
    """no_leaf by the gate: 1.0, never the score of the class the model would have said."""
    outcome = frame_outcome(BLIGHT, 0.5, rejected(reason))
    assert (outcome.label, outcome.reason, outcome.by_gate) == ('no_leaf', reason, True)
    assert outcome.confidence(BLIGHT) == GATE_CONFIDENCE == 1.0


def test_the_model_s_own_labels_have_their_top_score() -> None:
    """A leaf, the model's no_leaf and unknown (a leaf below the threshold): the top score."""
    leaf = frame_outcome(BLIGHT, 0.25)
    assert (leaf.label, leaf.confidence(BLIGHT)) == ('Tomato___Early_blight', 0.262)
    unknown = frame_outcome(BLIGHT, 0.5)
    assert (unknown.label, unknown.confidence(BLIGHT)) == ('unknown', 0.262)
    background = classification(('no_leaf', 0.7), ('Tomato___healthy', 0.2))
    model = frame_outcome(background, 0.5)
    assert (model.label, model.reason, model.by_gate) == ('no_leaf', MODEL_REASON, False)
    assert model.confidence(background) == 0.7
    # A gate that passed the frame leaves the model's answer and its score alone.
    passed = GateResult(passed=True, reason='', brightness=90.0, texture=5.0, vegetation=0.5)
    assert frame_outcome(BLIGHT, 0.25, passed).confidence(BLIGHT) == 0.262
