"""TimeJumpDetector: stamps that go back further than a threshold, per stream."""

from __future__ import annotations

from helpers.clock import FakeClock
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


def test_a_late_stamp_of_the_previous_timeline_is_no_second_jump() -> None:
    """A frame queued before a bag loop, seen after the loop's first fix: late, not a jump."""
    detector = TimeJumpDetector(threshold_s=1.0, clock=FakeClock())  # window open
    assert detector.check('frame', 100.0) is None
    assert detector.check('fix', 100.2) is None
    jump = detector.check('fix', 0.0)               # the bag loops
    assert jump is not None and jump.stream == 'fix'
    assert detector.is_late(100.3)
    assert detector.check('frame', 100.3) is None   # in flight before the loop
    assert detector.late_stamps == 1
    assert not detector.is_late(0.1)
    assert detector.check('frame', 0.1) is None     # the new timeline's first frame
    assert detector.check('fix', 100.1) is None     # a late fix: the caller drops it
    assert detector.late_stamps == 2 and detector.jumps == 1
    # The new timeline moves on by small steps; none of it is late.
    for stamp in (0.2, 0.5, 1.0, 1.4, 2.0):
        assert not detector.is_late(stamp) and detector.check('fix', stamp) is None
    assert detector.jumps == 1 and detector.late_stamps == 2
    # A real second loop is still a jump.
    assert detector.check('fix', 0.0) is not None and detector.jumps == 2


def test_once_the_new_timeline_catches_up_nothing_is_late() -> None:
    """After the new timeline passes the old one's newest stamp, every stamp counts again."""
    detector = TimeJumpDetector(threshold_s=1.0, clock=FakeClock())  # window open
    detector.check('frame', 10.0)
    assert detector.check('frame', 5.0) is not None
    for stamp in range(6, 12):
        assert detector.check('frame', float(stamp)) is None
    assert not detector.is_late(13.0) and detector.check('fix', 13.0) is None
    assert detector.late_stamps == 0


def test_a_pause_of_every_stream_after_the_jump_is_not_taken_for_late_stamps() -> None:
    """The demo bag's second pass: frames and fixes both pause 2 s, far from the old end."""
    detector = TimeJumpDetector(threshold_s=1.0, clock=FakeClock())  # window open
    for stamp in (70.0, 73.0, 74.0):
        detector.check('frame', stamp - 3.0)
        detector.check('fix', stamp)
    assert detector.check('fix', 0.0) is not None
    for stamp in (0.1, 0.5, 34.4, 34.6):            # the replay fast-forwards (no jump)
        detector.check('frame', stamp)
        detector.check('fix', stamp)
    for stamp in (36.9, 37.0, 39.6):                # both paused 2.3 s: not the old timeline
        assert not detector.is_late(stamp, 'frame') and detector.check('frame', stamp) is None
        assert not detector.is_late(stamp, 'fix') and detector.check('fix', stamp) is None
    assert detector.late_stamps == 0 and detector.jumps == 1


def test_the_last_fix_of_a_1_hz_receiver_in_flight_at_the_loop_is_late() -> None:
    """Its stamp is a GPS period beyond anything seen before the jump: late all the same."""
    detector = TimeJumpDetector(threshold_s=1.0, clock=FakeClock())  # window open
    detector.check('frame', 98.6)
    detector.check('fix', 99.0)
    assert detector.check('frame', 0.1) is not None
    assert detector.is_late(100.02, 'fix') and detector.check('fix', 100.02) is None
    assert detector.check('fix', 0.0) is None and detector.jumps == 1


def test_late_stamps_are_recognised_only_shortly_after_the_jump() -> None:
    """A stamp far ahead (a bogus frame) cannot keep fixes dropped: the window closes."""
    clock = FakeClock(1000.0)
    detector = TimeJumpDetector(threshold_s=1.0, late_window_s=2.0, clock=clock)
    detector.check('fix', 99.9)
    detector.check('frame', 100.0)
    detector.check('frame', 2e9)                    # a bogus stamp far in the future
    assert detector.check('frame', 100.1) is not None
    detector.check('fix', 100.2)
    clock.now += 1.0
    assert detector.is_late(150.0, 'fix')           # within the window: taken as late
    clock.now += 1.5
    for stamp in (101.8, 150.0, 5000.0):            # after it: taken as they come
        assert not detector.is_late(stamp, 'fix') and detector.check('fix', stamp) is None
    assert detector.late_stamps == 0 and detector.jumps == 1


def test_a_stray_stamp_is_undone_when_its_stream_goes_on() -> None:
    """One frame stamped 30 s back, then frames and fixes as before: no jump after all."""
    detector = TimeJumpDetector(threshold_s=1.0, clock=FakeClock())  # window open
    for t in (60.0, 60.1, 60.2):
        detector.check('fix', t)
    detector.check('frame', 60.15)
    jump = detector.check('frame', 30.0)             # the stray stamp
    assert jump is not None and detector.jumps == 1
    assert detector.check('fix', 60.3) is None       # late: the caller sets it aside
    assert detector.late_stamps == 1
    assert detector.check('frame', 60.35) is None    # its stream goes on: once, late
    assert detector.late_stamps == 2 and detector.glitches == 0
    assert detector.check('frame', 60.55) is None    # twice: the jump is undone
    assert (detector.jumps, detector.glitches, detector.late_stamps) == (0, 1, 2)
    assert detector.undone == jump
    # Everything goes on from before the stray stamp; nothing is late any more.
    assert not detector.is_late(60.6, 'fix') and detector.check('fix', 60.6) is None
    assert detector.late_stamps == 2
    # A real jump later is still one, and stands once the new timeline goes on.
    assert detector.check('fix', 0.0) is not None
    assert detector.check('fix', 0.1) is None and detector.check('frame', 0.05) is None
    assert (detector.jumps, detector.glitches) == (1, 1)


def test_one_late_stamp_of_the_jumping_stream_does_not_undo_the_jump() -> None:
    """A fix of a second receiver in flight at the loop: late, and the loop stands."""
    detector = TimeJumpDetector(threshold_s=1.0, clock=FakeClock())  # window open
    detector.check('fix', 60.0)
    detector.check('frame', 60.1)
    assert detector.check('fix', 0.0) is not None
    assert detector.check('fix', 60.4) is None       # late
    assert detector.check('frame', 0.1) is None      # the new timeline: the jump stands
    assert detector.check('fix', 60.5) is None       # late again, never an undo now
    assert (detector.jumps, detector.glitches, detector.late_stamps) == (1, 0, 2)
    assert detector.undone is None


def test_a_stamp_on_the_new_timeline_first_makes_the_jump_stand() -> None:
    """A bag loop whose frames come first: the fixes of the new pass confirm it."""
    detector = TimeJumpDetector(threshold_s=1.0, clock=FakeClock())  # window open
    detector.check('fix', 60.0)
    detector.check('frame', 59.9)
    assert detector.check('frame', 0.05) is not None
    assert detector.check('fix', 0.1) is None        # new timeline, another stream
    for t in (60.1, 60.2):                           # old frames in flight: late only
        assert detector.check('frame', t) is None
    assert (detector.jumps, detector.glitches, detector.late_stamps) == (1, 0, 2)
