"""Conversions between ROS messages and the core's plain types (free functions).

Only message types are imported from ROS here (no node, no rclpy context), so every
function is testable on its own. Image payloads are handed to the core as numpy views of
the message buffer (no copy); outgoing payloads are copied once into the message.
"""

from __future__ import annotations

import array
import json
import math
from typing import Any

from builtin_interfaces.msg import Time
import numpy as np
from sensor_msgs.msg import CompressedImage, Image, NavSatFix, NavSatStatus
from std_msgs.msg import Header, String

from plant_disease_ros.core.classifier import Classification
from plant_disease_ros.core.fix_buffer import fix_rejection_reason, GeoFix, UNSTAMPED_REASON
from plant_disease_ros.core.image_encoding import (
    compressed_to_rgb,
    compressed_to_rgb_and_grey_kind,
    raw_to_rgb,
    rgb_to_raw,
)
from plant_disease_ros.core.motion_blur import MotionBlur
from plant_disease_ros.core.outcome import frame_outcome, FrameOutcome

__all__ = [
    'classification_to_dict', 'classification_to_json', 'classification_to_string',
    'compressed_image_to_rgb', 'compressed_image_to_rgb_and_grey_kind', 'copy_header',
    'display_label', 'feature_to_string', 'fix_rejection_hint',
    'geofix_to_navsatfix', 'header_to_dict', 'horizontal_accuracy_m', 'image_to_rgb',
    'is_unstamped', 'navsatfix_to_geofix', 'rgb_to_image', 'seconds_to_stamp',
    'stamp_to_seconds',
]

_NANOSECONDS_PER_SECOND = 1_000_000_000


def _byte_view(data: Any) -> np.ndarray:
    """Return a flat uint8 numpy view of a message payload (array.array, bytes, list)."""
    try:
        return np.frombuffer(data, dtype=np.uint8)
    except TypeError:
        # A plain list of ints (hand-built message with field checks off): one copy.
        return np.asarray(data, dtype=np.uint8).reshape(-1)


def image_to_rgb(msg: Image) -> np.ndarray:
    """Convert a sensor_msgs/Image to H×W×3 uint8 RGB.

    The payload is passed to :func:`raw_to_rgb` as a view, so the only copy is the
    conversion itself. Raises ``ImageConversionError`` (with ``reason``) on a bad image.
    """
    return raw_to_rgb(_byte_view(msg.data), msg.encoding, msg.width, msg.height, msg.step,
                      bool(msg.is_bigendian))


def compressed_image_to_rgb(msg: CompressedImage) -> np.ndarray:
    """Decode a sensor_msgs/CompressedImage (JPEG or PNG) to H×W×3 uint8 RGB.

    Raises ``ImageConversionError`` (with ``reason``) when it cannot be decoded.
    """
    return compressed_to_rgb(_byte_view(msg.data), msg.format)


def compressed_image_to_rgb_and_grey_kind(msg: CompressedImage) -> tuple[np.ndarray, str]:
    """Decode a sensor_msgs/CompressedImage; return the RGB and whether it stores no colour.

    The kind is 'grey JPEG', 'grey PNG' or '' (see
    :func:`~plant_disease_ros.core.image_encoding.compressed_grey_kind`), read from the
    header walked for the decode. Raises ``ImageConversionError`` as
    :func:`compressed_image_to_rgb` does.
    """
    return compressed_to_rgb_and_grey_kind(_byte_view(msg.data), msg.format)


def rgb_to_image(rgb: np.ndarray, header: Header, encoding: str = 'rgb8') -> Image:
    """Return a sensor_msgs/Image holding ``rgb`` in ``encoding`` with a copy of ``header``.

    rgb8 is copied straight from the array (one copy); other encodings go through
    :func:`rgb_to_raw`.
    """
    image = np.asarray(rgb)
    if image.ndim != 3 or image.shape[2] != 3 or image.dtype != np.uint8:
        raise ValueError(f'expected an HxWx3 uint8 RGB image, got shape {image.shape} '
                         f'dtype {image.dtype}')
    msg = Image()
    msg.header = copy_header(header)
    msg.height, msg.width = int(image.shape[0]), int(image.shape[1])
    msg.encoding = encoding
    msg.is_bigendian = 0
    payload = array.array('B')
    if encoding == 'rgb8':
        payload.frombytes(np.ascontiguousarray(image).data)
        msg.step = msg.width * 3
    else:
        data, step = rgb_to_raw(image, encoding)
        payload.frombytes(data)
        msg.step = step
    # Assigning an array.array('B') skips the per-element field check.
    msg.data = payload
    return msg


def copy_header(header: Header) -> Header:
    """Return a copy of ``header`` (stamp and frame_id), so outputs never alias inputs."""
    copied = Header()
    copied.stamp = Time(sec=int(header.stamp.sec), nanosec=int(header.stamp.nanosec))
    copied.frame_id = str(header.frame_id)
    return copied


