"""disease_classifier's ``crops``: a robot told its field's crops never maps another crop.

A real classifier node on the shipped model, real DDS: a tomato leaf shown to a node set
to an apple orchard gets an apple label (or no_leaf/unknown), never a tomato one; the
crops change at run time, and a crop the model does not know is refused with a reason
that names the ones it knows.
"""

from __future__ import annotations

from collections.abc import Iterator
import json

import cv2
from helpers.gps import make_fix
from helpers.images import LEAVES_DIR, make_image
from helpers.ros import (
    classifier_inputs,
    classifier_node,
    Harness,
    latest_diagnostics,
)
import numpy as np
import pytest

rclpy = pytest.importorskip('rclpy')

from rclpy.exceptions import InvalidParameterValueException  # noqa: E402
from rclpy.parameter import Parameter  # noqa: E402


def leaf(label: str) -> np.ndarray:
    """Return the repository's photo of ``label`` as RGB."""
    return cv2.cvtColor(cv2.imread(str(LEAVES_DIR / f'{label}.jpg')), cv2.COLOR_BGR2RGB)


class Rig:
    """A classifier node told ``crops`` (the default score_threshold 0.5)."""

    def __init__(self, harness: Harness, crops: object) -> None:
        self.harness = harness
        self.node = harness.add(classifier_node(harness.context, crops=crops, fix_wait_s=0.0))
        self.collector, self.frames, self.fixes = classifier_inputs(harness)
        self.sent = 0

    def send(self, rgb: np.ndarray, frame_id: str) -> dict:
        """Publish a fix and a frame at one stamp; return the frame's classification."""
        self.sent += 1
        stamp = 10.0 + self.sent
        before = self.node.fixes_received
        self.fixes.publish(make_fix(50.0, 4.0 + self.sent * 1e-5, 10.0, stamp_s=stamp))
        assert self.harness.wait(lambda: self.node.fixes_received > before)
        assert self.harness.publish_and_wait(
            self.frames, make_image(rgb, 'rgb8', stamp_s=stamp, frame_id=frame_id),
            self.collector, '/classification')
        return self.collector.json('/classification')[-1]

    def diagnostics(self) -> dict[str, str]:
        """Return the node's latest diagnostics values ({} before the first)."""
        return latest_diagnostics(self.collector, self.node.get_name()) or {}


@pytest.fixture
def orchard(ros_context) -> Iterator[Rig]:
    """A node started in an apple orchard (crops given as a string)."""
    harness = Harness(ros_context)
    yield Rig(harness, 'apple')
    harness.close()


def apple_or_not_a_leaf(label: str) -> bool:
    """Return whether ``label`` is one an orchard node may publish."""
    return label.startswith('Apple___') or label in ('no_leaf', 'unknown')


def test_an_orchard_node_never_names_another_crop(orchard: Rig) -> None:
    tomato = orchard.send(leaf('Tomato___Late_blight'), 'tomato')
    assert tomato['crops'] == ['Apple']
    # A leaf the model is sure is a tomato leaf: another plant in the orchard, unknown.
    assert (tomato['label'], tomato['outcome']) == ('unknown', 'unknown'), tomato
    assert all(apple_or_not_a_leaf(item['label']) for item in tomato['top_k'])
    scab = orchard.send(leaf('Apple___Apple_scab'), 'scab')
    assert scab['label'] == 'Apple___Apple_scab' and scab['outcome'] == 'leaf'
    # A potato leaf the model gives a little apple probability (5 %): unknown at weight
    # 0.1; trusting the crops fully (weight 0), that share becomes a confident apple answer.
    # (A leaf with no apple probability at all stays at 0: test/core/test_crops.py.)
    potato = orchard.send(leaf('Potato___Early_blight'), 'potato')
    assert (potato['label'], potato['outcome']) == ('unknown', 'unknown'), potato
    (result,) = orchard.node.set_parameters([Parameter('other_crops_weight', value=0.0)])
    assert result.successful
    trusting = orchard.send(leaf('Potato___Early_blight'), 'trusting')
    assert trusting['top_k'][0]['score'] > max(0.5, potato['top_k'][0]['score'])
    assert trusting['top_k'][0]['label'].startswith(('Apple___', 'no_leaf'))
    assert orchard.harness.wait(lambda: orchard.collector.count('/detections') >= 1)
    for message in orchard.collector.messages['/detections']:
        properties = json.loads(message.data)['properties']
        assert properties['label'].startswith('Apple___') and properties['crops'] == ['Apple']
    assert orchard.harness.wait(lambda: orchard.diagnostics().get('crops') == 'Apple')


def test_crops_change_at_run_time_and_bad_ones_are_refused(orchard: Rig) -> None:
    node = orchard.node
    (result,) = node.set_parameters([Parameter('crops', value='Tomato;potato')])
    assert result.successful
    tomato = orchard.send(leaf('Tomato___Late_blight'), 'tomato')
    assert tomato['label'] == 'Tomato___Late_blight' and tomato['crops'] == ['Tomato', 'Potato']
    assert orchard.harness.wait(
        lambda: orchard.diagnostics().get('crops') == 'Tomato, Potato')
    for value in ('Grape', 'Apple, Kiwi'):
        (refused,) = node.set_parameters([Parameter('crops', value=value)])
        assert not refused.successful, value
        assert refused.reason.startswith('crops: unknown crop')
        assert 'knows Apple' in refused.reason and 'Tomato' in refused.reason
    # A string only: a list or a number is refused by its type.
    for value in (['Apple'], 7):
        (refused,) = node.set_parameters([Parameter('crops', value=value)])
        assert not refused.successful and 'type' in refused.reason.lower(), refused.reason
    # The refused values changed nothing; '' is every crop again.
    assert node.get_parameter('crops').value == 'Tomato;potato'
    assert orchard.send(leaf('Tomato___Late_blight'), 'again')['crops'] == ['Tomato', 'Potato']
    (result,) = node.set_parameters([Parameter('crops', value='')])
    assert result.successful
    assert orchard.send(leaf('Apple___healthy'), 'all')['crops'] == []


def test_an_unknown_crop_at_start_is_an_error(ros_context) -> None:
    with pytest.raises(InvalidParameterValueException, match='Grape'):
        classifier_node(ros_context, crops='Apple, Grape')
