"""The stop signals of a node process: SIGINT, SIGTERM and SIGHUP (see :class:`StopRequest`).

This module imports nothing but the standard library's ``signal``, ``sys``, ``time`` and
``types`` (all but ``signal`` loaded with Python itself): a node's console script installs
:data:`STOP` before it imports numpy, rclpy or the LiteRT runtime
(``plant_disease_ros.nodes.executables``), so a stop signal that comes while those load
is a request like any other, not a KeyboardInterrupt traceback. ``ros.startup`` uses the
same object once rclpy is up.
"""

from __future__ import annotations

import signal
import sys
import time
from types import FrameType

# A second signal this soon after the first is the same request, delivered twice.
SAME_STOP_S = 2.0
# Exit status of a process whose stop a second signal cut short (128 + SIGINT).
CUT_SHORT_STATUS = 130
# Exit status of a process stopped by a signal before it started its nodes: the status of
# a node stopped by its first signal, which ``ros2 launch`` reports as finished cleanly.
STOPPED_WHILE_STARTING_STATUS = 0


class StopRequest:
    """SIGINT, SIGTERM and SIGHUP ask a node process to stop; a later second signal insists.

    rclpy's own handlers shut the ROS context down inside the signal, so nothing can be
    published after it: a classifier's detections still waiting for a GPS fix, and those
    on their way to the recorder, were lost at every Ctrl-C of a launch. Instead, the
    first signal only sets this request. The spin ends at its next turn (within
    ``ros.startup.STOP_POLL_S``); the nodes then publish what they still hold and a
    recorder takes what its publishers still send (``ros.startup.spin_to_shutdown``),
    before the context goes. A request that comes before rclpy is initialised (while the
    process imports its modules) stops the process there: :meth:`stopped_while_starting`.
    SIGHUP (the terminal closed, an SSH session dropped) stops as Ctrl-C does, unless the
    process was started to ignore it (``nohup``).

    A second signal within ``SAME_STOP_S`` of the first is the same request delivered
    twice (a terminal and ``ros2 launch``; systemd's SIGTERM to the whole service and
    launch's SIGINT). A later one raises KeyboardInterrupt where the process is, so a stop
    that takes too long can be cut short (:meth:`cut_short`); from then on signals are
    only noted.
    """

    def __init__(self) -> None:
        """Start with no request and no handlers installed."""
        self.signal_name = ''
        self._at = 0.0
        self._cut = False
        # Set once the process went on to build its nodes (ros.startup.start_rclpy): a
        # second signal after that cut a stop short, not a start.
        self.nodes_started = False

    @property
    def requested(self) -> bool:
        """Return whether a stop signal came."""
        return bool(self.signal_name)

    def install(self) -> None:
        """Handle the stop signals in this (main) thread from now on (again: no change)."""
        for signum in (signal.SIGINT, signal.SIGTERM, signal.SIGHUP):
            if signum == signal.SIGHUP and signal.getsignal(signum) is signal.SIG_IGN:
                continue
            signal.signal(signum, self._handle)

    def cut_short(self, name: str, what: str) -> int:
        """Say that a second signal cut the stop short (``what`` was not done); ignore more.

        Returns the process's exit status.
        """
        self._cut = True
        print(f'{name}: stop cut short by a second signal: {what}', file=sys.stderr)
        return CUT_SHORT_STATUS

    def stopped_while_starting(self, name: str) -> int:
        """Say that the request came before process ``name`` started its nodes.

        Nothing was recorded or published yet, so nothing is lost. Returns the process's
        exit status, that of a node stopped by its first signal.
        """
        print(f'{name}: stopped by {self.signal_name} while starting: nothing was recorded '
              'or published yet', file=sys.stderr)
        return STOPPED_WHILE_STARTING_STATUS

    def _handle(self, signum: int, frame: FrameType | None) -> None:
        now = time.monotonic()
        if not self.requested:
            self.signal_name, self._at = signal.Signals(signum).name, now
        elif now - self._at >= SAME_STOP_S and not self._cut:
            raise KeyboardInterrupt


# The node process's stop request: installed by its console script before anything heavy
# is imported (``nodes.executables``), else by ``ros.startup.init_rclpy``.
STOP = StopRequest()
