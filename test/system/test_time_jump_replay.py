"""The demo bag played twice in a row: time jumps back, no frame gets a fix of the old loop.

A test player reads ``demo/field_demo.mcap`` with rosbags and plays it twice, in log order,
into a disease_classifier (shipped model, ``score_threshold`` 0 so every frame gives a
detection): fixes are published on ``fix`` through the node's real subscription, frames
are handed to ``process_frame`` as the pipeline does. The second pass has the same stamps
(``ros2 bag play --loop``) but its fixes and truth are moved 400 m north (a second drive
somewhere else), so a frame of the second pass located with a fix of the first is off by
hundreds of metres. Counted: geotag errors (a detection more than 2.5 m from where the
frame was taken) after the jump, which must be none, and the fix statuses of both passes,
which must be the same (the node starts over as it did at the first pass).
"""

from __future__ import annotations

from collections import Counter
import json
import math
from pathlib import Path

import cv2
from helpers.ros import classifier_node, Collector, Harness
import numpy as np
import pytest

from plant_disease_ros.core.geodesy import geodetic_to_enu

pytest.importorskip('rosbags')
rclpy = pytest.importorskip('rclpy')

from rclpy.qos import QoSProfile, ReliabilityPolicy  # noqa: E402
from sensor_msgs.msg import NavSatFix  # noqa: E402
from std_msgs.msg import Header, String  # noqa: E402

REPO_ROOT = Path(__file__).resolve().parents[2]
DEMO_BAG = REPO_ROOT / 'demo' / 'field_demo.mcap'
TRUTH = REPO_ROOT / 'demo' / 'field_demo_truth.json'
IMAGE_TOPIC = '/camera/image_raw/compressed'
FIX_TOPIC = '/gps/fix'
SECOND_PASS_NORTH_DEG = 0.0036  # about 400 m
MAX_POSITION_ERROR_M = 2.5
DETECTIONS = '/detections'


def bag_messages() -> list[tuple[str, object]]:
    """Return ('image' | 'fix', message) of the demo bag in log order."""
    from rosbags.rosbag2 import Reader
    from rosbags.typesys import get_typestore, Stores

    typestore = get_typestore(Stores.LATEST)
    messages = []
    with Reader(DEMO_BAG) as reader:
        connections = [c for c in reader.connections if c.topic in (IMAGE_TOPIC, FIX_TOPIC)]
        for connection, _, data in reader.messages(connections=connections):
            kind = 'image' if connection.topic == IMAGE_TOPIC else 'fix'
            messages.append((kind, typestore.deserialize_cdr(data, connection.msgtype)))
    return messages


def to_navsatfix(recorded: object, north_deg: float) -> NavSatFix:
    """Return an rclpy NavSatFix copy of a recorded fix, moved ``north_deg`` north."""
    msg = NavSatFix()
    msg.header.stamp.sec = recorded.header.stamp.sec
    msg.header.stamp.nanosec = recorded.header.stamp.nanosec
    msg.header.frame_id = recorded.header.frame_id
    msg.status.status = int(recorded.status.status)
    msg.status.service = int(recorded.status.service)
    msg.latitude = float(recorded.latitude) + north_deg
    msg.longitude = float(recorded.longitude)
    msg.altitude = float(recorded.altitude)
    msg.position_covariance = [float(value) for value in recorded.position_covariance]
    msg.position_covariance_type = int(recorded.position_covariance_type)
    return msg


def to_rgb(recorded: object) -> np.ndarray:
    """Return the RGB frame of a recorded CompressedImage (JPEG)."""
    bgr = cv2.imdecode(np.frombuffer(bytes(recorded.data), np.uint8), cv2.IMREAD_COLOR)
    return np.ascontiguousarray(bgr[:, :, ::-1])


class Replay:
    """A classifier on the shipped model and the test player feeding it the bag."""

    def __init__(self, context: object, **overrides: object) -> None:
        self.harness = Harness(context, name='time_jump_player')
        self.classifier = self.harness.add(classifier_node(
            context, score_threshold=0.0, fix_wait_s=5.0, **overrides))
        node = self.harness.node
        self.collector = Collector(node, [(DETECTIONS, String)],
                                   QoSProfile(depth=1000, reliability=ReliabilityPolicy.RELIABLE))
        self.fixes = node.create_publisher(NavSatFix, 'fix', QoSProfile(depth=100))
        subscription = self.classifier.fix_subscription
        assert self.harness.wait(
            lambda: subscription.reliability == ReliabilityPolicy.RELIABLE
            and not subscription.handing_over
            and subscription.subscription.get_publisher_count() >= 1
            and self.fixes.get_subscription_count() >= 1, 30.0)
        self.harness.wait_for_subscribers(self.classifier.detections_publisher)
        self.fixes_sent = 0
        self.frames_sent = 0

    def play(self, messages: list[tuple[str, object]], pass_name: str,
             north_deg: float) -> None:
        """Play the bag once: each fix taken by the node before the next message."""
        for kind, recorded in messages:
            if kind == 'fix':
                self.fixes.publish(to_navsatfix(recorded, north_deg))
                self.fixes_sent += 1
                assert self.harness.wait(
                    lambda: self.classifier.fixes_received == self.fixes_sent)
            else:
                header = Header()
                header.stamp.sec = recorded.header.stamp.sec
                header.stamp.nanosec = recorded.header.stamp.nanosec
                header.frame_id = f'camera/{pass_name}'
                self.classifier.process_frame(to_rgb(recorded), header)
                self.frames_sent += 1
                self.harness.executor.spin_once(timeout_sec=0.0)

    def detections(self) -> list[dict]:
        """Wait for one detection per frame; return them."""
        assert self.harness.wait(lambda: self.collector.count(DETECTIONS) >= self.frames_sent,
                                 30.0), (self.collector.count(DETECTIONS), self.frames_sent)
        return self.collector.json(DETECTIONS)

    def close(self) -> None:
        self.harness.close()


