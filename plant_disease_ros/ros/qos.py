"""QoS profiles of the package and subscriptions whose reliability follows the publishers.

Images come in keep-last depth 1 (always the newest frame, never a backlog), results go
out reliable with depth 10. The reliability of an image subscription is a parameter:
'reliable', 'best_effort' or 'auto'. 'auto' adapts to the publishers the way rosbag2 does
(all publishers reliable -> reliable, otherwise best effort) and keeps adapting: a
camera that starts later, restarts with other QoS or is joined by a best-effort
publisher gets a matching subscription.

Why it matters here: between processes, Fast DDS delivers large best-effort frames only
with a big enough shared-memory segment (``config/fastdds_profile.xml``), while a
reliable subscription to a reliable camera always gets them.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
import time
from typing import Any

from rclpy.event_handler import SubscriptionEventCallbacks
from rclpy.node import Node
from rclpy.qos import (
    DurabilityPolicy,
    HistoryPolicy,
    QoSProfile,
    ReliabilityPolicy,
)

from plant_disease_ros.ros.clock import steady_clock

RELIABILITY_CHOICES: tuple[str, ...] = ('auto', 'reliable', 'best_effort')

IMAGE_DEPTH = 1
RESULT_DEPTH = 10
FIX_DEPTH = 50

_POLICIES = {
    'reliable': ReliabilityPolicy.RELIABLE,
    'best_effort': ReliabilityPolicy.BEST_EFFORT,
}


def reliability_policy(name: str) -> ReliabilityPolicy | None:
    """Return the policy for 'reliable' / 'best_effort', ``None`` for 'auto'.

    Raises ValueError for anything else.
    """
    if name == 'auto':
        return None
    try:
        return _POLICIES[name]
    except KeyError:
        raise ValueError(f'reliability must be one of {", ".join(RELIABILITY_CHOICES)}, '
                         f'got {name!r}') from None


def reliability_name(policy: ReliabilityPolicy) -> str:
    """Return 'reliable' or 'best_effort' for a policy."""
    return 'reliable' if policy == ReliabilityPolicy.RELIABLE else 'best_effort'


def sensor_qos(reliability: ReliabilityPolicy = ReliabilityPolicy.BEST_EFFORT,
               depth: int = IMAGE_DEPTH) -> QoSProfile:
    """Return the sensor-data profile (keep last ``depth``, volatile) with ``reliability``."""
    return QoSProfile(history=HistoryPolicy.KEEP_LAST, depth=depth,
                      reliability=reliability, durability=DurabilityPolicy.VOLATILE)


def frames_publisher_qos() -> QoSProfile:
    """Return the QoS of image publishers (``frames``, annotated): reliable, keep last 1.

    Reliable so that any subscriber (reliable or best effort) matches and large frames
    are delivered between processes without a special transport; depth 1 because only
    the newest frame matters.
    """
    return sensor_qos(ReliabilityPolicy.RELIABLE, IMAGE_DEPTH)


def results_qos() -> QoSProfile:
    """Return the QoS of result publishers: reliable, keep last 10, volatile."""
    return QoSProfile(history=HistoryPolicy.KEEP_LAST, depth=RESULT_DEPTH,
                      reliability=ReliabilityPolicy.RELIABLE,
                      durability=DurabilityPolicy.VOLATILE)


def reliability_for_publishers(publishers: Iterable[Any]) -> ReliabilityPolicy | None:
    """Return the reliability matching ``publishers`` (TopicEndpointInfo), like rosbag2.

    Reliable when every publisher is reliable, best effort when any is best effort (a
    best-effort subscription matches both), ``None`` when there are no publishers.
    """
    policies = [info.qos_profile.reliability for info in publishers]
    if not policies:
        return None
    if all(policy == ReliabilityPolicy.RELIABLE for policy in policies):
        return ReliabilityPolicy.RELIABLE
    return ReliabilityPolicy.BEST_EFFORT


class AdaptiveSubscription:
    """A subscription whose reliability is fixed or follows the topic's publishers.

    With ``reliability='auto'`` the publishers are looked up every ``retry_period_s``
    until one appears, then the subscription is created with the matching reliability.
    If none appears within ``fallback_after_s`` it is created with ``fallback``
    (best effort by default: it matches reliable and best-effort publishers alike).
    Afterwards the publishers are re-checked every ``recheck_period_s`` (at once after
    an incompatible-QoS event) and the subscription is re-created when the match changes.
    """

    def __init__(self, node: Node, msg_type: Any, topic: str,
                 callback: Callable[[Any], None], *, reliability: str = 'auto',
                 depth: int = IMAGE_DEPTH,
                 fallback: ReliabilityPolicy = ReliabilityPolicy.BEST_EFFORT,
                 fallback_after_s: float = 2.0, retry_period_s: float = 0.1,
                 recheck_period_s: float = 2.0, callback_group: Any = None,
                 on_change: Callable[[str, ReliabilityPolicy, str], None] | None = None) -> None:
        """Create the subscription now (fixed reliability) or as soon as it can be matched.

        ``on_change(topic, policy, why)`` is called each time the subscription is (re)created.
        """
        self._node = node
        self._msg_type = msg_type
        self._topic = topic
        self._callback = callback
        self._depth = int(depth)
        self._fallback = fallback
        self._fallback_after_s = float(fallback_after_s)
        self._recheck_period_s = float(recheck_period_s)
        self._callback_group = callback_group
        self._on_change = on_change
        self._fixed = reliability_policy(reliability)
        self._started_s = time.monotonic()
        self._next_recheck_s = 0.0
        self._timer: Any = None
        self.subscription: Any = None
        self.reliability: ReliabilityPolicy | None = None
        self.topic = node.resolve_topic_name(topic)
        if self._fixed is not None:
            self._create(self._fixed, 'set by parameter')
            return
        self._on_timer()
        # A steady clock: with use_sim_time and no /clock yet, a ROS-time timer would never
        # fire and the subscription would never be created.
        self._timer = node.create_timer(float(retry_period_s), self._on_timer,
                                        callback_group=callback_group,
                                        clock=steady_clock())

    @property
    def adaptive(self) -> bool:
        """Return whether the reliability follows the publishers ('auto')."""
        return self._fixed is None

    def _on_timer(self) -> None:
        """Create the subscription when it can be matched, then follow the publishers."""
        now = time.monotonic()
        if self.subscription is not None and now < self._next_recheck_s:
            return
        publishers = self._node.get_publishers_info_by_topic(self.topic)
        policy = reliability_for_publishers(publishers)
        if self.subscription is None:
            if policy is not None:
                self._create(policy, f'matching {len(publishers)} publisher(s)')
            elif now - self._started_s >= self._fallback_after_s:
                self._create(self._fallback, 'fallback, no publisher yet')
        elif policy is not None and policy != self.reliability:
            self._create(policy, f'publishers changed, matching {len(publishers)}')
        self._next_recheck_s = now + self._recheck_period_s

    def _on_incompatible_qos(self, _info: Any) -> None:
        """Re-check the publishers on the next timer tick (one we cannot match appeared)."""
        self._next_recheck_s = 0.0

    def _create(self, policy: ReliabilityPolicy, why: str) -> None:
        """(Re)create the subscription with ``policy``."""
        if self.subscription is not None:
            self._node.destroy_subscription(self.subscription)
            self.subscription = None
        event_callbacks = None
        if self._fixed is None:
            event_callbacks = SubscriptionEventCallbacks(
                incompatible_qos=self._on_incompatible_qos)
        self.subscription = self._node.create_subscription(
            self._msg_type, self._topic, self._callback, sensor_qos(policy, self._depth),
            callback_group=self._callback_group, event_callbacks=event_callbacks)
        self.reliability = policy
        if self._on_change is not None:
            self._on_change(self.topic, policy, why)

    def destroy(self) -> None:
        """Destroy the timer and the subscription."""
        if self._timer is not None:
            self._node.destroy_timer(self._timer)
            self._timer = None
        if self.subscription is not None:
            self._node.destroy_subscription(self.subscription)
            self.subscription = None
