"""How the bench starts its rigs and turns receipts and samples into figures (no DDS)."""

from __future__ import annotations

import json
import math
from pathlib import Path
import subprocess
import sys

import pytest

from plant_disease_ros.tools.bench import (
    baseline_summary,
    BenchConfig,
    BenchError,
    FLOOD,
    Phase,
    PhaseResult,
    process_summary,
    Rig,
    rig_commands,
    Sample,
    worker_command,
    write_report,
)

MB = 1024 * 1024
S = 1_000_000_000  # nanoseconds in a second


def ros_args(argv: list[str]) -> list[str]:
    """Return the part of a command line after ``--ros-args``."""
    return argv[argv.index('--ros-args') + 1:]


def test_pipeline_rig_is_the_node_sets_pipeline_without_the_recorder() -> None:
    config = BenchConfig(num_threads=3, model_path='m.tflite', labels_path='l.txt')
    commands = rig_commands(Rig('pipeline', 'raw', explain=True), config, None)
    assert list(commands) == ['plant_disease_pipeline']
    args = ros_args(commands['plant_disease_pipeline'])
    for expected in ('__ns:=/', 'image_transport:=raw', 'image_raw:=/image_raw', 'num_threads:=3',
                     'model_path:=m.tflite', 'labels_path:=l.txt', 'explain_period_s:=1.0'):
        assert expected in args
    assert '--params-file' not in args  # the nodes' declared defaults


def test_nodes_rig_passes_the_transport_to_the_camera_and_the_model_to_the_classifier() -> None:
    commands = rig_commands(Rig('nodes', 'compressed'), BenchConfig(), None)
    assert list(commands) == ['camera_subscriber', 'disease_classifier']
    camera = ros_args(commands['camera_subscriber'])
    assert 'image_transport:=compressed' in camera
    assert 'image_raw/compressed:=/image_raw/compressed' in camera
    assert 'num_threads:=2' not in camera
    classifier = ros_args(commands['disease_classifier'])
    assert 'num_threads:=2' in classifier
    assert not any(arg.startswith(('model_path', 'labels_path', 'explain_period_s'))
                   for arg in classifier)


def test_relay_and_baseline_rigs_are_bench_workers() -> None:
    assert rig_commands(Rig('relay', 'raw'), BenchConfig(), None) == {
        'dds_relay': [sys.executable, '-m', 'plant_disease_ros.tools.bench', 'relay']}
    baseline = rig_commands(Rig('baseline', 'raw'), BenchConfig(labels_path='l.txt'),
                            Path('float.keras'))
    assert baseline == {'keras_baseline': worker_command(
        'baseline', '--keras-model', 'float.keras', '--labels', 'l.txt')}
    with pytest.raises(BenchError):
        rig_commands(Rig('baseline', 'raw'), BenchConfig(), None)


def test_phase_result_times_each_receipt_against_its_stamp() -> None:
    phase = Phase('lat-x', 'latency', 640, 480, 'raw', 5.0, 3.0)
    report = {'published': 4, 't0_ns': 10 * S, 't1_ns': 13 * S,
              'publish_ms': {'p50': 0.5}}
    # (receipt, stamp, DDS reception): out of order, one without a DDS time.
    receipts = [(12 * S + 4_000_000, 12 * S, 12 * S + 3_000_000),
                (10 * S + 2_000_000, 10 * S, 0),
                (11 * S + 3_000_000, 11 * S, 11 * S + 2_000_000)]
    result = PhaseResult.from_receipts('pipeline-raw', phase, report, receipts)
    assert result.latencies_ms == [2.0, 3.0, 4.0]
    assert result.receipt_offsets_s == pytest.approx([0.002, 1.003, 2.004])
    assert result.dds_latencies_ms == [2.0, 3.0]
    summary = result.summary()
    assert summary['published'] == 4 and summary['processed'] == 3
    assert summary['dropped'] == 1
    assert summary['processed_fps'] == 1.0 and summary['published_fps'] == pytest.approx(1.33)
    assert summary['latency_ms']['p50'] == 3.0 and summary['latency_ms']['max'] == 4.0
    assert summary['latency_at_dds_receipt_ms']['n'] == 2
    assert summary['camera_publish_ms'] == {'p50': 0.5}
    # Windows of a third of the run: the first and the last frame only.
    assert summary['latency_p95_first_ms'] == 2.0
    assert summary['latency_p95_last_ms'] == 4.0


