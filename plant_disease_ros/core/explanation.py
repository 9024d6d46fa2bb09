"""The classifier node's ``explanation`` image: which part of the frame its answer rests on.

An occlusion map (:mod:`plant_disease_ros.core.occlusion`) of the class the model named,
blended over the frame, with a caption that names that class and its score, and the
published label when it is another one (``unknown`` below ``score_threshold``). The map
is of the upright frame alone, whatever ``test_time_poses``: a region covered is where it
is in the frame, and one map costs ``grid**2 + 1`` invokes, not that many per pose.

A confident int8 model's output often does not move, or moves by a step or two of its
uint8 output, when one cell is covered: a map whose largest drop is within
``MIN_DROP_STEPS`` output steps is retried with larger patches (3, then 5 cells where the
grid has them), and one still that flat is shown as the plain frame captioned *flat*,
never as quantisation noise stretched to full red. A frame the vegetation gate turned
away was not seen by the model: it gets the plain frame and a caption that says so, at
no cost.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from plant_disease_ros.core.annotation import annotate
from plant_disease_ros.core.classifier import Classification, DiseaseClassifier
from plant_disease_ros.core.labels import display_name
from plant_disease_ros.core.occlusion import (
    FALLBACK_PATCHES,
    occlusion_heatmap,
    output_quantum,
    overlay_heatmap,
)
from plant_disease_ros.core.outcome import FrameOutcome

# Cells along each side of the node's map: 17 invokes a try.
EXPLANATION_GRID = 4
# What an explanation image shows: a map, the plain frame of a flat map, or the plain
# frame of one the vegetation gate turned away (no model answer to explain); 'failed'
# counts the node's explanations that could not be made.
EXPLANATION_STATES = ('map', 'flat', 'gate', 'failed')
# A map whose largest score drop is at most this many steps of an int8 model's output
# (1/256 each) shows rounding, not where the answer comes from.
MIN_DROP_STEPS = 2


class UprightFrame:
    """A classifier's own scores of the upright frame alone (one pose), for occlusion.

    Without the ``crops`` filter: it divides the kept labels' scores by their sum, which
    for a frame of another crop is small, and would magnify the int8 output's rounding
    steps tenfold past the flatness threshold.
    """

    def __init__(self, classifier: DiseaseClassifier) -> None:
        """Wrap ``classifier``; its model's output scale tells occlusion its output step."""
        self._classifier = classifier
        self.input_size = classifier.input_size
        self.model = classifier.model

    def probabilities(self, rgb: np.ndarray) -> np.ndarray:
        """Return the class probabilities of ``rgb`` with one pose."""
        return self._classifier.probabilities(rgb, poses=1, crops=False)


@dataclass(frozen=True)
class Explanation:
    """An explanation image and what it shows."""

    image: np.ndarray  # RGB uint8, the frame's size
    state: str         # 'map', 'flat' (no region moves the score) or 'gate' (no model)
    invokes: int       # model invokes it took
    caption: str


def informative_map(model: UprightFrame, rgb: np.ndarray, grid: int, target: int,
                    ) -> tuple[np.ndarray | None, int, int]:
    """Return ``(map, patch, invokes)``: the first occlusion map, with patches of 1, 3 and
    5 cells (those the grid has), whose largest drop exceeds ``MIN_DROP_STEPS`` output
    steps (any drop for a float model); the map is None when none does."""
    threshold = max(MIN_DROP_STEPS * output_quantum(model), 1e-6)
    invokes, patch = 0, 1
    for patch in (1, *FALLBACK_PATCHES):
        if patch > grid:
            break
        heat = occlusion_heatmap(model, rgb, grid=grid, target_index=target, patch=patch)
        invokes += grid * grid + 1
        if float(np.max(heat)) > threshold:
            return heat, patch, invokes
    return None, patch, invokes


def explanation_image(classifier: DiseaseClassifier, rgb: np.ndarray,
                      classification: Classification, outcome: FrameOutcome,
                      grid: int = EXPLANATION_GRID) -> Explanation:
    """Return the explanation of a classified frame: occlusion map and caption.

    ``classification`` and ``outcome`` are the frame's as published; the map is of the
    model's top class (for ``unknown`` too: what the model leaned to).
    """
    if outcome.by_gate:
        caption = f"{display_name(outcome.label)}: vegetation gate ('{outcome.reason}'), no map"
        return Explanation(annotate(rgb, caption), 'gate', 0, caption)
    top = classification.top
    named = f'{display_name(top.label)} {top.score:.2f}'
    if outcome.label != top.label:  # unknown: below score_threshold
        named = f'{display_name(outcome.label)} ({named})'
    if top.score <= 0.0:
        # The crops filter left no score (a frame of another crop): no class to explain.
        caption = f'{display_name(outcome.label)}: no score for the crops set, no map'
        return Explanation(annotate(rgb, caption), 'flat', 0, caption)
    heat, patch, invokes = informative_map(UprightFrame(classifier), rgb, grid, top.index)
    if heat is None:
        caption = f'{named}: flat, no region lowers the score'
        return Explanation(annotate(rgb, caption), 'flat', invokes, caption)
    caption = f'{named}: red lowers the score' + (f' ({patch}x{patch})' if patch > 1 else '')
    return Explanation(annotate(overlay_heatmap(rgb, heat), caption), 'map', invokes, caption)


__all__ = ['EXPLANATION_GRID', 'EXPLANATION_STATES', 'Explanation', 'MIN_DROP_STEPS',
           'UprightFrame', 'explanation_image', 'informative_map']
