"""FixBuffer.heading_at against the plain search it replaced: the same answer for every stamp.

The plain search (``helpers.heading_reference``) built a ``Motion`` at every step of the
widening and ``ground_vector`` for every fix; ``heading_at`` takes each fix's ground point
computed once as it enters the buffer and decides on the fit's sums. Seeded fix streams
of every kind (standing, creeping, driving, turning, pivoting; clean and noisy, with and
without reported accuracy; gaps, late and repeated fixes, a small buffer dropping its
oldest, discarded fixes, a clear after a jump back in time) are asked at many stamps, and
both must give no line or the same line: the same window, the heading within 1e-9 degrees,
the position at the stamp within 1e-9 m.
"""

from __future__ import annotations

from collections.abc import Iterator
import math
import random

from helpers.heading_reference import reference_heading_at
import pytest

from plant_disease_ros.core.fix_buffer import FixBuffer, GeoFix
from plant_disease_ros.core.geodesy import ground_point, ground_vector, GroundFrame, moved_by
from plant_disease_ros.core.motion import Motion, MotionFit

HEADING_TOLERANCE_DEG = 1e-9
POSITION_TOLERANCE_M = 1e-9
SEEDS = range(120)
KINDS = ('standing', 'creeping', 'driving', 'turning', 'pivoting', 'drifting')
# Places: mid-latitudes, the equator, near a pole, across the antimeridian.
PLACES = ((48.137, 11.575), (0.0001, -78.5), (-89.9, 30.0), (64.8, 179.99995))


def fix_stream(rng: random.Random) -> Iterator[GeoFix]:
    """Yield the fixes of one random drive, in arrival order (a few late or repeated)."""
    kind = rng.choice(KINDS)
    latitude0, longitude0 = rng.choice(PLACES)
    rate_hz = rng.choice((10.0, 10.0, 5.0, 1.0))
    sigma = rng.choice((0.0, 0.005, 0.05, 0.3, 1.0))
    accuracy_kind = rng.choice(('reported', 'none', 'mixed', 'varying'))
    speed = {'standing': 0.0, 'creeping': rng.uniform(0.01, 0.1),
             'driving': rng.uniform(0.3, 2.0), 'turning': rng.uniform(0.3, 1.5),
             'pivoting': rng.uniform(0.3, 1.0), 'drifting': 0.0}[kind]
    heading = rng.uniform(0.0, 2.0 * math.pi)
    turn_rate = rng.uniform(-0.3, 0.3) if kind == 'turning' else 0.0
    east = north = drift_east = drift_north = 0.0
    t = rng.uniform(0.0, 1e6)
    for _ in range(rng.randint(20, 400)):
        step = 1.0 / rate_hz * rng.uniform(0.9, 1.1)
        if rng.random() < 0.02:
            step += rng.choice((2.5, 8.0, 40.0))          # a dropout
        t += step
        if kind == 'pivoting' and rng.random() < 0.03:
            heading += rng.uniform(1.0, 3.0)               # a stop and a turn in place
        heading += turn_rate * step
        east += speed * step * math.sin(heading)
        north += speed * step * math.cos(heading)
        if kind == 'drifting':
            drift_east = 0.98 * drift_east + rng.gauss(0.0, 0.2 * sigma)
            drift_north = 0.98 * drift_north + rng.gauss(0.0, 0.2 * sigma)
        latitude, longitude = moved_by(
            latitude0, longitude0, east + drift_east + rng.gauss(0.0, sigma),
            north + drift_north + rng.gauss(0.0, sigma))
        accuracy: float | None = {
            'reported': sigma, 'none': None,
            'mixed': None if rng.random() < 0.5 else sigma,
            'varying': rng.uniform(0.01, 2.0)}[accuracy_kind]
        stamp = t
        if rng.random() < 0.03:
            stamp -= rng.uniform(0.0, 1.0)                 # late, out of order
        elif rng.random() < 0.02:
            stamp = t - step                               # the previous stamp again
        yield GeoFix(stamp, latitude, longitude, rng.uniform(-50.0, 2000.0), accuracy)


def query_stamps(rng: random.Random, stamps: list[float], count: int) -> list[float]:
    """Return stamps to ask at: between fixes, on fixes, before and after them all."""
    chosen = []
    for _ in range(count):
        roll = rng.random()
        if roll < 0.6:
            chosen.append(rng.uniform(stamps[0] - 1.0, stamps[-1] + 1.0))
        elif roll < 0.8:
            chosen.append(rng.choice(stamps))
        elif roll < 0.9:
            chosen.append(stamps[-1] - rng.uniform(0.0, 1.0))
        else:
            chosen.append(rng.choice((stamps[0] - 50.0, stamps[-1] + 50.0)))
    return chosen


