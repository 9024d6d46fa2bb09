"""A grey (mono) camera: its frames are named as grey, counted and warned about, until
colour frames come.

Leaf photos go through a real disease_classifier node over DDS as a grey camera delivers
them: mono8, mono16 and 8UC1 on ``frames``, and grey JPEG and PNG through a real
camera_subscriber (compressed transport). Every such frame was labelled ``no_leaf`` for
'no vegetation' with /diagnostics OK: the user never learned why nothing was detected.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator

import cv2
from helpers.images import data_array, leaf_photos, make_compressed, make_image
from helpers.ros import classifier_node, diagnostics_collector, Harness, parameters, statuses
import numpy as np
import pytest

rclpy = pytest.importorskip('rclpy')

from diagnostic_msgs.msg import DiagnosticStatus  # noqa: E402
from sensor_msgs.msg import CompressedImage, Image  # noqa: E402
from std_msgs.msg import String  # noqa: E402

from plant_disease_ros.nodes.camera_subscriber import CameraSubscriberNode  # noqa: E402

GREY_REASON = 'no colour (grey image)'
GREY_WARNING = 'frames have no colour: a grey camera cannot show leaf or disease colours'
PHOTOS = [rgb for _, rgb in leaf_photos(3, max_side=160)]


def grey_jpeg_or_png(rgb: np.ndarray, fmt: str, stamp_s: float) -> CompressedImage:
    """Return a grey camera's JPEG or PNG (one channel) of ``rgb``."""
    grey = cv2.cvtColor(rgb, cv2.COLOR_RGB2GRAY)
    msg = make_compressed(rgb, fmt, stamp_s=stamp_s)
    ok, encoded = cv2.imencode('.jpg' if fmt == 'jpeg' else '.png', grey)
    assert ok
    msg.data = data_array(encoded.tobytes())
    return msg


class Rig:
    """A classifier node, a camera_subscriber for compressed frames, their publishers."""

    def __init__(self, harness: Harness) -> None:
        self.harness = harness
        self.node = harness.add(classifier_node(harness.context, gps_required=False))
        self.camera = harness.add(CameraSubscriberNode(
            context=harness.context, parameter_overrides=parameters(
                image_transport='compressed', qos_reliability='reliable')))
        self.collector = diagnostics_collector(harness.node, ('/classification', String))
        self.frames = harness.node.create_publisher(Image, '/frames', 10)
        self.compressed = harness.node.create_publisher(CompressedImage,
                                                        '/image_raw/compressed', 10)
        harness.wait_for_subscribers(self.frames)
        harness.wait_for_subscribers(self.compressed)
        harness.wait_for_subscribers(self.camera.frames_publisher)
        self.sent = 0

    def send(self, msg: Image | CompressedImage) -> dict:
        """Publish a frame (raw to the classifier, compressed to the camera); return its JSON."""
        self.sent += 1
        msg.header.frame_id = f'frame{self.sent}'
        publisher = self.compressed if isinstance(msg, CompressedImage) else self.frames
        assert self.harness.publish_and_wait(publisher, msg, self.collector,
                                             '/classification'), msg.header.frame_id
        return self.collector.json('/classification')[-1]

    def wait_status(self, predicate: Callable[[DiagnosticStatus], bool]) -> DiagnosticStatus:
        """Spin until a status after the last frame satisfies ``predicate``; return it."""
        def found() -> DiagnosticStatus | None:
            for status in reversed(statuses(self.collector, self.node.get_name())):
                if values(status).get('processed') == str(self.sent) and predicate(status):
                    return status
            return None

        assert self.harness.wait(lambda: found() is not None), \
            statuses(self.collector, self.node.get_name())[-1:]
        return found()


def values(status: DiagnosticStatus) -> dict[str, str]:
    """Return a status's key/values."""
    return {item.key: item.value for item in status.values}


@pytest.fixture
def rig(ros_context) -> Iterator[Rig]:
    """Give a test a Rig, closed afterwards."""
    harness = Harness(ros_context)
    yield Rig(harness)
    harness.close()


def test_grey_frames_are_named_counted_and_warned_about_until_colour_comes(
        rig: Rig, capfd: pytest.CaptureFixture[str]) -> None:
    """Every grey encoding: no_leaf for 'no colour (grey image)', frames.grey, WARN; then
    colour frames: labelled by the model again, OK, the count kept."""
    grey = 0
    for rgb in PHOTOS:
        for encoding in ('mono8', 'mono16', '8UC1'):
            grey += 1
            record = rig.send(make_image(rgb, encoding, stamp_s=float(rig.sent + 1)))
            assert (record['label'], record['no_leaf_reason']) == ('no_leaf', GREY_REASON), \
                (encoding, record)
        for fmt in ('jpeg', 'png'):
            grey += 1
            record = rig.send(grey_jpeg_or_png(rgb, fmt, stamp_s=float(rig.sent + 1)))
            assert (record['label'], record['no_leaf_reason']) == ('no_leaf', GREY_REASON), \
                (fmt, record)
    status = rig.wait_status(lambda status: status.level == DiagnosticStatus.WARN
                             and GREY_WARNING in status.message)
    assert values(status)['frames.grey'] == str(grey) == values(status)['frames.no_leaf']
    assert f'({grey} since the last colour frame)' in status.message, status.message
    assert GREY_WARNING in capfd.readouterr().err

    # The camera is set to colour: the frames are the model's again and the WARN goes.
    for rgb in PHOTOS:
        record = rig.send(make_image(rgb, 'rgb8', stamp_s=float(rig.sent + 1)))
        assert record['no_leaf_reason'] in ('', 'model'), record
    status = rig.wait_status(lambda status: status.level == DiagnosticStatus.OK)
    assert status.message == 'ok'
    assert values(status)['frames.grey'] == str(grey)
