"""What the recorder's ``markers`` cost per publication on a large field map.

Usage (from the repository root, after ``scripts/setup_env.sh``)::

    source scripts/ros_env.sh
    .venv/bin/python benchmarks/markers.py [--cells 5000] [--rounds 20]

Fills a real ``disease_map_recorder`` node (no DDS traffic: only its map) with one
detection in each of ``--cells`` grid cells, then times, alternating in one run, building
and serialising the MarkerArray as before (every cell's markers built again each
publication: the baseline) and as now (one cell changed since the last publication: its
markers built again, the others reused). Prints the p50 of each and their ratio. Since
the change, a map that did not change is not published at all.
"""

from __future__ import annotations

import argparse
import os
import statistics
import tempfile
import time

import rclpy
from rclpy.serialization import serialize_message

from plant_disease_ros.core.geodesy import enu_to_geodetic
from plant_disease_ros.nodes.disease_map_recorder import DiseaseMapRecorder

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


def measure(cells: int, rounds: int) -> None:
    """Print the p50 build + serialise time of a full rebuild and of one changed cell."""
    os.environ.setdefault('ROS_AUTOMATIC_DISCOVERY_RANGE', 'LOCALHOST')
    context = rclpy.Context()
    rclpy.init(context=context)
    folder = tempfile.mkdtemp(prefix='markers_bench_')
    recorder = DiseaseMapRecorder(context=context, parameter_overrides=[
        rclpy.parameter.Parameter(name, value=value) for name, value in (
            ('map_dir', folder), ('run_name', 'bench'), ('use_datum', True),
            ('datum_latitude', DATUM[0]), ('datum_longitude', DATUM[1]),
            ('datum_altitude', DATUM[2]), ('cell_size_m', CELL_M),
            ('marker_period_s', 60.0))])
    try:
        side = int(cells ** 0.5) + 1
        for number in range(cells):
            east, north = (number % side + 0.5) * CELL_M, (number // side + 0.5) * CELL_M
            recorder._add_to_map(detection(number, east, north))  # noqa: SLF001 - the map only
        recorder.build_markers()
        full, one = [], []
        for round_number in range(rounds):
            # Before: every cell's markers built again at every publication.
            recorder._changed_cells.update(recorder._cell_markers)  # noqa: SLF001
            start = time.perf_counter()
            serialize_message(recorder.build_markers())
            full.append(time.perf_counter() - start)
            # Now: one detection since the last publication.
            recorder._add_to_map(detection(cells + round_number, 0.5, 0.5))  # noqa: SLF001
            start = time.perf_counter()
            serialize_message(recorder.build_markers())
            one.append(time.perf_counter() - start)
        before, after = statistics.median(full), statistics.median(one)
        print(f'{cells} cells ({2 * cells} markers), {rounds} rounds alternating:')
        print(f'  every cell rebuilt (before): p50 {before * 1e3:.1f} ms a publication')
        print(f'  one cell changed (now):      p50 {after * 1e3:.1f} ms a publication')
        print(f'  ratio {before / after:.1f}x; an unchanged map is no longer published')
    finally:
        recorder.destroy_node()
        rclpy.shutdown(context=context)


def main() -> None:
    """Parse the arguments and run the measurement."""
    parser = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    parser.add_argument('--cells', type=int, default=5000)
    parser.add_argument('--rounds', type=int, default=20)
    args = parser.parse_args()
    measure(args.cells, args.rounds)


if __name__ == '__main__':
    main()
