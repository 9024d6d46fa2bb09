"""``plant-disease model-card``: write MODEL_CARD.md for an exported model."""

from __future__ import annotations

import argparse
import json
from pathlib import Path
import sys

from plant_disease_ros.core.output_paths import check_not_an_input
from plant_disease_ros.training.evaluate import benchmark_invoke, compare_invoke
from plant_disease_ros.training.model_card import check_card_inputs, write_model_card


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Declare the ``model-card`` options."""
    parser.add_argument('--run', required=True, help='training run folder')
    parser.add_argument('--evaluation', required=True,
                        help='folder of `plant-disease evaluate --keras ...` on the test split')
    parser.add_argument('--model', default=None,
                        help='the exported int8 model (default: RUN/model_int8.tflite, where '
                             '`export` writes it)')
    parser.add_argument('--labels', default=None,
                        help='its labels (default: labels.txt beside --model)')
    parser.add_argument('--search', default=None, help='search_results.md to include')
    parser.add_argument('--out', default=None,
                        help='card to write (default: RUN/MODEL_CARD.md; the shipped card is '
                             'models/MODEL_CARD.md)')
    parser.add_argument('--train-command', default='')
    parser.add_argument('--export-command', default='')
    parser.add_argument('--evaluate-command', default='')
    parser.add_argument('--baseline', default=None,
                        help='field-fit card: folder of the same `evaluate --field-split` of '
                             'the model it replaces (figures side by side)')
    parser.add_argument('--reference-model', default=None,
                        help='also time this TFLite model (the one replaced) in the same run')
    parser.add_argument('--earlier-run', action='append', default=[],
                        help='field-fit card: a run this one started from (repeat, oldest '
                             'first), its folder or its train_summary.json (as kept in '
                             'models/stages/); its recipe and validation figures are '
                             'summarised')
    parser.add_argument('--crops-evaluation', default=None,
                        help='field-fit card: an evaluation of the same photos with --crops '
                             "(e.g. known): the figures of a robot told its field's crop")
    parser.add_argument('--poses-evaluation', action='append', default=[],
                        help='field-fit card: an evaluation of the same photos with --poses '
                             '(and possibly --crops); repeat for several: the figures of a '
                             'robot averaging poses of each frame (test_time_poses)')
    parser.add_argument('--near-duplicates', default=None, metavar='JSON',
                        help='field-fit card: test photos that are copies of training photos '
                             '(as models/test_near_duplicates.json): top-1 without them, per '
                             "domain, from the evaluation's predictions.csv")
    parser.add_argument('--frames-evaluation', action='append', default=[], metavar='DIR',
                        help='field-fit card: evaluations of the test photos as camera frames '
                             '(evaluate --frames WxH), one sharp and one or more with '
                             '--motion-blur PX; repeat: what motion blur costs')
    parser.add_argument('--selection', default=None, metavar='MD',
                        help='field-fit card: a Markdown file on how this model was chosen '
                             'among finished runs (as models/stages/SELECTION.md), put after '
                             'the test figures')
    parser.add_argument('--reference-labels', default=None,
                        help='labels of --reference-model (default: beside it)')


def run(args: argparse.Namespace) -> int:
    """Measure invoke latency at 1 and 2 threads (and the reference's) and write the card.

    Refused first when the run, the export and the evaluation are not of one model
    (:func:`~plant_disease_ros.training.model_card.check_card_inputs`).
    """
    run_dir = Path(args.run)
    args.model = args.model or str(run_dir / 'model_int8.tflite')
    args.labels = args.labels or str(Path(args.model).parent / 'labels.txt')
    args.out = args.out or str(run_dir / 'MODEL_CARD.md')
    for name, path in (('--model', args.model), ('--labels', args.labels)):
        if not Path(path).is_file():
            raise FileNotFoundError(f'{name} {path} not found: export the run first '
                                    f'(plant-disease export --run {run_dir}) or name the file')
    evaluations = [args.evaluation, args.baseline, args.crops_evaluation,
                   *args.poses_evaluation, *args.frames_evaluation]
    check_not_an_input(args.out, [
        args.model, args.labels, args.search, args.near_duplicates, args.selection,
        *args.earlier_run,
        *(Path(args.run) / name for name in ('train_summary.json', 'split.json',
                                             'field_split.json')),
        *(Path(folder) / 'evaluation.json' for folder in evaluations if folder)])
    # Before the timing: an export or evaluation of another model is refused at once.
    check_card_inputs(run_dir, args.evaluation, args.model)
    reference = None
    if args.reference_model:
        reference_labels = args.reference_labels or str(
            Path(args.reference_model).parent / 'labels.txt')
        reference = []
        latency = []
        for threads in (1, 2):
            # Interleaved rounds, so both models see the same machine load.
            new, old = compare_invoke([(args.model, args.labels),
                                       (args.reference_model, reference_labels)], threads)
            latency.append(new)
            reference.append(old)
    else:
        latency = [benchmark_invoke(args.model, args.labels, threads) for threads in (1, 2)]
    search_table = Path(args.search).read_text() if args.search else None
    path = write_model_card(args.run, args.evaluation, args.out, args.model, latency,
                            search_table=search_table, train_command=args.train_command,
                            export_command=args.export_command,
                            evaluate_command=args.evaluate_command,
                            baseline_dir=args.baseline, reference_latency=reference,
                            earlier_runs=args.earlier_run,
                            crops_dir=args.crops_evaluation,
                            poses_dirs=args.poses_evaluation,
                            near_duplicates=args.near_duplicates,
                            frames_dirs=args.frames_evaluation, selection=args.selection)
    warning = _training_photos_warning(run_dir, Path(args.evaluation))
    if warning:
        print(f'warning: {warning}', file=sys.stderr)
    print(f'model card: {path}')
    return 0


def _training_photos_warning(run_dir: Path, evaluation_dir: Path) -> str:
    """Return the card's warning when the evaluation holds photos the run trained on."""
    from plant_disease_ros.training.model_card import (
        evaluates_own_split,
        seen_in_training,
        training_photos_warning,
    )

    evaluation = json.loads((evaluation_dir / 'evaluation.json').read_text())
    if 'domains' in evaluation or not (run_dir / 'split.json').is_file():
        return ''
    split = json.loads((run_dir / 'split.json').read_text())
    return training_photos_warning(seen_in_training(
        split, evaluation, evaluation_dir, evaluates_own_split(evaluation, run_dir)))
