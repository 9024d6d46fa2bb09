"""Start-up helpers shared by the nodes' ``main()`` functions."""

from __future__ import annotations

from collections.abc import Sequence
import sys

import rclpy
from rclpy.clock import Clock, ClockType


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


def steady_clock() -> Clock:
    """Return a steady clock for the nodes' housekeeping timers.

    Diagnostics, QoS matching and the GPS wait must run in wall time: with use_sim_time
    and a paused or absent /clock, a ROS-time timer would never fire.
    """
    return Clock(clock_type=ClockType.STEADY_TIME)
