"""Helpers for the node tests: messages from photos, result collection, diagnostics."""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Callable, Iterable
import os
from pathlib import Path
import sys
import time
from typing import Any

import cv2
import numpy as np
import pytest

rclpy = pytest.importorskip('rclpy')

from builtin_interfaces.msg import Time  # noqa: E402
from diagnostic_msgs.msg import DiagnosticArray  # noqa: E402
from rclpy.executors import SingleThreadedExecutor  # noqa: E402
from rclpy.node import Node  # noqa: E402
from rclpy.qos import QoSProfile, ReliabilityPolicy  # noqa: E402
from sensor_msgs.msg import CompressedImage, Image  # noqa: E402

from plant_disease_ros.core.image_encoding import rgb_to_raw  # noqa: E402

REPO_ROOT = Path(__file__).resolve().parents[2]
LEAVES_DIR = REPO_ROOT / 'test' / 'data' / 'leaves'
FASTDDS_PROFILE = REPO_ROOT / 'config' / 'fastdds_profile.xml'
MODEL_PATH = REPO_ROOT / 'models' / 'plant_disease_int8.tflite'
LABELS_PATH = REPO_ROOT / 'models' / 'labels.txt'


def leaf_photo_paths() -> list[Path]:
    """Return the held-out leaf photos, one per class, named ``<class>.jpg``."""
    return sorted(LEAVES_DIR.glob('*.jpg'))


def load_rgb(path: Path) -> np.ndarray:
    """Read a photo as H×W×3 uint8 RGB."""
    bgr = cv2.imread(str(path), cv2.IMREAD_COLOR)
    assert bgr is not None, f'cannot read {path}'
    return cv2.cvtColor(bgr, cv2.COLOR_BGR2RGB)


def require_shipped_model() -> None:
    """Skip the test when the shipped model or its labels are missing."""
    if not MODEL_PATH.is_file() or not LABELS_PATH.is_file():
        pytest.skip('shipped model not present')


