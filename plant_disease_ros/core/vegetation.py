"""A cheap vegetation gate: skip frames that cannot show a leaf before running the model.

Three plain-numpy measurements of an RGB frame, each a few microseconds a pixel-row:

- exposure: the mean grey level (black lens cap, night, sun into the lens);
- texture: the mean absolute difference between neighbouring grey pixels (a flat colour,
  fog, a frame out of focus);
- vegetation: the share of pixels whose colour is a plant's (hue from yellow to
  blue-green, enough saturation and light): sky, soil, gravel, pipes and mulch have few.

:func:`check_frame` rejects a frame when any measurement is out of range and says which.
The defaults were set on the training and validation photos (never the test photos):
they pass 99.7-100 % of the lab, PlantDoc and orchard leaf photos and reject about half
of the non-leaf photos (most sky and soil, black, over-exposed, flat and blurred frames;
no grass or weeds). The classifier's ``no_leaf`` label handles the rest, so the gate only
removes the obvious cases, at a fraction of the model's cost. No ROS, no OpenCV.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

# Plant hues in degrees: yellow (diseased, senescent tissue) to blue-green; brown soil
# (about 20-35 degrees) stays out.
PLANT_HUE_DEGREES = (40.0, 185.0)


@dataclass(frozen=True)
class GateOptions:
    """Thresholds of the gate; the defaults keep nearly every leaf photo."""

    min_brightness: float = 12.0  # mean grey level, 0..255
    max_brightness: float = 245.0
    min_texture: float = 1.2  # mean |grey difference| of neighbouring pixels, 0..255
    min_vegetation: float = 0.02  # share of plant-coloured pixels, 0..1
    min_saturation: float = 0.2  # a pixel's HSV saturation to count as plant, 0..1
    min_value: float = 0.12  # a pixel's HSV value to count as plant, 0..1
    max_side: int = 128  # frames are subsampled (by striding) to about this side first


@dataclass(frozen=True)
class GateResult:
    """The gate's verdict on one frame and the measurements behind it."""

    passed: bool
    reason: str  # '' when passed; else 'too dark', 'over-exposed', 'flat' or 'no vegetation'
    brightness: float
    texture: float
    vegetation: float


def _subsample(rgb: np.ndarray, max_side: int) -> np.ndarray:
    step = max(1, int(np.ceil(max(rgb.shape[0], rgb.shape[1]) / max_side)))
    return rgb[::step, ::step]


def vegetation_fraction(rgb: np.ndarray, min_saturation: float = 0.2,
                        min_value: float = 0.12) -> float:
    """Return the share of pixels of an RGB uint8 image whose colour is a plant's."""
    pixels = rgb.reshape(-1, 3).astype(np.float32) / 255.0
    if pixels.size == 0:
        return 0.0
    red, green, blue = pixels[:, 0], pixels[:, 1], pixels[:, 2]
    high = pixels.max(axis=1)
    low = pixels.min(axis=1)
    chroma = high - low
    saturation = np.where(high > 0, chroma / np.maximum(high, 1e-6), 0.0)
    safe = np.maximum(chroma, 1e-6)
    hue = np.where(high == red, ((green - blue) / safe) % 6.0,
                   np.where(high == green, (blue - red) / safe + 2.0,
                            (red - green) / safe + 4.0)) * 60.0
    plant = ((hue >= PLANT_HUE_DEGREES[0]) & (hue <= PLANT_HUE_DEGREES[1])
             & (saturation >= min_saturation) & (high >= min_value) & (chroma > 0))
    return float(plant.mean())


def texture_level(rgb: np.ndarray) -> float:
    """Return the mean absolute difference of horizontally and vertically adjacent greys."""
    grey = rgb.astype(np.float32) @ np.array([0.299, 0.587, 0.114], np.float32)
    if grey.shape[0] < 2 or grey.shape[1] < 2:
        return 0.0
    across = np.abs(np.diff(grey, axis=1)).mean()
    down = np.abs(np.diff(grey, axis=0)).mean()
    return float((across + down) / 2.0)


def check_frame(rgb: np.ndarray, options: GateOptions | None = None) -> GateResult:
    """Measure an RGB uint8 frame (H×W×3) and say whether it can show a leaf."""
    options = options or GateOptions()
    if rgb.ndim != 3 or rgb.shape[2] != 3:
        raise ValueError(f'expected an H×W×3 RGB image, got shape {rgb.shape}')
    small = _subsample(rgb, options.max_side)
    brightness = float(small.astype(np.float32).mean())
    texture = texture_level(small)
    vegetation = vegetation_fraction(small, options.min_saturation, options.min_value)
    if brightness < options.min_brightness:
        reason = 'too dark'
    elif brightness > options.max_brightness:
        reason = 'over-exposed'
    elif texture < options.min_texture:
        reason = 'flat'
    elif vegetation < options.min_vegetation:
        reason = 'no vegetation'
    else:
        reason = ''
    return GateResult(passed=not reason, reason=reason, brightness=brightness,
                      texture=texture, vegetation=vegetation)
