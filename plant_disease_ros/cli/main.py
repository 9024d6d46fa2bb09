"""The ``plant-disease`` command: offline tools for training, export, evaluation and the field.

Each subcommand imports its heavy dependencies (TensorFlow, matplotlib, rosbags, rclpy)
only when it runs, so ``plant-disease --help`` works on a robot without any of them.
"""

from __future__ import annotations

import argparse
from collections.abc import Callable, Sequence
import importlib
import importlib.util
import os
import select
import sys

from plant_disease_ros.cli.tensorflow_logs import quiet_tensorflow

# Subcommand name -> (module with ``add_arguments(parser)`` and ``run(args) -> int``, help).
SUBCOMMANDS: dict[str, tuple[str, str]] = {
    'train': ('plant_disease_ros.cli.train', 'train a classifier on a photo folder'),
    'export': ('plant_disease_ros.cli.export',
               'export a trained Keras model to full-integer int8 TFLite'),
    'evaluate': ('plant_disease_ros.cli.evaluate',
                 'evaluate a TFLite (and optionally Keras) model on a photo folder'),
    'compare': ('plant_disease_ros.cli.compare',
                'compare two evaluations of the same photos, photo by photo'),
    'choose': ('plant_disease_ros.cli.choose',
               'does a candidate replace the shipped model? validation on sharp and smeared '
               'frames'),
    'model-card': ('plant_disease_ros.cli.model_card',
                   'write MODEL_CARD.md from a run, its evaluation and latency'),
    'search': ('plant_disease_ros.cli.search',
               'search learning rate, unfreeze, input size and augmentation one knob at a '
               'time (width from scratch only) in a time budget'),
    'map': ('plant_disease_ros.cli.map', 'render a disease map GeoJSON as PNG'),
    'replay': ('plant_disease_ros.cli.replay', 'replay a rosbag2 bag through the pipeline'),
    'make-demo': ('plant_disease_ros.cli.demo', 'compose the demo bag from leaf photos'),
    'bench': ('plant_disease_ros.cli.bench', 'benchmark the model, the core and the nodes'),
    'explain': ('plant_disease_ros.cli.explain',
                'Grad-CAM and occlusion maps for images'),
    'embed': ('plant_disease_ros.cli.embed',
              'PCA and t-SNE pictures of the penultimate features'),
    'report': ('plant_disease_ros.cli.report', 'build the static HTML report'),
}


def build_parser(available: Callable[[str], bool] | None = None) -> argparse.ArgumentParser:
    """Build the argument parser with every subcommand whose module is present."""
    parser = argparse.ArgumentParser(prog='plant-disease', description=__doc__.splitlines()[0])
    commands = parser.add_subparsers(dest='command', metavar='COMMAND', required=True)
    for name, (module_name, help_text) in SUBCOMMANDS.items():
        if available is not None and not available(module_name):
            continue
        module = importlib.import_module(module_name)
        sub = commands.add_parser(name, help=help_text, description=help_text)
        module.add_arguments(sub)
        sub.set_defaults(handler=module.run)
    return parser


def _module_exists(module_name: str) -> bool:
    return importlib.util.find_spec(module_name) is not None


def main(argv: Sequence[str] | None = None) -> int:
    """Run the ``plant-disease`` command line and return its exit status."""
    quiet_tensorflow()  # before any command imports TensorFlow
    parser = build_parser(available=_module_exists)
    args = parser.parse_args(argv)
    try:
        status = int(args.handler(args) or 0)
        sys.stdout.flush()  # a closed pipe is met here, not in the interpreter's exit
        return status
    except KeyboardInterrupt:
        print('interrupted', file=sys.stderr)
        return 130
    except (ValueError, OSError, RuntimeError) as error:
        if isinstance(error, BrokenPipeError) and _stdout_reader_gone():
            # `plant-disease compare ... | head`: the reader has what it wanted. End as a
            # shell tool killed by SIGPIPE would (status 128 + 13), without an error line;
            # the commands write their files before they print.
            _drop_stdout()
            return 141
        # Known failures (bad dataset, missing model, corrupt bag) end in one line, not a
        # traceback; PLANT_DISEASE_DEBUG=1 shows the traceback.
        if os.environ.get('PLANT_DISEASE_DEBUG'):
            raise
        print(f'plant-disease {args.command}: error: {error}', file=sys.stderr)
        return 2


def _stdout_reader_gone() -> bool:
    """True when standard output is a pipe or socket whose reading end has been closed."""
    try:
        fileno = sys.stdout.fileno()
    except (AttributeError, OSError, ValueError):
        return False
    poller = select.poll()
    poller.register(fileno, select.POLLOUT)
    return any(events & select.POLLERR for _, events in poller.poll(0))


def _drop_stdout() -> None:
    """Point standard output at /dev/null, so the exit's flush raises nothing again."""
    devnull = os.open(os.devnull, os.O_WRONLY)
    try:
        os.dup2(devnull, sys.stdout.fileno())
    finally:
        os.close(devnull)


if __name__ == '__main__':
    sys.exit(main())
