"""The robot's motion from noisy fixes: a line through them, and whether it moved at all."""

from __future__ import annotations

import math
import random

import pytest

from plant_disease_ros.core.fix_buffer import FixBuffer, GeoFix
from plant_disease_ros.core.geodesy import ground_vector, moved_by
from plant_disease_ros.core.motion import MotionFit

LAT0, LON0 = 40.08, -88.22


def noisy_drive(seed: int, speed: float, sigma: float, seconds: float = 20.0,
                rate_hz: float = 5.0, heading_deg: float = 270.0) -> FixBuffer:
    """Fixes of a drive at ``speed`` m/s towards ``heading_deg``, each off by N(0, sigma)."""
    rng = random.Random(seed)
    buffer = FixBuffer(max_fix_age_s=2.0)
    heading = math.radians(heading_deg)
    for step in range(int(seconds * rate_hz) + 1):
        t = step / rate_hz
        east = speed * t * math.sin(heading) + rng.gauss(0.0, sigma)
        north = speed * t * math.cos(heading) + rng.gauss(0.0, sigma)
        latitude, longitude = moved_by(LAT0, LON0, east, north)
        buffer.add(GeoFix(t, latitude, longitude, 190.0, sigma))
    return buffer


def test_a_line_through_exact_fixes() -> None:
    fit = MotionFit(LAT0, LON0, 100.0)
    for step in range(5):
        latitude, longitude = moved_by(LAT0, LON0, 0.5 * step, -1.0 * step)
        fit.add(100.0 + step, latitude, longitude, 0.05)
    motion = fit.motion()
    assert motion is not None and motion.count == 5 and motion.span_s == 4.0
    assert (motion.velocity_east, motion.velocity_north) == pytest.approx((0.5, -1.0),
                                                                          abs=1e-6)
    assert motion.moving and motion.travel_m == pytest.approx(4.0 * math.hypot(0.5, 1.0))
    ahead = ground_vector(LAT0, LON0, *motion.position_at(106.0))
    assert ahead == pytest.approx((3.0, -6.0), abs=1e-6)
    single = MotionFit(LAT0, LON0, 0.0)
    single.add(0.0, LAT0, LON0, 0.1)
    assert single.motion() is None


def test_a_standing_robot_with_noisy_fixes_has_no_heading_and_is_not_carried_on() -> None:
    """The fault a first-far-enough-pair rule had: among 100 fixes of 0.3 m noise some
    pair is always 1.2 m apart, and that pair's noise became a heading (and a velocity
    of metres a second). A fitted line's speed stays within its noise."""
    headings = carried = 0
    for seed in range(200):
        buffer = noisy_drive(seed, speed=0.0, sigma=0.3)
        headings += buffer.course_at(10.0, min_travel_m=1.0) is not None
        carried += buffer.lookup(21.5).status == 'extrapolated'
    assert (headings, carried) == (0, 0)


@pytest.mark.parametrize('seed', range(20))
def test_a_slow_noisy_drive_gives_its_heading_and_carries_on_near_its_path(seed: int) -> None:
    """1 m/s west with 0.3 m noise: the heading within 20 degrees (about 3.5 sigma); 1.5 s
    into a dropout the position within 1 m of the truth, where the last fix is 1.5 m
    behind plus its noise, and an accuracy that covers the 1.5 m carried."""
    buffer = noisy_drive(seed, speed=1.0, sigma=0.3)
    course = buffer.course_at(10.0, min_travel_m=1.0)
    assert course is not None and abs(course - 270.0) < 20.0
    lookup = buffer.lookup(21.5)
    assert lookup.status == 'extrapolated' and lookup.fix is not None
    east, north = ground_vector(LAT0, LON0, lookup.fix.latitude, lookup.fix.longitude)
    assert math.hypot(east + 1.0 * 21.5, north) < 1.0
    assert lookup.fix.horizontal_accuracy_m >= 0.3 + 0.75


def drifting_fixes(seed: int, rate_hz: float, seconds: float, sigma: float,
                   accuracy: float | None, tau_s: float = 45.0) -> FixBuffer:
    """A standing receiver whose error drifts (first-order, time constant ``tau_s``), as
    real receivers' do: seconds of fixes lie on a smooth curve, not in a white cloud."""
    rng = random.Random(seed)
    buffer = FixBuffer(max_fix_age_s=2.0, capacity=100000)
    step = 1.0 / rate_hz
    keep = math.exp(-step / tau_s)
    east = north = 0.0
    for index in range(int(seconds * rate_hz)):
        east = keep * east + math.sqrt(1.0 - keep * keep) * rng.gauss(0.0, sigma)
        north = keep * north + math.sqrt(1.0 - keep * keep) * rng.gauss(0.0, sigma)
        latitude, longitude = moved_by(LAT0, LON0, east, north)
        buffer.add(GeoFix(index * step, latitude, longitude, 190.0, accuracy))
    return buffer


@pytest.mark.parametrize(('rate_hz', 'sigma', 'accuracy'), [
    (10.0, 1.5, None), (5.0, 0.3, None), (5.0, 0.3, 0.3), (10.0, 2.0, 2.0)])
def test_a_standing_robot_with_drifting_fixes_gets_no_heading_and_no_carry(
        rate_hz: float, sigma: float, accuracy: float | None) -> None:
    """Counted as independent, 10 fixes a second of a slowly drifting error made the
    drift a significant motion: 94 % of a standing robot's frames got a heading (and a
    view metres off) and most were carried on. At most one fix a second counts."""
    headings = carried = frames = 0
    for seed in range(3):
        buffer = drifting_fixes(seed, rate_hz, 300.0, sigma, accuracy)
        for stamp in range(40, 300, 5):
            frames += 1
            headings += buffer.course_at(stamp + 0.05, min_travel_m=1.0) is not None
            carried += buffer.lookup(stamp + 1.5 + 0.05).status == 'extrapolated'
    assert frames == 156
    assert headings <= 2 and carried <= 2, (headings, carried)


def test_a_stop_in_the_window_is_not_carried_on() -> None:
    """RTK fixes: driving, then standing for the last 2 s before the dropout: no straight
    line, so the frames of the gap are put at the last fix, not 1-2 m on."""
    buffer = FixBuffer(max_fix_age_s=2.0)
    for step in range(16):                       # 0-3 s at 1 m/s, then 3-5 s standing
        t = step * 0.2 if step <= 15 else 0.0
        north = min(t, 2.0)
        latitude, longitude = moved_by(LAT0, LON0, 0.0, north)
        buffer.add(GeoFix(t, latitude, longitude, 190.0, 0.02))
    for step in range(1, 11):
        t = 3.0 + step * 0.2
        latitude, longitude = moved_by(LAT0, LON0, 0.0, 2.0)
        buffer.add(GeoFix(t, latitude, longitude, 190.0, 0.02))
    lookup = buffer.lookup(6.0)
    assert lookup.status == 'nearest'
    assert ground_vector(LAT0, LON0, lookup.fix.latitude, lookup.fix.longitude) == \
        pytest.approx((0.0, 2.0), abs=1e-6)
