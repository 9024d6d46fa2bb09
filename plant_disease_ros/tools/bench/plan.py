"""The planner: which rigs to start and which phases (streams) each runs, per section."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from plant_disease_ros.tools.bench.config import (
    BenchConfig,
    CAPACITY,
    FLOOD,
    LATENCY_RATE_HZ,
    LAYOUTS,
    SIZES,
    SUSTAINED_RUNS,
    TRANSPORTS,
)

# What a phase measures; its summaries are grouped by it in the report.
PHASE_KINDS: tuple[str, ...] = ('warmup', 'latency', 'sustained', 'capacity', 'baseline',
                                'baseline-capacity', 'explain-off', 'explain-on')
# How frames reach 'classification': the node set's two layouts, the DDS floor, the
# seed-style Keras node.
RIG_LAYOUTS: tuple[str, ...] = (*LAYOUTS, 'relay', 'baseline')


@dataclass(frozen=True)
class Phase:
    """One stream: ``rate_hz`` frames of one size and transport for ``duration_s``."""

    name: str
    kind: str  # one of PHASE_KINDS
    width: int
    height: int
    transport: str
    rate_hz: float
    duration_s: float

    @property
    def size(self) -> str:
        """Return 'WxH'."""
        return f'{self.width}x{self.height}'


@dataclass(frozen=True)
class Rig:
    """The processes frames go through, with one layout of RIG_LAYOUTS."""

    layout: str
    transport: str
    explain: bool = False
    # False: the nodes leave glibc malloc at its defaults (PLANT_DISEASE_TUNE_MALLOC=0),
    # for the same-run comparison with the shipped allocator setting.
    malloc_tuning: bool = True

    @property
    def name(self) -> str:
        """Return e.g. 'nodes-raw', 'pipeline-raw-malloc-defaults'."""
        suffix = '' if self.malloc_tuning else '-malloc-defaults'
        return f'{self.layout}-{self.transport}{suffix}'


def capacity_phase(layout: str, duration_s: float, kind: str = 'capacity') -> Phase:
    """Return the saturating 640x480 phase of one rig."""
    rate_hz, size = CAPACITY
    width, height = SIZES[size]
    return Phase(f'cap-{layout}-{rate_hz:g}fps-{size}', kind, width, height, 'raw', rate_hz,
                 duration_s)


def latency_phases(rig: Rig, duration_s: float) -> list[Phase]:
    """Return the unqueued latency phases of one rig, one per frame size."""
    return [Phase(f'lat-{rig.name}-{size}', 'latency', width, height, rig.transport,
                  LATENCY_RATE_HZ, duration_s) for size, (width, height) in SIZES.items()]


def node_set_phases(layout: str, transport: str, config: BenchConfig) -> list[Phase]:
    """Return the phases one layout of the node set runs with one transport."""
    sections = set(config.sections)
    phases: list[Phase] = []
    if 'latency' in sections:
        phases += latency_phases(Rig(layout, transport), config.latency_duration_s)
    if transport == 'raw' and 'sustained' in sections:
        for rate_hz, size in SUSTAINED_RUNS:
            width, height = SIZES[size]
            phases.append(Phase(f'sus-{layout}-{rate_hz:g}fps-{size}', 'sustained',
                                width, height, transport, rate_hz, config.duration_s))
    if transport == 'raw' and 'capacity' in sections:
        phases.append(capacity_phase(layout, config.capacity_duration_s))
    if explains(layout, transport, config):
        width, height = SIZES['640x480']
        for kind in ('explain-off', 'explain-on'):
            phases.append(Phase(f'{kind}-{layout}-640x480', kind, width, height,
                                transport, LATENCY_RATE_HZ, config.latency_duration_s))
    return phases


def explains(layout: str, transport: str, config: BenchConfig) -> bool:
    """Return whether this rig measures the explanation's cost (the shipped layout, raw)."""
    return layout == 'pipeline' and transport == 'raw' and 'explain' in config.sections


def build_plan(config: BenchConfig, keras_model: Path | None) -> list[tuple[Rig, list[Phase]]]:
    """Return the rigs to start and the phases each runs, for the selected sections."""
    sections = set(config.sections)
    plan: list[tuple[Rig, list[Phase]]] = []
    if 'latency' in sections:
        # The floor first: two DDS hops with no work, to read the rigs' figures against.
        relay = Rig('relay', 'raw')
        plan.append((relay, latency_phases(relay, config.latency_duration_s)))
    for layout in LAYOUTS:
        for transport in TRANSPORTS:
            phases = node_set_phases(layout, transport, config)
            if phases:
                plan.append((Rig(layout, transport,
                                 explain=explains(layout, transport, config)), phases))
    if 'latency' in sections:
        # The shipped layout once more with glibc's allocator defaults: what keeping freed
        # frame buffers resident (core.allocator_tuning) is worth, in the same run.
        defaults = Rig('pipeline', 'raw', malloc_tuning=False)
        plan.append((defaults, latency_phases(defaults, config.latency_duration_s)))
    if 'baseline' in sections and keras_model is not None:
        rate_hz, size = FLOOD
        width, height = SIZES[size]
        phases = [Phase(f'base-{rate_hz:g}fps-{size}', 'baseline', width, height, 'raw',
                        rate_hz, config.baseline_duration_s)]
        if 'capacity' in sections:
            # As long as the rigs' capacity runs: the throughput ratio compares like runs.
            phases.append(capacity_phase('baseline', config.capacity_duration_s,
                                         kind='baseline-capacity'))
        plan.append((Rig('baseline', 'raw'), phases))
    return plan
