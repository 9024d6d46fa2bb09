"""Percentile summaries and call timing, shared by every section of the bench."""

from __future__ import annotations

from collections.abc import Callable, Iterable
import time
from typing import Any

import numpy as np


def summarize(values: Iterable[float]) -> dict[str, float | int | None]:
    """Return n, p50, p95, mean and max of ``values`` (milliseconds); None when empty."""
    data = np.asarray(list(values), dtype=np.float64)
    if data.size == 0:
        return {'n': 0, 'p50': None, 'p95': None, 'mean': None, 'max': None}
    return {'n': int(data.size), 'p50': round(float(np.percentile(data, 50)), 3),
            'p95': round(float(np.percentile(data, 95)), 3),
            'mean': round(float(data.mean()), 3), 'max': round(float(data.max()), 3)}


def time_calls(call: Callable[[], Any], iterations: int, warmup: int = 5,
               budget_s: float = 20.0) -> list[float]:
    """Return the duration (ms) of ``iterations`` calls after ``warmup``, within a budget."""
    for _ in range(warmup):
        call()
    times = []
    deadline = time.perf_counter() + budget_s
    for _ in range(iterations):
        start = time.perf_counter()
        call()
        times.append((time.perf_counter() - start) * 1e3)
        if start > deadline:
            break
    return times
