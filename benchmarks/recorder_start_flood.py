"""A recorder restarted on a long run while the classifier goes on sending detections.

Usage (from the repository root, after ``scripts/setup_env.sh``)::

    source scripts/ros_env.sh
    .venv/bin/python benchmarks/recorder_start_flood.py [--records 300000] \\
        [--detections 8000] [--rate 3000] [--rounds 2]

A run's records file of ``--records`` detections is written once (on a RAM disk when
there is one). Then, ``--rounds`` times and alternating, a real ``disease_map_recorder``
process is started on a copy of it, and as soon as its two ``detections`` subscriptions
have matched (and half a second more, see MATCH_S), a stand-in classifier (transient
local, keep last 200, as the classifier publishes) sends ``--detections`` detections at
about ``--rate`` a second; the recorder gets SIGINT once it spins (its first
``/diagnostics``) and its file has stopped growing. Two ways:

- ``before``: the recorder with ``TAKE_WAITING_EVERY`` set beyond any read, i.e. as it
  was before it took the waiting detections during the read: what arrives while the run
  is read waits in the subscriptions' keep-last DDS queues of 5,000;
- ``now``: as shipped.

Printed per round: the detections recorded of those sent, how many never reached the
file, whether they are in the order sent, what the recorder counted lost
(``detections_lost`` in its last ``/diagnostics``, '-' when none came: the "before" way
counts too, and its first 3,000 lost, sent before the first detection it took, cannot be
counted) and dropped, and the start time (process start to its "recording
to" line); then the ratio of the start times (now / before).
"""

from __future__ import annotations

import argparse
import json
import os
from pathlib import Path
import re
import shutil
import statistics
import sys
import tempfile
import time

from diagnostic_msgs.msg import DiagnosticArray
import rclpy
from rclpy.duration import Duration
from rclpy.node import Node
from rclpy.publisher import Publisher
from rclpy.signals import SignalHandlerOptions
from std_msgs.msg import String

from plant_disease_ros.core.map_file import GeoJsonSeqWriter, iter_geojson_seq
from plant_disease_ros.ros.qos import detections_qos
from plant_disease_ros.tools import process

REPOSITORY = Path(__file__).resolve().parent.parent
RAM_DISK = '/dev/shm' if os.path.isdir('/dev/shm') else None
FIRST_SENT = 10_000_001
QUIET_S = 3.0
MATCH_S = 0.5
# How long a recorder asked to stop (SIGINT) has to end before SIGTERM, then SIGKILL.
STOP_S = 120.0
# Runs the recorder's main with TAKE_WAITING_EVERY set (argv[1]); the rest are ROS args.
RECORDER = (
    'import sys\n'
    'from plant_disease_ros.nodes import disease_map_recorder as recorder\n'
    'every = int(sys.argv.pop(1))\n'
    'if every:\n'
    '    recorder.TAKE_WAITING_EVERY = every\n'
    'sys.exit(recorder.main(sys.argv))\n')


def detection(number: int) -> dict:
    """Return a detection Feature numbered ``number`` (its stamp's seconds)."""
    return {'type': 'Feature',
            'geometry': {'type': 'Point', 'coordinates': [4.35 + number % 1000 * 1e-6, 50.85]},
            'properties': {'stamp': {'sec': number, 'nanosec': 0}, 'frame_id': 'camera',
                           'label': 'Tomato___Late_blight', 'confidence': 0.9}}


def write_run(path: Path, records: int) -> None:
    """Write a run's records file of ``records`` detections."""
    with GeoJsonSeqWriter(path) as writer:
        for number in range(1, records + 1):
            writer.append(detection(number))


def one_round(run: Path, folder: Path, way: str, args: argparse.Namespace) -> dict:
    """Start a recorder on a copy of ``run`` in ``folder``, flood it, stop it; return figures.

    The stand-in classifier is new each round: a transient-local publisher of an earlier
    round would hand its last 200 detections to the next recorder.
    """
    node = rclpy.create_node('classifier_stand_in')
    try:
        return flood(node, run, folder, way, args)
    finally:
        node.destroy_node()


def flood(node: Node, run: Path, folder: Path, way: str, args: argparse.Namespace) -> dict:
    """Run one round with ``node`` as the stand-in classifier (see :func:`one_round`)."""
    publisher = node.create_publisher(String, 'detections', detections_qos())
    lost: list[str] = []

    def on_diagnostics(message: DiagnosticArray) -> None:
        for status in message.status:
            if 'map recorder' in status.name:
                lost.extend(value.value for value in status.values
                            if value.key == 'detections_lost')

    node.create_subscription(DiagnosticArray, '/diagnostics', on_diagnostics, 10)
    shutil.rmtree(folder, ignore_errors=True)
    folder.mkdir(parents=True)
    shutil.copyfile(run, folder / 'field.geojsons')
    every = 1 << 62 if way == 'before' else 0
    log_path = folder.parent / f'{folder.name}-recorder.log'
    log_path.unlink(missing_ok=True)
    started = time.time()
    # Through tools.process: the recorder gets SIGTERM if this script dies (PDEATHSIG), and
    # a stop escalates to SIGTERM and SIGKILL if SIGINT does not end it.
    recorder = process.start(
        'disease_map_recorder',
        [sys.executable, '-c', RECORDER, str(every), '--ros-args', '-p', f'map_dir:={folder}',
         '-p', 'run_name:=field'], log_path,
        env=process.ros_environment(PYTHONPATH=str(REPOSITORY),
                                    RCUTILS_LOGGING_BUFFERED_STREAM='0'))
    try:
        return flood_recorder(node, publisher, recorder, started, lost, folder, args)
    finally:
        if recorder.alive():
            process.stop([recorder], timeout_s=STOP_S)


