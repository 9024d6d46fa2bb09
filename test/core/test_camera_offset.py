"""The camera's offset from the GPS antenna: detections where the camera looks."""

from __future__ import annotations

import math

import pytest

from plant_disease_ros.core.camera_offset import CameraOffset, check_offset
from plant_disease_ros.core.fix_buffer import FixBuffer, FixLookup, GeoFix
from plant_disease_ros.core.fix_wait import FixWait
from plant_disease_ros.core.geodesy import ground_vector, moved_by

LAT0, LON0 = 48.0, 11.0


def fix_at(stamp_s: float, east_m: float, north_m: float,
           accuracy_m: float | None = 0.02) -> GeoFix:
    """A fix ``east_m``, ``north_m`` from the origin (an RTK receiver by default)."""
    latitude, longitude = moved_by(LAT0, LON0, east_m, north_m)
    return GeoFix(stamp_s, latitude, longitude, 500.0, accuracy_m)


def ground_of(fix: GeoFix) -> tuple[float, float]:
    """East, north (m) of ``fix`` from the origin."""
    return ground_vector(LAT0, LON0, fix.latitude, fix.longitude)


def turn_between(course: float | None, heading: float) -> float:
    """Degrees between two compass bearings (359.9 and 0 are 0.1 apart)."""
    assert course is not None
    difference = abs(course - heading) % 360.0
    return min(difference, 360.0 - difference)


def drive(buffer: FixBuffer, start_s: float, start: tuple[float, float],
          velocity: tuple[float, float], seconds: float, rate_hz: float = 5.0) -> None:
    """Add the fixes of a drive at constant ``velocity`` (m/s east, north)."""
    for step in range(int(seconds * rate_hz) + 1):
        t = step / rate_hz
        buffer.add(fix_at(start_s + t, start[0] + velocity[0] * t,
                          start[1] + velocity[1] * t))


@pytest.mark.parametrize(('heading', 'forward', 'left', 'expected'), [
    (0.0, 1.0, 0.0, (0.0, 1.0)), (90.0, 1.0, 0.0, (1.0, 0.0)),
    (180.0, 1.0, 0.0, (0.0, -1.0)), (270.0, 1.0, 0.0, (-1.0, 0.0)),
    (0.0, 0.0, 1.0, (-1.0, 0.0)), (90.0, 0.0, 1.0, (0.0, 1.0)),
    (45.0, 2.0, 0.0, (math.sqrt(2.0), math.sqrt(2.0))),
])
def test_forward_and_left_turn_with_the_heading(heading: float, forward: float, left: float,
                                                expected: tuple[float, float]) -> None:
    east, north = CameraOffset(forward, left).east_north(heading)
    assert (east, north) == pytest.approx(expected, abs=1e-12)


@pytest.mark.parametrize(('velocity', 'heading'), [
    ((0.0, 1.0), 0.0), ((1.0, 0.0), 90.0), ((0.0, -1.0), 180.0), ((-1.0, 0.0), 270.0),
    ((1.0, 1.0), 45.0)])
def test_course_is_the_direction_of_travel(velocity: tuple[float, float],
                                           heading: float) -> None:
    buffer = FixBuffer(max_fix_age_s=2.0)
    drive(buffer, 100.0, (0.0, 0.0), velocity, seconds=10.0)
    # (Along a parallel the tangent plane at a fix turns by a few 1e-5 degrees.)
    assert turn_between(buffer.course_at(105.1, min_travel_m=1.0), heading) < 1e-3


def test_one_plant_lands_in_one_place_up_and_down_the_row() -> None:
    """The camera 1.5 m ahead sees the plant at north 10 m: the antenna is at 8.5 m going
    up the row and at 11.5 m coming back. Both detections must land on the plant."""
    buffer = FixBuffer(max_fix_age_s=2.0)
    drive(buffer, 0.0, (0.0, 0.0), (0.0, 1.0), seconds=20.0)        # up: north 0 -> 20
    drive(buffer, 21.0, (0.5, 20.0), (0.0, -1.0), seconds=20.0)     # down, 0.5 m east
    wait: FixWait[str] = FixWait(buffer, camera_offset=CameraOffset(1.5, 0.0))
    (_, up), = wait.add('up', stamp_s=8.5, now_s=0.0, wait_s=0.3)
    (_, down), = wait.add('down', stamp_s=21.0 + 8.5, now_s=0.0, wait_s=0.3)
    assert (up.camera_offset, down.camera_offset) == ('applied', 'applied')
    assert turn_between(up.heading_deg, 0.0) < 1e-4
    assert turn_between(down.heading_deg, 180.0) < 1e-4
    assert ground_of(up.fix) == pytest.approx((0.0, 10.0), abs=0.005)
    assert ground_of(down.fix) == pytest.approx((0.5, 10.0), abs=0.005)
    # Without the offset the two are 3 m apart, more than a map cell.
    plain: FixWait[str] = FixWait(buffer)
    (_, antenna_up), = plain.add('up', stamp_s=8.5, now_s=0.0, wait_s=0.3)
    assert ground_of(antenna_up.fix) == pytest.approx((0.0, 8.5), abs=0.005)
    assert antenna_up.camera_offset == 'none' and antenna_up.heading_deg is None


