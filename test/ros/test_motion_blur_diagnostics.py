"""A camera smearing its frames: the classifier node's /diagnostics say so, and stop saying.

Real leaf photos go through a real disease_classifier node over DDS, sharp and then
smeared along their rows as a camera driving sideways with a long exposure makes them.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator

import cv2
from helpers.images import leaf_photo_paths, load_rgb, make_image
from helpers.ros import classifier_node, diagnostics_collector, Harness, statuses
import numpy as np
import pytest

from plant_disease_ros.core.motion_blur import smear

rclpy = pytest.importorskip('rclpy')

from diagnostic_msgs.msg import DiagnosticStatus  # noqa: E402
from rclpy.parameter import Parameter  # noqa: E402
from sensor_msgs.msg import Image  # noqa: E402
from std_msgs.msg import String  # noqa: E402

SIDE = 320  # the 160 px test photos, enlarged 2× as a camera's centred crop
STREAK_PX = 24  # 7.5 % of the side: past the 5 % default, where the model starts to lose


def leaves(count: int = 15) -> list[np.ndarray]:
    """Return ``count`` leaf photos of different classes, SIDE px square."""
    return [cv2.resize(load_rgb(path), (SIDE, SIDE), interpolation=cv2.INTER_LINEAR)
            for path in leaf_photo_paths()[:count]]


def smeared(rgb: np.ndarray) -> np.ndarray:
    """Return ``rgb`` smeared by STREAK_PX along its rows."""
    return smear(rgb, STREAK_PX, 'horizontal')


class Rig:
    """A classifier node estimating every frame's blur, a frames publisher, /diagnostics."""

    def __init__(self, harness: Harness) -> None:
        self.harness = harness
        self.node = harness.add(classifier_node(harness.context, motion_blur_check_every=1,
                                                gps_required=False))
        self.collector = diagnostics_collector(harness.node, ('/classification', String))
        self.frames = harness.node.create_publisher(Image, '/frames', 10)
        harness.wait_for_subscribers(self.frames)
        self.sent = 0

    def send(self, rgb: np.ndarray) -> None:
        """Publish one frame and wait for its classification."""
        self.sent += 1
        msg = make_image(rgb, 'rgb8', stamp_s=float(self.sent), frame_id='camera')
        assert self.harness.publish_and_wait(self.frames, msg, self.collector,
                                             '/classification')

    def latest(self) -> DiagnosticStatus | None:
        """Return the node's newest status published after the last frame was handled."""
        found = [status for status in statuses(self.collector, self.node.get_name())
                 if {item.key: item.value for item in status.values}.get('processed')
                 == str(self.sent)]
        return found[-1] if found else None

    def wait_status(self, predicate: Callable[[DiagnosticStatus], bool]) -> DiagnosticStatus:
        """Spin until a status after the last frame satisfies ``predicate``; return it."""
        assert self.harness.wait(lambda: (status := self.latest()) is not None
                                 and predicate(status)), self.latest()
        return self.latest()


def values(status: DiagnosticStatus) -> dict[str, str]:
    """Return a status's key/values."""
    return {item.key: item.value for item in status.values}


def warned(status: DiagnosticStatus) -> bool:
    """Return whether ``status`` is a motion blur WARN."""
    return status.level == DiagnosticStatus.WARN and 'motion blur' in status.message


@pytest.fixture
def rig(ros_context) -> Iterator[Rig]:
    """Give a test a Rig, closed afterwards."""
    harness = Harness(ros_context)
    yield Rig(harness)
    harness.close()


