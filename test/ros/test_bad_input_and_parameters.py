"""Bad frames are rejected, counted by reason in /diagnostics, and the nodes go on;
runtime parameters are validated; annotated and explanation images carry the header.
"""

from __future__ import annotations

import json

from helpers.images import data_array, leaf_rgb, make_compressed, make_image
from helpers.ros import Collector, diagnostics_collector, Harness, latest_diagnostics, statuses
from helpers.shipped_model import require_shipped_model
import numpy as np
import pytest

rclpy = pytest.importorskip('rclpy')

from diagnostic_msgs.msg import DiagnosticStatus  # noqa: E402
from rclpy.parameter import Parameter  # noqa: E402
from sensor_msgs.msg import CompressedImage, Image  # noqa: E402
from std_msgs.msg import String  # noqa: E402

from plant_disease_ros.nodes.camera_subscriber import CameraSubscriberNode  # noqa: E402
from plant_disease_ros.nodes.disease_classifier import DiseaseClassifierNode  # noqa: E402

GOOD = leaf_rgb(64, 48)
DIAGNOSTICS_PERIOD_S = 0.2


def image_with(**fields) -> Image:
    """Return a good 64x48 rgb8 image with some fields replaced."""
    msg = make_image(GOOD, 'rgb8', stamp_s=2.0, frame_id='bad')
    for name, value in fields.items():
        setattr(msg, name, value)
    return msg


BAD_RAW = {
    'unknown_encoding': lambda: image_with(encoding='bayer_rggb42'),
    'truncated': lambda: image_with(data=data_array(GOOD.tobytes()[:-100])),
    'bad_step': lambda: image_with(step=64 * 3 - 1),
    'empty': lambda: image_with(data=data_array(b''), width=0, height=0, step=0),
}


def corrupt_jpeg() -> CompressedImage:
    """Return a complete JPEG whose header segments are garbage."""
    msg = make_compressed(GOOD, 'jpeg', stamp_s=2.0, frame_id='bad')
    data = bytearray(msg.data.tobytes())
    data[2:40] = bytes(range(100, 138))
    msg.data = data_array(bytes(data))
    return msg


