"""A grey camera is told by its messages' encoding, never by the pixels of a frame.

camera_subscriber reads the encoding: mono8, mono16 and 8UC1 raw images, a JPEG of one
component, a PNG of colour type grey or grey + alpha are a grey camera's. Such frames are
counted (``frames.grey_source``) and its /diagnostics is WARN, naming the encoding, until
a colour frame comes. The classifier only sees an RGB frame without colour: it labels it
``no_leaf`` for 'no colour' and counts it (``frames.no_colour``), never warning, because a
colour camera on the compressed transport looking at grey gravel delivers frames just
as grey (JPEG removes its chroma noise): that colour camera was told to "use a colour
camera". Every frame goes through real nodes over DDS (camera_subscriber and
disease_classifier, or plant_disease_pipeline) as real encoded images.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
import struct
import zlib

import cv2
from helpers.encoded_images import png_chunk, PNG_SIGNATURE
from helpers.images import (
    data_array,
    leaf_photos,
    make_compressed,
    make_image,
)
from helpers.ros import (
    classifier_node,
    diagnostics_collector,
    Harness,
    parameters,
    statuses,
)
from helpers.shipped_model import require_shipped_model
import numpy as np
import pytest

from plant_disease_ros.core.image_encoding import compressed_to_rgb
from plant_disease_ros.core.vegetation import GateOptions

rclpy = pytest.importorskip('rclpy')

from diagnostic_msgs.msg import DiagnosticStatus  # noqa: E402
from rclpy.node import Node  # noqa: E402
from sensor_msgs.msg import CompressedImage, Image  # noqa: E402
from std_msgs.msg import String  # noqa: E402

from plant_disease_ros.nodes.camera_subscriber import CameraSubscriberNode  # noqa: E402
from plant_disease_ros.nodes.pipeline import create_pipeline  # noqa: E402

NO_COLOUR = 'no colour'
GREY_SOURCE = 'the camera sends grey images ({kind}): leaves and diseases cannot be told apart'
PHOTOS = [rgb for _, rgb in leaf_photos(3, max_side=160)]
Message = Image | CompressedImage
MakeFrame = Callable[[np.ndarray, float], Message]


def grey_source(kind: str) -> str:
    """Return the start of camera_subscriber's warning about a grey camera sending ``kind``."""
    return GREY_SOURCE.format(kind=kind)


def compressed(data: bytes, fmt: str, stamp_s: float) -> CompressedImage:
    """Return a CompressedImage carrying ``data`` in format ``fmt``."""
    msg = make_compressed(np.zeros((2, 2, 3), np.uint8), fmt, stamp_s=stamp_s)
    msg.data = data_array(data)
    return msg


def grey_encoded(rgb: np.ndarray, extension: str) -> bytes:
    """Return a grey camera's JPEG (one component) or PNG (colour type 0) of ``rgb``."""
    ok, encoded = cv2.imencode(extension, cv2.cvtColor(rgb, cv2.COLOR_RGB2GRAY))
    assert ok
    return encoded.tobytes()


def grey_alpha_png(rgb: np.ndarray) -> bytes:
    """Return a PNG of colour type 4 (grey + alpha, opaque) of ``rgb``: OpenCV writes none."""
    grey = cv2.cvtColor(rgb, cv2.COLOR_RGB2GRAY)
    height, width = grey.shape
    samples = np.dstack([grey, np.full_like(grey, 255)]).reshape(height, width * 2)
    rows = np.hstack([np.zeros((height, 1), np.uint8), samples])  # filter 0 before each row
    header = struct.pack('>IIBBBBB', width, height, 8, 4, 0, 0, 0)
    return (PNG_SIGNATURE + png_chunk(b'IHDR', header)
            + png_chunk(b'IDAT', zlib.compress(rows.tobytes())) + png_chunk(b'IEND', b''))


# Per transport: a grey camera's frames (the kind the warning names, how to make it) and a
# colour camera's.
GREY_FRAMES: dict[str, list[tuple[str, MakeFrame]]] = {
    'raw': [(encoding, lambda rgb, stamp, encoding=encoding: make_image(
                rgb, encoding, stamp_s=stamp)) for encoding in ('mono8', 'mono16', '8UC1')],
    'compressed': [
        ('grey JPEG', lambda rgb, stamp: compressed(grey_encoded(rgb, '.jpg'), 'jpeg', stamp)),
        ('grey PNG', lambda rgb, stamp: compressed(grey_encoded(rgb, '.png'), 'png', stamp)),
        ('grey PNG', lambda rgb, stamp: compressed(grey_alpha_png(rgb), 'png', stamp)),
    ],
}
COLOUR_FRAMES: dict[str, list[MakeFrame]] = {
    # A Bayer mosaic is one sample a pixel too, of a colour camera.
    'raw': [lambda rgb, stamp, encoding=encoding: make_image(rgb, encoding, stamp_s=stamp)
            for encoding in ('rgb8', 'bayer_rggb8')],
    'compressed': [lambda rgb, stamp, fmt=fmt: make_compressed(rgb, fmt, stamp_s=stamp)
                   for fmt in ('jpeg', 'png')],
}


