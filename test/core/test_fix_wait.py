"""FixWait: a detection waits for the fix after its stamp, up to its deadline, in order."""

from __future__ import annotations

import pytest

from plant_disease_ros.core.fix_buffer import FixBuffer, GeoFix
from plant_disease_ros.core.fix_wait import FixWait


def fix_at(stamp_s: float, latitude: float = 48.0) -> GeoFix:
    return GeoFix(stamp_s, latitude, 11.0, 500.0, None)


def statuses(ready: list) -> list[tuple[str, str]]:
    return [(item, lookup.status) for item, lookup in ready]


def test_located_at_once_when_the_fix_after_the_stamp_is_there() -> None:
    wait: FixWait[str] = FixWait(FixBuffer(max_fix_age_s=2.0))
    wait.fixes.add(fix_at(10.0, 48.0))
    wait.fixes.add(fix_at(11.0, 48.001))
    ready = wait.add('a', stamp_s=10.5, now_s=0.0, wait_s=0.3)
    assert statuses(ready) == [('a', 'interpolated')]
    assert ready[0][1].fix.latitude == pytest.approx(48.0005)
    assert len(wait) == 0


def test_waits_for_the_next_fix_then_interpolates() -> None:
    wait: FixWait[str] = FixWait(FixBuffer(max_fix_age_s=2.0))
    wait.fixes.add(fix_at(10.0))
    assert wait.add('a', stamp_s=10.5, now_s=100.0, wait_s=0.3) == []
    assert len(wait) == 1
    assert wait.settle(now_s=100.1) == []
    wait.fixes.add(fix_at(11.0))
    assert statuses(wait.settle(now_s=100.2)) == [('a', 'interpolated')]
    assert len(wait) == 0


def test_deadline_takes_the_nearest_older_fix() -> None:
    wait: FixWait[str] = FixWait(FixBuffer(max_fix_age_s=2.0))
    wait.fixes.add(fix_at(10.0))
    wait.add('a', stamp_s=10.5, now_s=100.0, wait_s=0.3)
    assert wait.settle(now_s=100.29) == []
    assert statuses(wait.settle(now_s=100.3)) == [('a', 'nearest')]


@pytest.mark.parametrize(('fixes', 'status'), [([], 'none'), ([5.0], 'stale')])
def test_no_wait_settles_at_once(fixes: list[float], status: str) -> None:
    wait: FixWait[str] = FixWait(FixBuffer(max_fix_age_s=2.0))
    for stamp in fixes:
        wait.fixes.add(fix_at(stamp))
    assert statuses(wait.add('a', stamp_s=10.0, now_s=0.0, wait_s=0.0)) == [('a', status)]
    assert len(wait) == 0


def test_items_settle_in_arrival_order() -> None:
    wait: FixWait[str] = FixWait(FixBuffer(max_fix_age_s=2.0))
    wait.fixes.add(fix_at(10.0))
    wait.add('first', stamp_s=10.8, now_s=0.0, wait_s=1.0)
    wait.add('second', stamp_s=10.2, now_s=0.5, wait_s=1.0)
    wait.fixes.add(fix_at(10.5))
    # The second's later fix came, but it stays behind the first, which still waits.
    assert wait.settle(now_s=0.6) == []
    assert statuses(wait.settle(now_s=1.0)) == [('first', 'nearest'),
                                                  ('second', 'interpolated')]


def test_overflow_settles_the_oldest_with_what_there_is() -> None:
    wait: FixWait[int] = FixWait(FixBuffer(max_fix_age_s=2.0), max_waiting=2)
    wait.fixes.add(fix_at(10.0))
    assert wait.add(1, stamp_s=10.1, now_s=0.0, wait_s=5.0) == []
    assert wait.add(2, stamp_s=10.2, now_s=0.0, wait_s=5.0) == []
    assert statuses(wait.add(3, stamp_s=10.3, now_s=0.0, wait_s=5.0)) == [(1, 'nearest')]
    assert len(wait) == 2


def test_max_waiting_must_be_positive() -> None:
    with pytest.raises(ValueError, match='max_waiting'):
        FixWait(FixBuffer(), max_waiting=0)


def test_restart_settles_the_old_timeline_and_forgets_its_fixes() -> None:
    wait: FixWait[str] = FixWait(FixBuffer(max_fix_age_s=2.0))
    wait.fixes.add(GeoFix(100.0, 47.0, 8.0, 400.0))
    assert wait.add('old', 100.5, now_s=0.0, wait_s=1.0) == []
    settled, dropped = wait.restart()
    assert [(item, lookup.status) for item, lookup in settled] == [('old', 'nearest')]
    assert settled[0][1].fix.latitude == 47.0
    assert (dropped, len(wait.fixes), len(wait)) == (1, 0, 0)
    # A frame of the new timeline before its first fix waits for the new fixes (the
    # receiver is alive), and is never located with an old one.
    assert wait.add('new', 100.5, now_s=0.0, wait_s=1.0) == []
    assert wait.settle(0.5) == []
    wait.fixes.add(GeoFix(100.4, 48.0, 8.0, 400.0))
    assert wait.add('newer', 100.5, now_s=0.6, wait_s=1.0) == []
    wait.fixes.add(GeoFix(100.6, 48.0, 8.0, 400.0))
    ready = wait.settle(0.7)
    assert [(item, lookup.status) for item, lookup in ready] == [
        ('new', 'interpolated'), ('newer', 'interpolated')]
    assert all(lookup.fix.latitude == 48.0 for _, lookup in ready)


