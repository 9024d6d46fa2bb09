"""Wrong wiring reads as a warning: a camera topic nothing publishes, detections without GPS.

A remapping typo, a silent driver or GPS and camera stamps on different clocks leave the
nodes running; their /diagnostics must say so (WARN, naming the topic), not "ok".
"""

from __future__ import annotations

import re

import pytest

rclpy = pytest.importorskip('rclpy')

from diagnostic_msgs.msg import DiagnosticStatus  # noqa: E402
from helpers.gps import make_fix  # noqa: E402
from helpers.images import leaf_photos, make_image  # noqa: E402
from helpers.ros import (  # noqa: E402
    classifier_node,
    Collector,
    diagnostics_collector,
    Harness,
    parameters,
    statuses,
)
from rclpy.parameter import Parameter  # noqa: E402
from rclpy.qos import QoSProfile  # noqa: E402
from rclpy.time import Time  # noqa: E402
from sensor_msgs.msg import Image, NavSatFix  # noqa: E402
from std_msgs.msg import String  # noqa: E402

from plant_disease_ros.nodes.camera_subscriber import CameraSubscriberNode  # noqa: E402

T0 = 1_700_000_000.0


def newest(collector: Collector, node_name: str) -> DiagnosticStatus | None:
    """Return the newest /diagnostics status of ``node_name``, or None."""
    found = statuses(collector, node_name)
    return found[-1] if found else None


def test_a_camera_topic_nothing_publishes_is_a_warning_until_images_come(ros_context) -> None:
    """No image for input_timeout_s: WARN naming the topic and its 0 publishers.

    Each phase waits for a status that lasts once it holds, so a stalled host only makes
    the waits longer: the OK after an image would last input_timeout_s alone (0.5 s),
    and a status had to fall in it, so input_timeout_s is raised while the image is
    checked, and lowered again to see the silence counted from it.
    """
    camera = CameraSubscriberNode(context=ros_context, parameter_overrides=parameters(
        diagnostics_period_s=0.2, input_timeout_s=0.5, qos_reliability='reliable'))
    harness = Harness(ros_context, [camera], name='silent_camera_tester')
    try:
        collector = diagnostics_collector(harness.node)

        def level_is(level: int, text: str = '', received: str | None = None) -> bool:
            status = newest(collector, 'camera_subscriber')
            return (status is not None and status.level == level and text in status.message
                    and (received is None
                         or {item.key: item.value for item in status.values}['received']
                         == received))

        def set_input_timeout_s(seconds: float) -> None:
            assert camera.set_parameters([Parameter('input_timeout_s', value=seconds)])[0] \
                .successful

        assert harness.wait(lambda: level_is(DiagnosticStatus.WARN, 'no images on /image_raw '
                                             '(0 publishers)'))
        assert 'since the start' in newest(collector, 'camera_subscriber').message
        images = harness.node.create_publisher(Image, 'image_raw', QoSProfile(depth=10))
        harness.wait_for_subscribers(images)
        # The image is counted and nothing is amiss: ok, for an hour after it.
        set_input_timeout_s(3600.0)
        images.publish(make_image(leaf_photos(1)[0][1], frame_id='cam', stamp_s=T0))
        assert harness.wait(lambda: level_is(DiagnosticStatus.OK, 'ok', received='1'))
        # The silence counts from the last image: it warns again, now with a publisher.
        set_input_timeout_s(0.5)
        assert harness.wait(lambda: level_is(DiagnosticStatus.WARN, 'no images on /image_raw '
                                             '(1 publishers)', received='1'))
        assert 'since the last one' in newest(collector, 'camera_subscriber').message
        # input_timeout_s 0 at run time: never a warning for silence.
        set_input_timeout_s(0.0)
        assert harness.wait(lambda: level_is(DiagnosticStatus.OK))
    finally:
        harness.close()


