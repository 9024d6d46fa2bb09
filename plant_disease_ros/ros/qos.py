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

A switch loses nothing: the new subscription is created next to the old one, which keeps
receiving until the publishers are seen sending to the new one; then the old one's queue
is drained and it is destroyed. Where the middleware gives each message's publisher GID
and sequence number, a message that both deliver is passed on once, and in the
publishers' order: a message of the new subscription that is ahead of what the old one
has delivered waits (at most until the handover ends) for the ones in between.
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Callable, Iterable
import time
from typing import Any

from rclpy.event_handler import SubscriptionEventCallbacks
from rclpy.exceptions import InvalidHandle
from rclpy.node import Node
from rclpy.qos import (
    DurabilityPolicy,
    HistoryPolicy,
    qos_check_compatible,
    QoSCompatibility,
    QoSProfile,
    ReliabilityPolicy,
)

from plant_disease_ros.ros.clock import steady_clock

RELIABILITY_CHOICES: tuple[str, ...] = ('auto', 'reliable', 'best_effort')

IMAGE_DEPTH = 1
RESULT_DEPTH = 10
FIX_DEPTH = 50

# Publishers whose newest sequence number is remembered (to pass each message on once).
DEDUPLICATION_PUBLISHERS = 1024
# Messages of the new subscription held back during a handover, at most.
MAX_PARKED = 1000
# A replaced subscription is kept this long at most after its successor has matched every
# publisher, when no message shows that they send to the successor (a quiet topic).
HANDOVER_GRACE_S = 2.0
# Beyond this the replaced subscription goes in any case (publishers that left, say).
HANDOVER_MAX_S = 10.0

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


# Detections a late-joining recorder gets from the classifier: ~40 s at 5 a second.
DETECTIONS_HISTORY = 200


def detections_qos() -> QoSProfile:
    """Return the QoS of ``detections`` at both ends: reliable, transient local, last 200.

    A recorder (re)started while the classifier runs, or a classifier restarted under a
    running recorder, would otherwise lose what was published before the two matched:
    the recorder gets the last detections when it matches and skips those its file holds.
    A volatile subscriber (a tool, ``ros2 topic echo``) still matches.
    """
    return QoSProfile(history=HistoryPolicy.KEEP_LAST, depth=DETECTIONS_HISTORY,
                      reliability=ReliabilityPolicy.RELIABLE,
                      durability=DurabilityPolicy.TRANSIENT_LOCAL)


# Detections the recorder's subscriptions queue while it is busy (a save or the start of a
# long run reads the whole run: 11 s for a day's 360,000 records here, a minute on a Pi):
# 10 minutes at 8 a second, about 3 MB at most.
RECORDER_QUEUE_DEPTH = 5000


def take_waiting(subscription: Any, limit: int = RECORDER_QUEUE_DEPTH) -> list[tuple[Any, Any]]:
    """Take the messages waiting in ``subscription``'s queue now, without spinning.

    Return (message, MessageInfo) pairs in the order the queue holds them, at most
    ``limit``; none once the subscription is destroyed. For a node busy with a long task in
    a callback or before it spins (the recorder reading a long run at its start): what it
    takes meanwhile no longer waits in a keep-last queue that drops the oldest when full.
    rclpy's own ``wait_for_message`` and executor take messages the same way.
    """
    taken: list[tuple[Any, Any]] = []
    try:
        with subscription.handle:
            while len(taken) < limit:
                pair = subscription.handle.take_message(subscription.msg_type,
                                                        subscription.raw)
                if pair is None:
                    break
                taken.append((pair[0], pair[1]))
    except InvalidHandle:
        pass
    return taken


def recorder_detections_qos(transient_local: bool) -> QoSProfile:
    """Return the recorder's side of ``detections``: :func:`detections_qos` (or, with
    ``transient_local=False``, a volatile twin that matches every publisher) with a queue
    of :data:`RECORDER_QUEUE_DEPTH`.

    A reader's queue is its own: the publisher's 200 bound what a recorder that joins late
    gets, this what a recorder whose callbacks are held up keeps (a reliable reader has
    each detection in its queue as soon as it is sent, whether or not it is taken yet).
    """
    return QoSProfile(history=HistoryPolicy.KEEP_LAST, depth=RECORDER_QUEUE_DEPTH,
                      reliability=ReliabilityPolicy.RELIABLE,
                      durability=(DurabilityPolicy.TRANSIENT_LOCAL if transient_local
                                  else DurabilityPolicy.VOLATILE))


