"""Drop frames to hold a maximum processing rate."""

from __future__ import annotations

import math


class RateLimiter:
    """Let through at most ``max_rate_hz`` frames per second; 0 lets every frame through.

    Frames are admitted on a schedule of one per period rather than "at least a period
    after the last one", so a jittery 30 Hz camera capped at 10 Hz yields 10 Hz, not
    less. A long gap restarts the schedule (no burst of catch-up frames), and time going
    backwards by more than a period (a replayed bag looping, sim time reset) restarts it.
    A frame that took a slot and is then refused (undecodable, an empty crop) gives the
    slot back with :meth:`give_back`, so bad frames never take a good frame's place.
    """

    def __init__(self, max_rate_hz: float = 0.0) -> None:
        """Create a limiter for ``max_rate_hz`` (>= 0, finite)."""
        self._period_s = 0.0
        self._next_s: float | None = None
        self._last_s: float | None = None
        # The schedule before the last admitted frame: what give_back() restores.
        self._before_last: float | None = None
        self._can_give_back = False
        self.max_rate_hz = max_rate_hz

    @property
    def max_rate_hz(self) -> float:
        """Return the cap in Hz (0 = unlimited)."""
        return 1.0 / self._period_s if self._period_s > 0.0 else 0.0

    @max_rate_hz.setter
    def max_rate_hz(self, value: float) -> None:
        """Change the cap; the schedule restarts with the next frame."""
        rate = float(value)
        if not math.isfinite(rate) or rate < 0.0:
            raise ValueError(f'max_rate_hz must be a finite number >= 0, got {value}')
        self._period_s = 1.0 / rate if rate > 0.0 else 0.0
        self._next_s = None
        self._can_give_back = False

    def allow(self, now_s: float) -> bool:
        """Return whether a frame arriving at ``now_s`` (seconds) should be processed."""
        now = float(now_s)
        self._can_give_back = False
        if self._period_s <= 0.0:
            self._last_s = now
            return True
        self._before_last = self._next_s
        self._can_give_back = True
        jumped_back = self._last_s is not None and now < self._last_s - self._period_s
        if self._next_s is None or jumped_back:
            # A restart: the old schedule is gone, not for give_back() to bring back.
            self._before_last = None
            self._next_s = now + self._period_s
            self._last_s = now
            return True
        self._last_s = now
        if now < self._next_s:
            self._can_give_back = False
            return False
        # On time or a little late: keep the grid. Far behind: restart from now.
        if now - self._next_s < self._period_s:
            self._next_s += self._period_s
        else:
            self._next_s = now + self._period_s
        return True

    def give_back(self) -> None:
        """Return the slot of the frame :meth:`allow` last admitted: it was refused after all.

        The next frame is then admitted as that one would have been. Does nothing after a
        frame that was not admitted, after a change of the cap, or when called twice.
        """
        if self._can_give_back:
            self._next_s = self._before_last
            self._can_give_back = False
