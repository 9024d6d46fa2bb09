"""Test photos seen the way the nodes see a camera frame (no TensorFlow, no ROS).

``plant-disease evaluate`` normally hands the classifier each photo shrunk to the model's
input. On the robot a photo of a leaf arrives as a camera frame: ``camera_subscriber``
crops it (by default the centred square, ``crop_mode: center``, fraction 1.0),
``disease_classifier`` runs the vegetation gate on the crop and then the classifier,
which resizes the crop to the model's input. :func:`node_inputs` reproduces that path for
a list of photo files, so an evaluation with ``--frames 640x480`` gives the figures a
robot running the launch defaults would give on those photos shown as 640×480 frames.

How a photo becomes a frame is a choice the robot never makes, so it is an option:
``fit`` keeps the photo's shape, scaled to fit the frame and centred on black (a square
photo fills the centred square the node crops); ``stretch`` scales it to the whole frame
(a square photo is then widened by 4:3 and the crop keeps its middle three quarters).

A robot drives while the shutter is open: ``motion_blur_px`` smears each frame along its
rows by that many pixels (a box, as a camera moving sideways at a steady speed makes it),
so an evaluation can say how much blur the model stands.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
import re

import cv2
import numpy as np

from plant_disease_ros.core.motion_blur import smear
from plant_disease_ros.core.preprocessing import center_crop, resize_to_input
from plant_disease_ros.core.vegetation import check_frame
from plant_disease_ros.training.dataset import ProgressCallback, read_rgb

FRAMINGS = ('fit', 'stretch')


@dataclass(frozen=True)
class CameraFraming:
    """How photos become camera frames, and the node settings they then go through."""

    width: int = 640
    height: int = 480
    framing: str = 'fit'  # one of FRAMINGS
    center_crop_fraction: float = 1.0  # camera_subscriber's default (crop_mode center)
    vegetation_gate: bool = True  # disease_classifier's default
    motion_blur_px: int = 0  # horizontal motion blur of the whole frame, px (0: none)

    def __post_init__(self) -> None:
        if self.width <= 0 or self.height <= 0:
            raise ValueError(f'frame size must be positive, got {self.width}x{self.height}')
        if self.framing not in FRAMINGS:
            raise ValueError(f'framing must be one of {", ".join(FRAMINGS)}, '
                             f'got {self.framing!r}')
        if not 0.0 < self.center_crop_fraction <= 1.0:
            raise ValueError('center crop fraction must be in (0, 1], got '
                             f'{self.center_crop_fraction}')
        if not 0 <= self.motion_blur_px <= self.width:
            raise ValueError(f'motion blur must be 0 to the frame width ({self.width}) '
                             f'pixels, got {self.motion_blur_px}')

    def describe(self) -> str:
        """Return a one-line description for reports."""
        gate = 'vegetation gate on' if self.vegetation_gate else 'vegetation gate off'
        blur = f', motion blur {self.motion_blur_px} px' if self.motion_blur_px > 1 else ''
        return (f'{self.width}x{self.height} frames ({self.framing}), centre crop '
                f'{self.center_crop_fraction:g}, {gate}{blur}')

    def frame(self, rgb: np.ndarray) -> np.ndarray:
        """Return the RGB photo (or scene) as this camera's frame, blurred if it moves."""
        return smear(photo_as_frame(rgb, self.width, self.height, self.framing),
                     self.motion_blur_px, 'horizontal')


def parse_frame_size(text: str) -> tuple[int, int]:
    """Return ``(width, height)`` of a ``WIDTHxHEIGHT`` string such as ``640x480``."""
    match = re.fullmatch(r'\s*(\d+)\s*[xX×]\s*(\d+)\s*', text)
    if match is None or int(match.group(1)) == 0 or int(match.group(2)) == 0:
        raise ValueError(f'a frame size is WIDTHxHEIGHT with both above 0, e.g. 640x480; '
                         f'got {text!r}')
    return int(match.group(1)), int(match.group(2))


