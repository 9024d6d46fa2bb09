"""FixBuffer: validation, ordering, interpolation, pending/nearest/stale/none lookups."""

from __future__ import annotations

import math
import random

from hypothesis import given, settings
from hypothesis import strategies as st
import pytest

from plant_disease_ros.core.fix_buffer import (
    fix_rejection_reason,
    FixBuffer,
    FixLookup,
    GeoFix,
)
from plant_disease_ros.core.geodesy import enu_to_geodetic, geodetic_to_enu

ORIGIN = (48.137, 11.575, 520.0)


def fix_at(stamp_s: float, latitude: float = 48.0, longitude: float = 11.0,
           altitude: float = 500.0, accuracy: float | None = None) -> GeoFix:
    return GeoFix(stamp_s, latitude, longitude, altitude, accuracy)


@pytest.mark.parametrize(('status', 'lat', 'lon', 'alt', 'reason'), [
    (-1, 48.0, 11.0, 500.0, 'no_fix'),
    (-2, 48.0, 11.0, 500.0, 'no_fix'),
    (0, math.nan, 11.0, 500.0, 'non_finite'),
    (0, 48.0, math.inf, 500.0, 'non_finite'),
    (2, 48.0, 11.0, -math.inf, 'non_finite'),
    (0, 90.5, 11.0, 500.0, 'out_of_range'),
    (0, 48.0, -180.01, 500.0, 'out_of_range'),
    (0, 48.0, 11.0, 2e5, 'out_of_range'),
    (0, 48.0, 11.0, 500.0, None),
    (1, -90.0, 180.0, -100.0, None),
    (2, 0.0, 0.0, 0.0, None),
    # NavSatFix: altitude "quiet NaN if no altitude is available": a usable 2-D fix.
    (0, 47.3977, 8.5456, math.nan, None),
    (0, 47.3977, 8.5456, math.inf, 'non_finite'),
    (0, math.nan, 8.5456, math.nan, 'non_finite'),
    (0, 91.0, 8.5456, math.nan, 'out_of_range'),
    (-1, 47.3977, 8.5456, math.nan, 'no_fix'),
])
def test_fix_rejection_reason(status: int, lat: float, lon: float, alt: float,
                              reason: str | None) -> None:
    assert fix_rejection_reason(status, lat, lon, alt) == reason


def test_empty_buffer_gives_none() -> None:
    buffer = FixBuffer()
    assert buffer.lookup(10.0) == FixLookup('none', None, None)
    # No fix has ever come: waiting would only add latency.
    assert buffer.lookup(10.0, final=False).status == 'none'
    assert buffer.newest_stamp_s is None


def test_interpolates_between_fixes_around_the_stamp() -> None:
    buffer = FixBuffer(max_fix_age_s=2.0)
    buffer.add(fix_at(10.0, 48.0, 11.0, 500.0, accuracy=0.5))
    buffer.add(fix_at(11.0, 48.001, 11.002, 510.0, accuracy=1.5))
    result = buffer.lookup(10.25)
    assert result.status == 'interpolated'
    assert result.located
    assert result.fix.stamp_s == 10.25
    assert result.fix.latitude == pytest.approx(48.00025, abs=1e-12)
    assert result.fix.longitude == pytest.approx(11.0005, abs=1e-12)
    assert result.fix.altitude == pytest.approx(502.5)
    assert result.fix.horizontal_accuracy_m == 1.5  # the worse of the two
    assert result.age_s == pytest.approx(0.75)


