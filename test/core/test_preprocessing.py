"""Crops and the resize to the model input."""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np
import pytest

from plant_disease_ros.core.preprocessing import (
    center_crop,
    crop_roi,
    EmptyCropError,
    resize_to_input,
)


def coordinates_image(height: int, width: int) -> np.ndarray:
    """Return an image whose pixel (y, x) holds (y, x, 7): crops show where they came from."""
    ys, xs = np.mgrid[0:height, 0:width]
    return np.stack([ys, xs, np.full_like(ys, 7)], axis=-1).astype(np.uint8)


@pytest.mark.parametrize(('height', 'width', 'fraction', 'side', 'top', 'left'), [
    (120, 160, 1.0, 120, 0, 20),
    (160, 120, 1.0, 120, 20, 0),
    (120, 160, 0.5, 60, 30, 50),
    (100, 100, 1.0, 100, 0, 0),
    (101, 200, 0.25, 25, 38, 87),
    (3, 5, 0.01, 1, 1, 2),
])
def test_center_crop(height: int, width: int, fraction: float, side: int, top: int,
                     left: int) -> None:
    image = coordinates_image(height, width)
    crop = center_crop(image, fraction)
    assert crop.shape == (side, side, 3)
    assert crop.flags.c_contiguous
    assert tuple(crop[0, 0, :2]) == (top, left)


@pytest.mark.parametrize('fraction', [0.0, -0.5, 1.01, float('nan'), float('inf')])
def test_center_crop_rejects_fraction(fraction: float) -> None:
    with pytest.raises(ValueError, match='fraction'):
        center_crop(coordinates_image(10, 10), fraction)


def test_crop_roi_inside() -> None:
    image = coordinates_image(50, 80)
    crop = crop_roi(image, 10, 5, 20, 15)
    assert crop.shape == (15, 20, 3)
    assert tuple(crop[0, 0, :2]) == (5, 10)
    assert tuple(crop[-1, -1, :2]) == (19, 29)
    crop[...] = 0
    assert image[5, 10, 2] == 7  # a copy, not a view


@pytest.mark.parametrize(('roi', 'shape', 'origin'), [
    ((70, 40, 100, 100), (10, 10), (40, 70)),
    ((-5, -8, 20, 20), (12, 15), (0, 0)),
    ((0, 0, 80, 50), (50, 80), (0, 0)),
    ((-100, -100, 1000, 1000), (50, 80), (0, 0)),
])
def test_crop_roi_is_clipped(roi: tuple[int, int, int, int], shape: tuple[int, int],
                             origin: tuple[int, int]) -> None:
    crop = crop_roi(coordinates_image(50, 80), *roi)
    assert crop.shape[:2] == shape
    assert tuple(crop[0, 0, :2]) == origin


@pytest.mark.parametrize('roi', [(80, 0, 10, 10), (0, 50, 10, 10), (-20, 0, 20, 10),
                                 (10, 10, 0, 5), (10, 10, 5, -3), (0, 0, 0, 0)])
def test_crop_roi_empty_raises(roi: tuple[int, int, int, int]) -> None:
    with pytest.raises(EmptyCropError) as info:
        crop_roi(coordinates_image(50, 80), *roi)
    assert info.value.reason == 'empty_crop'
    assert '80x50' in str(info.value)


LEAVES = sorted((Path(__file__).resolve().parents[1] / 'data' / 'leaves').glob('*.jpg'))


