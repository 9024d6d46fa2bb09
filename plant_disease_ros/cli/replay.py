"""``plant-disease replay``: play a rosbag2 bag through the pipeline and record the results.

Exit status 0 on success, 2 with a one-line error for a missing path, a corrupt bag, a bag
without an image topic, an invalid option or a pipeline that does not start; 130 on
Ctrl-C and 128 + the signal on SIGTERM or SIGHUP, the pipeline stopped in every case.
"""

from __future__ import annotations

import argparse
from pathlib import Path
import sys

from plant_disease_ros.tools.process import stop_on_termination, Terminated
from plant_disease_ros.tools.replay import (
    DEFAULT_NAMESPACE,
    FIX_LEAD_S,
    FRAME_TIMEOUT_S,
    replay,
    ReplayError,
    ReplayOptions,
    STARTUP_TIMEOUT_S,
)


def node_parameter(text: str) -> tuple[str, str]:
    """Return (name, value) of a ``NAME:=VALUE`` node parameter override (argparse type)."""
    name, separator, value = text.partition(':=')
    if not separator or not name.strip():
        raise argparse.ArgumentTypeError(f'expected NAME:=VALUE, got {text!r}')
    return name.strip(), value


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Add the replay options to ``parser``."""
    parser.description = (
        'Replay a rosbag2 bag (folder, .mcap or .db3) through the pipeline: publish its '
        'image and NavSatFix topics with /clock, record label, classification, detections '
        'and markers to a new MCAP bag, and write the disease map (GeoJSON and PNG). '
        'Processes get ROS_AUTOMATIC_DISCOVERY_RANGE=LOCALHOST unless it is set; '
        'ROS_DOMAIN_ID is taken from the environment.')
    parser.add_argument('bag', type=Path, metavar='BAG', help='rosbag2 folder or MCAP/db3 file')
    speed = parser.add_mutually_exclusive_group()
    speed.add_argument('--rate', type=float, default=1.0, metavar='X',
                       help='play at X times the recorded speed (default: 1)')
    speed.add_argument('--fast', action='store_true',
                       help='as fast as the pipeline classifies, without dropping frames')
    parser.add_argument('--image-topic', metavar='T', default=None,
                        help='image topic to play (default: the Image/CompressedImage topic '
                             'with the most messages)')
    parser.add_argument('--fix-topic', metavar='T', default=None,
                        help='NavSatFix topic to play (default: found by type)')
    parser.add_argument('--out', type=Path, default=None, metavar='DIR',
                        help='output folder for disease_map.geojson(s), disease_map.png, '
                             'output_bag/, logs/ and summary.json; run N into the same '
                             'folder writes disease_map-N.*, output_bag-N/, logs-N/ and '
                             'summary-N.json (default: outputs/replay/<bag>-<date-time>). A '
                             'run whose nodes exit at start keeps only its logs, as '
                             'logs-failed-start-<date-time>/, and leaves its number free')
    parser.add_argument('--attach', action='store_true',
                        help='use a running pipeline instead of starting one')
    parser.add_argument('--single-process', action='store_true',
                        help='start plant_disease_pipeline instead of camera_subscriber and '
                             'disease_classifier')
    parser.add_argument('--namespace', default=DEFAULT_NAMESPACE, metavar='NS',
                        help='namespace of the pipeline nodes (default: %(default)s)')
    parser.add_argument('--no-clock', action='store_true',
                        help='publish no /clock; the pipeline runs on wall time')
    parser.add_argument('--params-file', type=Path, default=None, metavar='YAML',
                        help='parameter file for the nodes (default: config/field.yaml)')
    parser.add_argument('-p', '--param', type=node_parameter, action='append', default=[],
                        metavar='NAME:=VALUE', help='node parameter override (repeatable)')
    parser.add_argument('--fix-lead', type=float, default=FIX_LEAD_S, metavar='S',
                        help='with --fast, send GPS fixes up to S s ahead of each frame; '
                             'keep it above the max_fix_age_s parameter (default: %(default)s)')
    parser.add_argument('--frame-timeout', type=float, default=FRAME_TIMEOUT_S, metavar='S',
                        help='with --fast, longest wait for one classification '
                             '(default: %(default)s)')
    parser.add_argument('--startup-timeout', type=float, default=STARTUP_TIMEOUT_S,
                        metavar='S', help='longest wait for the pipeline to come up '
                                          '(default: %(default)s)')
    parser.add_argument('--quiet', action='store_true', help='no progress line')


def run(args: argparse.Namespace) -> int:
    """Run the replay and print its summary; return 0, 2 after a one-line error.

    SIGTERM and SIGHUP stop the pipeline as Ctrl-C does; the status is then 128 + signal.
    """
    options = ReplayOptions(
        bag=args.bag, rate=args.rate, fast=args.fast, image_topic=args.image_topic,
        fix_topic=args.fix_topic, out_dir=args.out, attach=args.attach,
        single_process=args.single_process, namespace=args.namespace,
        clock=not args.no_clock, params_file=args.params_file, parameters=dict(args.param),
        fix_lead_s=args.fix_lead, frame_timeout_s=args.frame_timeout,
        startup_timeout_s=args.startup_timeout, show_progress=not args.quiet)
    try:
        with stop_on_termination():
            summary = replay(options)
    except ReplayError as error:
        replayed = getattr(error, 'summary', None)  # ReplayOutputError: what was replayed
        if replayed is not None:
            for line in replayed.lines():
                print(line)
            sys.stdout.flush()  # before the error line, when both go to one terminal
        print(f'plant-disease replay: error: {error}', file=sys.stderr)
        return 2
    except Terminated as stopped:
        print(f'plant-disease replay: {stopped}; the pipeline was stopped', file=sys.stderr)
        return stopped.exit_status
    for line in summary.lines():
        print(line)
    return 0
