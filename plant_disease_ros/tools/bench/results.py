"""What a phase measured, and the baseline and explanation summaries built from phases."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

from plant_disease_ros.tools.bench.config import (
    CAPACITY,
    EXPLAIN_GRID,
    EXPLAIN_PERIOD_S,
    FLAT_WINDOW_S,
    FLOOD,
)
from plant_disease_ros.tools.bench.plan import Phase
from plant_disease_ros.tools.bench.probe import Receipt
from plant_disease_ros.tools.bench.stats import summarize


@dataclass
class PhaseResult:
    """What one phase measured."""

    rig: str
    phase: Phase
    published: int
    t0_ns: int
    t1_ns: int
    latencies_ms: list[float] = field(default_factory=list)
    receipt_offsets_s: list[float] = field(default_factory=list)
    # Stamp to the probe's DDS reception (without the probe's executor), where known.
    dds_latencies_ms: list[float] = field(default_factory=list)
    # The camera's publish() call, which the latency includes.
    publish_ms: dict[str, Any] = field(default_factory=dict)
    processes: dict[str, dict[str, Any]] = field(default_factory=dict)
    explanations: int = 0
    # Share of CPU time the VM host stole during the phase (None where unknown).
    steal_percent: float | None = None

    @classmethod
    def from_receipts(cls, rig: str, phase: Phase, publisher_report: dict,
                      receipts: Iterable[Receipt]) -> PhaseResult:
        """Build the result from the publisher's phase report and the probe's receipts."""
        t0_ns, t1_ns = int(publisher_report['t0_ns']), int(publisher_report['t1_ns'])
        ordered = sorted(receipts)
        return cls(
            rig=rig, phase=phase, published=int(publisher_report['published']),
            t0_ns=t0_ns, t1_ns=t1_ns,
            latencies_ms=[(received - stamp) / 1e6 for received, stamp, _ in ordered],
            receipt_offsets_s=[(received - t0_ns) / 1e9 for received, _, _ in ordered],
            dds_latencies_ms=[(dds - stamp) / 1e6 for _, stamp, dds in ordered if dds],
            publish_ms=dict(publisher_report.get('publish_ms') or {}))

    @property
    def elapsed_s(self) -> float:
        """Return the publishing time of the phase."""
        return max(1e-9, (self.t1_ns - self.t0_ns) / 1e9)

    def latency_window(self, start_s: float, end_s: float) -> list[float]:
        """Return the latencies of frames received between two offsets from the start."""
        return [latency for latency, offset in zip(self.latencies_ms, self.receipt_offsets_s,
                                                   strict=True)
                if start_s <= offset <= end_s]

    def summary(self) -> dict[str, Any]:
        """Return the phase's figures as a JSON-ready dictionary."""
        processed_in_run = sum(1 for offset in self.receipt_offsets_s
                               if offset <= self.elapsed_s)
        window = min(FLAT_WINDOW_S, self.elapsed_s / 3.0)
        first = summarize(self.latency_window(0.0, window))
        last = summarize(self.latency_window(self.elapsed_s - window, self.elapsed_s))
        return {
            'rig': self.rig, 'phase': self.phase.name, 'kind': self.phase.kind,
            'size': self.phase.size, 'transport': self.phase.transport,
            'rate_hz': self.phase.rate_hz, 'duration_s': round(self.elapsed_s, 2),
            'published': self.published,
            'published_fps': round(self.published / self.elapsed_s, 2),
            'processed': len(self.latencies_ms),
            'processed_fps': round(processed_in_run / self.elapsed_s, 2),
            'dropped': max(0, self.published - len(self.latencies_ms)),
            'latency_ms': summarize(self.latencies_ms),
            'latency_at_dds_receipt_ms': summarize(self.dds_latencies_ms),
            'camera_publish_ms': self.publish_ms,
            'flat_window_s': round(window, 2),
            'latency_p95_first_ms': first['p95'],
            'latency_p95_last_ms': last['p95'],
            'processes': self.processes,
            'explanations': self.explanations,
            'host_steal_percent': self.steal_percent,
        }


def throughput_ratios(base: dict | None, runs: list[dict], size: str,
                      rate_hz: float) -> dict[str, float]:
    """Return each layout's processed fps over the baseline's, on the same input."""
    if base is None or not base['processed_fps'] > 0:
        return {}
    return {run['rig'].split('-')[0]: round(run['processed_fps'] / base['processed_fps'], 1)
            for run in runs if run['size'] == size and run['rate_hz'] == rate_hz}


def baseline_summary(baseline: dict, capacity: dict | None, sustained: list[dict],
                     our_capacity: list[dict], keras_model: str) -> dict[str, Any]:
    """Return the baseline's runs and our throughput over its, per layout.

    ``capacity_ratios`` compare processed fps when more frames are offered than any rig
    takes (the throughput bar); ``ratios`` compare them at the flood, which caps ours.
    """
    return {'keras_model': keras_model, 'run': baseline, 'capacity_run': capacity,
            'ratios': throughput_ratios(baseline, sustained, FLOOD[1], FLOOD[0]),
            'capacity_ratios': throughput_ratios(capacity, our_capacity, CAPACITY[1],
                                                 CAPACITY[0])}


def explain_summary(runs: list[dict], core: dict[str, Any] | None) -> dict[str, Any]:
    """Return the explanation's cost: per map in-process (``core``) and on node latency."""
    result: dict[str, Any] = {'grid': EXPLAIN_GRID, 'period_s': EXPLAIN_PERIOD_S}
    if core is not None:
        result['core'] = core
    by_kind = {run['kind']: run for run in runs}
    off, on = by_kind.get('explain-off'), by_kind.get('explain-on')
    if off and on:
        result['off'] = off
        result['on'] = on
        result['explanations_received'] = on['explanations']
        if on['explanations'] == 0:
            result['note'] = ('no explanation received: the classifier does not offer '
                              'explain_period_s, or it failed (see the logs)')
    return result
