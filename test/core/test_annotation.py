"""annotate: a dark band with the text across the top; the input is left alone."""

from __future__ import annotations

import numpy as np
import pytest

from plant_disease_ros.core.annotation import annotate, annotation_text
from plant_disease_ros.core.outcome import FrameOutcome


@pytest.mark.parametrize(('height', 'width'), [(48, 64), (480, 640), (12, 400)])
def test_band_on_top_rest_unchanged(height: int, width: int) -> None:
    rgb = np.full((height, width, 3), 200, np.uint8)
    before = rgb.copy()
    out = annotate(rgb, 'Late blight 0.93')
    assert np.array_equal(rgb, before)
    assert out.shape == rgb.shape and out.dtype == np.uint8
    changed_rows = np.flatnonzero((out != rgb).any(axis=(1, 2)))
    assert changed_rows.size > 0 and changed_rows[0] == 0
    band = changed_rows[-1] + 1
    assert band <= height
    assert np.array_equal(out[band:], rgb[band:])
    # Darkened band with light text on it.
    assert out[:band].min() < 100 and out[:band].max() > 200


def test_accepts_a_non_contiguous_view() -> None:
    rgb = np.full((40, 80, 3), 90, np.uint8)[:, ::2]
    out = annotate(rgb, 'x')
    assert out.shape == (40, 40, 3) and out.flags['C_CONTIGUOUS']


def test_the_text_is_the_label_and_its_confidence() -> None:
    """The published label and confidence; the gate's reason for a frame it turned away."""
    leaf = FrameOutcome('Tomato___Early_blight', 'leaf')
    assert annotation_text(leaf, 0.934) == 'Tomato: Early blight 0.93'
    assert annotation_text(FrameOutcome('unknown', 'unknown'), 0.31) == 'unknown 0.31'
    assert annotation_text(FrameOutcome('no_leaf', 'no_leaf', 'model'), 0.8) == 'no leaf 0.80'
    grey = FrameOutcome('no_leaf', 'no_leaf', 'no colour')
    assert annotation_text(grey, 1.0) == 'no leaf 1.00: no colour'


def test_a_long_text_is_made_smaller_to_fit_the_frame() -> None:
    """A caption wider than the frame was cut at its right edge; it is drawn smaller, so its
    last letters land inside the frame (the right edge of the band stays dark)."""
    text = 'Tomato: Spider mites Two-spotted spider mite 1.00: red lowers the score (3x3)'
    rgb = np.full((480, 640, 3), 200, np.uint8)
    out = annotate(rgb, text)
    band = np.flatnonzero((out != rgb).any(axis=(1, 2)))[-1] + 1
    lit = np.flatnonzero((out[:band] > 150).any(axis=(0, 2)))
    assert lit[-1] < 640 - 2  # the text ends before the frame does
    short = annotate(rgb, 'Late blight 0.93')
    short_band = np.flatnonzero((short != rgb).any(axis=(1, 2)))[-1] + 1
    assert band < short_band  # a smaller font: a lower band


def test_a_long_caption_fits_at_every_width_it_can() -> None:
    """Swept over frame widths: the text ends inside the frame unless even the smallest
    scale is wider than the frame (one proportional shrink left 1280 px cut: the stroke
    does not shrink with the font)."""
    import cv2

    from plant_disease_ros.core.annotation import MIN_TEXT_SCALE

    text = 'unknown (Tomato: Tomato Yellow Leaf Curl Virus 0.42): flat, no region lowers it'
    smallest = cv2.getTextSize(text, cv2.FONT_HERSHEY_SIMPLEX, MIN_TEXT_SCALE, 1)[0][0]
    checked = 0
    for width in range(100, 4000, 23):
        if smallest > width - 8:
            continue
        rgb = np.full((60, width, 3), 200, np.uint8)
        out = annotate(rgb, text)
        band = np.flatnonzero((out != rgb).any(axis=(1, 2)))[-1] + 1
        lit = np.flatnonzero((out[:band] > 150).any(axis=(0, 2)))
        assert lit.size and lit[-1] < width - 2, width
        checked += 1
    assert checked > 100
