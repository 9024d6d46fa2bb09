"""camera_subscriber + disease_classifier on real rclpy: labels, headers, encodings, inputs.

Each test gets its own rclpy context (loopback DDS, private domain) and spins the nodes
under test and a test node in one SingleThreadedExecutor. Frames are sent one at a time
and each result awaited, since image subscriptions keep only the newest frame.
"""

from __future__ import annotations

from collections.abc import Iterator
import json

from helpers.images import leaf_photo_paths, load_rgb, make_compressed, make_image
from helpers.processes import run_node
from helpers.ros import Collector, Harness, parameters
from helpers.shipped_model import require_shipped_model, shipped_classifier, shipped_labels
import numpy as np
import pytest

from plant_disease_ros.core.outcome import NO_LEAF_LABEL

rclpy = pytest.importorskip('rclpy')

from sensor_msgs.msg import CompressedImage, Image, NavSatFix  # noqa: E402
from std_msgs.msg import Float32, String  # noqa: E402

from plant_disease_ros.nodes.camera_subscriber import CameraSubscriberNode  # noqa: E402
from plant_disease_ros.nodes.disease_classifier import DiseaseClassifierNode  # noqa: E402
from plant_disease_ros.nodes.pipeline import create_pipeline  # noqa: E402

RESULT_TOPICS = [('/frames', Image), ('/label', String), ('/confidence', Float32),
                 ('/classification', String), ('/detections', String),
                 ('/detections/fix', NavSatFix)]



def photo(path) -> np.ndarray:
    """Return a held-out leaf photo as RGB at its own size (the camera's view)."""
    return load_rgb(path)


class Chain:
    """camera_subscriber -> disease_classifier, a test publisher and result collector."""

    def __init__(self, context, *, transport: str = 'raw', camera: dict | None = None,
                 classifier: dict | None = None) -> None:
        self.harness = Harness(context)
        self.camera = self.harness.add(CameraSubscriberNode(
            context=context, parameter_overrides=parameters(image_transport=transport,
                                                           **(camera or {}))))
        self.classifier = self.harness.add(DiseaseClassifierNode(
            context=context, parameter_overrides=parameters(**(classifier or {}))))
        node = self.harness.node
        self.collector = Collector(node, RESULT_TOPICS)
        if transport == 'raw':
            self.publisher = node.create_publisher(Image, '/image_raw', 10)
        else:
            self.publisher = node.create_publisher(CompressedImage, '/image_raw/compressed', 10)
        self.frames_publisher = node.create_publisher(Image, '/frames', 10)
        self.harness.wait_for_subscribers(self.publisher)
        # The classifier's and the collector's frames subscriptions.
        self.harness.wait_for_subscribers(self.camera.frames_publisher, 2)

    def send(self, msg, timeout_s: float = 5.0) -> dict | None:
        """Publish one camera image; return the classification JSON it produced."""
        before = self.collector.count('/classification')
        self.publisher.publish(msg)
        if not self.harness.wait(lambda: self.collector.count('/classification') > before,
                                 timeout_s):
            return None
        return json.loads(self.collector.messages['/classification'][-1].data)

    def close(self) -> None:
        self.harness.close()


@pytest.fixture
def chain_factory(ros_context) -> Iterator:
    """Build Chains on the test's context and close them afterwards."""
    chains: list[Chain] = []

    def build(**kwargs) -> Chain:
        chains.append(Chain(ros_context, **kwargs))
        return chains[-1]

    yield build
    for chain in chains:
        chain.close()


