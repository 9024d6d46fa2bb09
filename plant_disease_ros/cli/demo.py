"""``plant-disease make-demo``: compose the demo bag from lab and field leaf photos."""

from __future__ import annotations

import argparse
from pathlib import Path
import sys

from plant_disease_ros.tools import demo_bag
from plant_disease_ros.tools.replay.progress import StatusLine


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Add the make-demo options to ``parser``."""
    parser.add_argument('--data', type=Path, default=demo_bag.DEFAULT_DATA_DIR,
                        help='PlantVillage-style photo folder (default: %(default)s)')
    parser.add_argument('--out', type=Path, default=Path('demo/field_demo.mcap'),
                        help='output MCAP file, not a folder; the truth file is written '
                             'beside it as <name>_truth.json (default: %(default)s)')
    parser.add_argument('--frames', type=int, default=demo_bag.DEFAULT_FRAMES,
                        help='approximate number of camera frames, rounded to whole plants '
                             '(default: %(default)s)')
    parser.add_argument('--seed', type=int, default=demo_bag.DEFAULT_SEED,
                        help='random seed for photos, texture and GPS noise '
                             '(default: %(default)s)')
    parser.add_argument('--split', type=Path, default=demo_bag.DEFAULT_SPLIT,
                        help='split file whose test photos are used; if it does not exist, '
                             'photos are a seeded choice from the folder '
                             '(default: %(default)s)')
    parser.add_argument('--field', type=Path, default=demo_bag.DEFAULT_FIELD_DIR,
                        help='field photo folder (PlantDoc-style) for a few plants of each '
                             'row (default: %(default)s)')
    parser.add_argument('--field-split', type=Path, default=demo_bag.DEFAULT_FIELD_SPLIT,
                        help='field split file whose test photos of the --field folder are '
                             'used; if it does not exist, every plant shows a lab photo '
                             '(default: %(default)s)')

    parser.add_argument('--replace-shipped', action='store_true',
                        help='allow other photos, seed, frames or splits to replace the '
                             'shipped demo bag (the README and the tests describe that drive)')

def check_shipped_bag(args: argparse.Namespace) -> None:
    """Raise ValueError when a drive other than the shipped one would replace the shipped bag.

    With the default options make-demo rebuilds the shipped bag byte for byte; with other
    photos, seed, frame count or splits the README's figures and the end-to-end test would
    describe a bag that is no longer there.
    """
    if args.replace_shipped or args.out.resolve() != demo_bag.DEFAULT_OUT.resolve():
        return
    changed = [f'--{name.replace("_", "-")}' for name, default in (
        ('data', demo_bag.DEFAULT_DATA_DIR), ('frames', demo_bag.DEFAULT_FRAMES),
        ('seed', demo_bag.DEFAULT_SEED), ('split', demo_bag.DEFAULT_SPLIT),
        ('field', demo_bag.DEFAULT_FIELD_DIR), ('field_split', demo_bag.DEFAULT_FIELD_SPLIT))
        if _differs(getattr(args, name), default)]
    if changed:
        raise ValueError(f'--out {args.out} is the shipped demo bag, and {", ".join(changed)} '
                         'would make it another drive than the one the README and the tests '
                         'describe: give --out another file (or --replace-shipped)')


def _differs(value: object, default: object) -> bool:
    if isinstance(default, Path):
        return Path(str(value)).resolve() != default.resolve()
    return value != default


def run(args: argparse.Namespace) -> int:
    """Compose the bag and print what was written.

    Progress goes to stderr: redrawn in place on a terminal, one line per update in a log.
    """
    check_shipped_bag(args)
    options = demo_bag.DemoOptions(data_dir=args.data, out_path=args.out, frames=args.frames,
                                   seed=args.seed, split_path=args.split,
                                   field_dir=args.field, field_split_path=args.field_split)

    status = StatusLine(sys.stderr)
    try:
        result = demo_bag.make_demo_bag(options, progress=status.show)
    finally:
        status.finish()
    print(f'bag:    {result.bag_path} ({result.bag_bytes / 1e6:.2f} MB, {result.frames} frames, '
          f'{result.raw_frames} raw, {result.fixes} fixes)')
    print(f'truth:  {result.truth_path}')
    print(f'photos: {result.photo_source}')
    print('kinds:  ' + ', '.join(f'{kind} {count}'
                                 for kind, count in sorted(result.kinds.items())))
    print('labels: ' + ', '.join(f'{label} {count}'
                                 for label, count in sorted(result.labels.items())))
    return 0
