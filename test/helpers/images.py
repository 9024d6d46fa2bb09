"""Leaf photos of the test data and the camera messages built from them."""

from __future__ import annotations

import array
from pathlib import Path

import cv2
import numpy as np
import pytest

pytest.importorskip('sensor_msgs.msg')

from builtin_interfaces.msg import Time  # noqa: E402
from sensor_msgs.msg import CompressedImage, Image  # noqa: E402

from plant_disease_ros.core.image_encoding import rgb_to_raw  # noqa: E402

LEAVES_DIR = Path(__file__).resolve().parents[1] / 'data' / 'leaves'

Stamp = float | tuple[int, int]


def leaf_photo_paths() -> list[Path]:
    """Return the held-out leaf photos, one per class, named ``<class>.jpg``."""
    return sorted(LEAVES_DIR.glob('*.jpg'))


def load_rgb(path: Path, max_side: int | None = None) -> np.ndarray:
    """Read a photo as H×W×3 uint8 RGB, shrunk to ``max_side`` pixels if it is larger."""
    bgr = cv2.imread(str(path), cv2.IMREAD_COLOR)
    assert bgr is not None, f'cannot read {path}'
    if max_side is not None and max(bgr.shape[:2]) > max_side:
        scale = max_side / max(bgr.shape[:2])
        bgr = cv2.resize(bgr, None, fx=scale, fy=scale, interpolation=cv2.INTER_AREA)
    return cv2.cvtColor(bgr, cv2.COLOR_BGR2RGB)


def leaf_photos(count: int, max_side: int = 224) -> list[tuple[str, np.ndarray]]:
    """Return the first ``count`` (class name, RGB) leaf photos, ``max_side`` px at most."""
    return [(path.stem, load_rgb(path, max_side)) for path in leaf_photo_paths()[:count]]


def leaf_rgb(width: int, height: int) -> np.ndarray:
    """Return one leaf photo resized to ``width`` × ``height`` RGB."""
    rgb = load_rgb(leaf_photo_paths()[0])
    return cv2.resize(rgb, (width, height), interpolation=cv2.INTER_AREA)


def make_stamp(seconds: Stamp) -> Time:
    """Return ``seconds`` (float, or exact (sec, nanosec)) as a builtin_interfaces/Time."""
    if isinstance(seconds, tuple):
        return Time(sec=seconds[0], nanosec=seconds[1])
    total_ns = int(round(seconds * 1e9))
    return Time(sec=total_ns // 1_000_000_000, nanosec=total_ns % 1_000_000_000)


def data_array(data: bytes) -> array.array:
    """Return ``data`` as the array.array('B') a message's uint8[] field takes."""
    return array.array('B', data)


def make_image(rgb: np.ndarray, encoding: str = 'rgb8', *, stamp_s: Stamp = 1.0,
               frame_id: str = 'camera', row_padding: int = 0) -> Image:
    """Return a sensor_msgs/Image of ``rgb`` in ``encoding`` (rows padded if asked)."""
    data, step = rgb_to_raw(rgb, encoding)
    if row_padding:
        height = rgb.shape[0]
        rows = np.frombuffer(data, np.uint8).reshape(height, step)
        padded = np.zeros((height, step + row_padding), np.uint8)
        padded[:, :step] = rows
        data, step = padded.tobytes(), step + row_padding
    msg = Image()
    msg.header.stamp = make_stamp(stamp_s)
    msg.header.frame_id = frame_id
    msg.height, msg.width = int(rgb.shape[0]), int(rgb.shape[1])
    msg.encoding = encoding
    msg.step = step
    msg.data = data_array(data)
    return msg


def make_compressed(rgb: np.ndarray, fmt: str = 'jpeg', *, stamp_s: Stamp = 1.0,
                    frame_id: str = 'camera') -> CompressedImage:
    """Return a sensor_msgs/CompressedImage of ``rgb`` as JPEG (quality 95) or PNG."""
    bgr = cv2.cvtColor(rgb, cv2.COLOR_RGB2BGR)
    extension = '.jpg' if fmt == 'jpeg' else '.png'
    params = [cv2.IMWRITE_JPEG_QUALITY, 95] if fmt == 'jpeg' else []
    ok, encoded = cv2.imencode(extension, bgr, params)
    assert ok
    msg = CompressedImage()
    msg.header.stamp = make_stamp(stamp_s)
    msg.header.frame_id = frame_id
    msg.format = fmt
    msg.data = data_array(encoded.tobytes())
    return msg
