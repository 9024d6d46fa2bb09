"""Benchmark the model, the core and the nodes on this machine, in one run.

Sections (each optional, see ``SECTIONS``):

- ``model``: bare interpreter ``invoke()`` at 1 and 2 threads, core ``classify()`` on
  640x480 and 1920x1080 frames (resize included), and the message conversions the nodes
  do per frame.
- ``latency``: end to end, from the camera publishing a frame to the ``classification``
  JSON arriving, through the nodes over DDS: both frame sizes, raw bgr8 and JPEG, as two
  processes (camera_subscriber + disease_classifier) and as the single-process pipeline,
  and the DDS floor: a relay that passes each stamp on with no work. Frames come slowly
  enough that none waits behind another.
- ``sustained``: 30 fps at 640x480 and a 60 fps 1080p flood: processed fps, dropped
  frames, latency p95 over the run and over its first and last window, CPU% and RSS of
  each process and the RSS growth.
- ``capacity``: 640x480 offered faster than any rig takes: processed fps is the rig's
  capacity on this machine.
- ``baseline``: a seed-style rclpy node running the float Keras model with
  ``model.predict`` on every frame, fed the flood and the capacity input; the
  throughput ratios of our layouts to it.
- ``explain``: the cost of the optional ``explanation`` output (occlusion map).

Modules: ``config`` (sections, sizes, bars, ``BenchConfig``), ``environment`` (DDS
environment, versions), ``machine`` (CPU, load, host steal), ``frames``, ``stats``,
``inprocess`` (the model section), ``workers`` (the camera, relay and baseline programs:
``python -m plant_disease_ros.tools.bench publisher|baseline|relay``), ``probe``,
``sampler``, ``plan``, ``results``, ``runner`` and ``report``. The nodes' command lines
come from ``plant_disease_ros.ros.node_set``; every child starts and stops through
``plant_disease_ros.tools.process``.
"""

from plant_disease_ros.tools.bench.config import (
    BenchConfig,
    BenchError,
    CAPACITY,
    FLOOD,
    SECTIONS,
    SIZES,
)
from plant_disease_ros.tools.bench.environment import prepare_environment
from plant_disease_ros.tools.bench.machine import (
    cpu_model,
    cpu_time_counters,
    describe_machine,
    steal_percent,
)
from plant_disease_ros.tools.bench.plan import build_plan, Phase, Rig
from plant_disease_ros.tools.bench.report import (
    evaluate_bars,
    format_report,
    host_steal,
    write_report,
)
from plant_disease_ros.tools.bench.results import baseline_summary, PhaseResult
from plant_disease_ros.tools.bench.runner import Bench, rig_commands, run_bench
from plant_disease_ros.tools.bench.sampler import process_summary, ProcessSampler, Sample
from plant_disease_ros.tools.bench.stats import summarize
from plant_disease_ros.tools.bench.workers import main, worker_command

__all__ = [
    'baseline_summary', 'Bench', 'BenchConfig', 'BenchError', 'build_plan', 'CAPACITY',
    'cpu_model', 'cpu_time_counters', 'describe_machine', 'evaluate_bars', 'FLOOD',
    'format_report', 'host_steal', 'main', 'Phase', 'PhaseResult', 'prepare_environment',
    'process_summary', 'ProcessSampler', 'Rig', 'rig_commands', 'run_bench', 'Sample',
    'SECTIONS', 'SIZES', 'steal_percent', 'summarize', 'worker_command', 'write_report',
]
