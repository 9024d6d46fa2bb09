"""A burst of 400 generated bad and good messages over DDS into live nodes, then good frames.

disease_classifier takes Image on ``frames`` and NavSatFix on ``fix``; camera_subscriber
(transport compressed) takes CompressedImage and passes good ones on to ``frames``. Each
message is published and the test waits until the node has taken it (depth-1 image
subscriptions would otherwise keep only the newest), so the counts are exact: every
rejected message must appear in /diagnostics under its reason, as many times as sent.
Afterwards good frames, raw and JPEG, must be labelled exactly as the core labels them.
"""

from __future__ import annotations

from collections import Counter

import cv2
import numpy as np
import pytest

rclpy = pytest.importorskip('rclpy')

from helpers.fuzz_messages import compressed_from_bytes, FuzzCase, generate_cases  # noqa: E402
from helpers.images import leaf_photos, make_image  # noqa: E402
from helpers.ros import (  # noqa: E402
    classifier_node,
    Collector,
    diagnostics_collector,
    Harness,
    latest_diagnostics,
    parameters,
)
from helpers.shipped_model import shipped_classifier  # noqa: E402
from rclpy.qos import QoSProfile  # noqa: E402
from sensor_msgs.msg import CompressedImage, Image, NavSatFix  # noqa: E402
from std_msgs.msg import String  # noqa: E402

from plant_disease_ros.core.fix_buffer import DEFAULT_MAX_FIX_ACCURACY_M  # noqa: E402
from plant_disease_ros.core.image_encoding import ImageConversionError  # noqa: E402
from plant_disease_ros.nodes.camera_subscriber import CameraSubscriberNode  # noqa: E402
from plant_disease_ros.ros import conversions  # noqa: E402

BURST = 400
SEED = 7
TAKE_TIMEOUT_S = 10.0


def reference_outcome(case: FuzzCase) -> str:
    """Return what the node must make of a case: 'ok' or the rejection reason."""
    if case.kind == 'fix':
        _, reason = conversions.navsatfix_to_geofix(case.msg, DEFAULT_MAX_FIX_ACCURACY_M)
        return reason or 'ok'
    convert = (conversions.image_to_rgb if case.kind == 'image'
               else conversions.compressed_image_to_rgb)
    try:
        convert(case.msg)
    except ImageConversionError as error:
        return error.reason
    return 'ok'


