"""``plant-disease search``: grid over width, input size and learning rate in a budget."""

from __future__ import annotations

import argparse

from plant_disease_ros.training.search import format_table, grid_search, SearchSpace
from plant_disease_ros.training.train import DEFAULT_CACHE_DIR, TrainOptions


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Declare the ``search`` options."""
    parser.add_argument('--data', required=True, help='folder of <class>/<image> photos')
    parser.add_argument('--out', required=True, help='folder for the trials and the table')
    parser.add_argument('--widths', type=float, nargs='+', default=[0.35, 0.5])
    parser.add_argument('--input-sizes', type=int, nargs='+', default=[96, 128])
    parser.add_argument('--learning-rates', type=float, nargs='+', default=[1e-3, 3e-3])
    parser.add_argument('--epochs', type=int, default=4, help='epochs per trial')
    parser.add_argument('--per-class', type=int, default=80,
                        help='photos a class per trial (a subsample keeps trials short)')
    parser.add_argument('--budget-min', type=float, default=30.0,
                        help='wall-clock budget for all trials, minutes')
    parser.add_argument('--seed', type=int, default=42)
    parser.add_argument('--cache-dir', default=str(DEFAULT_CACHE_DIR))


def run(args: argparse.Namespace) -> int:
    """Run the grid and print the ranked table."""
    base = TrainOptions(data_dir=args.data, out_dir=args.out, epochs=args.epochs,
                        per_class=args.per_class, seed=args.seed, patience=args.epochs,
                        cache_dir=args.cache_dir or None)
    space = SearchSpace(widths=tuple(args.widths), input_sizes=tuple(args.input_sizes),
                        learning_rates=tuple(args.learning_rates))
    print(format_table(grid_search(base, space, args.budget_min)))
    return 0
