"""Start-up helpers shared by the nodes' ``main()`` functions."""

from __future__ import annotations

from collections.abc import Callable, Sequence
import sys

import rclpy
from rclpy.exceptions import ParameterException
from rclpy.executors import ExternalShutdownException, SingleThreadedExecutor
from rclpy.logging import get_logger
from rclpy.node import Node

from plant_disease_ros.core.allocator_tuning import keep_frame_buffers_resident
from plant_disease_ros.core.interpreter_loader import ModelLoadError


def init_rclpy(node_name: str, args: Sequence[str] | None = None) -> bool:
    """Initialise rclpy; on a bad ``--ros-args`` or params file print one line, return False.

    ``rclpy.init`` parses the parameter files, so a missing, unreadable or garbage
    ``--params-file`` fails here with an RCLError (a RuntimeError): the user gets the
    reason on one line and a non-zero exit instead of a traceback.
    """
    try:
        rclpy.init(args=args)
    except RuntimeError as error:
        reason = ' '.join(str(error).split())
        print(f'{node_name}: error: cannot start: {reason}', file=sys.stderr)
        return False
    return True


def run_nodes(name: str, create: Callable[[], Node | Sequence[Node]],
              args: Sequence[str] | None = None) -> int:
    """Run the node(s) that ``create()`` builds in one executor until shutdown.

    Returns the process exit code: 1 with one logged line when start-up fails (bad
    parameters file, model that cannot be loaded, invalid parameter), 0 after Ctrl-C or
    an external shutdown. Before anything allocates frames, the allocator is told to keep
    freed frame buffers resident (see ``core.allocator_tuning``).
    """
    tuning = keep_frame_buffers_resident()
    if not init_rclpy(name, args):
        return 1
    nodes: list[Node] = []
    try:
        created = create()
        nodes = [created] if isinstance(created, Node) else list(created)
        logger = get_logger(name)
        logger.info(
            f'allocator: {tuning.reason}' + (
                f' (mmap threshold {tuning.mmap_threshold_bytes >> 20} MiB, trim threshold '
                f'{tuning.trim_threshold_bytes >> 20} MiB)' if tuning.applied else ''))
        executor = SingleThreadedExecutor()
        for node in nodes:
            executor.add_node(node)
        executor.spin()
    except ModelLoadError as error:
        get_logger(name).fatal(f'cannot load the model: {error}')
        return 1
    except ParameterException as error:
        get_logger(name).fatal(f'invalid parameter: {error}')
        return 1
    except (KeyboardInterrupt, ExternalShutdownException):
        pass
    finally:
        for node in nodes:
            node.destroy_node()
        rclpy.try_shutdown()
    return 0


def spin_until_shutdown(node: Node) -> None:
    """Spin ``node`` until Ctrl-C or shutdown, then destroy it and shut rclpy down.

    For small helper processes (bench workers, test publishers) that own one node.
    """
    try:
        rclpy.spin(node)
    except (KeyboardInterrupt, ExternalShutdownException):
        pass
    finally:
        node.destroy_node()
        rclpy.try_shutdown()
