"""``plant-disease report``: one static, offline HTML page of the model and its analyses."""

from __future__ import annotations

import argparse
from pathlib import Path


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Declare the ``report`` options."""
    parser.add_argument('--models', default=None,
                        help='folder of the model, labels.txt and MODEL_CARD.md (default: '
                             'RUN when it holds an export of its model, else the shipped '
                             "model's folder, from any working folder)")
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
                        help='explanation pictures shown at most (0 or more)')
    parser.add_argument('--max-maps', type=int, default=10,
                        help='runs of a --map folder shown at most, newest first (0 or more; '
                             'the page says how many more there are)')
    parser.add_argument('--inline', action='store_true',
                        help='embed the pictures in the page (one self-contained file)')
    parser.add_argument('--title', default='Plant disease classifier report')
    parser.add_argument('--out', default='report/index.html',
                        help='HTML page to write, with its pictures in <page>_files/ beside '
                             'it; a page that exists (an earlier report) is refused unless '
                             '--overwrite')
    parser.add_argument('--overwrite', action='store_true',
                        help='replace the page at --out and its pictures (as train and '
                             'search replace an earlier run only with --overwrite)')


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
        shipped_models_folder,
    )

    def optional(value: str | None) -> Path | None:
        return Path(value) if value else None

    for option, value in (('--max-explanations', args.max_explanations),
                          ('--max-maps', args.max_maps)):
        if value < 0:
            raise ValueError(f'{option} must be 0 or more, got {value}')
    check_report_out(Path(args.out), args.overwrite)

    run_dir = optional(args.run)
    # The shipped model's folder wherever the command runs (as embed and explain find it),
    # the one with its card's evaluation and figures (not an install's share copy).
    models_dir = Path(args.models) if args.models \
        else models_folder_of(run_dir, shipped_models_folder())
    inputs = ReportInputs(models_dir=models_dir, run_dir=run_dir,
                          eval_dir=optional(args.eval),
                          explanations_dir=analysis_folder(
                              args.explanations, run_dir, models_dir, RUN_EXPLANATIONS,
                              SHARED_EXPLANATIONS),
                          embed_dir=analysis_folder(args.embed, run_dir, models_dir,
                                                    RUN_EMBEDDING, SHARED_EMBEDDING),
                          map_path=optional(args.map),
                          max_explanations=args.max_explanations, max_maps=args.max_maps)
    result = build_report(inputs, args.out, inline=args.inline, title=args.title)
    for name, state in result.sections.items():
        print(f'  {name:<13} {state}')
    print(f'report: {result.path}')
    return 0


def check_report_out(page: Path, overwrite: bool) -> None:
    """Raise FileExistsError when ``page`` (or its pictures) exist and not ``overwrite``.

    An earlier report there would be replaced: refused, as ``train`` and ``search`` refuse
    an earlier run, before anything is read or written.
    """
    if page.is_dir():
        raise IsADirectoryError(f'--out {page} is a folder, not a page: give the page to '
                                f'write, e.g. --out {page / "index.html"}')
    assets = page.parent / f'{page.stem}_files'
    found = [path for path in (page, assets) if path.exists()]
    if found and not overwrite:
        raise FileExistsError(
            f'--out {page}: {" and ".join(str(path) for path in found)} already exist (an '
            'earlier report); give another --out, or --overwrite to replace it')
