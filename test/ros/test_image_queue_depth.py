"""Every image subscription keeps the newest frame only (keep last, depth 1).

A deeper queue would let a node that falls behind work through a backlog of old frames,
each one later than the last, instead of shedding them (README, Reliability: Floods).
"""

from __future__ import annotations

from typing import Any

from helpers.ros import classifier_node, parameters
import pytest

rclpy = pytest.importorskip('rclpy')

from rclpy.qos import HistoryPolicy  # noqa: E402
from sensor_msgs.msg import CompressedImage, Image  # noqa: E402

from plant_disease_ros.nodes.camera_subscriber import CameraSubscriberNode  # noqa: E402

IMAGE_TYPES = (Image, CompressedImage)


def image_subscriptions(node: Any) -> list[Any]:
    """Return the node's subscriptions whose messages are images."""
    return [subscription for subscription in node.subscriptions
            if subscription.msg_type in IMAGE_TYPES]


def assert_newest_only(subscriptions: list[Any]) -> None:
    """Assert that each subscription keeps only the newest message."""
    assert subscriptions, 'no image subscription found'
    for subscription in subscriptions:
        profile = subscription.qos_profile
        assert profile.history == HistoryPolicy.KEEP_LAST, subscription.topic_name
        assert profile.depth == 1, (subscription.topic_name, profile.depth)


@pytest.mark.parametrize('transport', ['raw', 'compressed'])
@pytest.mark.parametrize('reliability', ['reliable', 'best_effort'])
def test_camera_subscriber_keeps_the_newest_frame_only(ros_context: object, transport: str,
                                                       reliability: str) -> None:
    """The camera input, raw or compressed, reliable or best effort, has depth 1."""
    node = CameraSubscriberNode(context=ros_context, parameter_overrides=parameters(
        image_transport=transport, qos_reliability=reliability))
    try:
        subscriptions = image_subscriptions(node)
        assert_newest_only(subscriptions)
        suffix = '/compressed' if transport == 'compressed' else ''
        assert [item.topic_name for item in subscriptions] == [f'/image_raw{suffix}']
    finally:
        node.destroy_node()


@pytest.mark.parametrize('reliability', ['reliable', 'best_effort'])
def test_classifier_keeps_the_newest_frame_only(ros_context: object,
                                                reliability: str) -> None:
    """The classifier's ``frames`` input (two-process layout) has depth 1."""
    node = classifier_node(ros_context, qos_reliability=reliability)
    try:
        subscriptions = image_subscriptions(node)
        assert_newest_only(subscriptions)
        assert [item.topic_name for item in subscriptions] == ['/frames']
    finally:
        node.destroy_node()
