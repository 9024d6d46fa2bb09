"""A cheap vegetation gate: skip frames that cannot show a leaf before running the model.

Four plain-numpy measurements of an RGB frame, each a few microseconds a pixel-row:

- exposure: the mean grey level (black lens cap, night, sun into the lens);
- texture: the mean absolute difference between neighbouring grey pixels (a flat colour,
  fog, a frame out of focus);
- vegetation: the share of pixels whose colour is a plant's (hue from yellow to
  blue-green, enough saturation and light): sky, soil, gravel, pipes and mulch have few;
- colour: the share of pixels whose channels differ by more than a few levels. A grey
  (mono) camera's frames, converted to RGB, have equal channels everywhere, and so does a
  grey JPEG or PNG. So may a colour camera's frame of a grey scene (gravel, concrete,
  asphalt): raw, its sensor noise leaves a few levels between the channels, but JPEG's
  chroma subsampling and quantisation smooth that away: it decodes to channels at most the
  tolerance apart, as grey as a grey camera's. A frame alone cannot tell the two cameras
  apart: the message's encoding can, and camera_subscriber reads it.

:func:`check_frame` rejects a frame when any measurement is out of range and says which.
The defaults were set on the training and validation photos (never the test photos):
they pass 99.7-100 % of the lab, PlantDoc and orchard leaf photos and reject about half
of the non-leaf photos (most sky and soil, black, over-exposed, flat and blurred frames;
no grass or weeds). The classifier's ``no_leaf`` label handles the rest, so the gate only
removes the obvious cases, at a fraction of the model's cost. No ROS, no OpenCV.

A frame without vegetation that also has no colour gets its own reason, ``no colour``:
it shows no leaf's or disease's colours, because the camera is grey or because the scene
is (grey ground between the rows, on the compressed transport); which of the two, only
the camera's encoding says. The colour test only names the reason of a frame the
vegetation test rejects anyway, so it never turns away a frame that would pass; a frame
too dark, over-exposed or flat keeps that reason (a black frame has equal channels from
any camera).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

# Plant hues in degrees: yellow (diseased, senescent tissue) to blue-green; brown soil
# (about 20-35 degrees) stays out.
PLANT_HUE_DEGREES = (40.0, 185.0)

# The gate's reasons (GateResult.reason); published as the classification's no_leaf_reason.
TOO_DARK = 'too dark'
OVER_EXPOSED = 'over-exposed'
FLAT = 'flat'
NO_COLOUR = 'no colour'  # a grey camera's frame, or a colour camera's of a grey scene
NO_VEGETATION = 'no vegetation'
GATE_REASONS = (TOO_DARK, OVER_EXPOSED, FLAT, NO_COLOUR, NO_VEGETATION)


@dataclass(frozen=True)
class GateOptions:
    """Thresholds of the gate; the defaults keep nearly every leaf photo."""

    min_brightness: float = 12.0  # mean grey level, 0..255
    max_brightness: float = 245.0
    min_texture: float = 1.2  # mean |grey difference| of neighbouring pixels, 0..255
    min_vegetation: float = 0.02  # share of plant-coloured pixels, 0..1
    min_saturation: float = 0.2  # a pixel's HSV saturation to count as plant, 0..1
    min_value: float = 0.12  # a pixel's HSV value to count as plant, 0..1
    # A pixel has colour when its largest and smallest channel differ by more than this
    # (0..255): rounding in a grey image's conversions gives 1 or 2 at most.
    grey_tolerance: int = 4
    min_colour: float = 0.01  # share of pixels with colour below which a frame has none
    max_side: int = 128  # frames are subsampled (by striding) to about this side first


@dataclass(frozen=True)
class GateResult:
    """The gate's verdict on one frame and the measurements behind it."""

    passed: bool
    reason: str  # '' when passed; else one of GATE_REASONS
    brightness: float
    texture: float
    vegetation: float
    colour: float = 1.0  # share of pixels with colour (see colour_fraction)

    @property
    def has_colour(self) -> bool | None:
        """Return whether the frame has colour; None when the gate stopped before asking.

        A frame too dark, over-exposed or flat says nothing about its colour (a black
        frame has equal channels from any camera). False says the frame has none, not
        that the camera is grey: a colour camera's JPEG of grey gravel has none either.
        """
        if self.reason in (TOO_DARK, OVER_EXPOSED, FLAT):
            return None
        return self.reason != NO_COLOUR


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


def colour_fraction(rgb: np.ndarray, tolerance: int = 4) -> float:
    """Return the share of pixels of an RGB uint8 image whose channels differ by > tolerance."""
    pixels = rgb.reshape(-1, 3)
    if pixels.size == 0:
        return 0.0
    spread = pixels.max(axis=1).astype(np.int16) - pixels.min(axis=1).astype(np.int16)
    return float((spread > tolerance).mean())


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
    colour = colour_fraction(small, options.grey_tolerance)
    if brightness < options.min_brightness:
        reason = TOO_DARK
    elif brightness > options.max_brightness:
        reason = OVER_EXPOSED
    elif texture < options.min_texture:
        reason = FLAT
    elif vegetation < options.min_vegetation:
        # Asked only here: a frame with plant colours has colour, and a dark, bright or
        # flat frame says nothing about its colour.
        reason = NO_COLOUR if colour < options.min_colour else NO_VEGETATION
    else:
        reason = ''
    return GateResult(passed=not reason, reason=reason, brightness=brightness,
                      texture=texture, vegetation=vegetation, colour=colour)
