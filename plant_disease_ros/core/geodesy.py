"""WGS84 geodesy: geodetic <-> ECEF <-> local East-North-Up (ENU), exact formulas.

Latitudes and longitudes are degrees, altitudes metres above the WGS84 ellipsoid (what
``sensor_msgs/NavSatFix`` carries), ECEF and ENU coordinates metres. The ENU frame is the
tangent plane at a reference point (``lat0, lon0, alt0``): x east, y north, z up, which is
the ROS ``map`` frame convention (REP 103/105).
"""

from __future__ import annotations

import math

WGS84_A = 6378137.0                      # semi-major axis, m
WGS84_F = 1.0 / 298.257223563            # flattening
WGS84_B = WGS84_A * (1.0 - WGS84_F)      # semi-minor axis, m
WGS84_E2 = WGS84_F * (2.0 - WGS84_F)     # first eccentricity squared
WGS84_EP2 = WGS84_E2 / (1.0 - WGS84_E2)  # second eccentricity squared

_MAX_ITERATIONS = 10
# Convergence of the reduced latitude, radians: 1e-14 rad is ~0.06 nm on the ground.
_TOLERANCE_RAD = 1e-14
# Convergence of enu_vertical_at_altitude, metres of altitude.
_ALTITUDE_TOLERANCE_M = 1e-6


def prime_vertical_radius(lat_deg: float) -> float:
    """Return the radius of curvature in the prime vertical N at ``lat_deg``, metres."""
    sin_lat = math.sin(math.radians(lat_deg))
    return WGS84_A / math.sqrt(1.0 - WGS84_E2 * sin_lat * sin_lat)


def meridian_radius(lat_deg: float) -> float:
    """Return the meridional radius of curvature M at ``lat_deg``, metres."""
    sin_lat = math.sin(math.radians(lat_deg))
    return WGS84_A * (1.0 - WGS84_E2) / (1.0 - WGS84_E2 * sin_lat * sin_lat) ** 1.5


def geodetic_to_ecef(lat_deg: float, lon_deg: float,
                     alt_m: float) -> tuple[float, float, float]:
    """Convert WGS84 latitude, longitude (degrees) and altitude (m) to ECEF x, y, z (m)."""
    lat = math.radians(lat_deg)
    lon = math.radians(lon_deg)
    sin_lat, cos_lat = math.sin(lat), math.cos(lat)
    radius_n = WGS84_A / math.sqrt(1.0 - WGS84_E2 * sin_lat * sin_lat)
    x = (radius_n + alt_m) * cos_lat * math.cos(lon)
    y = (radius_n + alt_m) * cos_lat * math.sin(lon)
    z = (radius_n * (1.0 - WGS84_E2) + alt_m) * sin_lat
    return x, y, z


def ecef_to_geodetic(x: float, y: float, z: float) -> tuple[float, float, float]:
    """Convert ECEF x, y, z (m) to WGS84 latitude, longitude (degrees) and altitude (m).

    Bowring's method iterated on the reduced latitude until it settles (two iterations
    reach sub-micrometre accuracy anywhere near the Earth's surface); the height uses the
    form that stays accurate at the poles.
    """
    p = math.hypot(x, y)
    lon = math.atan2(y, x)
    if p == 0.0 and z == 0.0:
        return 0.0, math.degrees(lon), -WGS84_A
    beta = math.atan2(WGS84_A * z, WGS84_B * p)
    lat = 0.0
    for _ in range(_MAX_ITERATIONS):
        sin_beta, cos_beta = math.sin(beta), math.cos(beta)
        lat = math.atan2(z + WGS84_EP2 * WGS84_B * sin_beta ** 3,
                         p - WGS84_E2 * WGS84_A * cos_beta ** 3)
        next_beta = math.atan2((1.0 - WGS84_F) * math.sin(lat), math.cos(lat))
        converged = abs(next_beta - beta) < _TOLERANCE_RAD
        beta = next_beta
        if converged:
            break
    sin_lat, cos_lat = math.sin(lat), math.cos(lat)
    radius_n = WGS84_A / math.sqrt(1.0 - WGS84_E2 * sin_lat * sin_lat)
    alt = p * cos_lat + z * sin_lat - WGS84_A * WGS84_A / radius_n
    return math.degrees(lat), math.degrees(lon), alt


def ecef_to_enu(x: float, y: float, z: float, lat0: float, lon0: float,
                alt0: float) -> tuple[float, float, float]:
    """Express the ECEF point (m) in the ENU frame at the reference ``lat0, lon0, alt0``."""
    x0, y0, z0 = geodetic_to_ecef(lat0, lon0, alt0)
    dx, dy, dz = x - x0, y - y0, z - z0
    lat, lon = math.radians(lat0), math.radians(lon0)
    sin_lat, cos_lat = math.sin(lat), math.cos(lat)
    sin_lon, cos_lon = math.sin(lon), math.cos(lon)
    east = -sin_lon * dx + cos_lon * dy
    north = -sin_lat * cos_lon * dx - sin_lat * sin_lon * dy + cos_lat * dz
    up = cos_lat * cos_lon * dx + cos_lat * sin_lon * dy + sin_lat * dz
    return east, north, up