def _scale(rgb: np.ndarray, width: int, height: int) -> np.ndarray:
    shrinking = rgb.shape[1] > width or rgb.shape[0] > height
    return cv2.resize(rgb, (width, height),
                      interpolation=cv2.INTER_AREA if shrinking else cv2.INTER_LINEAR)


def photo_as_frame(rgb: np.ndarray, width: int, height: int,
                   framing: str = 'fit') -> np.ndarray:
    """Return the RGB photo as a ``width``×``height`` camera frame (see the module)."""
    if framing == 'stretch':
        return _scale(rgb, width, height)
    if framing != 'fit':
        raise ValueError(f'framing must be one of {", ".join(FRAMINGS)}, got {framing!r}')
    photo_height, photo_width = rgb.shape[:2]
    scale = min(width / photo_width, height / photo_height)
    fitted_width = max(1, min(width, round(photo_width * scale)))
    fitted_height = max(1, min(height, round(photo_height * scale)))
    frame = np.zeros((height, width, 3), np.uint8)
    top, left = (height - fitted_height) // 2, (width - fitted_width) // 2
    frame[top:top + fitted_height, left:left + fitted_width] = _scale(
        rgb, fitted_width, fitted_height)
    return frame


def node_input(rgb: np.ndarray, size: int, camera: CameraFraming) -> tuple[np.ndarray, bool]:
    """Return ``(model input size×size, gate passed)`` of one photo shown as a frame."""
    frame = camera.frame(rgb)
    crop = center_crop(frame, camera.center_crop_fraction)
    passed = check_frame(crop).passed if camera.vegetation_gate else True
    return resize_to_input(crop, size, size), passed


def node_inputs(root: Path, files: Sequence[tuple[str, int]], size: int,
                camera: CameraFraming, progress: ProgressCallback | None = None,
                ) -> tuple[np.ndarray, np.ndarray, list[str], np.ndarray]:
    """Return ``(images, labels, unreadable, gate passed)`` of ``files`` seen as frames.

    Like :func:`~plant_disease_ros.training.dataset.load_images` (unreadable files are
    left out and listed), plus whether the vegetation gate let each frame through.
    """
    images = np.empty((len(files), size, size, 3), dtype=np.uint8)
    labels = np.empty((len(files),), dtype=np.int32)
    passed = np.empty((len(files),), dtype=bool)
    unreadable: list[str] = []
    kept = 0
    for number, (path, index) in enumerate(files, start=1):
        rgb = read_rgb(root / path)
        if rgb is None:
            unreadable.append(path)
        else:
            images[kept], passed[kept] = node_input(rgb, size, camera)
            labels[kept] = index
            kept += 1
        if progress is not None:
            progress(number, len(files))
    return images[:kept], labels[:kept], unreadable, passed[:kept]


def photo_frames(root: Path, paths: Sequence[str], camera: CameraFraming
                 ) -> Iterator[np.ndarray]:
    """Yield each photo of ``paths`` (under ``root``) as the whole camera frame, in order.

    What a camera would send the nodes (:meth:`CameraFraming.frame`), for an evaluation
    through the nodes themselves; ValueError names a photo that cannot be read now.
    """
    for path in paths:
        rgb = read_rgb(root / path)
        if rgb is None:
            raise ValueError(f'cannot read {root / path}')
        yield camera.frame(rgb)


def frames_as_node_inputs(frames: np.ndarray, size: int, camera: CameraFraming,
                          ) -> tuple[np.ndarray, np.ndarray]:
    """Return ``(images, gate passed)`` of in-memory RGB frames (synthetic scenes)."""
    pairs = [node_input(frame, size, camera) for frame in frames]
    if not pairs:
        return np.empty((0, size, size, 3), np.uint8), np.empty((0,), bool)
    return np.stack([image for image, _ in pairs]), np.array([ok for _, ok in pairs])

