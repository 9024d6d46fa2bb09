"""Hold detections until the GPS fix after their stamp arrives, or their wait is over.

A position is never taken from a fix older than the frame while a newer one may still
come: interpolating between the fixes around the stamp is more accurate. Each waiting
item is settled when that fix arrives or at its deadline, whichever comes first, then
located with the fixes there are (nearest, stale or none). Before the first fix ever an item
is located at once (there may be no receiver); after a restart (time jumped back, the old
fixes forgotten) the receiver is known to be alive, so items wait for the new timeline's
fixes as they would for any fix.

An item whose stamp may be a stray one (far ahead of every stream, see
``core.time_jump``) can be held: a position found for it is handed out only once the
stamp is known good (:meth:`release`) or the hold ends; a stray one is taken out
unlocated (:meth:`take`). Without a position it goes out at its deadline as any item.

Every position handed out is moved from the antenna to the camera's view by the
``camera_offset`` (see ``core.camera_offset``), while the fixes it takes the direction of
travel from are still held: also those settled by a restart, before it forgets them.
"""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass
from typing import Generic, TypeVar

from plant_disease_ros.core.camera_offset import CameraOffset
from plant_disease_ros.core.fix_buffer import FixBuffer, FixLookup, GeoFix

Item = TypeVar('Item')

# Beyond this many waiting items the oldest is settled at once: bounded memory.
DEFAULT_MAX_WAITING = 64


@dataclass(frozen=True)
class _Waiting(Generic[Item]):
    """An item waiting for the fix after ``stamp_s`` until ``deadline_s``.

    Until ``hold_until_s`` it is not handed out with a position (its stamp may be stray).
    """

    item: Item
    stamp_s: float
    deadline_s: float
    added_s: float
    hold_until_s: float = -float('inf')