def test_smeared_frames_turn_diagnostics_to_warn_and_sharp_ones_back(rig: Rig) -> None:
    photos = leaves()
    for rgb in photos:
        rig.send(rgb)
    status = rig.wait_status(lambda status: 'motion_blur_percent' in values(status))
    assert status.level == DiagnosticStatus.OK, status.message
    assert float(values(status)['motion_blur_percent']) < 5.0
    assert values(status)['motion_blur_samples'] == str(len(photos))

    for rgb in photos:  # the window of 15 now holds only smeared frames
        rig.send(smeared(rgb))
    status = rig.wait_status(warned)
    found = values(status)
    assert float(found['motion_blur_percent']) == pytest.approx(
        100 * STREAK_PX / SIDE, abs=100 * 2 * SIDE / 256 / SIDE)
    assert float(found['motion_blur_px']) == pytest.approx(STREAK_PX, abs=2.5)
    assert found['motion_blur_axis'] == 'horizontal'
    # Each estimated frame's record carries its own estimate (every frame here: every=1).
    records = rig.collector.json('/classification')
    assert all(record['motion_blur'] is not None for record in records)
    last = [record['motion_blur'] for record in records[-len(photos):]]
    assert sorted(blur['px'] for blur in last)[len(last) // 2] == pytest.approx(STREAK_PX,
                                                                              abs=2.5)
    assert 'motion blur' in status.message and 'horizontally' in status.message

    # The camera's exposure was shortened: sharp frames again bring the status back to OK.
    for rgb in photos:
        rig.send(rgb)
    status = rig.wait_status(lambda status: float(values(status)['motion_blur_percent'])
                             < 5.0)
    assert status.level == DiagnosticStatus.OK and 'motion blur' not in status.message


def test_no_leaf_frames_are_not_estimated_and_off_clears_the_warning(rig: Rig) -> None:
    black = np.zeros((SIDE, SIDE, 3), np.uint8)
    for _ in range(3):
        rig.send(black)
    status = rig.wait_status(lambda status: True)
    assert 'motion_blur_samples' not in values(status)
    records = rig.collector.json('/classification')
    assert [record['motion_blur'] for record in records] == [None] * 3

    for rgb in leaves(5):
        rig.send(smeared(rgb))
    rig.wait_status(warned)
    assert rig.node.set_parameters(
        [Parameter('motion_blur_check_every', value=0)])[0].successful
    rig.send(leaves(1)[0])
    status = rig.wait_status(lambda status: True)
    assert status.level == DiagnosticStatus.OK, status.message
    assert not any(key.startswith('motion_blur') for key in values(status))


def test_a_higher_warn_percent_at_runtime_clears_the_warning(rig: Rig) -> None:
    for rgb in leaves(5):
        rig.send(smeared(rgb))
    rig.wait_status(warned)
    result = rig.node.set_parameters([Parameter('motion_blur_warn_percent', value=20.0)])[0]
    assert result.successful
    rig.send(np.zeros((SIDE, SIDE, 3), np.uint8))
    status = rig.wait_status(lambda status: True)
    assert status.level == DiagnosticStatus.OK, status.message
    refused = rig.node.set_parameters([Parameter('motion_blur_warn_percent', value=0.1)])[0]
    assert not refused.successful


def test_the_warning_ages_out_when_no_leaf_frames_come(rig: Rig) -> None:
    """After a smeared stretch only no_leaf frames come: the WARN goes once it is old."""
    for rgb in leaves(5):
        rig.send(smeared(rgb))
    rig.wait_status(warned)
    # The monitor's clock jumps past the estimates' age (30 s) instead of the test waiting.
    monitor = rig.node.motion_blur
    later = monitor._clock() + 31.0
    monitor._clock = lambda: later
    rig.send(np.zeros((SIDE, SIDE, 3), np.uint8))  # no_leaf: not estimated
    status = rig.wait_status(lambda status: not any(
        key.startswith('motion_blur') for key in values(status)))
    assert status.level == DiagnosticStatus.OK, status.message


def test_a_failing_estimate_is_counted_and_the_frame_still_classified(rig: Rig) -> None:
    """Fault injection: the estimator raises; the record is published and the fault counted."""
    def broken(rgb: np.ndarray) -> None:
        raise ValueError('injected estimator fault')

    rig.node.motion_blur.offer = broken
    photos = leaves(2)
    for rgb in photos:
        rig.send(rgb)
    records = rig.collector.json('/classification')
    assert len(records) == len(photos)
    assert all(record['label'] != 'no_leaf' and record['motion_blur'] is None
               for record in records)
    status = rig.wait_status(lambda status: 'motion_blur_errors' in values(status))
    assert values(status)['motion_blur_errors'] == str(len(photos))
    assert 'motion_blur_samples' not in values(status)
    # Turning the check off clears its keys, the fault count with them.
    del rig.node.motion_blur.offer  # the estimator works again (the class's method)
    assert rig.node.set_parameters(
        [Parameter('motion_blur_check_every', value=0)])[0].successful
    rig.send(photos[0])
    status = rig.wait_status(lambda status: 'motion_blur_errors' not in values(status))
    assert not any(key.startswith('motion_blur') for key in values(status))
