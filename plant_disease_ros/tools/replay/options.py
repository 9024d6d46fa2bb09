"""What a replay is asked to do (``ReplayOptions``), its default limits, and its one error."""

from __future__ import annotations

from dataclasses import dataclass, field
import math
from pathlib import Path
from typing import Any

from plant_disease_ros.ros.node_set import DEFAULT_NAMESPACE

# Period of the /clock messages and of every polling loop of the replay.
CLOCK_PERIOD_S = 0.02
STARTUP_TIMEOUT_S = 90.0
FRAME_TIMEOUT_S = 10.0
# Above the classifier's max_fix_age_s, so fast-mode detections do not depend on timing.
FIX_LEAD_S = 2.5
# Above this the /clock of a timed replay would leave its range within seconds; --fast
# is the way to go faster.
MAX_RATE = 1e6


class ReplayError(RuntimeError):
    """A replay that cannot start or go on; its message is one line for the user."""


class ReplayOutputError(ReplayError):
    """A replay that ran but could not write all its outputs (a full disk).

    ``summary`` (a ``ReplaySummary``) holds what was replayed, for the command to print
    before the error line; the message names each file that failed and what was kept.
    """

    def __init__(self, message: str, summary: Any) -> None:
        super().__init__(message)
        self.summary = summary


def one_line(error: BaseException) -> str:
    """Return ``error``'s message on one line (its type name when it has none)."""
    text = ' '.join(str(error).split())
    return text or type(error).__name__


@dataclass
class ReplayOptions:
    """How to replay: speed, topics, output folder, pipeline or attach, clock."""

    bag: Path
    rate: float = 1.0
    fast: bool = False
    image_topic: str | None = None
    fix_topic: str | None = None
    out_dir: Path | None = None
    attach: bool = False
    single_process: bool = False
    namespace: str = DEFAULT_NAMESPACE
    clock: bool = True
    params_file: Path | None = None
    parameters: dict[str, str] = field(default_factory=dict)
    fix_lead_s: float = FIX_LEAD_S
    frame_timeout_s: float = FRAME_TIMEOUT_S
    startup_timeout_s: float = STARTUP_TIMEOUT_S
    show_progress: bool = True

    @property
    def mode(self) -> str:
        """Return the mode as the summary names it: 'fast' or 'rate X', maybe ', attached'."""
        return (('fast' if self.fast else f'rate {self.rate:g}')
                + (', attached' if self.attach else ''))

    def check(self) -> None:
        """Raise ReplayError naming the first option out of range (by its command-line name).

        The rate and the timeouts must be finite and > 0 (a rate at most MAX_RATE), the
        fix lead finite and >= 0. ``-p`` and ``--params-file`` set the parameters of the
        nodes the replay starts: with ``--attach`` they would change nothing, and are
        refused.
        """
        if self.attach and (self.parameters or self.params_file is not None):
            given = ' and '.join(option for option, used in (
                ('-p', bool(self.parameters)), ('--params-file', self.params_file is not None))
                if used)
            raise ReplayError(
                f'{given} set the parameters of the nodes a replay starts; with --attach the '
                'running pipeline keeps its own (change them with ros2 param set, or replay '
                'without --attach)')
        _check_number('--rate', self.rate, minimum=0.0, maximum=MAX_RATE)
        _check_number('--startup-timeout', self.startup_timeout_s, minimum=0.0)
        _check_number('--frame-timeout', self.frame_timeout_s, minimum=0.0)
        _check_number('--fix-lead', self.fix_lead_s, minimum=0.0, inclusive=True)


def _check_number(option: str, value: float, minimum: float, maximum: float | None = None,
                  inclusive: bool = False) -> None:
    """Raise ReplayError unless ``value`` is finite, above ``minimum`` and at most ``maximum``."""
    bound = f'>= {minimum:g}' if inclusive else f'> {minimum:g}'
    if maximum is not None:
        bound += f' and <= {maximum:g}'
    try:
        number = float(value)
    except (TypeError, ValueError):
        number = math.nan
    above = number >= minimum if inclusive else number > minimum
    if not (math.isfinite(number) and above and (maximum is None or number <= maximum)):
        raise ReplayError(f'{option} must be a finite number {bound}, got {value}')