@pytest.mark.parametrize(('source', 'target', 'mean_limit'), [
    ((480, 480), (144, 144), 1.0),   # a centre-cropped 640x480 frame, the shipped model
    ((480, 480), (128, 128), 1.0),   # the same for a 128 px model
    ((1080, 1080), (128, 128), 3.0),
    ((480, 640), (96, 128), 3.0),
    ((481, 643), (128, 128), 0.01),  # odd sides: no halving, one INTER_AREA step
    ((960, 962), (144, 144), 3.0),   # even twice, then an odd side (481) stops the halving
])
def test_resize_shrink_matches_area_averaging(source: tuple[int, int], target: tuple[int, int],
                                              mean_limit: float) -> None:
    # Leaf photos seen at camera resolution: the result stays within a few grey levels of
    # one-shot INTER_AREA (measured 0.7 / 0.7 / 2.4 / 1.9 / 2.1 at most). A shifted, flipped or
    # wrongly scaled result would be tens of levels off.
    assert len(LEAVES) >= 20
    for path in LEAVES:
        photo = cv2.resize(cv2.imread(str(path)), source[::-1], interpolation=cv2.INTER_CUBIC)
        out = resize_to_input(photo, *target)
        assert out.shape == (*target, 3)
        assert out.flags.c_contiguous
        expected = cv2.resize(photo, target[::-1], interpolation=cv2.INTER_AREA)
        difference = np.abs(out.astype(np.int16) - expected.astype(np.int16))
        assert difference.mean() < mean_limit, path.name


@pytest.mark.parametrize('side', [863, 961, 575])
def test_resize_of_an_odd_side_is_the_training_resize_exactly(side: int) -> None:
    """An odd side is never halved (that drops its last row and shifts the grid)."""
    image = np.random.default_rng(side).integers(0, 256, (side, side, 3), dtype=np.uint8)
    np.testing.assert_array_equal(
        resize_to_input(image, 144, 144),
        cv2.resize(image, (144, 144), interpolation=cv2.INTER_AREA))


def test_resize_under_two_times_is_exact_area() -> None:
    # A 256 px lab photo for the 144 px model: no halving, the training resize exactly.
    image = np.random.default_rng(5).integers(0, 256, (256, 256, 3), dtype=np.uint8)
    np.testing.assert_array_equal(
        resize_to_input(image, 144, 144),
        cv2.resize(image, (144, 144), interpolation=cv2.INTER_AREA))


def test_resize_halving_is_exact_area() -> None:
    # The training photos' 256 -> 128: bit-identical to one-shot INTER_AREA.
    image = np.random.default_rng(4).integers(0, 256, (256, 256, 3), dtype=np.uint8)
    np.testing.assert_array_equal(
        resize_to_input(image, 128, 128),
        cv2.resize(image, (128, 128), interpolation=cv2.INTER_AREA))


def test_resize_shrink_is_anti_aliased() -> None:
    # A one-pixel checkerboard must average to mid grey; a bare bilinear resize aliases.
    ys, xs = np.mgrid[0:480, 0:480]
    board = np.repeat((((ys + xs) % 2) * 255).astype(np.uint8)[..., None], 3, axis=2)
    out = resize_to_input(board, 128, 128).astype(np.int16)
    assert np.abs(out - 127.5).max() <= 2
    aliased = cv2.resize(board, (128, 128), interpolation=cv2.INTER_LINEAR).astype(np.int16)
    assert np.abs(aliased - 127.5).max() > 60


def test_resize_enlarges_with_linear() -> None:
    rng = np.random.default_rng(2)
    image = rng.integers(0, 256, (40, 30, 3), dtype=np.uint8)
    out = resize_to_input(image, 96, 96)
    expected = cv2.resize(image, (96, 96), interpolation=cv2.INTER_LINEAR)
    np.testing.assert_array_equal(out, expected)


def test_resize_mixed_uses_area() -> None:
    rng = np.random.default_rng(3)
    image = rng.integers(0, 256, (50, 400, 3), dtype=np.uint8)
    out = resize_to_input(image, 96, 96)
    expected = cv2.resize(image, (96, 96), interpolation=cv2.INTER_AREA)
    np.testing.assert_array_equal(out, expected)


def test_resize_same_size_keeps_pixels() -> None:
    image = coordinates_image(96, 96)
    out = resize_to_input(image, 96, 96)
    np.testing.assert_array_equal(out, image)
    view = coordinates_image(96, 200)[:, 10:106]
    out = resize_to_input(view, 96, 96)
    assert out.flags.c_contiguous
    np.testing.assert_array_equal(out, view)


def test_resize_rejects_bad_sizes() -> None:
    with pytest.raises(ValueError):
        resize_to_input(coordinates_image(10, 10), 0, 10)
    with pytest.raises(ValueError):
        resize_to_input(np.zeros((0, 10, 3), dtype=np.uint8), 5, 5)
