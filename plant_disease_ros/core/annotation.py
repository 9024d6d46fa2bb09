"""Draw a classification's label on a frame (the ``image_annotated`` view)."""

from __future__ import annotations

import cv2
import numpy as np

from plant_disease_ros.core.labels import display_name
from plant_disease_ros.core.outcome import FrameOutcome


def annotation_text(outcome: FrameOutcome, confidence: float) -> str:
    """Return the text shown on a frame: its label's name and ``confidence``.

    ``confidence`` is the published one (:meth:`FrameOutcome.confidence`), the score of
    the label shown. A frame the vegetation gate turned away also names the gate's reason
    ('no leaf 1.00: no colour').
    """
    text = f'{display_name(outcome.label)} {confidence:.2f}'
    return f'{text}: {outcome.reason}' if outcome.by_gate else text


# The smallest text scale: below it the letters cannot be read; a longer text is cut.
MIN_TEXT_SCALE = 0.35


def annotate(rgb: np.ndarray, text: str) -> np.ndarray:
    """Return a copy of ``rgb`` with ``text`` on a dark band across the top.

    The text is scaled with the frame's width, and smaller when it would not fit in it
    (down to ``MIN_TEXT_SCALE``).
    """
    image = np.array(rgb, dtype=np.uint8, order='C', copy=True)
    height, width = image.shape[:2]
    # Text scaled with the frame width so it stays legible from thumbnails to 4K.
    scale = max(MIN_TEXT_SCALE, min(2.0, width / 900.0))
    thickness = max(1, int(round(scale * 2)))
    (text_width, text_height), baseline = cv2.getTextSize(
        text, cv2.FONT_HERSHEY_SIMPLEX, scale, thickness)
    while text_width > width - 8 and scale > MIN_TEXT_SCALE:
        # The stroke adds width that does not scale with the font: measured again each step.
        scale = max(MIN_TEXT_SCALE, min(scale * 0.95, scale * (width - 8) / text_width))
        thickness = max(1, int(round(scale * 2)))
        (text_width, text_height), baseline = cv2.getTextSize(
            text, cv2.FONT_HERSHEY_SIMPLEX, scale, thickness)
    band = min(height, text_height + baseline + 2 * thickness + 4)
    image[:band] = (image[:band] * 0.35).astype(np.uint8)
    cv2.putText(image, text, (4, band - baseline - thickness), cv2.FONT_HERSHEY_SIMPLEX,
                scale, (255, 255, 255), thickness, cv2.LINE_AA)
    return image
