"""Detect message stamps that jump back in time (bag loop, simulator restart, GNSS fix).

``ros2 bag play --loop``, a restarted simulator or a corrected GNSS clock sends stamps
that go backwards. Fixes of the old timeline must then not locate frames of the new one,
so the classifier forgets them when a stream's stamp falls further back than a threshold
behind the newest stamp that stream has had. Each stream (frames, fixes) is watched on
its own: frames legitimately lag behind fixes by the processing time.

Messages of the old timeline still in flight at the jump (a frame queued before a bag
loop, the last fixes of a driver's buffer) arrive within moments of it, by the wall
clock: for ``late_window_s`` after a jump such a stamp is recognised (it goes on from
where its stream was, far ahead of the new timeline), is no second jump, and the caller
can drop it.

A stray stamp (one frame of a driver stamped wrong) looks like a jump too, but its own
stream goes on from where it was: a DDS stream keeps its order, so two stamps of the
jumping stream that continue the old timeline, before any stamp of any stream on the new
one, mean there was no new timeline. The jump is then undone (:attr:`glitches`,
:attr:`undone`): the streams go on from their stamps before it, and the caller restores
what it dropped.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
import time


@dataclass(frozen=True)
class TimeJump:
    """A jump back: the stream, the newest stamp before it and the stamp after it (s)."""

    stream: str
    newest_s: float
    stamp_s: float

    @property
    def size_s(self) -> float:
        """Return how far back the stamp jumped, in seconds (positive)."""
        return self.newest_s - self.stamp_s


# How long after a jump (wall clock, s) a stamp of the old timeline may still arrive.
DEFAULT_LATE_WINDOW_S = 2.0
# Stamps of the jumping stream on the old timeline, before any on the new one, that undo
# the jump. One may be a message in flight from a second publisher of the stream; two in a
# row from it are the stream going on.
UNDO_AFTER_STAMPS = 2


class TimeJumpDetector:
    """Watch the stamps of named streams; report a stamp more than ``threshold_s`` back."""

    def __init__(self, threshold_s: float, late_window_s: float = DEFAULT_LATE_WINDOW_S,
                 clock: Callable[[], float] = time.monotonic) -> None:
        """Report jumps back larger than ``threshold_s`` seconds (> 0).

        ``late_window_s``: how long after a jump (by ``clock``, seconds) a stamp of the old
        timeline is recognised as late (see :meth:`is_late`).
        """
        self.threshold_s = threshold_s
        self.late_window_s = float(late_window_s)
        self._clock = clock
        self.jumps = 0                # jumps back that stood (undone ones are glitches)
        self.late_stamps = 0          # stamps of the previous timeline that came after a jump
        self.glitches = 0             # jumps undone: a stray stamp, its stream went on
        self.undone: TimeJump | None = None   # the last jump undone
        # The stream of the last jump while it may still be undone (None: it stands), its
        # stamps on the old timeline since, and whether any stream has been on the new one.
        self._jump_stream: str | None = None
        self._jump: TimeJump | None = None
        self._continued = 0
        self._newest_s: dict[str, float] = {}
        # The newest stamp of each stream before the last jump, and when (clock) it was.
        self._previous_s: dict[str, float] = {}
        self._jumped_at = -float('inf')

    @property
    def threshold_s(self) -> float:
        """Return the smallest jump back, in seconds, that is reported."""
        return self._threshold_s

    @threshold_s.setter
    def threshold_s(self, value: float) -> None:
        if not value > 0.0:
            raise ValueError(f'threshold_s must be > 0, got {value}')
        self._threshold_s = float(value)

    def check(self, stream: str, stamp_s: float) -> TimeJump | None:
        """Note ``stamp_s`` of ``stream``; return the jump when it went back too far.

        After a jump every stream starts over from the stamps that come next. A stamp of
        the previous timeline still in flight is not taken as the newest of its stream, so
        it is not followed by a second, false jump; :meth:`is_late` tells the caller to
        drop it.
        """
        if self.is_late(stamp_s, stream):
            if stream == self._jump_stream:
                self._continued += 1
                if self._continued >= UNDO_AFTER_STAMPS:
                    self._undo(stream, stamp_s)
                    return None
            self.late_stamps += 1
            return None
        newest = self._newest_s.get(stream)
        if newest is not None and newest - stamp_s > self._threshold_s:
            self.jumps += 1
            self._previous_s = dict(self._newest_s)
            self._jumped_at = self._clock()
            self._newest_s = {stream: stamp_s}
            jump = TimeJump(stream, newest, stamp_s)
            self._jump_stream, self._jump, self._continued = stream, jump, 0
            return jump
        # A stamp on the new timeline (or any, once the late window closed): the jump stands.
        self._jump_stream = None
        if newest is None or stamp_s > newest:
            self._newest_s[stream] = stamp_s
        if self._previous_s and max(self._newest_s.values()) >= max(self._previous_s.values()):
            self._previous_s = {}   # the new timeline has caught up with the old one
        return None

    @property
    def undo_possible(self) -> bool:
        """Return whether the last jump may still be undone (a stray stamp, see above).

        True from the jump until a stamp of any stream comes on the new timeline or the
        late window closes: a detection of that time should wait that long for its fix.
        """
        return (self._jump_stream is not None
                and self._clock() - self._jumped_at <= self.late_window_s)

    def _undo(self, stream: str, stamp_s: float) -> None:
        """Undo the last jump: its stamp was a stray one, ``stream`` went on at ``stamp_s``."""
        self.jumps -= 1
        self.glitches += 1
        self.undone = self._jump
        self._newest_s = dict(self._previous_s)
        self._newest_s[stream] = max(stamp_s, self._newest_s.get(stream, stamp_s))
        self._previous_s = {}
        self._jumped_at = -float('inf')
        self._jump_stream, self._jump, self._continued = None, None, 0

    def is_late(self, stamp_s: float, stream: str | None = None) -> bool:
        """Return whether ``stamp_s`` (of ``stream``) belongs to the timeline before the jump.

        That is, within ``late_window_s`` of the jump, a stamp that goes on from where its
        stream was before it (no further back than ``threshold_s`` from that stream's
        newest stamp then; a stream not seen then: any stream's) and lies more than
        ``threshold_s`` ahead of every stream since the jump. After the window every
        stamp is taken as it comes, so a wrong call cannot last.
        """
        if not self._previous_s or not self._newest_s:
            return False
        if self._clock() - self._jumped_at > self.late_window_s:
            self._previous_s = {}
            return False
        previous = self._previous_s.get(stream) if stream else None
        if previous is None:
            previous = max(self._previous_s.values())
        return (stamp_s >= previous - self._threshold_s
                and stamp_s - max(self._newest_s.values()) > self._threshold_s)