def test_a_position_keeps_the_worst_receiver_status_and_every_service() -> None:
    # RTK (status 2, GPS + Galileo) then a plain fix (status 0, GPS): between them the
    # position is as good as the plain fix, from both constellations.
    buffer = FixBuffer(max_fix_age_s=2.0)
    rtk = GeoFix(10.0, 48.0, 11.0, 500.0, 0.02, status=2, service=1 | 8)
    plain = GeoFix(11.0, 48.001, 11.0, 500.0, 2.0, status=0, service=1)
    buffer.add(rtk)
    buffer.add(plain)
    between = buffer.lookup(10.5).fix
    assert (between.status, between.service) == (0, 9)
    assert (buffer.lookup(10.0).fix.status, buffer.lookup(10.0).fix.service) == (2, 9)
    # A fix alone keeps its own.
    alone = FixBuffer(max_fix_age_s=2.0)
    alone.add(rtk)
    assert (alone.lookup(10.3).fix.status, alone.lookup(10.3).fix.service) == (2, 9)


def test_a_fix_without_altitude_is_looked_up_and_interpolated() -> None:
    """A NaN (unknown) altitude never makes an interpolated altitude NaN next to a known one."""
    buffer = FixBuffer(max_fix_age_s=2.0)
    buffer.add(fix_at(10.0, 48.0, 11.0, math.nan))
    exact = buffer.lookup(10.0)
    assert exact.status == 'interpolated'
    assert (exact.fix.latitude, exact.fix.longitude) == (48.0, 11.0)
    assert math.isnan(exact.fix.altitude)
    buffer.add(fix_at(11.0, 48.001, 11.002, 510.0))
    result = buffer.lookup(10.25)
    assert result.status == 'interpolated'
    assert result.fix.latitude == pytest.approx(48.00025, abs=1e-12)
    assert result.fix.longitude == pytest.approx(11.0005, abs=1e-12)
    assert result.fix.altitude == 510.0  # the known one
    buffer.add(fix_at(12.0, 48.002, 11.004, math.nan))
    assert buffer.lookup(11.5).fix.altitude == 510.0
    both_unknown = FixBuffer()
    both_unknown.add(fix_at(0.0, 48.0, 11.0, math.nan))
    both_unknown.add(fix_at(1.0, 48.001, 11.0, math.nan))
    result = both_unknown.lookup(0.5)
    assert result.fix.latitude == pytest.approx(48.0005, abs=1e-12)
    assert math.isnan(result.fix.altitude)


def test_exact_stamp_returns_that_fix() -> None:
    buffer = FixBuffer()
    fix = fix_at(5.0, 1.0, 2.0, 3.0)
    buffer.add(fix)
    for final in (True, False):
        result = buffer.lookup(5.0, final=final)
        assert (result.status, result.fix, result.age_s) == ('interpolated', fix, 0.0)


def test_out_of_order_fixes_are_sorted_and_duplicates_replaced() -> None:
    stamps = [float(stamp) for stamp in range(20)]
    shuffled = stamps[:]
    random.Random(3).shuffle(shuffled)
    ordered, unordered = FixBuffer(), FixBuffer()
    for stamp in stamps:
        ordered.add(fix_at(stamp, latitude=stamp))
    for stamp in shuffled:
        unordered.add(fix_at(stamp, latitude=stamp))
    assert unordered.newest_stamp_s == 19.0
    for query in (0.5, 7.25, 18.9):
        assert unordered.lookup(query) == ordered.lookup(query)
    unordered.add(fix_at(7.0, latitude=70.0))
    assert len(unordered) == 20
    assert unordered.lookup(7.0).fix.latitude == 70.0


def test_pending_until_a_later_fix_arrives_never_a_fix_from_the_future() -> None:
    buffer = FixBuffer(max_fix_age_s=2.0)
    buffer.add(fix_at(10.0, latitude=48.0))
    # Replay faster than real time: the fix after the frame has not been delivered yet.
    assert buffer.lookup(10.1, final=False) == FixLookup('pending', None, None)
    final = buffer.lookup(10.1, final=True)
    assert final.status == 'nearest'
    assert final.fix.stamp_s == 10.0
    assert final.age_s == pytest.approx(0.1)
    buffer.add(fix_at(10.2, latitude=48.002))
    settled = buffer.lookup(10.1, final=False)
    assert settled.status == 'interpolated'
    assert settled.fix.latitude == pytest.approx(48.001)