class FixWait(Generic[Item]):
    """Locate items by stamp in ``fixes``, waiting up to a deadline for the fix after it.

    :meth:`add` and :meth:`settle` return the items that are ready, in the order they came,
    each with its :class:`FixLookup`; the caller publishes them.
    """

    def __init__(self, fixes: FixBuffer, max_waiting: int = DEFAULT_MAX_WAITING,
                 camera_offset: CameraOffset | None = None) -> None:
        """Look positions up in ``fixes``; hold at most ``max_waiting`` items.

        ``camera_offset`` (replaceable at any time) moves each position handed out.
        """
        if max_waiting < 1:
            raise ValueError(f'max_waiting must be >= 1, got {max_waiting}')
        self.fixes = fixes
        self.camera_offset = camera_offset or CameraOffset()
        self.max_waiting = int(max_waiting)
        self._waiting: deque[_Waiting[Item]] = deque()
        self._fixes_expected = False   # fixes came before a restart: more will come
        # The fixes the last restart forgot and those of its old timeline that came late,
        # kept until the next restart in case the restart is undone (a stray stamp).
        self._set_aside: list[GeoFix] = []
        self._forgotten = 0   # how many of those the restart forgot (the rest came late)

    def __len__(self) -> int:
        """Return the number of items waiting."""
        return len(self._waiting)

    def add(self, item: Item, stamp_s: float, now_s: float, wait_s: float,
            hold_s: float = 0.0) -> list[tuple[Item, FixLookup]]:
        """Locate ``item`` now, or let it wait until ``now_s + wait_s``; return what is ready.

        With ``wait_s <= 0`` the item is located at once with the fixes there are. An item
        that could be located now still waits behind older items that wait: items come out
        in the order they came. With ``hold_s > 0`` a position found for it is handed out
        only after ``now_s + hold_s`` or :meth:`release` (its stamp may be a stray one).
        """
        lookup = self._lookup(stamp_s, final=wait_s <= 0.0)
        held = hold_s > 0.0 and lookup.located
        if lookup.status != 'pending' and not held and not self._waiting:
            return [(item, self._moved(lookup, stamp_s))]
        self._waiting.append(_Waiting(item, stamp_s, now_s + max(wait_s, 0.0), now_s,
                                      now_s + hold_s if hold_s > 0.0 else -float('inf')))
        ready: list[tuple[Item, FixLookup]] = []
        if len(self._waiting) > self.max_waiting:
            oldest = self._waiting.popleft()
            ready.append((oldest.item, self._final_lookup(oldest.stamp_s)))
        return ready + self.settle(now_s)

    def settle(self, now_s: float) -> list[tuple[Item, FixLookup]]:
        """Return the waiting items whose fix came or whose deadline passed, in order."""
        ready: list[tuple[Item, FixLookup]] = []
        while self._waiting:
            waiting = self._waiting[0]
            lookup = self._lookup(waiting.stamp_s, final=False)
            if lookup.status == 'pending':
                if now_s < waiting.deadline_s:
                    break
                lookup = self.fixes.lookup(waiting.stamp_s, final=True)
            if lookup.located and now_s < waiting.hold_until_s:
                break
            self._waiting.popleft()
            ready.append((waiting.item, self._moved(lookup, waiting.stamp_s)))
        return ready

    def rewait(self, wait_s: float) -> None:
        """Give every waiting item the deadline ``wait_s`` after it came (a new fix_wait_s).

        The caller then calls :meth:`settle`: a shorter wait may have ended already.
        """
        self._waiting = deque(_Waiting(waiting.item, waiting.stamp_s,
                                       waiting.added_s + max(wait_s, 0.0), waiting.added_s,
                                       waiting.hold_until_s)
                              for waiting in self._waiting)

    def release(self, stamp_s: float) -> None:
        """End the hold of the items stamped ``stamp_s``: the stamp is a good one.

        The caller then calls :meth:`settle`.
        """
        self._waiting = deque(
            _Waiting(waiting.item, waiting.stamp_s, waiting.deadline_s, waiting.added_s)
            if waiting.stamp_s == stamp_s else waiting for waiting in self._waiting)

    def take(self, stamp_s: float) -> list[tuple[Item, FixLookup]]:
        """Take the items stamped ``stamp_s`` out unlocated (``none``): a stray stamp.

        Their time is unknown: any fix would place them where the robot was at that wrong
        time. The caller publishes them and settles the others as usual.
        """
        stray = [waiting for waiting in self._waiting if waiting.stamp_s == stamp_s]
        if stray:
            self._waiting = deque(waiting for waiting in self._waiting
                                  if waiting.stamp_s != stamp_s)
        return [(waiting.item, FixLookup('none', None, None)) for waiting in stray]

    def restart(self) -> tuple[list[tuple[Item, FixLookup]], int]:
        """Start a new timeline (time jumped back): settle the waiting, forget the fixes.

        The waiting items belong to the old timeline, so they are located now, finally,
        with its fixes; then every fix is forgotten, so that no item of the new timeline
        is ever located with one of them. Return the settled items and the fixes dropped.
        """
        settled = [(waiting.item, self._final_lookup(waiting.stamp_s))
                   for waiting in self._waiting]
        self._waiting.clear()
        self._set_aside = self.fixes.snapshot()
        dropped = self._forgotten = len(self._set_aside)
        self.fixes.clear()
        self._fixes_expected = self._fixes_expected or dropped > 0
        return settled, dropped

    def set_aside(self, fix: GeoFix) -> None:
        """Keep ``fix``, a late one of the timeline before the restart, for :meth:`undo`."""
        self._set_aside.append(fix)

    @property
    def late_set_aside(self) -> int:
        """Return how many late fixes were set aside since the last restart."""
        return len(self._set_aside) - self._forgotten

    def undo(self, stray_stamp_s: float) -> tuple[list[tuple[Item, FixLookup]], int]:
        """Undo the last restart: its jump was one stray stamp, ``stray_stamp_s``.

        The forgotten fixes and the late ones set aside come back. The items waiting with
        the stray stamp are returned unlocated (``none``): their time is unknown, and the
        fixes back would place them where the robot was at that wrong time. Return them
        and the number of fixes restored; the caller settles the others as usual.
        """
        stray = self.take(stray_stamp_s)
        restored = self._set_aside
        self._set_aside, self._forgotten = [], 0
        for fix in restored:
            self.fixes.add(fix)
        return stray, len(restored)

    def _final_lookup(self, stamp_s: float) -> FixLookup:
        """Locate ``stamp_s`` with the fixes there are, moved to the camera's view."""
        return self._moved(self.fixes.lookup(stamp_s, final=True), stamp_s)

    def _moved(self, lookup: FixLookup, stamp_s: float) -> FixLookup:
        """Return ``lookup`` moved from the antenna to the camera's view."""
        return self.camera_offset.apply(lookup, stamp_s, self.fixes)

    def _lookup(self, stamp_s: float, final: bool) -> FixLookup:
        """Look ``stamp_s`` up; an empty buffer is 'pending' while fixes are expected."""
        lookup = self.fixes.lookup(stamp_s, final=final)
        if not final and lookup.status == 'none' and self._fixes_expected:
            return FixLookup('pending', None, None)
        return lookup
