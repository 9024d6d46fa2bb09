"""TimeJumpDetector: stamps that go back further than a threshold, per stream."""

from __future__ import annotations

import random
import tracemalloc

from helpers.clock import FakeClock
import pytest

from plant_disease_ros.core.time_jump import RECENT_STRAYS, TimeJumpDetector


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
    """Stamps of the old timeline are late only for the window after the jump: a wrong
    call (a new timeline that happens to be far behind) cannot last."""
    clock = FakeClock(1000.0)
    detector = TimeJumpDetector(threshold_s=1.0, late_window_s=2.0, clock=clock)
    detector.check('fix', 199.9)
    detector.check('frame', 200.0)
    assert detector.check('frame', 100.1) is not None
    detector.check('fix', 100.2)
    clock.now += 1.0
    assert detector.is_late(250.0, 'fix')           # within the window: taken as late
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


def fixes_and_lagging_frames(detector: TimeJumpDetector, start_s: float, end_s: float,
                             lag_s: float = 0.3) -> None:
    """Check a fix every 0.1 s from ``start_s`` to ``end_s``, each followed by the frame
    stamped ``lag_s`` before it (frames reach the node that far behind the fixes)."""
    for k in range(round((end_s - start_s) / 0.1) + 1):
        stamp = round(start_s + 0.1 * k, 3)
        assert detector.check('fix', stamp) is None
        assert detector.check('frame', round(stamp - lag_s, 3)) is None


def test_a_stray_fix_just_beyond_the_threshold_is_undone_though_frames_lag() -> None:
    """A fix stamped 1.1 s back (threshold 1.0), frames 0.3 s behind the fixes: the next
    frame, 59.8, is only 0.9 s after the stray stamp, and was taken for a stamp on the new
    timeline: the jump stood (a jump counted, the stray fix kept for good). It goes on
    from where the frames were, so it may be of either timeline: it decides nothing."""
    detector = TimeJumpDetector(threshold_s=1.0, clock=FakeClock())  # window open
    fixes_and_lagging_frames(detector, 59.0, 60.0)
    jump = detector.check('fix', 58.9)               # the fix due at 60.1
    assert jump is not None and detector.undo_possible
    assert detector.check('frame', 59.8) is None     # either timeline: decides nothing
    assert detector.undo_possible and detector.late_stamps == 0
    assert detector.check('fix', 60.2) is None       # the fixes go on: once ...
    assert detector.check('frame', 59.9) is None
    assert detector.check('fix', 60.3) is None       # ... twice: undone
    assert (detector.jumps, detector.glitches, detector.undos) == (0, 1, 1)
    assert detector.undone == jump and not detector.undo_possible
    # Everything goes on from before the stray stamp, the frames from 59.9.
    fixes_and_lagging_frames(detector, 60.4, 61.0)
    assert (detector.jumps, detector.glitches, detector.late_stamps) == (0, 1, 1)
    assert detector.pending_ahead('frame') is None and detector.pending_ahead('fix') is None


@pytest.mark.parametrize('back_s', [1.05, 1.1, 1.2, 1.3])
def test_a_stray_fix_between_the_threshold_and_the_frames_lag_beyond_it_is_undone(
        back_s: float) -> None:
    """Any stray fix further back than the threshold is undone once the fixes go on, also
    where the frames lag the fixes by more than its distance beyond the threshold."""
    detector = TimeJumpDetector(threshold_s=1.0, clock=FakeClock())
    fixes_and_lagging_frames(detector, 59.0, 60.0)
    assert detector.check('fix', round(60.0 - back_s, 3)) is not None
    fixes_and_lagging_frames(detector, 60.1, 60.4)
    assert (detector.jumps, detector.glitches, detector.undos) == (0, 1, 1)


