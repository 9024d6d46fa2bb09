"""What the replay's recorder holds per detection, and what writing its map costs at the end.

Usage (from the repository root, after ``scripts/setup_env.sh``)::

    source scripts/ros_env.sh
    .venv/bin/python benchmarks/replay_memory.py --before REV [--detections 20000]

Measures two trees in one run, each in a process of its own: ``REV`` (checked out in a
temporary git worktree, removed afterwards) and the working tree. In each, the replay's
``OutputRecorder`` is fed ``--detections`` synthetic detections as the classifier
publishes them (std_msgs/String CDR of a Feature, ``markers.detection``), in process, no
DDS, and a bag writer that keeps nothing. The detections are made once, by this process
(the working tree), and handed to both in a JSON file: the measured processes import
nothing of ``benchmarks/``, whose helpers follow today's package, not ``REV``'s.

- the bytes it holds afterwards (``tracemalloc``, after 100 to warm up), per detection;
- the same for a stream of frames, a classification and a detection each;
- the end of an attached replay: the map made from the detections received
  (``<run>_received.geojson``), then ``write_map`` whole (that map, the grid, the PNG):
  the wall time of each, the peak traced memory of ``write_map``, and the map's sha256
  (the same in both trees: the same map).
"""

from __future__ import annotations

import argparse
import gc
import hashlib
import inspect
import json
import os
from pathlib import Path
import subprocess
import sys
import tempfile
import time
import tracemalloc
from typing import Any

WARM_UP = 100
TOPICS = {'/ns/classification': 'std_msgs/msg/String', '/ns/detections': 'std_msgs/msg/String'}


class NullWriter:
    """A stand-in for the rosbags Writer that keeps nothing: the bag is not measured."""

    def add_connection(self, topic: str, msgtype: str, typestore: Any) -> str:
        """Return the topic as the connection."""
        return topic

    def write(self, connection: str, log_ns: int, data: bytes) -> None:
        """Drop the message."""


def string_cdr(typestore: Any, value: dict) -> bytes:
    """Return std_msgs/String CDR holding ``value`` as JSON."""
    message = typestore.types['std_msgs/msg/String'](data=json.dumps(value))
    return bytes(typestore.serialize_cdr(message, 'std_msgs/msg/String'))


def new_recorder(typestore: Any, folder: Path) -> tuple[Any, Any]:
    """Return the tree's OutputRecorder and what keeps its detections (None: itself)."""
    from plant_disease_ros.tools.replay.recorder import OutputRecorder

    if 'received' not in inspect.signature(OutputRecorder).parameters:
        return OutputRecorder(NullWriter(), typestore, TOPICS), None
    from plant_disease_ros.tools.replay.received import ReceivedDetections

    received = ReceivedDetections.create(folder, 'disease_map')
    return OutputRecorder(NullWriter(), typestore, TOPICS, received), received


def make_detections(count: int) -> list[dict]:
    """Return the ``count`` located detections both trees are fed (``markers.detection``).

    Numbered from 0, 0.3 m apart east of the benchmark's datum. Run in the working tree
    only: ``markers`` imports today's package.
    """
    from markers import detection

    return [detection(number, 0.3 * number, 0.0) for number in range(count)]


def held_bytes(typestore: Any, folder: Path, detections: list[dict], count: int,
               frames: bool) -> int:
    """Return the traced bytes the recorder holds after ``count`` more detections."""
    recorder, received = new_recorder(typestore, folder)
    messages = [string_cdr(typestore, detections[number]) for number in range(WARM_UP + count)]

    def feed(number: int) -> None:
        if frames:
            recorder.receive('/ns/classification', 'classification', string_cdr(
                typestore, {'stamp': {'sec': number, 'nanosec': 0}, 'label': 'a'}))
        recorder.receive('/ns/detections', 'detections', messages[number])

    for number in range(WARM_UP):
        feed(number)
    gc.collect()
    tracemalloc.start()
    try:
        before = tracemalloc.get_traced_memory()[0]
        for number in range(WARM_UP, WARM_UP + count):
            feed(number)
        gc.collect()
        held = tracemalloc.get_traced_memory()[0] - before
    finally:
        tracemalloc.stop()
    if received is not None:
        received.discard()
    return held


def map_end(typestore: Any, folder: Path, detections: list[dict], count: int,
            traced: bool) -> dict[str, Any]:
    """Feed ``count`` detections, then time the end of an attached replay's map."""
    from plant_disease_ros.tools.replay.outputs import write_map
    from plant_disease_ros.tools.replay.summary import ReplaySummary

    recorder, received = new_recorder(typestore, folder)
    for number in range(count):
        recorder.receive('/ns/detections', 'detections',
                         string_cdr(typestore, detections[number]))
    summary = ReplaySummary(bag=Path('field.mcap'), image_topic='/cam', fix_topic='/fix',
                            mode='fast, attached')
    gc.collect()
    if traced:
        tracemalloc.start()
    start = time.perf_counter()
    kept = recorder.counts().features if received is None else received
    write_map(summary, kept, folder, 'disease_map', True)
    seconds = time.perf_counter() - start
    peak = tracemalloc.get_traced_memory()[1] if traced else 0
    if traced:
        tracemalloc.stop()
    digest = hashlib.sha256(Path(summary.geojson).read_bytes()).hexdigest()
    if received is not None:
        received.discard()
    return {'write_map_s': seconds, 'write_map_peak_bytes': peak, 'sha256': digest}