def test_after_a_restart_an_item_waits_no_longer_than_its_deadline() -> None:
    """The receiver went quiet with the jump: the item goes out at its deadline, unlocated."""
    wait: FixWait[str] = FixWait(FixBuffer(max_fix_age_s=2.0))
    wait.fixes.add(GeoFix(100.0, 47.0, 8.0, 400.0))
    wait.restart()
    assert wait.add('new', 0.2, now_s=10.0, wait_s=1.0) == []
    assert wait.settle(10.9) == []
    [(item, lookup)] = wait.settle(11.0)
    assert (item, lookup.status, lookup.fix) == ('new', 'none', None)


def test_before_any_fix_an_item_goes_out_at_once() -> None:
    """No fix ever (maybe no receiver): nothing waits, nor after a restart with no fixes."""
    wait: FixWait[str] = FixWait(FixBuffer(max_fix_age_s=2.0))
    [(item, lookup)] = wait.add('first', 1.0, now_s=0.0, wait_s=1.0)
    assert (item, lookup.status) == ('first', 'none')
    assert wait.restart() == ([], 0)
    [(item, lookup)] = wait.add('second', 0.5, now_s=0.1, wait_s=1.0)
    assert (item, lookup.status) == ('second', 'none')


def test_a_ready_item_waits_behind_an_older_waiting_one() -> None:
    """Out-of-order stamps: the second item could be located at once but comes out second."""
    wait: FixWait[str] = FixWait(FixBuffer(max_fix_age_s=2.0))
    wait.fixes.add(fix_at(10.0))
    wait.fixes.add(fix_at(10.4))
    assert wait.add('first', stamp_s=10.6, now_s=0.0, wait_s=1.0) == []
    # Its fixes on both sides are here: ready, but 'first' still waits for a later fix.
    assert wait.add('second', stamp_s=10.2, now_s=0.1, wait_s=1.0) == []
    assert len(wait) == 2
    wait.fixes.add(fix_at(10.8))
    assert statuses(wait.settle(now_s=0.2)) == [('first', 'interpolated'),
                                                  ('second', 'interpolated')]


def test_no_wait_behind_a_waiting_item_comes_out_after_it() -> None:
    wait: FixWait[str] = FixWait(FixBuffer(max_fix_age_s=2.0))
    wait.fixes.add(fix_at(10.0))
    assert wait.add('first', stamp_s=10.5, now_s=0.0, wait_s=1.0) == []
    # wait_s 0 (set at run time): located with what there is, once 'first' is settled.
    assert wait.add('second', stamp_s=10.1, now_s=0.5, wait_s=0.0) == []
    assert statuses(wait.settle(now_s=1.0)) == [('first', 'nearest'), ('second', 'nearest')]


def test_undo_brings_the_fixes_back_and_lets_the_stray_item_go_unlocated() -> None:
    """A restart for one stray stamp, undone: the fixes forgotten and the late ones set
    aside locate the items of the timeline that went on; the stray item goes unlocated."""
    wait: FixWait[str] = FixWait(FixBuffer(max_fix_age_s=2.0))
    for stamp in (59.0, 59.5, 60.0):
        wait.fixes.add(fix_at(stamp, latitude=48.0 + stamp / 1000))
    settled, dropped = wait.restart()
    assert (settled, dropped, len(wait.fixes)) == ([], 3, 0)
    assert wait.add('stray', 30.0, now_s=0.0, wait_s=5.0) == []
    wait.set_aside(fix_at(60.5, latitude=48.0605))     # late: set aside, not used
    assert wait.add('goes on', 60.4, now_s=0.1, wait_s=5.0) == []
    assert len(wait.fixes) == 0 and len(wait) == 2
    assert wait.late_set_aside == 1
    stray, restored = wait.undo(30.0)
    assert wait.late_set_aside == 0
    assert restored == 4 and len(wait.fixes) == 4
    assert statuses(stray) == [('stray', 'none')] and stray[0][1].fix is None
    [(item, lookup)] = wait.settle(now_s=0.2)
    assert (item, lookup.status) == ('goes on', 'interpolated')
    assert lookup.fix.latitude == pytest.approx(48.0604)
    # Nothing is left to restore: a second undo changes nothing.
    assert wait.undo(30.0) == ([], 0) and len(wait.fixes) == 4