def test_a_real_correction_just_beyond_the_threshold_stands_with_lagging_frames() -> None:
    """A clock correction of 1.15 s back of both streams (a simulator's): 10 Hz fixes, 5 Hz
    frames 0.3 s behind them. The first frame on the new timeline, 0.95 s behind the
    frames' newest, may be of either; the next fix on the new one makes the jump stand."""
    detector = TimeJumpDetector(threshold_s=1.0, clock=FakeClock())
    for k in range(11):                              # fixes 59.0 .. 60.0, frames to 59.7
        stamp = round(59.0 + 0.1 * k, 3)
        assert detector.check('fix', stamp) is None
        if k % 2:
            assert detector.check('frame', round(stamp - 0.3, 3)) is None
    assert detector.check('fix', 58.95) is not None  # 60.1, corrected by 1.15 s back
    assert detector.check('frame', 58.75) is None    # 59.9 corrected: either timeline
    assert detector.undo_possible
    assert detector.check('fix', 59.05) is None      # the new timeline: the jump stands
    assert not detector.undo_possible
    for k in range(2, 20):
        stamp = round(58.95 + 0.1 * k, 3)
        assert detector.check('fix', stamp) is None
        if k % 2:
            assert detector.check('frame', round(stamp - 0.3, 3)) is None
    assert (detector.jumps, detector.glitches, detector.late_stamps) == (1, 0, 0)
    assert detector.pending_ahead('frame') is None


def test_a_real_loop_with_lagging_frames_stands_at_its_first_frame() -> None:
    """A bag loop of 60 s, fixes first: the new timeline's first frame, 60 s back from the
    frames' own newest, can only be of the new one; a frame in flight of the old pass is
    late."""
    detector = TimeJumpDetector(threshold_s=1.0, clock=FakeClock())
    fixes_and_lagging_frames(detector, 59.0, 60.0)
    assert detector.check('fix', 0.0) is not None    # the bag loops
    assert detector.check('frame', 59.8) is None     # in flight: late
    assert detector.late_stamps == 1 and detector.undo_possible
    assert detector.check('frame', 0.0) is None      # the new pass: the loop stands
    assert not detector.undo_possible
    fixes_and_lagging_frames(detector, 0.1, 2.0)
    assert (detector.jumps, detector.glitches, detector.late_stamps) == (1, 0, 1)


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


def at_10_hz(detector: TimeJumpDetector, start_s: float, count: int) -> float:
    """Check fixes and frames (50 ms later) every 0.1 s from ``start_s``; return the last."""
    stamp = start_s
    for k in range(count):
        stamp = round(start_s + 0.1 * k, 3)
        assert detector.check('fix', stamp) is None
        assert detector.check('frame', round(stamp + 0.05, 3)) is None
    return stamp


def test_a_stray_frame_stamp_far_ahead_is_no_jump() -> None:
    """One frame stamped an hour ahead: the next good frame is no jump back, the fixes stay."""
    detector = TimeJumpDetector(threshold_s=1.0, clock=FakeClock())
    at_10_hz(detector, 100.0, 5)                    # up to fix 100.4, frame 100.45
    assert detector.check('frame', 3700.45) is None  # the stray stamp: undecided
    assert detector.check('fix', 100.5) is None      # the fixes go on as before
    assert detector.check('frame', 100.55) is None   # was a jump back of 3600 s
    assert (detector.jumps, detector.glitches, detector.late_stamps) == (0, 1, 0)
    at_10_hz(detector, 100.6, 5)                    # nothing late, nothing jumps
    assert (detector.jumps, detector.glitches, detector.late_stamps) == (0, 1, 0)
    (stray,) = detector.recent_strays_ahead
    assert (stray.stream, stray.stamp_s) == ('frame', 3700.45)
    assert detector.undone is None
    # A real loop is still a jump back.
    assert detector.check('fix', 0.0) is not None and detector.jumps == 1