def test_process_summary_reads_rss_growth_after_the_settle_time() -> None:
    # 60 s sampled every second: 100 MB for the first 20 s, then 104 MB.
    samples = [Sample(second * S, 50.0 if second % 2 else 30.0,
                      (100 if second < 20 else 104) * MB) for second in range(61)]
    figures = process_summary(samples, 0, 60 * S)
    assert figures['samples'] == 61
    assert figures['cpu_percent_mean'] == pytest.approx(40.0, abs=0.5)
    assert figures['cpu_percent_max'] == 50.0
    # Settle 5 s, then the first 10 s window (5..15 s) against the last (50..60 s).
    assert figures['rss_start_mb'] == 100.0 and figures['rss_end_mb'] == 104.0
    assert figures['rss_growth_mb'] == 4.0
    assert figures['rss_max_mb'] == 104.0
    assert process_summary(samples, 100 * S, 110 * S) == {'samples': 0}


def test_baseline_ratios_compare_the_same_input() -> None:
    rate_hz, size = FLOOD
    base = {'processed_fps': 4.0}
    ours = [{'rig': 'nodes-raw', 'size': size, 'rate_hz': rate_hz, 'processed_fps': 30.0},
            {'rig': 'pipeline-raw', 'size': size, 'rate_hz': rate_hz, 'processed_fps': 58.0},
            {'rig': 'pipeline-raw', 'size': '640x480', 'rate_hz': 30.0,
             'processed_fps': 30.0}]
    summary = baseline_summary(base, None, ours, [], 'float.keras')
    assert summary['ratios'] == {'nodes': 7.5, 'pipeline': 14.5}
    assert summary['capacity_ratios'] == {}
    assert baseline_summary({'processed_fps': 0.0}, None, ours, [], 'k')['ratios'] == {}


def test_report_json_is_strict(tmp_path: Path) -> None:
    path = tmp_path / 'out' / 'bench.json'
    write_report({'load': (math.nan, 1.5), 'nested': {1: math.inf}}, path)
    assert json.loads(path.read_text()) == {'load': [None, 1.5], 'nested': {'1': None}}


def test_importing_the_bench_leaves_rclpy_unloaded() -> None:
    # prepare_environment() must run before rclpy is imported, so the package must not.
    code = ('import sys, plant_disease_ros.tools.bench; '
            'print(sorted(m for m in sys.modules if m.split(".")[0] == "rclpy"))')
    result = subprocess.run([sys.executable, '-c', code], capture_output=True, text=True,
                            timeout=120, check=True)
    assert result.stdout.strip() == '[]'


def test_worker_entry_point_refuses_an_unknown_worker() -> None:
    result = subprocess.run(worker_command('nonsense'), capture_output=True, text=True,
                            timeout=120, check=False)
    assert result.returncode == 2
    assert 'publisher,baseline,relay' in result.stderr


def test_a_probe_that_cannot_start_is_an_error_of_the_report_not_a_crash(
        monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    """The sections measured before the rigs (model, explain) are kept in the report."""
    from plant_disease_ros.tools.bench import runner
    from plant_disease_ros.tools.bench.config import BenchConfig

    def failing_probe() -> None:
        raise RuntimeError('rcl_init failed: the domain id is out of range')

    monkeypatch.setattr(runner, 'Probe', failing_probe)
    bench = runner.Bench(BenchConfig.quick_config(sections=('latency',), log_dir=str(tmp_path)))
    assert bench.run_plan(None) == []
    assert len(bench.errors) == 1
    assert 'probe' in bench.errors[0] and 'rcl_init failed' in bench.errors[0]


def test_the_report_names_the_files_it_measured_whatever_sections_run(
        tmp_path: Path) -> None:
    """``models``: path, sha256 and size of the model, its labels and the Keras model used."""
    import hashlib

    from plant_disease_ros.core.classifier import default_model_path, labels_beside
    from plant_disease_ros.tools.bench import runner

    model, labels, keras = (tmp_path / 'm.tflite', tmp_path / 'l.txt', tmp_path / 'k.keras')
    for path, data in ((model, b'model'), (labels, b'a\nb\n'), (keras, b'keras!')):
        path.write_bytes(data)

    def identity(path: Path, data: bytes) -> dict:
        return {'path': str(path), 'sha256': hashlib.sha256(data).hexdigest(),
                'bytes': len(data)}

    config = BenchConfig.quick_config(sections=(), model_path=str(model),
                                      labels_path=str(labels), log_dir=str(tmp_path / 'l'))
    out = tmp_path / 'bench.json'
    write_report(runner.Bench(config).run(), out)
    assert json.loads(out.read_text())['models'] == {
        'model': identity(model, b'model'), 'labels': identity(labels, b'a\nb\n')}
    # The Keras model only where the baseline runs; the defaults resolved, not ''.
    baseline = BenchConfig(sections=('baseline',), keras_model=str(keras))
    files = runner.model_files(baseline, keras)
    assert files['keras'] == identity(keras, b'keras!')
    assert files['model']['path'] == str(default_model_path().resolve())
    assert files['labels']['path'] == str(labels_beside(default_model_path()).resolve())
    assert len(files['model']['sha256']) == 64
    assert 'keras' not in runner.model_files(BenchConfig(sections=('latency',)), keras)