def values(status: DiagnosticStatus) -> dict[str, str]:
    """Return a status's key/values."""
    return {item.key: item.value for item in status.values}


def gravel_jpeg(quality: int = 90) -> bytes:
    """Return a colour camera's JPEG of grey gravel (the gate tests' colour-noise fixture).

    Raw, each channel's own noise gives most pixels colour; the JPEG's chroma
    subsampling and quantisation take it away.
    """
    rng = np.random.default_rng(1)
    gravel = np.clip(128 + rng.normal(0, 20, (96, 96, 1)) + rng.normal(0, 3, (96, 96, 3)),
                     0, 255).astype(np.uint8)
    ok, encoded = cv2.imencode('.jpg', cv2.cvtColor(gravel, cv2.COLOR_RGB2BGR),
                               [cv2.IMWRITE_JPEG_QUALITY, quality])
    assert ok
    return encoded.tobytes()


class Rig:
    """camera_subscriber and disease_classifier (two nodes, or the pipeline), a camera."""

    def __init__(self, harness: Harness, transport: str, pipeline: bool = False) -> None:
        require_shipped_model()
        self.harness = harness
        # No silence warning: every status of these tests must be about the frames.
        common = {'image_transport': transport, 'qos_reliability': 'reliable',
                  'diagnostics_period_s': 0.2, 'input_timeout_s': 0.0}
        if pipeline:
            self.camera, self.classifier = create_pipeline(
                context=harness.context, parameter_overrides=parameters(
                    **common, num_threads=1, gps_required=False))
            harness.add(self.camera)
            harness.add(self.classifier)
        else:
            self.classifier = harness.add(classifier_node(
                harness.context, gps_required=False, input_timeout_s=0.0))
            self.camera = harness.add(CameraSubscriberNode(
                context=harness.context, parameter_overrides=parameters(**common)))
        self.collector = diagnostics_collector(harness.node, ('/classification', String))
        msg_type, topic = ((Image, '/image_raw') if transport == 'raw'
                           else (CompressedImage, '/image_raw/compressed'))
        self.publisher = harness.node.create_publisher(msg_type, topic, 10)
        harness.wait_for_subscribers(self.publisher)
        if not pipeline:
            harness.wait_for_subscribers(self.camera.frames_publisher)
        self.sent = 0

    def send(self, make: MakeFrame, rgb: np.ndarray) -> dict:
        """Publish a camera frame made by ``make``; return its classification JSON."""
        self.sent += 1
        msg = make(rgb, float(self.sent))
        msg.header.frame_id = f'frame{self.sent}'
        assert self.harness.publish_and_wait(self.publisher, msg, self.collector,
                                             '/classification'), msg.header.frame_id
        return self.collector.json('/classification')[-1]

    def status_after_last_frame(self, node: Node) -> DiagnosticStatus:
        """Spin until ``node`` publishes a status counting every frame sent; return it.

        Such a status is built after the last frame was handled: its level and message
        are the state that frame left.
        """
        def found() -> DiagnosticStatus | None:
            for status in reversed(statuses(self.collector, node.get_name())):
                if values(status).get('processed') == str(self.sent):
                    return status
            return None

        assert self.harness.wait(lambda: found() is not None), \
            statuses(self.collector, node.get_name())[-1:]
        return found()


@pytest.fixture
def harness(ros_context) -> Iterator[Harness]:
    """Give a test a Harness, closed afterwards."""
    harness = Harness(ros_context)
    yield harness
    harness.close()


