"""Compose the demo's camera frames: a leaf photo on textured soil, as a moving camera sees it.

A frame is a leaf photo filling the image height, on a procedurally textured soil
background that shows at the sides: 640×480 like a real camera, 4:3 around a square view
of the leaf. Consecutive frames of a plant differ by the robot's creep, a little motion
blur and the exposure drifting with the light.

Between plants the camera sees no crop leaf: :func:`no_leaf_scene` renders those views
(bare soil, grass and weeds between the rows, the sky when the robot pitches on the
headland, the dark of its own shadow) procedurally, so the bag ships no third-party photo
of them.
"""

from __future__ import annotations

import math

import cv2
import numpy as np

IMAGE_WIDTH = 640
IMAGE_HEIGHT = 480
PLANT_SIZE_PX = 480           # the leaf photo's side in the frame: the full height
PIXELS_PER_METRE = 4800.0     # close-up: the frame covers 13 cm × 10 cm of the canopy


NO_LEAF_SCENES = ('bare_soil', 'grass_weeds', 'sky', 'dark')


def soil_background(width: int, height: int, rng: np.random.Generator,
                    weeds: bool = True) -> np.ndarray:
    """Return a BGR uint8 soil texture with clods, stones, straw and (optionally) weeds."""
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
    for _ in range(int(width * height / 40000) if weeds else 0):   # weed seedlings
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


def _grass_weeds(width: int, height: int, rng: np.random.Generator) -> np.ndarray:
    """Return grass blades and a few weed rosettes over soil: the strip between rows."""
    image = soil_background(width, height, rng, weeds=False)
    for _ in range(int(width * height / 160)):              # blades, darker ones first
        x, y = float(rng.uniform(0, width)), float(rng.uniform(0, height))
        angle = rng.normal(-math.pi / 2, 0.5)
        length = rng.uniform(14, 48)
        bend = rng.normal(0.0, 6.0)
        end = (int(x + length * math.cos(angle) + bend), int(y + length * math.sin(angle)))
        shade = rng.uniform(0.45, 1.0)
        colour = (int(40 * shade), int(rng.integers(110, 175) * shade),
                  int(rng.integers(70, 120) * shade))
        cv2.line(image, (int(x), int(y)), end, colour, int(rng.integers(1, 3)), cv2.LINE_AA)
    for _ in range(int(width * height / 50000)):            # small weed rosettes
        x, y = int(rng.integers(0, width)), int(rng.integers(0, height))
        for _ in range(int(rng.integers(4, 8))):
            angle = rng.uniform(0, 360)
            axes = (int(rng.integers(6, 12)), int(rng.integers(2, 5)))
            cv2.ellipse(image, (x, y), axes, angle, 0, 360,
                        (int(rng.integers(30, 50)), int(rng.integers(120, 150)),
                         int(rng.integers(90, 120))), -1, cv2.LINE_AA)
    return image


def _sky(width: int, height: int, rng: np.random.Generator) -> np.ndarray:
    """Return a pitched-up view: blue sky with soft clouds above a dark field horizon."""
    rows = np.linspace(0.0, 1.0, height, dtype=np.float32)[:, None]
    top = np.array([200.0, 150.0, 95.0], np.float32)        # BGR, deep blue
    low = np.array([235.0, 215.0, 190.0], np.float32)       # hazy near the horizon
    sky = top[None, None, :] * (1.0 - rows[..., None]) + low[None, None, :] * rows[..., None]
    sky = np.broadcast_to(sky, (height, width, 3)).copy()
    clouds = cv2.resize(rng.normal(0.0, 1.0, (height // 40 + 2, width // 40 + 2)),
                        (width, height), interpolation=cv2.INTER_CUBIC)
    cover = np.clip(clouds - 0.3, 0.0, 1.0).astype(np.float32)[..., None]
    sky = sky * (1.0 - cover) + 245.0 * cover
    horizon = int(height * rng.uniform(0.72, 0.82))
    field = soil_background(width, height - horizon, rng, weeds=False).astype(np.float32)
    sky[horizon:] = field * 0.55
    return np.clip(sky, 0, 255).astype(np.uint8)


def no_leaf_scene(kind: str, width: int, height: int, rng: np.random.Generator
                  ) -> np.ndarray:
    """Return a BGR uint8 view with no crop leaf in it, of one of ``NO_LEAF_SCENES``."""
    if kind == 'bare_soil':
        return soil_background(width, height, rng, weeds=False)
    if kind == 'grass_weeds':
        return _grass_weeds(width, height, rng)
    if kind == 'sky':
        return _sky(width, height, rng)
    if kind == 'dark':
        # The robot's own shadow at dusk: soil, barely lit.
        soil = soil_background(width, height, rng, weeds=False).astype(np.float32)
        return np.clip(soil * 0.09 + 1.0, 0, 255).astype(np.uint8)
    raise ValueError(f'unknown no-leaf scene {kind!r}; one of {NO_LEAF_SCENES}')


def scene_frame(scene: np.ndarray, offset_px: float, gain: float, blur_px: int,
                rng: np.random.Generator) -> np.ndarray:
    """Return one 640×480 BGR frame: a window onto a wide ``scene`` moved by ``offset_px``."""
    margin = (scene.shape[1] - IMAGE_WIDTH) // 2
    left = min(max(int(round(margin - offset_px)), 0), scene.shape[1] - IMAGE_WIDTH)
    frame = scene[:IMAGE_HEIGHT, left:left + IMAGE_WIDTH].astype(np.float32)
    if blur_px > 1:
        kernel = np.full((1, blur_px), 1.0 / blur_px, dtype=np.float32)
        frame = cv2.filter2D(frame, -1, kernel, borderType=cv2.BORDER_REFLECT)
    frame = frame * gain + rng.normal(0.0, 0.6, frame.shape).astype(np.float32)
    return np.clip(frame + 0.5, 0, 255).astype(np.uint8)