def stamp_to_seconds(stamp: Time) -> float:
    """Return a builtin_interfaces/Time as float seconds."""
    return float(stamp.sec) + float(stamp.nanosec) * 1e-9


def is_unstamped(stamp: Time) -> bool:
    """Return whether a header stamp is exactly zero: a driver that did not fill it.

    Only exactly zero: a simulator's clock legitimately starts near 0 (sec 0, nanosec
    > 0, or a few seconds).
    """
    return int(stamp.sec) == 0 and int(stamp.nanosec) == 0


def seconds_to_stamp(seconds: float) -> Time:
    """Return float ``seconds`` as a builtin_interfaces/Time (rounded to the nanosecond)."""
    if not math.isfinite(seconds):
        raise ValueError(f'cannot convert {seconds} s to a stamp')
    total_ns = int(round(float(seconds) * _NANOSECONDS_PER_SECOND))
    sec, nanosec = divmod(total_ns, _NANOSECONDS_PER_SECOND)
    return Time(sec=sec, nanosec=nanosec)


def horizontal_accuracy_m(msg: NavSatFix) -> float | None:
    """Return the 1-sigma horizontal accuracy from a fix's covariance, or ``None``.

    Drivers write the receiver's horizontal accuracy as the east and north variances;
    the root of their mean gives it back. An infinite variance (a covariance that says the
    position may be anywhere) gives ``inf``; an unknown covariance type, a NaN or a
    negative variance give ``None`` (unknown).
    """
    if msg.position_covariance_type == NavSatFix.COVARIANCE_TYPE_UNKNOWN:
        return None
    east, north = float(msg.position_covariance[0]), float(msg.position_covariance[4])
    if math.inf in (east, north):
        return math.inf   # anywhere, whatever the other variance says
    if math.isnan(east) or math.isnan(north) or east < 0.0 or north < 0.0:
        return None
    return math.sqrt(0.5 * east + 0.5 * north)  # not (east + north): 2e308 overflows


# Why a refused fix is refused, where the reason alone does not tell the user what to fix.
FIX_REASON_HINTS = {
    UNSTAMPED_REASON: 'header stamp 0: the GPS driver does not stamp its fixes, so none '
                      'can be matched to an image stamp',
}
# NavSatStatus.STATUS_UNKNOWN (Jazzy on), the status of a message nobody set.
STATUS_UNSET = int(getattr(NavSatStatus, 'STATUS_UNKNOWN', -2))


def fix_rejection_hint(reason: str, msg: NavSatFix) -> tuple[str, str]:
    """Return the warning key and the hint ('' for none) for a fix refused for ``reason``.

    A fix whose status was never set (the message's default) is a driver that does not
    fill it, not a receiver without a fix: it gets its own key, so the warning of one is
    not throttled behind the other's.
    """
    if reason == 'no_fix' and int(msg.status.status) == STATUS_UNSET:
        return 'status_unset', (
            f"status {STATUS_UNSET} (STATUS_UNKNOWN, the message's default): the GPS driver "
            'does not set NavSatStatus.status; fixes are used from STATUS_FIX (0) up')
    if reason == 'inaccurate' and math.isinf(horizontal_accuracy_m(msg) or 0.0):
        return 'inaccurate', 'its covariance is infinite: no position'
    return reason, FIX_REASON_HINTS.get(reason, '')


def navsatfix_to_geofix(msg: NavSatFix, max_accuracy_m: float = 0.0, *,
                        require_stamp: bool = False) -> tuple[GeoFix | None, str | None]:
    """Return ``(fix, None)`` for a usable NavSatFix, ``(None, reason)`` otherwise.

    The reason is that of :func:`fix_rejection_reason` ('no_fix', 'non_finite' or
    'out_of_range'); 'inaccurate' when ``max_accuracy_m`` > 0 and the fix's reported
    horizontal accuracy is worse (a fix of unknown accuracy is used), and whatever
    ``max_accuracy_m`` when its covariance is infinite (no position at all); with
    ``require_stamp``, 'unstamped' (``UNSTAMPED_REASON``) for an otherwise usable fix
    whose header stamp is exactly zero (:func:`is_unstamped`). The fix's stamp is the
    message header's.
    """
    reason = fix_rejection_reason(int(msg.status.status), msg.latitude, msg.longitude,
                                  msg.altitude)
    if reason is not None:
        return None, reason
    accuracy = horizontal_accuracy_m(msg)
    if accuracy is not None and (math.isinf(accuracy)
                                 or 0.0 < max_accuracy_m < accuracy):
        return None, 'inaccurate'
    if require_stamp and is_unstamped(msg.header.stamp):
        return None, UNSTAMPED_REASON
    return GeoFix(stamp_s=stamp_to_seconds(msg.header.stamp), latitude=float(msg.latitude),
                  longitude=float(msg.longitude), altitude=float(msg.altitude),
                  horizontal_accuracy_m=accuracy, status=int(msg.status.status),
                  service=int(msg.status.service)), None


