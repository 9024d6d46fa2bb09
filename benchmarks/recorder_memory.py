"""What the recorder's map holds in memory per grid cell, and what its markers cost.

Usage (from the repository root, after ``scripts/setup_env.sh``)::

    source scripts/ros_env.sh
    .venv/bin/python benchmarks/recorder_memory.py [--cells 2000 20000] [--rounds 5]
        [--before 0c0e96a] [--before-map 36ef509]

For each ``--cells`` N, a fresh process fills a real ``disease_map_recorder`` (no DDS
traffic: its detection callback is called directly) with N detections in N distinct
cells, then reports bytes per cell:

- traced (``tracemalloc``, deterministic): the cells and the run summary that the
  detections made, the markers cache as the recorder builds it (its cells' markers
  sharing the frame's parts) and as it was before (every marker holding its own header,
  texture, lists...), and ``map/geojson``'s cell cache (``CellCache``, filled once a
  subscriber gets the map) as the recorder keeps it (each cell's Feature as its JSON
  text) and as it was before (``--before-map``: as dicts and lists; that revision's
  caching on today's cell geometry, ``map_gis.cell_ring``, which 88fbded changed on
  purpose), with the length of the map text it publishes;
- resident (``psutil``, a second fresh process without tracemalloc): the growth after
  the detections, after the whole ``markers`` array was published (latched: DDS keeps a
  serialised copy) and after the ``map/geojson`` cell cache was filled, each way.

Then, in that second process, alternating the two ways ``--rounds`` times, the p50 of a
whole ``markers`` array and of a changed-cell one after one new detection (built and
serialised), and of a ``map/geojson`` message after one changed cell (its text built, as
the recorder's cache does now or did before, in a foxglove_msgs/GeoJSON, serialised),
with the ratios of the recorder's way to the one before. The two ways' map texts are
checked byte for byte.
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

from plant_disease_ros.core import map_gis
from plant_disease_ros.core.map_grid import CellAggregator
from plant_disease_ros.nodes import disease_map_recorder as recorder_node
from plant_disease_ros.nodes.disease_map_recorder import DiseaseMapRecorder
from plant_disease_ros.ros.typed_outputs import collection_message, import_messages

REPOSITORY = Path(__file__).resolve().parent.parent
MARKERS_MODULE = 'plant_disease_ros/ros/markers.py'
# The last revision whose markers each held their own parts.
BEFORE = '0c0e96a'
MAP_GIS_MODULE = 'plant_disease_ros/core/map_gis.py'
# The last revision whose CellCache held each cell's Feature as dicts and lists.
BEFORE_MAP = '36ef509'
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
    sys.modules[module.__name__] = module     # for its dataclasses
    exec(compile(source, f'{revision}:{path}', 'exec'), module.__dict__)  # noqa: S102
    return module


def map_gis_at(revision: str) -> ModuleType:
    """Return ``core/map_gis.py`` at ``revision``: its cell cache on today's cell geometry.

    Its ``cell_ring`` is replaced by today's (88fbded moved the corners of cells far from
    the origin on purpose), so that the two ways differ only in how they cache: the map
    texts can be compared byte for byte and the times read as the cache's.
    """
    module = module_at(revision, MAP_GIS_MODULE)
    module.cell_ring = map_gis.cell_ring
    return module


def filled_cell_cache(aggregator: CellAggregator, module: ModuleType) -> object:
    """Return a ``module.CellCache`` filled with ``aggregator``'s cells as ``map/geojson``
    fills it: with their text now (``aggregator_geojson``), their dicts before."""
    cache = module.CellCache()
    map_text(aggregator, module, cache)
    return cache


def map_text(aggregator: CellAggregator, module: ModuleType, cache: object) -> bytes | list:
    """Return what ``map/geojson`` is built from with ``module``'s ``cache``: the map's
    text now, the cells' Features (encoded by ``collection_message``) before."""
    if hasattr(module, 'aggregator_geojson'):
        return module.aggregator_geojson(aggregator, cache)
    return module.aggregator_features(aggregator, cache)


def map_message(aggregator: CellAggregator, module: ModuleType, cache: object,
                foxglove_msgs: ModuleType | None) -> bytes:
    """Return the serialised ``map/geojson`` message (its text without foxglove_msgs)."""
    value = map_text(aggregator, module, cache)
    if foxglove_msgs is None:
        return value if isinstance(value, bytes) else json.dumps(
            {'type': 'FeatureCollection', 'features': value}, separators=(',', ':'),
            allow_nan=False).encode()
    return serialize_message(collection_message(value, foxglove_msgs))


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


