"""``plant-disease bench``: latency, throughput, floods and the Keras baseline, in one run.

Prints the figures as tables and saves them, with the machine they came from, as JSON
(the code is ``plant_disease_ros.tools.bench``). ``--quick`` is a short smoke run whose
figures are not meant to be quoted. Run it on an otherwise idle machine.
"""

from __future__ import annotations

import argparse
import math
from pathlib import Path
import sys

from plant_disease_ros.core.classifier import default_model_path, labels_beside
from plant_disease_ros.core.output_paths import check_not_an_input, check_output_file
from plant_disease_ros.tools.process import stop_on_termination, Terminated


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Add the bench options to ``parser``."""
    from plant_disease_ros.tools.bench import SECTIONS

    parser.add_argument('--duration', type=float, default=None, metavar='S',
                        help='seconds of each sustained run (30 fps, 60 fps flood); '
                             'default 60, 8 with --quick')
    parser.add_argument('--latency-duration', type=float, default=None, metavar='S',
                        help='seconds of each 5 Hz latency phase; default 10, 3 with --quick')
    parser.add_argument('--baseline-duration', type=float, default=None, metavar='S',
                        help='seconds of the Keras baseline flood; default 30, 8 with --quick')
    parser.add_argument('--out', type=Path, default=Path('bench.json'),
                        help='JSON report path (default bench.json)')
    parser.add_argument('--quick', action='store_true',
                        help='short phases: a smoke run, not figures')
    parser.add_argument('--skip-baseline', action='store_true',
                        help='leave out the Keras baseline (TensorFlow is slow to start)')
    parser.add_argument('--sections', nargs='+', choices=SECTIONS, default=list(SECTIONS),
                        metavar='SECTION',
                        help=f'sections to run (default all): {" ".join(SECTIONS)}')
    parser.add_argument('--model', default='', help='TFLite model (default: the shipped one)')
    parser.add_argument('--labels', default='',
                        help='labels file (default: labels.txt beside --model, else the '
                             'shipped one)')
    parser.add_argument('--keras-model', default='',
                        help='float Keras model of the baseline (default '
                             'models/plant_disease_float.keras)')
    parser.add_argument('--num-threads', type=int, default=2,
                        help='interpreter threads of the nodes and classify() (default 2, '
                             'the shipped setting)')
    parser.add_argument('--domain-id', type=int, default=None,
                        help='ROS_DOMAIN_ID for the bench and its processes (default: the '
                             "environment's, else 10 + pid %% 90)")
    parser.add_argument('--log-dir', default='',
                        help='folder for the node logs (default: a new temporary folder)')


MAX_DOMAIN_ID = 232


def run(args: argparse.Namespace) -> int:
    """Run the bench; print the tables, write the JSON; return 1 if a part failed.

    The report path is checked first, so a long run never ends unable to save. SIGTERM
    and SIGHUP stop the bench's processes as Ctrl-C does (status 128 + signal).
    """
    from plant_disease_ros.tools.bench import BenchConfig, format_report, run_bench, write_report

    sections = tuple(section for section in args.sections
                     if not (args.skip_baseline and section == 'baseline'))
    if args.num_threads < 1:
        raise ValueError(f'--num-threads must be >= 1, got {args.num_threads}')
    if args.domain_id is not None and not 0 <= args.domain_id <= MAX_DOMAIN_ID:
        # Fast DDS's ports overflow above 232; above 101 they fall in Linux's ephemeral range.
        raise ValueError(f'--domain-id must be in 0..{MAX_DOMAIN_ID}, got {args.domain_id}')
    for name in ('duration', 'latency_duration', 'baseline_duration'):
        value = getattr(args, name)
        if value is not None and not 0 < value < math.inf:
            raise ValueError(f'--{name.replace("_", "-")} must be > 0 and finite, got {value}')
    check_output_file(args.out)
    model = Path(args.model) if args.model else default_model_path()
    check_not_an_input(args.out, [model, args.labels or labels_beside(model),
                                  args.keras_model or None])
    overrides = {
        'sections': sections, 'model_path': args.model, 'labels_path': args.labels,
        'keras_model': args.keras_model, 'num_threads': args.num_threads,
        'domain_id': args.domain_id, 'log_dir': args.log_dir,
        'progress': lambda text: print(text, file=sys.stderr, flush=True),
    }
    for name, key in (('duration', 'duration_s'), ('latency_duration', 'latency_duration_s'),
                      ('baseline_duration', 'baseline_duration_s')):
        if getattr(args, name) is not None:
            overrides[key] = float(getattr(args, name))
    config = (BenchConfig.quick_config(**overrides) if args.quick
              else BenchConfig(**overrides))
    try:
        with stop_on_termination():
            report = run_bench(config)
    except Terminated as stopped:
        print(f'plant-disease bench: {stopped}; its processes were stopped', file=sys.stderr)
        return stopped.exit_status
    print(format_report(report))
    write_report(report, args.out)
    print(f'\nreport written to {args.out}', file=sys.stderr)
    return 1 if report['errors'] else 0