def test_nearest_when_only_one_side_is_fresh() -> None:
    # 15 s apart: no velocity is taken across such a gap.
    buffer = FixBuffer(max_fix_age_s=1.0)
    buffer.add(fix_at(10.0, latitude=1.0))
    buffer.add(fix_at(25.0, latitude=2.0))
    older = buffer.lookup(10.5)
    assert (older.status, older.fix.latitude, older.age_s) == ('nearest', 1.0, 0.5)
    newer = buffer.lookup(24.2)
    assert (newer.status, newer.fix.latitude) == ('nearest', 2.0)
    assert newer.age_s == pytest.approx(0.8)
    # Before every fix: the first one, when it is close enough.
    early = buffer.lookup(9.5)
    assert (early.status, early.fix.latitude) == ('nearest', 1.0)


def test_a_dropout_carries_the_position_on_along_the_motion() -> None:
    """Fixes at 5 Hz driving north at 1 m/s (10 cm RTK-float accuracy), then a 2 s
    dropout: a frame 0.8 s after the last fix is 0.8 m further on, not at that fix."""
    buffer = FixBuffer(max_fix_age_s=1.0)
    metre = 1.0 / 111_200.0    # of latitude, about
    for step in range(11):
        buffer.add(fix_at(10.0 + 0.2 * step, latitude=48.0 + 0.2 * step * metre,
                          accuracy=0.1))
    buffer.add(fix_at(14.0, latitude=48.0 + 4.0 * metre, accuracy=0.1))   # after the gap
    ahead = buffer.lookup(12.8)
    assert ahead.status == 'extrapolated' and ahead.age_s == pytest.approx(0.8)
    assert (ahead.fix.latitude - 48.0) / metre == pytest.approx(2.8, abs=0.01)
    assert (ahead.fix.stamp_s, ahead.fix.altitude) == (12.8, 500.0)
    # Its accuracy: the line's at 12.8 s, plus half the 0.8 m carried (a stop in the gap
    # cannot be seen).
    assert 0.5 <= ahead.fix.horizontal_accuracy_m <= 0.6
    # Nearer the fix after the gap: carried back from it along the motion after it; while
    # that fix is the newest, no motion after it is known, so it is taken as it is.
    behind = buffer.lookup(13.2)
    assert (behind.status, behind.fix.latitude) == ('nearest', 48.0 + 4.0 * metre)
    buffer.add(fix_at(15.2, latitude=48.0 + 5.2 * metre, accuracy=0.1))
    behind = buffer.lookup(13.2)
    assert behind.status == 'extrapolated'
    assert (behind.fix.latitude - 48.0) / metre == pytest.approx(3.2, abs=0.01)


def test_no_motion_is_carried_on_from_noise_or_a_standing_robot() -> None:
    buffer = FixBuffer(max_fix_age_s=2.0)
    metre = 1.0 / 111_200.0
    # 3 m in 2 s, but 1 m accuracy: 3 m is under 4 sigma, the motion may be noise.
    buffer.add(fix_at(10.0, latitude=48.0, accuracy=1.0))
    buffer.add(fix_at(12.0, latitude=48.0 + 3 * metre, accuracy=1.0))
    assert buffer.lookup(13.0).status == 'nearest'
    # Standing: fixes 5 cm apart.
    standing = FixBuffer(max_fix_age_s=2.0)
    for step in range(20):
        standing.add(fix_at(10.0 + 0.2 * step, latitude=48.0 + (step % 2) * 0.05 * metre))
    assert standing.lookup(14.5).status == 'nearest'


