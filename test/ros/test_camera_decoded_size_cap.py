"""camera_subscriber refuses a compressed frame whose header claims too many decoded bytes.

A small 16-bit RGBA PNG claiming 7000×7000 (392 MB decoded, within 50 Mpx) used to be
decoded on the node's single-threaded executor; now it is counted as ``rejected.bad_size``
in /diagnostics, like a frame claiming too many pixels, and the next frame goes through.
"""

from __future__ import annotations

import struct
import zlib

import cv2
from helpers.images import data_array, leaf_rgb, make_compressed
from helpers.ros import diagnostics_collector, latest_diagnostics, parameters
import numpy as np
import pytest

rclpy = pytest.importorskip('rclpy')

from sensor_msgs.msg import CompressedImage, Image  # noqa: E402

from plant_disease_ros.nodes.camera_subscriber import CameraSubscriberNode  # noqa: E402


def png_16bit_rgba_claiming(width: int, height: int) -> CompressedImage:
    """Return a real 8×8 16-bit RGBA PNG whose IHDR (CRC fixed) claims ``width``×``height``."""
    ok, encoded = cv2.imencode('.png', np.full((8, 8, 4), 0x1234, np.uint16))
    assert ok
    data = bytearray(encoded.tobytes())
    data[16:24] = struct.pack('>II', width, height)
    data[29:33] = struct.pack('>I', zlib.crc32(bytes(data[12:29])))
    msg = CompressedImage()
    msg.header.frame_id = 'claims_392_mb'
    msg.format = 'rgba16; png compressed rgba16'
    msg.data = data_array(bytes(data))
    return msg


def test_a_png_claiming_392_mb_decoded_is_rejected_as_bad_size(harness) -> None:
    camera = harness.add(CameraSubscriberNode(context=harness.context, parameter_overrides=(
        parameters(image_transport='compressed', qos_reliability='reliable',
                   diagnostics_period_s=0.2, input_timeout_s=0.0, crop_mode='none'))))
    collector = diagnostics_collector(harness.node, ('/frames', Image))
    publisher = harness.node.create_publisher(CompressedImage, '/image_raw/compressed', 10)
    harness.wait_for_subscribers(publisher)

    publisher.publish(png_16bit_rgba_claiming(7000, 7000))
    assert harness.wait(lambda: (latest_diagnostics(collector, 'camera_subscriber') or {})
                        .get('rejected.bad_size') == '1'), \
        latest_diagnostics(collector, 'camera_subscriber')
    values = latest_diagnostics(collector, 'camera_subscriber')
    assert values['received'] == '1' and values['processed'] == '0'

    good = make_compressed(leaf_rgb(64, 48), 'png', stamp_s=3.0, frame_id='good')
    assert harness.publish_and_wait(publisher, good, collector, '/frames')
    frame = collector.messages['/frames'][-1]
    assert (frame.header.frame_id, frame.width, frame.height) == ('good', 64, 48)
    assert camera.diagnostics.rejected == {('frame', 'bad_size'): 1}
