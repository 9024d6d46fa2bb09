"""``plant-disease export``: Keras model -> full-integer int8 TFLite + labels.txt."""

from __future__ import annotations

import argparse
from pathlib import Path
import shutil

from plant_disease_ros.cli.train import at_least
from plant_disease_ros.training.calibration import OBJECTIVES
from plant_disease_ros.training.export import check_outputs, export_int8
from plant_disease_ros.training.run_files import check_run_files
from plant_disease_ros.training.train import DEFAULT_CACHE_DIR


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Declare the ``export`` options."""
    parser.add_argument('--run', required=True,
                        help='training output folder (holds model.keras and split.json; a '
                             'field-fit run also field_split.json)')
    parser.add_argument('--out', default=None,
                        help='TFLite file to write, not a folder (default: '
                             'RUN/model_int8.tflite); '
                             'labels.txt goes beside it (and, for a field-fit run, '
                             'field_split.json and split.json). To replace the shipped '
                             'model name models/plant_disease_int8.tflite here')
    parser.add_argument('--input-type', choices=('uint8', 'int8'), default='uint8')
    parser.add_argument('--calibration-count', type=at_least(1), default=300,
                        help='training photos used to calibrate activations')
    parser.add_argument('--float-out', default=None,
                        help='also save the float Keras model (without optimizer state) here')
    parser.add_argument('--calibrate', action='store_true',
                        help='field-fit run stopped before its end: fit the score temperature '
                             'on its validation photos first (writes model.keras)')
    parser.add_argument('--calibrate-by', choices=OBJECTIVES, default=None,
                        help="with --calibrate: what the temperature minimises; adaptive adds a "
                             "per-frame scale to the int8 model (default: the run's own "
                             "choice)")
    parser.add_argument('--data', default=None,
                        help="folder of the run's training photos, when not where its "
                             'split.json says (another machine; a field-fit run: the lab '
                             'photos)')
    parser.add_argument('--cache-dir', default=str(DEFAULT_CACHE_DIR))


def run(args: argparse.Namespace) -> int:
    """Export and print the model's path and size."""
    run_dir = Path(args.run)
    if args.calibrate_by is not None and not args.calibrate:
        raise ValueError('--calibrate-by chooses how --calibrate refits the temperature: '
                         "add --calibrate (a plain export keeps the run's calibration)")
    if args.out is None:
        args.out = str(run_dir / 'model_int8.tflite')
    # Before --calibrate rewrites the run's model.keras, and before the conversion.
    check_outputs(args.out, args.float_out)
    # The labels and calibration photos come from split.json: it must be the split the
    # model was trained with (a later run, cut short, leaves its own beside the model).
    check_run_files(run_dir)
    field_split = run_dir / 'field_split.json'
    cache_dir = args.cache_dir or None
    if args.calibrate:
        from plant_disease_ros.training.field_train import calibrate_run

        if not field_split.exists():
            raise FileNotFoundError(f'--calibrate needs a field-fit run: {field_split} '
                                    'not found')
        temperature, _ = calibrate_run(run_dir, cache_dir=cache_dir, lab_data=args.data,
                                       objective=args.calibrate_by)
        print(f'temperature {temperature:.3f} folded into {run_dir / "model.keras"}')
    for needed in ('model.keras', 'split.json'):
        if not (run_dir / needed).exists():
            raise FileNotFoundError(f'{run_dir / needed} not found: is {run_dir} a training run?')
    scaling = None
    if field_split.exists():
        from plant_disease_ros.training.field_train import run_score_scaling

        scaling = run_score_scaling(run_dir)
    result = export_int8(run_dir / 'model.keras', run_dir / 'split.json', args.out,
                         input_type=args.input_type, calibration_count=args.calibration_count,
                         cache_dir=cache_dir, float_out=args.float_out,
                         field_split=field_split if field_split.exists() else None,
                         score_scaling=scaling, data_dir=args.data)
    if field_split.exists():
        for name in ('field_split.json', 'split.json'):
            destination = result.tflite_path.parent / name
            if destination.resolve() != (run_dir / name).resolve():
                shutil.copyfile(run_dir / name, destination)
    print(f'int8 model: {result.tflite_path} ({result.size_bytes / 1024:.0f} KiB, '
          f'calibrated on {result.calibration_images} photos); labels: {result.labels_path}')
    if scaling is not None:
        print('with the per-frame score scale of its "adaptive" calibration')
    return 0