def make_stamp(seconds: float | tuple[int, int]) -> Time:
    """Return ``seconds`` (float, or exact (sec, nanosec)) as a builtin_interfaces/Time."""
    if isinstance(seconds, tuple):
        return Time(sec=seconds[0], nanosec=seconds[1])
    total_ns = int(round(seconds * 1e9))
    return Time(sec=total_ns // 1_000_000_000, nanosec=total_ns % 1_000_000_000)


def make_image(rgb: np.ndarray, encoding: str = 'rgb8', *,
               stamp_s: float | tuple[int, int] = 1.0,
               frame_id: str = 'camera', row_padding: int = 0) -> Image:
    """Return a sensor_msgs/Image of ``rgb`` in ``encoding`` (rows padded if asked)."""
    data, step = rgb_to_raw(rgb, encoding)
    if row_padding:
        height = rgb.shape[0]
        rows = np.frombuffer(data, np.uint8).reshape(height, step)
        padded = np.zeros((height, step + row_padding), np.uint8)
        padded[:, :step] = rows
        data, step = padded.tobytes(), step + row_padding
    msg = Image()
    msg.header.stamp = make_stamp(stamp_s)
    msg.header.frame_id = frame_id
    msg.height, msg.width = int(rgb.shape[0]), int(rgb.shape[1])
    msg.encoding = encoding
    msg.step = step
    msg.data = data_array(data)
    return msg


def make_compressed(rgb: np.ndarray, fmt: str = 'jpeg', *,
                    stamp_s: float | tuple[int, int] = 1.0,
                    frame_id: str = 'camera') -> CompressedImage:
    """Return a sensor_msgs/CompressedImage of ``rgb`` as JPEG (quality 95) or PNG."""
    bgr = cv2.cvtColor(rgb, cv2.COLOR_RGB2BGR)
    extension = '.jpg' if fmt == 'jpeg' else '.png'
    params = [cv2.IMWRITE_JPEG_QUALITY, 95] if fmt == 'jpeg' else []
    ok, encoded = cv2.imencode(extension, bgr, params)
    assert ok
    msg = CompressedImage()
    msg.header.stamp = make_stamp(stamp_s)
    msg.header.frame_id = frame_id
    msg.format = fmt
    msg.data = data_array(encoded.tobytes())
    return msg


def data_array(data: bytes) -> Any:
    """Return ``data`` as the array.array('B') a message's uint8[] field takes."""
    import array
    return array.array('B', data)


def results_qos(depth: int = 100) -> QoSProfile:
    """Return a reliable QoS deep enough that a test never misses a result."""
    return QoSProfile(depth=depth, reliability=ReliabilityPolicy.RELIABLE)


class Collector:
    """Subscribe a test node to topics and keep every message received, per topic."""

    def __init__(self, node: Node, topics: Iterable[tuple[str, Any]],
                 qos: QoSProfile | None = None) -> None:
        """Subscribe ``node`` to each (topic, type)."""
        self.messages: dict[str, list[Any]] = defaultdict(list)
        self.subscriptions = []
        for topic, msg_type in topics:
            self.subscriptions.append(node.create_subscription(
                msg_type, topic, self._store(topic), qos or results_qos()))

    def _store(self, topic: str) -> Callable[[Any], None]:
        def store(msg: Any) -> None:
            self.messages[topic].append(msg)
        return store

    def count(self, topic: str) -> int:
        """Return how many messages arrived on ``topic``."""
        return len(self.messages[topic])


def make_executor(context: Any, *nodes: Node) -> SingleThreadedExecutor:
    """Return a single-threaded executor on ``context`` holding ``nodes``."""
    executor = SingleThreadedExecutor(context=context)
    for node in nodes:
        executor.add_node(node)
    return executor


def spin_for(executor: SingleThreadedExecutor, seconds: float) -> None:
    """Spin ``executor`` for ``seconds``."""
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        executor.spin_once(timeout_sec=0.01)


def diagnostic_values(array_msg: DiagnosticArray, hardware_id: str) -> dict[str, str] | None:
    """Return the key/values of the status of ``hardware_id`` in a DiagnosticArray."""
    for status in array_msg.status:
        if status.hardware_id == hardware_id:
            values = {item.key: item.value for item in status.values}
            values['__level__'] = str(int.from_bytes(status.level, 'little')
                                      if isinstance(status.level, bytes) else status.level)
            values['__message__'] = status.message
            return values
    return None


def latest_diagnostics(collector: Collector, hardware_id: str) -> dict[str, str] | None:
    """Return the newest diagnostics values of ``hardware_id`` collected so far."""
    for array_msg in reversed(collector.messages['/diagnostics']):
        values = diagnostic_values(array_msg, hardware_id)
        if values is not None:
            return values
    return None


def ros_subprocess_env(*, profile: bool = True) -> dict[str, str]:
    """Return the environment for a ROS subprocess: loopback DDS, this run's domain.

    ``profile`` selects the package's Fast DDS profile (or none at all).
    """
    env = dict(os.environ)
    env['ROS_AUTOMATIC_DISCOVERY_RANGE'] = 'LOCALHOST'
    env['ROS_DOMAIN_ID'] = os.environ['ROS_DOMAIN_ID']
    env['PYTHONUNBUFFERED'] = '1'
    # Only the current variable: the FASTRTPS_ one is deprecated and warns on Kilted.
    env.pop('FASTRTPS_DEFAULT_PROFILES_FILE', None)
    env.pop('FASTDDS_DEFAULT_PROFILES_FILE', None)
    if profile:
        env['FASTDDS_DEFAULT_PROFILES_FILE'] = str(FASTDDS_PROFILE)
    return env


def python_module_command(module: str, *ros_args: str) -> list[str]:
    """Return the command running ``python -m module`` with ``--ros-args`` if given."""
    command = [sys.executable, '-m', module]
    if ros_args:
        command += ['--ros-args', *ros_args]
    return command


class Harness:
    """Nodes under test plus a test node in one executor on a test's context."""

    def __init__(self, context: Any, nodes: Iterable[Node] = ()) -> None:
        """Create the test node and an executor holding it and ``nodes``."""
        self.context = context
        self.node = rclpy.create_node('test_harness', context=context)
        self.nodes: list[Node] = []
        self.executor = make_executor(context, self.node)
        for node in nodes:
            self.add(node)

    def add(self, node: Node) -> Node:
        """Spin ``node`` too (and destroy it on close); return it."""
        self.nodes.append(node)
        self.executor.add_node(node)
        return node

    def wait(self, predicate: Callable[[], bool], timeout_s: float = 10.0) -> bool:
        """Spin until ``predicate()`` holds or ``timeout_s`` passes; return it."""
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            if predicate():
                return True
            self.executor.spin_once(timeout_sec=0.01)
        return predicate()

    def wait_for_subscribers(self, publisher: Any, count: int = 1,
                             timeout_s: float = 10.0) -> None:
        """Wait until ``publisher`` has ``count`` subscribers, then let both sides match."""
        assert self.wait(lambda: publisher.get_subscription_count() >= count, timeout_s), \
            f'no subscriber on {publisher.topic_name}'
        spin_for(self.executor, 0.1)

    def publish_and_wait(self, publisher: Any, msg: Any, collector: Collector, topic: str,
                         timeout_s: float = 5.0) -> bool:
        """Publish ``msg`` and spin until one more message arrives on ``topic``."""
        before = collector.count(topic)
        publisher.publish(msg)
        return self.wait(lambda: collector.count(topic) > before, timeout_s)

    def publish_and_wait_count(self, publisher: Any, msg: Any, received: list,
                               timeout_s: float = 5.0) -> bool:
        """Publish ``msg`` and spin until ``received`` grows."""
        before = len(received)
        publisher.publish(msg)
        return self.wait(lambda: len(received) > before, timeout_s)

    def close(self) -> None:
        """Destroy every node (the context is shut down by its fixture)."""
        for node in [*self.nodes, self.node]:
            self.executor.remove_node(node)
            node.destroy_node()
        self.executor.shutdown(timeout_sec=1.0)
