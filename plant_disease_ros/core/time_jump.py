"""Detect message stamps that jump back in time (bag loop, simulator restart, GNSS fix).

``ros2 bag play --loop``, a restarted simulator or a corrected GNSS clock sends stamps
that go backwards. Fixes of the old timeline must then not locate frames of the new one,
so the classifier forgets them when a stream's stamp falls further back than a threshold
behind the newest stamp that stream has had. Each stream (frames, fixes) is watched on
its own: frames legitimately lag behind fixes by the processing time.
"""

from __future__ import annotations

from dataclasses import dataclass


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


class TimeJumpDetector:
    """Watch the stamps of named streams; report a stamp more than ``threshold_s`` back."""

    def __init__(self, threshold_s: float) -> None:
        """Report jumps back larger than ``threshold_s`` seconds (> 0)."""
        self.threshold_s = threshold_s
        self.jumps = 0
        self.late_stamps = 0          # stamps of the previous timeline that came after a jump
        self._newest_s: dict[str, float] = {}
        # The newest stamp of each stream before the last jump, until the new timeline
        # passes them all.
        self._previous_s: dict[str, float] = {}

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
        the previous timeline still in flight (a frame queued before a bag loop, a fix
        from the buffer of a driver) is not taken as the newest of its stream, so it is
        not followed by a second, false jump; :meth:`is_late` tells the caller to drop it.
        """
        if self.is_late(stamp_s, stream):
            self.late_stamps += 1
            return None
        newest = self._newest_s.get(stream)
        if newest is not None and newest - stamp_s > self._threshold_s:
            self.jumps += 1
            self._previous_s = dict(self._newest_s)
            self._newest_s = {stream: stamp_s}
            return TimeJump(stream, newest, stamp_s)
        if newest is None or stamp_s > newest:
            self._newest_s[stream] = stamp_s
        if self._previous_s and max(self._newest_s.values()) >= max(self._previous_s.values()):
            self._previous_s = {}   # the new timeline has caught up with the old one
        return None

    def is_late(self, stamp_s: float, stream: str | None = None) -> bool:
        """Return whether ``stamp_s`` (of ``stream``) belongs to the timeline before the jump.

        That is a stamp that goes on from where its stream was before the jump (no further
        back than ``threshold_s`` from that stream's newest stamp then, nor beyond the
        newest stamp of any stream then plus ``threshold_s``) and lies more than
        ``threshold_s`` ahead of every stream since the jump. A stream not seen before the
        jump is taken from the newest stamp of any stream then. The new timeline reaches
        that window only where the old one ended, and leaves it within a few seconds.
        """
        if not self._previous_s or not self._newest_s:
            return False
        previous_max = max(self._previous_s.values())
        previous = self._previous_s.get(stream, previous_max) if stream else previous_max
        if not previous - self._threshold_s <= stamp_s <= previous_max + self._threshold_s:
            return False
        return stamp_s - max(self._newest_s.values()) > self._threshold_s
