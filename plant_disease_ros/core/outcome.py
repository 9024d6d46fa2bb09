"""What one classified frame means for the robot: a leaf, an unsure leaf, or no leaf at all.

Three outcomes, one label each:

- ``no_leaf``: no crop leaf in view. Either the vegetation gate rejected the frame (too
  dark, over-exposed, flat, no colour, no plant colours) or the model's top class is its
  background class ``no_leaf``. Never a detection, whatever the score.
- ``unknown``: a leaf, but the top score is below ``score_threshold``. No detection.
- a model label: a leaf the model is sure enough of. This is the only detection.

Every output gives the same ``confidence``: the score of the label it is published with
(:meth:`FrameOutcome.confidence`). A frame the gate rejected is ``no_leaf`` by a rule,
score 1.0, never the score of a class the model would have picked; the model's own
``no_leaf`` and a leaf have the top score; ``unknown`` has the top class's score (the
best guess that stayed below the threshold).
"""

from __future__ import annotations

from dataclasses import dataclass

from plant_disease_ros.core.classifier import Classification
from plant_disease_ros.core.detections import UNKNOWN_LABEL
from plant_disease_ros.core.vegetation import GateResult

NO_LEAF_LABEL = 'no_leaf'
OUTCOMES = ('leaf', 'unknown', 'no_leaf')
MODEL_REASON = 'model'  # the no_leaf reason when the model's background class won
GATE_CONFIDENCE = 1.0  # the score of no_leaf when the vegetation gate decided it


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

    def confidence(self, classification: Classification) -> float:
        """Return the score of the published label, the ``confidence`` of every output.

        ``GATE_CONFIDENCE`` (1.0) when the vegetation gate made the frame ``no_leaf``;
        otherwise the top-1 score of ``classification`` (for ``unknown``: the top class's
        score, below the threshold). The model's own ``top_k`` is published beside it.
        """
        if self.by_gate:
            return GATE_CONFIDENCE
        return float(classification.top.score)


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