def latched_qos() -> QoSProfile:
    """Return the QoS of a latched state topic: reliable, keep last 1, transient local.

    A subscriber that joins later (Foxglove, RViz) still gets the last message.
    """
    return QoSProfile(history=HistoryPolicy.KEEP_LAST, depth=1,
                      reliability=ReliabilityPolicy.RELIABLE,
                      durability=DurabilityPolicy.TRANSIENT_LOCAL)


SEQUENCE_NUMBER_UNSUPPORTED = 2 ** 64 - 1
"""rmw's RMW_MESSAGE_INFO_SEQUENCE_NUMBER_UNSUPPORTED: what an RMW without publication
sequence numbers (Cyclone DDS) puts in every message's info."""


def publisher_gid(info: Any) -> bytes | None:
    """Return the GID of a message's publisher from rclpy's MessageInfo, if the RMW gives it."""
    if not isinstance(info, dict):
        return None
    gid = info.get('publisher_gid')
    data = gid.get('data') if isinstance(gid, dict) else None
    return bytes(data) if data else None


def message_key(info: Any) -> tuple[bytes, int] | None:
    """Return (publisher GID, publication sequence number) of a message, if the RMW gives them.

    ``info`` is rclpy's MessageInfo (a dict); ``None`` when either is missing, or when the
    sequence number is rmw's "unsupported" value: taken as a number it would make every
    later message of that publisher look like a duplicate of the first.
    """
    if not isinstance(info, dict):
        return None
    gid = info.get('publisher_gid')
    sequence = info.get('publication_sequence_number')
    if not gid or sequence is None:
        return None
    sequence = int(sequence)
    if sequence < 0 or sequence >= SEQUENCE_NUMBER_UNSUPPORTED:
        return None
    return bytes(gid.get('data', b'')), sequence


def compact_message_info(info: Any, gids: dict[bytes, dict]) -> Any:
    """Return what a node that queues messages reads of rclpy's MessageInfo ``info``.

    The source timestamp, the publisher's GID (one dict per publisher, kept in ``gids``)
    and the publication sequence number: about a third of the whole, for messages kept in
    memory by the thousand. Anything else than a dict is returned as it is.
    """
    if not isinstance(info, dict):
        return info
    compact = {'source_timestamp': info.get('source_timestamp'),
               'publication_sequence_number': info.get('publication_sequence_number')}
    gid = publisher_gid(info)
    if gid is not None:
        shared = gids.get(gid)
        if shared is None:
            if len(gids) >= COMPACT_GIDS:
                gids.clear()
            shared = gids[gid] = {'data': gid}
        compact['publisher_gid'] = shared
    elif 'publisher_gid' in info:   # no usable GID: kept as it is, for the same key
        compact['publisher_gid'] = info['publisher_gid']
    return compact


# Publisher GIDs compact_message_info shares (restarts make new ones).
COMPACT_GIDS = 256


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


def publisher_mismatch(publisher: QoSProfile, subscription: QoSProfile) -> str:
    """Return why a publisher with QoS ``publisher`` cannot deliver to ``subscription``, or ''.

    A best-effort publisher cannot reach a reliable subscription ('best effort'), nor a
    volatile one a transient-local subscription ('volatile'); any other mismatch (a
    deadline, liveliness) is worded as rmw words it. ``publisher`` is typically the
    ``qos_profile`` of a TopicEndpointInfo from ``get_publishers_info_by_topic``.
    """
    reasons = []
    if (publisher.reliability == ReliabilityPolicy.BEST_EFFORT
            and subscription.reliability == ReliabilityPolicy.RELIABLE):
        reasons.append('best effort')
    if (publisher.durability == DurabilityPolicy.VOLATILE
            and subscription.durability == DurabilityPolicy.TRANSIENT_LOCAL):
        reasons.append('volatile')
    if reasons:
        return ' and '.join(reasons)
    compatibility, reason = qos_check_compatible(publisher, subscription)
    if compatibility != QoSCompatibility.ERROR:
        return ''
    return reason.removeprefix('ERROR:').strip().rstrip(';') or 'incompatible QoS'


