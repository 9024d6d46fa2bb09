"""Fuzz the functions the nodes call on every message with 10,000 generated messages.

The camera and classifier nodes turn an Image with ``conversions.image_to_rgb``, a
CompressedImage with ``conversions.compressed_image_to_rgb`` and a NavSatFix with
``conversions.navsatfix_to_geofix``, then crop, classify and look the position up with
the core. Each generated message must give a valid RGB image / GeoFix or fail with the
documented error and a known reason -- never another exception, never a wrong image.
"""

from __future__ import annotations

from collections import Counter
import json
import math

import numpy as np
import pytest

pytest.importorskip('sensor_msgs.msg')

from helpers.fuzz_messages import (  # noqa: E402
    ANY_REASON,
    FIX_REASONS,
    FuzzCase,
    generate_cases,
    IMAGE_REASONS,
)
from helpers.shipped_model import shipped_classifier  # noqa: E402

from plant_disease_ros.core.classifier import (  # noqa: E402
    Category,
    Classification,
    DiseaseClassifier,
)
from plant_disease_ros.core.detections import detection_feature  # noqa: E402
from plant_disease_ros.core.fix_buffer import FixBuffer, LOOKUP_STATUSES  # noqa: E402
from plant_disease_ros.core.image_encoding import ImageConversionError  # noqa: E402
from plant_disease_ros.core.preprocessing import center_crop, crop_roi  # noqa: E402
from plant_disease_ros.ros import conversions  # noqa: E402

SEED = 20260
CASES = 10_000
CLASSIFY_EVERY = 7


def _check_rgb(rgb: object, msg: object, case: FuzzCase) -> None:
    """Assert ``rgb`` is a valid H×W×3 uint8 C-contiguous image matching the message."""
    assert isinstance(rgb, np.ndarray), type(rgb)
    assert rgb.dtype == np.uint8 and rgb.ndim == 3 and rgb.shape[2] == 3, rgb.shape
    assert rgb.flags.c_contiguous and rgb.size > 0
    if case.kind == 'image':
        assert rgb.shape[:2] == (msg.height, msg.width)
    if case.rgb is not None:
        np.testing.assert_array_equal(rgb, case.rgb, err_msg=case.note)


def run_image_case(case: FuzzCase) -> tuple[str, np.ndarray | None]:
    """Convert one Image/CompressedImage case; return (outcome, rgb) or raise on a bug."""
    convert = (conversions.image_to_rgb if case.kind == 'image'
               else conversions.compressed_image_to_rgb)
    try:
        rgb = convert(case.msg)
    except ImageConversionError as error:
        assert error.reason in IMAGE_REASONS, f'unknown reason {error.reason!r}'
        assert str(error), 'an error needs a message'
        assert case.expected is not None, f'good message refused ({error.reason}: {error})'
        if case.expected != ANY_REASON:
            assert error.reason == case.expected, \
                f'expected {case.expected}, got {error.reason}: {error}'
        return error.reason, None
    assert case.expected in (None, ANY_REASON), f'expected {case.expected}, got an image'
    _check_rgb(rgb, case.msg, case)
    return 'ok', rgb


def run_fix_case(case: FuzzCase, buffer: FixBuffer) -> str:
    """Convert one NavSatFix case, add it to ``buffer``; return the outcome."""
    fix, reason = conversions.navsatfix_to_geofix(case.msg)
    if reason is not None:
        assert fix is None and reason in FIX_REASONS, (fix, reason)
        assert case.expected is not None, f'good fix refused ({reason})'
        if case.expected != ANY_REASON:
            assert reason == case.expected, f'expected {case.expected}, got {reason}'
        return reason
    assert case.expected in (None, ANY_REASON), f'expected {case.expected}, got a fix'
    assert all(math.isfinite(v) for v in (fix.stamp_s, fix.latitude, fix.longitude))
    # NaN altitude: NavSatFix's 'no altitude'; never infinite.
    assert math.isfinite(fix.altitude) or math.isnan(fix.altitude)
    assert abs(fix.latitude) <= 90.0 and abs(fix.longitude) <= 180.0
    accuracy = fix.horizontal_accuracy_m
    assert accuracy is None or accuracy >= 0.0
    buffer.add(fix)
    return 'ok'


