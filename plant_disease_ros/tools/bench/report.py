"""The bench's report: bars checked against the figures, text tables, strict JSON.

Pure functions of the report dictionary, so that a saved JSON can be printed again.
"""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any

import numpy as np

from plant_disease_ros.tools.bench.config import (
    BAR_BASELINE_RATIO,
    BAR_E2E_OVER_INVOKE_MS,
    BAR_FLAT_RATIO,
    BAR_FLAT_SLACK_MS,
    BAR_RSS_GROWTH_MB,
    CAPACITY,
    FLOOD,
    LATENCY_RATE_HZ,
    LAYOUTS,
    STEAL_BUSY_PERCENT,
)

STATS = ('p50', 'p95', 'mean', 'n')
FLOOR_RIG = 'relay-raw'


def find_run(runs: list[dict], **match: Any) -> dict | None:
    """Return the first phase summary whose fields equal ``match``, or None."""
    for run in runs:
        if all(run.get(key) == value for key, value in match.items()):
            return run
    return None


def evaluate_bars(report: dict[str, Any]) -> list[dict[str, Any]]:
    """Check the figures against the performance bars; return one row per bar."""
    bars: list[dict[str, Any]] = []
    invoke = report.get('model', {}).get('invoke', {})
    threads = str(report.get('settings', {}).get('num_threads', 2))
    invoke_p50 = (invoke.get(threads) or {}).get('p50')
    for layout in LAYOUTS:
        run = find_run(report.get('latency', []), rig=f'{layout}-raw', size='640x480')
        if run is None or run['latency_ms']['p50'] is None:
            continue
        if invoke_p50 is None:
            # invoke is timed at 1 and 2 threads: at another thread count the bar has no
            # reference, which must show rather than the bar silently missing.
            bars.append({'bar': f'e2e p50 <= invoke p50 + {BAR_E2E_OVER_INVOKE_MS:g} ms '
                                f'(640x480 raw, {layout})',
                         'value': run['latency_ms']['p50'],
                         'limit': f'not measured (invoke at {threads} threads)',
                         'pass': 'n/a'})
            continue
        limit = invoke_p50 + BAR_E2E_OVER_INVOKE_MS
        bars.append({'bar': f'e2e p50 <= invoke p50 + {BAR_E2E_OVER_INVOKE_MS:g} ms '
                            f'(640x480 raw, {layout})',
                     'value': run['latency_ms']['p50'], 'limit': round(limit, 3),
                     'pass': run['latency_ms']['p50'] <= limit})
    rate_hz, size = FLOOD
    for run in report.get('sustained', []):
        if run['size'] != size or run['rate_hz'] != rate_hz:
            continue
        first, last = run['latency_p95_first_ms'], run['latency_p95_last_ms']
        if first is not None and last is not None:
            limit = first * BAR_FLAT_RATIO + BAR_FLAT_SLACK_MS
            bars.append({'bar': f'flood p95 flat: last {run["flat_window_s"]:g} s <= first x '
                                f'{BAR_FLAT_RATIO:g} + {BAR_FLAT_SLACK_MS:g} ms ({run["rig"]})',
                         'value': last, 'limit': round(limit, 3), 'pass': last <= limit})
        for name, figures in run['processes'].items():
            if name == 'publisher' or 'rss_growth_mb' not in figures:
                continue
            bars.append({'bar': f'flood RSS growth < {BAR_RSS_GROWTH_MB:g} MB ({name})',
                         'value': figures['rss_growth_mb'], 'limit': BAR_RSS_GROWTH_MB,
                         'pass': figures['rss_growth_mb'] < BAR_RSS_GROWTH_MB})
    rate_hz, size = CAPACITY
    for layout, ratio in report.get('baseline', {}).get('capacity_ratios', {}).items():
        if ratio is not None:
            bars.append({'bar': f'throughput >= {BAR_BASELINE_RATIO:g}x the Keras baseline '
                                f'({layout}, {size} offered at {rate_hz:g} fps)',
                         'value': ratio, 'limit': BAR_BASELINE_RATIO,
                         'pass': ratio >= BAR_BASELINE_RATIO})
    return bars


