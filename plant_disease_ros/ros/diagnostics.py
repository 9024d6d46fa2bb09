"""Frame counters and latency of a node, published as diagnostic_msgs/DiagnosticArray.

Each node owns one :class:`NodeDiagnostics`: callbacks count what happens to every
message (received, processed, dropped, rejected by reason), add latencies, and a timer
publishes one DiagnosticStatus on ``/diagnostics`` every period. The level is ERROR while
a lasting fault is set, WARN while a lasting warning is set, when something was rejected
during the last period or when a watched input has been silent too long, OK otherwise.
:class:`ThrottledWarnings` keeps per-message warnings to one line per reason per period.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable
import math
import time
from typing import Any

from diagnostic_msgs.msg import DiagnosticArray, DiagnosticStatus, KeyValue
from rclpy.node import Node
from rclpy.qos import QoSProfile, ReliabilityPolicy

from plant_disease_ros.core.latency import LatencyWindow
from plant_disease_ros.ros.clock import steady_clock

DIAGNOSTICS_TOPIC = '/diagnostics'
# Default of the nodes' input_timeout_s: silence on the watched input this long is a warning.
INPUT_TIMEOUT_S = 5.0


def _format_value(value: Any) -> str:
    """Return a diagnostics value as text (floats with 3 decimals, NaN as 'nan')."""
    if isinstance(value, bool):
        return 'true' if value else 'false'
    if isinstance(value, float):
        return 'nan' if math.isnan(value) else f'{value:.3f}'
    return str(value)


def status_name(node: Node, what: str) -> str:
    """Return the status name of ``node``'s ``what``: ``<namespace>/<node>: <what>``.

    The fully qualified node name without its leading slash, as diagnostic_updater names
    a status with ``use_fqn``: ``camera_subscriber: frames`` in the root namespace,
    ``left/camera_subscriber: frames`` in ``/left``, so that the node sets of two cameras
    (one namespace each) are two statuses in rqt_robot_monitor and diagnostic_aggregator,
    not one.
    """
    return f'{node.get_fully_qualified_name().lstrip("/")}: {what}'


class NodeDiagnostics:
    """Count a node's messages and publish them on ``/diagnostics`` every ``period_s``.

    Rejections are kept per category ('frame' for images, 'fix' for GPS fixes, ...) and
    per reason; they appear as ``rejected.<reason>`` (frames) and
    ``<category>_rejected.<reason>`` (others).
    """

    def __init__(self, node: Node, *, period_s: float = 1.0, name: str = '',
                 hardware_id: str = '', latency_window: int = 500,
                 input_name: str = 'frame') -> None:
        """Create the publisher and the timer on ``node``.

        ``name``: the status name (default :func:`status_name` of ``'frames'``).
        ``input_name``: what the node's own input messages are called in the status
        message ('frame', or 'detection' for the recorder); their key stays
        ``rejected.<reason>``.
        """
        self._node = node
        self.input_name = input_name
        self.name = name or status_name(node, 'frames')
        self.hardware_id = hardware_id or node.get_fully_qualified_name()
        self.received = 0
        self.processed = 0
        self.dropped = 0
        self.rejected: Counter[tuple[str, str]] = Counter()
        self.latency = LatencyWindow(latency_window)
        self.values: dict[str, Any] = {}
        # A lasting fault (e.g. an unwritable output file); while set, the level is ERROR.
        self.error = ''
        # A lasting condition worth a look (e.g. smeared frames); while set, at least WARN.
        self.warning = ''
        # Called before each status is built, to bring values and warning up to date.
        self.on_publish: Callable[[], None] | None = None
        self._rejected_at_last_publish: Counter[tuple[str, str]] = Counter()
        # The input whose silence is a warning (see watch_input); none by default.
        self._input_timeout_s = 0.0
        self._describe_input: Callable[[], str] | None = None
        self._explain_silence: Callable[[], str] | None = None
        self._last_input_s = time.monotonic()
        self._input_ever = False
        self._publisher = node.create_publisher(
            DiagnosticArray, DIAGNOSTICS_TOPIC,
            QoSProfile(depth=10, reliability=ReliabilityPolicy.RELIABLE))
        self._timer: Any = node.create_timer(float(period_s), self.publish,
                                             clock=steady_clock())

    def watch_input(self, describe: Callable[[], str], timeout_s: float,
                    explain: Callable[[], str] | None = None) -> None:
        """Warn while no message has been received for ``timeout_s`` (0: never warn).

        ``describe()`` names what is missing, e.g. ``frames on /ns/image_raw (0
        publishers)``: a remapping typo or a silent driver reads as a warning, not as "ok".
        ``explain()``, called only while the warning is due, may add why after a colon
        (e.g. publishers whose QoS cannot reach the subscription); '' adds nothing.
        The silence is counted from the last message, or from the node's start before the
        first one (a new timeout does not restart it).
        """
        self._describe_input = describe
        self._explain_silence = explain
        self._input_timeout_s = float(timeout_s)

    def count_received(self) -> None:
        """Count a message that arrived."""
        self.received += 1
        self._last_input_s = time.monotonic()
        self._input_ever = True

    def input_silence(self) -> str:
        """Return the warning about the watched input's silence, or '' when it is not due."""
        if self._describe_input is None or self._input_timeout_s <= 0.0:
            return ''
        silent_s = time.monotonic() - self._last_input_s
        if silent_s < self._input_timeout_s:
            return ''
        since = 'since the last one' if self._input_ever else 'since the start'
        text = f'no {self._describe_input()} for {silent_s:.0f} s ({since})'
        why = self._explain_silence() if self._explain_silence is not None else ''
        return f'{text}: {why}' if why else text

    def count_processed(self, latency_ms: float | None = None) -> None:
        """Count a message handled to the end, with its latency if given."""
        self.processed += 1
        if latency_ms is not None:
            self.latency.add(latency_ms)

    def count_dropped(self) -> None:
        """Count a message skipped on purpose (rate cap)."""
        self.dropped += 1

    def uncount_dropped(self) -> None:
        """Take back one skipped message (it was used after all)."""
        self.dropped = max(self.dropped - 1, 0)

    def count_rejected(self, reason: str, category: str = 'frame') -> None:
        """Count a message refused for ``reason`` (a short key such as 'truncated')."""
        self.rejected[(category, reason)] += 1

    def uncount_rejected(self, reason: str, category: str, count: int) -> None:
        """Take back up to ``count`` rejections of ``reason`` (they were used after all).

        The total and what the last status showed both go down, so that a rejection
        counted after this one still shows as new.
        """
        key = (category, reason)
        for counter in (self.rejected, self._rejected_at_last_publish):
            counter[key] -= min(count, counter[key])
            if not counter[key]:
                del counter[key]

    def rejected_total(self, category: str | None = None) -> int:
        """Return the number of rejections (of ``category``, or all)."""
        return sum(count for (kind, _), count in self.rejected.items()
                   if category is None or kind == category)

    def set_value(self, key: str, value: Any) -> None:
        """Publish ``key: value`` with every status from now on (model name, ...)."""
        self.values[key] = value

    def clear_value(self, key: str) -> None:
        """Stop publishing ``key`` (nothing happens if it is not published)."""
        self.values.pop(key, None)

    def status(self) -> DiagnosticStatus:
        """Return the status now: counters, rejections by reason, latency, extra values."""
        recent = self.rejected - self._rejected_at_last_publish
        status = DiagnosticStatus()
        status.name = self.name
        status.hardware_id = self.hardware_id
        messages = [text for text in (self.warning, self.input_silence()) if text]
        if recent:
            reasons = ', '.join(
                f'{self.input_name if category == "frame" else category} {reason}: {count}'
                for (category, reason), count in sorted(recent.items()))
            messages.append(f'rejected in the last period: {reasons}')
        status.level = DiagnosticStatus.WARN if messages else DiagnosticStatus.OK
        status.message = '; '.join(messages) or 'ok'
        if self.error:
            status.level = DiagnosticStatus.ERROR
            status.message = self.error
        items: list[tuple[str, Any]] = [
            ('received', self.received),
            ('processed', self.processed),
            ('dropped', self.dropped),
            ('rejected', self.rejected_total('frame')),
        ]
        for (category, reason), count in sorted(self.rejected.items()):
            prefix = 'rejected' if category == 'frame' else f'{category}_rejected'
            items.append((f'{prefix}.{reason}', count))
        items += [
            ('latency_mean_ms', self.latency.mean()),
            ('latency_p95_ms', self.latency.percentile(95.0)),
            ('latency_samples', self.latency.count),
        ]
        items += list(self.values.items())
        status.values = [KeyValue(key=key, value=_format_value(value)) for key, value in items]
        return status

    def publish(self) -> None:
        """Publish the status on ``/diagnostics`` and start a new period."""
        if self.on_publish is not None:
            self.on_publish()
        array_msg = DiagnosticArray()
        array_msg.header.stamp = self._node.get_clock().now().to_msg()
        array_msg.status = [self.status()]
        self._publisher.publish(array_msg)
        self._rejected_at_last_publish = Counter(self.rejected)

    def destroy(self) -> None:
        """Destroy the timer and the publisher (once)."""
        if self._timer is not None:
            self._node.destroy_timer(self._timer)
            self._node.destroy_publisher(self._publisher)
            self._timer = None


class ThrottledWarnings:
    """Log a warning at most once per ``period_s`` for each key (e.g. a rejection reason).

    rclpy's own ``throttle_duration_sec`` throttles per call site, which would let one
    reason hide another; this keeps one budget per key and says how many were suppressed.
    """

    def __init__(self, logger: Any, period_s: float = 5.0,
                 clock: Callable[[], float] | None = None) -> None:
        """Throttle warnings sent to ``logger`` (an rclpy logger).

        ``clock()`` returns seconds; ``time.monotonic`` when not given.
        """
        self._logger = logger
        self._period_s = float(period_s)
        self._clock = clock
        self._last_s: dict[str, float] = {}
        self._suppressed: Counter[str] = Counter()

    def warning(self, key: str, message: str) -> bool:
        """Log ``message`` unless ``key`` was logged within the period; return if logged."""
        now = self._clock() if self._clock is not None else time.monotonic()
        last = self._last_s.get(key)
        if last is not None and now - last < self._period_s:
            self._suppressed[key] += 1
            return False
        suppressed = self._suppressed.pop(key, 0)
        if suppressed:
            message = f'{message} ({suppressed} more like it since the last warning)'
        self._last_s[key] = now
        self._logger.warning(message)
        return True
