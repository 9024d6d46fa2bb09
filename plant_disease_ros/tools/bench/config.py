"""What the bench runs: its sections, frame sizes, rates, bars and the run configuration."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from plant_disease_ros.core.explanation import EXPLANATION_GRID

SECTIONS: tuple[str, ...] = ('model', 'latency', 'sustained', 'capacity', 'baseline',
                             'explain')
SIZES: dict[str, tuple[int, int]] = {'640x480': (640, 480), '1920x1080': (1920, 1080)}
TRANSPORTS: tuple[str, ...] = ('raw', 'compressed')
LAYOUTS: tuple[str, ...] = ('nodes', 'pipeline')
# Slow enough that no frame waits behind another: latency without queueing.
LATENCY_RATE_HZ = 5.0
SUSTAINED_RUNS: tuple[tuple[float, str], ...] = ((30.0, '640x480'), (60.0, '1920x1080'))
FLOOD = (60.0, '1920x1080')
# Offered more frames than any rig here takes: processed fps is then its capacity.
CAPACITY = (300.0, '640x480')
EXPLAIN_PERIOD_S = 1.0
EXPLAIN_GRID = EXPLANATION_GRID  # the node's
KERAS_MODEL_FILENAME = 'plant_disease_float.keras'
# Length of the first and last windows compared for a flat latency and RSS.
FLAT_WINDOW_S = 10.0
# DDS fills its buffer pools in the first seconds of a stream: not a leak.
RSS_SETTLE_S = 5.0
SAMPLE_PERIOD_S = 0.5
JPEG_QUALITY = 90
# Performance bars (latency over invoke, memory growth, flat latency), checked at the end of a run.
BAR_E2E_OVER_INVOKE_MS = 3.0
BAR_RSS_GROWTH_MB = 10.0
BAR_FLAT_RATIO = 1.25
BAR_FLAT_SLACK_MS = 2.0
BAR_BASELINE_RATIO = 20.0
# Above this share of CPU time stolen by a VM host in any phase, the report flags the run.
STEAL_BUSY_PERCENT = 1.0


class BenchError(RuntimeError):
    """A part of the bench that could not run (a node died, no frames came back)."""


@dataclass
class BenchConfig:
    """What to run and for how long."""

    sections: tuple[str, ...] = SECTIONS
    duration_s: float = 60.0  # each sustained run
    latency_duration_s: float = 10.0  # each latency phase
    baseline_duration_s: float = 30.0
    capacity_duration_s: float = 20.0
    model_iterations: int = 500
    model_path: str = ''
    labels_path: str = ''
    keras_model: str = ''
    num_threads: int = 2
    domain_id: int | None = None
    log_dir: str = ''
    quick: bool = False
    progress: Callable[[str], None] | None = None

    @classmethod
    def quick_config(cls, **overrides: Any) -> BenchConfig:
        """Return the smoke configuration: every path, short phases."""
        values: dict[str, Any] = {'duration_s': 8.0, 'latency_duration_s': 3.0,
                                  'baseline_duration_s': 8.0, 'capacity_duration_s': 5.0,
                                  'model_iterations': 100, 'quick': True}
        values.update(overrides)
        return cls(**values)
