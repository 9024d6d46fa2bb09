"""Synthetic non-leaf frames: what a field robot's camera sees when no crop leaf is in view.

Each generator draws one ``size``×``size`` RGB uint8 frame from a numpy ``Generator``:
uniform colours (including uniform green, black and over-exposed white), heavy blur,
sensor noise, grass-like and soil-like textures, sky gradients with clouds, and man-made
stripes (irrigation pipes, plastic mulch, fences). They teach the ``no_leaf`` class the
cases the photographed negatives miss, and give a seeded test set of them. numpy and
OpenCV only.
"""

from __future__ import annotations

from collections.abc import Callable

import cv2
import numpy as np

Frame = np.ndarray
Generator = np.random.Generator


def _noise_field(rng: Generator, size: int, scale: int) -> np.ndarray:
    """Return smooth noise in [0, 1]: random values on a coarse grid, resized up."""
    coarse = rng.random((max(2, size // scale), max(2, size // scale))).astype(np.float32)
    return cv2.resize(coarse, (size, size), interpolation=cv2.INTER_CUBIC).clip(0.0, 1.0)


def _fractal(rng: Generator, size: int) -> np.ndarray:
    """Return multi-scale noise in [0, 1] (soil, clouds, stone textures)."""
    total = np.zeros((size, size), np.float32)
    weight = 1.0
    for scale in (32, 16, 8, 4, 2):
        total += weight * _noise_field(rng, size, scale)
        weight *= 0.55
    total -= total.min()
    return total / max(float(total.max()), 1e-6)


def _hsv_colour(hue: float, saturation: float, value: float) -> np.ndarray:
    """Return an RGB float colour (0..255) from OpenCV-range HSV (hue 0..180)."""
    pixel = np.array([[[hue, saturation, value]]], np.float32)
    pixel[..., 0] = np.clip(pixel[..., 0], 0, 179)
    hsv = np.clip(pixel, 0, 255).astype(np.uint8)
    return cv2.cvtColor(hsv, cv2.COLOR_HSV2RGB)[0, 0].astype(np.float32)


def _finish(image: np.ndarray) -> Frame:
    return np.clip(image, 0, 255).astype(np.uint8)


def uniform_colour(rng: Generator, size: int) -> Frame:
    """A flat frame of a random colour with a faint gradient and sensor noise."""
    colour = rng.uniform(0, 255, 3).astype(np.float32)
    return _flat(rng, size, colour)


def uniform_green(rng: Generator, size: int) -> Frame:
    """A flat green frame (a leaf too close to focus, a green tarpaulin)."""
    colour = _hsv_colour(rng.uniform(35, 85), rng.uniform(80, 255), rng.uniform(40, 230))
    return _flat(rng, size, colour)


def black_frame(rng: Generator, size: int) -> Frame:
    """A dark frame (lens cap, night, a covered camera)."""
    return _flat(rng, size, rng.uniform(0, 25, 3).astype(np.float32), noise=rng.uniform(0, 4))


def white_frame(rng: Generator, size: int) -> Frame:
    """An over-exposed frame (sun into the lens), possibly with a glare bloom."""
    base = rng.uniform(225, 255)
    image = _flat(rng, size, np.full(3, base, np.float32), noise=2.0).astype(np.float32)
    if rng.random() < 0.5:
        yy, xx = np.mgrid[0:size, 0:size].astype(np.float32)
        cy, cx = rng.uniform(0, size, 2)
        falloff = np.exp(-((yy - cy) ** 2 + (xx - cx) ** 2) / (2 * (size * 0.4) ** 2))
        tint = rng.uniform(0.75, 1.0, 3).astype(np.float32)
        image = image * (tint + (1 - tint) * falloff[..., None])
    return _finish(image)


def _flat(rng: Generator, size: int, colour: np.ndarray, noise: float | None = None) -> Frame:
    yy, xx = np.mgrid[0:size, 0:size].astype(np.float32) / size
    angle = rng.uniform(0, 2 * np.pi)
    ramp = (np.cos(angle) * xx + np.sin(angle) * yy)[..., None] * rng.uniform(-30, 30)
    sigma = rng.uniform(0, 6) if noise is None else noise
    image = colour[None, None] + ramp + rng.normal(0, sigma, (size, size, 3))
    return _finish(image)


def heavy_blur(rng: Generator, size: int) -> Frame:
    """A heavily defocused or motion-blurred frame of colour blobs."""
    image = _blobs(rng, size).astype(np.float32)
    if rng.random() < 0.5:
        length = int(rng.integers(size // 4, size // 2))
        kernel = np.zeros((length, length), np.float32)
        kernel[length // 2] = 1.0 / length
        rotation = cv2.getRotationMatrix2D((length / 2, length / 2), rng.uniform(0, 180), 1)
        kernel = cv2.warpAffine(kernel, rotation, (length, length))
        kernel /= max(float(kernel.sum()), 1e-6)
        image = cv2.filter2D(image, -1, kernel, borderType=cv2.BORDER_REFLECT)
    sigma = rng.uniform(size / 16, size / 6)
    return _finish(cv2.GaussianBlur(image, (0, 0), sigma))


def _blobs(rng: Generator, size: int) -> Frame:
    image = np.zeros((size, size, 3), np.float32)
    image[:] = rng.uniform(0, 255, 3)
    for _ in range(int(rng.integers(3, 9))):
        centre = tuple(int(v) for v in rng.integers(0, size, 2))
        axes = tuple(int(v) for v in rng.integers(size // 10, size // 2, 2))
        colour = tuple(float(v) for v in rng.uniform(0, 255, 3))
        cv2.ellipse(image, centre, axes, float(rng.uniform(0, 180)), 0, 360, colour, -1)
    return _finish(image)


def sensor_noise(rng: Generator, size: int) -> Frame:
    """Pure noise: a camera fault, a dark frame with high gain, salt and pepper."""
    if rng.random() < 0.5:
        base = rng.uniform(0, 255, 3)
        image = base + rng.normal(0, rng.uniform(20, 80), (size, size, 3))
    else:
        image = rng.uniform(0, 255, (size, size, 1)) * rng.uniform(0.5, 1.0, 3)
    if rng.random() < 0.3:
        image = cv2.GaussianBlur(image.astype(np.float32), (0, 0), rng.uniform(0.5, 1.5))
    return _finish(image)


def grass_texture(rng: Generator, size: int) -> Frame:
    """Many thin grass blades (green and straw strokes) over soil or green."""
    base = _hsv_colour(rng.uniform(15, 45), rng.uniform(60, 200), rng.uniform(40, 140))
    image = np.empty((size, size, 3), np.float32)
    image[:] = base
    image += (_fractal(rng, size)[..., None] - 0.5) * 40
    main_angle = rng.uniform(0, np.pi)
    for _ in range(int(rng.integers(size // 2, size * 2))):
        x, y = rng.uniform(-size * 0.1, size * 1.1, 2)
        angle = main_angle + rng.normal(0, 0.5)
        length = rng.uniform(size * 0.1, size * 0.5)
        end = (int(x + length * np.cos(angle)), int(y + length * np.sin(angle)))
        colour = _hsv_colour(rng.uniform(25, 60), rng.uniform(80, 255), rng.uniform(60, 230))
        cv2.line(image, (int(x), int(y)), end, tuple(float(c) for c in colour),
                 int(rng.integers(1, 3)), cv2.LINE_AA)
    return _finish(cv2.GaussianBlur(image, (0, 0), rng.uniform(0.3, 1.2)))


def soil_texture(rng: Generator, size: int) -> Frame:
    """Brown-grey multi-scale soil texture with clods and pebbles."""
    dark = _hsv_colour(rng.uniform(5, 25), rng.uniform(40, 180), rng.uniform(30, 90))
    light = _hsv_colour(rng.uniform(5, 25), rng.uniform(20, 120), rng.uniform(100, 200))
    texture = _fractal(rng, size)[..., None]
    image = dark + (light - dark) * texture
    image += rng.normal(0, rng.uniform(3, 15), (size, size, 1))
    for _ in range(int(rng.integers(0, 30))):
        centre = tuple(int(v) for v in rng.integers(0, size, 2))
        radius = int(rng.integers(1, max(2, size // 20)))
        grey = float(rng.uniform(60, 220))
        cv2.circle(image, centre, radius, (grey, grey * 0.95, grey * 0.9), -1, cv2.LINE_AA)
    return _finish(image)


def sky_gradient(rng: Generator, size: int) -> Frame:
    """A sky: a blue-to-pale vertical gradient, clouds, sometimes an overcast grey."""
    top = _hsv_colour(rng.uniform(95, 125), rng.uniform(60, 230), rng.uniform(150, 255))
    bottom = _hsv_colour(rng.uniform(90, 125), rng.uniform(0, 90), rng.uniform(190, 255))
    if rng.random() < 0.3:  # overcast
        grey = rng.uniform(120, 240)
        top, bottom = np.full(3, grey, np.float32), np.full(3, min(grey + 20, 255), np.float32)
    ramp = np.linspace(0, 1, size, dtype=np.float32)[:, None, None]
    image = top + (bottom - top) * ramp + np.zeros((size, size, 3), np.float32)
    clouds = np.clip((_fractal(rng, size) - rng.uniform(0.3, 0.8)) * 3.0, 0, 1)[..., None]
    image = image * (1 - clouds) + rng.uniform(200, 255) * clouds
    angle = rng.uniform(-25, 25)
    rotation = cv2.getRotationMatrix2D((size / 2, size / 2), angle, 1.2)
    image = cv2.warpAffine(image, rotation, (size, size), borderMode=cv2.BORDER_REFLECT)
    return _finish(image + rng.normal(0, 2, (size, size, 3)))


def pipes(rng: Generator, size: int) -> Frame:
    """Irrigation pipes or hoses: shaded parallel cylinders over soil."""
    image = soil_texture(rng, size).astype(np.float32)
    colour = np.array(rng.choice([(20, 20, 20), (40, 40, 45), (30, 60, 140), (160, 160, 160),
                                  (200, 200, 200), (20, 90, 40)]), np.float32)
    colour = colour * rng.uniform(0.7, 1.3)
    canvas = np.zeros((size * 2, size * 2, 3), np.float32)
    mask = np.zeros((size * 2, size * 2), np.float32)
    position = float(rng.uniform(0, size * 0.5))
    for _ in range(int(rng.integers(1, 4))):
        width = float(rng.uniform(size * 0.08, size * 0.3))
        top = position + size * 0.5
        rows = np.arange(size * 2, dtype=np.float32)
        inside = (rows >= top) & (rows < top + width)
        across = np.clip((rows - top) / width, 0, 1)
        shade = 0.45 + 0.9 * np.abs(np.sin(np.pi * across)) ** 0.7 * (1.2 - across * 0.6)
        canvas[inside] = colour * shade[inside, None, None]
        mask[inside] = 1.0
        position += width + rng.uniform(size * 0.05, size * 0.5)
    rotation = cv2.getRotationMatrix2D((size, size), rng.uniform(0, 180), 1)
    canvas = cv2.warpAffine(canvas, rotation, (size * 2, size * 2))
    mask = cv2.warpAffine(mask, rotation, (size * 2, size * 2))
    crop = slice(size // 2, size // 2 + size)
    image = image * (1 - mask[crop, crop, None]) + canvas[crop, crop]
    return _finish(image)


def plastic_mulch(rng: Generator, size: int) -> Frame:
    """Plastic mulch film: black, white or silver sheet with wrinkles and highlights."""
    base = float(rng.choice([15.0, 35.0, 200.0, 150.0]))
    yy, xx = np.mgrid[0:size, 0:size].astype(np.float32)
    angle = rng.uniform(0, np.pi)
    along = np.cos(angle) * xx + np.sin(angle) * yy
    wrinkles = np.sin(along / rng.uniform(3, 12) + _noise_field(rng, size, 16) * 6)
    highlight = np.clip(wrinkles, 0, 1) ** rng.uniform(2, 8) * rng.uniform(30, 150)
    image = np.full((size, size, 3), base, np.float32) + highlight[..., None]
    image += rng.uniform(-10, 10, 3)
    if rng.random() < 0.5:  # a planting hole or the soil strip beside the film
        strip = soil_texture(rng, size).astype(np.float32)
        edge = along > rng.uniform(0.5, 1.2) * size
        image[edge] = strip[edge]
    return _finish(image)


def fence(rng: Generator, size: int) -> Frame:
    """A fence, trellis or the robot's frame: regular bars or a wire grid over a scene."""
    background = rng.choice([soil_texture, sky_gradient, grass_texture])
    image = background(rng, size).astype(np.float32)
    colour = tuple(float(c) for c in rng.choice(
        [(120, 90, 60), (90, 90, 95), (180, 180, 185), (40, 40, 40), (150, 120, 80)]))
    period = int(rng.integers(size // 10, size // 3))
    thickness = int(rng.integers(1, max(2, period // 2)))
    layer = np.zeros_like(image)
    mask = np.zeros((size, size), np.float32)
    for offset in range(-size, 2 * size, period):
        cv2.line(layer, (offset, -size), (offset, 2 * size), colour, thickness)
        cv2.line(mask, (offset, -size), (offset, 2 * size), 1.0, thickness)
        if rng.random() < 0.5:
            cv2.line(layer, (-size, offset), (2 * size, offset), colour, max(1, thickness // 2))
            cv2.line(mask, (-size, offset), (2 * size, offset), 1.0, max(1, thickness // 2))
    rotation = cv2.getRotationMatrix2D((size / 2, size / 2), rng.uniform(0, 180), 1)
    layer = cv2.warpAffine(layer, rotation, (size, size))
    mask = cv2.warpAffine(mask, rotation, (size, size))[..., None]
    return _finish(image * (1 - mask) + layer * mask)


SYNTHETIC_KINDS: dict[str, Callable[[Generator, int], Frame]] = {
    'uniform_colour': uniform_colour,
    'uniform_green': uniform_green,
    'black': black_frame,
    'white': white_frame,
    'heavy_blur': heavy_blur,
    'noise': sensor_noise,
    'grass': grass_texture,
    'soil': soil_texture,
    'sky': sky_gradient,
    'pipes': pipes,
    'plastic_mulch': plastic_mulch,
    'fence': fence,
}


def synthetic_frame(rng: Generator, size: int, kind: str | None = None) -> Frame:
    """Return one synthetic non-leaf frame of ``kind`` (a random kind when None)."""
    if kind is None:
        kind = str(rng.choice(list(SYNTHETIC_KINDS)))
    if kind not in SYNTHETIC_KINDS:
        raise ValueError(f'unknown synthetic kind {kind!r}; choose one of '
                         f'{", ".join(SYNTHETIC_KINDS)}')
    return SYNTHETIC_KINDS[kind](rng, size)


def synthetic_set(seed: int, size: int, per_kind: int) -> tuple[np.ndarray, list[str]]:
    """Return a seeded set of ``per_kind`` frames of every kind and the kind of each."""
    rng = np.random.default_rng(seed)
    frames, kinds = [], []
    for kind in SYNTHETIC_KINDS:
        for _ in range(per_kind):
            frames.append(synthetic_frame(rng, size, kind))
            kinds.append(kind)
    return np.stack(frames), kinds
