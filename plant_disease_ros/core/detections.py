"""Detection records: one GeoJSON Feature (RFC 7946) per classified frame, and readers.

A detection is a Feature whose geometry is a Point ``[longitude, latitude, altitude]``
(WGS84 degrees, metres above the ellipsoid) when the frame could be located, ``[longitude,
latitude]`` when the fix had no altitude (a 2-D fix: NavSatFix altitude NaN), and ``null``
when it could not be located (stale or missing GPS): a detection is never dropped for want
of a position. The properties carry the image stamp and frame, the top label and its
confidence, the top-k, whether the label is a healthy class, and how the position was
obtained (``fix_status``, and ``camera_offset``: whether the antenna's position was moved
to the camera's view, with the ``heading_deg`` used). The accessors below are the one
place that knows these property names.
"""

from __future__ import annotations

import math
from typing import Any, TYPE_CHECKING

from plant_disease_ros.core.labels import is_healthy

if TYPE_CHECKING:
    from plant_disease_ros.core.classifier import Classification
    from plant_disease_ros.core.fix_buffer import FixLookup

UNKNOWN_LABEL = 'unknown'


def _finite_or_none(value: float | None) -> float | None:
    if value is None:
        return None
    value = float(value)
    return value if math.isfinite(value) else None


def finite_number(value: Any) -> float | None:
    """Return a JSON number as a finite float, else ``None``.

    ``None`` for what is not a number (strings, ``bool``, ``None``), for NaN and the
    infinities, and for an integer too large for a float (JSON integers have no bound;
    ``float()`` of a 400-digit one raises OverflowError).
    """
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return None
    try:
        number = float(value)
    except OverflowError:
        return None
    return number if math.isfinite(number) else None


def detection_feature(*, stamp_sec: int, stamp_nanosec: int, frame_id: str,
                      classification: Classification, fix_lookup: FixLookup) -> dict:
    """Return the GeoJSON Feature of one classified frame.

    The top category is the one with the highest score. The geometry is the lookup's fix
    as ``[lon, lat, alt]`` (``[lon, lat]`` when its altitude is unknown, i.e. not finite),
    or ``None`` when the lookup gave no position; ``crops`` are the
    crops the scores were restricted to ([] = every crop), ``poses`` the poses of the frame
    whose scores were averaged (1 = one pass). Every value is a
    plain JSON type (no numpy scalars, no NaN), ready for ``json.dumps(allow_nan=False)``.
    """
    categories = list(classification.categories)
    if not categories:
        raise ValueError('a detection needs at least one category')
    top = max(categories, key=lambda category: category.score)
    fix = fix_lookup.fix
    geometry = None
    if fix is not None:
        coordinates = [float(fix.longitude), float(fix.latitude)]
        altitude = _finite_or_none(fix.altitude)
        if altitude is not None:
            coordinates.append(altitude)
        geometry = {'type': 'Point', 'coordinates': coordinates}
    properties = {
        'stamp': {'sec': int(stamp_sec), 'nanosec': int(stamp_nanosec)},
        'frame_id': str(frame_id),
        'label': str(top.label),
        'class_index': int(top.index),
        'confidence': float(top.score),
        'top_k': [
            {'label': str(category.label), 'index': int(category.index),
             'score': float(category.score)}
            for category in categories
        ],
        'healthy': bool(is_healthy(str(top.label))),
        'crops': [str(crop) for crop in classification.crops],
        'poses': int(classification.poses),
        'fix_status': str(fix_lookup.status),
        'fix_age_s': _finite_or_none(fix_lookup.age_s),
        'horizontal_accuracy_m': _finite_or_none(
            fix.horizontal_accuracy_m if fix is not None else None),
        'camera_offset': str(fix_lookup.camera_offset),
        'heading_deg': _finite_or_none(fix_lookup.heading_deg),
    }
    return {'type': 'Feature', 'geometry': geometry, 'properties': properties}


def _properties(feature: dict) -> dict:
    properties = feature.get('properties')
    return properties if isinstance(properties, dict) else {}


def feature_position(feature: dict) -> tuple[float, float, float] | None:
    """Return ``(lat, lon, alt)`` of a Point feature, else ``None``.

    A 2-D position ``[lon, lat]`` (altitude unknown) gets altitude 0 (the ellipsoid):
    the map grid and the rendered map use only east and north, which an altitude error
    ``h`` scales by about ``h / 6371 km`` (0.1 mm per metre from the origin at 600 m).
    ``None`` also when a coordinate is not a finite number (see :func:`finite_number`).
    """
    geometry = feature.get('geometry')
    if not isinstance(geometry, dict) or geometry.get('type') != 'Point':
        return None
    coordinates = geometry.get('coordinates')
    if not isinstance(coordinates, (list, tuple)) or len(coordinates) < 2:
        return None
    lon, lat = finite_number(coordinates[0]), finite_number(coordinates[1])
    alt = finite_number(coordinates[2]) if len(coordinates) > 2 else 0.0
    if lat is None or lon is None or alt is None:
        return None
    return lat, lon, alt


def feature_label(feature: dict) -> str:
    """Return the top label of a detection feature (``'unknown'`` when it has none)."""
    label = _properties(feature).get('label')
    return label if isinstance(label, str) and label else UNKNOWN_LABEL


def feature_healthy(feature: dict) -> bool:
    """Return whether a detection is of a healthy class (its ``healthy`` flag, else label)."""
    healthy = _properties(feature).get('healthy')
    if isinstance(healthy, bool):
        return healthy
    return is_healthy(feature_label(feature))


def feature_confidence(feature: dict) -> float:
    """Return the confidence of a detection (0 when absent or not a finite number)."""
    confidence = finite_number(_properties(feature).get('confidence'))
    return 0.0 if confidence is None else confidence


def feature_stamp_s(feature: dict) -> float | None:
    """Return the image stamp of a detection in seconds, or ``None`` when it has none.

    ``None`` too when ``sec`` or ``nanosec`` is not an integer or the stamp is not a
    finite float (an integer too large for one).
    """
    stamp: Any = _properties(feature).get('stamp')
    if not isinstance(stamp, dict):
        return None
    sec, nanosec = stamp.get('sec'), stamp.get('nanosec', 0)
    if (isinstance(sec, bool) or isinstance(nanosec, bool) or not isinstance(sec, int)
            or not isinstance(nanosec, int)):
        return None
    try:
        seconds = sec + nanosec * 1e-9
    except OverflowError:
        return None
    return seconds if math.isfinite(seconds) else None
