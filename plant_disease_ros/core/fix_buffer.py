"""GPS fixes: validation, a short buffer ordered by stamp, and position lookup at a stamp.

A classified frame is tagged with the position at the image's stamp. The buffer holds the
recent fixes sorted by stamp (they may arrive out of order) and answers a lookup with the
position interpolated between the fixes around the stamp, the nearest fix's position
carried on along the robot's recent motion (a GPS dropout), the nearest usable fix, or
the reason there is none. It never hands out a fix from after the stamp while a later fix may
still come: a caller that can wait asks with ``final=False`` and gets ``'pending'``.
"""

from __future__ import annotations

from bisect import bisect_left, bisect_right
from collections.abc import Iterator
from dataclasses import dataclass
import math

from plant_disease_ros.core.geodesy import ground_point, GroundFrame
from plant_disease_ros.core.motion import GroundFix, Motion, MotionFit

# NavSatStatus.STATUS_NO_FIX is -1; every status below 0 means no usable position.
MAX_ABS_LATITUDE_DEG = 90.0
MAX_ABS_LONGITUDE_DEG = 180.0
MAX_ABS_ALTITUDE_M = 1e5

LOOKUP_STATUSES = ('interpolated', 'extrapolated', 'nearest', 'stale', 'none', 'pending')

# Fixes farther apart in time than this are never joined into a direction of travel: the
# robot may have turned in place between them.
COURSE_MAX_SPAN_S = 30.0
# A position is carried on from the nearest fix along the line fitted through the fixes
# of this many seconds before (or after) it: the robot's recent motion.
MOTION_WINDOW_S = 5.0
# ... and only when that line fits them: fixes scattered about it by more than this many
# times their reported accuracy (at least 5 cm) show a stop or a turn in the window.
MOTION_FIT_TOLERANCE = 3.0
MOTION_FIT_FLOOR_M = 0.05
# A robot whose fixes within this many seconds of a frame's stamp show it slower than
# STANDING_SPEED_M_S (even at three sigma) stands: no direction of travel, whatever it
# drove before (it may have turned in place since). Slow enough that a robot scanning a
# row at a few centimetres a second still drives.
STANDING_WINDOW_S = 2.0
STANDING_SPEED_M_S = 0.03


@dataclass(frozen=True)
class GeoFix:
    """One validated GPS fix: WGS84 degrees, metres above the ellipsoid, stamp in seconds.

    ``altitude`` is NaN when the receiver gave none (a 2-D fix), as in
    ``sensor_msgs/NavSatFix``; latitude and longitude are always finite. ``status`` and
    ``service`` are the receiver's, as NavSatStatus numbers them (0 a plain fix, 1 with
    satellite-based, 2 with ground-based augmentation such as RTK; services a bit mask,
    1 GPS): a position made from several fixes has the worst status and every service.
    """

    stamp_s: float
    latitude: float
    longitude: float
    altitude: float
    horizontal_accuracy_m: float | None = None
    status: int = 0
    service: int = 1


# A fix whose reported 1-sigma horizontal accuracy is worse than this (m) is not used:
# a receiver still converging, or multipath under trees, would put detections metres off
# (cells are 2 m) and, first of a run, move the map's origin there.
DEFAULT_MAX_FIX_ACCURACY_M = 50.0


# The rejection reason of a fix whose header stamp is exactly zero (sec 0, nanosec 0): a
# driver that did not fill it. Such a fix has no place in time: it cannot be matched to an
# image stamp and must not be taken for a jump back in time.
UNSTAMPED_REASON = 'unstamped'


def fix_rejection_reason(status: int, latitude: float, longitude: float,
                         altitude: float) -> str | None:
    """Return why a fix must not be used (``'no_fix'``, ``'non_finite'``, ``'out_of_range'``).

    Return ``None`` for a usable fix. ``status`` is ``NavSatStatus.status``: below zero
    means the receiver has no fix. A NaN altitude is NavSatFix's "no altitude available":
    the fix is still usable for its latitude and longitude (an infinite altitude is not).
    """
    if status < 0:
        return 'no_fix'
    if not (math.isfinite(latitude) and math.isfinite(longitude)
            and (math.isfinite(altitude) or math.isnan(altitude))):
        return 'non_finite'
    if (abs(latitude) > MAX_ABS_LATITUDE_DEG or abs(longitude) > MAX_ABS_LONGITUDE_DEG
            or abs(altitude) > MAX_ABS_ALTITUDE_M):
        return 'out_of_range'
    return None


