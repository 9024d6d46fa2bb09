"""Start-up helpers shared by the nodes' ``main()`` functions."""

from __future__ import annotations

from collections.abc import Sequence
import sys

import rclpy


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