def flood_recorder(node: Node, publisher: Publisher, recorder: process.ChildProcess,
                   started: float, lost: list[str], folder: Path,
                   args: argparse.Namespace) -> dict:
    """Flood the started ``recorder`` from ``publisher``, stop it; return the figures."""
    while publisher.get_subscription_count() < 2:
        recorder_running(recorder)
        time.sleep(0.005)
    # The recorder's readers match this writer a little after it sees them: what they get
    # before drops, and at thousands a second the writer's history of 200 no longer holds
    # it to send again (at a classifier's rate it holds the last 20 s).
    time.sleep(MATCH_S)
    sent = range(FIRST_SENT, FIRST_SENT + args.detections)
    pause = 1.0 / args.rate
    for index, number in enumerate(sent):
        publisher.publish(String(data=json.dumps(detection(number))))
        if index % 10 == 9:
            time.sleep(10 * pause)
    publisher.wait_for_all_acked(Duration(seconds=30))
    # The recorder publishes /diagnostics once it spins, after the read: wait for that,
    # then for its file to stay the same size for QUIET_S.
    size, quiet_since = -1, time.monotonic()
    while not lost or time.monotonic() - quiet_since < QUIET_S:
        rclpy.spin_once(node, timeout_sec=0.2)
        now = (folder / 'field.geojsons').stat().st_size
        if now != size:
            size, quiet_since = now, time.monotonic()
        recorder_running(recorder)
    process.stop([recorder], timeout_s=STOP_S)
    log = recorder.log_path.read_text(encoding='utf-8', errors='replace')
    start_s = None
    for line in log.splitlines():
        match = re.search(r'\[(\d+\.\d+)\] \[disease_map_recorder\]: recording to', line)
        if match and start_s is None:
            start_s = float(match.group(1))
    numbers = [feature['properties']['stamp']['sec']
               for feature in iter_geojson_seq(folder / 'field.geojsons')][args.records:]
    dropped = re.search(r'(\d+) dropped \(queue full\)', log)
    recorded = set(numbers)
    return {
        'recorded': len(numbers), 'missing': len(set(sent) - recorded),
        'in_order': numbers == [n for n in sent if n in recorded],
        'counted_lost': lost[-1] if lost else '-',
        'dropped': int(dropped.group(1)) if dropped else 0,
        'start_s': start_s - started if start_s is not None else float('nan'),
        'exit': recorder.popen.returncode}


def recorder_running(recorder: process.ChildProcess) -> None:
    """Raise RuntimeError, with the end of its log, if the recorder has ended."""
    if not recorder.alive():
        raise RuntimeError(f'the recorder ended: {recorder.log_tail(20)}')


def main() -> int:
    """Run the rounds and print the figures; SIGTERM and SIGHUP stop them as Ctrl-C does.

    Returns the exit status: 0, or 128 + the signal that stopped the run (the recorder of
    the round then stopped, the scratch folder removed).
    """
    try:
        with process.stop_on_termination():
            run(parse_arguments())
    except process.Terminated as stopped:
        print(f'recorder_start_flood: {stopped}; its recorder was stopped', file=sys.stderr)
        return stopped.exit_status
    return 0


def parse_arguments() -> argparse.Namespace:
    """Return the command line's arguments."""
    parser = argparse.ArgumentParser(description=__doc__.split('\n', 1)[0])
    parser.add_argument('--records', type=int, default=300_000)
    parser.add_argument('--detections', type=int, default=8000)
    parser.add_argument('--rate', type=float, default=3000.0)
    parser.add_argument('--rounds', type=int, default=2)
    return parser.parse_args()


def run(args: argparse.Namespace) -> None:
    """Run the rounds and print the figures."""
    with tempfile.TemporaryDirectory(dir=RAM_DISK, prefix='recorder-flood-') as scratch:
        run = Path(scratch) / 'run.geojsons'
        print(f'writing a run of {args.records} records ...', flush=True)
        write_run(run, args.records)
        # No rclpy signal handlers: SIGINT and SIGTERM unwind through the finally blocks.
        rclpy.init(signal_handler_options=SignalHandlerOptions.NO)
        results: dict[str, list[dict]] = {'before': [], 'now': []}
        try:
            for round_ in range(args.rounds):
                for way in ('before', 'now'):
                    figures = one_round(run, Path(scratch) / way, way, args)
                    results[way].append(figures)
                    print(f'round {round_ + 1} {way:6}: recorded {figures["recorded"]} of '
                          f'{args.detections}, missing {figures["missing"]}, in order '
                          f'{figures["in_order"]}, counted lost {figures["counted_lost"]}, '
                          f'dropped {figures["dropped"]}, start {figures["start_s"]:.2f} s, '
                          f'exit {figures["exit"]}', flush=True)
        finally:
            rclpy.shutdown()
    before = statistics.median(r['start_s'] for r in results['before'])
    now = statistics.median(r['start_s'] for r in results['now'])
    print(f'start time, median: before {before:.2f} s, now {now:.2f} s, ratio {now / before:.2f}')


if __name__ == '__main__':
    sys.exit(main())
