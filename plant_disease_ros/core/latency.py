"""A rolling window of latencies with mean and percentiles for diagnostics."""

from __future__ import annotations

from collections import deque
import math
import threading

import numpy as np


class LatencyWindow:
    """Keep the last ``size`` latencies (milliseconds) and summarise them.

    Safe to add from one callback and read from another thread.
    """

    def __init__(self, size: int = 500) -> None:
        """Create an empty window holding at most ``size`` samples."""
        if int(size) < 1:
            raise ValueError(f'latency window size must be >= 1, got {size}')
        self._samples: deque[float] = deque(maxlen=int(size))
        self._lock = threading.Lock()
        self._total = 0

    @property
    def size(self) -> int:
        """Return the most samples the window keeps."""
        return int(self._samples.maxlen or 0)

    @property
    def count(self) -> int:
        """Return the number of samples now in the window."""
        return len(self._samples)

    @property
    def total_count(self) -> int:
        """Return the number of samples ever added (including those that fell out)."""
        return self._total

    def add(self, ms: float) -> None:
        """Add one latency in milliseconds; non-finite values are ignored."""
        value = float(ms)
        if not math.isfinite(value):
            return
        with self._lock:
            self._samples.append(value)
            self._total += 1

    def _values(self) -> np.ndarray:
        with self._lock:
            return np.fromiter(self._samples, dtype=np.float64, count=len(self._samples))

    def mean(self) -> float:
        """Return the mean latency in the window, NaN when empty."""
        values = self._values()
        return float(values.mean()) if values.size else math.nan

    def percentile(self, p: float) -> float:
        """Return the ``p``-th percentile (0..100, linear interpolation), NaN when empty."""
        if not 0.0 <= float(p) <= 100.0:
            raise ValueError(f'percentile must be in [0, 100], got {p}')
        values = self._values()
        return float(np.percentile(values, float(p))) if values.size else math.nan

    def max(self) -> float:
        """Return the largest latency in the window, NaN when empty."""
        values = self._values()
        return float(values.max()) if values.size else math.nan

    def clear(self) -> None:
        """Forget the samples in the window (the total count is kept)."""
        with self._lock:
            self._samples.clear()
