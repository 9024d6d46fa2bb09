"""``plant-disease report``: one static, offline HTML page of the model and its analyses."""

from __future__ import annotations

import argparse
from pathlib import Path


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Declare the ``report`` options."""
    parser.add_argument('--models', default=None,
                        help='folder of the model, labels.txt and MODEL_CARD.md (default: '
                             'RUN when it holds an exported model, else models/, the '
                             'shipped one)')
    parser.add_argument('--run', default='runs/plantvillage',
                        help='training run folder (train_summary.json, training_curves.png)')
    parser.add_argument('--eval', default=None,
                        help='evaluation folder (evaluation.json, confusion_matrix.png); '
                             'default: RUN/eval, RUN/evaluation, RUN, MODELS). An '
                             "evaluation of another model than the report's is not shown")
    parser.add_argument('--explanations', default=None,
                        help='output folder of `plant-disease explain` ("" to leave out; '
                             "default: RUN/explanations; for a report of the run's own "
                             'export nothing else, otherwise outputs/explanations). '
                             "Explanations of another model than the report's are not shown")
    parser.add_argument('--embed', default=None,
                        help='output folder of `plant-disease embed` ("" to leave out; '
                             "default: RUN/embedding; for a report of the run's own export "
                             'nothing else, otherwise outputs/embedding)')
    parser.add_argument('--map', default=None,
                        help='disease map of a field run: a PNG, a GeoJSON (.geojson or '
                             '.geojsons) or the recorder folder holding them')
    parser.add_argument('--max-explanations', type=int, default=60,
                        help='explanation pictures shown at most')
    parser.add_argument('--inline', action='store_true',
                        help='embed the pictures in the page (one self-contained file)')
    parser.add_argument('--title', default='Plant disease classifier report')
    parser.add_argument('--out', default='report/index.html', help='HTML page to write')


def run(args: argparse.Namespace) -> int:
    """Build the page and print which sections had their material."""
    from plant_disease_ros.training.report import (
        analysis_folder,
        build_report,
        models_folder_of,
        ReportInputs,
        RUN_EMBEDDING,
        RUN_EXPLANATIONS,
        SHARED_EMBEDDING,
        SHARED_EXPLANATIONS,
    )

    def optional(value: str | None) -> Path | None:
        return Path(value) if value else None

    run_dir = optional(args.run)
    models_dir = Path(args.models) if args.models else models_folder_of(run_dir)
    inputs = ReportInputs(models_dir=models_dir, run_dir=run_dir,
                          eval_dir=optional(args.eval),
                          explanations_dir=analysis_folder(
                              args.explanations, run_dir, models_dir, RUN_EXPLANATIONS,
                              SHARED_EXPLANATIONS),
                          embed_dir=analysis_folder(args.embed, run_dir, models_dir,
                                                    RUN_EMBEDDING, SHARED_EMBEDDING),
                          map_path=optional(args.map),
                          max_explanations=args.max_explanations)
    result = build_report(inputs, args.out, inline=args.inline, title=args.title)
    for name, state in result.sections.items():
        print(f'  {name:<13} {state}')
    print(f'report: {result.path}')
    return 0
