"""Occlusion sensitivity maps for any classifier of the model contract (numpy and OpenCV).

The image is cut into a ``grid``×``grid`` lattice; each cell in turn is covered (with the
image's mean colour by default) and the drop of the target class's probability is that
cell's value. Large values mark the regions the decision depends on. It needs nothing but
``classifier.probabilities(rgb)`` and ``classifier.input_size``, so it explains the int8
model exactly as the robot runs it.

Also here: the heatmap overlay (JET colours), top-fraction masks, their IoU and a simple
leaf/background mask for PlantVillage-style photos (a leaf on a plain grey, lilac, blue or
black background), used to check that a map's peak lies on the leaf (only where the mask
separates a leaf: not in field photos, where it covers nearly the whole frame).
"""

from __future__ import annotations

from typing import Protocol

import cv2
import numpy as np

from plant_disease_ros.core.preprocessing import resize_to_input

FILL_MODES = ('mean', 'black', 'gray', 'blur')
# Patch sides (cells) tried in turn by occlusion_map when a map carries no information.
FALLBACK_PATCHES = (3, 5)
# A top region covering under 1/SLACK or over SLACK times the share asked is not compared.
TOP_REGION_SLACK = 2.0
# The leaf's share of the photo within which "peak on the leaf" means something. Above the
# maximum the mask is the whole frame (field photos: leaves, grass and soil alike); below
# the minimum it found no leaf (a greyscale photo has no hue to find it by).
MIN_LEAF_SHARE = 0.02
MAX_LEAF_SHARE = 0.90


class ProbabilityModel(Protocol):
    """What occlusion needs of a classifier (``DiseaseClassifier`` has it)."""

    input_size: tuple[int, int]

    def probabilities(self, rgb: np.ndarray) -> np.ndarray:
        """Return the class probabilities of an RGB uint8 image."""


def _check_rgb(rgb: np.ndarray) -> np.ndarray:
    image = np.asarray(rgb)
    if image.ndim != 3 or image.shape[2] != 3 or image.dtype != np.uint8:
        raise ValueError(f'expected an HxWx3 uint8 RGB image, got shape {image.shape} '
                         f'dtype {image.dtype}')
    if image.shape[0] == 0 or image.shape[1] == 0:
        raise ValueError('cannot explain an empty image')
    return image


def cell_edges(length: int, grid: int) -> np.ndarray:
    """Return the ``grid + 1`` pixel boundaries cutting ``length`` pixels into near-equal cells."""
    return np.rint(np.linspace(0, length, grid + 1)).astype(np.int64)


