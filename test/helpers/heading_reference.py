"""The plain direction-of-travel search, as ``FixBuffer.heading_at`` did it before 2026-12-07.

Kept as the reference the faster search must equal (``test/core/test_heading_search.py``)
and be measured against (``benchmarks/heading_search.py``): every step of the widening
adds one fix to a ``MotionFit`` (``ground_vector``, its trigonometry included) and builds
the ``Motion`` to ask whether its heading is known. It reads the fixes, oldest first, as
``FixBuffer.snapshot`` gives them; nothing here is used by the package.
"""

from __future__ import annotations

from bisect import bisect_left, bisect_right
from collections.abc import Sequence
import math

from plant_disease_ros.core.fix_buffer import (
    COURSE_MAX_SPAN_S,
    GeoFix,
    STANDING_SPEED_M_S,
    STANDING_WINDOW_S,
)
from plant_disease_ros.core.motion import Motion, MotionFit


def _add(fit: MotionFit, fix: GeoFix) -> None:
    fit.add(fix.stamp_s, fix.latitude, fix.longitude, fix.horizontal_accuracy_m)


def reference_standing(fixes: Sequence[GeoFix], stamps: Sequence[float],
                       stamp_s: float) -> bool:
    """Return whether the fixes of the 2 s around ``stamp_s`` show the robot standing."""
    low = bisect_left(stamps, stamp_s - STANDING_WINDOW_S)
    high = bisect_right(stamps, stamp_s + STANDING_WINDOW_S)
    if high - low < 2:
        return False
    fit = MotionFit(fixes[low].latitude, fixes[low].longitude, stamp_s)
    for index in range(low, high):
        _add(fit, fixes[index])
    motion = fit.motion()
    return (motion is not None
            and motion.speed + 3.0 * motion.sigma_velocity < STANDING_SPEED_M_S)


def reference_heading_at(fixes: Sequence[GeoFix], stamp_s: float, min_travel_m: float,
                         max_span_s: float = COURSE_MAX_SPAN_S,
                         stamps: Sequence[float] | None = None) -> Motion | None:
    """Return what ``FixBuffer.heading_at`` returned for ``fixes`` (sorted by stamp).

    ``stamps``: the fixes' stamps, when the caller has them (else they are listed here).
    """
    if stamps is None:
        stamps = [fix.stamp_s for fix in fixes]
    count = len(fixes)
    if count < 2 or reference_standing(fixes, stamps, stamp_s):
        return None
    first = max(bisect_right(stamps, stamp_s) - 1, 0)
    last = min(bisect_left(stamps, stamp_s), count - 1)
    if stamps[last] - stamps[first] > max_span_s:
        first = last = first if stamp_s - stamps[first] <= stamps[last] - stamp_s else last
    fit = MotionFit(fixes[first].latitude, fixes[first].longitude, stamp_s)
    for index in range(first, last + 1):
        _add(fit, fixes[index])
    while True:
        motion = fit.motion()
        if (motion is not None and motion.heading_known
                and motion.travel_m >= min_travel_m):
            return motion
        back = (stamp_s - stamps[first - 1]
                if first > 0 and stamps[last] - stamps[first - 1] <= max_span_s
                else math.inf)
        ahead = (stamps[last + 1] - stamp_s
                 if last < count - 1 and stamps[last + 1] - stamps[first] <= max_span_s
                 else math.inf)
        if back == ahead == math.inf:
            return None
        if back <= ahead:
            first -= 1
            _add(fit, fixes[first])
        else:
            last += 1
            _add(fit, fixes[last])