def test_every_class_photo_gets_its_label_and_headers_are_kept(chain_factory) -> None:
    """A held-out photo of each class in, its class out; stamp and frame_id kept."""
    require_shipped_model()
    paths = leaf_photo_paths()
    labels = shipped_labels()
    # Every leaf class has a photo; the background class no_leaf has none.
    assert {path.stem for path in paths} == set(labels) - {NO_LEAF_LABEL}
    chain = chain_factory(classifier={'score_threshold': 0.0})
    wrong = []
    for number, path in enumerate(paths):
        stamp = (1_700_000_000 + number, 123_456_789 + number)
        frame_id = f'cam_{number}'
        result = chain.send(make_image(photo(path), 'rgb8', stamp_s=stamp, frame_id=frame_id))
        assert result is not None, f'no classification for {path.name}'
        assert result['frame_id'] == frame_id
        assert result['stamp'] == {'sec': stamp[0], 'nanosec': stamp[1]}
        assert len(result['top_k']) == 3
        assert result['label'] == result['top_k'][0]['label']
        assert set(result['timings_ms']) == {'preprocess', 'invoke', 'postprocess', 'total'}
        if result['label'] != path.stem:
            wrong.append(f'{path.stem} -> {result["label"]} ({result["confidence"]:.2f})')
    assert chain.harness.wait(lambda: chain.collector.count('/detections') == len(paths))
    messages = chain.collector.messages
    assert [msg.data for msg in messages['/label']] == [
        json.loads(msg.data)['label'] for msg in messages['/classification']]
    confidences = [msg.data for msg in messages['/confidence']]
    assert all(0.0 <= value <= 1.0 for value in confidences)
    frame_headers = [(msg.header.frame_id, msg.header.stamp.sec, msg.header.stamp.nanosec)
                     for msg in messages['/frames']]
    classification_headers = [
        (item['frame_id'], item['stamp']['sec'], item['stamp']['nanosec'])
        for item in map(json.loads, (msg.data for msg in messages['/classification']))]
    detection_headers = [
        (item['frame_id'], item['stamp']['sec'], item['stamp']['nanosec'])
        for item in (json.loads(msg.data)['properties'] for msg in messages['/detections'])]
    assert frame_headers == classification_headers == detection_headers
    assert all(msg.encoding == 'rgb8' for msg in messages['/frames'])
    assert not wrong, f'{len(wrong)} of {len(paths)} photos mislabelled: {wrong}'


@pytest.mark.parametrize('encoding', ['bgr8', 'rgba8', 'bgra8', 'yuv422', 'yuv422_yuy2',
                                      'mono8', 'mono16', 'bayer_rggb8', 'bayer_gbrg16'])
def test_every_encoding_gives_the_rgb8_label(chain_factory, encoding: str) -> None:
    """Each raw encoding of a frame is labelled like the same picture sent as rgb8."""
    require_shipped_model()
    from plant_disease_ros.core.image_encoding import raw_to_rgb, rgb_to_raw
    chain = chain_factory(classifier={'score_threshold': 0.0})
    for number, path in enumerate(leaf_photo_paths()[::5]):
        rgb = photo(path)
        # What a camera in this encoding can deliver (grey for mono, demosaiced for bayer),
        # sent as rgb8 too.
        data, step = rgb_to_raw(rgb, encoding)
        delivered = raw_to_rgb(data, encoding, rgb.shape[1], rgb.shape[0], step)
        reference = chain.send(make_image(delivered, 'rgb8', stamp_s=10.0 + number))
        padded = encoding in ('bgr8', 'mono16', 'bayer_gbrg16')
        result = chain.send(make_image(rgb, encoding, stamp_s=20.0 + number,
                                       row_padding=8 if padded else 0))
        assert reference is not None and result is not None
        assert result['label'] == reference['label'], path.name
        assert abs(result['confidence'] - reference['confidence']) < 0.05, path.name


