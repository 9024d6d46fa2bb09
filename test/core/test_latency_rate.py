"""Rolling latency statistics and the frame rate limiter."""

from __future__ import annotations

import math

import numpy as np
import pytest

from plant_disease_ros.core.latency import LatencyWindow
from plant_disease_ros.core.rate_limiter import RateLimiter


def test_empty_window_is_nan() -> None:
    window = LatencyWindow()
    assert window.count == 0
    assert math.isnan(window.mean())
    assert math.isnan(window.percentile(95))
    assert math.isnan(window.max())


def test_mean_and_percentiles_match_numpy() -> None:
    rng = np.random.default_rng(4)
    samples = rng.gamma(2.0, 5.0, 300)
    window = LatencyWindow(size=500)
    for value in samples:
        window.add(value)
    assert window.count == 300
    assert window.mean() == pytest.approx(samples.mean())
    for p in (0, 50, 95, 99, 100):
        assert window.percentile(p) == pytest.approx(np.percentile(samples, p))
    assert window.max() == pytest.approx(samples.max())


def test_window_keeps_only_the_newest() -> None:
    window = LatencyWindow(size=3)
    for value in (100.0, 1.0, 2.0, 3.0):
        window.add(value)
    assert window.count == 3
    assert window.total_count == 4
    assert window.mean() == pytest.approx(2.0)
    assert window.percentile(100) == 3.0
    window.clear()
    assert window.count == 0 and window.total_count == 4


def test_window_ignores_non_finite_and_validates() -> None:
    window = LatencyWindow(size=10)
    window.add(float('nan'))
    window.add(float('inf'))
    assert window.count == 0
    with pytest.raises(ValueError):
        LatencyWindow(size=0)
    window.add(1.0)
    for p in (-1, 100.5):
        with pytest.raises(ValueError):
            window.percentile(p)


def camera_stamps(rate_hz: float, seconds: float, jitter_s: float = 0.0,
                  seed: int = 0) -> np.ndarray:
    """Return arrival times of a camera at ``rate_hz`` with uniform jitter."""
    rng = np.random.default_rng(seed)
    stamps = np.arange(0.0, seconds, 1.0 / rate_hz) + 1000.0
    return np.sort(stamps + rng.uniform(-jitter_s, jitter_s, stamps.size))


def test_zero_rate_lets_every_frame_through() -> None:
    limiter = RateLimiter(0.0)
    assert all(limiter.allow(t) for t in camera_stamps(200.0, 1.0))
    assert limiter.max_rate_hz == 0.0


@pytest.mark.parametrize(('camera_hz', 'cap_hz', 'jitter_s'), [
    (30.0, 10.0, 0.0), (30.0, 10.0, 0.008), (30.0, 5.0, 0.01), (100.0, 7.0, 0.002),
    (15.0, 2.0, 0.02),
])
def test_cap_holds_and_is_reached(camera_hz: float, cap_hz: float, jitter_s: float) -> None:
    seconds = 20.0
    limiter = RateLimiter(cap_hz)
    stamps = camera_stamps(camera_hz, seconds, jitter_s)
    allowed = np.array([t for t in stamps if limiter.allow(t)])
    # The rate over the run is the cap (not a divisor of the camera rate below it) ...
    assert cap_hz * seconds * 0.95 <= allowed.size <= cap_hz * seconds + 1
    # ... and no one-second window holds more than the cap plus the edge frames.
    for start in np.arange(stamps[0], stamps[-1] - 1.0, 0.1):
        inside = np.count_nonzero((allowed >= start) & (allowed < start + 1.0))
        assert inside <= cap_hz + 2


def test_slow_camera_is_not_throttled() -> None:
    limiter = RateLimiter(10.0)
    assert all(limiter.allow(t) for t in camera_stamps(5.0, 5.0, 0.01))


def test_long_gap_does_not_burst() -> None:
    limiter = RateLimiter(10.0)
    assert limiter.allow(0.0)
    assert limiter.allow(5.0)  # after a pause ...
    assert not limiter.allow(5.01)  # ... no catch-up frames
    assert not limiter.allow(5.05)
    assert limiter.allow(5.1)


def test_time_going_back_restarts() -> None:
    limiter = RateLimiter(1.0)
    assert limiter.allow(100.0)
    assert not limiter.allow(100.5)
    assert limiter.allow(3.0)  # a looping bag or a sim clock reset
    assert not limiter.allow(3.5)


def test_rate_change_at_runtime() -> None:
    limiter = RateLimiter(1.0)
    assert limiter.allow(0.0)
    assert not limiter.allow(0.2)
    limiter.max_rate_hz = 0.0
    assert limiter.allow(0.3) and limiter.allow(0.31)
    limiter.max_rate_hz = 2.0
    assert limiter.max_rate_hz == pytest.approx(2.0)
    assert limiter.allow(0.4)
    assert not limiter.allow(0.6)
    assert limiter.allow(0.9)


@pytest.mark.parametrize('rate', [-1.0, float('nan'), float('inf')])
def test_invalid_rate(rate: float) -> None:
    with pytest.raises(ValueError):
        RateLimiter(rate)
    limiter = RateLimiter(1.0)
    with pytest.raises(ValueError):
        limiter.max_rate_hz = rate


def test_refused_frame_gives_its_slot_to_the_next() -> None:
    limiter = RateLimiter(2.0)
    assert limiter.allow(10.0)
    limiter.give_back()  # the first frame was undecodable
    assert limiter.allow(10.05)  # the next one takes its slot ...
    assert not limiter.allow(10.3)  # ... and the schedule runs from it
    assert limiter.allow(10.55)
    limiter.give_back()
    assert limiter.allow(10.6)  # on the grid of 10.05, not restarted at 10.6
    assert not limiter.allow(10.9)
    assert limiter.allow(11.05)


def test_give_back_only_returns_an_admitted_slot() -> None:
    limiter = RateLimiter(2.0)
    assert limiter.allow(0.0)
    assert not limiter.allow(0.1)
    limiter.give_back()  # 0.1 took no slot: nothing to return
    assert not limiter.allow(0.2)
    assert limiter.allow(0.5)
    limiter.give_back()
    limiter.give_back()  # a second call returns nothing more
    assert limiter.allow(0.6)
    assert not limiter.allow(0.7)
    limiter.max_rate_hz = 2.0
    limiter.give_back()  # after a change of the cap: nothing to return
    assert limiter.allow(0.8)
    assert not limiter.allow(0.9)


def test_half_bad_camera_still_reaches_the_cap() -> None:
    # A 30 Hz camera whose every other frame is refused after admission, capped at 2 Hz:
    # each slot a bad frame took goes to the next good one.
    limiter = RateLimiter(2.0)
    passed = 0
    for index, stamp in enumerate(camera_stamps(30.0, 10.0)):
        if limiter.allow(stamp):
            if index % 2:
                limiter.give_back()
            else:
                passed += 1
    assert 19 <= passed <= 21


def test_a_refused_frame_after_time_went_back_does_not_bring_the_old_schedule_back() -> None:
    limiter = RateLimiter(2.0)
    assert limiter.allow(100.0)
    assert limiter.allow(100.5)
    assert limiter.allow(10.0)   # a looping bag: the schedule restarts ...
    limiter.give_back()          # ... and that frame was bad
    assert sum(limiter.allow(10.05 + 0.05 * step) for step in range(200)) in (20, 21)
