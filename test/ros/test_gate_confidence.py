"""confidence is the score of the published label, on every output of the classifier node.

A frame the vegetation gate turns away is ``no_leaf`` by a rule: ``confidence`` (topic and
JSON), the annotated image's text and ``results`` all say 1.0, while the JSON's ``top_k``
keeps the model's own scores. A leaf, and a leaf below ``score_threshold`` (``unknown``),
have the top class's score. Frames go through a real disease_classifier node over DDS.
"""

from __future__ import annotations

from collections.abc import Iterator

import cv2
from helpers.images import leaf_photo_paths, leaf_rgb, load_rgb, make_image
from helpers.ros import classifier_node, Collector, Harness
from helpers.shipped_model import shipped_classifier
import numpy as np
import pytest

from plant_disease_ros.core.annotation import annotate
from plant_disease_ros.core.image_encoding import raw_to_rgb, rgb_to_raw
from plant_disease_ros.core.labels import display_name

rclpy = pytest.importorskip('rclpy')

from rclpy.parameter import Parameter  # noqa: E402
from sensor_msgs.msg import Image  # noqa: E402
from std_msgs.msg import Float32, String  # noqa: E402

LEAF = leaf_rgb(128, 128)


def photo(stem: str) -> np.ndarray:
    """Return the leaf photo of class ``stem`` at 128×128 RGB."""
    (path,) = [path for path in leaf_photo_paths() if path.stem == stem]
    return cv2.resize(load_rgb(path), (128, 128), interpolation=cv2.INTER_AREA)


def washed_out(rgb: np.ndarray) -> np.ndarray:
    """Return ``rgb`` with 15 % of its saturation: too pale for the gate's plant colours."""
    hsv = cv2.cvtColor(rgb, cv2.COLOR_RGB2HSV)
    hsv[:, :, 1] = (hsv[:, :, 1] * 0.15).astype(np.uint8)
    return cv2.cvtColor(hsv, cv2.COLOR_HSV2RGB)


def grey(rgb: np.ndarray) -> np.ndarray:
    """Return ``rgb`` as a mono8 camera delivers it to the node, converted to RGB."""
    data, step = rgb_to_raw(rgb, 'mono8')
    return raw_to_rgb(data, 'mono8', rgb.shape[1], rgb.shape[0], step)


class Rig:
    """A classifier node; every output it has collected: label, confidence, JSON, images."""

    def __init__(self, harness: Harness) -> None:
        self.harness = harness
        self.node = harness.add(classifier_node(harness.context, gps_required=False))
        vision_msgs = self.node.typed_outputs.vision_msgs
        topics = [('/label', String), ('/confidence', Float32), ('/classification', String),
                  ('/image_annotated', Image)]
        if vision_msgs is not None:
            topics.append(('/results', vision_msgs.Classification))
        self.collector = Collector(harness.node, topics)
        self.frames = harness.node.create_publisher(Image, '/frames', 10)
        harness.wait_for_subscribers(self.frames)
        harness.wait_for_subscribers(self.node.annotated_publisher)
        self.sent = 0

    def send(self, rgb: np.ndarray, encoding: str = 'rgb8') -> dict:
        """Publish a frame; wait for all its outputs; return them (JSON, topics, image)."""
        self.sent += 1
        msg = make_image(rgb, encoding, stamp_s=float(self.sent), frame_id=f'f{self.sent}')
        topics = ['/label', '/confidence', '/classification', '/image_annotated']
        if self.node.typed_outputs.vision_msgs is not None:
            topics.append('/results')
        self.frames.publish(msg)
        assert self.harness.wait(lambda: all(self.collector.count(topic) >= self.sent
                                             for topic in topics)), self.sent
        messages = self.collector.messages
        annotated = messages['/image_annotated'][-1]
        return {
            'json': self.collector.json('/classification')[-1],
            'label': messages['/label'][-1].data,
            'confidence': messages['/confidence'][-1].data,
            'annotated': np.frombuffer(annotated.data, np.uint8).reshape(
                annotated.height, annotated.width, 3),
            'results': [(hypothesis.class_id, hypothesis.score) for hypothesis in
                        messages['/results'][-1].results] if '/results' in topics else None,
        }


@pytest.fixture
def rig(ros_context) -> Iterator[Rig]:
    """Give a test a Rig, closed afterwards."""
    harness = Harness(ros_context)
    yield Rig(harness)
    harness.close()


@pytest.mark.parametrize(('rgb', 'encoding', 'reason'), [
    (washed_out(photo('Tomato___Leaf_Mold')), 'rgb8', 'no vegetation'),
    (photo('Tomato___Early_blight'), 'mono8', 'no colour'),
], ids=['washed-out leaf', 'grey camera'])
def test_a_frame_the_gate_turns_away_has_confidence_one_everywhere(
        rig: Rig, rgb: np.ndarray, encoding: str, reason: str) -> None:
    """no_leaf by the gate: 1.0 on every output; top_k still the model's own scores."""
    seen = grey(rgb) if encoding == 'mono8' else rgb  # the frame as the node has it
    model = shipped_classifier().classify(seen)
    # The model takes it for an unsure leaf (Tomato___healthy 0.38, Potato___Early_blight
    # 0.32): its score is what confidence carried, and 1.0 can only come from the rule.
    assert model.top.label != 'no_leaf' and model.top.score < 0.9, model.top
    out = rig.send(rgb, encoding)
    record = out['json']
    assert (record['label'], record['no_leaf_reason']) == ('no_leaf', reason), record
    assert out['label'] == 'no_leaf'
    assert record['confidence'] == 1.0, record
    assert out['confidence'] == 1.0
    assert record['top_k'][0]['label'] == model.top.label
    assert record['top_k'][0]['score'] == pytest.approx(model.top.score, abs=1e-6)
    np.testing.assert_array_equal(out['annotated'],
                                  annotate(seen, f'no leaf 1.00: {reason}'))
    if out['results'] is not None:
        assert out['results'] == [('no_leaf', 1.0)]


def test_a_leaf_and_an_unknown_leaf_have_the_top_class_score(rig: Rig) -> None:
    """A leaf (threshold 0) and the same leaf below the threshold (1.0): the top score."""
    model = shipped_classifier().classify(LEAF)
    rig.node.set_parameters([Parameter('score_threshold', value=0.0)])
    leaf = rig.send(LEAF)
    assert leaf['json']['label'] == model.top.label == leaf['label']
    rig.node.set_parameters([Parameter('score_threshold', value=1.0)])
    unknown = rig.send(LEAF)
    assert unknown['json']['label'] == 'unknown' == unknown['label']
    for out in (leaf, unknown):
        assert out['json']['confidence'] == pytest.approx(model.top.score, abs=1e-6)
        assert out['confidence'] == pytest.approx(model.top.score, abs=1e-6)
        assert out['json']['top_k'][0]['score'] == out['json']['confidence']
    score = f'{leaf["json"]["confidence"]:.2f}'
    np.testing.assert_array_equal(
        leaf['annotated'], annotate(LEAF, f'{display_name(model.top.label)} {score}'))
    np.testing.assert_array_equal(unknown['annotated'], annotate(LEAF, f'unknown {score}'))
