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

An item of the timeline before the last restart (a late stamp, see ``core.time_jump``) is
located with that timeline's fixes: those the restart set aside and the late ones that came
since (:meth:`set_aside`), never with the new timeline's (nor with a stray stamp taken for
its first fix). So it is wherever it leaves: at its fix, at its deadline, or pushed out
by the bound on waiting items while the restart may still be undone.

Every position handed out is moved from the antenna to the camera's view by the
``camera_offset`` (see ``core.camera_offset``), while the fixes it takes the direction of
travel from are still held: also those settled by a restart, before it forgets them.
"""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass, replace
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
    ``previous``: its stamp is of the timeline before the last restart.
    """

    item: Item
    stamp_s: float
    deadline_s: float
    added_s: float
    hold_until_s: float = -float('inf')
    previous: bool = False


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
        # The same fixes, to locate the items of that timeline (None: no restart, or undone).
        self._previous: FixBuffer | None = None

    def __len__(self) -> int:
        """Return the number of items waiting."""
        return len(self._waiting)

    def add(self, item: Item, stamp_s: float, now_s: float, wait_s: float,
            hold_s: float = 0.0, previous: bool = False) -> list[tuple[Item, FixLookup]]:
        """Locate ``item`` now, or let it wait until ``now_s + wait_s``; return what is ready.

        With ``wait_s <= 0`` the item is located at once with the fixes there are. An item
        that could be located now still waits behind older items that wait: items come out
        in the order they came. With ``hold_s > 0`` a position found for it is handed out
        only after ``now_s + hold_s`` or :meth:`release` (its stamp may be a stray one).
        ``previous``: ``stamp_s`` is of the timeline before the last restart (a late one),
        located with that timeline's fixes (see the module). Beyond :attr:`max_waiting`
        items the oldest is located at once with the fixes there are for it.
        """
        fixes = self._fixes_for(previous)
        lookup = self._lookup(fixes, stamp_s, final=wait_s <= 0.0)
        held = hold_s > 0.0 and lookup.located
        if lookup.status != 'pending' and not held and not self._waiting:
            return [(item, self._moved(lookup, stamp_s, fixes))]
        self._waiting.append(_Waiting(item, stamp_s, now_s + max(wait_s, 0.0), now_s,
                                      now_s + hold_s if hold_s > 0.0 else -float('inf'),
                                      previous))
        ready: list[tuple[Item, FixLookup]] = []
        if len(self._waiting) > self.max_waiting:
            oldest = self._waiting.popleft()
            ready.append((oldest.item, self._final_lookup(oldest)))
        return ready + self.settle(now_s)

    def settle(self, now_s: float) -> list[tuple[Item, FixLookup]]:
        """Return the waiting items whose fix came or whose deadline passed, in order."""
        ready: list[tuple[Item, FixLookup]] = []
        while self._waiting:
            waiting = self._waiting[0]
            fixes = self._fixes_for(waiting.previous)
            lookup = self._lookup(fixes, waiting.stamp_s, final=False)
            if lookup.status == 'pending':
                if now_s < waiting.deadline_s:
                    break
                lookup = fixes.lookup(waiting.stamp_s, final=True)
            if lookup.located and now_s < waiting.hold_until_s:
                break
            self._waiting.popleft()
            ready.append((waiting.item, self._moved(lookup, waiting.stamp_s, fixes)))
        return ready

    def rewait(self, wait_s: float) -> None:
        """Give every waiting item the deadline ``wait_s`` after it came (a new fix_wait_s).

        The caller then calls :meth:`settle`: a shorter wait may have ended already.
        """
        self._waiting = deque(replace(waiting, deadline_s=waiting.added_s + max(wait_s, 0.0))
                              for waiting in self._waiting)

    def release(self, stamp_s: float) -> None:
        """End the hold of the items stamped ``stamp_s``: the stamp is a good one.

        The caller then calls :meth:`settle`.
        """
        self._waiting = deque(
            replace(waiting, hold_until_s=-float('inf'))
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
        settled = [(waiting.item, self._final_lookup(waiting)) for waiting in self._waiting]
        self._waiting.clear()
        self._set_aside = self.fixes.snapshot()
        dropped = self._forgotten = len(self._set_aside)
        self._previous = FixBuffer(self.fixes.max_fix_age_s, self.fixes.capacity)
        for fix in self._set_aside:
            self._previous.add(fix)
        self.fixes.clear()
        self._fixes_expected = self._fixes_expected or dropped > 0
        return settled, dropped

    def set_aside(self, fix: GeoFix) -> None:
        """Keep ``fix``, a late one of the timeline before the restart, for :meth:`undo`.

        It locates the items of that timeline meanwhile; the caller then calls
        :meth:`settle`.
        """
        self._set_aside.append(fix)
        if self._previous is not None:
            self._previous.add(fix)

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
        self._set_aside, self._forgotten, self._previous = [], 0, None
        for fix in restored:
            self.fixes.add(fix)
        return stray, len(restored)

    def _fixes_for(self, previous: bool) -> FixBuffer:
        """Return the fixes an item locates with: its timeline's (``previous``: the last)."""
        return self._previous if previous and self._previous is not None else self.fixes

    def _final_lookup(self, waiting: _Waiting[Item]) -> FixLookup:
        """Locate ``waiting`` with the fixes there are for it, moved to the camera's view."""
        fixes = self._fixes_for(waiting.previous)
        return self._moved(fixes.lookup(waiting.stamp_s, final=True), waiting.stamp_s, fixes)

    def _moved(self, lookup: FixLookup, stamp_s: float, fixes: FixBuffer) -> FixLookup:
        """Return ``lookup`` moved from the antenna to the camera's view (along ``fixes``)."""
        return self.camera_offset.apply(lookup, stamp_s, fixes)

    def _lookup(self, fixes: FixBuffer, stamp_s: float, final: bool) -> FixLookup:
        """Look ``stamp_s`` up; an empty buffer is 'pending' while fixes are expected."""
        lookup = fixes.lookup(stamp_s, final=final)
        if not final and lookup.status == 'none' and self._fixes_expected:
            return FixLookup('pending', None, None)
        return lookup