def test_a_camera_beside_the_antenna_looks_left_of_the_travel() -> None:
    buffer = FixBuffer(max_fix_age_s=2.0)
    drive(buffer, 0.0, (0.0, 0.0), (1.0, 0.0), seconds=10.0)        # east
    lookup = CameraOffset(0.0, 2.0).apply(buffer.lookup(5.0), 5.0, buffer)
    assert ground_of(lookup.fix) == pytest.approx((5.0, 2.0), abs=0.005)   # left = north


def test_a_standing_robot_keeps_the_antenna_position_with_a_wider_accuracy() -> None:
    buffer = FixBuffer(max_fix_age_s=2.0)
    for step in range(20):
        buffer.add(fix_at(step * 0.2, 0.001 * (step % 3), 0.0, accuracy_m=0.02))
    lookup = CameraOffset(1.5, 2.0).apply(buffer.lookup(2.0), 2.0, buffer)
    assert lookup.camera_offset == 'no_heading' and lookup.heading_deg is None
    assert ground_of(lookup.fix) == pytest.approx(ground_of(buffer.lookup(2.0).fix))
    assert lookup.fix.horizontal_accuracy_m == pytest.approx(0.02 + 2.5)


def test_unknown_accuracy_stays_unknown_without_a_heading() -> None:
    buffer = FixBuffer(max_fix_age_s=2.0)
    buffer.add(fix_at(1.0, 0.0, 0.0, accuracy_m=None))
    lookup = CameraOffset(1.0, 0.0).apply(buffer.lookup(1.0), 1.0, buffer)
    assert lookup.camera_offset == 'no_heading'
    assert lookup.fix.horizontal_accuracy_m is None


def test_a_robot_that_stopped_has_no_heading_until_it_drives_again() -> None:
    """North, a stop of 6 s (a pivot, perhaps), then south: while it stands the heading
    of the drive before is not used (it may have turned in place); driving again, the
    new direction. Before, the old heading held for 30 s: the view was put 2 x the
    offset wrong once the robot came back down the next row."""
    buffer = FixBuffer(max_fix_age_s=2.0, capacity=1000)
    drive(buffer, 0.0, (0.0, 0.0), (0.0, 1.0), seconds=20.0)
    drive(buffer, 20.2, (0.0, 20.0), (0.0, 0.0), seconds=6.0)       # stands 20-26 s
    drive(buffer, 26.4, (2.0, 20.0), (0.0, -1.0), seconds=20.0)     # back south
    assert turn_between(buffer.course_at(10.0, min_travel_m=1.0), 0.0) < 1e-4
    assert buffer.course_at(23.0, min_travel_m=1.0) is None
    assert turn_between(buffer.course_at(35.0, min_travel_m=1.0), 180.0) < 1e-4
    lookup = CameraOffset(1.5, 0.0).apply(buffer.lookup(23.0), 23.0, buffer)
    assert lookup.camera_offset == 'no_heading'


def test_a_robot_scanning_a_row_slowly_still_has_its_heading() -> None:
    """RTK fixes at 5 cm/s (a phenotyping robot's scan): moving, not standing."""
    buffer = FixBuffer(max_fix_age_s=2.0, capacity=1000)
    drive(buffer, 0.0, (0.0, 0.0), (0.05, 0.0), seconds=60.0)
    assert turn_between(buffer.course_at(30.0, min_travel_m=1.0), 90.0) < 1.0


def test_fixes_too_far_apart_are_not_joined_into_a_heading() -> None:
    """The fixes stop at 20 s and come back 60 s later on the next row east: a frame at
    20.5 s takes no direction from the 60 s gap."""
    buffer = FixBuffer(max_fix_age_s=2.0, capacity=1000)
    drive(buffer, 0.0, (0.0, 0.0), (0.0, 1.0), seconds=20.0)
    drive(buffer, 80.0, (30.0, 20.0), (0.0, -1.0), seconds=10.0)
    assert turn_between(buffer.course_at(20.5, min_travel_m=1.0), 0.0) < 1e-4


