"""What the recorder's map holds in memory per grid cell, and what its markers cost.

Usage (from the repository root, after ``scripts/setup_env.sh``)::

    source scripts/ros_env.sh
    .venv/bin/python benchmarks/recorder_memory.py [--cells 2000 20000] [--rounds 5]

For each ``--cells`` N, a fresh process fills a real ``disease_map_recorder`` (no DDS
traffic: its detection callback is called directly) with N detections in N distinct
cells, then reports bytes per cell:

- traced (``tracemalloc``, deterministic): the cells and the run summary that the
  detections made, the markers cache as the recorder builds it (its cells' markers
  sharing the frame's parts) and as it was before (every marker holding its own header,
  texture, lists...), and ``map/geojson``'s cell cache (``CellCache``, filled once a
  subscriber gets the map) with the length of the map text it publishes;
- resident (``psutil``, a second fresh process without tracemalloc): the growth after
  the detections, after the whole ``markers`` array was published (latched: DDS keeps a
  serialised copy) and after the ``map/geojson`` features were built.

Then, in that second process, alternating the two markers caches ``--rounds`` times, the
p50 of a whole ``markers`` array and of a changed-cell one after one new detection (built
and serialised), with the ratios of the recorder's way to the one before.
"""

from __future__ import annotations

import argparse
from collections.abc import Callable, Iterator
from contextlib import contextmanager
import gc
import json
import os
from pathlib import Path
import statistics
import subprocess
import sys
import tempfile
import time
import tracemalloc
from types import ModuleType
from unittest import mock

from markers import bench_recorder, cell_centre, detection
import psutil
from rclpy.serialization import serialize_message
from std_msgs.msg import String

from plant_disease_ros.core.map_file import feature_collection
from plant_disease_ros.core.map_gis import aggregator_features
from plant_disease_ros.nodes import disease_map_recorder as recorder_node
from plant_disease_ros.nodes.disease_map_recorder import DiseaseMapRecorder

REPOSITORY = Path(__file__).resolve().parent.parent
MARKERS_MODULE = 'plant_disease_ros/ros/markers.py'
# The last revision whose markers each held their own parts.
BEFORE = '0c0e96a'
# Records on a RAM disk when there is one: the fsync of each is not what is measured.
RAM_DISK = '/dev/shm' if os.path.isdir('/dev/shm') else None


@contextmanager
def recorder_on_ram_disk() -> Iterator[DiseaseMapRecorder]:
    """Yield the benchmark's recorder, its run in a temporary folder on the RAM disk."""
    with tempfile.TemporaryDirectory(prefix='recorder_memory_', dir=RAM_DISK) as folder, \
            bench_recorder(folder) as recorder:
        yield recorder


def feed(recorder: DiseaseMapRecorder, cells: int) -> None:
    """Give the recorder one detection in each of ``cells`` cells, as its callback gets them."""
    for number in range(cells):
        recorder._on_detection(String(data=json.dumps(  # noqa: SLF001 - the callback
            detection(number, *cell_centre(number, cells)))))


def traced(work: Callable[[], object]) -> tuple[int, object]:
    """Return the bytes ``work()`` left allocated (tracemalloc running) and its result."""
    gc.collect()
    before = tracemalloc.get_traced_memory()[0]
    result = work()
    gc.collect()
    return tracemalloc.get_traced_memory()[0] - before, result


def module_at(revision: str, path: str) -> ModuleType:
    """Return the module of the repository file ``path`` as it was at git ``revision``."""
    source = subprocess.run(['git', 'show', f'{revision}:{path}'], cwd=REPOSITORY,
                            check=True, capture_output=True, text=True).stdout
    module = ModuleType(f'{Path(path).stem}_at_{revision}')
    exec(compile(source, f'{revision}:{path}', 'exec'), module.__dict__)  # noqa: S102
    return module


@contextmanager
def markers_way(recorder: DiseaseMapRecorder, before: ModuleType | None,
                cache: dict | None = None) -> Iterator[None]:
    """Let the recorder build and keep its markers as now, or as ``before`` (a module).

    ``before``: the ``ros.markers`` module of the revision before, whose markers each hold
    their own header, texture, lists...; ``cache``: the markers cache to use meanwhile
    (left in ``recorder._cell_markers``, as built). The recorder's own are put back.
    """
    kept = recorder._cell_markers, recorder._marker_parts  # noqa: SLF001
    if cache is not None:
        recorder._cell_markers = cache  # noqa: SLF001
    try:
        if before is None:
            yield
        else:
            recorder._marker_parts = recorder.map_frame  # noqa: SLF001 - its frame id
            with mock.patch.object(recorder_node, 'glyph_to_markers',
                                   before.glyph_to_markers):
                yield
    finally:
        recorder._cell_markers, recorder._marker_parts = kept  # noqa: SLF001


def markers_cache(recorder: DiseaseMapRecorder, before: ModuleType | None) -> dict:
    """Build every cell's markers again as now or as ``before``; return that cache."""
    cache: dict = {}
    with markers_way(recorder, before, cache):
        recorder._changed_cells.update(recorder._marker_ids)  # noqa: SLF001
        recorder.build_markers(full=False)
    return cache


