"""WGS84 geodesy against known values, and round trips to well under a millimetre."""

from __future__ import annotations

import math

from hypothesis import given, settings
from hypothesis import strategies as st
import pytest

from plant_disease_ros.core.geodesy import (
    ecef_to_geodetic,
    enu_to_geodetic,
    geodetic_to_ecef,
    geodetic_to_enu,
    meridian_radius,
    WGS84_A,
    WGS84_B,
)

ARC_SECOND_DEG = 1.0 / 3600.0


def test_ellipsoid_axes() -> None:
    assert WGS84_A == 6378137.0
    assert WGS84_B == pytest.approx(6356752.314245, abs=1e-6)


@pytest.mark.parametrize(('geodetic', 'ecef'), [
    ((0.0, 0.0, 0.0), (WGS84_A, 0.0, 0.0)),
    ((0.0, 90.0, 0.0), (0.0, WGS84_A, 0.0)),
    ((0.0, 180.0, 100.0), (-WGS84_A - 100.0, 0.0, 0.0)),
    ((90.0, 0.0, 0.0), (0.0, 0.0, WGS84_B)),
    ((-90.0, 0.0, 10.0), (0.0, 0.0, -WGS84_B - 10.0)),
    # GeographicLib's CartConvert: `echo 33.3 44.4 6000 | CartConvert`.
    ((33.3, 44.4, 6000.0), (3816209.60, 3737108.55, 3485109.57)),
])
def test_geodetic_to_ecef_known_points(geodetic: tuple[float, float, float],
                                       ecef: tuple[float, float, float]) -> None:
    assert geodetic_to_ecef(*geodetic) == pytest.approx(ecef, abs=0.01)


def test_ecef_to_geodetic_known_points() -> None:
    lat, lon, alt = ecef_to_geodetic(3816209.6044930913, 3737108.5502542644,
                                     3485109.572568041)
    assert (lat, lon) == pytest.approx((33.3, 44.4), abs=1e-11)
    assert alt == pytest.approx(6000.0, abs=1e-6)
    assert ecef_to_geodetic(0.0, 0.0, WGS84_B + 5.0) == pytest.approx((90.0, 0.0, 5.0))
    assert ecef_to_geodetic(0.0, 0.0, -WGS84_B) == pytest.approx((-90.0, 0.0, 0.0),
                                                                 abs=1e-6)
    # The centre of the Earth must not divide by zero.
    assert ecef_to_geodetic(0.0, 0.0, 0.0)[2] < 0.0


def test_enu_known_local_point() -> None:
    # GeographicLib: `echo 33.3 44.4 6000 | CartConvert -l 33 44 20`.
    enu = geodetic_to_enu(33.3, 44.4, 6000.0, 33.0, 44.0, 20.0)
    assert enu == pytest.approx((37288.97, 33374.29, 5783.64), abs=0.01)


def test_one_arc_second_north_at_45_degrees() -> None:
    east, north, up = geodetic_to_enu(45.0 + ARC_SECOND_DEG, 7.0, 100.0, 45.0, 7.0, 100.0)
    assert north == pytest.approx(30.87, abs=0.005)
    assert abs(east) < 1e-6
    assert -1e-3 < up < 0.0  # the tangent plane leaves the curved ellipsoid


@pytest.mark.parametrize('latitude', [-80.0, -33.9, 0.0, 20.0, 52.5, 89.0])
def test_arc_second_north_matches_the_meridian_radius(latitude: float) -> None:
    _, north, _ = geodetic_to_enu(latitude + ARC_SECOND_DEG, -3.0, 0.0, latitude, -3.0, 0.0)
    expected = meridian_radius(latitude + ARC_SECOND_DEG / 2) * math.radians(ARC_SECOND_DEG)
    assert north == pytest.approx(expected, abs=1e-3)


def test_one_arc_second_east_on_the_equator() -> None:
    east, north, _ = geodetic_to_enu(0.0, ARC_SECOND_DEG, 0.0, 0.0, 0.0, 0.0)
    assert east == pytest.approx(WGS84_A * math.radians(ARC_SECOND_DEG), abs=1e-6)  # 30.92 m
    assert abs(north) < 1e-9


def test_origin_is_zero_and_up_is_up() -> None:
    assert geodetic_to_enu(48.1, 11.6, 520.0, 48.1, 11.6, 520.0) == pytest.approx(
        (0.0, 0.0, 0.0), abs=1e-9)
    assert geodetic_to_enu(48.1, 11.6, 530.0, 48.1, 11.6, 520.0) == pytest.approx(
        (0.0, 0.0, 10.0), abs=1e-6)


latitudes = st.floats(-90.0, 90.0, allow_nan=False)
longitudes = st.floats(-180.0, 180.0, allow_nan=False)
altitudes = st.floats(-500.0, 1e5, allow_nan=False)


@settings(max_examples=300, deadline=None)
@given(lat=latitudes, lon=longitudes, alt=altitudes)
def test_geodetic_ecef_round_trip(lat: float, lon: float, alt: float) -> None:
    back = ecef_to_geodetic(*geodetic_to_ecef(lat, lon, alt))
    # Compare in ECEF: longitude is arbitrary at the poles.
    error = math.dist(geodetic_to_ecef(*back), geodetic_to_ecef(lat, lon, alt))
    assert error < 1e-6
    assert back[2] == pytest.approx(alt, abs=1e-6)


@settings(max_examples=300, deadline=None)
@given(lat0=st.floats(-89.9, 89.9), lon0=longitudes, alt0=st.floats(-100.0, 3000.0),
       east=st.floats(-10000.0, 10000.0), north=st.floats(-10000.0, 10000.0),
       up=st.floats(-200.0, 200.0))
def test_enu_round_trip_below_a_millimetre(lat0: float, lon0: float, alt0: float,
                                           east: float, north: float, up: float) -> None:
    lat, lon, alt = enu_to_geodetic(east, north, up, lat0, lon0, alt0)
    back = geodetic_to_enu(lat, lon, alt, lat0, lon0, alt0)
    assert math.dist(back, (east, north, up)) < 1e-3


def test_enu_round_trip_near_the_pole_and_the_antimeridian() -> None:
    for origin in ((89.9999, 0.0, 0.0), (-89.9995, 45.0, 10.0), (10.0, 179.99999, 0.0)):
        for offset in ((5.0, 5.0, 1.0), (-40.0, 25.0, -2.0)):
            geodetic = enu_to_geodetic(*offset, *origin)
            assert math.dist(geodetic_to_enu(*geodetic, *origin), offset) < 1e-3