def measure_traced(cells: int, before: ModuleType, before_map: ModuleType) -> dict:
    """Return the traced bytes per cell of each structure (a fresh process's work)."""
    tracemalloc.start()
    with recorder_on_ram_disk() as recorder:
        result = {'cells_and_summary': traced(lambda: feed(recorder, cells))[0] / cells}
        recorder.build_markers()    # the marker ids: neither way's cache
        for name, way in (('markers_before', before), ('markers_now', None)):
            size, cache = traced(lambda way=way: markers_cache(recorder, way))
            result[name] = size / cells
            del cache
        aggregator = recorder._aggregator  # noqa: SLF001
        for name, module in (('cell_cache_before', before_map), ('cell_cache_now', map_gis)):
            size, cache = traced(lambda module=module: filled_cell_cache(aggregator, module))
            result[name] = size / cells
            del cache
        result['map_text'] = len(map_gis.aggregator_geojson(aggregator)) / cells
    tracemalloc.stop()
    return result


def measure_resident(cells: int, rounds: int, before: ModuleType, before_map: ModuleType,
                     way: str) -> dict:
    """Return the RSS growth per cell, the markers and the map's cell cache built ``way``
    ('before' or 'now'), and with 'now' the markers and ``map/geojson`` publication times,
    both ways alternating (fresh process)."""
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
        aggregator = recorder._aggregator  # noqa: SLF001
        cell_cache = filled_cell_cache(aggregator, before_map if way == 'before' else map_gis)
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
        foxglove_msgs = import_messages('foxglove_msgs')[0]
        maps = {'before': (before_map, filled_cell_cache(aggregator, before_map)),
                'now': (map_gis, cell_cache)}
        texts = {name: map_message(aggregator, *way, None) for name, way in maps.items()}
        result['map_identical'] = texts['before'] == texts['now']
        del texts
        result['map_message'] = 'serialised' if foxglove_msgs else 'text only'
        for name in maps:
            times[f'{name} map'] = []
        for _ in range(rounds):
            for name, way in maps.items():
                sequence += 1
                recorder._add_to_map(detection(sequence, 0.5, 0.5))  # noqa: SLF001
                begin = time.perf_counter()
                map_message(aggregator, *way, foxglove_msgs)
                times[f'{name} map'].append(time.perf_counter() - begin)
        result['p50_ms'] = {name: statistics.median(values) * 1e3
                            for name, values in times.items()}
    return result


def child(cells: int, mode: str, rounds: int, before: str, before_map: str) -> dict:
    """Run one measurement in a fresh interpreter (this script); return its JSON."""
    output = subprocess.run(
        [sys.executable, __file__, '--child', *mode.split(), '--cells', str(cells),
         '--rounds', str(rounds), '--before', before, '--before-map', before_map],
        check=True, capture_output=True, text=True).stdout
    return json.loads(output.strip().splitlines()[-1])


def report(cells: int, rounds: int, before: str, before_map: str) -> None:
    """Print the figures of ``cells`` cells."""
    kept = child(cells, 'traced', rounds, before, before_map)
    resident_before = child(cells, 'resident before', rounds, before, before_map)
    resident = child(cells, 'resident now', rounds, before, before_map)
    print(f'{cells} cells, bytes per cell:')
    print('  traced (tracemalloc):')
    for name, value in kept.items():
        print(f'    {name:<18} {value:8.0f}')
    before, now = kept['markers_before'], kept['markers_now']
    print(f'    markers: {before / now:.1f}x less than before')
    before, now = kept['cell_cache_before'], kept['cell_cache_now']
    print(f'    cell cache: now/before {now / before:.2f} ({before / now:.1f}x less)')
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
    print(f'  map/geojson, {rounds} rounds alternating, p50 after one changed cell '
          f'(message built, {resident["map_message"]}):')
    print(f'    {"map":<8} before {p50["before map"]:8.2f} ms, now {p50["now map"]:8.2f} ms '
          f'(now/before {p50["now map"] / p50["before map"]:.2f})')
    print(f'    texts byte-identical both ways: {resident["map_identical"]}')


def main() -> None:
    """Parse the arguments and run the measurements."""
    parser = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    parser.add_argument('--cells', type=int, nargs='+', default=[2000, 20000])
    parser.add_argument('--rounds', type=int, default=5)
    parser.add_argument('--before', default=BEFORE, help='git revision whose '
                        f'{MARKERS_MODULE} builds the markers as before (default: %(default)s)')
    parser.add_argument('--before-map', default=BEFORE_MAP, help='git revision whose '
                        f'{MAP_GIS_MODULE} keeps the cells as dicts, run with the current '
                        'cell_ring (default: %(default)s)')
    parser.add_argument('--child', nargs='+', help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child is None:
        for cells in args.cells:
            report(cells, args.rounds, args.before, args.before_map)
        return
    before = module_at(args.before, MARKERS_MODULE)
    before_map = map_gis_at(args.before_map)
    if args.child == ['traced']:
        print(json.dumps(measure_traced(args.cells[0], before, before_map)))
    else:
        print(json.dumps(measure_resident(args.cells[0], args.rounds, before, before_map,
                                          args.child[1])))


if __name__ == '__main__':
    main()