def format_cell(value: Any) -> str:
    """Return a table cell: '-' for None, yes/NO for booleans, 2 decimals below 100."""
    if value is None:
        return '-'
    if isinstance(value, bool):
        return 'yes' if value else 'NO'
    if isinstance(value, float):
        return f'{value:.2f}' if abs(value) < 100 else f'{value:.0f}'
    return str(value)


def format_table(title: str, header: list[str], rows: list[list[Any]]) -> str:
    """Return an aligned text table: the first column left-aligned, the others right."""
    cells = [[format_cell(value) for value in row] for row in rows]
    widths = [max(len(header[i]), *(len(row[i]) for row in cells)) if cells else len(header[i])
              for i in range(len(header))]

    def line(values: list[str]) -> str:
        return '  '.join(value.rjust(width) if i else value.ljust(width)
                         for i, (value, width) in enumerate(zip(values, widths, strict=True)))

    return '\n'.join([title, line(header), '  '.join('-' * w for w in widths),
                      *(line(row) for row in cells)])


def phase_runs(report: dict[str, Any]) -> list[dict[str, Any]]:
    """Return every phase summary of the report (latency, sustained, capacity, baseline)."""
    runs = [run for key in ('latency', 'sustained', 'capacity') for run in report.get(key, [])]
    baseline = report.get('baseline') or {}
    runs += [run for run in (baseline.get('run'), baseline.get('capacity_run')) if run]
    return runs


def host_steal(report: dict[str, Any]) -> dict[str, Any] | None:
    """Return the median and max host steal over the phases, or None where not measured."""
    measured = [(run['host_steal_percent'], run['phase']) for run in phase_runs(report)
                if run.get('host_steal_percent') is not None]
    if not measured:
        return None
    worst = max(measured)
    return {'median': round(float(np.median([value for value, _ in measured])), 1),
            'max': worst[0], 'max_phase': worst[1]}


def format_header(report: dict[str, Any]) -> list[str]:
    """Return the lines about the machine, its load and the host's steal."""
    machine = report['machine']
    lines = [
        f'plant-disease bench, {machine["date_utc"]} -- {machine["cpu_model"]}, '
        f'{machine["cores_usable"]} usable of {machine["cores_logical"]} logical cores, '
        f'{machine["memory_gb"]} GB, {machine["platform"]}',
        'versions: ' + ', '.join(f'{name} {version}'
                                 for name, version in machine['versions'].items()),
        f'load average at start {machine["load_average_1_5_15"]}'
        + ('  ** BUSY: figures are pessimistic **' if machine['busy'] else ''),
    ]
    steal = host_steal(report)
    if steal is not None:
        lines.append(f'host steal during the phases: median {steal["median"]:g} %, max '
                     f'{steal["max"]:g} % ({steal["max_phase"]})'
                     + ('  ** HOST BUSY: figures are pessimistic **'
                        if steal['max'] > STEAL_BUSY_PERCENT else ''))
    return lines


def format_model(model: dict[str, Any]) -> str:
    """Return the in-process table: invoke, classify() and conversions."""
    rows = [[f'invoke, {threads} thread(s)', *(s[k] for k in STATS)]
            for threads, s in model['invoke'].items()]
    rows += [[f'classify() {size}, {model["classify_threads"]} threads',
              *(s[k] for k in STATS)] for size, s in model['classify'].items()]
    rows += [[name, *(s[k] for k in STATS)]
             for name, s in model['conversions'].items() if isinstance(s, dict)]
    return format_table(f'model {Path(model["model_path"]).name} ({model.get("backend")}, '
                        f'input {model.get("input")}), ms', ['what', *STATS], rows)