def test_a_stray_frame_stamp_far_ahead_is_reported_to_the_caller() -> None:
    """Undecided while it is the newest of its stream; the next frame says it was stray."""
    detector = TimeJumpDetector(threshold_s=1.0, clock=FakeClock())
    at_10_hz(detector, 100.0, 5)
    assert detector.check('frame', 3700.45) is None
    pending = detector.pending_ahead('frame')
    assert pending is not None and pending.stamp_s == 3700.45
    assert pending.ahead_s == pytest.approx(3599.9)   # the next frame was due at 100.55
    assert detector.pending_ahead('fix') is None
    assert detector.check('fix', 100.5) is None and detector.strays == []
    assert detector.check('frame', 100.55) is None
    assert detector.strays == [pending] and detector.confirmed == []
    assert detector.pending_ahead('frame') is None
    assert detector.check('frame', 100.65) is None and detector.strays == []


def test_a_stray_fix_stamp_far_ahead_is_no_jump() -> None:
    """A fix stamped an hour ahead: held undecided, the next fix shows it was stray."""
    detector = TimeJumpDetector(threshold_s=1.0, clock=FakeClock())
    at_10_hz(detector, 100.0, 5)
    assert detector.check('fix', 3700.5) is None     # the stray fix
    assert detector.check('frame', 100.55) is None   # the frames go on: not ahead of it
    assert detector.check('fix', 100.6) is None      # was a jump back of 3600 s
    assert detector.check('frame', 100.65) is None
    assert (detector.jumps, detector.glitches, detector.late_stamps) == (0, 1, 0)
    at_10_hz(detector, 100.7, 5)
    assert (detector.jumps, detector.glitches, detector.late_stamps) == (0, 1, 0)
    assert [(stray.stream, stray.stamp_s) for stray in detector.recent_strays_ahead] == [
        ('fix', 3700.5)]


def test_a_stray_fix_far_ahead_is_held_until_the_next_fix() -> None:
    """Between the stray fix and the next one the caller holds it; then drops it."""
    detector = TimeJumpDetector(threshold_s=1.0, clock=FakeClock())
    at_10_hz(detector, 100.0, 5)
    assert detector.check('fix', 3700.5) is None
    assert detector.pending_ahead('fix').stamp_s == 3700.5
    assert detector.check('frame', 100.55) is None
    assert detector.pending_ahead('fix') is not None and detector.strays == []
    assert detector.check('fix', 100.6) is None
    assert [stray.stamp_s for stray in detector.strays] == [3700.5]
    assert detector.pending_ahead('fix') is None


def test_a_stray_stamp_a_little_ahead_is_not_taken_by_the_other_stream_catching_up() -> None:
    """A frame 1.6 s ahead of a 1 Hz camera: the fixes reach it before the next frame
    comes, and still the next frame, back on the old timeline, shows it was stray."""
    detector = TimeJumpDetector(threshold_s=1.0, clock=FakeClock())
    for t in range(100, 105):
        assert detector.check('frame', float(t)) is None
        for k in range(10):
            assert detector.check('fix', round(t + 0.1 * k, 3)) is None
    assert detector.check('frame', 106.6) is None    # 1.6 s beyond the next frame
    assert detector.pending_ahead('frame') is not None
    for k in range(10):                              # 105.0 .. 105.9: within 1 s of it
        assert detector.check('fix', round(105.0 + 0.1 * k, 3)) is None
    assert detector.pending_ahead('frame') is not None and detector.confirmed == []
    assert detector.check('frame', 105.0) is None    # the camera goes on at 1 Hz
    assert (detector.jumps, detector.glitches) == (0, 1)
    assert [stray.stamp_s for stray in detector.strays] == [106.6]