def geofix_to_navsatfix(fix: GeoFix, header: Header) -> NavSatFix:
    """Return a NavSatFix at ``fix``'s position carrying ``header`` (the image's header).

    Used for ``detections/fix``. The status and service are the receiver's (the worst
    status of the fixes the position was made from). A known horizontal accuracy is
    written as an approximated diagonal covariance: the position is interpolated or moved
    from the fixes, its accuracy widened accordingly, and the vertical is taken as twice
    the horizontal (the usual GNSS ratio); otherwise the covariance is marked unknown.
    """
    msg = NavSatFix()
    msg.header = copy_header(header)
    msg.status.status = int(fix.status)
    msg.status.service = int(fix.service)
    msg.latitude = float(fix.latitude)
    msg.longitude = float(fix.longitude)
    msg.altitude = float(fix.altitude)
    accuracy = fix.horizontal_accuracy_m
    if accuracy is not None and math.isfinite(accuracy):
        variance = float(accuracy) ** 2
        msg.position_covariance = [variance, 0.0, 0.0, 0.0, variance, 0.0,
                                   0.0, 0.0, 4.0 * variance]
        msg.position_covariance_type = NavSatFix.COVARIANCE_TYPE_APPROXIMATED
    else:
        msg.position_covariance_type = NavSatFix.COVARIANCE_TYPE_UNKNOWN
    return msg


def display_label(classification: Classification, score_threshold: float) -> str:
    """Return the frame's label: the top label, 'unknown' below the threshold, or 'no_leaf'.

    Without the vegetation gate's verdict; :func:`frame_outcome` takes that too.
    """
    return frame_outcome(classification, score_threshold).label


def header_to_dict(header: Header) -> dict:
    """Return the source image's ``stamp`` {sec, nanosec} and ``frame_id`` as JSON fields."""
    return {'stamp': {'sec': int(header.stamp.sec), 'nanosec': int(header.stamp.nanosec)},
            'frame_id': str(header.frame_id)}


def classification_to_dict(classification: Classification, header: Header,
                           score_threshold: float = 0.0,
                           outcome: FrameOutcome | None = None,
                           motion_blur: MotionBlur | None = None) -> dict:
    """Return the ``classification`` topic's JSON object for one frame.

    Keys: ``stamp`` {sec, nanosec} and ``frame_id`` of the source image, ``label`` (as on
    the ``label`` topic, 'unknown' below ``score_threshold``, 'no_leaf' without a leaf),
    ``outcome`` ('leaf', 'unknown' or 'no_leaf'), ``no_leaf_reason`` (the gate's reason or
    'model'; '' for leaves), ``confidence`` (the score of ``label``: 1.0 when the gate
    made it 'no_leaf', else the top-1 score; see :meth:`FrameOutcome.confidence`),
    ``top_k`` [{label, index, score}] (the model's own scores, also for a frame the gate
    turned away), ``crops`` (the crops the scores are restricted to; [] = every crop),
    ``poses`` (the right-angle poses of the frame whose scores were averaged; 1 = one pass) and
    ``timings_ms`` {preprocess, invoke, postprocess, total}, and ``motion_blur``: the
    frame's streak {px, axis, percent} when it was estimated (every Nth leaf frame), else
    null. ``outcome`` is the frame's :func:`frame_outcome`, computed without the gate when
    not given.
    """
    if outcome is None:
        outcome = frame_outcome(classification, score_threshold)
    return {
        **header_to_dict(header),
        'label': outcome.label,
        'outcome': outcome.kind,
        'no_leaf_reason': outcome.reason,
        'confidence': outcome.confidence(classification),
        'top_k': [{'label': category.label, 'index': int(category.index),
                   'score': float(category.score)}
                  for category in classification.categories],
        'crops': list(classification.crops),
        'poses': int(classification.poses),
        'timings_ms': {
            'preprocess': float(classification.preprocess_ms),
            'invoke': float(classification.invoke_ms),
            'postprocess': float(classification.postprocess_ms),
            'total': float(classification.total_ms),
        },
        'motion_blur': motion_blur.to_dict() if motion_blur is not None else None,
    }


def classification_to_json(classification: Classification, header: Header,
                           score_threshold: float = 0.0,
                           outcome: FrameOutcome | None = None,
                           motion_blur: MotionBlur | None = None) -> str:
    """Return :func:`classification_to_dict` as a compact JSON string."""
    return json.dumps(classification_to_dict(classification, header, score_threshold, outcome,
                                             motion_blur), separators=(',', ':'))


def classification_to_string(classification: Classification, header: Header,
                             score_threshold: float = 0.0,
                             outcome: FrameOutcome | None = None,
                             motion_blur: MotionBlur | None = None) -> String:
    """Return the std_msgs/String published on ``classification``."""
    return String(data=classification_to_json(classification, header, score_threshold,
                                              outcome, motion_blur))


def feature_to_string(feature: dict) -> String:
    """Return a detection GeoJSON Feature as a std_msgs/String (compact, no NaN)."""
    return String(data=json.dumps(feature, separators=(',', ':'), allow_nan=False))