@pytest.mark.parametrize('fmt', ['jpeg', 'png'])
def test_compressed_input(chain_factory, fmt: str) -> None:
    """JPEG and PNG on image_raw/compressed are decoded and labelled, headers kept."""
    require_shipped_model()
    chain = chain_factory(transport='compressed', classifier={'score_threshold': 0.0})
    for number, path in enumerate(leaf_photo_paths()[1::4]):
        rgb = photo(path)
        reference = shipped_classifier().classify(rgb)
        result = chain.send(make_compressed(rgb, fmt, stamp_s=30.0 + number,
                                            frame_id=f'{fmt}_{number}'))
        assert result is not None
        assert result['frame_id'] == f'{fmt}_{number}'
        assert result['stamp']['sec'] == 30 + number
        assert result['label'] == reference.top.label, path.name


def test_rate_cap_drops_and_counts_frames(chain_factory) -> None:
    """Frames above max_rate_hz are dropped and counted; the count adds up; 0 lifts the cap.

    The cap's schedule is the core RateLimiter's (tested on its own with exact times);
    here a 100 s period lets the first frame through and no other in any test run.
    """
    require_shipped_model()
    chain = chain_factory(camera={'max_rate_hz': 0.01})
    camera, harness = chain.camera, chain.harness
    rgb = np.full((48, 64, 3), 90, np.uint8)
    for index in range(20):
        before = camera.diagnostics.received
        chain.publisher.publish(make_image(rgb, 'rgb8', stamp_s=float(index),
                                           frame_id=f'f{index}'))
        assert harness.wait(lambda n=before: camera.diagnostics.received > n), index
    assert harness.wait(lambda: chain.collector.count('/frames') >= 1)
    diagnostics = camera.diagnostics
    assert (diagnostics.received, diagnostics.processed, diagnostics.dropped) == (20, 1, 19)
    assert diagnostics.rejected_total() == 0
    assert [msg.header.frame_id for msg in chain.collector.messages['/frames']] == ['f0']

    assert camera.set_parameters(parameters(max_rate_hz=0.0))[0].successful
    assert chain.send(make_image(rgb, 'rgb8', stamp_s=99.0, frame_id='uncapped')) is not None
    assert chain.collector.messages['/frames'][-1].header.frame_id == 'uncapped'
    assert (diagnostics.received, diagnostics.processed, diagnostics.dropped) == (21, 2, 19)


def test_pipeline_hands_frames_over_in_process(ros_context) -> None:
    """plant_disease_pipeline: image_raw in, label out, no frames published unasked."""
    require_shipped_model()
    camera, classifier = create_pipeline(
        context=ros_context, parameter_overrides=parameters(score_threshold=0.0))
    harness = Harness(ros_context, [camera, classifier])
    try:
        assert classifier.frames_subscription is None
        collector = Collector(harness.node, [('/classification', String), ('/label', String)])
        publisher = harness.node.create_publisher(Image, '/image_raw', 10)
        harness.wait_for_subscribers(publisher)
        path = leaf_photo_paths()[0]
        rgb = photo(path)
        assert harness.publish_and_wait(
            publisher, make_image(rgb, 'bgr8', stamp_s=5.5, frame_id='pipe'), collector,
            '/classification')
        result = json.loads(collector.messages['/classification'][0].data)
        assert result['frame_id'] == 'pipe'
        assert result['stamp'] == {'sec': 5, 'nanosec': 500_000_000}
        assert result['label'] == shipped_classifier().classify(rgb).top.label
        assert camera.diagnostics.processed == 1
        assert classifier.diagnostics.processed == 1
        # Its frames come by a call, not over DDS: no reliability to report, but the key.
        assert classifier.diagnostics.values['qos_reliability'] == 'in-process'
    finally:
        harness.close()


def test_model_load_failure_is_one_line_and_nonzero(tmp_path) -> None:
    """A missing model stops the node with one clear line and exit code 1."""
    missing = tmp_path / 'missing.tflite'
    result = run_node('disease_classifier', '-p', f'model_path:={missing}')
    assert result.returncode == 1
    output = result.stdout + result.stderr
    assert 'Traceback' not in output
    lines = [line for line in output.splitlines() if 'missing.tflite' in line]
    assert len(lines) == 1 and 'cannot load the model' in lines[0], output