def test_a_step_forward_of_every_stream_is_taken_at_once() -> None:
    """A data gap: both streams resume 20 s later; the second of them confirms the step."""
    detector = TimeJumpDetector(threshold_s=1.0, clock=FakeClock())
    at_10_hz(detector, 100.0, 5)
    assert detector.check('fix', 120.0) is None      # undecided: held by the caller
    assert detector.pending_ahead('fix') is not None
    assert detector.check('frame', 120.05) is None   # the frames are there too
    assert [ahead.stamp_s for ahead in detector.confirmed] == [120.0]
    assert detector.pending_ahead('fix') is None and detector.pending_ahead('frame') is None
    at_10_hz(detector, 120.1, 5)
    assert (detector.jumps, detector.glitches, detector.late_stamps) == (0, 0, 0)
    assert detector.strays_ahead == 0 and not detector.recent_strays_ahead
    # The step stands: the old timeline is a jump back now.
    assert detector.check('frame', 100.5) is not None and detector.jumps == 1


def test_a_step_forward_of_one_stream_is_taken_once_its_run_spans_half_a_second() -> None:
    """A GNSS time correction forward of a 10 Hz receiver: the fix stream goes on from the
    new time; the step is taken once its fixes there span CONFIRM_RUN_S (0.5 s)."""
    detector = TimeJumpDetector(threshold_s=1.0, clock=FakeClock())
    at_10_hz(detector, 100.0, 5)
    assert detector.check('fix', 130.5) is None
    assert detector.check('frame', 100.55) is None   # the frames have not moved
    assert detector.pending_ahead('fix') is not None
    for stamp in (130.6, 130.7, 130.8, 130.9):       # a run of 0.4 s: still undecided
        assert detector.check('fix', stamp) is None and detector.confirmed == []
        assert detector.held is not None and detector.held.stamps[-1] == stamp
    assert detector.check('fix', 131.0) is None
    (run,) = detector.confirmed
    assert run.stamps == (130.5, 130.6, 130.7, 130.8, 130.9) and detector.held is None
    assert detector.check('fix', 131.1) is None and detector.confirmed == []
    assert (detector.jumps, detector.glitches) == (0, 0)
    assert detector.pending_ahead('fix') is None


def one_hz_fixes_among_frames(detector: TimeJumpDetector,
                              clock: FakeClock | None = None) -> None:
    """Feed 1 Hz fixes at 100-109 s, 10 frames at 10 Hz after each, none a jump.

    With ``clock``, a second passes on it after each fix's frames (real time).
    """
    for t in range(100, 110):
        assert detector.check('fix', float(t)) is None
        for k in range(10):
            assert detector.check('frame', round(t + 0.05 + 0.1 * k, 3)) is None
        if clock is not None:
            clock.now += 1.0


def test_a_step_forward_of_a_1_hz_receiver_alone_is_taken_at_its_next_fix() -> None:
    """A 1 Hz receiver's GNSS time correction: taken at the next fix, 1 s on."""
    clock = FakeClock(1000.0)
    detector = TimeJumpDetector(threshold_s=1.0, clock=clock)
    one_hz_fixes_among_frames(detector)
    assert detector.check('fix', 140.0) is None and detector.pending_ahead('fix')
    assert detector.check('frame', 110.05) is None
    assert detector.check('fix', 141.0) is None
    assert [ahead.stamp_s for ahead in detector.confirmed] == [140.0]
    assert (detector.jumps, detector.glitches) == (0, 0)


def test_two_stray_frames_ahead_in_a_row_are_one_glitch_no_jump() -> None:
    """Two frames 33 ms apart, both an hour ahead, then the camera goes on: was a false
    jump back that dropped every fix (the second frame confirmed the first as a step)."""
    clock = FakeClock(1000.0)
    detector = TimeJumpDetector(threshold_s=1.0, clock=clock)
    for k in range(30):                              # 1 s of 30 Hz frames, 5 Hz fixes
        clock.now += 1 / 30
        assert detector.check('frame', round(100.0 + k / 30, 4)) is None
        if k % 6 == 0:
            assert detector.check('fix', round(100.0 + k / 30, 4)) is None
    for stray in (3701.0, 3701.033):
        clock.now += 1 / 30
        assert detector.check('frame', stray) is None
        assert detector.confirmed == [] and detector.held is not None
    clock.now += 1 / 30
    assert detector.check('frame', 101.0) is None    # the camera goes on
    (run,) = detector.strays
    assert run.stamps == (3701.0, 3701.033)
    assert (detector.jumps, detector.glitches, detector.late_stamps) == (0, 1, 0)
    for k in range(1, 60):
        clock.now += 1 / 30
        assert detector.check('frame', round(101.0 + k / 30, 4)) is None
    assert (detector.jumps, detector.glitches, detector.undos) == (0, 1, 0)


