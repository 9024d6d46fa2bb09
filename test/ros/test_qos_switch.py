"""qos_reliability 'auto': no message lost or doubled across a best effort -> reliable switch.

The subscription starts before any publisher (best effort, "fallback, no publisher
yet"); a reliable GPS driver then appears and publishes a fix every executor turn, before,
during and after the switch to a reliable subscription. Every fix published after the
first subscription matched the driver must arrive exactly once and in order. The second
test does the same through disease_classifier's own ``fix`` subscription and counts what
the node took.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
import time

from helpers.gps import make_fix
from helpers.ros import classifier_node, Harness
import pytest

rclpy = pytest.importorskip('rclpy')

from rclpy.qos import QoSProfile, ReliabilityPolicy  # noqa: E402
from sensor_msgs.msg import NavSatFix  # noqa: E402

from plant_disease_ros.ros.qos import AdaptiveSubscription, FIX_DEPTH  # noqa: E402

SWITCH_LIMIT_S = 60.0
AFTER_SWITCH = 50
IN_FLIGHT = 10
RELIABLE_DRIVER = QoSProfile(depth=100, reliability=ReliabilityPolicy.RELIABLE)


@pytest.fixture
def harness(ros_context) -> Iterator[Harness]:
    harness = Harness(ros_context, name='qos_switch_test')
    yield harness
    harness.close()


def fix_number(msg: NavSatFix) -> int:
    """Return the number a test fix carries in its stamp."""
    return int(msg.header.stamp.sec) - 1_700_000_000


def publish_through_switch(harness: Harness, adaptive: AdaptiveSubscription,
                           received: Callable[[], list[int]]) -> tuple[list[int], int]:
    """Publish fixes before, during and after the switch; return (numbers sent, sent in it).

    Publishing starts once the fallback subscription and the driver have matched, and
    goes on until the old subscription is gone and ``AFTER_SWITCH`` more fixes went out;
    at most ``IN_FLIGHT`` are unread at any time, well below the queue depth.
    """
    assert harness.wait(lambda: adaptive.subscription is not None)
    assert adaptive.reliability == ReliabilityPolicy.BEST_EFFORT
    first = adaptive.subscription
    driver = harness.node.create_publisher(NavSatFix, 'fix', RELIABLE_DRIVER)
    assert harness.wait(lambda: driver.get_subscription_count() >= 1
                        and first.get_publisher_count() >= 1)
    sent: list[int] = []
    during = 0
    after = 0
    # A bound for a subscription that never switches, far beyond its timers (0.2 s, 0.5 s).
    deadline = time.monotonic() + SWITCH_LIMIT_S
    while after < AFTER_SWITCH:
        assert time.monotonic() < deadline, 'the subscription never switched to reliable'
        number = len(sent)
        driver.publish(make_fix(47.0, 8.0, 400.0, stamp_s=1_700_000_000 + number))
        sent.append(number)
        switched = (adaptive.reliability == ReliabilityPolicy.RELIABLE
                    and not adaptive.handing_over)
        during += int(adaptive.handing_over)
        after += int(switched)
        # At most IN_FLIGHT unread: the subscription's keep-last queue never overflows,
        # so a missing fix can only have been lost by the switch.
        assert harness.wait(lambda: len(received()) >= len(sent) - IN_FLIGHT, 10.0), (
            len(received()), len(sent), during)
    assert harness.wait(lambda: len(received()) >= len(sent), 10.0), (
        len(received()), len(sent), during)
    return sent, during


def test_auto_switch_loses_and_doubles_nothing(harness: Harness) -> None:
    received: list[int] = []
    adaptive = AdaptiveSubscription(
        harness.node, NavSatFix, 'fix', lambda msg: received.append(fix_number(msg)),
        depth=FIX_DEPTH, fallback_after_s=0.2, retry_period_s=0.05, recheck_period_s=0.5)
    try:
        sent, during = publish_through_switch(harness, adaptive, lambda: received)
        assert during > 0, 'no fix was published while the subscriptions handed over'
        # Exactly once each, and in the order published.
        assert received == sent, (len(received), len(sent))
        print(f'qos switch: {len(sent)} fixes published ({during} during the handover), '
              f'{len(received)} received, {adaptive.duplicates} duplicates dropped')
    finally:
        adaptive.destroy()


def test_classifier_takes_every_fix_across_the_switch(harness: Harness) -> None:
    classifier = harness.add(classifier_node(harness.context))
    adaptive = classifier.fix_subscription
    sent, during = publish_through_switch(
        harness, adaptive, lambda: list(range(classifier.fixes_received)))
    assert harness.wait(lambda: classifier.fixes_received == len(sent))
    assert len(classifier.fix_wait.fixes) == min(len(sent), classifier.fix_wait.fixes.capacity)
    # In order: the handover never looks like time going back.
    assert classifier.time_jumps.jumps == 0
    print(f'classifier fix subscription: {len(sent)} published ({during} during the '
          f'handover), {classifier.fixes_received} taken')
