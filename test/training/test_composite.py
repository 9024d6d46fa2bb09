"""Leaf segmentation from a plain background and pasting into a scene."""

from __future__ import annotations

import cv2
import numpy as np

from plant_disease_ros.training.composite import composite_leaf, leaf_mask, leaf_masks


def lab_photo(size: int = 96, backdrop=(170, 165, 160)) -> tuple[np.ndarray, np.ndarray]:
    """Return a synthetic 'lab photo' (green leaf ellipse with a brown spot) and its truth."""
    image = np.empty((size, size, 3), np.uint8)
    image[:] = backdrop
    truth = np.zeros((size, size), np.uint8)
    cv2.ellipse(truth, (size // 2, size // 2), (size // 3, size // 5), 30, 0, 360, 255, -1)
    image[truth > 0] = (40, 120, 35)
    cv2.circle(image, (size // 2, size // 2), size // 12, (120, 80, 30), -1)
    noise = np.random.default_rng(0).normal(0, 3, image.shape)
    return np.clip(image + noise, 0, 255).astype(np.uint8), truth


def iou(a: np.ndarray, b: np.ndarray) -> float:
    return float(np.logical_and(a > 0, b > 0).sum() / np.logical_or(a > 0, b > 0).sum())


def test_leaf_mask_finds_the_leaf_on_a_plain_background() -> None:
    for backdrop in ((170, 165, 160), (60, 60, 70), (200, 190, 230)):
        image, truth = lab_photo(backdrop=backdrop)
        mask = leaf_mask(image)
        assert mask.dtype == np.uint8 and set(np.unique(mask)) <= {0, 255}
        assert iou(mask, truth) > 0.9, backdrop


def test_leaf_mask_falls_back_to_an_ellipse_on_an_empty_photo() -> None:
    blank = np.full((64, 64, 3), 128, np.uint8)
    mask = leaf_mask(blank)
    fraction = (mask > 0).mean()
    assert 0.3 < fraction < 0.7 and mask[32, 32] == 255 and mask[0, 0] == 0


def test_leaf_masks_of_a_batch() -> None:
    image, _ = lab_photo(64)
    masks = leaf_masks(np.stack([image, image]))
    assert masks.shape == (2, 64, 64) and np.array_equal(masks[0], masks[1])


def test_composite_puts_leaf_pixels_on_the_background() -> None:
    image, truth = lab_photo(96)
    background = np.zeros((64, 64, 3), np.uint8)
    background[:] = (0, 0, 255)
    rng = np.random.default_rng(3)
    for _ in range(20):
        out = composite_leaf(rng, image, truth, background, partial_probability=0.0)
        assert out.shape == background.shape and out.dtype == np.uint8
        green = (out[..., 1] > 90) & (out[..., 2] < 100)
        blue = (out[..., 2] > 200) & (out[..., 1] < 40)
        assert green.sum() > 0.05 * green.size  # a leaf is there
        assert blue.sum() > 0.1 * blue.size  # and the scene around it
        # The lab backdrop colour never comes along with the leaf.
        backdrop = (np.abs(out.astype(int) - (170, 165, 160)).sum(axis=-1) < 30)
        assert backdrop.sum() < 0.02 * backdrop.size


def test_composite_is_seeded_and_handles_an_empty_mask() -> None:
    image, truth = lab_photo(64)
    background = np.full((48, 48, 3), 90, np.uint8)
    first = composite_leaf(np.random.default_rng(1), image, truth, background)
    second = composite_leaf(np.random.default_rng(1), image, truth, background)
    assert np.array_equal(first, second)
    empty = composite_leaf(np.random.default_rng(1), image, np.zeros_like(truth), background)
    assert np.array_equal(empty, background)
