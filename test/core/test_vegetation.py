"""The vegetation gate on synthetic frames (plain numpy)."""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np
import pytest

from plant_disease_ros.core.image_encoding import compressed_to_rgb, raw_to_rgb, rgb_to_raw
from plant_disease_ros.core.vegetation import (
    check_frame,
    colour_fraction,
    GateOptions,
    GateResult,
    NO_COLOUR,
    NO_VEGETATION,
    texture_level,
    vegetation_fraction,
)

LEAF_PHOTOS = sorted((Path(__file__).resolve().parents[1] / 'data' / 'leaves').glob('*.jpg'))


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


def read_rgb(path: Path) -> np.ndarray:
    """Read a photo as RGB uint8."""
    bgr = cv2.imread(str(path), cv2.IMREAD_COLOR)
    assert bgr is not None, path
    return cv2.cvtColor(bgr, cv2.COLOR_BGR2RGB)


def grey_camera_frames(rgb: np.ndarray) -> dict[str, np.ndarray]:
    """Return what a grey camera delivers of ``rgb``, as the nodes convert it to RGB.

    mono8, mono16 and 8UC1 buffers; grey JPEG and PNG; the grey picture with a level of
    rounding noise per channel, raw and as a colour JPEG at quality 100, whose chroma
    noise differs the channels of a third of the pixels by up to 5 levels.
    """
    frames = {}
    for encoding in ('mono8', 'mono16', '8UC1'):
        data, step = rgb_to_raw(rgb, encoding)
        frames[encoding] = raw_to_rgb(data, encoding, rgb.shape[1], rgb.shape[0], step)
    grey = frames['mono8'][:, :, 0]
    for fmt, params in (('.jpg', [cv2.IMWRITE_JPEG_QUALITY, 90]), ('.png', [])):
        ok, encoded = cv2.imencode(fmt, grey, params)
        assert ok
        frames[f'grey {fmt}'] = compressed_to_rgb(encoded.tobytes())
    rng = np.random.default_rng(3)
    jittered = np.clip(frames['mono8'].astype(np.int16)
                       + rng.integers(-1, 2, frames['mono8'].shape), 0, 255).astype(np.uint8)
    frames['grey, channels 1 level apart'] = jittered
    ok, encoded = cv2.imencode('.jpg', cv2.cvtColor(jittered, cv2.COLOR_RGB2BGR),
                               [cv2.IMWRITE_JPEG_QUALITY, 100])
    assert ok
    frames['colour JPEG of it'] = compressed_to_rgb(encoded.tobytes())
    return frames


def spread(rgb: np.ndarray) -> np.ndarray:
    """Return each pixel's largest minus smallest channel."""
    return rgb.max(axis=2).astype(np.int16) - rgb.min(axis=2).astype(np.int16)


def test_grey_camera_frames_are_rejected_as_without_colour() -> None:
    """A grey camera's leaf photos: 'no colour', not 'no vegetation'."""
    assert LEAF_PHOTOS
    for path in LEAF_PHOTOS:
        frames = grey_camera_frames(read_rgb(path))
        # The JPEG's chroma noise is there: not every pixel has equal channels.
        assert (spread(frames['colour JPEG of it']) > 2).any(), path.stem
        for name, frame in frames.items():
            result = check_frame(frame)
            assert not result.passed, (path.stem, name)
            assert result.reason == NO_COLOUR == 'no colour', (path.stem, name)
            assert result.has_colour is False and result.colour < 0.01, (path.stem, name)


def gravel() -> np.ndarray:
    """Return a colour sensor's raw frame of grey gravel: each channel has its own noise."""
    rng = np.random.default_rng(1)
    return np.clip(128 + rng.normal(0, 20, (96, 96, 1)) + rng.normal(0, 3, (96, 96, 3)),
                   0, 255).astype(np.uint8)


def test_colour_leaf_photos_and_colour_noise_are_not_grey() -> None:
    """Every leaf photo has colour (and passes); so has a colour camera's raw grey gravel."""
    for path in LEAF_PHOTOS:
        result = check_frame(read_rgb(path))
        assert result.passed and result.has_colour is True, (path.stem, result)
        assert result.colour > 0.3, (path.stem, result.colour)
    # A colour sensor on a grey surface: each channel's own noise gives the pixels colour.
    result = check_frame(gravel())
    assert result.reason == NO_VEGETATION and result.has_colour is True, result


@pytest.mark.parametrize('quality', [75, 90])
def test_a_colour_jpeg_of_grey_gravel_has_no_colour_either(quality: int) -> None:
    """The same gravel through a colour camera's JPEG: its chroma noise is gone, the frame
    is as grey as a grey camera's. 'no colour' is all the frame says: not which camera."""
    ok, encoded = cv2.imencode('.jpg', cv2.cvtColor(gravel(), cv2.COLOR_RGB2BGR),
                               [cv2.IMWRITE_JPEG_QUALITY, quality])
    assert ok
    frame = compressed_to_rgb(encoded.tobytes())
    assert spread(frame).max() <= GateOptions().grey_tolerance
    result = check_frame(frame)
    assert result.reason == NO_COLOUR and result.has_colour is False, result
    assert 'grey' not in result.reason


def test_the_colour_test_only_names_a_rejection() -> None:
    """Dark, bright and flat grey frames keep their reason; no passing frame is grey."""
    assert check_frame(np.zeros((64, 64, 3), np.uint8)).has_colour is None
    assert check_frame(np.full((64, 64, 3), 128, np.uint8)).has_colour is None
    # Even a gate that calls every frame grey lets a leaf through.
    assert check_frame(leafy(), GateOptions(min_colour=1.1)).passed
    assert colour_fraction(np.zeros((0, 0, 3), np.uint8)) == 0.0
    assert colour_fraction(np.array([[[10, 14, 12], [10, 15, 12]]], np.uint8)) == 0.5
    # Results made without the measurement (older callers) count as having colour.
    assert GateResult(False, NO_VEGETATION, 90.0, 5.0, 0.0).has_colour is True
