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
        self._newest_s: dict[str, float] = {}

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

        After a jump every stream starts over from the stamps that come next, so one
        stamp from the old timeline arriving late does not count as a second jump of
        another stream.
        """
        newest = self._newest_s.get(stream)
        if newest is not None and newest - stamp_s > self._threshold_s:
            self.jumps += 1
            self._newest_s = {stream: stamp_s}
            return TimeJump(stream, newest, stamp_s)
        if newest is None or stamp_s > newest:
            self._newest_s[stream] = stamp_s
        return None
