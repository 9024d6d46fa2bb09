"""The bench's plan, bars and report (pure functions; the bench itself is not run in CI)."""

from __future__ import annotations

from pathlib import Path

from plant_disease_ros.tools.bench import (
    BenchConfig,
    build_plan,
    CAPACITY,
    cpu_time_counters,
    evaluate_bars,
    format_report,
    host_steal,
    steal_percent,
)


def _run(rig: str, size: str, p50: float, *, kind: str = 'latency', rate_hz: float = 5.0,
         processed_fps: float = 5.0, transport: str = 'raw') -> dict:
    return {'rig': rig, 'phase': f'{kind}-{rig}-{size}', 'kind': kind, 'size': size,
            'transport': transport, 'rate_hz': rate_hz, 'duration_s': 10.0, 'published': 50,
            'published_fps': rate_hz, 'processed': 50, 'processed_fps': processed_fps,
            'dropped': 0, 'latency_ms': {'n': 50, 'p50': p50, 'p95': p50 + 1.0,
                                         'mean': p50, 'max': p50 + 2.0},
            'flat_window_s': 3.3, 'latency_p95_first_ms': None,
            'latency_p95_last_ms': None, 'processes': {}, 'explanations': 0}


def test_plan_has_the_floor_first_and_capacity_for_every_layout() -> None:
    config = BenchConfig(sections=('latency', 'capacity', 'baseline'))
    plan = build_plan(config, Path('float.keras'))
    rigs = [rig.name for rig, _ in plan]
    assert rigs[0] == 'relay-raw'
    assert {phase.size for phase in plan[0][1]} == {'640x480', '1920x1080'}
    kinds = {rig.name: [phase.kind for phase in phases] for rig, phases in plan}
    rate_hz, size = CAPACITY
    for name in ('nodes-raw', 'pipeline-raw'):
        assert kinds[name].count('capacity') == 1
    assert kinds['baseline-raw'] == ['baseline', 'baseline-capacity']
    capacity = [phase for _, phases in plan for phase in phases
                if phase.kind in ('capacity', 'baseline-capacity')]
    assert {(phase.rate_hz, phase.size) for phase in capacity} == {(rate_hz, size)}
    # The shipped layout once more with glibc's malloc defaults, latency only.
    untuned = [rig for rig, _ in plan if not rig.malloc_tuning]
    assert [rig.name for rig in untuned] == ['pipeline-raw-malloc-defaults']
    assert set(kinds['pipeline-raw-malloc-defaults']) == {'latency'}


def test_plan_without_capacity_or_keras_model() -> None:
    plan = build_plan(BenchConfig(sections=('latency', 'capacity', 'baseline')), None)
    assert 'baseline-raw' not in [rig.name for rig, _ in plan]
    plan = build_plan(BenchConfig(sections=('sustained',)), None)
    assert all(phase.kind == 'sustained' for _, phases in plan for phase in phases)
    assert 'relay-raw' not in [rig.name for rig, _ in plan]
    assert all(rig.malloc_tuning for rig, _ in plan)


def _summary(p50: float) -> dict:
    return {'n': 100, 'p50': p50, 'p95': p50 * 1.2, 'mean': p50, 'max': p50 * 2}


def _report() -> dict:
    size, rate_hz = CAPACITY[1], CAPACITY[0]
    return {
        'machine': {'date_utc': 'now', 'cpu_model': 'cpu', 'cores_usable': 2,
                    'cores_logical': 2, 'memory_gb': 1.0, 'platform': 'linux',
                    'versions': {}, 'load_average_1_5_15': [0, 0, 0], 'busy': []},
        'settings': {'num_threads': 2},
        'model': {'invoke': {'1': _summary(1.5), '2': _summary(1.0)}, 'classify': {},
                  'conversions': {}, 'classify_threads': 2, 'model_path': 'm.tflite'},
        'latency': [_run('relay-raw', '640x480', 2.75), _run('nodes-raw', '640x480', 7.25),
                    _run('pipeline-raw', '640x480', 3.5)],
        'capacity': [_run('nodes-raw', size, 12.0, kind='capacity', rate_hz=rate_hz,
                          processed_fps=120.0),
                     _run('pipeline-raw', size, 6.0, kind='capacity', rate_hz=rate_hz,
                          processed_fps=240.0)],
        'baseline': {'run': _run('baseline-raw', '1920x1080', 300.0, kind='baseline',
                                 rate_hz=60.0, processed_fps=8.0),
                     'capacity_run': _run('baseline-raw', size, 150.0,
                                          kind='baseline-capacity', rate_hz=rate_hz,
                                          processed_fps=10.0),
                     'ratios': {'nodes': 7.3}, 'capacity_ratios': {'nodes': 12.0,
                                                                   'pipeline': 24.0}},
    }


def test_bars_read_latency_against_invoke_and_throughput_on_capacity() -> None:
    bars = {bar['bar']: bar for bar in evaluate_bars(_report())}
    nodes = next(bar for name, bar in bars.items() if 'e2e' in name and 'nodes' in name)
    pipeline = next(bar for name, bar in bars.items() if 'e2e' in name and 'pipeline' in name)
    assert nodes['limit'] == 4.0 and nodes['pass'] is False
    assert pipeline['value'] == 3.5 and pipeline['pass'] is True
    throughput = {name: bar for name, bar in bars.items() if 'throughput' in name}
    assert len(throughput) == 2  # the capacity ratios, not the flood's
    assert sorted(bar['pass'] for bar in throughput.values()) == [False, True]


