"""Cut a lab leaf from its plain background and paste it into a field scene (numpy/OpenCV).

The lab photos have a uniform background whose colour carries information about the
label. :func:`leaf_mask` separates the leaf from it (distance to the border colour in
CIELAB, Otsu threshold, the largest component, holes filled); :func:`composite_leaf`
pastes the leaf, scaled, turned and possibly cut by the frame edge, onto a background
frame, so the model learns the leaf and not the backdrop.
"""

from __future__ import annotations

import cv2
import numpy as np

MIN_LEAF_FRACTION = 0.05
MAX_LEAF_FRACTION = 0.95


def leaf_mask(rgb: np.ndarray, border: int = 4) -> np.ndarray:
    """Return a uint8 mask (255 = leaf) of a photo of one leaf on a plain background.

    The background colour is the median of a ``border``-pixel frame. When the result is
    implausible (under 5 % or over 95 % of the frame) a centred ellipse is returned
    instead, so a failed segmentation still pastes mostly leaf.
    """
    height, width = rgb.shape[:2]
    lab = cv2.cvtColor(rgb, cv2.COLOR_RGB2LAB).astype(np.float32)
    frame = np.concatenate([lab[:border].reshape(-1, 3), lab[-border:].reshape(-1, 3),
                            lab[:, :border].reshape(-1, 3), lab[:, -border:].reshape(-1, 3)])
    background = np.median(frame, axis=0)
    # Lightness counts half: shadows of the leaf on the backdrop are darker, not coloured.
    weights = np.array([0.5, 1.0, 1.0], np.float32)
    distance = np.sqrt((((lab - background) * weights) ** 2).sum(axis=-1))
    distance = cv2.GaussianBlur(distance, (5, 5), 0)
    scaled = np.clip(distance * (255.0 / max(float(distance.max()), 1e-6)), 0, 255)
    _, mask = cv2.threshold(scaled.astype(np.uint8), 0, 255,
                            cv2.THRESH_BINARY + cv2.THRESH_OTSU)
    kernel = cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (5, 5))
    mask = cv2.morphologyEx(mask, cv2.MORPH_OPEN, kernel)
    # A wider close bridges specular highlights on the leaf, which look like backdrop.
    mask = cv2.morphologyEx(mask, cv2.MORPH_CLOSE,
                            cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (9, 9)))
    mask = _largest_component_filled(mask)
    fraction = float(np.count_nonzero(mask)) / mask.size
    if not MIN_LEAF_FRACTION <= fraction <= MAX_LEAF_FRACTION:
        mask = np.zeros((height, width), np.uint8)
        cv2.ellipse(mask, (width // 2, height // 2), (int(width * 0.38), int(height * 0.45)),
                    0, 0, 360, 255, -1)
    return mask


def _largest_component_filled(mask: np.ndarray) -> np.ndarray:
    count, labels, stats, _ = cv2.connectedComponentsWithStats(mask, connectivity=8)
    if count <= 1:
        return np.zeros_like(mask)
    largest = 1 + int(np.argmax(stats[1:, cv2.CC_STAT_AREA]))
    component = np.where(labels == largest, 255, 0).astype(np.uint8)
    contours, _ = cv2.findContours(component, cv2.RETR_EXTERNAL, cv2.CHAIN_APPROX_SIMPLE)
    filled = np.zeros_like(mask)
    cv2.drawContours(filled, contours, -1, 255, thickness=-1)
    return filled


def leaf_masks(images: np.ndarray) -> np.ndarray:
    """Return :func:`leaf_mask` of every image of an N×H×W×3 batch (N×H×W uint8)."""
    masks = np.empty(images.shape[:3], np.uint8)
    for row, image in enumerate(images):
        masks[row] = leaf_mask(image)
    return masks


def composite_leaf(rng: np.random.Generator, leaf: np.ndarray, mask: np.ndarray,
                   background: np.ndarray, scale_range: tuple[float, float] = (0.55, 1.15),
                   partial_probability: float = 0.3) -> np.ndarray:
    """Paste the masked ``leaf`` onto ``background`` (both RGB uint8) and return the frame.

    The leaf is turned by a random angle, scaled so its box spans ``scale_range`` of the
    frame side, and placed at random; with ``partial_probability`` it is pushed partly out
    of the frame (a leaf cut by the image edge). The mask edge is feathered so no hard
    cut-out outline gives the paste away. The output has the background's size.
    """
    size = background.shape[0]
    ys, xs = np.nonzero(mask)
    if len(ys) == 0:
        return background.copy()
    top, bottom, left, right = ys.min(), ys.max() + 1, xs.min(), xs.max() + 1
    leaf_crop = leaf[top:bottom, left:right]
    mask_crop = mask[top:bottom, left:right]
    # Turn inside a square canvas large enough for any angle.
    side = int(np.ceil(np.hypot(*leaf_crop.shape[:2]))) + 2
    canvas = np.zeros((side, side, 3), np.uint8)
    canvas_mask = np.zeros((side, side), np.uint8)
    y0, x0 = (side - leaf_crop.shape[0]) // 2, (side - leaf_crop.shape[1]) // 2
    canvas[y0:y0 + leaf_crop.shape[0], x0:x0 + leaf_crop.shape[1]] = leaf_crop
    canvas_mask[y0:y0 + leaf_crop.shape[0], x0:x0 + leaf_crop.shape[1]] = mask_crop
    extent = max(leaf_crop.shape[:2])
    target = rng.uniform(*scale_range) * size
    zoom = target / max(extent, 1)
    rotation = cv2.getRotationMatrix2D((side / 2, side / 2), rng.uniform(0, 360), zoom)
    out_side = max(2, int(np.ceil(side * zoom)))
    rotation[:, 2] += (out_side - side) / 2
    turned = cv2.warpAffine(canvas, rotation, (out_side, out_side), flags=cv2.INTER_LINEAR)
    turned_mask = cv2.warpAffine(canvas_mask, rotation, (out_side, out_side),
                                 flags=cv2.INTER_LINEAR)
    ys, xs = np.nonzero(turned_mask > 127)
    if len(ys) == 0:
        return background.copy()
    box_h, box_w = ys.max() + 1 - ys.min(), xs.max() + 1 - xs.min()
    if rng.random() < partial_probability:
        slack = 0.45  # up to this share of the leaf's box may leave the frame
    else:
        slack = 0.0
    low_y = -ys.min() - int(slack * box_h)
    high_y = size - ys.max() - 1 + int(slack * box_h)
    low_x = -xs.min() - int(slack * box_w)
    high_x = size - xs.max() - 1 + int(slack * box_w)
    offset_y = int(rng.integers(min(low_y, high_y), max(low_y, high_y) + 1))
    offset_x = int(rng.integers(min(low_x, high_x), max(low_x, high_x) + 1))
    feather = cv2.GaussianBlur(turned_mask.astype(np.float32) / 255.0, (0, 0),
                               rng.uniform(0.5, 1.5))
    out = background.astype(np.float32)
    # Intersection of the pasted square with the frame.
    fy0, fx0 = max(0, offset_y), max(0, offset_x)
    fy1, fx1 = min(size, offset_y + out_side), min(size, offset_x + out_side)
    if fy1 <= fy0 or fx1 <= fx0:
        return background.copy()
    sy0, sx0 = fy0 - offset_y, fx0 - offset_x
    alpha = feather[sy0:sy0 + fy1 - fy0, sx0:sx0 + fx1 - fx0, None]
    patch = turned[sy0:sy0 + fy1 - fy0, sx0:sx0 + fx1 - fx0].astype(np.float32)
    out[fy0:fy1, fx0:fx1] = out[fy0:fy1, fx0:fx1] * (1.0 - alpha) + patch * alpha
    return np.clip(out, 0, 255).astype(np.uint8)