def floor_key(run: dict[str, Any]) -> tuple[str, str]:
    """Return what a latency run is read against a floor by: its size and transport.

    A floor is only that of the same transport: the relay takes raw frames, whose
    transport a JPEG rig never pays (a raw 1080p frame is 6 MB, the bench's JPEG of it
    about 150 KB). Summaries without a transport (older reports) are raw.
    """
    return run['size'], run.get('transport', 'raw')


def is_floor(run: dict[str, Any]) -> bool:
    """Return whether a latency run is the relay's (a DDS floor, no work)."""
    return run['rig'].split('-')[0] == FLOOR_RIG.split('-')[0]


def format_latency(runs: list[dict[str, Any]]) -> str:
    """Return the end-to-end latency table, each rig read against the relay's floor.

    ``p50 - floor`` is '-' where no relay ran on the row's size and transport (the JPEG
    rigs: the relay takes raw frames).
    """
    floors = {floor_key(run): run['latency_ms']['p50'] for run in runs if is_floor(run)}
    rows = []
    for run in runs:
        p50, floor = run['latency_ms']['p50'], floors.get(floor_key(run))
        over = (round(p50 - floor, 2) if p50 is not None and floor is not None
                and not is_floor(run) else None)
        rows.append([run['rig'], run['size'], run['published'], run['processed'], p50,
                     run['latency_ms']['p95'], run['latency_ms']['max'],
                     run.get('host_steal_percent'), over,
                     (run.get('camera_publish_ms') or {}).get('p50'),
                     (run.get('latency_at_dds_receipt_ms') or {}).get('p50')])
    return (format_table(f'end-to-end latency, publish -> classification, '
                         f'{LATENCY_RATE_HZ:g} Hz, ms (relay = DDS floor, no work)',
                         ['rig', 'size', 'published', 'delivered', 'p50', 'p95', 'max',
                          'steal %', 'p50 - floor', 'publish()', 'p50 at DDS rx'], rows)
            + '\np50 - floor: against the relay at the same size and transport; - where '
              'none ran (the relay takes raw frames only)'
            + "\nwithin the p50: publish() = the camera's own publish call (p50); "
              "p50 at DDS rx = stamp to the probe's DDS reception, before the "
              "probe's executor runs its callback")


def format_capacity(runs: list[dict[str, Any]]) -> str:
    """Return the capacity table: what each rig processes when offered too much."""
    rows = [[run['rig'], run['published_fps'], run['processed_fps'], run['latency_ms']['p50'],
             run['latency_ms']['p95'], run.get('host_steal_percent')] for run in runs]
    rate_hz, size = CAPACITY
    return format_table(f'capacity: {size} offered at {rate_hz:g} fps',
                        ['rig', 'pub fps', 'proc fps', 'p50 ms', 'p95 ms', 'steal %'], rows)


def format_sustained(runs: list[dict[str, Any]]) -> str:
    """Return the sustained table: one row per process, the run's figures on its first."""
    rows = []
    for run in runs:
        run_cells = [run['rig'], f'{run["rate_hz"]:g} fps {run["size"]}', run['published_fps'],
                     run['processed_fps'], run['dropped'], run['latency_ms']['p95'],
                     run['latency_p95_first_ms'], run['latency_p95_last_ms'],
                     run.get('host_steal_percent')]
        for index, (name, figures) in enumerate(run['processes'].items()):
            rows.append([*(run_cells if index == 0 else [''] * len(run_cells)), name,
                         figures.get('cpu_percent_mean'), figures.get('rss_end_mb'),
                         figures.get('rss_growth_mb')])
    return format_table('sustained input (p95 ms; first/last = first and last window; '
                        'CPU % of one core; RSS MB)',
                        ['rig', 'input', 'pub fps', 'proc fps', 'dropped', 'p95', 'p95 first',
                         'p95 last', 'steal %', 'process', 'CPU %', 'RSS', 'RSS +'], rows)


