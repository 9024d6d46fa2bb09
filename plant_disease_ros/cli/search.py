"""``plant-disease search``: transfer knobs (rate, stages, input size, augmentation)."""

from __future__ import annotations

import argparse
import math
from pathlib import Path
import shlex
import sys

from plant_disease_ros.core.output_paths import check_not_inside, directory_problem
from plant_disease_ros.training.search import (
    best_run_folder,
    check_search_out_dir,
    format_table,
    knob_search,
    SearchSpace,
    train_flags,
)
from plant_disease_ros.training.train import DEFAULT_CACHE_DIR, TrainOptions


def _optional(kind: type):
    """Return an argparse type accepting ``default``/``all`` (None) or a ``kind`` value."""
    def parse(text: str):
        return None if text in ('default', 'all') else kind(text)

    parse.__name__ = kind.__name__
    return parse


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Declare the ``search`` options."""
    parser.add_argument('--data', required=True, help='folder of <class>/<image> photos')
    parser.add_argument('--out', required=True,
                        help='folder for the trials and the table (refused when it holds an '
                             'earlier search)')
    parser.add_argument('--overwrite', action='store_true',
                        help="replace an earlier search's trials and tables in --out")
    parser.add_argument('--init', default='shipped',
                        help="shipped (default), scratch, or a run's model.keras")
    parser.add_argument('--learning-rates', type=_optional(float), nargs='+',
                        default=[None, 2e-3, 5e-4],
                        help='peak rates of the fine-tune stage ("default": the planned one)')
    parser.add_argument('--unfreeze', type=_optional(int), nargs='+', default=[None, 2, 0],
                        help='backbone stages to fine-tune ("all", or the last N; 0: head '
                             'only)')
    parser.add_argument('--input-sizes', type=_optional(int), nargs='+',
                        default=[None, 96, 160],
                        help='input sides, px ("default": the --init model\'s)')
    parser.add_argument('--augment-strengths', type=float, nargs='+', default=[1.0, 0.5])
    parser.add_argument('--widths', type=_optional(float), nargs='+', default=[None],
                        help='width multipliers (from scratch only; a transfer run keeps the '
                             "source's)")
    parser.add_argument('--epochs', type=int, default=6,
                        help='fine-tune epochs per trial (from scratch: all epochs)')
    parser.add_argument('--head-epochs', type=int, default=2, help='head epochs per trial')
    parser.add_argument('--per-class', type=int, default=150,
                        help='photos a class per trial (a subsample keeps trials short)')
    parser.add_argument('--budget-min', type=float, default=30.0,
                        help='wall-clock budget for all trials, minutes')
    parser.add_argument('--seed', type=int, default=42)
    parser.add_argument('--cache-dir', default=str(DEFAULT_CACHE_DIR))


def run(args: argparse.Namespace) -> int:
    """Run the search and print the ranked table and the best trial's flags."""
    if not 0 < args.budget_min < math.inf:  # also refuses NaN
        raise ValueError(f'--budget-min must be > 0 and finite, got {args.budget_min}')
    if not Path(args.data).is_dir():
        raise ValueError(f'--data {args.data} is not a folder of class folders')
    # Before anything is written: the tables in a class folder would make it a class
    # without images, and a later train on --data would refuse the folder.
    check_not_inside(args.out, [args.data])
    problem = directory_problem(args.out)
    if problem:
        raise ValueError(f'--out {args.out}: {problem}; give a folder for the search (a new '
                         'one is created)')
    check_search_out_dir(args.out, args.overwrite)
    base = TrainOptions(data_dir=args.data, out_dir=args.out, init=args.init,
                        epochs=args.epochs, head_epochs=args.head_epochs,
                        patience=args.epochs, per_class=args.per_class, seed=args.seed,
                        cache_dir=args.cache_dir or None, overwrite=args.overwrite)
    space = SearchSpace(learning_rate=tuple(args.learning_rates),
                        unfreeze=tuple(args.unfreeze), input_size=tuple(args.input_sizes),
                        augment_strength=tuple(args.augment_strengths),
                        width=tuple(args.widths))
    print(f'searching {space.size()} trials (one knob at a time) within {args.budget_min:g} '
          'min', flush=True)
    ranked = knob_search(base, space, args.budget_min)
    print(format_table(ranked))
    done = [row for row in ranked if 'val_accuracy' in row]
    if not done:
        print('search: no trial ran to the end (see the table for why): nothing to '
              'recommend', file=sys.stderr)
        return 1
    # Pasted as it is, the line trains the full run beside the search's folder.
    init = '' if args.init == 'shipped' else f' --init {shlex.quote(args.init)}'
    seed = '' if args.seed == 42 else f' --seed {args.seed}'
    print(f'best: plant-disease train --data {shlex.quote(args.data)} '
          f'--out {shlex.quote(best_run_folder(args.out))}{init}{seed} '
          f'{train_flags(done[0])}'.rstrip())
    return 0