def enu_to_ecef(e: float, n: float, u: float, lat0: float, lon0: float,
                alt0: float) -> tuple[float, float, float]:
    """Return the ECEF point (m) of ENU ``e, n, u`` at the reference ``lat0, lon0, alt0``."""
    x0, y0, z0 = geodetic_to_ecef(lat0, lon0, alt0)
    lat, lon = math.radians(lat0), math.radians(lon0)
    sin_lat, cos_lat = math.sin(lat), math.cos(lat)
    sin_lon, cos_lon = math.sin(lon), math.cos(lon)
    # The transpose of the ECEF -> ENU rotation.
    dx = -sin_lon * e - sin_lat * cos_lon * n + cos_lat * cos_lon * u
    dy = cos_lon * e - sin_lat * sin_lon * n + cos_lat * sin_lon * u
    dz = cos_lat * n + sin_lat * u
    return x0 + dx, y0 + dy, z0 + dz


def geodetic_to_enu(lat: float, lon: float, alt: float, lat0: float, lon0: float,
                    alt0: float) -> tuple[float, float, float]:
    """Return east, north, up (m) of ``lat, lon, alt`` from the reference point."""
    return ecef_to_enu(*geodetic_to_ecef(lat, lon, alt), lat0, lon0, alt0)


def enu_to_geodetic(e: float, n: float, u: float, lat0: float, lon0: float,
                    alt0: float) -> tuple[float, float, float]:
    """Return latitude, longitude (degrees), altitude (m) of ENU ``e, n, u`` (m)."""
    return ecef_to_geodetic(*enu_to_ecef(e, n, u, lat0, lon0, alt0))


def enu_vertical_at_altitude(e: float, n: float, alt: float, lat0: float, lon0: float,
                             alt0: float) -> tuple[float, float]:
    """Return latitude, longitude (degrees) where the ENU vertical through ``e, n`` is at
    altitude ``alt``.

    :func:`geodetic_to_enu` projects a point onto the tangent plane along the reference
    point's up, which away from it is tilted by ``d / R`` against the local vertical; the
    tangent plane itself (``up = 0``) lies ``d**2 / 2R`` above the ground there (70 m at
    30 km). So the point of ``e, n`` on the ground is found on that line, not at ``up =
    0``: the one at altitude ``alt``, by Newton steps on ``up`` (the altitude grows by
    ``cos(d / R)`` per metre of up: two or three steps reach a micrometre).
    """
    up = 0.0
    latitude, longitude, altitude = enu_to_geodetic(e, n, up, lat0, lon0, alt0)
    for _ in range(_MAX_ITERATIONS):
        if abs(altitude - alt) < _ALTITUDE_TOLERANCE_M:
            break
        up -= altitude - alt
        latitude, longitude, altitude = enu_to_geodetic(e, n, up, lat0, lon0, alt0)
    return latitude, longitude


def ground_vector(lat0: float, lon0: float, lat: float, lon: float) -> tuple[float, float]:
    """Return east, north (m) of ``lat, lon`` from ``lat0, lon0`` on the ground.

    Both points are taken on the ellipsoid (their altitudes left out), so that a receiver's
    altitude noise does not tilt the vector; exact on the tangent plane at the first point,
    which is the ground for points a few hundred metres apart.
    """
    east, north, _ = geodetic_to_enu(lat, lon, 0.0, lat0, lon0, 0.0)
    return east, north


def ground_point(lat: float, lon: float) -> tuple[float, float, float]:
    """Return the ECEF x, y, z (m) of ``lat, lon`` on the ellipsoid (altitude 0).

    What :func:`ground_vector` turns into east and north; see :class:`GroundFrame`.
    """
    return geodetic_to_ecef(lat, lon, 0.0)


class GroundFrame:
    """:func:`ground_vector` from one point to many, its trigonometry done once.

    :meth:`east_north` of :func:`ground_point` ``(lat, lon)`` is
    ``ground_vector(lat0, lon0, lat, lon)`` bit for bit: the same operations in the same
    order, only the origin's ECEF point (:attr:`origin`) and the rotation's sines and
    cosines (:attr:`rotation`) kept.
    """

    __slots__ = ('origin', 'rotation')

    def __init__(self, lat0: float, lon0: float) -> None:
        """Take the tangent plane at ``lat0, lon0`` (degrees) on the ellipsoid."""
        self.origin: tuple[float, float, float] = geodetic_to_ecef(lat0, lon0, 0.0)
        lat, lon = math.radians(lat0), math.radians(lon0)
        sin_lat, cos_lat = math.sin(lat), math.cos(lat)
        sin_lon, cos_lon = math.sin(lon), math.cos(lon)
        # east = e_x dx + e_y dy, north = n_x dx - n_y dy + n_z dz; ecef_to_enu's
        # -sin_lat * cos_lon * dx is (-sin_lat * cos_lon) * dx, so n_x is that product.
        self.rotation: tuple[float, float, float, float, float] = (
            -sin_lon, cos_lon, -sin_lat * cos_lon, sin_lat * sin_lon, cos_lat)

    def east_north(self, x: float, y: float, z: float) -> tuple[float, float]:
        """Return east, north (m) of the ECEF point ``x, y, z`` (a :func:`ground_point`)."""
        x0, y0, z0 = self.origin
        east_x, east_y, north_x, north_y, north_z = self.rotation
        dx, dy, dz = x - x0, y - y0, z - z0
        return east_x * dx + east_y * dy, north_x * dx - north_y * dy + north_z * dz


def moved_by(lat: float, lon: float, east_m: float, north_m: float) -> tuple[float, float]:
    """Return the latitude and longitude (degrees) ``east_m``, ``north_m`` from a point."""
    moved_lat, moved_lon, _ = enu_to_geodetic(east_m, north_m, 0.0, lat, lon, 0.0)
    return moved_lat, moved_lon
