"""disease_classifier's ``test_time_poses``: the scores of several poses, over real DDS.

A real classifier node on the shipped model: with 8 poses its classification of a leaf
is the mean of the shipped model's scores over the eight poses of the model input, the
frame and its detection say so, diagnostics show it, and counts the classifier cannot
average are refused at start and at run time.
"""

from __future__ import annotations

from collections.abc import Iterator
import json

import cv2
from helpers.gps import make_fix
from helpers.images import LEAVES_DIR, make_image
from helpers.ros import classifier_inputs, classifier_node, Harness, latest_diagnostics
from helpers.shipped_model import shipped_classifier
import numpy as np
import pytest

from plant_disease_ros.core.preprocessing import pose_views, resize_to_input

rclpy = pytest.importorskip('rclpy')

from rclpy.exceptions import InvalidParameterValueException  # noqa: E402
from rclpy.parameter import Parameter  # noqa: E402

LABEL = 'Tomato___Late_blight'  # a leaf whose poses score differently


@pytest.fixture
def rig(ros_context) -> Iterator[tuple[Harness, object, object, object, object]]:
    """A classifier node started with 8 poses, its publishers and a collector."""
    harness = Harness(ros_context)
    node = harness.add(classifier_node(ros_context, test_time_poses=8, fix_wait_s=0.0,
                                       score_threshold=0.0))
    collector, frames, fixes = classifier_inputs(harness)
    yield harness, node, collector, frames, fixes
    harness.close()


def _expected_scores(rgb: np.ndarray, poses: int) -> np.ndarray:
    classifier = shipped_classifier()
    resized = resize_to_input(rgb, *classifier.input_size)
    return np.mean([classifier.probabilities(np.ascontiguousarray(view))
                    for view in pose_views(resized, poses)], axis=0)


def test_eight_poses_average_the_scores_and_say_so(rig) -> None:
    harness, node, collector, frames, fixes = rig
    rgb = cv2.cvtColor(cv2.imread(str(LEAVES_DIR / f'{LABEL}.jpg')), cv2.COLOR_BGR2RGB)
    sent = 0

    def send() -> dict:
        nonlocal sent
        sent += 1
        before = node.fixes_received
        fixes.publish(make_fix(50.0, 4.0 + sent * 1e-5, 10.0, stamp_s=10.0 + sent))
        assert harness.wait(lambda: node.fixes_received > before)
        assert harness.publish_and_wait(
            frames, make_image(rgb, 'rgb8', stamp_s=10.0 + sent), collector, '/classification')
        return collector.json('/classification')[-1]

    eight = send()
    expected = _expected_scores(rgb, 8)
    assert eight['poses'] == 8 and eight['label'] == LABEL
    assert eight['confidence'] == pytest.approx(float(expected.max()), abs=1e-5)
    assert harness.wait(lambda: collector.count('/detections') >= 1)
    assert json.loads(collector.messages['/detections'][-1].data)['properties']['poses'] == 8
    assert harness.wait(lambda: (latest_diagnostics(collector, node.get_name()) or {})
                        .get('test_time_poses') == '8')
    # Back to one pass at run time: the score is the single pose's.
    (result,) = node.set_parameters([Parameter('test_time_poses', value=1)])
    assert result.successful
    one = send()
    assert one['poses'] == 1
    assert one['confidence'] == pytest.approx(float(_expected_scores(rgb, 1).max()), abs=1e-5)
    assert one['confidence'] != pytest.approx(eight['confidence'], abs=1e-3)
    for value in (3, 0, 16):
        (refused,) = node.set_parameters([Parameter('test_time_poses', value=value)])
        assert not refused.successful, value
    (refused,) = node.set_parameters([Parameter('test_time_poses', value=3)])
    assert refused.reason == 'test_time_poses: poses must be one of 1, 2, 4, 8, got 3'
    assert node.get_parameter('test_time_poses').value == 1
    assert send()['poses'] == 1


def test_a_count_it_cannot_average_is_an_error_at_start(ros_context) -> None:
    with pytest.raises(InvalidParameterValueException, match='poses must be one of'):
        classifier_node(ros_context, test_time_poses=5)