def test_the_e2e_bar_without_an_invoke_reference_shows_as_not_measured() -> None:
    """--num-threads 4: invoke is timed at 1 and 2 threads; the bar must not just vanish."""
    report = _report()
    report['settings']['num_threads'] = 4
    e2e = [bar for bar in evaluate_bars(report) if 'e2e' in bar['bar']]
    assert len(e2e) == 2
    assert all(bar['pass'] == 'n/a' and 'not measured' in bar['limit'] for bar in e2e)


def test_a_quick_run_says_so_in_its_report() -> None:
    report = _report()
    assert 'QUICK smoke run' not in format_report(report)
    report['settings']['quick'] = True
    assert format_report(report).count('QUICK smoke run (--quick)') == 1


def test_report_shows_the_floor_and_the_cost_over_it() -> None:
    report = _report()
    nodes = report['latency'][1]
    nodes['camera_publish_ms'] = _summary(0.9)
    nodes['latency_at_dds_receipt_ms'] = _summary(6.75)
    text = format_report(report)
    assert 'p50 - floor' in text and 'p50 at DDS rx' in text
    nodes_row = next(line for line in text.splitlines() if line.startswith('nodes-raw')
                     and '640x480' in line)
    # p50 - floor (7.25 - 2.75), the camera's publish(), p50 at the probe's DDS receipt
    assert nodes_row.split()[-3:] == ['4.50', '0.90', '6.75']
    # A report from before the breakdown (no such fields) shows dashes, not an error.
    pipeline_row = next(line for line in text.splitlines() if line.startswith('pipeline-raw'))
    assert pipeline_row.split()[-2:] == ['-', '-']
    assert 'capacity: 640x480 offered at 300 fps' in text
    assert 'pipeline / baseline throughput' in text


def test_the_floor_is_only_subtracted_from_rows_of_its_transport() -> None:
    """The relay takes raw frames: a JPEG row gets no 'p50 - floor' (it never pays raw)."""
    report = _report()
    report['latency'] = [
        _run('relay-raw', '640x480', 2.0), _run('relay-raw', '1920x1080', 8.0),
        _run('nodes-raw', '640x480', 7.0), _run('nodes-raw', '1920x1080', 30.0),
        _run('nodes-compressed', '640x480', 9.0, transport='compressed'),
        _run('nodes-compressed', '1920x1080', 40.0, transport='compressed')]
    lines = format_report(report).splitlines()
    header = next(line for line in lines if line.startswith('rig') and 'p50 - floor' in line)
    column = header.index('p50 - floor') + len('p50 - floor')

    def floor_cell(rig: str, size: str) -> str:
        row = next(line for line in lines if line.startswith(rig) and size in line)
        return row[:column].split()[-1]

    assert floor_cell('nodes-raw', '640x480') == '5.00'
    assert floor_cell('nodes-raw', '1920x1080') == '22.00'
    assert floor_cell('nodes-compressed', '640x480') == '-'
    assert floor_cell('nodes-compressed', '1920x1080') == '-'
    assert floor_cell('relay-raw', '640x480') == '-'
    # A relay on the compressed transport (none runs today) would be their floor.
    report['latency'].append(_run('relay-compressed', '640x480', 3.0, transport='compressed'))
    lines = format_report(report).splitlines()
    assert floor_cell('nodes-compressed', '640x480') == '6.00'
    assert floor_cell('nodes-compressed', '1920x1080') == '-'


def test_cpu_time_counters_read_steal_and_total(tmp_path: Path) -> None:
    stat = tmp_path / 'stat'
    # user nice system idle iowait irq softirq steal guest guest_nice
    stat.write_text('cpu  100 5 20 800 10 0 5 60 30 0\ncpu0 50 2 10 400 5 0 2 30 15 0\n')
    assert cpu_time_counters(stat) == (60, 1000)  # guest time is inside user already
    stat.write_text('intr 12345\n')
    assert cpu_time_counters(stat) is None
    assert cpu_time_counters(tmp_path / 'missing') is None


def test_steal_percent_between_readings() -> None:
    assert steal_percent((60, 1000), (80, 1400)) == 5.0
    assert steal_percent((60, 1000), (60, 1000)) is None  # no time passed
    assert steal_percent(None, (60, 1000)) is None


def test_report_flags_a_busy_host() -> None:
    report = _report()
    assert host_steal(report) is None
    assert 'host steal' not in format_report(report)
    for run, steal in zip(report['latency'], (0.2, 0.4, 3.5), strict=True):
        run['host_steal_percent'] = steal
    steal = host_steal(report)
    assert steal == {'median': 0.4, 'max': 3.5, 'max_phase': 'latency-pipeline-raw-640x480'}
    text = format_report(report)
    assert 'host steal during the phases: median 0.4 %, max 3.5 %' in text
    assert 'HOST BUSY' in text
    report['latency'][2]['host_steal_percent'] = 0.5
    assert 'HOST BUSY' not in format_report(report)