class AdaptiveSubscription:
    """A subscription whose reliability is fixed or follows the topic's publishers.

    With ``reliability='auto'`` the publishers are looked up every ``retry_period_s``
    until one appears, then the subscription is created with the matching reliability.
    If none appears within ``fallback_after_s`` it is created with ``fallback``
    (best effort by default: it matches reliable and best-effort publishers alike).
    Afterwards the publishers are re-checked every ``recheck_period_s`` (at once after
    an incompatible-QoS event) and the subscription is re-created when the match changes,
    handing over without losing a message (see the module's docstring).

    ``callback(msg)`` gets each message once; with ``with_info=True`` it is called as
    ``callback(msg, info)`` with rclpy's MessageInfo. ``on_message_lost(count)`` is told
    of messages the middleware knows were lost on the way (Fast DDS: best-effort samples
    that never arrived whole); a newer message replacing an older one in the depth-1
    queue is not such a loss.
    """

    def __init__(self, node: Node, msg_type: Any, topic: str,
                 callback: Callable[[Any], None], *, reliability: str = 'auto',
                 depth: int = IMAGE_DEPTH,
                 fallback: ReliabilityPolicy = ReliabilityPolicy.BEST_EFFORT,
                 fallback_after_s: float = 2.0, retry_period_s: float = 0.1,
                 recheck_period_s: float = 2.0, callback_group: Any = None,
                 on_change: Callable[[str, ReliabilityPolicy, str], None] | None = None,
                 with_info: bool = False,
                 on_message_lost: Callable[[int], None] | None = None) -> None:
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
        self._with_info = with_info
        self._on_message_lost = on_message_lost
        self._fixed = reliability_policy(reliability)
        self._started_s = time.monotonic()
        self._next_recheck_s = 0.0
        self._timer: Any = None
        self.subscription: Any = None
        self.reliability: ReliabilityPolicy | None = None
        self.topic = node.resolve_topic_name(topic)
        # The subscription being replaced, kept until its successor receives.
        self._retiring: Any = None
        self._expected_publishers = 0
        self._matched_s: float | None = None
        self._handover_started_s = 0.0
        self._generation = 0
        self._successor_received = False
        # Per publisher GID: the newest sequence number passed on.
        self._newest: OrderedDict[bytes, int] = OrderedDict()
        # Per publisher GID: messages of the new subscription waiting for older ones.
        self._parked: dict[bytes, dict[int, tuple[Any, Any]]] = {}
        self.duplicates = 0
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

    @property
    def handing_over(self) -> bool:
        """Return whether a replaced subscription is still kept next to its successor."""
        return self._retiring is not None

    def incompatible_publishers(self) -> list[tuple[Any, str]]:
        """Return the topic's publishers that cannot deliver to the subscription, with why.

        Each as (TopicEndpointInfo, reason) per :func:`publisher_mismatch`, e.g. a
        best-effort camera and a subscription fixed to reliable. Empty while there is no
        subscription yet. Asks the graph, so it is meant for a status, not every message.
        """
        if self.reliability is None:
            return []
        wanted = sensor_qos(self.reliability, self._depth)
        found = []
        for info in self._node.get_publishers_info_by_topic(self.topic):
            why = publisher_mismatch(info.qos_profile, wanted)
            if why:
                found.append((info, why))
        return found

    def _deliver(self, msg: Any, info: Any, generation: int) -> None:
        """Pass a message on once and in order; note when the successor has received."""
        if generation == self._generation and not self._successor_received:
            self._successor_received = True
            # What the old subscription still queues came first: pass it on first.
            self._drain_retiring()
        key = message_key(info)
        if key is None:
            self._pass_on(msg, info)
            return
        gid, sequence = key
        newest = self._newest.get(gid)
        if newest is not None and sequence <= newest:
            self.duplicates += 1
            return
        if (self._retiring is not None and generation == self._generation
                and newest is not None and sequence > newest + 1
                and sum(len(parked) for parked in self._parked.values()) < MAX_PARKED):
            # The old subscription may still bring the ones in between.
            self._parked.setdefault(gid, {})[sequence] = (msg, info)
            return
        self._accept(gid, sequence, msg, info)
        self._release_parked(gid, everything=False)

    def _accept(self, gid: bytes, sequence: int, msg: Any, info: Any) -> None:
        """Pass a message on as the newest of its publisher."""
        self._newest[gid] = sequence
        self._newest.move_to_end(gid)
        if len(self._newest) > DEDUPLICATION_PUBLISHERS:
            self._newest.popitem(last=False)
        self._pass_on(msg, info)

    def _release_parked(self, gid: bytes, everything: bool) -> None:
        """Pass on the parked messages of ``gid`` that are next in line (or all, in order)."""
        parked = self._parked.get(gid)
        while parked:
            newest = self._newest.get(gid, -1)
            for stale in [sequence for sequence in parked if sequence <= newest]:
                del parked[stale]
                self.duplicates += 1
            following = newest + 1 if (newest + 1) in parked else None
            if following is None and everything and parked:
                following = min(parked)
            if following is None:
                break
            self._accept(gid, following, *parked.pop(following))
        if not parked:
            self._parked.pop(gid, None)

    def _pass_on(self, msg: Any, info: Any) -> None:
        """Call the user's callback."""
        if self._with_info:
            self._callback(msg, info)
        else:
            self._callback(msg)

    def _finish_handover(self, now: float) -> None:
        """Destroy the replaced subscription once its successor has taken over.

        Taken over: the successor matched every publisher there was at the switch, and
        received a message (the publishers send to it) or has been matched for
        ``HANDOVER_GRACE_S``. What the old one still queues is passed on first.
        """
        if self._retiring is None:
            return
        overdue = now - self._handover_started_s >= HANDOVER_MAX_S
        if not overdue:
            if self.subscription.get_publisher_count() < self._expected_publishers:
                self._matched_s = None
                return
            if self._matched_s is None:
                self._matched_s = now
            if not self._successor_received and now - self._matched_s < HANDOVER_GRACE_S:
                return
        self._drain_retiring()
        retiring, self._retiring = self._retiring, None
        self._node.destroy_subscription(retiring)
        for gid in list(self._parked):
            self._release_parked(gid, everything=True)

    def _drain_retiring(self) -> None:
        """Pass on every message the replaced subscription has queued."""
        retiring = self._retiring
        if retiring is None:
            return
        generation = self._generation - 1
        with retiring.handle:
            while True:
                taken = retiring.handle.take_message(retiring.msg_type, retiring.raw)
                if taken is None:
                    break
                self._deliver(taken[0], taken[1], generation)

    def _on_timer(self) -> None:
        """Create the subscription when it can be matched, then follow the publishers."""
        now = time.monotonic()
        self._finish_handover(now)
        if self.subscription is not None and now < self._next_recheck_s:
            return
        publishers = self._node.get_publishers_info_by_topic(self.topic)
        policy = reliability_for_publishers(publishers)
        if self.subscription is None:
            if policy is not None:
                self._create(policy, f'matching {len(publishers)} publisher(s)')
            elif now - self._started_s >= self._fallback_after_s:
                self._create(self._fallback, 'fallback, no publisher yet')
        elif policy is not None and policy != self.reliability and self._retiring is None:
            self._create(policy, f'publishers changed, matching {len(publishers)}',
                         len(publishers))
        self._next_recheck_s = now + self._recheck_period_s

    def _report_lost(self, info: Any) -> None:
        """Pass the number of messages newly lost on the way to ``on_message_lost``."""
        if self._on_message_lost is not None and info.total_count_change > 0:
            self._on_message_lost(int(info.total_count_change))

    def _on_incompatible_qos(self, _info: Any) -> None:
        """Re-check the publishers on the next timer tick (one we cannot match appeared)."""
        self._next_recheck_s = 0.0

    def _create(self, policy: ReliabilityPolicy, why: str, publishers: int = 0) -> None:
        """Create the subscription with ``policy``; an existing one is kept until handed over.

        ``publishers``: how many publishers the new subscription must match first.
        """
        if self.subscription is not None:
            self._retiring = self.subscription
            self._expected_publishers = publishers
            self._matched_s = None
            self._handover_started_s = time.monotonic()
            self._successor_received = False
        self._generation += 1
        generation = self._generation

        def deliver(msg: Any, info: Any) -> None:
            self._deliver(msg, info, generation)

        events: dict[str, Callable[[Any], None]] = {}
        if self._fixed is None:
            events['incompatible_qos'] = self._on_incompatible_qos
        if self._on_message_lost is not None:
            events['message_lost'] = self._report_lost
        event_callbacks = SubscriptionEventCallbacks(**events) if events else None
        self.subscription = self._node.create_subscription(
            self._msg_type, self._topic, deliver, sensor_qos(policy, self._depth),
            callback_group=self._callback_group, event_callbacks=event_callbacks)
        self.reliability = policy
        if self._on_change is not None:
            self._on_change(self.topic, policy, why)

    def destroy(self) -> None:
        """Destroy the timer and the subscription."""
        if self._timer is not None:
            self._node.destroy_timer(self._timer)
            self._timer = None
        if self._retiring is not None:
            self._node.destroy_subscription(self._retiring)
            self._retiring = None
        if self.subscription is not None:
            self._node.destroy_subscription(self.subscription)
            self.subscription = None
