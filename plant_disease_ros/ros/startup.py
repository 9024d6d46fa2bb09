"""Start-up helpers shared by the nodes' ``main()`` functions.

The stop request (:class:`StopRequest`, :data:`STOP`) lives in ``ros.stop_request``, light
enough for the console scripts to install before anything heavy is imported; it is
re-exported here.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from contextvars import ContextVar
import re
import sys
import threading
import time
from typing import Protocol, runtime_checkable

import rclpy
from rclpy.exceptions import ParameterException
from rclpy.executors import ExternalShutdownException, SingleThreadedExecutor
from rclpy.logging import get_logger
from rclpy.node import Node
from rclpy.signals import SignalHandlerOptions

from plant_disease_ros.core.allocator_tuning import keep_frame_buffers_resident
from plant_disease_ros.core.interpreter_loader import ModelLoadError
from plant_disease_ros.ros.stop_request import (  # noqa: F401 (re-exported)
    CUT_SHORT_STATUS,
    SAME_STOP_S,
    STOP,
    StopRequest,
)

# How often a spinning node process looks for a stop signal.
STOP_POLL_S = 0.2
# How long a node that takes messages from other processes waits for their publishers to
# go; what has arrived by then is still taken, for at most DRAIN_LIMIT_S in all.
DRAIN_TIMEOUT_S = 3.0
DRAIN_LIMIT_S = 30.0
# The takers are done with what has arrived when they take nothing for this long.
DRAIN_POLL_S = 0.05
# How long one turn of that spin waits for a callback (0 misses messages still queued).
DRAIN_TAKE_S = 0.001


@runtime_checkable
class TakesLastMessages(Protocol):
    """A node that, asked to stop, first takes what other processes still send it."""

    def inputs_still_published(self) -> list[str]:
        """Name the input topics whose publishers are still there and may send more."""

    def messages_taken(self) -> int:
        """Return a count that grows with each message taken from those topics."""


def init_rclpy(node_name: str, args: Sequence[str] | None = None) -> bool:
    """Initialise rclpy; on a bad ``--ros-args`` or params file print one line, return False.

    ``rclpy.init`` parses the parameter files, so a missing, unreadable or garbage
    ``--params-file`` fails here with an RCLError (a RuntimeError): the user gets the
    reason on one line and a non-zero exit instead of a traceback. In the main thread
    (a node process) rclpy installs no signal handler: :data:`STOP` handles SIGINT and
    SIGTERM (see :class:`StopRequest`); elsewhere Python cannot take signals and rclpy's
    handlers stay.
    """
    main_thread = threading.current_thread() is threading.main_thread()
    try:
        rclpy.init(args=args,
                   signal_handler_options=SignalHandlerOptions.NO if main_thread else None)
    except RuntimeError as error:
        reason = ' '.join(str(error).split())
        print(f'{node_name}: error: cannot start: {reason}', file=sys.stderr)
        return False
    if main_thread:
        STOP.install()
    return True


def start_rclpy(node_name: str, args: Sequence[str] | None = None) -> int | None:
    """Initialise rclpy for node process ``node_name``, unless it was asked to stop already.

    Returns None when the process goes on to build its nodes, else its exit status. A stop
    signal that came while the process imported its modules (its console script takes
    them from its first moment: ``nodes.executables``) or while rclpy was initialised
    ends it here, before any node exists: one line says so and the status is that of a
    node stopped by its first signal (:meth:`StopRequest.stopped_while_starting`).
    A bad ``--ros-args`` or params file: 1, after one line (:func:`init_rclpy`).
    """
    if STOP.requested:
        return STOP.stopped_while_starting(node_name)
    if not init_rclpy(node_name, args):
        return 1
    if STOP.requested:
        rclpy.try_shutdown()
        return STOP.stopped_while_starting(node_name)
    STOP.nodes_started = True
    return None


# True while run_nodes (or a main using process_starting) builds a node process's nodes.
_PROCESS_STARTING: ContextVar[bool] = ContextVar('plant_disease_process_starting',
                                                 default=False)
# Nodes that failed to build during a process start, waiting for release_started_nodes.
_FAILED_AT_START: list[Node] = []


def parameter_error_text(error: Exception) -> str:
    """Return a parameter error's message with the parameter's name first.

    rclpy's ``ParameterException`` appends ``: <name>`` to its message, which reads as a
    stray word after the reason; the name goes first instead: ``crops: Invalid ...``. A
    whole number given to a floating-point parameter at start gets the fix added.
    """
    text = str(error)
    if isinstance(error, ParameterException):
        head, _, tail = text.rpartition(': ')
        if head and tail.replace('_', '').replace('.', '').isalnum():
            text = f'{tail}: {head}'
    whole = re.search(r"to '([-+]?\d+)' of type 'INTEGER', expecting type 'DOUBLE'", text)
    if whole:
        # A parameters file's `5` or a `-p max_rate_hz:=5`: rcl reads a whole number.
        number = whole.group(1)
        text += f' (write a whole number with a decimal point: {number}.0, not {number})'
    return text


def release_failed_node(node: Node) -> None:
    """Release a node whose construction failed: now, or after the process's error line.

    Outside a node process's start (tests, a composed process) the node is destroyed at
    once, so nothing leaks. While :func:`run_nodes` (or a ``main`` using
    :func:`process_starting`) builds its nodes, it is kept and destroyed by
    :func:`release_started_nodes` after the one-line error is out: destroying its freshly
    created rcl handles can crash the process (a SIGSEGV in rclpy's node destruction, seen
    in 4 of about 2,800 bad start-ups, most with the CPU saturated), which must not take
    the line with it. It is still destroyed: that deletes the process's DDS participant,
    and with it the participant's 32 MiB shared-memory segment in ``/dev/shm`` (RAM), which
    a process that just exits leaves behind, one per failed start (a respawning node
    would fill the robot's memory).
    """
    if _PROCESS_STARTING.get():
        _FAILED_AT_START.append(node)
    else:
        node.destroy_node()


@contextmanager
def process_starting() -> Iterator[None]:
    """Mark the construction of a node process's nodes (see :func:`release_failed_node`)."""
    token = _PROCESS_STARTING.set(True)
    try:
        yield
    finally:
        _PROCESS_STARTING.reset(token)


def release_started_nodes() -> None:
    """Flush the output, destroy the nodes that failed to build, shut rclpy down.

    Call it after the process's error line: the nodes' DDS participant and its
    shared-memory segment are released (see :func:`release_failed_node`).
    """
    sys.stdout.flush()
    sys.stderr.flush()
    while _FAILED_AT_START:
        _FAILED_AT_START.pop().destroy_node()
    rclpy.try_shutdown()


def run_nodes(name: str, create: Callable[[], Node | Sequence[Node]],
              args: Sequence[str] | None = None) -> int:
    """Run the node(s) that ``create()`` builds in one executor until shutdown.

    Returns the process exit code: 1 with one printed line when the parameters file or
    arguments cannot be read, 0 after a stop signal or an external shutdown (also one that
    comes while the nodes are built; one before, while the process starts, ends it at
    :func:`start_rclpy`), ``CUT_SHORT_STATUS`` when a second signal cut the
    stop short. When a node cannot be built (a model that cannot be
    loaded, an invalid parameter) it logs one line, then destroys the half-started node
    and returns 1 (:func:`release_failed_node`). Before anything allocates frames, the
    allocator is told to keep freed frame buffers resident (see
    ``core.allocator_tuning``).
    """
    tuning = keep_frame_buffers_resident()
    status = start_rclpy(name, args)
    if status is not None:
        return status
    nodes: list[Node] = []
    try:
        with process_starting():
            created = create()
        nodes = [created] if isinstance(created, Node) else list(created)
        logger = get_logger(name)
        logger.info(
            f'allocator: {tuning.reason}' + (
                f' (mmap threshold {tuning.mmap_threshold_bytes >> 20} MiB, trim threshold '
                f'{tuning.trim_threshold_bytes >> 20} MiB)' if tuning.applied else ''))
        spin_to_shutdown(nodes, name)
    except ModelLoadError as error:
        get_logger(name).fatal(f'cannot load the model: {error}')
        return 1
    except ParameterException as error:
        get_logger(name).fatal(f'invalid parameter: {parameter_error_text(error)}')
        return 1
    except (KeyboardInterrupt, ExternalShutdownException):
        pass  # while the nodes were built; spin_to_shutdown handles those while spinning
    except Exception:
        # An external shutdown while the nodes were built shuts the context down under
        # them: creating the next subscription then fails ("context is not valid"). Still
        # a clean stop.
        if rclpy.ok():
            raise
    finally:
        status = _finish(nodes, name)
    return status


def _finish(nodes: list[Node], name: str) -> int:
    """Destroy the nodes (they publish what they hold), then release rclpy; return 0.

    A second signal (:class:`StopRequest`) cuts that short: one line says so, rclpy's
    shutdown destroys what is left of the nodes (their DDS participant and its shared
    memory go), and the status is ``CUT_SHORT_STATUS``.
    """
    status = 0
    try:
        for node in nodes:
            node.destroy_node()
    except KeyboardInterrupt:
        status = STOP.cut_short(name, "what the nodes still held (a classifier's detections "
                                'waiting for a GPS fix) was not published')
    try:
        # After the error line, if any: what failed to build goes too.
        release_started_nodes()
    except KeyboardInterrupt:
        status = STOP.cut_short(name, 'the ROS context was shut down in a hurry')
        release_started_nodes()
    return status


def spin_to_shutdown(nodes: Node | Sequence[Node], logger_name: str,
                     stop: StopRequest = STOP) -> None:
    """Spin ``nodes`` in one executor until a stop signal or a shutdown, then return.

    A stop signal (``stop``, see :class:`StopRequest`) ends the spin with the ROS context
    still up: nodes that take messages from other processes (:class:`TakesLastMessages`,
    the map recorder) then spin on until those publishers are gone (they have published
    their last ones and stopped) or for ``DRAIN_TIMEOUT_S``, so what a classifier
    publishes as it stops is recorded. The caller destroys the nodes afterwards, while
    they can still publish.

    A shutdown of the context (rclpy's own signal handler in processes that keep it, an
    external ``rclpy.shutdown``) ends the spin too. A callback may be running or about
    to run then: a marker timer that publishes fails with "publisher's context is
    invalid". Such an error, raised once the context is shut down, is part of the
    shutdown: it is logged at debug level and the process goes on to its clean exit
    (saving files, exit status 0) instead of ending in a traceback. An error raised while
    the context is still running is a fault and propagates.
    """
    nodes = [nodes] if isinstance(nodes, Node) else list(nodes)
    executor = SingleThreadedExecutor(context=nodes[0].context)
    for node in nodes:
        executor.add_node(node)
    try:
        while executor.context.ok() and not stop.requested:
            executor.spin_once(timeout_sec=STOP_POLL_S)
        takers = [node for node in nodes if isinstance(node, TakesLastMessages)]
        if takers and executor.context.ok():
            _take_last_messages(executor, takers, logger_name, stop.signal_name)
    except (KeyboardInterrupt, ExternalShutdownException):
        pass
    except Exception as error:
        if executor.context.ok():
            raise
        get_logger(logger_name).debug(
            f'a callback ended with the shutdown: {type(error).__name__}: {error}')


def _take_last_messages(executor: SingleThreadedExecutor, takers: list[TakesLastMessages],
                        logger_name: str, signal_name: str) -> None:
    """Spin until the takers' input publishers are gone and nothing is left to take.

    What has arrived is always taken first, also once ``DRAIN_TIMEOUT_S`` is over (a
    recorder reading a long run at its start may hold thousands in its queue): the spin
    goes on while the takers still take messages (one at least every ``DRAIN_POLL_S``;
    their timers do not count), ``DRAIN_TIMEOUT_S`` only ends the wait for publishers
    still there, and ``DRAIN_LIMIT_S`` the whole.
    """
    logger = get_logger(logger_name)
    start = last_taken_at = time.monotonic()
    taken = sum(node.messages_taken() for node in takers)
    said = False
    while executor.context.ok():
        executor.spin_once(timeout_sec=DRAIN_TAKE_S)
        now = time.monotonic()
        count = sum(node.messages_taken() for node in takers)
        if count != taken:
            taken, last_taken_at = count, now
        if now - start >= DRAIN_LIMIT_S:
            logger.warning(f'stopping after {DRAIN_LIMIT_S:g} s of taking the last '
                           'messages: those still queued are not taken')
            return
        if now - last_taken_at < DRAIN_POLL_S:
            continue  # messages are still coming
        waiting = sorted({topic for node in takers for topic in node.inputs_still_published()})
        if not waiting:
            return
        if not said:
            said = True
            logger.info(f'{signal_name or "stop"}: taking the last messages on '
                        f'{", ".join(waiting)} before stopping (waiting at most '
                        f'{DRAIN_TIMEOUT_S:g} s for their publishers to stop)')
        if now - start >= DRAIN_TIMEOUT_S:
            logger.warning(f'stopping while {", ".join(waiting)} still has publishers after '
                           f'{DRAIN_TIMEOUT_S:g} s: what they publish from now on is not taken')
            return


def spin_until_shutdown(node: Node) -> None:
    """Spin ``node`` until Ctrl-C or shutdown, then destroy it and shut rclpy down.

    For small helper processes (bench workers, test publishers) that own one node.
    """
    try:
        spin_to_shutdown(node, node.get_name())
    finally:
        node.destroy_node()
        rclpy.try_shutdown()
