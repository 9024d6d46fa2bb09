"""CPU% and RSS of a rig's child processes, sampled in a thread, and their summary per phase."""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Mapping
from dataclasses import dataclass
import threading
import time
from typing import Any

import numpy as np

from plant_disease_ros.tools.bench.config import FLAT_WINDOW_S, RSS_SETTLE_S, SAMPLE_PERIOD_S
from plant_disease_ros.tools.process import ChildProcess

MB = 1024.0 * 1024.0


@dataclass(frozen=True)
class Sample:
    """One CPU/RSS sample of a process."""

    wall_ns: int
    cpu_percent: float
    rss_bytes: int


class ProcessSampler:
    """Sample CPU% and RSS of child processes every ``period_s`` (a context manager)."""

    def __init__(self, children: Mapping[str, ChildProcess],
                 period_s: float = SAMPLE_PERIOD_S) -> None:
        """Watch ``children`` (name -> child started by ``tools.process``)."""
        import psutil

        self.period_s = period_s
        self.handles = {name: psutil.Process(child.pid) for name, child in children.items()}
        self.samples: dict[str, list[Sample]] = defaultdict(list)
        self.stopping = threading.Event()
        self.thread = threading.Thread(target=self.sample, name='bench_sampler', daemon=True)

    def start(self) -> ProcessSampler:
        """Start sampling in a background thread; return self."""
        self.thread.start()
        return self

    def sample(self) -> None:
        """Take samples until :meth:`stop` (the thread's body)."""
        import psutil

        for handle in self.handles.values():
            try:
                handle.cpu_percent(None)  # the first call only starts the measurement
            except psutil.Error:
                pass
        while not self.stopping.wait(self.period_s):
            now = time.time_ns()
            for name, handle in self.handles.items():
                try:
                    with handle.oneshot():
                        self.samples[name].append(Sample(
                            now, handle.cpu_percent(None), handle.memory_info().rss))
                except psutil.Error:
                    continue

    def stop(self) -> None:
        """Stop sampling and wait for the thread."""
        self.stopping.set()
        if self.thread.is_alive():
            self.thread.join(timeout=2.0)

    def summary(self, name: str, t0_ns: int, t1_ns: int) -> dict[str, Any]:
        """Return the CPU and RSS figures of child ``name`` over [t0, t1]."""
        return process_summary(list(self.samples.get(name, ())), t0_ns, t1_ns)

    def __enter__(self) -> ProcessSampler:
        """Start sampling."""
        return self.start()

    def __exit__(self, *exc_info: object) -> None:
        """Stop sampling."""
        self.stop()


def process_summary(samples: list[Sample], t0_ns: int, t1_ns: int) -> dict[str, Any]:
    """Return CPU% and RSS figures of one process over [t0, t1].

    RSS growth is the median of the last window minus the median of the first window
    after the settle time, so that DDS filling its pools does not read as a leak.
    """
    inside = [sample for sample in samples if t0_ns <= sample.wall_ns <= t1_ns]
    if not inside:
        return {'samples': 0}
    span_s = (t1_ns - t0_ns) / 1e9
    window_ns = int(min(FLAT_WINDOW_S, span_s / 3.0) * 1e9)
    settle_ns = int(min(RSS_SETTLE_S, span_s / 6.0) * 1e9)
    start = [s.rss_bytes for s in inside
             if t0_ns + settle_ns <= s.wall_ns <= t0_ns + settle_ns + window_ns] or \
        [inside[0].rss_bytes]
    end = [s.rss_bytes for s in inside if s.wall_ns >= t1_ns - window_ns] or \
        [inside[-1].rss_bytes]
    rss_start, rss_end = float(np.median(start)) / MB, float(np.median(end)) / MB
    cpu = [sample.cpu_percent for sample in inside]
    return {
        'samples': len(inside),
        'cpu_percent_mean': round(float(np.mean(cpu)), 1),
        'cpu_percent_max': round(float(np.max(cpu)), 1),
        'rss_first_sample_mb': round(inside[0].rss_bytes / MB, 1),
        'rss_start_mb': round(rss_start, 1),
        'rss_end_mb': round(rss_end, 1),
        'rss_growth_mb': round(rss_end - rss_start, 2),
        'rss_max_mb': round(max(s.rss_bytes for s in inside) / MB, 1),
    }