def test_a_run_of_frames_ahead_is_taken_after_sixteen_stamps_within_half_a_second() -> None:
    """A stream stuck on one stamp far ahead: the run is bounded, a step after 16 stamps."""
    detector = TimeJumpDetector(threshold_s=1.0, clock=FakeClock())
    at_10_hz(detector, 100.0, 5)
    for _ in range(15):
        assert detector.check('frame', 3700.0) is None and detector.confirmed == []
    assert detector.check('frame', 3700.0) is None
    (run,) = detector.confirmed
    assert len(run.stamps) == 15


@pytest.mark.parametrize(('stray_frames', 'step'), [(14, False), (15, False), (16, True)])
def test_fifteen_stray_frames_of_a_30_hz_camera_are_stray_sixteen_a_step(
        stray_frames: int, step: bool) -> None:
    """The README's limit: 15 frames 1/30 s apart span 14/30 s, under CONFIRM_RUN_S, and
    stay stray when the camera goes on from before them; 16 span 0.5 s: a step forward,
    and the camera going on from before them is then a jump back."""
    detector = TimeJumpDetector(threshold_s=1.0, clock=FakeClock())
    for k in range(30):
        assert detector.check('fix', 100.0 + k / 30 + 0.01) is None
        assert detector.check('frame', 100.0 + k / 30) is None
    for k in range(stray_frames):                    # a camera an hour ahead
        assert detector.check('frame', 3701.0 + k / 30) is None
    jump = detector.check('frame', 101.0)            # the camera goes on from before
    assert (jump is not None) == step
    assert (detector.jumps, detector.strays_ahead) == ((1, 0) if step else (0, 1))


def test_a_camera_starting_after_the_receiver_is_taken_at_its_second_frame() -> None:
    """A 0.5 Hz receiver alone, then a camera whose first frame is 1.8 s beyond the newest
    fix: nothing of its own to go back to, so its second frame confirms it."""
    detector = TimeJumpDetector(threshold_s=1.0, clock=FakeClock())
    for t in range(100, 112, 2):
        assert detector.check('fix', float(t)) is None
    assert detector.check('frame', 111.8) is None and detector.pending_ahead('frame')
    assert detector.check('frame', 111.833) is None
    assert [ahead.stamp_s for ahead in detector.confirmed] == [111.8]
    assert (detector.jumps, detector.glitches) == (0, 0)


@pytest.mark.parametrize('period_s', [1.0, 2.0, 5.0])
def test_a_slow_stream_alone_is_never_far_ahead_of_itself(period_s: float) -> None:
    """Fixes only, one every 1 to 5 s (more than the threshold) with 0.1 s of jitter:
    each one is taken at once, none held back."""
    detector = TimeJumpDetector(threshold_s=1.0, clock=FakeClock())
    stamp = 100.0
    for k in range(12):
        stamp = round(stamp + period_s + (0.1 if k % 2 else -0.05), 3)
        assert detector.check('fix', stamp) is None
        if k >= 2:   # the first step (k 1) comes with no period known: held till k 2
            assert detector.pending_ahead('fix') is None, (k, stamp)
    assert (detector.jumps, detector.glitches) == (0, 0)
    assert detector.period_s('fix') == pytest.approx(period_s, abs=0.11)


def one_hz_fixes(detector: TimeJumpDetector, clock: FakeClock, stamps: range) -> None:
    """Check one fix a second (stamps as given), frames at 10 Hz between them."""
    for t in stamps:
        assert detector.check('fix', float(t)) is None
        clock.now += 1.0


