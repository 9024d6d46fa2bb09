"""The robot's motion from its GPS fixes: a least-squares straight line through them.

A velocity taken from two fixes is mostly noise when they are close: two fixes of 0.3 m
accuracy 1 m apart give a direction off by tens of degrees, and looking for the first
pair "far enough apart" picks the pair whose noise happens to be largest. A line fitted
to every fix of a window averages the noise away, and its uncertainty says whether the
robot moved at all: the speed must stand out of it.

A receiver's error is not white: it drifts over seconds to minutes (multipath, the
atmosphere), so ten fixes a second are not ten independent measurements, and their
scatter about a line says little about the error. The uncertainty therefore counts at
most one independent fix per :data:`CORRELATION_S` and takes the noise of one fix as the
larger of its reported accuracy and the scatter; fixes that report none are taken as
:data:`UNKNOWN_SIGMA_M` at least.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
import math

from plant_disease_ros.core.geodesy import ground_vector, GroundFrame, moved_by

# A fix as MotionFit.add_points takes it: stamp (s), its geodesy.ground_point (ECEF
# x, y, z, m) and its reported accuracy (m) or None.
GroundFix = tuple[float, float, float, float, float | None]

# A fitted speed is motion, not noise, when it is this many standard deviations of the
# velocity: the chance that a standing robot's white noise reaches 5 sigma is 4e-6.
SIGNIFICANT_SIGMAS = 5.0
# A direction of travel is taken from a speed this many standard deviations of the
# velocity: its direction is then within about 1/10 rad (6 degrees, one sigma).
HEADING_SIGMAS = 10.0
# The noise of fixes that report no accuracy, when too few fixes say it by their spread.
UNKNOWN_SIGMA_M = 1.0
# The least noise assumed (m): a line through three exact points would otherwise be
# taken as exact.
MIN_SIGMA_M = 0.01
# Fixes closer in time than this (s) are counted as one measurement of the error.
CORRELATION_S = 1.0


@dataclass(frozen=True)
class Motion:
    """A straight-line fit of positions against time near a reference point.

    East and north are metres from ``latitude0``, ``longitude0``; times seconds.
    """

    latitude0: float
    longitude0: float
    time_mean_s: float
    east_mean_m: float
    north_mean_m: float
    velocity_east: float
    velocity_north: float
    sigma_m: float            # the noise of one fix, reported or from the spread
    time_spread_s2: float     # sum of (t - mean t)^2
    count: int
    span_s: float             # last fix time - first fix time
    scatter_m: float = 0.0    # the fixes' spread about the line (0 below three fixes)

    @property
    def independent(self) -> float:
        """Return how many independent measurements the fixes count as (see the module)."""
        return min(float(self.count), self.span_s / CORRELATION_S + 1.0)

    @property
    def speed(self) -> float:
        """Return the fitted speed (m/s)."""
        return math.hypot(self.velocity_east, self.velocity_north)

    @property
    def sigma_velocity(self) -> float:
        """Return the standard deviation of each velocity component (m/s)."""
        return self.sigma_m / math.sqrt(self.time_spread_s2 * self.independent / self.count)

    @property
    def sigma_heading_rad(self) -> float:
        """Return the standard deviation of :attr:`heading_deg` (radians, at most pi)."""
        speed = self.speed
        return math.pi if speed <= 0.0 else min(self.sigma_velocity / speed, math.pi)

    @property
    def moving(self) -> bool:
        """Return whether the speed stands out of the noise (:data:`SIGNIFICANT_SIGMAS`)."""
        return self.speed >= SIGNIFICANT_SIGMAS * self.sigma_velocity

    @property
    def heading_known(self) -> bool:
        """Return whether the direction of travel is known to about 6 degrees."""
        return self.speed >= HEADING_SIGMAS * self.sigma_velocity

    @property
    def heading_deg(self) -> float:
        """Return the direction of travel, degrees clockwise from north."""
        return math.degrees(math.atan2(self.velocity_east, self.velocity_north)) % 360.0

    @property
    def travel_m(self) -> float:
        """Return how far the fitted line goes over the span of the fixes (m)."""
        return self.speed * self.span_s

    def position_at(self, time_s: float) -> tuple[float, float]:
        """Return the latitude and longitude of the fitted line at ``time_s``."""
        offset = time_s - self.time_mean_s
        return moved_by(self.latitude0, self.longitude0,
                        self.east_mean_m + self.velocity_east * offset,
                        self.north_mean_m + self.velocity_north * offset)

    def sigma_at(self, time_s: float) -> float:
        """Return the standard deviation of :meth:`position_at` per axis (m)."""
        offset = time_s - self.time_mean_s
        independent = self.independent
        return self.sigma_m * math.sqrt(
            1.0 / independent
            + offset * offset / (self.time_spread_s2 * independent / self.count))


class MotionFit:
    """Sums for an incremental least-squares line through fixes (east, north vs time)."""

    def __init__(self, latitude0: float, longitude0: float, time0_s: float) -> None:
        """Measure positions from ``latitude0``, ``longitude0`` and times from ``time0_s``."""
        self.latitude0, self.longitude0, self.time0_s = latitude0, longitude0, time0_s
        self.count = 0
        self._t = self._tt = self._e = self._n = 0.0
        self._te = self._tn = self._ee = self._nn = 0.0
        self._first_s = math.inf
        self._last_s = -math.inf
        self._accuracy: float | None = None

    def add(self, stamp_s: float, latitude: float, longitude: float,
            accuracy_m: float | None) -> None:
        """Add one fix."""
        east, north = ground_vector(self.latitude0, self.longitude0, latitude, longitude)
        self.add_ground(stamp_s, east, north, accuracy_m)

    def add_ground(self, stamp_s: float, east: float, north: float,
                   accuracy_m: float | None) -> None:
        """Add one fix given as east, north (m) from ``latitude0``, ``longitude0``.

        ``ground_vector`` of the fix, or ``GroundFrame.east_north`` of its ground point:
        the same numbers, without the trigonometry.
        """
        t = stamp_s - self.time0_s
        self.count += 1
        self._t += t
        self._tt += t * t
        self._e += east
        self._n += north
        self._te += t * east
        self._tn += t * north
        self._ee += east * east
        self._nn += north * north
        self._first_s = min(self._first_s, stamp_s)
        self._last_s = max(self._last_s, stamp_s)
        if accuracy_m is not None:
            self._accuracy = max(self._accuracy or 0.0, accuracy_m)

    def heading_known(self, min_travel_m: float) -> bool:
        """Return whether :meth:`motion` knows its heading and covers ``min_travel_m``.

        ``motion()`` is not ``None``, its ``heading_known`` holds and its ``travel_m`` is at
        least ``min_travel_m``, decided on the same numbers computed the same way (so
        exactly as those would), without building the :class:`Motion`.
        """
        return _heading_known(self.count, self._t, self._tt, self._e, self._n, self._te,
                              self._tn, self._ee, self._nn, self._last_s - self._first_s,
                              self._accuracy, min_travel_m)

    def add_points(self, frame: GroundFrame, points: Sequence[GroundFix],
                   indices: Iterable[int], until_heading_m: float | None = None) -> bool:
        """Add ``points[index]`` for each ``index`` of ``indices``, in turn.

        The same sums as :meth:`add_ground` of each point's ``frame.east_north`` (``frame``:
        the ``GroundFrame`` at ``latitude0``, ``longitude0``), bit for bit, at a fraction of
        the cost. With ``until_heading_m``, stop as soon as
        ``heading_known(until_heading_m)`` holds, before the first point or after any (the
        rest of ``indices`` is not taken), and return whether it does: a search that widens
        a window one fix at a time asks at every step, hundreds when the fixes are too
        noisy for the robot's speed. Without it, add them all and return False.
        """
        if until_heading_m is not None and self.heading_known(until_heading_m):
            return True
        time0 = self.time0_s
        count, t_sum, tt_sum, e_sum, n_sum = self.count, self._t, self._tt, self._e, self._n
        te_sum, tn_sum, ee_sum, nn_sum = self._te, self._tn, self._ee, self._nn
        first_s, last_s, accuracy = self._first_s, self._last_s, self._accuracy
        x0, y0, z0 = frame.origin
        east_x, east_y, north_x, north_y, north_z = frame.rotation
        known = False
        for index in indices:
            stamp_s, x, y, z, accuracy_m = points[index]
            # GroundFrame.east_north, then add_ground, spelled out: the same operations.
            dx, dy, dz = x - x0, y - y0, z - z0
            east = east_x * dx + east_y * dy
            north = north_x * dx - north_y * dy + north_z * dz
            t = stamp_s - time0
            count += 1
            t_sum += t
            tt_sum += t * t
            e_sum += east
            n_sum += north
            te_sum += t * east
            tn_sum += t * north
            ee_sum += east * east
            nn_sum += north * north
            if stamp_s < first_s:      # min() and max() as add_ground takes them
                first_s = stamp_s
            if stamp_s > last_s:
                last_s = stamp_s
            if accuracy_m is not None:
                floor = accuracy or 0.0
                accuracy = accuracy_m if accuracy_m > floor else floor
            if until_heading_m is not None and _heading_known(
                    count, t_sum, tt_sum, e_sum, n_sum, te_sum, tn_sum, ee_sum, nn_sum,
                    last_s - first_s, accuracy, until_heading_m):
                known = True
                break
        self.count, self._t, self._tt, self._e, self._n = count, t_sum, tt_sum, e_sum, n_sum
        self._te, self._tn, self._ee, self._nn = te_sum, tn_sum, ee_sum, nn_sum
        self._first_s, self._last_s, self._accuracy = first_s, last_s, accuracy
        return known

    def motion(self) -> Motion | None:
        """Return the fitted line, or ``None`` below two fixes at different times."""
        count = self.count
        if count < 2:
            return None
        spread = self._tt - self._t * self._t / count
        if spread <= 1e-12:
            return None
        velocity_east = (self._te - self._t * self._e / count) / spread
        velocity_north = (self._tn - self._t * self._n / count) / spread
        residual = ((self._ee - self._e * self._e / count) - velocity_east ** 2 * spread
                    + (self._nn - self._n * self._n / count) - velocity_north ** 2 * spread)
        spread_sigma = (math.sqrt(max(residual, 0.0) / (2 * (count - 2)))
                        if count > 2 else 0.0)
        reported = UNKNOWN_SIGMA_M if self._accuracy is None else self._accuracy
        sigma = max(reported, spread_sigma, MIN_SIGMA_M)
        return Motion(self.latitude0, self.longitude0,
                      self.time0_s + self._t / count, self._e / count, self._n / count,
                      velocity_east, velocity_north, sigma, spread, count,
                      self._last_s - self._first_s, spread_sigma)


def _heading_known(count: int, t: float, tt: float, e: float, n: float, te: float, tn: float,
                   ee: float, nn: float, span_s: float, accuracy: float | None,
                   min_travel_m: float) -> bool:
    """Return whether the line of these sums knows its heading and covers ``min_travel_m``.

    :meth:`MotionFit.motion` and :class:`Motion`'s ``heading_known`` and ``travel_m``,
    each number computed as they compute it, so that the answer is theirs exactly.
    """
    if count < 2:
        return False
    spread = tt - t * t / count
    if spread <= 1e-12:
        return False
    velocity_east = (te - t * e / count) / spread
    velocity_north = (tn - t * n / count) / spread
    speed = math.hypot(velocity_east, velocity_north)
    if not speed * span_s >= min_travel_m:
        return False
    residual = ((ee - e * e / count) - velocity_east ** 2 * spread
                + (nn - n * n / count) - velocity_north ** 2 * spread)
    spread_sigma = math.sqrt(max(residual, 0.0) / (2 * (count - 2))) if count > 2 else 0.0
    reported = UNKNOWN_SIGMA_M if accuracy is None else accuracy
    sigma = max(reported, spread_sigma, MIN_SIGMA_M)
    independent = min(float(count), span_s / CORRELATION_S + 1.0)
    return speed >= HEADING_SIGMAS * (sigma / math.sqrt(spread * independent / count))