def check_lookup(buffer: FixBuffer, stamp_s: float, classification: Classification) -> None:
    """Look a frame stamp up and build its detection as the classifier does."""
    for final in (True, False):
        lookup = buffer.lookup(stamp_s, final=final)
        assert lookup.status in LOOKUP_STATUSES
        if lookup.fix is not None:
            fix = lookup.fix
            assert abs(fix.latitude) <= 90.0 and abs(fix.longitude) <= 180.0, fix
            assert not math.isinf(fix.altitude)
            assert lookup.age_s is not None and 0.0 <= lookup.age_s <= buffer.max_fix_age_s
            message = conversions.geofix_to_navsatfix(fix, conversions.copy_header(
                conversions.Header()))
            assert math.isfinite(message.latitude)
    sec = math.floor(stamp_s)
    feature = detection_feature(stamp_sec=sec, stamp_nanosec=int((stamp_s - sec) * 1e9),
                                frame_id='camera', classification=classification,
                                fix_lookup=lookup)
    # The classifier publishes it with allow_nan=False: a NaN would kill the callback.
    json.loads(conversions.feature_to_string(feature).data)


def _crop(rgb: np.ndarray, rng: np.random.Generator) -> None:
    """Crop as camera_subscriber would, with random settings."""
    out = center_crop(rgb, float(rng.uniform(0.05, 1.0)))
    assert out.ndim == 3 and out.size > 0
    height, width = rgb.shape[:2]
    x, y = int(rng.integers(0, width)), int(rng.integers(0, height))
    out = crop_roi(rgb, x, y, int(rng.integers(1, 2 * width)), int(rng.integers(1, 2 * height)))
    assert out.ndim == 3 and out.size > 0


@pytest.fixture
def classifier() -> DiseaseClassifier:
    """Return the shipped classifier."""
    return shipped_classifier()


def test_fuzz_10000_messages(classifier: DiseaseClassifier) -> None:
    """Every generated message converts to a valid image/fix or fails with a known reason."""
    rng = np.random.default_rng(SEED + 1)
    buffer = FixBuffer(max_fix_age_s=2.0, capacity=50)
    dummy = Classification(categories=(Category(0, 'Tomato___healthy', 0.9),),
                           preprocess_ms=0.0, invoke_ms=0.0, postprocess_ms=0.0)
    outcomes: Counter[tuple[str, str]] = Counter()
    failures: list[str] = []
    good_images = 0
    for number, case in enumerate(generate_cases(SEED, CASES)):
        try:
            if case.kind == 'fix':
                outcome = run_fix_case(case, buffer)
                stamp = float(rng.choice([1.7e9 + float(rng.uniform(-100, 100)),
                                          float(rng.uniform(-10, 10))]))
                check_lookup(buffer, stamp, dummy)
            else:
                outcome, rgb = run_image_case(case)
                if rgb is not None:
                    good_images += 1
                    _crop(rgb, rng)
                    if good_images % CLASSIFY_EVERY == 0:
                        result = classifier.classify(rgb)
                        assert 0 <= result.top.index < len(classifier.labels)
                        assert math.isfinite(result.top.score)
        except Exception as error:  # noqa: BLE001 - collect every bug, not just the first
            failures.append(f'#{number} {case.kind} {case.note!r}: '
                            f'{type(error).__name__}: {str(error)[:200]}')
            continue
        outcomes[(case.kind, outcome)] += 1
    assert not failures, f'{len(failures)} of {CASES} messages broke a conversion:\n' + \
        '\n'.join(failures[:20])
    assert sum(outcomes.values()) == CASES
    # The generator really exercised every path.
    for kind in ('image', 'compressed', 'fix'):
        assert outcomes[(kind, 'ok')] > 200, outcomes
    for reason in ('unknown_encoding', 'empty', 'truncated', 'bad_step', 'bad_size'):
        assert outcomes[('image', reason)] > 20, (reason, outcomes)
    for reason in ('empty', 'decode_failed', 'unsupported_format'):
        assert outcomes[('compressed', reason)] > 20, (reason, outcomes)
    for reason in FIX_REASONS:
        assert outcomes[('fix', reason)] > 20, (reason, outcomes)