def format_baseline(baseline: dict[str, Any]) -> str:
    """Return the Keras baseline table with our throughput ratios over it."""
    if 'skipped' in baseline:
        return f'baseline: skipped ({baseline["skipped"]})'
    rows: list[list[Any]] = []
    for label, run, ratios in (
            (f'{FLOOD[0]:g} fps {FLOOD[1]} flood', baseline['run'], baseline['ratios']),
            (f'{CAPACITY[1]} offered at {CAPACITY[0]:g} fps', baseline.get('capacity_run'),
             baseline.get('capacity_ratios', {}))):
        if not run:
            continue
        rows.append([label, 'keras model.predict', run['processed_fps'],
                     run['latency_ms']['p50'], run['latency_ms']['p95']])
        for layout, ratio in ratios.items():
            rows.append(['', f'{layout} / baseline throughput', ratio, None, None])
    return format_table('seed-style baseline (Keras model.predict per frame)',
                        ['input', 'what', 'proc fps / ratio', 'p50 ms', 'p95 ms'], rows)


def format_explain(explain: dict[str, Any]) -> list[str]:
    """Return the explanation-cost table, and its note if no map came back."""
    rows: list[list[Any]] = []
    core = explain.get('core', {}).get('heatmap_and_overlay_ms')
    if core:
        invokes = explain.get('core', {}).get('invocations_per_map')
        rows.append([f'occlusion grid {explain["grid"]} + overlay (in-process'
                     + (f', {invokes} invokes)' if invokes else ')'), core['p50'],
                     core['p95'], None])
    for kind in ('off', 'on'):
        run = explain.get(kind)
        if run:
            rows.append([f'pipeline 640x480 latency, explanation {kind}',
                         run['latency_ms']['p50'], run['latency_ms']['p95'],
                         run['latency_ms']['max']])
    if 'explanations_received' in explain:
        rows.append(['explanations received', explain['explanations_received'], None, None])
    parts = [format_table(f'explanation cost (every {explain["period_s"]:g} s), ms',
                          ['what', 'p50', 'p95', 'max'], rows)]
    if explain.get('note'):
        parts.append(f'explain: {explain["note"]}')
    return parts


def format_report(report: dict[str, Any]) -> str:
    """Return the report as text tables (what the command prints)."""
    parts = format_header(report)
    if report.get('settings', {}).get('quick'):
        parts.append('QUICK smoke run (--quick): runs of a few seconds, to check that every '
                     'part works; not figures to quote, and the bars below are indicative')
    if report.get('model'):
        parts.append(format_model(report['model']))
    if report.get('latency'):
        parts.append(format_latency(report['latency']))
    if report.get('capacity'):
        parts.append(format_capacity(report['capacity']))
    if report.get('sustained'):
        parts.append(format_sustained(report['sustained']))
    if report.get('baseline'):
        parts.append(format_baseline(report['baseline']))
    if report.get('explain'):
        parts += format_explain(report['explain'])
    if report.get('bars'):
        rows = [[bar['bar'], bar['value'], bar['limit'], bar['pass']] for bar in report['bars']]
        parts.append(format_table('performance bars', ['bar', 'value', 'limit', 'pass'], rows))
    parts += [f'ERROR {error}' for error in report.get('errors', [])]
    return '\n\n'.join(parts)


def json_ready(value: Any) -> Any:
    """Return ``value`` with NaN/inf replaced by None (strict JSON)."""
    if isinstance(value, float):
        return value if math.isfinite(value) else None
    if isinstance(value, dict):
        return {str(key): json_ready(item) for key, item in value.items()}
    if isinstance(value, (list, tuple)):
        return [json_ready(item) for item in value]
    return value


def write_report(report: dict[str, Any], path: Path) -> None:
    """Write the report as indented strict JSON."""
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(json_ready(report), indent=2, allow_nan=False) + '\n')
