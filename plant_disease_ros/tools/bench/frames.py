"""The camera frames the bench publishes and classifies: a leaf photo at each size."""

from __future__ import annotations

from functools import lru_cache
from pathlib import Path

import cv2
import numpy as np

from plant_disease_ros.tools.bench.config import BenchError, JPEG_QUALITY

# test/data/leaves of the source tree; absent from an installed package.
LEAVES_DIR = Path(__file__).resolve().parents[3] / 'test' / 'data' / 'leaves'
PREFERRED_LEAF = 'Tomato___Early_blight.jpg'


@lru_cache(maxsize=1)
def leaf_photo() -> np.ndarray | None:
    """Return a leaf photo (BGR) from the source tree's test data, if there is one."""
    for path in (LEAVES_DIR / PREFERRED_LEAF, *sorted(LEAVES_DIR.glob('*.jpg'))):
        image = cv2.imread(str(path), cv2.IMREAD_COLOR)
        if image is not None:
            return image
    return None


def bench_frame(width: int, height: int) -> np.ndarray:
    """Return a ``height``×``width`` BGR camera frame: a leaf photo, else a drawn leaf."""
    photo = leaf_photo()
    if photo is not None:
        return cv2.resize(photo, (width, height), interpolation=cv2.INTER_LINEAR)
    rng = np.random.default_rng(0)
    frame = np.full((height, width, 3), (120, 110, 100), np.uint8)
    cv2.ellipse(frame, (width // 2, height // 2), (width // 3, height // 4), 30, 0, 360,
                (40, 150, 60), -1)
    noise = rng.integers(0, 24, frame.shape, dtype=np.uint8)
    return cv2.add(frame, noise)


def jpeg_bytes(bgr: np.ndarray, quality: int = JPEG_QUALITY) -> bytes:
    """Return ``bgr`` encoded as JPEG."""
    ok, encoded = cv2.imencode('.jpg', bgr, [cv2.IMWRITE_JPEG_QUALITY, int(quality)])
    if not ok:
        raise BenchError('cannot encode a JPEG frame')
    return encoded.tobytes()
