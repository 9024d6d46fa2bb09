"""A camera whose QoS cannot reach the image subscription is named in the silence warning.

With ``qos_reliability: reliable`` a best-effort camera is counted among the topic's
publishers, yet DDS never sends it to the node: "no images (1 publishers)" alone reads as
a camera that is there but silent. The status must say that the publisher cannot reach
this subscription, why, and what to set.
"""

from __future__ import annotations

import pytest

rclpy = pytest.importorskip('rclpy')

from diagnostic_msgs.msg import DiagnosticStatus  # noqa: E402
from helpers.images import leaf_photos, make_image  # noqa: E402
from helpers.ros import (  # noqa: E402
    Collector,
    diagnostics_collector,
    Harness,
    parameters,
    statuses,
)
from rclpy.duration import Duration  # noqa: E402
from rclpy.qos import (  # noqa: E402
    DurabilityPolicy,
    QoSProfile,
    ReliabilityPolicy,
)
from sensor_msgs.msg import Image  # noqa: E402

from plant_disease_ros.nodes.camera_subscriber import CameraSubscriberNode  # noqa: E402
from plant_disease_ros.ros.qos import publisher_mismatch, sensor_qos  # noqa: E402

BEST_EFFORT_CAMERA = QoSProfile(depth=1, reliability=ReliabilityPolicy.BEST_EFFORT)
RELIABLE_CAMERA = QoSProfile(depth=1, reliability=ReliabilityPolicy.RELIABLE)
MISMATCH = ('1 of them, best effort, cannot reach this reliable subscription '
            '(qos_reliability: reliable); set qos_reliability to auto or best_effort')


def test_publisher_mismatch_names_the_policy_that_blocks_delivery() -> None:
    reliable = sensor_qos(ReliabilityPolicy.RELIABLE)
    best_effort = sensor_qos(ReliabilityPolicy.BEST_EFFORT)
    assert publisher_mismatch(BEST_EFFORT_CAMERA, reliable) == 'best effort'
    # A best-effort subscription takes both; a reliable publisher reaches both.
    assert publisher_mismatch(BEST_EFFORT_CAMERA, best_effort) == ''
    assert publisher_mismatch(RELIABLE_CAMERA, reliable) == ''
    latched = QoSProfile(depth=1, reliability=ReliabilityPolicy.RELIABLE,
                         durability=DurabilityPolicy.TRANSIENT_LOCAL)
    assert publisher_mismatch(RELIABLE_CAMERA, latched) == 'volatile'
    assert publisher_mismatch(BEST_EFFORT_CAMERA, latched) == 'best effort and volatile'
    # Any other mismatch is worded by rmw.
    slow = QoSProfile(depth=1, deadline=Duration(seconds=2))
    fast = QoSProfile(depth=1, deadline=Duration(seconds=1))
    assert 'deadline' in publisher_mismatch(slow, fast).lower()


def newest_camera_status(collector: Collector) -> DiagnosticStatus | None:
    """Return the newest /diagnostics status of camera_subscriber, or None."""
    found = statuses(collector, 'camera_subscriber')
    return found[-1] if found else None


def test_a_best_effort_camera_and_a_reliable_subscription_are_named_in_the_warning(
        ros_context) -> None:
    """Real best-effort and reliable publishers, a camera_subscriber fixed to reliable.

    Each phase waits for a status that lasts once it holds (the publishers stay until
    the next phase), so a slow host only makes the waits longer.
    """
    camera = CameraSubscriberNode(context=ros_context, parameter_overrides=parameters(
        diagnostics_period_s=0.2, input_timeout_s=0.5, qos_reliability='reliable'))
    harness = Harness(ros_context, [camera], name='camera_qos_tester')
    try:
        collector = diagnostics_collector(harness.node)

        def warns(*parts: str) -> bool:
            status = newest_camera_status(collector)
            return (status is not None and status.level == DiagnosticStatus.WARN
                    and all(part in status.message for part in parts))

        best_effort = harness.node.create_publisher(Image, 'image_raw', BEST_EFFORT_CAMERA)
        assert harness.wait(lambda: warns('no images on /image_raw (1 publishers) for ',
                                          MISMATCH)), newest_camera_status(collector)
        message = newest_camera_status(collector).message
        assert '(since the start): ' + MISMATCH in message, message
        # DDS indeed delivers nothing from it.
        best_effort.publish(make_image(leaf_photos(1)[0][1], frame_id='lost'))
        harness.wait(lambda: camera.diagnostics.received > 0, 1.0)
        assert camera.diagnostics.received == 0

        # A reliable camera joins: two publishers, still one that cannot reach the node.
        reliable = harness.node.create_publisher(Image, 'image_raw', RELIABLE_CAMERA)
        assert harness.wait(lambda: warns('(2 publishers)', MISMATCH)), \
            newest_camera_status(collector)

        # The best-effort one goes: the silence is plain silence again.
        harness.node.destroy_publisher(best_effort)
        assert harness.wait(lambda: warns('(1 publishers)')
                            and 'cannot reach' not in newest_camera_status(collector).message
                            ), newest_camera_status(collector)
        assert newest_camera_status(collector).message.endswith('(since the start)')
        # The reliable one is heard.
        harness.wait_for_subscribers(reliable)
        reliable.publish(make_image(leaf_photos(1)[0][1], frame_id='heard'))
        assert harness.wait(lambda: camera.diagnostics.received == 1)
    finally:
        harness.close()


def test_auto_reliability_never_reports_a_best_effort_camera_as_unreachable(
        ros_context) -> None:
    """qos_reliability auto matches a best-effort camera: its silence is plain silence."""
    camera = CameraSubscriberNode(context=ros_context, parameter_overrides=parameters(
        diagnostics_period_s=0.2, input_timeout_s=0.5, qos_reliability='auto'))
    harness = Harness(ros_context, [camera], name='camera_qos_auto_tester')
    try:
        collector = diagnostics_collector(harness.node)
        harness.node.create_publisher(Image, 'image_raw', BEST_EFFORT_CAMERA)

        def warned_with_the_camera() -> bool:
            status = newest_camera_status(collector)
            return (status is not None and status.level == DiagnosticStatus.WARN
                    and '(1 publishers)' in status.message
                    and camera.image_subscription.subscription is not None)

        assert harness.wait(warned_with_the_camera), newest_camera_status(collector)
        assert camera.image_subscription.reliability == ReliabilityPolicy.BEST_EFFORT
        assert 'cannot reach' not in newest_camera_status(collector).message
    finally:
        harness.close()