def test_a_new_restart_forgets_what_the_one_before_set_aside() -> None:
    wait: FixWait[str] = FixWait(FixBuffer(max_fix_age_s=2.0))
    wait.fixes.add(fix_at(10.0))
    wait.restart()
    wait.set_aside(fix_at(10.5))
    wait.fixes.add(fix_at(0.2))
    assert wait.restart()[1] == 1                       # only the new timeline's fix
    assert [fix.stamp_s for fix in wait.fixes.snapshot()] == []
    assert wait.undo(0.0) == ([], 1) and wait.fixes.snapshot() == [fix_at(0.2)]


def test_a_held_item_is_not_located_before_its_release_or_the_hold_ends() -> None:
    """A frame stamped a little ahead (maybe stray): the fix that would place it is there,
    yet it waits until its stamp is known good or the hold is over; items after it wait."""
    wait: FixWait[str] = FixWait(FixBuffer(max_fix_age_s=2.0))
    wait.fixes.add(fix_at(10.0))
    wait.fixes.add(fix_at(12.0))
    assert wait.add('ahead', 11.5, now_s=0.0, wait_s=0.3, hold_s=2.0) == []
    assert wait.add('after', 10.5, now_s=0.1, wait_s=0.3) == []
    assert wait.settle(now_s=1.0) == [] and len(wait) == 2
    wait.release(11.5)
    assert statuses(wait.settle(now_s=1.0)) == [('ahead', 'interpolated'),
                                                ('after', 'interpolated')]
    # Not released: handed out once the hold is over.
    assert wait.add('ahead', 11.6, now_s=5.0, wait_s=0.3, hold_s=2.0) == []
    assert wait.settle(now_s=6.99) == []
    assert statuses(wait.settle(now_s=7.0)) == [('ahead', 'interpolated')]


def test_a_held_item_without_a_position_goes_out_at_its_deadline() -> None:
    """Nothing to place it with: it goes out stale at the deadline, as any item would."""
    wait: FixWait[str] = FixWait(FixBuffer(max_fix_age_s=2.0))
    wait.fixes.add(fix_at(10.0))
    assert wait.add('far ahead', 3610.0, now_s=0.0, wait_s=0.3, hold_s=2.0) == []
    assert wait.settle(now_s=0.29) == []
    assert statuses(wait.settle(now_s=0.3)) == [('far ahead', 'stale')]


def test_take_hands_the_stray_item_out_unlocated() -> None:
    """A stamp found stray: its item goes out without a position, the others wait on."""
    wait: FixWait[str] = FixWait(FixBuffer(max_fix_age_s=2.0))
    wait.fixes.add(fix_at(10.0))
    wait.fixes.add(fix_at(12.0))
    wait.add('stray', 11.5, now_s=0.0, wait_s=0.3, hold_s=2.0)
    wait.add('good', 12.5, now_s=0.1, wait_s=0.3)
    taken = wait.take(11.5)
    assert statuses(taken) == [('stray', 'none')] and taken[0][1].fix is None
    assert len(wait) == 1 and wait.take(11.5) == []
    wait.fixes.add(fix_at(13.0))
    assert statuses(wait.settle(now_s=0.2)) == [('good', 'interpolated')]


def test_a_late_item_is_located_with_its_own_timelines_fixes_never_the_stray_one() -> None:
    """A stray fix 30 s back restarted the timeline: the items of the old one (late) waited
    for the undo. They take the fixes the restart set aside and the late ones that come
    meanwhile, never the stray fix."""
    wait: FixWait[str] = FixWait(FixBuffer(max_fix_age_s=2.0), max_waiting=2)
    for stamp in (56.0, 58.0):
        wait.fixes.add(fix_at(stamp, 48.0 + stamp / 1000))
    wait.restart()
    wait.fixes.add(fix_at(30.0))                     # the stray fix, kept as the new one
    assert wait.add('a', stamp_s=59.0, now_s=0.0, wait_s=5.0, previous=True) == []
    assert wait.add('b', stamp_s=59.5, now_s=0.0, wait_s=5.0, previous=True) == []
    assert len(wait) == 2
    wait.set_aside(fix_at(60.0, 48.06))              # a late fix of that timeline
    ready = wait.settle(now_s=0.1)
    assert statuses(ready) == [('a', 'interpolated'), ('b', 'interpolated')]
    assert ready[1][1].fix.latitude == pytest.approx(48.0595)
    # A new item of the new timeline is never located with the old one's fixes.
    assert statuses(wait.add('new', stamp_s=30.5, now_s=0.2, wait_s=0.0)) == [
        ('new', 'nearest')]


def test_a_late_item_pushed_out_by_the_bound_takes_its_timelines_fixes() -> None:
    wait: FixWait[str] = FixWait(FixBuffer(max_fix_age_s=2.0), max_waiting=1)
    wait.fixes.add(fix_at(58.0))
    wait.restart()
    wait.fixes.add(fix_at(30.0))                     # the stray fix
    assert wait.add('a', stamp_s=59.0, now_s=0.0, wait_s=5.0, previous=True) == []
    ready = wait.add('b', stamp_s=59.5, now_s=0.0, wait_s=5.0, previous=True)
    assert statuses(ready) == [('a', 'nearest')]     # was 'stale': the stray fix alone
    assert ready[0][1].fix.stamp_s == 58.0
