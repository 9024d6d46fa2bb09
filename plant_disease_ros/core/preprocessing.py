"""Crops, the resize to the model's input size and its right-angle poses (numpy, OpenCV)."""

from __future__ import annotations

import math

import cv2
import numpy as np


class EmptyCropError(ValueError):
    """A crop that leaves no pixels; ``reason`` is the diagnostics key 'empty_crop'."""

    reason = 'empty_crop'


def _image_size(rgb: np.ndarray) -> tuple[int, int]:
    """Return (height, width) of an H×W or H×W×C image, raising on anything else."""
    if rgb.ndim not in (2, 3):
        raise ValueError(f'expected an HxW or HxWxC image, got shape {rgb.shape}')
    return int(rgb.shape[0]), int(rgb.shape[1])


def center_crop(rgb: np.ndarray, fraction: float) -> np.ndarray:
    """Cut the centred square whose side is ``fraction`` of the image's shorter side.

    ``fraction`` is in (0, 1]; 1.0 gives the largest centred square (the framing of the
    square training photos). The side is rounded to whole pixels and is at least 1.
    """
    fraction = float(fraction)
    if not (math.isfinite(fraction) and 0.0 < fraction <= 1.0):
        raise ValueError(f'center crop fraction must be in (0, 1], got {fraction}')
    height, width = _image_size(rgb)
    if height == 0 or width == 0:
        raise EmptyCropError(f'cannot crop an empty {width}x{height} image')
    side = max(1, min(height, width, int(round(min(height, width) * fraction))))
    top = (height - side) // 2
    left = (width - side) // 2
    return np.ascontiguousarray(rgb[top:top + side, left:left + side])


def crop_roi(rgb: np.ndarray, x: int, y: int, width: int, height: int) -> np.ndarray:
    """Cut the rectangle at (``x``, ``y``) of ``width``×``height``, clipped to the image.

    Raises :class:`EmptyCropError` when nothing of the rectangle lies inside the image.
    """
    image_height, image_width = _image_size(rgb)
    x, y, width, height = int(x), int(y), int(width), int(height)
    left, top = max(0, x), max(0, y)
    right, bottom = min(image_width, x + width), min(image_height, y + height)
    if right <= left or bottom <= top:
        raise EmptyCropError(
            f'ROI x={x} y={y} w={width} h={height} is empty inside the '
            f'{image_width}x{image_height} image')
    return np.ascontiguousarray(rgb[top:bottom, left:right])


def resize_to_input(rgb: np.ndarray, height: int, width: int) -> np.ndarray:
    """Resize to ``height``×``width`` the way the training photos were resized.

    Training shrinks every photo with OpenCV's ``INTER_AREA`` (area averaging), so the model
    has only seen anti-aliased pixels. Shrinking here halves the image with exact 2×2 area
    means while both sides stay at least twice the target (a fast path of the same averaging),
    then finishes with ``INTER_AREA`` for the last step of less than 2×. An image of less than
    twice the target (a 256 px lab photo for a 144 px model) thus gets exactly the training
    pixels, and a 480 px camera crop gets them to within a grey level or two, at half the cost
    of one-shot ``INTER_AREA``. A side of odd length stops the halving there (one
    ``INTER_AREA`` step does the rest, exactly as training). A bilinear last step was a tenth
    of that cost but aliased: the shipped 144 px model got 97.0 % of the lab test photos right
    with it against 98.1 % with the training resize, and rejected 5.6 % of them against 3.1 %
    (``benchmarks/results/2026-12-05-node-resize.md``). Enlarging is bilinear. An image already
    at the size is returned as is (made C-contiguous).
    """
    height, width = int(height), int(width)
    if height <= 0 or width <= 0:
        raise ValueError(f'target size must be positive, got {width}x{height}')
    source_height, source_width = _image_size(rgb)
    if source_height == 0 or source_width == 0:
        raise EmptyCropError(f'cannot resize an empty {source_width}x{source_height} image')
    image = rgb
    while (image.shape[0] >= 2 * height and image.shape[1] >= 2 * width
           and image.shape[0] % 2 == 0 and image.shape[1] % 2 == 0):
        # Exact 2x2 means. An odd side is left to the one INTER_AREA step below: halving
        # it would drop its last row or column and shift the grid.
        image = cv2.resize(image, (image.shape[1] // 2, image.shape[0] // 2),
                           interpolation=cv2.INTER_AREA)
    if image.shape[:2] == (height, width):
        return np.ascontiguousarray(image)
    shrinking = image.shape[0] > height or image.shape[1] > width
    interpolation = cv2.INTER_AREA if shrinking else cv2.INTER_LINEAR
    return cv2.resize(image, (width, height), interpolation=interpolation)


# How many right-angle poses of a frame may be averaged (test_time_poses).
POSE_COUNTS = (1, 2, 4, 8)
# Which of the eight poses (0-3: turned k × 90°; 4-7: the mirror image turned) each count
# averages: 2 is the frame and its half turn, so every count is a symmetric set.
_POSE_ORDER = {1: (0,), 2: (0, 2), 4: (0, 1, 2, 3), 8: tuple(range(8))}


def check_pose_count(count: int, height: int | None = None, width: int | None = None) -> int:
    """Return ``count`` as an int if it is one of :data:`POSE_COUNTS`; ValueError if not.

    With ``height`` and ``width`` (the model's input), 4 and 8 poses need a square input:
    a quarter turn of a non-square input does not fit it.
    """
    if isinstance(count, bool) or int(count) != count or int(count) not in POSE_COUNTS:
        raise ValueError(f'poses must be one of {", ".join(map(str, POSE_COUNTS))}, '
                         f'got {count}')
    count = int(count)
    if count > 2 and height is not None and height != width:
        raise ValueError(f'{count} poses need a square model input (quarter turns), the '
                         f'model takes {width}x{height}; use 1 or 2')
    return count


def pose_views(image: np.ndarray, count: int, axes: tuple[int, int] = (0, 1)
               ) -> list[np.ndarray]:
    """Return ``count`` right-angle poses of ``image``, the image itself first.

    ``axes`` are its (rows, columns) axes: (0, 1) for one H×W×C image, (1, 2) for an
    N×H×W×C batch. The poses are views (no copy) in the order of :data:`_POSE_ORDER`.
    """
    count = check_pose_count(count)
    if count == 1:
        return [image]
    mirrored = np.flip(image, axis=axes[1])
    return [np.rot90(mirrored if index >= 4 else image, index % 4, axes=axes)
            for index in _POSE_ORDER[count]]