@pytest.mark.parametrize('transport', ['raw', 'compressed'])
def test_a_grey_camera_is_warned_about_by_camera_subscriber_until_a_colour_frame(
        harness: Harness, transport: str, capfd: pytest.CaptureFixture[str]) -> None:
    """Each grey encoding: camera_subscriber WARN naming it, counted; the classifier labels
    the frame no_leaf for 'no colour', counts it and stays OK. A colour frame after it
    clears the camera's WARN and keeps the count."""
    rig = Rig(harness, transport)
    colour_frames = COLOUR_FRAMES[transport]
    for count, (kind, make) in enumerate(GREY_FRAMES[transport], start=1):
        rgb = PHOTOS[count % len(PHOTOS)]
        record = rig.send(make, rgb)
        assert (record['label'], record['no_leaf_reason']) == ('no_leaf', NO_COLOUR), \
            (kind, record)
        camera = rig.status_after_last_frame(rig.camera)
        assert camera.level == DiagnosticStatus.WARN, (kind, camera.message)
        assert camera.message.startswith(grey_source(kind)), (kind, camera.message)
        assert camera.message.endswith('(1 since the last colour frame)'), camera.message
        assert values(camera)['frames.grey_source'] == str(count)
        classifier = rig.status_after_last_frame(rig.classifier)
        assert (classifier.level, classifier.message) == (DiagnosticStatus.OK, 'ok'), kind
        assert values(classifier)['frames.no_colour'] == str(count)

        record = rig.send(colour_frames[count % len(colour_frames)], rgb)
        assert record['no_leaf_reason'] != NO_COLOUR, (kind, record)
        camera = rig.status_after_last_frame(rig.camera)
        assert (camera.level, camera.message) == (DiagnosticStatus.OK, 'ok'), kind
        assert values(camera)['frames.grey_source'] == str(count)
    first_kind = GREY_FRAMES[transport][0][0]
    assert grey_source(first_kind) in capfd.readouterr().err


def test_a_colour_jpeg_of_grey_gravel_is_no_grey_camera(harness: Harness) -> None:
    """The false alarm: a colour camera (compressed transport, plant_disease_pipeline) on
    grey gravel. Its frames decode without colour, so they are no_leaf for 'no colour'
    and counted; but no node claims a grey camera: both statuses stay OK."""
    data = gravel_jpeg(quality=90)
    rgb = compressed_to_rgb(data)
    # What the classifier gets has no colour: no pixel's channels are more than the
    # rounding of a grey image's conversions apart, as in a grey camera's frame.
    spread = rgb.max(axis=2).astype(np.int16) - rgb.min(axis=2)
    assert spread.max() <= GateOptions().grey_tolerance, np.bincount(spread.ravel())
    rig = Rig(harness, 'compressed', pipeline=True)
    for _ in range(3):
        record = rig.send(lambda _rgb, stamp: compressed(data, 'jpeg', stamp), rgb)
        assert (record['label'], record['no_leaf_reason']) == ('no_leaf', NO_COLOUR), record
    camera = rig.status_after_last_frame(rig.camera)
    assert (camera.level, camera.message) == (DiagnosticStatus.OK, 'ok')
    assert values(camera)['frames.grey_source'] == '0'
    classifier = rig.status_after_last_frame(rig.classifier)
    assert (classifier.level, classifier.message) == (DiagnosticStatus.OK, 'ok')
    assert values(classifier)['frames.no_colour'] == '3' == values(classifier)['frames.no_leaf']


def test_the_grey_camera_warning_stands_beside_the_silence_warning(harness: Harness) -> None:
    """A grey camera that then goes silent: both warnings, in one WARN; a colour frame
    takes the grey one away and leaves the count."""
    camera = harness.add(CameraSubscriberNode(
        context=harness.context, parameter_overrides=parameters(
            qos_reliability='reliable', diagnostics_period_s=0.2, input_timeout_s=0.3)))
    collector = diagnostics_collector(harness.node)
    publisher = harness.node.create_publisher(Image, '/image_raw', 10)
    harness.wait_for_subscribers(publisher)

    def newest() -> DiagnosticStatus | None:
        found = statuses(collector, camera.get_name())
        return found[-1] if found else None

    def shows(processed: int, *parts: str) -> bool:
        status = newest()
        return (status is not None and values(status)['processed'] == str(processed)
                and status.level == DiagnosticStatus.WARN
                and all(part in status.message for part in parts))

    publisher.publish(make_image(PHOTOS[0], 'mono8', stamp_s=1.0))
    assert harness.wait(lambda: shows(1, grey_source('mono8'), 'no images on /image_raw')), \
        newest()
    publisher.publish(make_image(PHOTOS[0], 'rgb8', stamp_s=2.0))
    assert harness.wait(lambda: values(newest())['processed'] == '2'), newest()
    # Every status from now on counts the colour frame: none names the grey camera.
    assert harness.wait(lambda: shows(2, 'no images on /image_raw')), newest()
    for status in statuses(collector, camera.get_name()):
        if values(status)['processed'] == '2':
            assert 'grey' not in status.message, status.message
            assert values(status)['frames.grey_source'] == '1'