def received_map_s(typestore: Any, folder: Path, detections: list[dict], count: int) -> float:
    """Return the seconds the map made from the detections received takes alone."""
    from plant_disease_ros.core.map_file import write_feature_collection

    recorder, received = new_recorder(typestore, folder)
    for number in range(count):
        recorder.receive('/ns/detections', 'detections',
                         string_cdr(typestore, detections[number]))
    start = time.perf_counter()
    if received is None:
        write_feature_collection(folder / 'received.geojson', recorder.counts().features)
    else:
        received.write_collection(folder / 'received.geojson')
        received.discard()
    return time.perf_counter() - start


def measure_tree(count: int, detections_file: Path) -> dict[str, Any]:
    """Return this process's tree's figures (``plant_disease_ros`` as imported).

    ``detections_file``: :func:`make_detections` of ``WARM_UP + count``, as JSON.
    """
    from rosbags.typesys import get_typestore, Stores

    import plant_disease_ros

    detections = json.loads(detections_file.read_text())
    if len(detections) < WARM_UP + count:
        raise SystemExit(f'{detections_file} holds {len(detections)} detections, '
                         f'not {WARM_UP + count}')
    typestore = get_typestore(Stores.LATEST)
    results: dict[str, Any] = {'tree': str(Path(plant_disease_ros.__file__).parents[1])}
    with tempfile.TemporaryDirectory() as folder:
        results['detection_bytes'] = held_bytes(
            typestore, Path(folder), detections, count, False) / count
    with tempfile.TemporaryDirectory() as folder:
        results['frame_bytes'] = held_bytes(
            typestore, Path(folder), detections, count, True) / count
    with tempfile.TemporaryDirectory() as folder:
        results['received_map_s'] = received_map_s(typestore, Path(folder), detections, count)
    with tempfile.TemporaryDirectory() as folder:
        results.update(map_end(typestore, Path(folder), detections, count, traced=False))
    with tempfile.TemporaryDirectory() as folder:
        results['write_map_peak_bytes'] = map_end(
            typestore, Path(folder), detections, count, traced=True)['write_map_peak_bytes']
    return results


def run_tree(tree: Path, count: int, detections_file: Path) -> dict[str, Any]:
    """Measure ``tree`` in a process of its own; return its figures."""
    env = dict(os.environ, PYTHONPATH=str(tree))
    result = subprocess.run(
        [sys.executable, str(Path(__file__).resolve()), '--measure', '--detections',
         str(count), '--detections-file', str(detections_file)],
        env=env, capture_output=True, text=True, check=False)
    if result.returncode != 0:
        raise SystemExit(f'measuring {tree} failed:\n{result.stderr}')
    return json.loads(result.stdout.splitlines()[-1])


def main() -> None:
    """Measure the ``--before`` revision and the working tree; print both."""
    parser = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    parser.add_argument('--before', help='git revision to compare with (the baseline)')
    parser.add_argument('--detections', type=int, default=20_000)
    parser.add_argument('--measure', action='store_true', help=argparse.SUPPRESS)
    parser.add_argument('--detections-file', type=Path, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.measure:
        print(json.dumps(measure_tree(args.detections, args.detections_file)))
        return
    if not args.before:
        parser.error('--before REV is needed (the revision to compare with)')
    root = Path(__file__).resolve().parents[1]
    with tempfile.TemporaryDirectory() as parent:
        detections_file = Path(parent) / 'detections.json'
        detections_file.write_text(json.dumps(make_detections(WARM_UP + args.detections)))
        worktree = Path(parent) / 'before'
        subprocess.run(['git', '-C', str(root), 'worktree', 'add', '-q', '--detach',
                        str(worktree), args.before], check=True)
        try:
            figures = {'before': run_tree(worktree, args.detections, detections_file),
                       'after': run_tree(root, args.detections, detections_file)}
        finally:
            subprocess.run(['git', '-C', str(root), 'worktree', 'remove', '--force',
                            str(worktree)], check=False)
    count = args.detections
    print(f'{count} detections, in process (tracemalloc), no DDS:')
    for name, values in figures.items():
        print(f'  {name:6} held per detection {values["detection_bytes"]:8.1f} B, per frame '
              f'(classification + detection) {values["frame_bytes"]:8.1f} B; '
              f'received map {values["received_map_s"]:.3f} s; write_map '
              f'{values["write_map_s"]:.2f} s (peak {values["write_map_peak_bytes"] / 1e6:.1f}'
              f' MB traced); map sha256 {values["sha256"][:12]}')
    same = figures['before']['sha256'] == figures['after']['sha256']
    print(f'  the same map in both: {same}')


if __name__ == '__main__':
    main()