def measure_traced(cells: int, before: ModuleType) -> dict:
    """Return the traced bytes per cell of each structure (a fresh process's work)."""
    tracemalloc.start()
    with recorder_on_ram_disk() as recorder:
        result = {'cells_and_summary': traced(lambda: feed(recorder, cells))[0] / cells}
        recorder.build_markers()    # the marker ids: neither way's cache
        for name, way in (('markers_before', before), ('markers_now', None)):
            size, cache = traced(lambda way=way: markers_cache(recorder, way))
            result[name] = size / cells
            del cache
        result['cell_cache'] = traced(lambda: aggregator_features(
            recorder._aggregator, recorder._cache))[0] / cells  # noqa: SLF001
        text = json.dumps(feature_collection(aggregator_features(
            recorder._aggregator, recorder._cache)), separators=(',', ':'))  # noqa: SLF001
        result['map_text'] = len(text) / cells
    tracemalloc.stop()
    return result


def measure_resident(cells: int, rounds: int, before: ModuleType, way: str) -> dict:
    """Return the RSS growth per cell, the markers built ``way`` ('before' or 'now'), and
    with 'now' the markers publication times, both ways alternating (fresh process)."""
    process = psutil.Process()

    def rss() -> int:
        gc.collect()
        return process.memory_info().rss

    result: dict = {}
    with recorder_on_ram_disk() as recorder:
        start = rss()
        feed(recorder, cells)
        after_feed = rss()
        with markers_way(recorder, before if way == 'before' else None):
            recorder.publish_markers()     # the whole array, latched
        after_markers = rss()
        aggregator_features(recorder._aggregator, recorder._cache)  # noqa: SLF001
        after_geojson = rss()
        result['rss'] = {'cells_and_summary': (after_feed - start) / cells,
                         'markers_published': (after_markers - after_feed) / cells,
                         'cell_cache': (after_geojson - after_markers) / cells,
                         'total': (after_geojson - start) / cells}
        if way == 'before':
            return result
        ways = {'before': before, 'now': None}
        caches = {name: markers_cache(recorder, way) for name, way in ways.items()}
        times: dict[str, list[float]] = {f'{way} {kind}': [] for way in caches
                                         for kind in ('whole', 'changed')}
        sequence = cells
        for _ in range(rounds):
            for name, way in ways.items():
                for kind in ('whole', 'changed'):
                    sequence += 1
                    recorder._add_to_map(detection(sequence, 0.5, 0.5))  # noqa: SLF001
                    with markers_way(recorder, way, caches[name]):
                        begin = time.perf_counter()
                        serialize_message(recorder.build_markers(full=kind == 'whole'))
                        times[f'{name} {kind}'].append(time.perf_counter() - begin)
        result['p50_ms'] = {name: statistics.median(values) * 1e3
                            for name, values in times.items()}
    return result


def child(cells: int, mode: str, rounds: int, before: str) -> dict:
    """Run one measurement in a fresh interpreter (this script); return its JSON."""
    output = subprocess.run(
        [sys.executable, __file__, '--child', *mode.split(), '--cells', str(cells),
         '--rounds', str(rounds), '--before', before],
        check=True, capture_output=True, text=True).stdout
    return json.loads(output.strip().splitlines()[-1])


def report(cells: int, rounds: int, before: str) -> None:
    """Print the figures of ``cells`` cells."""
    kept = child(cells, 'traced', rounds, before)
    resident_before = child(cells, 'resident before', rounds, before)
    resident = child(cells, 'resident now', rounds, before)
    print(f'{cells} cells, bytes per cell:')
    print('  traced (tracemalloc):')
    for name, value in kept.items():
        print(f'    {name:<18} {value:8.0f}')
    before, now = kept['markers_before'], kept['markers_now']
    print(f'    markers: {before / now:.1f}x less than before')
    print('  resident growth (psutil):   before      now')
    for name, value in resident['rss'].items():
        print(f'    {name:<18} {resident_before["rss"][name]:8.0f} {value:8.0f}')
    p50 = resident['p50_ms']
    print(f'  markers, {rounds} rounds alternating, p50 after one new detection '
          '(built and serialised):')
    for kind in ('whole', 'changed'):
        print(f'    {kind:<8} before {p50[f"before {kind}"]:8.2f} ms, now '
              f'{p50[f"now {kind}"]:8.2f} ms (now/before '
              f'{p50[f"now {kind}"] / p50[f"before {kind}"]:.2f})')


def main() -> None:
    """Parse the arguments and run the measurements."""
    parser = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    parser.add_argument('--cells', type=int, nargs='+', default=[2000, 20000])
    parser.add_argument('--rounds', type=int, default=5)
    parser.add_argument('--before', default=BEFORE, help='git revision whose '
                        f'{MARKERS_MODULE} builds the markers as before (default: %(default)s)')
    parser.add_argument('--child', nargs='+', help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child is None:
        for cells in args.cells:
            report(cells, args.rounds, args.before)
        return
    before = module_at(args.before, MARKERS_MODULE)
    if args.child == ['traced']:
        print(json.dumps(measure_traced(args.cells[0], before)))
    else:
        print(json.dumps(measure_resident(args.cells[0], args.rounds, before,
                                          args.child[1])))


if __name__ == '__main__':
    main()
