"""Memory: 10,000 frames through the pipeline grow its resident memory by less than 5 MB.

The pipeline (camera_subscriber handing frames to disease_classifier, one executor) runs
in this process with the shipped model; small bgr8 frames are published as fast as the
pipeline takes them, with a GPS fix every 10 frames and a detection for every frame, so
every per-frame path (conversion, classification, results, GPS tagging, diagnostics)
runs 10,000 times. RSS is measured after a warm-up of 1,000 frames and at the end.
"""

from __future__ import annotations

import array
import gc
from pathlib import Path

import numpy as np
import pytest

rclpy = pytest.importorskip('rclpy')

from helpers.fuzz_messages import make_fix  # noqa: E402
from helpers.ros_helpers import leaf_photos, set_stamp  # noqa: E402
from rclpy.executors import SingleThreadedExecutor  # noqa: E402
from rclpy.node import Node  # noqa: E402
from rclpy.parameter import Parameter  # noqa: E402
from rclpy.qos import QoSProfile, ReliabilityPolicy  # noqa: E402
from sensor_msgs.msg import Image, NavSatFix  # noqa: E402
from std_msgs.msg import String  # noqa: E402

from plant_disease_ros.nodes.pipeline import create_pipeline  # noqa: E402

WARMUP_FRAMES = 1_000
FRAMES = 10_000
MAX_GROWTH_MB = 5.0
WIDTH, HEIGHT = 64, 48
T0 = 1_700_000_000.0


def rss_mb() -> float:
    """Return this process's resident set size in MB."""
    for line in Path('/proc/self/status').read_text().splitlines():
        if line.startswith('VmRSS:'):
            return int(line.split()[1]) / 1024.0
    raise RuntimeError('no VmRSS in /proc/self/status')


def test_10000_frames_rss_growth_below_5_mb(ros_context, shipped_model_paths) -> None:
    """RSS after 10,000 more frames is within 5 MB of RSS after the warm-up."""
    import cv2

    model_path, labels_path = shipped_model_paths
    camera, classifier = create_pipeline(context=ros_context, parameter_overrides=[
        Parameter('model_path', value=str(model_path)),
        Parameter('labels_path', value=str(labels_path)),
        Parameter('num_threads', value=1),
        Parameter('qos_reliability', value='reliable'),
        Parameter('score_threshold', value=0.0),
        Parameter('fix_wait_s', value=0.0),
        Parameter('diagnostics_period_s', value=0.5)])
    tester = Node('memory_tester', context=ros_context)
    executor = SingleThreadedExecutor(context=ros_context)
    for node in (camera, classifier, tester):
        executor.add_node(node)
    detections = [0]

    def on_detection(_msg: String) -> None:
        detections[0] += 1

    try:
        images = tester.create_publisher(Image, 'image_raw', QoSProfile(depth=10))
        fixes = tester.create_publisher(NavSatFix, 'fix', QoSProfile(depth=10))
        tester.create_subscription(String, 'detections', on_detection,
                                   QoSProfile(depth=100, reliability=ReliabilityPolicy.RELIABLE))
        for _ in range(1500):
            if images.get_subscription_count() and fixes.get_subscription_count():
                break
            executor.spin_once(timeout_sec=0.01)
        assert images.get_subscription_count() and fixes.get_subscription_count()
        rgb = cv2.resize(leaf_photos(1)[0][1], (WIDTH, HEIGHT), interpolation=cv2.INTER_AREA)
        msg = Image(height=HEIGHT, width=WIDTH, encoding='bgr8', step=WIDTH * 3)
        msg.data = array.array('B', np.ascontiguousarray(rgb[:, :, ::-1]).tobytes())
        msg.header.frame_id = 'camera'

        def run(count: int, first: int) -> None:
            for index in range(first, first + count):
                stamp_s = T0 + index / 30.0
                if index % 10 == 0:
                    fixes.publish(make_fix(47.0 + index * 1e-7, 8.0, 400.0,
                                           stamp_s=stamp_s))
                set_stamp(msg, stamp_s)
                taken = camera.diagnostics.received
                images.publish(msg)
                for _ in range(500):
                    executor.spin_once(timeout_sec=0.01)
                    if camera.diagnostics.received > taken:
                        break
                else:
                    raise AssertionError(f'frame {index} not taken')

        run(WARMUP_FRAMES, 0)
        gc.collect()
        before = rss_mb()
        run(FRAMES, WARMUP_FRAMES)
        for _ in range(50):
            executor.spin_once(timeout_sec=0.01)
        gc.collect()
        growth = rss_mb() - before
        print(f'RSS {before:.1f} MB after {WARMUP_FRAMES} frames, grew {growth:+.2f} MB over '
              f'{FRAMES} more')
        assert classifier.diagnostics.processed == WARMUP_FRAMES + FRAMES
        assert camera.diagnostics.rejected_total() == 0
        assert detections[0] >= 0.99 * (WARMUP_FRAMES + FRAMES)
        assert growth < MAX_GROWTH_MB, f'RSS grew {growth:.2f} MB over {FRAMES} frames'
    finally:
        executor.shutdown()
        for node in (tester, camera, classifier):
            node.destroy_node()
