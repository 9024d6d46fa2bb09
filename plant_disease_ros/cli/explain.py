"""``plant-disease explain``: Grad-CAM (float Keras) and occlusion (int8 TFLite) overlays."""

from __future__ import annotations

import argparse
from pathlib import Path
import sys

from plant_disease_ros.core.occlusion import check_grid_and_patch, FILL_MODES


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Declare the ``explain`` options."""
    parser.add_argument('images', nargs='+', metavar='IMAGE',
                        help='photos to explain; a folder stands for every image under it '
                             '(but those under --out)')
    parser.add_argument('--keras', default=None,
                        help='float Keras model for Grad-CAM (default: the one beside the '
                             'int8 model, model.keras of a training run or the shipped '
                             'plant_disease_float.keras; without one, occlusion only)')
    parser.add_argument('--calibration', default=None, metavar='JSON',
                        help="the run's train_summary.json (or calibration.json, or a "
                             'summary kept in models/stages/) whose score scaling the int8 '
                             "model carries: applied to the float scores, so both models' "
                             'top-3 scores compare (default: the one beside the Keras model; '
                             'for the shipped one the last of models/stages/; without one the '
                             "float scores are labelled 'float, without score calibration')")
    parser.add_argument('--no-gradcam', action='store_true',
                        help='occlusion on the TFLite model only (no TensorFlow needed)')
    parser.add_argument('--model', default=None,
                        help='TFLite model for occlusion (default: the shipped '
                             'plant_disease_int8.tflite)')
    parser.add_argument('--labels', default=None,
                        help='labels file (default: labels.txt beside --model, else the '
                             'shipped one)')
    parser.add_argument('--out', default='outputs/explanations',
                        help='folder for the PNGs and explanations.json; one that holds '
                             'explanations already (an earlier run, maybe of another model) '
                             'is refused unless --overwrite')
    parser.add_argument('--overwrite', action='store_true',
                        help="replace the explanations in --out: the new "
                             "explanations.json replaces the earlier run's, and the figures "
                             'that one lists and this run does not write again are removed '
                             'after it (as train and search replace an earlier run only with '
                             '--overwrite)')
    parser.add_argument('--grid', type=int, default=8,
                        help='occlusion grid: GRID x GRID cells, each covered in turn')
    parser.add_argument('--fill', choices=FILL_MODES, default='mean',
                        help='what covers an occluded cell')
    parser.add_argument('--patch', type=int, default=1,
                        help='side in cells of the square covered for each cell, odd (centred '
                             'on the cell); a map that stays flat is retried with a 3-cell, '
                             'then a 5-cell patch (those within the grid)')
    parser.add_argument('--gradcam-layer', default=None,
                        help='backbone layer for Grad-CAM (default: the backbone output); '
                             'an earlier one gives a finer map, e.g. stage3_out of resnet_lite '
                             'or block_13_expand_relu of mobilenet_v2')
    parser.add_argument('--no-figures', action='store_true',
                        help='write explanations.json only (faster for many photos)')
    parser.add_argument('--threads', type=int, default=2, help='TFLite interpreter threads')


def run(args: argparse.Namespace) -> int:
    """Explain the photos, write the PNGs and the summary, print the aggregate figures."""
    from plant_disease_ros.core.classifier import default_model_path, labels_beside
    from plant_disease_ros.training.dataset import print_progress
    from plant_disease_ros.training.explain import (
        expand_image_paths,
        explain_images,
        float_calibration_beside,
        format_summary,
        read_float_calibration,
    )

    try:
        check_grid_and_patch(args.grid, args.patch)
    except ValueError as error:  # said before any model is loaded: '--grid ...', '--patch ...'
        raise ValueError(f'--{error}') from None
    paths = expand_image_paths(args.images, exclude=args.out)
    earlier = earlier_explanations(Path(args.out))
    if earlier and not args.overwrite:
        raise FileExistsError(
            f'--out {args.out} holds earlier explanations ({len(earlier)} file(s): '
            f'{", ".join(path.name for path in earlier[:3])}{", ..." if len(earlier) > 3 else ""}'
            '); give another --out, or --overwrite to replace them')
    keras_path = None if args.no_gradcam else _keras_path(args)
    if args.calibration and keras_path is None:
        raise ValueError('--calibration applies to the float scores of Grad-CAM: it needs a '
                         'float Keras model (--keras), not --no-gradcam')
    calibration = None
    if args.calibration:
        calibration = read_float_calibration(args.calibration)
    elif keras_path is not None:
        calibration = float_calibration_beside(keras_path)
        if calibration is None:
            print(f'no training summary beside {keras_path}: its float scores lack the int8 '
                  "model's score calibration (pass --calibration RUN/train_summary.json)",
                  file=sys.stderr)
    result = explain_images(
        paths, model_path=args.model or default_model_path(),
        labels_path=args.labels or labels_beside(Path(args.model or default_model_path())),
        keras_path=keras_path,
        out_dir=args.out, grid=args.grid, fill=args.fill, patch=args.patch,
        gradcam_layer=args.gradcam_layer,
        num_threads=args.threads, figures=not args.no_figures, float_calibration=calibration,
        # A figure overwrites no file in --out but those of the run it replaces.
        replace_figures=earlier,
        progress=print_progress(f'explaining {len(paths)} photos') if len(paths) > 1 else None)
    # --overwrite: no figure of the earlier run (maybe of another model) stays beside; a
    # photo explained now is never removed, even one named like a figure.
    inputs = {path.resolve() for path in paths}
    for path in set(earlier) - set(result.figures) - {result.summary_path}:
        if path.resolve() not in inputs:
            path.unlink(missing_ok=True)
    for _, reason in result.unreadable:
        print(f'skipped: {reason}', file=sys.stderr)
    if len(paths) == 1:
        item = result.explanations[0]
        print(f'{item.image.name}: int8 {item.top3_int8[0]["label"]} '
              f'{item.top3_int8[0]["score"]:.2f}'
              + (f', float {item.top3_float[0]["label"]} {item.top3_float[0]["score"]:.2f}'
                 if item.top3_float else ''))
    print(format_summary(result.summary))
    print(f'figures and {result.summary_path.name} in {Path(args.out)}', file=sys.stderr)
    return 0


def earlier_explanations(out_dir: Path) -> list[Path]:
    """Return the files an earlier ``explain`` left in ``out_dir``: its summary and figures.

    The figures are those its summary lists (inside ``out_dir``); nothing else in the
    folder is counted or touched, whatever its name. A summary that cannot be read leaves
    its figures unknown: only the summary itself is counted.
    """
    import json

    from plant_disease_ros.training.explain import SUMMARY_FILENAME

    summary = out_dir / SUMMARY_FILENAME
    if not summary.is_file():
        return []
    earlier = {summary}
    try:
        images = json.loads(summary.read_text(encoding='utf-8')).get('images') or []
    except (OSError, ValueError, AttributeError):
        images = []
    root = out_dir.resolve()
    for item in images:
        figure = item.get('figure') if isinstance(item, dict) else None
        if not isinstance(figure, str) or not figure:
            continue
        path = out_dir / figure
        if path.is_file() and not path.is_symlink() and path.resolve().parent == root:
            earlier.add(path)
    return sorted(earlier)


def _keras_path(args: argparse.Namespace) -> Path | None:
    """Return the float model for Grad-CAM: ``--keras``, else the int8 model's own twin.

    With ``--model`` and no ``--keras`` it is the Keras model beside ``--model`` (a training
    run's ``model.keras``), never the shipped one: the shipped float model explains other
    classes. Without a twin, None (occlusion only), said in one line.
    """
    from plant_disease_ros.training.explain import default_keras_path, keras_model_beside

    if args.keras:
        return Path(args.keras)
    if args.model is None:
        return default_keras_path()
    beside = keras_model_beside(args.model)
    if beside is None:
        print(f'no float Keras model beside {args.model}: occlusion only (pass --keras '
              'MODEL.keras for Grad-CAM)', file=sys.stderr)
    return beside
