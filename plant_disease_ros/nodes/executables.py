"""The node executables' console scripts: a stop signal is a clean stop from their first line.

Importing a node module loads numpy, OpenCV, rclpy and the LiteRT runtime: about a second
on a desktop, several on a Raspberry Pi. A Ctrl-C (or ``ros2 launch``'s SIGINT, systemd's
SIGTERM) in that time used to end in a KeyboardInterrupt traceback, or killed the process
silently. So ``setup.py``'s console scripts point here: this module imports only the
package's light ``ros.stop_request`` (standard library modules loaded with Python
itself, and ``signal``), installs the node process's stop request (:data:`STOP`) and only
then imports the node module and calls its ``main``. A signal that came meanwhile is not
forgotten: ``main`` finds it before it starts rclpy (``ros.startup.start_rclpy``) and
exits with one line, ``<name>: stopped by SIGINT while starting: nothing was recorded or
published yet``, and status 0, that of a node stopped by its first signal. A later
second signal (see :class:`~plant_disease_ros.ros.stop_request.StopRequest`) cuts a slow
import short: one line, status 130.
Only Python's own start before the script's first line (the interpreter, site-packages'
``.pth`` files: tens of milliseconds) is out of reach and keeps Python's defaults.

``python -m plant_disease_ros.nodes.executables NAME [--ros-args ...]`` runs executable
``NAME`` the same way (``ros.node_set`` uses it where no console script is installed);
``python -m plant_disease_ros.nodes.<module>`` and a direct ``main()`` still work, with
the handlers installed once rclpy is initialised.
"""

from __future__ import annotations

import importlib
import sys

from plant_disease_ros.ros.stop_request import STOP

# Executable (console script) name -> the node module whose main() it runs.
NODE_MODULES = {
    'camera_subscriber': 'plant_disease_ros.nodes.camera_subscriber',
    'disease_classifier': 'plant_disease_ros.nodes.disease_classifier',
    'disease_map_recorder': 'plant_disease_ros.nodes.disease_map_recorder',
    'plant_disease_pipeline': 'plant_disease_ros.nodes.pipeline',
}


def run(name: str) -> int:
    """Take the stop signals, then import executable ``name``'s node module and run it.

    Returns the process's exit status.
    """
    STOP.install()
    try:
        return int(importlib.import_module(NODE_MODULES[name]).main() or 0)
    except KeyboardInterrupt:
        # Only a second signal raises it (StopRequest): while the process still started,
        # or in the last of its stop that main does not guard (rclpy's shutdown after the
        # nodes saved what they hold).
        if not STOP.requested:
            raise
        if STOP.nodes_started:
            return STOP.cut_short(name, 'rclpy was not shut down; what the nodes had '
                                  'written stays written')
        return STOP.cut_short(name, 'it was still starting: nothing was recorded or '
                              'published yet')


def camera_subscriber() -> int:
    """Run the camera_subscriber executable."""
    return run('camera_subscriber')


def disease_classifier() -> int:
    """Run the disease_classifier executable."""
    return run('disease_classifier')


def disease_map_recorder() -> int:
    """Run the disease_map_recorder executable."""
    return run('disease_map_recorder')


def plant_disease_pipeline() -> int:
    """Run the plant_disease_pipeline executable."""
    return run('plant_disease_pipeline')


def main(argv: list[str] | None = None) -> int:
    """``python -m plant_disease_ros.nodes.executables NAME [args]``: run executable NAME.

    ``argv`` defaults to ``sys.argv``; NAME is taken out of it, so the node sees its own
    arguments (``--ros-args ...``) only.
    """
    argv = sys.argv if argv is None else argv
    if len(argv) < 2 or argv[1] not in NODE_MODULES:
        print(f'usage: python -m plant_disease_ros.nodes.executables '
              f'{{{",".join(NODE_MODULES)}}} [--ros-args ...]', file=sys.stderr)
        return 2
    name = argv.pop(1)
    return run(name)


if __name__ == '__main__':
    sys.exit(main())
