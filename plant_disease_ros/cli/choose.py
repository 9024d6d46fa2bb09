"""``plant-disease choose``: does a candidate model replace the shipped one?

Applies the rule the shipped model was chosen by (:mod:`plant_disease_ros.training.choose`)
to validation evaluations of both models on sharp and on smeared camera frames, prints the
figures, each check and the verdict, and writes ``choice.json``.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from plant_disease_ros.core.atomic_files import write_text_atomic
from plant_disease_ros.core.output_paths import check_not_an_input, check_output_file
from plant_disease_ros.training.choose import (
    choice_json,
    choose,
    format_choice,
    MAX_LAB_REJECTED,
    MAX_SHARP_LOSS,
    MIN_NON_LEAF_REJECTED,
    model_scores,
)


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Declare the ``choose`` options."""
    parser.add_argument('--incumbent', nargs=2, required=True, metavar=('SHARP', 'SMEARED'),
                        help="the shipped model's evaluations: `evaluate --split val --frames "
                             'WxH` and the same with --motion-blur PX')
    parser.add_argument('--candidate', nargs=2, required=True, metavar=('SHARP', 'SMEARED'),
                        help="the candidate's evaluations of the same frames")
    parser.add_argument('--names', nargs=2, default=('shipped', 'candidate'),
                        metavar=('INCUMBENT', 'CANDIDATE'), help='names in the table')
    parser.add_argument('--max-sharp-loss', type=float, default=MAX_SHARP_LOSS,
                        help="how much lower the candidate's sharp mean may be "
                             f'(default: {MAX_SHARP_LOSS:g})')
    parser.add_argument('--max-lab-rejected', type=float, default=MAX_LAB_REJECTED,
                        help=f'share of lab leaves it may reject (default: {MAX_LAB_REJECTED:g})')
    parser.add_argument('--min-non-leaf-rejected', type=float, default=MIN_NON_LEAF_REJECTED,
                        help='share of every non-leaf domain it must reject (default: '
                             f'{MIN_NON_LEAF_REJECTED:g})')
    parser.add_argument('--out', default='choice.json', help='where to write the choice')


def run(args: argparse.Namespace) -> int:
    """Print the choice and write it; return 0 (the verdict is in the output)."""
    for option in ('max_sharp_loss', 'max_lab_rejected', 'min_non_leaf_rejected'):
        value = getattr(args, option)
        if not 0.0 <= value <= 1.0:
            raise ValueError(f'--{option.replace("_", "-")} must be in [0, 1], got {value}')
    out = Path(args.out)
    check_output_file(out)
    check_not_an_input(out, [Path(folder) / name for folder in (*args.incumbent, *args.candidate)
                             for name in ('evaluation.json', 'predictions.csv')])
    incumbent = model_scores(args.names[0], *args.incumbent)
    candidate = model_scores(args.names[1], *args.candidate)
    choice = choose(incumbent, candidate, max_sharp_loss=args.max_sharp_loss,
                    max_lab_rejected=args.max_lab_rejected,
                    min_non_leaf_rejected=args.min_non_leaf_rejected)
    print(format_choice(choice))
    write_text_atomic(out, json.dumps(choice_json(choice), indent=1) + '\n')
    print(f'written: {out}')
    return 0
