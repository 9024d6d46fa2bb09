"""``plant-disease compare``: is one evaluation of the same photos better than another?

Compares two ``plant-disease evaluate`` folders photo by photo (two models, or one model
with two settings) per domain: top-1 with 95 % intervals, the photos fixed and broken, the
exact McNemar p-value, and the same for the wrong points each would put on the map.
"""

from __future__ import annotations

import argparse
from pathlib import Path

from plant_disease_ros.training.compare import (
    compare_evaluations,
    DEFAULT_ALPHA,
    format_comparison,
    free_output_folder,
    read_evaluation,
    write_comparison,
)


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Declare the ``compare`` options."""
    parser.add_argument('base', metavar='BASE',
                        help='evaluation folder of the reference (e.g. the shipped model)')
    parser.add_argument('new', metavar='NEW',
                        help='evaluation folder of the candidate, on the same photos')
    parser.add_argument('--names', nargs=2, default=None, metavar=('BASE_NAME', 'NEW_NAME'),
                        help='names for the two in the table and the picture (default: the '
                             "folder names, the run's for RUN/eval, with as much of the path "
                             'as tells them apart)')
    parser.add_argument('--alpha', type=float, default=DEFAULT_ALPHA,
                        help='significance level of a verdict (default: 0.05)')
    parser.add_argument('--out', default='comparison',
                        help='output folder for comparison.json, .md and .png; one that holds '
                             'a comparison already is kept, and OUT-2, OUT-3... is used')


def run(args: argparse.Namespace) -> int:
    """Compare, write the files, then print the table; return 0.

    The files first: a reader that stops early (``compare A B | head -3``) closes the pipe,
    and printing then fails, but the comparison is written by then.
    """
    result = compare_evaluations(read_evaluation(args.base), read_evaluation(args.new),
                                 alpha=args.alpha,
                                 names=tuple(args.names) if args.names else None)
    out_dir = free_output_folder(args.out)
    written = write_comparison(result, out_dir)
    print(format_comparison(result))
    if out_dir != Path(args.out):
        print(f'{args.out} holds an earlier comparison: kept; this one goes to {out_dir}')
    print('written: ' + ', '.join(str(path) for path in written))
    return 0