def geotag_errors(detections: list[dict], pass_name: str, truth: dict[tuple[int, int], dict],
                  north_deg: float) -> tuple[int, Counter]:
    """Return (detections of ``pass_name`` placed > 2.5 m from the truth, fix statuses)."""
    errors = 0
    statuses: Counter[str] = Counter()
    for feature in detections:
        properties = feature['properties']
        if properties['frame_id'] != f'camera/{pass_name}':
            continue
        statuses[properties['fix_status']] += 1
        if feature['geometry'] is None:
            continue
        position = truth[(properties['stamp']['sec'], properties['stamp']['nanosec'])]
        lon, lat, alt = feature['geometry']['coordinates']
        east, north, _ = geodetic_to_enu(lat, lon, alt, position['latitude'] + north_deg,
                                         position['longitude'], position['altitude'])
        errors += int(math.hypot(east, north) > MAX_POSITION_ERROR_M)
    return errors, statuses


@pytest.fixture(scope='module')
def demo() -> tuple[list[tuple[str, object]], dict[tuple[int, int], dict]]:
    if not DEMO_BAG.exists():
        pytest.skip(f'{DEMO_BAG} missing')
    truth = json.loads(TRUTH.read_text())
    positions = {(frame['stamp']['sec'], frame['stamp']['nanosec']): frame['position']
                 for frame in truth['frames']}
    # Frames with no leaf in view give no detection: only leaf frames are played.
    no_leaf = {(frame['stamp']['sec'], frame['stamp']['nanosec'])
               for frame in truth['frames'] if frame.get('kind') == 'no_leaf'}
    messages = [(kind, message) for kind, message in bag_messages()
                if kind == 'fix'
                or (message.header.stamp.sec, message.header.stamp.nanosec) not in no_leaf]
    return messages, positions


def replay_twice(context: object, demo, **overrides: object) -> tuple[Replay, list[dict]]:
    messages, _ = demo
    replay = Replay(context, **overrides)
    replay.play(messages, 'first', 0.0)
    replay.play(messages, 'second', SECOND_PASS_NORTH_DEG)
    return replay, replay.detections()


def test_second_pass_is_never_located_with_fixes_of_the_first(ros_context, demo) -> None:
    messages, truth = demo
    frames = sum(1 for kind, _ in messages if kind == 'image')
    replay, detections = replay_twice(ros_context, demo)
    try:
        assert len(detections) == 2 * frames
        errors_first, first = geotag_errors(detections, 'first', truth, 0.0)
        errors_second, second = geotag_errors(detections, 'second', truth,
                                               SECOND_PASS_NORTH_DEG)
        assert sum(first.values()) == sum(second.values()) == frames
        assert (errors_first, errors_second) == (0, 0), (first, second)
        # After the jump the node starts over: the same statuses as on the first pass.
        assert second == first
        assert second['interpolated'] + second['extrapolated'] + second['nearest'] > frames // 2
        assert replay.classifier.time_jumps.jumps == 1
        assert replay.classifier.diagnostics.values['time_jumps_back'] == 1
        print(f'time jump: {frames} frames per pass, geotag errors after the jump '
              f'{errors_second}, statuses {dict(second)}')
    finally:
        replay.close()


def test_without_jump_detection_the_second_pass_is_misplaced(ros_context, demo) -> None:
    """The control: with the threshold out of reach, old fixes do misplace frames."""
    messages, truth = demo
    replay, detections = replay_twice(ros_context, demo, time_jump_threshold_s=86400.0)
    try:
        errors, statuses = geotag_errors(detections, 'second', truth, SECOND_PASS_NORTH_DEG)
        assert replay.classifier.time_jumps.jumps == 0
        assert errors > 0, statuses
        print(f'control without jump detection: {errors} geotag errors in the second pass')
    finally:
        replay.close()