def test_a_stray_stamp_of_a_1_hz_fix_stream_is_undone() -> None:
    """A 1 Hz receiver: the two fixes that go on after a stray one come 2.3 s after it
    (one arrived late): past 2 s, within its window of three periods."""
    clock = FakeClock(1000.0)
    detector = TimeJumpDetector(threshold_s=1.0, clock=clock)
    one_hz_fixes(detector, clock, range(100, 110))
    jump = detector.check('fix', 70.0)               # the stray stamp, at 1000 + 10 s
    assert jump is not None
    clock.now += 1.3
    assert detector.check('fix', 110.0) is None      # late, once
    clock.now += 1.0
    assert detector.check('fix', 111.0) is None      # twice: undone
    assert (detector.jumps, detector.glitches) == (0, 1)
    assert detector.undone == jump
    assert not detector.undo_possible
    clock.now += 1.0
    assert detector.check('fix', 112.0) is None and detector.late_stamps == 1
    assert detector.window_s('fix') == pytest.approx(3.0)


def test_a_stray_stamp_of_a_1_hz_fix_stream_among_frames_is_undone() -> None:
    """The same with frames at 10 Hz meanwhile: they are late too, never a new timeline."""
    clock = FakeClock(1000.0)
    detector = TimeJumpDetector(threshold_s=1.0, clock=clock)
    one_hz_fixes_among_frames(detector, clock)
    assert detector.check('fix', 40.0) is not None   # the stray fix
    for t in (110, 111):                             # 1.1 s of frames before each fix
        for k in range(10):
            clock.now += 0.11
            assert detector.check('frame', round(t + 0.05 + 0.1 * k, 3)) is None
        assert detector.undo_possible
        assert detector.check('fix', float(t)) is None
    assert (detector.jumps, detector.glitches, detector.late_stamps) == (0, 1, 21)


def test_a_real_loop_of_a_1_hz_fix_stream_stands() -> None:
    """A bag loop at 1 Hz: a fix of the first pass in flight 2.5 s after it is late (the
    window is three periods), and the next fix of the new pass makes the loop stand."""
    clock = FakeClock(1000.0)
    detector = TimeJumpDetector(threshold_s=1.0, clock=clock)
    one_hz_fixes(detector, clock, range(100, 110))
    assert detector.check('fix', 0.0) is not None    # the bag loops
    clock.now += 2.5
    assert detector.undo_possible
    assert detector.check('fix', 110.0) is None      # in flight: late, one
    assert detector.late_stamps == 1 and detector.undo_possible
    assert detector.check('fix', 1.0) is None        # the new pass: the loop stands
    assert not detector.undo_possible
    assert detector.check('fix', 111.0) is None      # late, never an undo now
    assert (detector.jumps, detector.glitches, detector.late_stamps) == (1, 0, 2)
    one_hz_fixes(detector, clock, range(2, 6))
    assert (detector.jumps, detector.glitches) == (1, 0)


def test_a_real_loop_of_a_1_hz_fix_stream_alone_stands() -> None:
    """No second stamp of the old pass: the new pass goes on and the loop stands."""
    clock = FakeClock(1000.0)
    detector = TimeJumpDetector(threshold_s=1.0, clock=clock)
    one_hz_fixes(detector, clock, range(100, 110))
    assert detector.check('fix', 0.0) is not None
    one_hz_fixes(detector, clock, range(1, 5))
    assert (detector.jumps, detector.glitches, detector.late_stamps) == (1, 0, 0)
    assert detector.check('fix', 110.0) is None       # 4 s on: a stamp far ahead, undecided
    assert detector.check('fix', 5.0) is None         # and stray: the loop still stands
    assert (detector.jumps, detector.glitches) == (1, 1)


@pytest.mark.parametrize(('period_s', 'window_s'),
                         [(0.1, 2.0), (0.5, 2.0), (1.0, 3.0), (1.5, 4.5), (10.0, 5.0)])
