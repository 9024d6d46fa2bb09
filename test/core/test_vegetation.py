"""The vegetation gate on synthetic frames (plain numpy)."""

from __future__ import annotations

import numpy as np
import pytest

from plant_disease_ros.core.vegetation import (
    check_frame,
    GateOptions,
    texture_level,
    vegetation_fraction,
)


def leafy(size: int = 96, seed: int = 0) -> np.ndarray:
    """A textured frame, half green leaf, half brown soil."""
    rng = np.random.default_rng(seed)
    frame = np.empty((size, size, 3), np.float32)
    frame[:, : size // 2] = (50, 130, 40)
    frame[:, size // 2:] = (110, 80, 50)
    frame += rng.normal(0, 6, frame.shape)
    return np.clip(frame, 0, 255).astype(np.uint8)


def test_a_leafy_frame_passes() -> None:
    result = check_frame(leafy())
    assert result.passed and result.reason == ''
    assert 0.4 < result.vegetation < 0.6
    assert result.texture > 3


@pytest.mark.parametrize('frame, reason', [
    (np.zeros((64, 64, 3), np.uint8), 'too dark'),
    (np.full((64, 64, 3), 252, np.uint8), 'over-exposed'),
    (np.full((64, 64, 3), (40, 140, 50), np.uint8), 'flat'),  # uniform green
    (np.full((64, 64, 3), 128, np.uint8), 'flat'),
])
def test_empty_frames_are_rejected_with_a_reason(frame: np.ndarray, reason: str) -> None:
    result = check_frame(frame)
    assert not result.passed and result.reason == reason


def test_textured_sky_and_soil_have_no_vegetation() -> None:
    rng = np.random.default_rng(1)
    for colour in ((90, 140, 220), (130, 90, 55), (128, 128, 128)):
        frame = np.clip(np.array(colour) + rng.normal(0, 4, (64, 64, 3)), 0, 255)
        result = check_frame(frame.astype(np.uint8))
        assert not result.passed and result.reason == 'no vegetation', colour


def test_yellowed_diseased_tissue_counts_as_vegetation() -> None:
    yellow = np.full((8, 8, 3), (200, 190, 40), np.uint8)
    assert vegetation_fraction(yellow) == 1.0
    grey = np.full((8, 8, 3), 120, np.uint8)
    assert vegetation_fraction(grey) == 0.0
    blue = np.full((8, 8, 3), (40, 60, 200), np.uint8)
    assert vegetation_fraction(blue) == 0.0


def test_large_frames_are_subsampled_to_the_same_verdict() -> None:
    small = leafy(96)
    large = np.repeat(np.repeat(small, 8, axis=0), 8, axis=1)
    assert check_frame(large).passed
    assert check_frame(large).vegetation == pytest.approx(check_frame(small).vegetation,
                                                          abs=0.05)


def test_options_and_input_checks() -> None:
    strict = GateOptions(min_vegetation=0.9)
    assert check_frame(leafy(), strict).reason == 'no vegetation'
    assert texture_level(np.zeros((1, 5, 3), np.uint8)) == 0.0
    assert vegetation_fraction(np.zeros((0, 0, 3), np.uint8)) == 0.0
    with pytest.raises(ValueError, match='RGB'):
        check_frame(np.zeros((8, 8), np.uint8))
