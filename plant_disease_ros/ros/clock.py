"""The steady clock of the nodes' housekeeping timers."""

from __future__ import annotations

from rclpy.clock import Clock, ClockType


def steady_clock() -> Clock:
    """Return a steady clock for housekeeping timers (diagnostics, QoS matching, GPS wait).

    Why: with use_sim_time and a paused or absent /clock, a ROS-time timer never fires.
    """
    return Clock(clock_type=ClockType.STEADY_TIME)
