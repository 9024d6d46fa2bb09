"""Detection features for map tests: a classification and a detection at a local position."""

from __future__ import annotations

from plant_disease_ros.core.classifier import Category, Classification
from plant_disease_ros.core.detections import detection_feature
from plant_disease_ros.core.fix_buffer import FixLookup, GeoFix
from plant_disease_ros.core.geodesy import enu_to_geodetic

ORIGIN = (52.0116, 4.3571, 0.0)
LATE_BLIGHT = 'Tomato___Late_blight'
EARLY_BLIGHT = 'Tomato___Early_blight'
HEALTHY = 'Tomato___healthy'


def classification(label: str, score: float = 0.9, index: int = 3) -> Classification:
    """Return a classification whose top category is ``label`` at ``score``."""
    return Classification(
        categories=(Category(index, label, score), Category(index + 1, 'Other___x', 0.05)),
        preprocess_ms=1.0, invoke_ms=2.0, postprocess_ms=0.1)


def feature_at(east: float | None, north: float | None, label: str = LATE_BLIGHT,
               score: float = 0.9, sec: int = 0, origin: tuple = ORIGIN) -> dict:
    """Return a detection at ENU ``east, north`` from ``origin`` (no position for None)."""
    if east is None or north is None:
        lookup = FixLookup('stale', None, 5.0)
    else:
        lat, lon, alt = enu_to_geodetic(east, north, 0.0, *origin)
        lookup = FixLookup('interpolated', GeoFix(float(sec), lat, lon, alt, 0.3), 0.1)
    return detection_feature(stamp_sec=sec, stamp_nanosec=5, frame_id='camera',
                             classification=classification(label, score),
                             fix_lookup=lookup)
