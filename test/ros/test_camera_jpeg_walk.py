"""camera_subscriber walks a compressed frame's header once, however much junk it holds.

The walk once ran twice a frame (the size checks before decoding, then the grey-camera
check), each a Python step per byte of junk between a JPEG's segments: a frame padded
with megabytes of zeros held the node's callback for seconds. Now one walk gives both,
and the junk is searched in C (the step count is tested in
test/core/test_image_encoding_jpeg_walk.py).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import cv2
from helpers.images import data_array
from helpers.ros import diagnostics_collector, parameters
import numpy as np
import pytest

from plant_disease_ros.core import image_encoding

rclpy = pytest.importorskip('rclpy')

from sensor_msgs.msg import CompressedImage, Image  # noqa: E402

from plant_disease_ros.nodes.camera_subscriber import CameraSubscriberNode  # noqa: E402

JUNK_BYTES = 1_000_000


def grey_jpeg_padded_with_zeros() -> CompressedImage:
    """Return a grey camera's 32×24 JPEG with a megabyte of zeros after its APP0 segment."""
    ok, encoded = cv2.imencode('.jpg', np.full((24, 32), 120, np.uint8))
    assert ok
    data = encoded.tobytes()
    after_app0 = 4 + int.from_bytes(data[4:6], 'big')
    msg = CompressedImage()
    msg.header.frame_id = 'padded'
    msg.format = 'mono8; jpeg compressed mono8'
    msg.data = data_array(data[:after_app0] + bytes(JUNK_BYTES) + data[after_app0:])
    return msg


def test_a_padded_jpeg_frame_is_walked_once_and_still_told_grey(
        harness, monkeypatch: pytest.MonkeyPatch) -> None:
    walks: list[int] = []
    walk: Callable[[bytes], Any] = image_encoding._jpeg_frame

    def counted(raw: bytes) -> Any:
        walks.append(len(raw))
        return walk(raw)

    monkeypatch.setattr(image_encoding, '_jpeg_frame', counted)
    camera = harness.add(CameraSubscriberNode(context=harness.context, parameter_overrides=(
        parameters(image_transport='compressed', qos_reliability='reliable',
                   input_timeout_s=0.0, crop_mode='none'))))
    collector = diagnostics_collector(harness.node, ('/frames', Image))
    publisher = harness.node.create_publisher(CompressedImage, '/image_raw/compressed', 10)
    harness.wait_for_subscribers(publisher)

    assert harness.publish_and_wait(publisher, grey_jpeg_padded_with_zeros(), collector,
                                    '/frames')
    frame = collector.messages['/frames'][-1]
    assert (frame.header.frame_id, frame.width, frame.height) == ('padded', 32, 24)
    assert camera.grey_source_frames == 1
    assert len(walks) == 1, f'{len(walks)} header walks of one frame'
