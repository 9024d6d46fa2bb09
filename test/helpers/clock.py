"""A clock tests move by hand, for code that takes a ``clock`` callable."""

from __future__ import annotations


class FakeClock:
    """A monotonic clock a test advances by setting ``now`` (seconds)."""

    def __init__(self, now: float = 100.0) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now