def test_burst_then_good_frames(ros_context) -> None:
    """No node dies, every bad message is counted by reason, good frames stay right."""
    classifier = classifier_node(ros_context, fix_wait_s=0.0)
    camera = CameraSubscriberNode(context=ros_context, parameter_overrides=parameters(
        image_transport='compressed', qos_reliability='reliable', diagnostics_period_s=0.2))
    harness = Harness(ros_context, [classifier, camera], name='burst_tester')
    wait = harness.wait

    try:
        tester = harness.node
        publishers = {
            'image': tester.create_publisher(Image, 'frames', QoSProfile(depth=10)),
            'compressed': tester.create_publisher(CompressedImage, 'image_raw/compressed',
                                                  QoSProfile(depth=10)),
            'fix': tester.create_publisher(NavSatFix, 'fix', QoSProfile(depth=10)),
        }
        diagnostics = diagnostics_collector(tester)
        results = Collector(tester, [('/classification', String)])
        for publisher in publishers.values():
            harness.wait_for_subscribers(publisher)
        taken = {
            'image': lambda: classifier.diagnostics.received,
            'compressed': lambda: camera.diagnostics.received,
            'fix': lambda: classifier.fixes_received,
        }
        expected: dict[str, Counter[str]] = {kind: Counter() for kind in taken}
        for case in generate_cases(SEED, BURST):
            outcome = reference_outcome(case)
            expected[case.kind][outcome] += 1
            before = taken[case.kind]()
            frames_before = classifier.diagnostics.received
            publishers[case.kind].publish(case.msg)
            assert wait(lambda kind=case.kind, n=before: taken[kind]() > n,
                        TAKE_TIMEOUT_S), f'not taken: {case.note}'
            if case.kind == 'compressed' and outcome == 'ok':
                # The camera passes a good frame on to the classifier.
                assert wait(lambda n=frames_before: classifier.diagnostics.received > n,
                            TAKE_TIMEOUT_S)

        frames_rejected = {reason: count for reason, count in expected['image'].items()
                           if reason != 'ok'}
        camera_rejected = {reason: count for reason, count in expected['compressed'].items()
                           if reason != 'ok'}
        fixes_rejected = {reason: count for reason, count in expected['fix'].items()
                          if reason != 'ok'}
        assert sum(frames_rejected.values()) > 50 and sum(camera_rejected.values()) > 50
        assert sum(fixes_rejected.values()) > 20

        # /diagnostics: a status published after the burst holds the exact counts.
        received_total = classifier.diagnostics.received

        def values_of(node_name: str) -> dict[str, str]:
            return latest_diagnostics(diagnostics, node_name) or {}

        def diagnostics_current() -> bool:
            return (values_of('disease_classifier').get('received') == str(received_total)
                    and values_of('camera_subscriber').get('received')
                    == str(camera.diagnostics.received))

        assert wait(diagnostics_current), (values_of('disease_classifier'),
                                           values_of('camera_subscriber'))
        values = values_of('disease_classifier')
        camera_values = values_of('camera_subscriber')
        for reason, count in frames_rejected.items():
            assert values.get(f'rejected.{reason}') == str(count), (reason, values)
        for reason, count in fixes_rejected.items():
            assert values.get(f'fix_rejected.{reason}') == str(count), (reason, values)
        for reason, count in camera_rejected.items():
            assert camera_values.get(f'rejected.{reason}') == str(count), \
                (reason, camera_values)
        assert values.get('rejected') == str(sum(frames_rejected.values()))
        good_frames = expected['image']['ok'] + expected['compressed']['ok']
        assert values.get('processed') == str(good_frames)

        # Good frames after the burst: labelled exactly as the core labels them.
        reference = shipped_classifier()
        photos = leaf_photos(6)
        assert photos
        for index, (name, rgb) in enumerate(photos):
            ok, jpeg = cv2.imencode('.jpg', cv2.cvtColor(rgb, cv2.COLOR_RGB2BGR))
            assert ok
            decoded = cv2.cvtColor(cv2.imdecode(jpeg, cv2.IMREAD_COLOR), cv2.COLOR_BGR2RGB)
            raw_id, jpeg_id = f'good-raw-{index}', f'good-jpeg-{index}'
            publishers['image'].publish(make_image(rgb, stamp_s=100.0 + index,
                                                   frame_id=raw_id))
            compressed = compressed_from_bytes(jpeg.tobytes(), 'bgr8; jpeg compressed bgr8')
            compressed.header.frame_id = jpeg_id
            compressed.header.stamp.sec = 200 + index
            assert wait(lambda i=raw_id: i in results.frame_ids('/classification'),
                        TAKE_TIMEOUT_S), f'no classification of {name} (raw)'
            publishers['compressed'].publish(compressed)
            assert wait(lambda i=jpeg_id: i in results.frame_ids('/classification'),
                        TAKE_TIMEOUT_S), f'no classification of {name} (jpeg)'
            classified = results.json('/classification')
            for frame_id, image in ((raw_id, rgb), (jpeg_id, decoded)):
                message = classified[results.frame_ids('/classification').index(frame_id)]
                expected_result = reference.classify(image)
                top = message['top_k'][0]
                assert top['index'] == expected_result.top.index, (name, frame_id, message)
                assert top['label'] == expected_result.top.label
                assert np.isclose(top['score'], expected_result.top.score, atol=1e-6)
    finally:
        harness.close()
