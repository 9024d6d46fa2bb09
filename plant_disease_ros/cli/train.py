"""``plant-disease train``: train a classifier on a folder of class folders."""

from __future__ import annotations

import argparse

from plant_disease_ros.training.model import ARCHITECTURES
from plant_disease_ros.training.train import DEFAULT_CACHE_DIR, train, TrainOptions


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Declare the ``train`` options."""
    parser.add_argument('--data', required=True, help='folder of <class>/<image> photos')
    parser.add_argument('--out', required=True, help='output folder for the run')
    parser.add_argument('--architecture', choices=ARCHITECTURES, default='resnet_lite')
    parser.add_argument('--width', type=float, default=0.75, help='width multiplier (alpha)')
    parser.add_argument('--input-size', type=int, default=96, help='square input side, px')
    parser.add_argument('--epochs', type=int, default=40)
    parser.add_argument('--batch-size', type=int, default=64)
    parser.add_argument('--learning-rate', type=float, default=2e-3)
    parser.add_argument('--patience', type=int, default=8,
                        help='early stopping: epochs without validation gain')
    parser.add_argument('--seed', type=int, default=42)
    parser.add_argument('--val-fraction', type=float, default=0.10)
    parser.add_argument('--test-fraction', type=float, default=0.15)
    parser.add_argument('--per-class', type=int, default=None,
                        help='use at most this many photos a class (smoke runs)')
    parser.add_argument('--augment-strength', type=float, default=1.0,
                        help='0 turns augmentation off')
    parser.add_argument('--time-budget-min', type=float, default=None,
                        help='stop after the epoch that passes this many minutes')
    parser.add_argument('--cache-dir', default=str(DEFAULT_CACHE_DIR),
                        help='where decoded photos are cached ("" for no cache)')
    parser.add_argument('--init-weights', default=None,
                        help='start from this Keras model (same architecture): a second, '
                             'lower-learning-rate phase')
    parser.add_argument('--threads', type=int, default=None, help='TensorFlow CPU threads')
    parser.add_argument('--quiet', action='store_true', help='one line per epoch')


def run(args: argparse.Namespace) -> int:
    """Train and print where the model is."""
    options = TrainOptions(
        data_dir=args.data, out_dir=args.out, input_size=args.input_size, width=args.width,
        architecture=args.architecture, epochs=args.epochs, batch_size=args.batch_size,
        learning_rate=args.learning_rate, patience=args.patience, seed=args.seed,
        val_fraction=args.val_fraction, test_fraction=args.test_fraction,
        per_class=args.per_class, augment_strength=args.augment_strength,
        time_budget_min=args.time_budget_min, cache_dir=args.cache_dir or None,
        init_weights=args.init_weights, threads=args.threads, verbose=2 if args.quiet else 1)
    result = train(options)
    print(f'model: {result.model_path} (best val accuracy {result.best_val_accuracy:.4f})')
    return 0
