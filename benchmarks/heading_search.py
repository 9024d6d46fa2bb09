"""What the direction of travel of ``camera_offset_m`` costs per detection, old and new.

Usage (from the repository root, after ``scripts/setup_env.sh``)::

    .venv/bin/python benchmarks/heading_search.py [--rounds 20] [--detections 100] \
        [--fixes 200]

For each case a buffer of the node's default 200 fixes at 10 Hz (20 s; ``--fixes 300``
for the 30 s the search may span), each off by N(0, 0.3 m) and reporting 0.3 m:
``standing`` (0 m/s), ``creeping`` (0.05 m/s, too slow for its speed to stand out of
that noise, so the search widens to the whole buffer) and ``driving`` (1 m/s straight,
decided within a few seconds of fixes). Each detection is stamped within the last second
of fixes, as a frame waiting for its fix is, and is timed once with the plain search of
before (``test/helpers/heading_reference.py``: every step builds a ``Motion``,
``ground_vector`` per fix) and once with ``FixBuffer.heading_at``, alternating in one
run, so that a busy machine slows both alike. Prints p50 and p95 per detection (µs) and
old / new, and whether both gave the same answers.
"""

from __future__ import annotations

import argparse
import math
import os
from pathlib import Path
import random
import statistics
import sys
import time

from plant_disease_ros.core.camera_offset import DEFAULT_MIN_TRAVEL_M
from plant_disease_ros.core.fix_buffer import FixBuffer, GeoFix
from plant_disease_ros.core.geodesy import moved_by

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / 'test'))
from helpers.heading_reference import reference_heading_at  # noqa: E402

LAT0, LON0 = 48.137, 11.575
RATE_HZ = 10.0
FIXES = 200          # the node's default fix_buffer_size (20 s at 10 Hz)
SIGMA_M = 0.3
CASES = {'standing': 0.0, 'creeping': 0.05, 'driving': 1.0}


def stream(speed: float, seed: int, fixes: int = FIXES) -> FixBuffer:
    """Return a buffer of ``fixes`` fixes at RATE_HZ of a robot driving north-east at ``speed``."""
    rng = random.Random(seed)
    buffer = FixBuffer(max_fix_age_s=2.0, capacity=fixes)
    heading = math.radians(40.0)
    for index in range(fixes):
        t = 1000.0 + index / RATE_HZ
        travelled = speed * index / RATE_HZ
        latitude, longitude = moved_by(
            LAT0, LON0, travelled * math.sin(heading) + rng.gauss(0.0, SIGMA_M),
            travelled * math.cos(heading) + rng.gauss(0.0, SIGMA_M))
        buffer.add(GeoFix(t, latitude, longitude, 500.0, SIGMA_M))
    return buffer


def percentile(values: list[float], fraction: float) -> float:
    """Return the ``fraction`` quantile of ``values`` (nearest rank)."""
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(fraction * len(ordered)))]


def measure(rounds: int, detections: int, fixes: int) -> None:
    """Time every case old and new, alternating, and print the table."""
    print('load average at the start: ' + ', '.join(f'{v:.2f}' for v in os.getloadavg())
          + f' ({os.cpu_count()} cores)')
    print(f'{fixes} fixes at {RATE_HZ:g} Hz, N(0, {SIGMA_M} m) noise, reported {SIGMA_M} m; '
          f'{rounds} rounds x {detections} detections per case; min travel '
          f'{DEFAULT_MIN_TRAVEL_M} m')
    print(f'{"case":<10} {"found":>6} {"old p50":>9} {"old p95":>9} {"new p50":>9} '
          f'{"new p95":>9} {"p50 x":>6} {"p95 x":>6}  same')
    for name, speed in CASES.items():
        old: list[float] = []
        new: list[float] = []
        found = 0
        same = True
        for round_index in range(rounds):
            buffer = stream(speed, round_index, fixes)
            held = buffer.snapshot()
            stamps = [fix.stamp_s for fix in held]
            rng = random.Random(1000 + round_index)
            for _ in range(detections):
                stamp = stamps[-1] - rng.uniform(0.0, 1.0)
                start = time.perf_counter()
                before = reference_heading_at(held, stamp, DEFAULT_MIN_TRAVEL_M,
                                              stamps=stamps)
                middle = time.perf_counter()
                after = buffer.heading_at(stamp, DEFAULT_MIN_TRAVEL_M)
                end = time.perf_counter()
                old.append((middle - start) * 1e6)
                new.append((end - middle) * 1e6)
                found += after is not None
                same = same and before == after
        old_p50, old_p95 = statistics.median(old), percentile(old, 0.95)
        new_p50, new_p95 = statistics.median(new), percentile(new, 0.95)
        print(f'{name:<10} {found / len(new):>6.0%} {old_p50:>9.0f} {old_p95:>9.0f} '
              f'{new_p50:>9.0f} {new_p95:>9.0f} {old_p50 / new_p50:>6.1f} '
              f'{old_p95 / new_p95:>6.1f}  {same}')


def main() -> None:
    """Parse the arguments and measure."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument('--rounds', type=int, default=20, help='fix streams per case')
    parser.add_argument('--detections', type=int, default=100,
                        help='detections timed per stream')
    parser.add_argument('--fixes', type=int, default=FIXES,
                        help='fixes held (fix_buffer_size); 300 is the 30 s of COURSE_MAX_SPAN_S')
    args = parser.parse_args()
    measure(args.rounds, args.detections, args.fixes)


if __name__ == '__main__':
    main()