def _fill_image(image: np.ndarray, fill: str | tuple[int, int, int]) -> np.ndarray:
    """Return the image whose pixels replace an occluded cell."""
    if isinstance(fill, str):
        if fill == 'mean':
            colour = image.reshape(-1, 3).mean(axis=0)
        elif fill == 'black':
            colour = np.zeros(3)
        elif fill == 'gray':
            colour = np.full(3, 128.0)
        elif fill == 'blur':
            side = max(3, (min(image.shape[:2]) // 4) | 1)
            return cv2.GaussianBlur(image, (side, side), 0)
        else:
            raise ValueError(f'unknown fill {fill!r}; choose one of {", ".join(FILL_MODES)} '
                             'or an (r, g, b) colour')
    else:
        colour = np.asarray(fill, dtype=np.float64)
        if colour.shape != (3,):
            raise ValueError(f'a fill colour needs three values, got {fill!r}')
    pixel = np.clip(np.rint(colour), 0, 255).astype(np.uint8)
    return np.broadcast_to(pixel, image.shape)


def check_grid_and_patch(grid: int, patch: int) -> None:
    """Raise ValueError unless ``grid`` >= 1 and ``patch`` is odd and at most ``grid``.

    An even patch has no middle cell: it cannot be centred on the cell it stands for, so
    its map would be shifted by half a cell.
    """
    if grid < 1:
        raise ValueError(f'grid must be >= 1, got {grid}')
    if not 1 <= patch <= grid:
        raise ValueError(f'patch must be between 1 and the grid ({grid}) cells, got {patch}')
    if patch % 2 == 0:
        raise ValueError(f'patch must be an odd number of cells (1, 3, 5, ...) to be centred '
                         f'on its cell, got {patch}')


def occlusion_heatmap(classifier: ProbabilityModel, rgb: np.ndarray, grid: int = 8,
                      target_index: int | None = None,
                      fill: str | tuple[int, int, int] = 'mean', patch: int = 1) -> np.ndarray:
    """Return the ``grid``×``grid`` map of the target class's score drop per covered cell.

    The image is resized once to the model's input size (as the classifier would) and the
    cells are covered at that resolution, so every one of the ``grid**2 + 1`` invocations
    skips the resize. ``target_index`` defaults to the class the unoccluded image is
    classified as. ``fill`` is ``'mean'`` (the image's mean colour), ``'black'``,
    ``'gray'``, ``'blur'`` (a heavily blurred copy) or an ``(r, g, b)`` colour.
    ``patch`` is the side, in cells, of the square covered for each cell (centred on it,
    clipped at the border): 1 covers the cell alone; larger patches slide with a stride
    of one cell and show regions that matter only together (a confident int8 model's
    quantised output may not move when one small cell is covered).
    Values are ``p(unoccluded) - p(occluded)``: positive where covering hurts the class,
    negative where it helps. The result is float32, row 0 at the top of the image.
    """
    grid, patch = int(grid), int(patch)
    check_grid_and_patch(grid, patch)
    image = _check_rgb(rgb)
    height, width = (int(side) for side in classifier.input_size)
    if grid > min(height, width):
        raise ValueError(f'grid {grid} is finer than the {width}x{height} model input')
    resized = np.array(resize_to_input(image, height, width), dtype=np.uint8, copy=True)
    baseline = np.asarray(classifier.probabilities(resized), dtype=np.float32).reshape(-1)
    target = int(np.argmax(baseline)) if target_index is None else int(target_index)
    if not 0 <= target < baseline.size:
        raise ValueError(f'target index {target} is outside the {baseline.size} classes')
    filler = _fill_image(resized, fill)
    rows, cols = cell_edges(height, grid), cell_edges(width, grid)
    before, after = (patch - 1) // 2, patch // 2
    heat = np.zeros((grid, grid), dtype=np.float32)
    occluded = resized.copy()
    for i in range(grid):
        top, bottom = rows[max(0, i - before)], rows[min(grid, i + after + 1)]
        for j in range(grid):
            left, right = cols[max(0, j - before)], cols[min(grid, j + after + 1)]
            # One buffer, patched and restored: no per-cell copy of the image.
            occluded[top:bottom, left:right] = filler[top:bottom, left:right]
            scores = np.asarray(classifier.probabilities(occluded), dtype=np.float32)
            heat[i, j] = baseline[target] - scores.reshape(-1)[target]
            occluded[top:bottom, left:right] = resized[top:bottom, left:right]
    return heat


def is_flat(heat: np.ndarray, tolerance: float = 1e-6) -> bool:
    """Return whether a map holds no information (all values within ``tolerance``)."""
    values = np.asarray(heat, dtype=np.float64)
    return values.size == 0 or float(np.ptp(values)) <= tolerance


def output_quantum(classifier: ProbabilityModel) -> float:
    """Return the smallest score change the classifier's output can show (0 for float).

    Read from ``classifier.model.output`` (a ``TensorSpec``) when there is one.
    """
    spec = getattr(getattr(classifier, 'model', None), 'output', None)
    scale = float(getattr(spec, 'scale', 0.0) or 0.0)
    return scale if np.dtype(getattr(spec, 'dtype', np.float32)).kind in 'iu' else 0.0


def occlusion_map(classifier: ProbabilityModel, rgb: np.ndarray, grid: int = 8,
                  target_index: int | None = None, fill: str | tuple[int, int, int] = 'mean',
                  patch: int = 1) -> tuple[np.ndarray, int]:
    """Return ``(occlusion map, patch used)``, retrying with larger patches when it is flat.

    A confident int8 model's uint8 output often does not move, or moves by one
    quantisation step, when one small cell is covered; such a map (spread within one
    output step) is retried with the sliding patches of ``FALLBACK_PATCHES`` cells (same
    grid), which show the regions that matter together. A map still flat is returned as
    zeros (its ripples are quantisation noise). Costs ``grid**2 + 1`` invocations per try.
    """
    tolerance = output_quantum(classifier) + 1e-6
    heat = occlusion_heatmap(classifier, rgb, grid=grid, target_index=target_index, fill=fill,
                             patch=patch)
    used = patch
    for larger in FALLBACK_PATCHES:
        if not is_flat(heat, tolerance) or larger <= used or larger > grid:
            continue
        heat = occlusion_heatmap(classifier, rgb, grid=grid, target_index=target_index,
                                 fill=fill, patch=larger)
        used = larger
    if is_flat(heat, tolerance):
        heat = np.zeros_like(heat)
    return heat, used


def upsample_heatmap(heat: np.ndarray, height: int, width: int) -> np.ndarray:
    """Return ``heat`` resized (bilinear, cell centres kept) to ``height``×``width`` float32."""
    values = np.asarray(heat, dtype=np.float32)
    if values.ndim != 2 or values.size == 0:
        raise ValueError(f'expected a non-empty 2-D heatmap, got shape {values.shape}')
    return cv2.resize(values, (int(width), int(height)), interpolation=cv2.INTER_LINEAR)


def normalise_heatmap(heat: np.ndarray) -> np.ndarray:
    """Scale a map to 0..1: negatives become 0, the maximum 1 (all zeros if nothing > 0)."""
    values = np.nan_to_num(np.asarray(heat, dtype=np.float32), nan=0.0, posinf=0.0,
                           neginf=0.0)
    values = np.maximum(values, 0.0)
    peak = float(values.max()) if values.size else 0.0
    return values / peak if peak > 0.0 else np.zeros_like(values)


def overlay_heatmap(rgb: np.ndarray, heat: np.ndarray, alpha: float = 0.45) -> np.ndarray:
    """Blend the JET-coloured, upsampled ``heat`` over ``rgb``; return RGB uint8.

    Only positive values are shown (scaled so the peak is red); ``alpha`` is the weight of
    the colours, 0 gives the photo back, 1 the colour map alone.
    """
    image = _check_rgb(rgb)
    if not 0.0 <= alpha <= 1.0:
        raise ValueError(f'alpha must be in [0, 1], got {alpha}')
    levels = normalise_heatmap(upsample_heatmap(heat, image.shape[0], image.shape[1]))
    coloured = cv2.applyColorMap(np.rint(levels * 255).astype(np.uint8), cv2.COLORMAP_JET)
    coloured = cv2.cvtColor(coloured, cv2.COLOR_BGR2RGB)
    return cv2.addWeighted(coloured, float(alpha), image, 1.0 - float(alpha), 0.0)


def top_fraction_mask(heat_up: np.ndarray, fraction: float = 0.2) -> np.ndarray:
    """Return the boolean mask of the ``fraction`` of pixels with the highest positive values.

    The threshold is the value of the ``ceil(fraction * size)``-th highest pixel; pixels
    tied with it are all kept. A pixel <= 0 (covering it does not lower the score) is never
    part of the region, so a sparse map selects fewer pixels than asked, a flat one none:
    see :func:`top_region_iou` for when two regions still compare.
    """
    values = np.asarray(heat_up, dtype=np.float64)
    if not 0.0 < fraction <= 1.0:
        raise ValueError(f'fraction must be in (0, 1], got {fraction}')
    if values.size == 0:
        return np.zeros(values.shape, dtype=bool)
    values = np.nan_to_num(values, nan=-np.inf)
    count = max(1, int(np.ceil(fraction * values.size)))
    flat = values.reshape(-1)
    threshold = np.partition(flat, flat.size - count)[flat.size - count]
    return (values >= threshold) & (values > 0.0)


def top_region_iou(first_up: np.ndarray, second_up: np.ndarray,
                   fraction: float = 0.2) -> float | None:
    """Return the IoU of two upsampled maps' top-``fraction`` regions, or None if not comparable.

    A region must cover between ``1 / TOP_REGION_SLACK`` and ``TOP_REGION_SLACK`` times
    ``fraction`` of the image. A sparse map (few positive pixels) selects less, and ties
    at the threshold select more: the IoU of such a region measures its size, not where
    the two maps agree (a region of all the image gives an IoU of exactly ``fraction``).
    """
    regions = [top_fraction_mask(first_up, fraction), top_fraction_mask(second_up, fraction)]
    for region in regions:
        share = float(region.mean()) if region.size else 0.0
        if not fraction / TOP_REGION_SLACK <= share <= fraction * TOP_REGION_SLACK:
            return None
    return mask_iou(*regions)


def mask_iou(a: np.ndarray, b: np.ndarray) -> float:
    """Return the intersection over union of two boolean masks (1.0 when both are empty)."""
    first, second = np.asarray(a, dtype=bool), np.asarray(b, dtype=bool)
    if first.shape != second.shape:
        raise ValueError(f'masks differ in shape: {first.shape} vs {second.shape}')
    union = int(np.count_nonzero(first | second))
    if union == 0:
        return 1.0
    return int(np.count_nonzero(first & second)) / union


def leaf_mask(rgb: np.ndarray) -> np.ndarray:
    """Return a boolean foreground mask of the leaf in a PlantVillage-style photo.

    A pixel is leaf when it is not dark and is either saturated and not of the blue-lilac
    hues of the backgrounds, or greenish-yellow, or far in chroma from the background
    colour (the median of the border). The largest blob is kept and its holes filled, so
    pale lesions inside the leaf count as leaf. Shadows and a plain background do not.
    """
    image = _check_rgb(rgb)
    hsv = cv2.cvtColor(image, cv2.COLOR_RGB2HSV)
    hue, saturation, value = (hsv[..., channel].astype(np.int16) for channel in range(3))
    lab = cv2.cvtColor(image, cv2.COLOR_RGB2LAB).astype(np.float32)
    border = max(1, min(image.shape[:2]) // 40)
    edge_pixels = np.concatenate([
        lab[:border].reshape(-1, 3), lab[-border:].reshape(-1, 3),
        lab[:, :border].reshape(-1, 3), lab[:, -border:].reshape(-1, 3)])
    background = np.median(edge_pixels, axis=0)
    chroma_distance = np.hypot(lab[..., 1] - background[1], lab[..., 2] - background[2])
    # OpenCV hue is 0..179: ~95-160 is blue to lilac (PlantVillage backgrounds), ~18-95
    # yellow to green (leaves); browns and reds of lesions are below 18 or above 160.
    blueish = (hue >= 95) & (hue <= 160)
    greenish = (hue >= 18) & (hue < 95)
    foreground = (value > 20) & (
        ((saturation > 60) & ~blueish)
        | ((saturation > 35) & greenish)
        | ((chroma_distance > 14) & ~blueish))
    mask = foreground.astype(np.uint8)
    side = max(3, (min(image.shape[:2]) // 50) | 1)
    kernel = cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (side, side))
    mask = cv2.morphologyEx(mask, cv2.MORPH_OPEN, kernel)
    mask = cv2.morphologyEx(mask, cv2.MORPH_CLOSE, kernel)
    count, labels, stats, _ = cv2.connectedComponentsWithStats(mask, connectivity=8)
    if count <= 1:
        return mask.astype(bool)
    largest = 1 + int(np.argmax(stats[1:, cv2.CC_STAT_AREA]))
    blob = (labels == largest).astype(np.uint8)
    contours, _ = cv2.findContours(blob, cv2.RETR_EXTERNAL, cv2.CHAIN_APPROX_SIMPLE)
    filled = np.zeros_like(blob)
    cv2.drawContours(filled, contours, -1, 1, thickness=cv2.FILLED)
    return filled.astype(bool)


def heatmap_peak(heat: np.ndarray, height: int, width: int) -> tuple[int, int]:
    """Return the (row, column) of the maximum of ``heat`` upsampled to ``height``×``width``."""
    upsampled = upsample_heatmap(heat, height, width)
    row, column = np.unravel_index(int(np.argmax(upsampled)), upsampled.shape)
    return int(row), int(column)


def peak_on_mask(heat: np.ndarray, mask: np.ndarray) -> bool:
    """Return whether the upsampled map's maximum falls inside ``mask`` (e.g. the leaf)."""
    region = np.asarray(mask, dtype=bool)
    if region.ndim != 2:
        raise ValueError(f'expected a 2-D mask, got shape {region.shape}')
    row, column = heatmap_peak(heat, region.shape[0], region.shape[1])
    return bool(region[row, column])


def leaf_separable(mask: np.ndarray) -> bool:
    """Return whether a leaf mask separates a leaf from its background.

    Only then does a peak "on the leaf" say anything: a mask of nearly the whole photo
    (over ``MAX_LEAF_SHARE``, a field photo) holds every peak, one of nearly nothing
    (under ``MIN_LEAF_SHARE``, a greyscale photo) none.
    """
    region = np.asarray(mask, dtype=bool)
    share = float(region.mean()) if region.size else 0.0
    return MIN_LEAF_SHARE <= share <= MAX_LEAF_SHARE


__all__ = [
    'FALLBACK_PATCHES', 'FILL_MODES', 'MAX_LEAF_SHARE', 'MIN_LEAF_SHARE', 'TOP_REGION_SLACK',
    'cell_edges', 'heatmap_peak', 'is_flat', 'leaf_mask', 'leaf_separable', 'mask_iou',
    'normalise_heatmap', 'occlusion_map', 'output_quantum', 'occlusion_heatmap',
    'overlay_heatmap', 'peak_on_mask', 'top_fraction_mask', 'top_region_iou',
    'upsample_heatmap',
]