def assert_same(new: Motion | None, old: Motion | None, where: str) -> None:
    """Assert both are None, or the same window with the same heading and position."""
    assert (new is None) == (old is None), where
    if new is None or old is None:
        return
    assert (new.count, new.span_s) == (old.count, old.span_s), where
    difference = abs(new.heading_deg - old.heading_deg) % 360.0
    assert min(difference, 360.0 - difference) <= HEADING_TOLERANCE_DEG, where
    for time_s in (new.time_mean_s, new.time_mean_s + 5.0):
        apart = ground_vector(*old.position_at(time_s), *new.position_at(time_s))
        assert math.hypot(*apart) <= POSITION_TOLERANCE_M, where
    assert new.sigma_heading_rad == pytest.approx(old.sigma_heading_rad, rel=1e-9), where


def compare_at(buffer: FixBuffer, rng: random.Random, count: int,
               tally: dict[str, int], seed: int) -> None:
    """Ask ``buffer`` and the reference at ``count`` stamps and compare every answer."""
    fixes = buffer.snapshot()
    if not fixes:
        return
    stamps = [fix.stamp_s for fix in fixes]
    for stamp in query_stamps(rng, stamps, count):
        min_travel = rng.choice((0.01, 0.3, 1.0, 1.0, 5.0))
        max_span = rng.choice((30.0, 30.0, 8.0, 1.0))
        new = buffer.heading_at(stamp, min_travel, max_span)
        old = reference_heading_at(fixes, stamp, min_travel, max_span, stamps=stamps)
        assert_same(new, old, f'seed {seed}, stamp {stamp!r}, {min_travel} m, {max_span} s')
        tally['found' if new is not None else 'none'] += 1
        if new is not None and new.count > 30:
            tally['widened'] += 1


def test_heading_at_equals_the_plain_search_on_fuzzed_streams() -> None:
    tally = {'found': 0, 'none': 0, 'widened': 0}
    for seed in SEEDS:
        rng = random.Random(seed)
        buffer = FixBuffer(max_fix_age_s=2.0, capacity=rng.choice((200, 200, 60, 2000)))
        for index, fix in enumerate(fix_stream(rng)):
            buffer.add(fix)
            if rng.random() < 0.01 and len(buffer) > 1:
                # A fix taken back (the node's stray fix of an undone time jump).
                buffer.discard(rng.choice(buffer.snapshot()).stamp_s)
            if rng.random() < 0.004:
                compare_at(buffer, rng, 5, tally, seed)
                buffer.clear()                          # a jump back in time
            if index % 60 == 59:
                compare_at(buffer, rng, 12, tally, seed)
        compare_at(buffer, rng, 25, tally, seed)
    # The streams must exercise both answers and long widenings, not only the easy cases.
    assert tally['found'] > 300 and tally['none'] > 300 and tally['widened'] > 50, tally


def test_a_fit_from_ground_points_is_the_fit_from_fixes_bit_for_bit() -> None:
    """What heading_at (and lookup's carried positions) rest on: GroundFrame is
    ground_vector, add_ground and add_points are add, and heading_known and add_points'
    stop decide as the Motion's properties do."""
    rng = random.Random(7)
    for _ in range(300):
        latitude0 = rng.uniform(-89.99, 89.99)
        longitude0 = rng.uniform(-180.0, 180.0)
        frame = GroundFrame(latitude0, longitude0)
        plain = MotionFit(latitude0, longitude0, 1000.0)
        grounded = MotionFit(latitude0, longitude0, 1000.0)
        points = []
        speed = rng.choice((0.0, 0.05, 1.0))
        min_travel = rng.choice((0.01, 1.0))
        known_after = None
        for step in range(rng.randint(1, 30)):
            stamp = 1000.0 + rng.choice((1, -1)) * step * 0.1
            latitude, longitude = moved_by(latitude0, longitude0,
                                           speed * step + rng.gauss(0.0, 0.3),
                                           rng.gauss(0.0, rng.choice((0.0, 0.3, 300.0))))
            vector = ground_vector(latitude0, longitude0, latitude, longitude)
            point = ground_point(latitude, longitude)
            assert frame.east_north(*point) == vector
            accuracy = rng.choice((None, 0.3, 0.0, 2.0))
            points.append((stamp, *point, accuracy))
            plain.add(stamp, latitude, longitude, accuracy)
            grounded.add_ground(stamp, *vector, accuracy)
            motion = plain.motion()
            assert grounded.motion() == motion
            known = (motion is not None and motion.heading_known
                     and motion.travel_m >= min_travel)
            assert grounded.heading_known(min_travel) == known
            if known and known_after is None:
                known_after = len(points)
        whole = MotionFit(latitude0, longitude0, 1000.0)
        assert not whole.add_points(frame, points, range(len(points)))
        assert whole.motion() == plain.motion()
        stopped = MotionFit(latitude0, longitude0, 1000.0)
        assert stopped.add_points(frame, points, range(len(points)),
                                  until_heading_m=min_travel) == (known_after is not None)
        assert stopped.count == (len(points) if known_after is None else known_after)