def test_detections_without_a_position_are_a_warning_until_fixes_locate_them(
        ros_context) -> None:
    """No fix publisher: each detection's status is 'none' and the classifier warns."""
    classifier = classifier_node(ros_context, score_threshold=0.0, fix_wait_s=0.0,
                                 max_fix_age_s=2.0, input_timeout_s=0.0)
    harness = Harness(ros_context, [classifier], name='no_gps_tester')
    try:
        tester = harness.node
        collector = diagnostics_collector(tester)
        detections = Collector(tester, [('/detections', String)])
        frames = tester.create_publisher(Image, 'frames', QoSProfile(depth=10))
        harness.wait_for_subscribers(frames)
        # Before any fix the count is published as 0 (not missing).
        assert harness.wait(lambda: newest(collector, 'disease_classifier') is not None)
        values = {item.key: item.value
                  for item in newest(collector, 'disease_classifier').values}
        assert values['fixes_received'] == '0'
        assert newest(collector, 'disease_classifier').level == DiagnosticStatus.OK
        rgb = leaf_photos(1)[0][1]
        for index in range(3):
            # One at a time: the classifier keeps only the newest frame while it is busy.
            frames.publish(make_image(rgb, frame_id=f'f{index}', stamp_s=T0 + index * 0.1))
            assert harness.wait(lambda n=index + 1: detections.count('/detections') == n)
        assert all(feature['geometry'] is None for feature in detections.json('/detections'))

        def warned() -> bool:
            status = newest(collector, 'disease_classifier')
            return (status is not None and status.level == DiagnosticStatus.WARN
                    and 'have no position' in status.message)

        assert harness.wait(warned)
        message = newest(collector, 'disease_classifier').message
        assert 'no usable fix yet on /fix (0 publishers, 0 fixes received)' in message
        # Each status counts its own period's detections: over the periods, all three.
        counts = [re.search(r'(\d+) of (\d+) detections', status.message)
                  for status in statuses(collector, 'disease_classifier')]
        assert sum(int(found[1]) for found in counts if found) == 3, message
        assert all(found[1] == found[2] for found in counts if found)

        # A camera without a receiver says so: such detections are then no warning. Every
        # status stamped after the change is checked, also the one of the bench frame's
        # period (a later, empty period would be OK anyway).
        changed_ns = classifier.get_clock().now().nanoseconds
        assert classifier.set_parameters([Parameter('gps_required', value=False)])[0] \
            .successful
        frames.publish(make_image(rgb, frame_id='bench', stamp_s=T0 + 0.5))
        assert harness.wait(lambda: detections.count('/detections') == 4)
        assert detections.json('/detections')[3]['geometry'] is None

        def after_change() -> list[DiagnosticStatus]:
            return [status for array in collector.messages['/diagnostics']
                    if Time.from_msg(array.header.stamp).nanoseconds > changed_ns
                    for status in array.status if status.name.startswith('disease_classifier')]

        assert harness.wait(lambda: len(after_change()) >= 3)
        assert [status.message for status in after_change()
                if status.level != DiagnosticStatus.OK] == []
        assert classifier.set_parameters([Parameter('gps_required', value=True)])[0] \
            .successful

        # A receiver comes: located detections, and the next periods are ok again.
        fixes = tester.create_publisher(NavSatFix, 'fix', QoSProfile(depth=10))
        harness.wait_for_subscribers(fixes)
        fixes.publish(make_fix(47.0, 8.0, 400.0, stamp_s=T0 + 1.0))
        assert harness.wait(lambda: classifier.fixes_received == 1)
        frames.publish(make_image(rgb, frame_id='located', stamp_s=T0 + 1.0))
        assert harness.wait(lambda: detections.count('/detections') == 5)
        assert detections.json('/detections')[4]['geometry'] is not None
        assert harness.wait(lambda: newest(collector, 'disease_classifier').level
                            == DiagnosticStatus.OK)
    finally:
        harness.close()


def test_a_camera_on_the_other_transport_is_named_in_the_silence_warning(
        ros_context) -> None:
    """The camera switched to JPEG while the node reads raw images: the warning says that
    image_raw/compressed has a publisher and which setting takes it."""
    from sensor_msgs.msg import CompressedImage

    camera = CameraSubscriberNode(context=ros_context, parameter_overrides=parameters(
        diagnostics_period_s=0.2, input_timeout_s=0.5, qos_reliability='reliable'))
    harness = Harness(ros_context, [camera], name='other_transport_tester')
    try:
        collector = diagnostics_collector(harness.node)
        jpeg = harness.node.create_publisher(CompressedImage, 'image_raw/compressed',
                                             QoSProfile(depth=10))
        hint = ('but 1 publisher(s) on /image_raw/compressed: set image_transport to '
                'compressed (compressed:=true in the launch)')

        def warned() -> bool:
            status = newest(collector, 'camera_subscriber')
            return status is not None and hint in status.message

        assert harness.wait(warned), newest(collector, 'camera_subscriber')
        status = newest(collector, 'camera_subscriber')
        assert status.level == DiagnosticStatus.WARN
        assert 'no images on /image_raw (0 publishers)' in status.message
        # A camera that advertises both topics (image_transport) but sends nothing: it is
        # there and silent, no advice to switch.
        raw = harness.node.create_publisher(Image, 'image_raw', QoSProfile(depth=10))
        assert harness.wait(lambda: not warned() and 'no images on /image_raw (1 publishers)'
                            in newest(collector, 'camera_subscriber').message)
        harness.node.destroy_publisher(raw)
        assert harness.wait(warned)
        harness.node.destroy_publisher(jpeg)
        assert harness.wait(lambda: not warned()
                            and newest(collector, 'camera_subscriber') is not None
                            and 'no images on /image_raw' in
                            newest(collector, 'camera_subscriber').message)
    finally:
        harness.close()
