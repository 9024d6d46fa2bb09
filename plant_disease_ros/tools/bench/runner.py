"""Run the bench: start each rig through ``tools.process``, drive its phases, collect results.

The nodes' command lines come from ``plant_disease_ros.ros.node_set`` (the launch's own
description); the camera, relay and baseline are this package's workers.
"""

from __future__ import annotations

from dataclasses import asdict
import hashlib
from pathlib import Path
import tempfile
import time
from typing import Any

from plant_disease_ros.core import allocator_tuning
from plant_disease_ros.ros.node_set import (
    DISEASE_CLASSIFIER,
    IMAGE_TOPIC,
    node_commands,
    NodeSetOptions,
    PIPELINE,
)
from plant_disease_ros.tools.bench.config import (
    BenchConfig,
    BenchError,
    EXPLAIN_PERIOD_S,
    KERAS_MODEL_FILENAME,
    LATENCY_RATE_HZ,
    LAYOUTS,
)
from plant_disease_ros.tools.bench.environment import prepare_environment
from plant_disease_ros.tools.bench.inprocess import bench_explanation, bench_model
from plant_disease_ros.tools.bench.machine import (
    cpu_time_counters,
    describe_machine,
    steal_percent,
)
from plant_disease_ros.tools.bench.plan import build_plan, Phase, Rig
from plant_disease_ros.tools.bench.probe import Probe
from plant_disease_ros.tools.bench.report import evaluate_bars
from plant_disease_ros.tools.bench.results import baseline_summary, explain_summary, PhaseResult
from plant_disease_ros.tools.bench.sampler import ProcessSampler
from plant_disease_ros.tools.bench.workers import PUBLISHER, PublisherWorker, worker_command
from plant_disease_ros.tools.process import ProcessGroup, ros_environment

START_TIMEOUT_S = 120.0
WARM_UP_TIMEOUT_S = 90.0
WARM_UP_FRAMES = 3
STOP_TIMEOUT_S = 5.0


def node_set_options(rig: Rig, config: BenchConfig) -> NodeSetOptions:
    """Return the node-set options of a 'nodes' or 'pipeline' rig.

    The root namespace and no parameters file: the nodes run at their declared defaults,
    with the bench's model, labels and thread count.
    """
    classifier = {'num_threads': str(config.num_threads)}
    if config.labels_path:
        classifier['labels_path'] = config.labels_path
    if rig.explain:
        classifier['explain_period_s'] = str(EXPLAIN_PERIOD_S)
    return NodeSetOptions(
        namespace='', params_file=None, image_topic=f'/{IMAGE_TOPIC}',
        compressed=rig.transport == 'compressed', gps_topic=None,
        model_path=config.model_path, single_process=rig.layout == 'pipeline',
        node_parameters={DISEASE_CLASSIFIER.name: classifier, PIPELINE.name: classifier})


def rig_commands(rig: Rig, config: BenchConfig,
                 keras_model: Path | None) -> dict[str, list[str]]:
    """Return the child processes of a rig besides the camera: name -> argv."""
    if rig.layout in LAYOUTS:
        # The recorder is downstream of 'classification' and writes map files: not timed.
        return {command.name: command.argv
                for command in node_commands(node_set_options(rig, config))
                if not command.executable.writes_map}
    if rig.layout == 'relay':
        return {'dds_relay': worker_command('relay')}
    if rig.layout == 'baseline':
        if keras_model is None:
            raise BenchError('the baseline needs a float Keras model')
        from plant_disease_ros.core.classifier import default_model_path, labels_beside

        labels = config.labels_path or str(labels_beside(
            Path(config.model_path) if config.model_path else default_model_path()))
        return {'keras_baseline': worker_command('baseline', '--keras-model', str(keras_model),
                                                 '--labels', labels)}
    raise BenchError(f'unknown rig layout {rig.layout!r}')


def file_identity(path: Path) -> dict[str, Any]:
    """Return ``{path, sha256, bytes}`` of a file (absolute path; None and the error if
    it cannot be read)."""
    path = path.resolve()
    digest = hashlib.sha256()
    try:
        with open(path, 'rb') as file:
            for block in iter(lambda: file.read(1 << 20), b''):
                digest.update(block)
        size = path.stat().st_size
    except OSError as error:
        return {'path': str(path), 'sha256': None, 'bytes': None,
                'error': f'{type(error).__name__}: {error.strerror or error}'}
    return {'path': str(path), 'sha256': digest.hexdigest(), 'bytes': size}


def model_files(config: BenchConfig, keras_model: Path | None) -> dict[str, dict[str, Any]]:
    """Return the identity (:func:`file_identity`) of the files the bench measures.

    ``model`` and ``labels`` as the nodes and the model section resolve them (the shipped
    model when ``--model`` is not given, labels beside the model when ``--labels`` is
    not); ``keras`` only when the baseline runs.
    """
    from plant_disease_ros.core.classifier import default_model_path, labels_beside

    model = Path(config.model_path) if config.model_path else default_model_path()
    labels = Path(config.labels_path) if config.labels_path else labels_beside(model)
    files = {'model': file_identity(model), 'labels': file_identity(labels)}
    if keras_model is not None and 'baseline' in config.sections:
        files['keras'] = file_identity(keras_model)
    return files