@dataclass(frozen=True)
class FixLookup:
    """The answer to a position lookup at a stamp.

    ``status`` is one of ``LOOKUP_STATUSES``. ``fix`` is the position to use, set only for
    ``'interpolated'``, ``'extrapolated'`` and ``'nearest'``. ``age_s`` is the time between
    the stamp and the farthest fix the position was made from (for ``'extrapolated'``,
    ``'nearest'`` and ``'stale'``: the nearest fix); ``None`` when there is no fix to
    measure from. ``camera_offset`` says whether the position was moved from the antenna to
    the camera's view (see ``core.camera_offset``): ``'none'`` (no offset set, or no
    position), ``'applied'`` (``heading_deg`` the direction of travel used) or
    ``'no_heading'`` (the antenna's position, its accuracy widened).
    """

    status: str
    fix: GeoFix | None
    age_s: float | None
    camera_offset: str = 'none'
    heading_deg: float | None = None

    @property
    def located(self) -> bool:
        """Return whether the lookup gave a position."""
        return self.fix is not None


def _interpolate_altitude(before: float, after: float, weight: float) -> float:
    """Return the altitude at ``weight`` between two; NaN (unknown) ones are left out.

    When one fix has no altitude the other's is used (the altitude changes little between
    fixes a few seconds apart); when neither has one the result is NaN (unknown).
    """
    if math.isnan(before):
        return after
    if math.isnan(after):
        return before
    return before + weight * (after - before)


def _interpolate(before: GeoFix, after: GeoFix, stamp_s: float) -> GeoFix:
    """Return the fix linearly interpolated at ``stamp_s`` between two fixes.

    The altitude is that of :func:`_interpolate_altitude`: NaN only when both lack one.
    """
    span = after.stamp_s - before.stamp_s
    if span <= 0.0:
        return GeoFix(stamp_s, before.latitude, before.longitude, before.altitude,
                      before.horizontal_accuracy_m, before.status, before.service)
    weight = (stamp_s - before.stamp_s) / span
    delta_longitude = after.longitude - before.longitude
    # Across the antimeridian the short way round is the one the robot drove.
    if delta_longitude > 180.0:
        delta_longitude -= 360.0
    elif delta_longitude < -180.0:
        delta_longitude += 360.0
    longitude = before.longitude + weight * delta_longitude
    if longitude > 180.0:
        longitude -= 360.0
    elif longitude < -180.0:
        longitude += 360.0
    accuracies = [value for value in (before.horizontal_accuracy_m,
                                      after.horizontal_accuracy_m) if value is not None]
    # The conservative choice: an interpolated position is no better than its worse fix.
    accuracy = max(accuracies) if accuracies else None
    return GeoFix(
        stamp_s=stamp_s,
        latitude=before.latitude + weight * (after.latitude - before.latitude),
        longitude=longitude,
        altitude=_interpolate_altitude(before.altitude, after.altitude, weight),
        horizontal_accuracy_m=accuracy,
        status=min(before.status, after.status),
        service=before.service | after.service,
    )


