"""``plant-disease model-card``: write MODEL_CARD.md for an exported model."""

from __future__ import annotations

import argparse
from pathlib import Path

from plant_disease_ros.training.evaluate import benchmark_invoke
from plant_disease_ros.training.model_card import write_model_card


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Declare the ``model-card`` options."""
    parser.add_argument('--run', required=True, help='training run folder')
    parser.add_argument('--evaluation', required=True,
                        help='folder of `plant-disease evaluate --keras ...` on the test split')
    parser.add_argument('--model', default='models/plant_disease_int8.tflite')
    parser.add_argument('--labels', default='models/labels.txt')
    parser.add_argument('--search', default=None, help='search_results.md to include')
    parser.add_argument('--out', default='models/MODEL_CARD.md')
    parser.add_argument('--train-command', default='')
    parser.add_argument('--export-command', default='')
    parser.add_argument('--evaluate-command', default='')


def run(args: argparse.Namespace) -> int:
    """Measure invoke latency at 1 and 2 threads and write the card."""
    latency = [benchmark_invoke(args.model, args.labels, threads) for threads in (1, 2)]
    search_table = Path(args.search).read_text() if args.search else None
    path = write_model_card(args.run, args.evaluation, args.out, args.model, latency,
                            search_table=search_table, train_command=args.train_command,
                            export_command=args.export_command,
                            evaluate_command=args.evaluate_command)
    print(f'model card: {path}')
    return 0
