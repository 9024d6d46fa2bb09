"""``plant-disease evaluate``: accuracy, confusion matrix and latency of a TFLite model.

With ``--field-split`` it reports per domain (lab, field sets, non-leaf scenes):
accuracy, rejection rates, calibration error, a confusion matrix per domain and one
reliability diagram; with ``--frames 640x480`` it first shows every photo as a camera
frame of that size and runs the nodes' default crop, vegetation gate and resize on it;
with ``--through-nodes`` as well the nodes themselves score those frames, over DDS.
"""

from __future__ import annotations

import argparse
from pathlib import Path
import sys

from plant_disease_ros.cli.replay import node_parameter
from plant_disease_ros.core.classifier import default_model_path, labels_beside
from plant_disease_ros.core.crops import DEFAULT_OTHER_CROPS_WEIGHT
from plant_disease_ros.core.preprocessing import POSE_COUNTS
from plant_disease_ros.tools.process import Terminated
from plant_disease_ros.training.camera_frames import CameraFraming, FRAMINGS, parse_frame_size
from plant_disease_ros.training.evaluate import evaluate, EvaluationOptions, format_report
from plant_disease_ros.training.train import DEFAULT_CACHE_DIR


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Declare the ``evaluate`` options."""
    parser.add_argument('--model', default=None,
                        help='TFLite model of the contract (default: the shipped model)')
    parser.add_argument('--labels', default=None,
                        help='labels file (default: labels.txt beside --model, else the '
                             'shipped one)')
    parser.add_argument('--data', default=None,
                        help='photo folder (<class>/<image>); with --split-manifest it '
                             "replaces the manifest's root; with --field-split the lab "
                             'photos')
    parser.add_argument('--split-manifest', default=None,
                        help='split.json of a training run; evaluates its --split part')
    parser.add_argument('--split', choices=('train', 'val', 'test'), default='test')
    parser.add_argument('--per-class', type=int, default=None,
                        help='at most this many photos a class (deterministic choice)')
    parser.add_argument('--keras', default=None,
                        help='float Keras model: also report float accuracy and agreement')
    parser.add_argument('--field-split', default=None,
                        help='field_split.json of a field-fit run: evaluate every domain '
                             '(lab test split of --split-manifest or the one it names, field '
                             'sets, non-leaf scenes, synthetic non-leaf frames). A '
                             'relative photo folder of the manifests is looked for from '
                             'the working directory, then from the folder of the manifest '
                             'and each folder above it (the shipped ones are relative to '
                             'the repository root); a folder found nowhere is an error')
    parser.add_argument('--field-data', default=None, metavar='DIR',
                        help='with --field-split: folder of the field photo sets '
                             "(<set>/<class>/<image>), instead of the manifest's")
    parser.add_argument('--negatives', default=None, metavar='DIR',
                        help='with --field-split: folder of the non-leaf scenes '
                             "(<kind>/<image>), instead of the manifest's")
    parser.add_argument('--score-threshold', type=float, default=0.5,
                        help="the nodes' score_threshold: a top score below it counts as "
                             'rejected (published as unknown: no map point), in the printed '
                             'figures, evaluation.json and predictions.csv')
    parser.add_argument('--synthetic-per-kind', type=int, default=25,
                        help='with --field-split: seeded synthetic non-leaf frames per kind')
    parser.add_argument('--frames', default=None, metavar='WxH',
                        help='with --field-split: show each photo as a WxH camera frame '
                             "(e.g. 640x480) and run the nodes' default path on it: centred "
                             'square crop, vegetation gate, resize to the model input')
    parser.add_argument('--framing', choices=FRAMINGS, default='fit',
                        help="with --frames: 'fit' keeps the photo's shape, centred on "
                             "black; 'stretch' fills the frame")
    parser.add_argument('--motion-blur', type=int, default=0, metavar='PX',
                        help='with --frames: smear each frame along its rows by PX pixels, '
                             'as a camera moving sideways while its shutter is open '
                             '(default 0: sharp)')
    parser.add_argument('--no-vegetation-gate', action='store_true',
                        help='as a node with vegetation_gate false: with --frames the gate '
                             'runs on each frame, without --field-split it runs on each '
                             'photo for the published outcome (default: on)')
    parser.add_argument('--crops', default=None, metavar='CROPS',
                        help="score as a node with 'crops' set: 'Apple' or 'Tomato,Potato' "
                             "for every photo; 'known': each leaf photo given its own crop, "
                             'each non-leaf frame given its most leaf-like crop (default: '
                             'every crop)')
    parser.add_argument('--other-crops-weight', type=float,
                        default=DEFAULT_OTHER_CROPS_WEIGHT, metavar='W',
                        help="with --crops: the prior weight of other crops' labels, [0, 1], "
                             "as the nodes' other_crops_weight")
    parser.add_argument('--poses', type=int, default=1,
                        help='score as a node with test_time_poses set: the mean of this '
                             'many right-angle poses of each frame, one of '
                             f'{", ".join(map(str, POSE_COUNTS))} (default 1: one pass)')
    parser.add_argument('--through-nodes', action='store_true',
                        help='with --frames: score the frames with the nodes themselves, '
                             "started as the launch file's single_process:=false starts them "
                             '(camera_subscriber, disease_classifier) and fed each frame as a '
                             'bgr8 Image over '
                             'DDS; the figures are what they published. Processes get '
                             'ROS_AUTOMATIC_DISCOVERY_RANGE=LOCALHOST unless it is set')
    parser.add_argument('--params-file', default=None, metavar='YAML',
                        help="with --through-nodes: the nodes' parameter file (default: "
                             'config/field.yaml, the launch default)')
    parser.add_argument('-p', '--param', type=node_parameter, action='append', default=[],
                        metavar='NAME:=VALUE',
                        help='with --through-nodes: a node parameter override (repeatable), '
                             'e.g. crops:=Apple or test_time_poses:=4')
    parser.add_argument('--threads', type=int, default=2)
    parser.add_argument('--out', default='evaluation', help='output folder')
    parser.add_argument('--cache-dir', default=str(DEFAULT_CACHE_DIR))


def run(args: argparse.Namespace) -> int:
    """Evaluate and print the summary table."""
    if not 0.0 <= args.score_threshold <= 1.0:  # also refuses NaN
        raise ValueError(f'--score-threshold must be in [0, 1], got {args.score_threshold}')
    if args.per_class is not None and args.per_class < 1:
        raise ValueError(f'--per-class must be >= 1, got {args.per_class}')
    if args.per_class is not None and args.field_split:
        raise ValueError('--per-class picks photos of a --data or --split-manifest '
                         'evaluation; a --field-split evaluation scores every photo of its '
                         'split, to be compared with the model card')
    if (args.field_data or args.negatives) and not args.field_split:
        raise ValueError('--field-data and --negatives replace folders of a field split: '
                         'they need --field-split')
    camera = None
    if args.frames is not None:
        if not args.field_split:
            raise ValueError('--frames needs --field-split')
        width, height = parse_frame_size(args.frames)
        camera = CameraFraming(width, height, args.framing,
                               vegetation_gate=not args.no_vegetation_gate,
                               motion_blur_px=args.motion_blur)
    elif args.motion_blur:
        raise ValueError('--motion-blur blurs camera frames: it needs --frames WxH')
    node_parameters = dict(args.param)
    if args.through_nodes:
        if camera is None:
            raise ValueError('--through-nodes needs --frames WxH (and --field-split)')
        if args.no_vegetation_gate:
            raise ValueError('with --through-nodes set the gate as on the robot: '
                             '--param vegetation_gate:=false')
        if 'score_threshold' in node_parameters:
            raise ValueError('with --through-nodes give the threshold as --score-threshold: '
                             'it is passed to the nodes')
        node_parameters['score_threshold'] = repr(float(args.score_threshold))
    elif node_parameters or args.params_file:
        raise ValueError('--param and --params-file configure the nodes: they need '
                         '--through-nodes')
    try:
        report = evaluate(_options(args, camera, node_parameters))
    except Terminated as stopped:  # only while the nodes run (--through-nodes)
        print(f'plant-disease evaluate: {stopped}; the nodes were stopped', file=sys.stderr)
        return stopped.exit_status
    print(format_report(report))
    if args.field_split:
        print(f'written: {args.out}/evaluation.json, predictions.csv, confusion_<domain>.png, '
              'mistakes_<domain>.png, reliability.png, thresholds.png')
    else:
        print(f'written: {args.out}/evaluation.json, predictions.csv, per_class.csv, '
              'confusion_matrix.png')
    return 0


def _options(args: argparse.Namespace, camera: CameraFraming | None,
             node_parameters: dict[str, str]) -> EvaluationOptions:
    """Return the evaluation options of the command line."""
    return EvaluationOptions(
        model_path=str(args.model or default_model_path()),
        labels_path=str(args.labels or labels_beside(Path(args.model or default_model_path()))),
        out_dir=args.out, data_dir=args.data, split_manifest=args.split_manifest,
        split=args.split, per_class=args.per_class, keras_model=args.keras,
        num_threads=args.threads, cache_dir=args.cache_dir or None,
        field_split=args.field_split, field_data=args.field_data,
        negatives=args.negatives, score_threshold=args.score_threshold,
        synthetic_per_kind=args.synthetic_per_kind, camera=camera, crops=args.crops,
        other_crops_weight=args.other_crops_weight, poses=args.poses,
        through_nodes=args.through_nodes, params_file=args.params_file,
        node_parameters=node_parameters, vegetation_gate=not args.no_vegetation_gate)
