"""Frames without a crop leaf: label 'no_leaf', never a detection, counted in diagnostics.

The frames a robot sees between rows (uniform green, black, white, soil-like noise, a sky
gradient) go through the real classifier node with the shipped model and a fix for every
frame, so any frame the node took for a leaf would become a located detection.
"""

from __future__ import annotations

from collections.abc import Iterator
import json

from helpers.gps import make_fix
from helpers.images import leaf_rgb, make_image
from helpers.ros import diagnostics_collector, Harness, latest_diagnostics, parameters
from helpers.shipped_model import require_shipped_model
import numpy as np
import pytest

rclpy = pytest.importorskip('rclpy')

from rclpy.parameter import Parameter  # noqa: E402
from sensor_msgs.msg import Image, NavSatFix  # noqa: E402
from std_msgs.msg import String  # noqa: E402

from plant_disease_ros.nodes.disease_classifier import DiseaseClassifierNode  # noqa: E402


def soil(height: int = 96, width: int = 128) -> np.ndarray:
    """Return a brown, textured soil-like frame."""
    rng = np.random.default_rng(7)
    base = np.array([110, 80, 55], np.float32)
    noise = rng.normal(0.0, 18.0, (height, width, 1)).astype(np.float32)
    return np.clip(base + noise, 0, 255).astype(np.uint8)


def sky(height: int = 96, width: int = 128) -> np.ndarray:
    """Return a pale-blue vertical gradient."""
    rows = np.linspace(0.0, 1.0, height, dtype=np.float32)[:, None, None]
    top, bottom = np.array([90, 140, 220], np.float32), np.array([200, 220, 245], np.float32)
    return np.broadcast_to(top + rows * (bottom - top), (height, width, 3)).astype(np.uint8)


NON_LEAF_FRAMES = {
    'uniform_green': np.full((96, 128, 3), (40, 150, 40), np.uint8),
    'black': np.zeros((96, 128, 3), np.uint8),
    'white': np.full((96, 128, 3), 255, np.uint8),
    'soil': soil(),
    'sky': sky(),
}


class Rig:
    """A classifier node (threshold 0: any leaf is a detection), its inputs and outputs."""

    def __init__(self, harness: Harness) -> None:
        self.harness = harness
        self.node = harness.add(DiseaseClassifierNode(
            context=harness.context,
            parameter_overrides=parameters(score_threshold=0.0, diagnostics_period_s=0.2,
                                           fix_wait_s=0.0)))
        self.collector = diagnostics_collector(harness.node, ('/classification', String),
                                               ('/label', String), ('/detections', String))
        self.frames = harness.node.create_publisher(Image, '/frames', 10)
        self.fixes = harness.node.create_publisher(NavSatFix, '/fix', 10)
        harness.wait_for_subscribers(self.frames)
        harness.wait_for_subscribers(self.fixes)

    def send(self, rgb: np.ndarray, index: int, frame_id: str) -> None:
        """Publish a fix and then a frame at the same stamp; wait for its classification."""
        fix = make_fix(50.0, 4.0 + index * 1e-5, 10.0, stamp_s=10.0 + index, accuracy_m=None)
        before = self.node.fixes_received
        self.fixes.publish(fix)
        assert self.harness.wait(lambda: self.node.fixes_received > before)
        msg = make_image(rgb, 'rgb8', stamp_s=10.0 + index, frame_id=frame_id)
        assert self.harness.publish_and_wait(self.frames, msg, self.collector,
                                             '/classification')

    def diagnostics(self) -> dict[str, str]:
        """Return the node's latest diagnostics values ({} before the first)."""
        return latest_diagnostics(self.collector, self.node.get_name()) or {}


@pytest.fixture
def rig(ros_context) -> Iterator[Rig]:
    """Give a test a Rig, closed afterwards."""
    harness = Harness(ros_context)
    yield Rig(harness)
    harness.close()


def test_non_leaf_frames_are_no_leaf_and_never_detections(rig) -> None:
    """Each non-leaf frame: label no_leaf with a reason; a leaf between them is detected."""
    require_shipped_model()
    collector = rig.collector
    for index, (name, rgb) in enumerate(NON_LEAF_FRAMES.items()):
        rig.send(rgb, index, name)
    rig.send(leaf_rgb(128, 96), len(NON_LEAF_FRAMES), 'leaf')
    results = {item['frame_id']: item for item in collector.json('/classification')}
    for name in NON_LEAF_FRAMES:
        assert results[name]['label'] == 'no_leaf', (name, results[name])
        assert results[name]['outcome'] == 'no_leaf'
        assert results[name]['no_leaf_reason'], name
    assert results['leaf']['outcome'] == 'leaf' and results['leaf']['label'] != 'no_leaf'
    labels = [msg.data for msg in collector.messages['/label']]
    assert labels.count('no_leaf') == len(NON_LEAF_FRAMES)
    # Only the leaf became a detection, and it was located.
    assert rig.harness.wait(lambda: collector.count('/detections') >= 1)
    detections = [json.loads(msg.data) for msg in collector.messages['/detections']]
    assert [item['properties']['frame_id'] for item in detections] == ['leaf']
    # One status that counts every frame: a status published before the leaf frame was
    # classified has the no_leaf count but no leaf count yet.
    wanted = {'frames.no_leaf': str(len(NON_LEAF_FRAMES)), 'frames.leaf': '1'}
    assert rig.harness.wait(lambda: all(rig.diagnostics().get(key) == value
                                        for key, value in wanted.items())), rig.diagnostics()


def test_gate_off_leaves_the_decision_to_the_model(rig) -> None:
    """vegetation_gate false at runtime: a black frame's label is the model's own."""
    require_shipped_model()
    rig.node.set_parameters([Parameter('vegetation_gate', value=False)])
    rig.send(NON_LEAF_FRAMES['black'], 0, 'black')
    result = rig.collector.json('/classification')[-1]
    # Threshold 0: the label is the model's top class, its background class included.
    assert result['label'] == result['top_k'][0]['label']
    assert result['no_leaf_reason'] in ('', 'model')


def test_a_model_without_a_no_leaf_class_is_named_at_start(
        ros_context, tmp_path, capfd: pytest.CaptureFixture[str]) -> None:
    """A leaves-only model (its labels lack no_leaf): one warning at start says what the
    robot then does with green non-leaf views; the shipped model gets none."""
    from helpers.shipped_model import MODEL_PATH, shipped_labels

    labels = [label if label != 'no_leaf' else 'Grape___healthy' for label in shipped_labels()]
    leaves_only = tmp_path / 'labels.txt'
    leaves_only.write_text('\n'.join(labels) + '\n', encoding='utf-8')
    harness = Harness(ros_context)
    try:
        harness.add(DiseaseClassifierNode(context=harness.context, parameter_overrides=parameters(
            model_path=str(MODEL_PATH), labels_path=str(leaves_only))))
        harness.add(DiseaseClassifierNode(context=harness.context, parameter_overrides=parameters(
            model_path=str(MODEL_PATH))))
    finally:
        harness.close()
    err = capfd.readouterr().err
    assert err.count("the model has no 'no_leaf' class") == 1, err
    assert 'Train with --recipe field' in err