def truncated_jpeg() -> CompressedImage:
    """Return a JPEG cut in half."""
    msg = make_compressed(GOOD, 'jpeg', stamp_s=2.0, frame_id='bad')
    msg.data = data_array(msg.data.tobytes()[:len(msg.data) // 2])
    return msg


def build_chain(harness: Harness, transport: str) -> tuple[CameraSubscriberNode,
                                                           DiseaseClassifierNode, Collector]:
    """Add camera (``transport``) and classifier nodes with fast diagnostics."""
    context = harness.context
    camera = harness.add(CameraSubscriberNode(context=context, parameter_overrides=[
        Parameter('image_transport', value=transport),
        Parameter('diagnostics_period_s', value=DIAGNOSTICS_PERIOD_S)]))
    classifier = harness.add(DiseaseClassifierNode(context=context, parameter_overrides=[
        Parameter('diagnostics_period_s', value=DIAGNOSTICS_PERIOD_S)]))
    collector = diagnostics_collector(harness.node, ('/label', String),
                                      ('/classification', String))
    return camera, classifier, collector


def test_bad_frames_are_rejected_counted_and_the_next_frame_is_labelled(harness) -> None:
    """Each kind of bad image is refused with its reason; a good frame after it works."""
    require_shipped_model()
    camera, classifier, collector = build_chain(harness, 'raw')
    node = harness.node
    raw_publisher = node.create_publisher(Image, '/image_raw', 10)
    frames_publisher = node.create_publisher(Image, '/frames', 10)
    harness.wait_for_subscribers(raw_publisher)
    assert harness.wait(lambda: frames_publisher.get_subscription_count() >= 1)
    for reason, make_bad in BAD_RAW.items():
        labels_before = collector.count('/label')
        rejected_before = camera.diagnostics.rejected_total()
        raw_publisher.publish(make_bad())
        assert harness.wait(
            lambda before=rejected_before: camera.diagnostics.rejected_total() > before,
            5.0), reason
        assert camera.diagnostics.rejected[('frame', reason)] == 1, reason
        assert harness.publish_and_wait(raw_publisher, image_with(), collector, '/label')
        assert collector.count('/label') == labels_before + 1
    # The classifier checks the frames it is given too.
    frames_publisher.publish(image_with(encoding='rgb9'))
    assert harness.wait(
        lambda: classifier.diagnostics.rejected[('frame', 'unknown_encoding')] == 1)
    assert harness.publish_and_wait(frames_publisher, image_with(), collector, '/label')

    camera_id = camera.get_name()

    def counted() -> bool:
        # One status that has seen every frame (one published before the last good frame
        # was processed already has every rejection, but not its counts).
        values = latest_diagnostics(collector, camera_id)
        return values is not None and all(
            values.get(f'rejected.{reason}') == '1' for reason in BAD_RAW) and \
            values.get('received') == str(2 * len(BAD_RAW))

    assert harness.wait(counted), latest_diagnostics(collector, camera_id)
    values = latest_diagnostics(collector, camera_id)
    assert values['rejected'] == str(len(BAD_RAW))
    assert int(values['received']) == 2 * len(BAD_RAW)
    assert int(values['processed']) == len(BAD_RAW)
    classifier_id = classifier.get_name()

    def classifier_counted() -> bool:
        values = latest_diagnostics(collector, classifier_id)
        return values is not None and values['processed'] == str(len(BAD_RAW) + 1)

    assert harness.wait(classifier_counted), latest_diagnostics(collector, classifier_id)
    classifier_values = latest_diagnostics(collector, classifier_id)
    assert classifier_values['rejected.unknown_encoding'] == '1'
    assert classifier_values['model'] == 'plant_disease_int8.tflite'
    assert float(classifier_values['latency_mean_ms']) > 0.0
    assert 'latency_p95_ms' in classifier_values
    # WARN while rejections are recent, OK after a quiet period.
    levels = [status.level for status in statuses(collector, camera_id)]
    assert DiagnosticStatus.WARN in levels

    def quiet() -> bool:
        found = statuses(collector, camera_id)
        return bool(found) and found[-1].level == DiagnosticStatus.OK

    assert harness.wait(quiet)


@pytest.mark.parametrize('make_bad,reason', [
    (corrupt_jpeg, 'decode_failed'),
    (truncated_jpeg, 'decode_failed'),
    (lambda: CompressedImage(format='jpeg'), 'empty'),
    (lambda: CompressedImage(format='theora', data=data_array(b'\x00' * 64)),
     'unsupported_format'),
])
def test_bad_compressed_frames(harness, make_bad, reason: str) -> None:
    """Corrupt, truncated, empty and unsupported compressed images are refused."""
    require_shipped_model()
    camera, _, collector = build_chain(harness, 'compressed')
    publisher = harness.node.create_publisher(CompressedImage, '/image_raw/compressed', 10)
    harness.wait_for_subscribers(publisher)
    publisher.publish(make_bad())
    assert harness.wait(lambda: camera.diagnostics.rejected[('frame', reason)] == 1), \
        dict(camera.diagnostics.rejected)
    good = make_compressed(GOOD, 'png', stamp_s=3.0, frame_id='good')
    assert harness.publish_and_wait(publisher, good, collector, '/classification')
    assert json.loads(collector.messages['/classification'][-1].data)['frame_id'] == 'good'


def test_a_refused_frame_leaves_its_rate_slot_to_the_next(harness) -> None:
    """Under max_rate_hz a bad frame gives its slot back: the good frame after it passes."""
    camera = harness.add(CameraSubscriberNode(context=harness.context, parameter_overrides=[
        Parameter('max_rate_hz', value=0.01)]))   # one frame in 100 s
    frames = Collector(harness.node, [('/frames', Image)])
    publisher = harness.node.create_publisher(Image, '/image_raw', 10)
    harness.wait_for_subscribers(publisher)
    good = image_with(header=make_image(GOOD, 'rgb8', stamp_s=3.0, frame_id='good').header)
    # One at a time: the camera keeps only its newest frame.
    for count, msg in enumerate((BAD_RAW['truncated'](), good, image_with()), start=1):
        publisher.publish(msg)
        assert harness.wait(lambda count=count: camera.diagnostics.received == count)
    assert harness.wait(lambda: len(frames.messages['/frames']) == 1)
    assert frames.messages['/frames'][0].header.frame_id == 'good'
    diagnostics = camera.diagnostics
    assert (diagnostics.processed, diagnostics.dropped) == (1, 1)
    assert dict(diagnostics.rejected) == {('frame', 'truncated'): 1}


def set_one(node, name: str, value) -> tuple[bool, str]:
    """Set one parameter the way the parameter service does; return (ok, reason)."""
    result = node.set_parameters([Parameter(name, value=value)])[0]
    return result.successful, result.reason


def test_runtime_parameters_are_validated(harness) -> None:
    """top_k / score_threshold change at runtime; bad values and read-only ones refused."""
    require_shipped_model()
    camera, classifier, collector = build_chain(harness, 'raw')
    publisher = harness.node.create_publisher(Image, '/image_raw', 10)
    harness.wait_for_subscribers(publisher)
    num_labels = classifier.classifier.num_classes

    assert set_one(classifier, 'top_k', 5) == (True, '')
    assert set_one(classifier, 'score_threshold', 1.0) == (True, '')
    assert harness.publish_and_wait(publisher, image_with(), collector, '/classification')
    result = json.loads(collector.messages['/classification'][-1].data)
    assert len(result['top_k']) == 5
    assert result['label'] == 'unknown' or result['confidence'] >= 1.0
    assert collector.messages['/label'][-1].data == result['label']

    for name, value in [('top_k', 0), ('top_k', num_labels + 1),
                        ('score_threshold', 1.5), ('score_threshold', -0.1)]:
        ok, reason = set_one(classifier, name, value)
        assert not ok and reason, (name, value)
    assert classifier.top_k == 5 and classifier.score_threshold == 1.0
    ok, reason = set_one(classifier, 'top_k', 'three')
    assert not ok and 'type' in reason.lower()

    for name, value in [('model_path', '/tmp/other.tflite'), ('num_threads', 4),
                        ('qos_reliability', 'reliable'), ('max_fix_age_s', 1.0)]:
        ok, reason = set_one(classifier, name, value)
        assert not ok and 'read-only' in reason, (name, reason)
    for name, value in [('image_transport', 'compressed'), ('transport', 'raw'),
                        ('qos_reliability', 'reliable')]:
        ok, reason = set_one(camera, name, value)
        assert not ok and 'read-only' in reason, (name, reason)

    assert set_one(camera, 'max_rate_hz', 2.5) == (True, '')
    assert camera.rate_limiter.max_rate_hz == 2.5
    # A whole number, as `ros2 param set ... max_rate_hz 5` sends it, is a number of Hz ...
    assert set_one(camera, 'max_rate_hz', 5) == (True, '')
    assert camera.get_parameter('max_rate_hz').value == 5.0
    assert camera.rate_limiter.max_rate_hz == 5.0
    assert set_one(classifier, 'score_threshold', 1) == (True, '')
    assert classifier.get_parameter('score_threshold').type_ == Parameter.Type.DOUBLE
    # ... still held to the range, and an integer parameter stays one.
    ok, reason = set_one(camera, 'max_rate_hz', 5000)
    assert not ok and 'range' in reason.lower(), reason
    assert set_one(classifier, 'top_k', 5) == (True, '')
    assert classifier.get_parameter('top_k').type_ == Parameter.Type.INTEGER
    assert not set_one(camera, 'max_rate_hz', -1.0)[0]
    assert not set_one(camera, 'crop_mode', 'zoom')[0]
    assert not set_one(camera, 'roi', [0, 0, 10])[0]
    assert not set_one(camera, 'center_crop_fraction', 0.0)[0]
    assert set_one(camera, 'max_rate_hz', 0.0) == (True, '')
    frames = Collector(harness.node, [('/frames', Image)])
    # crop_mode roi before its roi (ros2 param load sets them one at a time, in file
    # order): accepted, and the whole frame goes on until the roi comes.
    assert set_one(camera, 'crop_mode', 'roi') == (True, '')
    assert harness.publish_and_wait(publisher, image_with(), frames, '/frames')
    whole = frames.messages['/frames'][-1]
    assert (whole.width, whole.height) == (64, 48)
    assert set_one(camera, 'roi', [8, 8, 32, 24]) == (True, '')
    assert harness.publish_and_wait(publisher, image_with(), frames, '/frames')
    cropped = frames.messages['/frames'][-1]
    assert (cropped.width, cropped.height) == (32, 24)
    assert set_one(camera, 'center_crop_fraction', 0.5) == (True, '')
    assert set_one(camera, 'crop_mode', 'center') == (True, '')
    assert harness.publish_and_wait(publisher, image_with(), frames, '/frames')
    assert (frames.messages['/frames'][-1].width, frames.messages['/frames'][-1].height) \
        == (24, 24)


def test_annotated_and_explanation_images_keep_the_header(harness) -> None:
    """image_annotated and explanation are published (when watched) with the header."""
    require_shipped_model()
    classifier = harness.add(DiseaseClassifierNode(
        context=harness.context, parameter_overrides=[Parameter('explain_period_s',
                                                                value=0.05)]))
    collector = Collector(harness.node, [('/classification', String)])
    publisher = harness.node.create_publisher(Image, '/frames', 10)
    harness.wait_for_subscribers(publisher)
    assert harness.publish_and_wait(publisher, image_with(), collector, '/classification')
    assert classifier.annotated_publisher.get_subscription_count() == 0
    images = Collector(harness.node, [('/image_annotated', Image), ('/explanation', Image)])
    assert harness.wait(
        lambda: classifier.annotated_publisher.get_subscription_count() == 1
        and classifier.explanation_publisher.get_subscription_count() == 1)
    frame = make_image(GOOD, 'rgb8', stamp_s=(42, 7), frame_id='annotated')
    assert harness.publish_and_wait(publisher, frame, images, '/explanation')
    assert harness.wait(lambda: images.count('/image_annotated') == 1)
    for topic in ('/image_annotated', '/explanation'):
        msg = images.messages[topic][-1]
        assert (msg.header.stamp.sec, msg.header.stamp.nanosec) == (42, 7)
        assert msg.header.frame_id == 'annotated'
        assert (msg.width, msg.height, msg.encoding) == (64, 48, 'rgb8')
    annotated = np.frombuffer(images.messages['/image_annotated'][-1].data,
                              np.uint8).reshape(48, 64, 3)
    assert not np.array_equal(annotated, GOOD)
    # The explanation is core.explanation's image of that frame and its published answer
    # (the node's own diagnostics count it by what it shows).
    from plant_disease_ros.core.explanation import explanation_image
    from plant_disease_ros.core.outcome import frame_outcome
    from plant_disease_ros.core.vegetation import check_frame

    classification = classifier.classifier.classify(GOOD)
    expected = explanation_image(classifier.classifier, GOOD, classification, frame_outcome(
        classification, classifier.score_threshold, check_frame(GOOD)))
    explanation = np.frombuffer(images.messages['/explanation'][-1].data,
                                np.uint8).reshape(48, 64, 3)
    assert np.array_equal(explanation, expected.image)
    assert classifier.explanations_published[expected.state] >= 1
