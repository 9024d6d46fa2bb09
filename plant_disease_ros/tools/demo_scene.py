"""Compose the demo's camera frames: a leaf photo on textured soil, as a moving camera sees it.

A frame is a leaf photo filling the image height, on a procedurally textured soil
background that shows at the sides: 640×480 like a real camera, 4:3 around a square view
of the leaf. Consecutive frames of a plant differ by the robot's creep, a little motion
blur and the exposure drifting with the light.
"""

from __future__ import annotations

import math

import cv2
import numpy as np

IMAGE_WIDTH = 640
IMAGE_HEIGHT = 480
PLANT_SIZE_PX = 480           # the leaf photo's side in the frame: the full height
PIXELS_PER_METRE = 4800.0     # close-up: the frame covers 13 cm × 10 cm of the canopy


def soil_background(width: int, height: int, rng: np.random.Generator) -> np.ndarray:
    """Return a BGR uint8 soil texture with clods, stones, straw and small weeds."""
    base = np.array([58.0, 82.0, 112.0], dtype=np.float32)  # moist loam, BGR
    coarse = cv2.resize(rng.normal(0.0, 1.0, (height // 24 + 2, width // 24 + 2)),
                        (width, height), interpolation=cv2.INTER_CUBIC)
    medium = cv2.resize(rng.normal(0.0, 1.0, (height // 5 + 2, width // 5 + 2)),
                        (width, height), interpolation=cv2.INTER_LINEAR)
    fine = cv2.GaussianBlur(rng.normal(0.0, 1.0, (height, width)), (0, 0), 0.8)
    shade = (16.0 * coarse + 8.0 * medium + 3.0 * fine).astype(np.float32)
    soil = base[None, None, :] + shade[:, :, None] * np.array([0.8, 0.9, 1.0], np.float32)
    image = np.clip(soil, 0, 255).astype(np.uint8)
    for _ in range(int(width * height / 12000)):           # stones
        centre = (int(rng.integers(0, width)), int(rng.integers(0, height)))
        axes = (int(rng.integers(2, 9)), int(rng.integers(2, 7)))
        grey = int(rng.integers(95, 160))
        cv2.ellipse(image, centre, axes, float(rng.uniform(0, 180)), 0, 360,
                    (grey - 8, grey, grey + 6), -1, cv2.LINE_AA)
    for _ in range(int(width * height / 9000)):            # straw residue
        x, y = int(rng.integers(0, width)), int(rng.integers(0, height))
        angle = rng.uniform(0, math.pi)
        length = rng.uniform(8, 30)
        end = (int(x + length * math.cos(angle)), int(y + length * math.sin(angle)))
        cv2.line(image, (x, y), end, (96, 160, 196), 1, cv2.LINE_AA)
    for _ in range(int(width * height / 40000)):           # weed seedlings
        x, y = int(rng.integers(0, width)), int(rng.integers(0, height))
        for _ in range(int(rng.integers(3, 7))):
            angle = rng.uniform(0, 2 * math.pi)
            length = rng.uniform(6, 16)
            end = (int(x + length * math.cos(angle)), int(y + length * math.sin(angle)))
            green = (int(rng.integers(30, 60)), int(rng.integers(120, 170)),
                     int(rng.integers(60, 100)))
            cv2.line(image, (x, y), end, green, 2, cv2.LINE_AA)
    return image


def feather_mask(size: int, border: int) -> np.ndarray:
    """Return a float32 size×size alpha mask that fades out over ``border`` pixels."""
    ramp = np.clip((np.arange(size, dtype=np.float32) + 0.5) / border, 0.0, 1.0)
    ramp = np.minimum(ramp, ramp[::-1])
    return np.minimum(ramp[:, None], ramp[None, :])


def compose_frame(background: np.ndarray, plant_bgr: np.ndarray, offset_px: float,
                  jitter_px: tuple[int, int], gain: float, blur_px: int,
                  rng: np.random.Generator) -> np.ndarray:
    """Return one 640×480 BGR frame: the plant on the moving soil, blurred and exposed.

    ``background`` is wider than the frame; the window onto it and the plant both move by
    ``offset_px`` (the robot's travel since the plant was centred), the plant by
    ``jitter_px`` more (vibration).
    """
    width = IMAGE_WIDTH
    margin = (background.shape[1] - width) // 2
    left = int(round(margin - offset_px))
    left = min(max(left, 0), background.shape[1] - width)
    frame = background[:, left:left + width].astype(np.float32)
    size = plant_bgr.shape[0]
    x0 = int(round((width - size) / 2 + offset_px + jitter_px[0]))
    y0 = int(round((IMAGE_HEIGHT - size) / 2 + jitter_px[1]))
    alpha = feather_mask(size, 6)[:, :, None]
    xs, ys = max(x0, 0), max(y0, 0)
    xe, ye = min(x0 + size, width), min(y0 + size, IMAGE_HEIGHT)
    patch = plant_bgr[ys - y0:ye - y0, xs - x0:xe - x0].astype(np.float32)
    weight = alpha[ys - y0:ye - y0, xs - x0:xe - x0]
    frame[ys:ye, xs:xe] = weight * patch + (1.0 - weight) * frame[ys:ye, xs:xe]
    if blur_px > 1:
        kernel = np.full((1, blur_px), 1.0 / blur_px, dtype=np.float32)
        frame = cv2.filter2D(frame, -1, kernel, borderType=cv2.BORDER_REFLECT)
    frame = frame * gain + rng.normal(0.0, 0.6, frame.shape).astype(np.float32)
    return np.clip(frame + 0.5, 0, 255).astype(np.uint8)