def test_the_undo_window_is_three_periods_of_the_jumping_stream_from_2_to_5_s(
        period_s: float, window_s: float) -> None:
    """The window a stray stamp may be undone in (and a detection waits) fits the stream."""
    clock = FakeClock(1000.0)
    detector = TimeJumpDetector(threshold_s=1.0, clock=clock)
    for k in range(10):
        assert detector.check('fix', 100.0 + period_s * k) is None
    assert detector.window_s('fix') == pytest.approx(window_s)
    assert detector.window_s('frame') == pytest.approx(2.0)   # no period known: the floor
    assert detector.check('fix', 50.0) is not None
    assert detector.jump_window_s == pytest.approx(window_s)
    clock.now += window_s - 0.01
    assert detector.undo_possible
    clock.now += 0.02
    assert not detector.undo_possible


def test_stray_stamps_ahead_are_counted_in_bounded_memory() -> None:
    """A second camera on the topic with its clock an hour ahead: every one of its frames
    is a stray stamp; each was kept for ever (about 150 bytes each, 390 MB a day at 30 Hz)."""
    detector = TimeJumpDetector(threshold_s=1.0, clock=FakeClock())
    stamp = 1000.0
    for _ in range(100):                             # warm up: the structures exist
        stamp += 1 / 30
        detector.check('frame', stamp)
        detector.check('frame', stamp + 3600.0)
    tracemalloc.start()
    try:
        before = tracemalloc.get_traced_memory()[0]
        for _ in range(20_000):
            stamp += 1 / 30
            detector.check('frame', stamp)
            detector.check('frame', stamp + 3600.0)
        grown = tracemalloc.get_traced_memory()[0] - before
    finally:
        tracemalloc.stop()
    assert grown < 100_000, grown
    assert detector.glitches == 20_099 and detector.jumps == 0
    assert len(detector.recent_strays_ahead) == RECENT_STRAYS
    assert detector.recent_strays_ahead[-1].stamp_s == pytest.approx(stamp - 1 / 30 + 3600.0)


@pytest.mark.parametrize('fix_period_s', [0.2, 1.0, 2.0])
def test_an_hour_of_a_drive_gives_no_jump_no_glitch_nothing_held(fix_period_s: float) -> None:
    """30 Hz frames arriving up to 0.5 s late (a slow classifier), fixes at 5, 1 or 0.5 Hz
    with 30 % of them rejected before the detector: nothing is a jump, a glitch or held."""
    rng = random.Random(7)
    clock = FakeClock(0.0)
    detector = TimeJumpDetector(threshold_s=1.0, clock=clock)
    events = [(k * fix_period_s + 0.05 + 0.05 * rng.random(), 'fix', k * fix_period_s)
              for k in range(int(3600 / fix_period_s)) if rng.random() > 0.3]
    events += [(k / 30 + 0.5 * rng.random(), 'frame', k / 30) for k in range(30 * 3600)]
    for arrival_s, stream, stamp_s in sorted(events):
        clock.now = arrival_s
        assert detector.check(stream, round(stamp_s, 4)) is None
        assert detector.held is None, (stream, stamp_s)
    assert (detector.jumps, detector.glitches, detector.late_stamps) == (0, 0, 0)


@pytest.mark.parametrize('gapped', ['frame', 'fix'])
def test_a_gap_in_one_stream_is_never_held(gapped: str) -> None:
    """One stream pauses 20 s while the other goes on: it resumes at once, nothing held."""
    detector = TimeJumpDetector(threshold_s=1.0, clock=FakeClock())
    for k in range(300):
        stamp = round(100.0 + 0.1 * k, 3)
        for stream in ('fix', 'frame'):
            if stream != gapped or not 105.0 <= stamp < 125.0:
                assert detector.check(stream, stamp) is None
                assert detector.held is None, (stream, stamp)
    assert (detector.jumps, detector.glitches) == (0, 0)