class FixBuffer:
    """Keep the newest ``capacity`` fixes sorted by stamp and look positions up by stamp."""

    def __init__(self, max_fix_age_s: float = 2.0, capacity: int = 200) -> None:
        """Create an empty buffer; fixes farther than ``max_fix_age_s`` from a stamp are stale."""
        if not max_fix_age_s >= 0.0:
            raise ValueError(f'max_fix_age_s must be >= 0, got {max_fix_age_s}')
        if capacity < 1:
            raise ValueError(f'capacity must be >= 1, got {capacity}')
        self.max_fix_age_s = float(max_fix_age_s)
        self.capacity = int(capacity)
        self._stamps: list[float] = []
        self._fixes: list[GeoFix] = []
        # Each fix as the fits take it (stamp, ground_point, accuracy), its ground point
        # computed once as it comes: the fits of every lookup and heading turn it into
        # east and north without trigonometry (GroundFrame). Kept beside _fixes.
        self._points: list[GroundFix] = []

    def __len__(self) -> int:
        """Return the number of fixes held."""
        return len(self._fixes)

    @property
    def newest_stamp_s(self) -> float | None:
        """Return the stamp of the newest fix, or ``None`` when the buffer is empty."""
        return self._stamps[-1] if self._stamps else None

    def snapshot(self) -> list[GeoFix]:
        """Return the fixes held, oldest first (a copy)."""
        return list(self._fixes)

    def discard(self, stamp_s: float) -> bool:
        """Forget the fix stamped ``stamp_s``; return whether there was one."""
        index = bisect_left(self._stamps, stamp_s)
        if index < len(self._stamps) and self._stamps[index] == stamp_s:
            del self._stamps[index]
            del self._fixes[index]
            del self._points[index]
            return True
        return False

    def clear(self) -> None:
        """Forget every fix (e.g. after a jump back in time on bag replay)."""
        self._stamps.clear()
        self._fixes.clear()
        self._points.clear()

    def add(self, fix: GeoFix) -> None:
        """Insert ``fix`` in stamp order; a fix with the stamp of a held one replaces it."""
        index = bisect_left(self._stamps, fix.stamp_s)
        point = (fix.stamp_s, *ground_point(fix.latitude, fix.longitude),
                 fix.horizontal_accuracy_m)
        if index < len(self._stamps) and self._stamps[index] == fix.stamp_s:
            self._fixes[index] = fix
            self._points[index] = point
            return
        self._stamps.insert(index, fix.stamp_s)
        self._fixes.insert(index, fix)
        self._points.insert(index, point)
        if len(self._fixes) > self.capacity:
            # The oldest fix goes: lookups are for recent frames.
            del self._stamps[0]
            del self._fixes[0]
            del self._points[0]

    def lookup(self, stamp_s: float, final: bool = True) -> FixLookup:
        """Return the position at ``stamp_s``.

        ``'interpolated'`` when fixes at or before and at or after the stamp are both within
        ``max_fix_age_s``; ``'pending'`` (only with ``final=False``) when no fix at or after
        the stamp has arrived yet; otherwise the nearest fix within ``max_fix_age_s`` (the
        older one on a tie): ``'extrapolated'``, carried on to the stamp along the robot's
        motion before (after) it, or ``'nearest'``, as it is, where the robot stood;
        ``'stale'`` when no fix is that close, and ``'none'`` when the buffer is empty.
        """
        if not self._fixes:
            return FixLookup('none', None, None)
        # before: newest fix at or before the stamp; after: oldest fix at or after it.
        index_after = bisect_left(self._stamps, stamp_s)
        index_before = bisect_right(self._stamps, stamp_s) - 1
        before = self._fixes[index_before] if index_before >= 0 else None
        after = self._fixes[index_after] if index_after < len(self._fixes) else None
        if after is None and not final:
            return FixLookup('pending', None, None)
        age_before = stamp_s - before.stamp_s if before is not None else math.inf
        age_after = after.stamp_s - stamp_s if after is not None else math.inf
        limit = self.max_fix_age_s
        if before is not None and after is not None and max(age_before, age_after) <= limit:
            if before is after:
                return FixLookup('interpolated', before, 0.0)
            return FixLookup('interpolated', _interpolate(before, after, stamp_s),
                             max(age_before, age_after))
        nearest, age = (before, age_before) if age_before <= age_after else (after, age_after)
        if age <= limit:
            index = index_before if nearest is before else index_after
            carried = self._carried_on(index, stamp_s, -1 if nearest is before else 1)
            if carried is not None:
                return FixLookup('extrapolated', carried, age)
            return FixLookup('nearest', nearest, age)
        return FixLookup('stale', None, age)

    def _carried_on(self, index: int, stamp_s: float, step: int) -> GeoFix | None:
        """Return the position at ``stamp_s`` on the line the robot drove up to fix ``index``.

        The line is fitted through that fix and the fixes of the :data:`MOTION_WINDOW_S`
        before it (``step`` -1) or after it (+1) (``core.motion``): a GPS dropout mid-row
        leaves the robot driving on, and the frames of the gap are placed where it went,
        not where the fix before it was. ``None`` when the fitted speed does not stand out
        of the fixes' noise (the robot stands, or too few fixes) or the fixes are no
        straight line (a stop or a turn in the window). The altitude stays the fix's:
        carrying its noise on would multiply it. The accuracy is the worse of the fix's and
        the line's at the stamp, plus half the distance carried (a stop or a turn in the
        gap cannot be seen); unknown stays unknown.
        """
        anchor = self._fixes[index]
        fit, frame = self._new_fit(index, anchor.stamp_s)
        other = index
        while (0 <= other < len(self._fixes)
               and abs(self._stamps[other] - anchor.stamp_s) <= MOTION_WINDOW_S):
            other += step
        fit.add_points(frame, self._points, range(index, other, step))
        motion = fit.motion()
        if motion is None or not motion.moving:
            return None
        reported = anchor.horizontal_accuracy_m
        if motion.scatter_m > MOTION_FIT_TOLERANCE * max(reported or 0.0, MOTION_FIT_FLOOR_M):
            return None   # not a straight line: the robot stopped or turned in the window
        latitude, longitude = motion.position_at(stamp_s)
        accuracy = None
        if reported is not None:
            # The robot may have stopped or turned in the gap: the truth lies somewhere
            # between the fix and the point carried to, half the carried distance away.
            carried_m = motion.speed * abs(stamp_s - anchor.stamp_s)
            accuracy = max(reported, motion.sigma_at(stamp_s)) + carried_m / 2.0
        return GeoFix(stamp_s, latitude, longitude, anchor.altitude, accuracy,
                      anchor.status, anchor.service)

    def course_at(self, stamp_s: float, min_travel_m: float,
                  max_span_s: float = COURSE_MAX_SPAN_S) -> float | None:
        """Return the direction of travel at ``stamp_s``, degrees clockwise from north.

        See :meth:`heading_at`; ``None`` where it finds none.
        """
        motion = self.heading_at(stamp_s, min_travel_m, max_span_s)
        return None if motion is None else motion.heading_deg

    def heading_at(self, stamp_s: float, min_travel_m: float,
                   max_span_s: float = COURSE_MAX_SPAN_S) -> Motion | None:
        """Return the line whose direction is the direction of travel at ``stamp_s``.

        A straight line is fitted through the fixes around the stamp (``core.motion``),
        widened by the nearer (in time) of the next older and next newer fix until the
        fitted speed stands out of the fixes' noise enough to give its direction (within
        about 6 degrees, ``Motion.heading_known``) and the line covers ``min_travel_m``.
        ``None`` when the fixes within :data:`STANDING_WINDOW_S` of the stamp show the
        robot standing (it may have turned in place since it last drove), or no window of
        at most ``max_span_s`` gets there: the robot stood for long, or the fixes are too
        noisy for its speed. That takes every fix of ``max_span_s``, each an O(1) step on
        the fit's sums (``MotionFit.add_points``): some 0.17 ms for 200 fixes on an x86
        core (``benchmarks/results/2026-12-07-heading-search.md``).
        """
        count = len(self._fixes)
        if count < 2 or self._standing(stamp_s):
            return None
        stamps = self._stamps
        first = max(bisect_right(stamps, stamp_s) - 1, 0)
        last = min(bisect_left(stamps, stamp_s), count - 1)
        if stamps[last] - stamps[first] > max_span_s:
            # The fixes around the stamp are too far apart to join: start from the nearer.
            first = last = first if stamp_s - stamps[first] <= stamps[last] - stamp_s else last
        fit, frame = self._new_fit(first, stamp_s)
        fit.add_points(frame, self._points, range(first, last + 1))
        # Undecided (fixes too noisy for the robot's speed) this takes every fix of
        # max_span_s, hundreds: MotionFit decides on its sums, no Motion built per step.
        if not fit.add_points(frame, self._points,
                              self._widening(stamp_s, first, last, max_span_s),
                              until_heading_m=min_travel_m):
            return None
        return fit.motion()

    def _widening(self, stamp_s: float, first: int, last: int,
                  max_span_s: float) -> Iterator[int]:
        """Yield the fixes that widen window ``first``..``last`` around ``stamp_s``, in turn.

        Each is the nearer (in time) of the next older and the next newer fix, the older
        one on a tie, as long as the window spans at most ``max_span_s``.
        """
        stamps = self._stamps
        newest = len(stamps) - 1
        while True:
            back = (stamp_s - stamps[first - 1]
                    if first > 0 and stamps[last] - stamps[first - 1] <= max_span_s
                    else math.inf)
            ahead = (stamps[last + 1] - stamp_s
                     if last < newest and stamps[last + 1] - stamps[first] <= max_span_s
                     else math.inf)
            if back == ahead == math.inf:
                return
            if back <= ahead:
                first -= 1
                yield first
            else:
                last += 1
                yield last

    def _standing(self, stamp_s: float) -> bool:
        """Return whether the fixes near ``stamp_s`` show the robot standing (see above)."""
        low = bisect_left(self._stamps, stamp_s - STANDING_WINDOW_S)
        high = bisect_right(self._stamps, stamp_s + STANDING_WINDOW_S)
        if high - low < 2:
            return False
        fit, frame = self._new_fit(low, stamp_s)
        fit.add_points(frame, self._points, range(low, high))
        motion = fit.motion()
        return (motion is not None
                and motion.speed + 3.0 * motion.sigma_velocity < STANDING_SPEED_M_S)

    def _new_fit(self, origin: int, time0_s: float) -> tuple[MotionFit, GroundFrame]:
        """Return an empty fit measured from fix ``origin`` and ``time0_s``, and its frame.

        ``fit.add_points(frame, self._points, indices)`` adds fixes to it: the same sums as
        ``fit.add`` of each fix, bit for bit, without its trigonometry (``GroundFrame``).
        """
        fix = self._fixes[origin]
        return (MotionFit(fix.latitude, fix.longitude, time0_s),
                GroundFrame(fix.latitude, fix.longitude))