class Bench:
    """Run the selected sections and collect the report."""

    def __init__(self, config: BenchConfig) -> None:
        """Prepare the environment (before rclpy is imported) and the log folder."""
        self.config = config
        self.environment = prepare_environment(config.domain_id)
        self.log_dir = Path(config.log_dir) if config.log_dir else Path(
            tempfile.mkdtemp(prefix='plant_disease_bench_'))
        self.log_dir.mkdir(parents=True, exist_ok=True)
        self.errors: list[str] = []
        self.probe: Probe | None = None

    def say(self, text: str) -> None:
        """Report progress."""
        if self.config.progress is not None:
            self.config.progress(text)

    def record_error(self, where: str, error: BaseException) -> None:
        """Keep ``error`` for the report and say it; the bench goes on."""
        text = f'{where}: {type(error).__name__}: {error}'
        self.errors.append(text)
        self.say(f'error: {text}')

    def keras_model_path(self) -> Path | None:
        """Return the float Keras model for the baseline, or None (baseline skipped)."""
        if self.config.keras_model:
            path = Path(self.config.keras_model)
        else:
            from plant_disease_ros.core.classifier import default_model_path

            path = default_model_path().parent / KERAS_MODEL_FILENAME
        return path if path.is_file() else None

    def run(self) -> dict[str, Any]:
        """Run every selected section; return the report (errors included, never raised)."""
        config = self.config
        report: dict[str, Any] = {
            'schema': 1,
            'machine': describe_machine(),
            'environment': self.environment,
            'settings': {key: value for key, value in asdict(config).items()
                         if key != 'progress'},
            'log_dir': str(self.log_dir),
        }
        report['settings']['sections'] = list(config.sections)
        keras_model = self.keras_model_path()
        # What was measured, whatever sections run: settings' '' means "the default".
        report['models'] = model_files(config, keras_model)
        if report['machine']['busy']:
            self.say('warning: the machine is busy (see busy_processes_at_start); the '
                     'figures will be pessimistic')
        if 'model' in config.sections:
            self.say('model: invoke at 1 and 2 threads, classify(), conversions')
            try:
                report['model'] = bench_model(config)
            except Exception as error:  # noqa: BLE001 - report and go on
                self.record_error('model', error)
        if 'baseline' in config.sections and keras_model is None:
            report['baseline'] = {'skipped': 'no float Keras model (--keras-model, default '
                                             f'models/{KERAS_MODEL_FILENAME})'}
        summaries = [result.summary() for result in self.run_plan(keras_model)]
        for kind in ('latency', 'sustained', 'capacity'):
            report[kind] = [s for s in summaries if s['kind'] == kind]
        baseline_runs = {s['kind']: s for s in summaries if s['kind'].startswith('baseline')}
        if 'baseline' in baseline_runs:
            report['baseline'] = baseline_summary(
                baseline_runs['baseline'], baseline_runs.get('baseline-capacity'),
                report['sustained'], report['capacity'], str(keras_model))
        if 'explain' in config.sections:
            report['explain'] = explain_summary(
                [s for s in summaries if s['kind'].startswith('explain')],
                self.explanation_core())
        report['bars'] = evaluate_bars(report)
        report['errors'] = self.errors
        return report

    def run_plan(self, keras_model: Path | None) -> list[PhaseResult]:
        """Run every rig of the plan with one probe; a failed rig does not stop the rest."""
        plan = build_plan(self.config, keras_model)
        if not plan:
            return []
        results: list[PhaseResult] = []
        try:
            self.probe = Probe()
        except Exception as error:  # noqa: BLE001 - the sections measured so far are kept
            self.record_error('probe (the bench node that times the rigs)', error)
            return []
        try:
            for rig, phases in plan:
                try:
                    results += self.run_rig(rig, phases, keras_model)
                except Exception as error:  # noqa: BLE001 - the other rigs still run
                    self.record_error(rig.name, error)
        finally:
            self.probe.close()
            self.probe = None
        return results

    def explanation_core(self) -> dict[str, Any] | None:
        """Return the in-process cost of one explanation map, None if it failed."""
        try:
            return bench_explanation(self.config)
        except Exception as error:  # noqa: BLE001 - report and go on
            self.record_error('explain (core)', error)
            return None

    def require_probe(self) -> Probe:
        """Return the probe of the running plan."""
        if self.probe is None:
            raise BenchError('no probe: rigs run inside run_plan()')
        return self.probe

    def run_rig(self, rig: Rig, phases: list[Phase],
                keras_model: Path | None) -> list[PhaseResult]:
        """Start a rig's processes, warm it up, run its phases, stop it."""
        self.say(f'{rig.name}: starting')
        extra = {} if rig.malloc_tuning else {allocator_tuning.ENV_SWITCH: '0'}
        group = ProcessGroup(self.log_dir / rig.name, ros_environment(**extra))
        sampler: ProcessSampler | None = None
        publisher: PublisherWorker | None = None
        results = []
        try:
            # The camera first: 'auto' QoS subscriptions then match its reliability at once.
            publisher = PublisherWorker(group)
            commands = rig_commands(rig, self.config, keras_model)
            for name, argv in commands.items():
                group.start(name, argv)
            self.wait_for_classification(group)
            sampler = ProcessSampler(group.children).start()
            for width, height in sorted({(phase.width, phase.height) for phase in phases}):
                self.warm_up(rig, publisher, group, width, height)
            for phase in phases:
                result = self.run_phase(rig, phase, publisher, group, sampler,
                                        list(commands))
                results.append(result)
                summary = result.summary()
                self.say(f'  published {summary["published"]}, processed '
                         f'{summary["processed"]} ({summary["processed_fps"]:g} fps), '
                         f'latency p50 {summary["latency_ms"]["p50"]} ms, p95 '
                         f'{summary["latency_ms"]["p95"]} ms')
        finally:
            if sampler is not None:
                sampler.stop()
            if publisher is not None:
                # 'quit' and the end of its stdin: the camera ends on its own, whatever
                # signals its process ignores (a bench run as a background job).
                publisher.close()
            group.stop(timeout_s=STOP_TIMEOUT_S)
        return results

    def wait_for_classification(self, group: ProcessGroup) -> None:
        """Wait until the rig publishes ``classification``; raise if a child exits."""
        probe = self.require_probe()
        deadline = time.monotonic() + START_TIMEOUT_S
        while probe.classification_publishers() == 0:
            group.check_alive()
            if time.monotonic() > deadline:
                raise BenchError(f'no classification publisher after {START_TIMEOUT_S:g} s '
                                 f'(logs in {group.log_dir})')
            time.sleep(0.2)

    def run_phase(self, rig: Rig, phase: Phase, publisher: PublisherWorker,
                  group: ProcessGroup, sampler: ProcessSampler,
                  nodes: list[str]) -> PhaseResult:
        """Publish one phase, wait for its classifications and measure it."""
        probe = self.require_probe()
        self.say(f'{rig.name}: {phase.name} ({phase.rate_hz:g} Hz, {phase.duration_s:g} s)')
        if phase.kind == 'explain-on':
            probe.watch_explanations(True)
            time.sleep(1.0)  # let the classifier see the new subscriber
        explanations_before = probe.explanations
        counters = cpu_time_counters()
        report = publisher.run_phase(phase)
        stolen = steal_percent(counters, cpu_time_counters())
        self.drain(phase.name, report['published'])
        group.check_alive()
        result = PhaseResult.from_receipts(rig.name, phase, report, probe.received(phase.name))
        for name in [*nodes, PUBLISHER]:
            result.processes[name] = sampler.summary(name, result.t0_ns, result.t1_ns)
        result.steal_percent = stolen
        result.explanations = probe.explanations - explanations_before
        if phase.kind == 'explain-on':
            probe.watch_explanations(False)
        return result

    def warm_up(self, rig: Rig, publisher: PublisherWorker, group: ProcessGroup,
                width: int, height: int) -> None:
        """Publish 1-s bursts until a few frames of this size came back."""
        probe = self.require_probe()
        name = f'warm-{rig.name}-{width}x{height}'
        deadline = time.monotonic() + WARM_UP_TIMEOUT_S
        while len(probe.received(name)) < WARM_UP_FRAMES:
            if time.monotonic() > deadline:
                raise BenchError(f'{rig.name}: no {width}x{height} frame came back in '
                                 f'{WARM_UP_TIMEOUT_S:g} s (logs in {group.log_dir})')
            publisher.run_phase(Phase(name, 'warmup', width, height, rig.transport,
                                      LATENCY_RATE_HZ, 1.0))
            group.check_alive()
        time.sleep(0.5)

    def drain(self, frame_id: str, published: int, quiet_s: float = 0.5,
              limit_s: float = 15.0) -> None:
        """Wait until every frame came back or none came for ``quiet_s``."""
        probe = self.require_probe()
        deadline = time.monotonic() + limit_s
        count, last_change = -1, time.monotonic()
        while time.monotonic() < deadline:
            received = len(probe.received(frame_id))
            if received >= published:
                return
            if received != count:
                count, last_change = received, time.monotonic()
            elif time.monotonic() - last_change > quiet_s:
                return
            time.sleep(0.05)


def run_bench(config: BenchConfig) -> dict[str, Any]:
    """Run the bench with ``config``; return the report."""
    return Bench(config).run()
