"""What one classified frame means for the robot: a leaf, an unsure leaf, or no leaf at all.

Three outcomes, one label each:

- ``no_leaf``: no crop leaf in view. Either the vegetation gate rejected the frame (too
  dark, over-exposed, flat, no plant colours) or the model's top class is its background
  class ``no_leaf``. Never a detection, whatever the score.
- ``unknown``: a leaf, but the top score is below ``score_threshold``. No detection.
- a model label: a leaf the model is sure enough of. This is the only detection.
"""

from __future__ import annotations

from dataclasses import dataclass

from plant_disease_ros.core.classifier import Classification
from plant_disease_ros.core.detections import UNKNOWN_LABEL
from plant_disease_ros.core.vegetation import GateResult

NO_LEAF_LABEL = 'no_leaf'
OUTCOMES = ('leaf', 'unknown', 'no_leaf')
MODEL_REASON = 'model'  # the no_leaf reason when the model's background class won


@dataclass(frozen=True)
class FrameOutcome:
    """The label a frame is published with and whether it becomes a detection."""

    label: str
    kind: str  # one of OUTCOMES
    # Why a frame is no_leaf: the gate's reason ('no vegetation', 'flat', ...) or 'model'.
    reason: str = ''

    @property
    def by_gate(self) -> bool:
        """Return whether the vegetation gate (not the model) made the frame ``no_leaf``."""
        return self.kind == 'no_leaf' and self.reason != MODEL_REASON

    @property
    def is_detection(self) -> bool:
        """Return whether the frame gives a detection (a leaf above the threshold)."""
        return self.kind == 'leaf'


def frame_outcome(classification: Classification, score_threshold: float,
                  gate: GateResult | None = None) -> FrameOutcome:
    """Return the outcome of a classified frame.

    ``gate`` is the vegetation gate's verdict on the same frame, or None when the gate
    is off. A failed gate wins over the model: the frame cannot show a leaf.
    """
    if gate is not None and not gate.passed:
        return FrameOutcome(NO_LEAF_LABEL, 'no_leaf', gate.reason)
    top = classification.top
    if top.label == NO_LEAF_LABEL:
        return FrameOutcome(NO_LEAF_LABEL, 'no_leaf', MODEL_REASON)
    if top.score < score_threshold:
        return FrameOutcome(UNKNOWN_LABEL, 'unknown')
    return FrameOutcome(top.label, 'leaf')
