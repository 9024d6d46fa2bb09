"""What the recorder's ``markers`` cost per publication on a large field map.

Usage (from the repository root, after ``scripts/setup_env.sh``)::

    source scripts/ros_env.sh
    .venv/bin/python benchmarks/markers.py [--cells 5000] [--rounds 20]

Fills a real ``disease_map_recorder`` node (no DDS traffic: only its map) with one
detection in each of ``--cells`` grid cells, then times, alternating in one run, what a
publication after one new detection costs:

- markers, the baseline: every cell's markers built again and the whole array
  serialised;
- markers, the whole array with only the changed cell built again (what a late
  subscriber gets, and every 30 s while the map changes);
- markers, the changed cell only (every other publication);
- the whole ``map/geojson`` text with every cell's Feature built and encoded again (the
  baseline), and as the recorder builds it: each cell encoded again only when it
  changed, the cached texts joined (``CellCache``, ``aggregator_geojson``), and the
  period the recorder then keeps between two of them (``MAP_GEOJSON_MAX_SHARE``).

Prints the p50 of each and the ratios to the baselines.
"""

from __future__ import annotations

import argparse
from collections.abc import Iterator
from contextlib import contextmanager
import json
import os
import statistics
import tempfile
import time

import rclpy
from rclpy.serialization import serialize_message

from plant_disease_ros.core.geodesy import enu_to_geodetic
from plant_disease_ros.core.map_file import feature_collection
from plant_disease_ros.core.map_gis import aggregator_features, aggregator_geojson, CellCache
from plant_disease_ros.nodes.disease_map_recorder import DiseaseMapRecorder
from plant_disease_ros.ros.typed_outputs import MAP_GEOJSON_MAX_SHARE

DATUM = (50.8503, 4.3517, 60.0)
CELL_M = 2.0


def detection(sequence: int, east: float, north: float) -> dict:
    """Return a located detection Feature at ENU ``east, north`` of DATUM."""
    latitude, longitude, altitude = enu_to_geodetic(east, north, 0.0, *DATUM)
    label = 'Tomato___Late_blight' if sequence % 3 else 'Tomato___healthy'
    return {'type': 'Feature',
            'geometry': {'type': 'Point', 'coordinates': [longitude, latitude, altitude]},
            'properties': {'stamp': {'sec': sequence, 'nanosec': 0}, 'frame_id': 'camera',
                           'label': label, 'class_index': 3, 'confidence': 0.9,
                           'healthy': label.endswith('healthy'), 'fix_status': 'interpolated'}}


def cell_centre(number: int, cells: int) -> tuple[float, float]:
    """Return ENU east, north of the ``number``-th of ``cells`` cells filled row by row."""
    side = int(cells ** 0.5) + 1
    return (number % side + 0.5) * CELL_M, (number // side + 0.5) * CELL_M


@contextmanager
def bench_recorder(folder: str | None = None) -> Iterator[DiseaseMapRecorder]:
    """Yield a ``disease_map_recorder`` on its own context (map in ``folder``, else a temp)."""
    os.environ.setdefault('ROS_AUTOMATIC_DISCOVERY_RANGE', 'LOCALHOST')
    context = rclpy.Context()
    rclpy.init(context=context)
    folder = folder or tempfile.mkdtemp(prefix='markers_bench_')
    recorder = DiseaseMapRecorder(context=context, parameter_overrides=[
        rclpy.parameter.Parameter(name, value=value) for name, value in (
            ('map_dir', folder), ('run_name', 'bench'), ('use_datum', True),
            ('datum_latitude', DATUM[0]), ('datum_longitude', DATUM[1]),
            ('datum_altitude', DATUM[2]), ('cell_size_m', CELL_M),
            ('marker_period_s', 60.0))])
    try:
        yield recorder
    finally:
        recorder.destroy_node()
        rclpy.shutdown(context=context)


def measure(cells: int, rounds: int) -> None:
    """Print the p50 build + serialise time of a full rebuild and of one changed cell."""
    with bench_recorder() as recorder:
        for number in range(cells):
            recorder._add_to_map(  # noqa: SLF001 - the map only
                detection(number, *cell_centre(number, cells)))
        recorder.build_markers()
        cache = CellCache()
        aggregator = recorder._aggregator  # noqa: SLF001
        aggregator_geojson(aggregator, cache)
        times: dict[str, list[float]] = {name: [] for name in (
            'rebuilt', 'whole', 'changed', 'geojson', 'geojson_cached')}

        def timed(name: str, work) -> None:
            start = time.perf_counter()
            work()
            times[name].append(time.perf_counter() - start)

        for round_number in range(rounds):
            # Baseline: every cell's markers built again, the whole array serialised.
            recorder._changed_cells.update(recorder._cell_markers)  # noqa: SLF001
            timed('rebuilt', lambda: serialize_message(recorder.build_markers(full=True)))
            for name, full in (('whole', True), ('changed', False)):
                recorder._add_to_map(  # noqa: SLF001
                    detection(cells + 2 * round_number + full, 0.5, 0.5))
                timed(name, lambda full=full: serialize_message(
                    recorder.build_markers(full=full)))
            timed('geojson', lambda: json.dumps(feature_collection(
                aggregator_features(aggregator)), separators=(',', ':'), allow_nan=False))
            timed('geojson_cached', lambda: aggregator_geojson(aggregator, cache))
        p50 = {name: statistics.median(values) * 1e3 for name, values in times.items()}
        print(f'{cells} cells ({2 * cells} markers), {rounds} rounds alternating, p50 a '
              'publication after one new detection:')
        print(f'  markers, every cell rebuilt, whole array (baseline): {p50["rebuilt"]:.1f} ms')
        print(f'  markers, one cell rebuilt, whole array:  {p50["whole"]:.1f} ms '
              f'({p50["rebuilt"] / p50["whole"]:.1f}x)')
        print(f'  markers, the changed cell only (now):    {p50["changed"]:.2f} ms '
              f'({p50["rebuilt"] / p50["changed"]:.0f}x)')
        print(f'  map/geojson text, every cell built and encoded (baseline): '
              f'{p50["geojson"]:.1f} ms')
        text_ms = p50['geojson_cached']
        print(f'  map/geojson text, changed cells encoded, joined (now):      {text_ms:.1f} ms '
              f'({p50["geojson"] / text_ms:.1f}x); published only while subscribed, at most '
              f'every {text_ms / MAP_GEOJSON_MAX_SHARE / 1e3:.2f} s')


def main() -> None:
    """Parse the arguments and run the measurement."""
    parser = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    parser.add_argument('--cells', type=int, default=5000)
    parser.add_argument('--rounds', type=int, default=20)
    args = parser.parse_args()
    measure(args.cells, args.rounds)


if __name__ == '__main__':
    main()
