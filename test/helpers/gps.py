"""The one builder of the tests' sensor_msgs/NavSatFix messages."""

from __future__ import annotations

import pytest

pytest.importorskip('sensor_msgs.msg')

from sensor_msgs.msg import NavSatFix, NavSatStatus  # noqa: E402

from helpers.images import make_stamp, Stamp  # noqa: E402


def make_fix(latitude: float, longitude: float, altitude: float, *, stamp_s: Stamp = 1.7e9,
             status: int = NavSatStatus.STATUS_FIX, accuracy_m: float | None = 2.0,
             variance_m2: float | None = None,
             covariance_type: int = NavSatFix.COVARIANCE_TYPE_DIAGONAL_KNOWN,
             frame_id: str = 'gps', service: int = NavSatStatus.SERVICE_GPS) -> NavSatFix:
    """Return a NavSatFix at the given position (degrees, metres).

    ``stamp_s``: the header stamp, float seconds or exact (sec, nanosec), as
    :func:`helpers.images.make_stamp` takes it. ``status`` is written as given, so
    invalid values (NO_FIX, out-of-range codes) are possible; so are non-finite or
    out-of-range positions.

    The covariance is diagonal: east and north variance ``accuracy_m ** 2`` (the 1-sigma
    horizontal accuracy, as GNSS drivers write it), vertical four times that, of type
    ``covariance_type``. ``variance_m2`` gives the east/north variance itself instead,
    for variances no accuracy gives (negative, inf, 1e308); pass ``accuracy_m=None``
    with it. With neither, the covariance is zero and its type COVARIANCE_TYPE_UNKNOWN.
    """
    if accuracy_m is not None and variance_m2 is not None:
        raise ValueError('give accuracy_m or variance_m2, not both')
    variance = accuracy_m ** 2 if accuracy_m is not None else variance_m2
    msg = NavSatFix()
    msg.header.stamp = make_stamp(stamp_s)
    msg.header.frame_id = frame_id
    msg.status.status = int(status)
    msg.status.service = int(service)
    msg.latitude = float(latitude)
    msg.longitude = float(longitude)
    msg.altitude = float(altitude)
    if variance is None:
        msg.position_covariance_type = NavSatFix.COVARIANCE_TYPE_UNKNOWN
    else:
        variance = float(variance)
        msg.position_covariance = [variance, 0.0, 0.0, 0.0, variance, 0.0,
                                   0.0, 0.0, 4.0 * variance]
        msg.position_covariance_type = int(covariance_type)
    return msg