def test_min_travel_decides_between_a_heading_and_none() -> None:
    """RTK fixes at 0.2 m/s: 1 s either side is 0.4 m of travel."""
    buffer = FixBuffer(max_fix_age_s=2.0)
    drive(buffer, 0.0, (0.0, 0.0), (0.2, 0.0), seconds=2.0)
    assert turn_between(buffer.course_at(1.0, min_travel_m=0.3), 90.0) < 0.01
    assert buffer.course_at(1.0, min_travel_m=1.0) is None


def test_a_long_boom_offset_widens_the_accuracy_by_the_heading_uncertainty() -> None:
    """A camera 30 m left on a boom: a heading good to a few degrees still moves the view
    by metres, and the detection says so."""
    rng = __import__('random').Random(3)
    buffer = FixBuffer(max_fix_age_s=2.0)
    for step in range(51):
        t = step * 0.2
        buffer.add(fix_at(t, rng.gauss(0.0, 0.3), 0.5 * t + rng.gauss(0.0, 0.3),
                          accuracy_m=0.3))
    near = CameraOffset(1.0, 0.0).apply(buffer.lookup(5.0), 5.0, buffer)
    boom = CameraOffset(0.0, 30.0).apply(buffer.lookup(5.0), 5.0, buffer)
    assert (near.camera_offset, boom.camera_offset) == ('applied', 'applied')
    assert 0.3 < near.fix.horizontal_accuracy_m < 0.5
    assert boom.fix.horizontal_accuracy_m > 1.5


def test_noisy_fixes_need_more_travel() -> None:
    """At 1 m accuracy and 1.2 m/s, 3 s of fixes at 1 Hz give no heading; 10 s do: the
    fitted speed must stand 10 sigma out of the velocity's noise."""
    buffer = FixBuffer(max_fix_age_s=2.0)
    for step in range(11):
        buffer.add(fix_at(float(step), 0.0, 1.2 * step, accuracy_m=1.0))
    # Within +-1.5 s of the stamp: four fixes, a velocity sigma of 0.45 m/s.
    assert buffer.course_at(5.0, min_travel_m=1.0, max_span_s=3.0) is None
    assert turn_between(buffer.course_at(5.0, min_travel_m=1.0, max_span_s=10.0), 0.0) < 1e-6


def test_no_offset_leaves_the_lookup_as_it_is() -> None:
    buffer = FixBuffer(max_fix_age_s=2.0)
    drive(buffer, 0.0, (0.0, 0.0), (0.0, 1.0), seconds=4.0)
    lookup = buffer.lookup(2.0)
    assert CameraOffset().apply(lookup, 2.0, buffer) is lookup
    unlocated = FixLookup('stale', None, 5.0)
    assert CameraOffset(1.0, 0.0).apply(unlocated, 9.0, buffer) is unlocated


def test_across_the_antimeridian() -> None:
    buffer = FixBuffer(max_fix_age_s=2.0)
    for step in range(5):
        buffer.add(GeoFix(float(step), 0.0, 179.99999 + step * 1e-6 * 9, 0.0, 0.02))
    lookup = CameraOffset(5.0, 0.0).apply(buffer.lookup(4.0), 4.0, buffer)
    assert lookup.heading_deg == pytest.approx(90.0, abs=0.01)
    assert -180.0 < lookup.fix.longitude < -179.9999   # 5 m east of 179.999 ... went over


def test_a_restart_settles_with_the_heading_of_the_fixes_it_forgets() -> None:
    buffer = FixBuffer(max_fix_age_s=2.0)
    drive(buffer, 0.0, (0.0, 0.0), (0.0, 1.0), seconds=5.0)
    wait: FixWait[str] = FixWait(buffer, camera_offset=CameraOffset(1.0, 0.0))
    assert wait.add('late', stamp_s=5.1, now_s=0.0, wait_s=1.0) == []
    settled, dropped = wait.restart()
    assert dropped == 26
    ((item, lookup),) = settled
    # Carried on 0.1 s past the last fix at 1 m/s, then 1 m ahead.
    assert (item, lookup.status, lookup.camera_offset) == ('late', 'extrapolated', 'applied')
    assert ground_of(lookup.fix) == pytest.approx((0.0, 6.1), abs=0.005)


@pytest.mark.parametrize('value', [[1.0], [1.0, 2.0, 3.0], [math.nan, 0.0], [0.0, math.inf],
                                   [101.0, 0.0], [True, False], 'abc', 1.5, None])
def test_unusable_offsets_are_refused(value: object) -> None:
    reason = check_offset(value)
    assert reason is not None and reason.startswith('camera_offset_m')


@pytest.mark.parametrize('value', [[0.0, 0.0], [1, 0], (-2.5, 100.0)])
def test_usable_offsets_pass(value: object) -> None:
    assert check_offset(value) is None


def test_min_travel_must_be_positive() -> None:
    with pytest.raises(ValueError, match='min_travel_m'):
        CameraOffset(1.0, 0.0, min_travel_m=0.0)