def test_stale_when_no_fix_is_close_enough() -> None:
    buffer = FixBuffer(max_fix_age_s=1.0)
    buffer.add(fix_at(10.0))
    buffer.add(fix_at(20.0))
    result = buffer.lookup(13.0)
    assert (result.status, result.fix) == ('stale', None)
    assert result.age_s == pytest.approx(3.0)
    assert buffer.lookup(30.0).status == 'stale'
    assert buffer.lookup(5.0, final=False).status == 'stale'


def test_capacity_drops_the_oldest() -> None:
    buffer = FixBuffer(max_fix_age_s=0.5, capacity=3)
    for stamp in (1.0, 2.0, 3.0, 4.0):
        buffer.add(fix_at(stamp))
    assert len(buffer) == 3
    assert buffer.lookup(1.0).status == 'stale'
    assert buffer.lookup(2.0).status == 'interpolated'


def test_interpolation_across_the_antimeridian() -> None:
    buffer = FixBuffer()
    buffer.add(fix_at(0.0, latitude=-17.0, longitude=179.9999))
    buffer.add(fix_at(1.0, latitude=-17.0, longitude=-179.9999))
    result = buffer.lookup(0.25)
    assert result.fix.longitude == pytest.approx(179.99995, abs=1e-9)
    result = buffer.lookup(0.75)
    assert result.fix.longitude == pytest.approx(-179.99995, abs=1e-9)


def test_invalid_arguments() -> None:
    with pytest.raises(ValueError):
        FixBuffer(max_fix_age_s=-1.0)
    with pytest.raises(ValueError):
        FixBuffer(capacity=0)


def test_synthetic_drive_positions_within_half_a_metre() -> None:
    """Fixes at 5 Hz along a curved path, frames at 10 Hz: interpolated within 0.5 m."""
    def truth(t: float) -> tuple[float, float, float]:
        east, north = 1.5 * t, 4.0 * math.sin(t / 3.0)  # 1.5 m/s with a gentle weave
        return enu_to_geodetic(east, north, 0.1 * t, *ORIGIN)

    buffer = FixBuffer(max_fix_age_s=1.0)
    fix_stamps = [index * 0.2 for index in range(151)]
    random.Random(7).shuffle(fix_stamps)  # delivery order does not matter
    for stamp in fix_stamps:
        buffer.add(GeoFix(stamp, *truth(stamp), horizontal_accuracy_m=0.02))
    worst = 0.0
    for index in range(1, 300):
        stamp = index * 0.1 + 0.013
        result = buffer.lookup(stamp)
        assert result.status == 'interpolated'
        fix = result.fix
        east, north, _ = geodetic_to_enu(fix.latitude, fix.longitude, fix.altitude,
                                         *truth(stamp))
        worst = max(worst, math.hypot(east, north))
    assert worst < 0.5
    assert worst < 0.01  # linear interpolation over 0.2 s of a smooth path is far better


@settings(max_examples=60, deadline=None)
@given(stamps=st.lists(st.floats(0.0, 100.0, allow_nan=False), min_size=1, max_size=30),
       query=st.floats(0.0, 100.0, allow_nan=False),
       max_age=st.floats(0.0, 5.0, allow_nan=False))
def test_lookup_properties(stamps: list[float], query: float, max_age: float) -> None:
    buffer = FixBuffer(max_fix_age_s=max_age)
    for stamp in stamps:
        buffer.add(fix_at(stamp, latitude=stamp / 10.0))
    pending = buffer.lookup(query, final=False)
    result = buffer.lookup(query)
    if max(stamps) < query:
        # No fix at or after the stamp yet: one may still come, so wait for it.
        assert pending.status == 'pending'
    else:
        assert pending == result
    assert result.status in ('interpolated', 'extrapolated', 'nearest', 'stale')
    if result.located:
        assert result.age_s <= max_age
        nearest_gap = min(abs(stamp - query) for stamp in stamps)
        assert result.age_s >= nearest_gap - 1e-12
    else:
        assert result.age_s == pytest.approx(min(abs(stamp - query) for stamp in stamps))
