"""TimeJumpDetector: stamps that go back further than a threshold, per stream."""

from __future__ import annotations

import pytest

from plant_disease_ros.core.time_jump import TimeJumpDetector


def test_small_reorderings_pass_a_jump_back_is_reported_once() -> None:
    detector = TimeJumpDetector(threshold_s=1.0)
    assert detector.check('fix', 100.0) is None
    assert detector.check('fix', 99.5) is None       # reordered, within the threshold
    assert detector.check('frame', 90.0) is None     # frames lag fixes: another stream
    assert detector.check('fix', 101.0) is None
    jump = detector.check('fix', 26.0)
    assert jump is not None and (jump.stream, jump.size_s) == ('fix', 75.0)
    assert detector.jumps == 1
    # The new timeline goes on from there; its frames are not a second jump.
    assert detector.check('frame', 25.9) is None
    assert detector.check('fix', 26.2) is None
    assert detector.jumps == 1


def test_threshold_must_be_positive() -> None:
    with pytest.raises(ValueError):
        TimeJumpDetector(0.0)
