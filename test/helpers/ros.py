"""In-process ROS test rig: waiting on conditions, a harness, result and diagnostics collectors.

test/conftest.py sets the ROS environment (loopback discovery, the run's private domain,
the RMW and the package's Fast DDS profile) before any test imports rclpy; nothing here
sets it again.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager
import json
import time
from typing import Any

import pytest

rclpy = pytest.importorskip('rclpy')

from diagnostic_msgs.msg import DiagnosticArray, DiagnosticStatus  # noqa: E402
from rclpy.executors import SingleThreadedExecutor  # noqa: E402
from rclpy.node import Node  # noqa: E402
from rclpy.parameter import Parameter  # noqa: E402
from rclpy.qos import QoSProfile, ReliabilityPolicy  # noqa: E402

DIAGNOSTICS_TOPIC = '/diagnostics'


def wait_for(predicate: Callable[[], bool], timeout_s: float = 10.0,
             executor: SingleThreadedExecutor | None = None) -> bool:
    """Wait until ``predicate()`` holds or ``timeout_s`` passes; return it.

    With an ``executor`` the wait spins it (callbacks and timers run); without one it
    sleeps between checks (a file, a child process).
    """
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if predicate():
            return True
        if executor is not None:
            executor.spin_once(timeout_sec=0.01)
        else:
            time.sleep(0.02)
    return predicate()


def parameters(**values: Any) -> list[Parameter]:
    """Return parameter overrides from keyword arguments."""
    return [Parameter(name, value=value) for name, value in values.items()]


def results_qos(depth: int = 100) -> QoSProfile:
    """Return a reliable QoS deep enough that a test never misses a result."""
    return QoSProfile(depth=depth, reliability=ReliabilityPolicy.RELIABLE)


class Collector:
    """Subscribe a node to topics and keep every message received, per topic."""

    def __init__(self, node: Node, topics: Iterable[tuple[str, Any]],
                 qos: QoSProfile | None = None) -> None:
        """Subscribe ``node`` to each (topic, type)."""
        self.messages: dict[str, list[Any]] = defaultdict(list)
        self.subscriptions = [
            node.create_subscription(msg_type, topic, self._store(topic), qos or results_qos())
            for topic, msg_type in topics]

    def _store(self, topic: str) -> Callable[[Any], None]:
        def store(msg: Any) -> None:
            self.messages[topic].append(msg)
        return store

    def count(self, topic: str) -> int:
        """Return how many messages arrived on ``topic``."""
        return len(self.messages[topic])

    def json(self, topic: str) -> list[dict]:
        """Return the std_msgs/String messages of ``topic`` parsed as JSON."""
        return [json.loads(msg.data) for msg in self.messages[topic]]

    def frame_ids(self, topic: str) -> list[str]:
        """Return the frame_id of every JSON result on ``topic`` (classification or detection)."""
        return [value.get('properties', value).get('frame_id', '')
                for value in self.json(topic)]


def status_node(status: DiagnosticStatus) -> str:
    """Return the node a status names: ``left/camera_subscriber`` of ``left/...: frames``."""
    return status.name.partition(':')[0]


def statuses(collector: Collector, node_name: str) -> list[DiagnosticStatus]:
    """Return every /diagnostics status of node ``node_name`` collected so far, oldest first.

    A status name begins with the node's namespace (``plant_disease/disease_classifier:
    frames``): a bare ``node_name`` matches the node in any namespace, one with a namespace
    (``left/camera_subscriber``) only that one.
    """
    return [status for array in collector.messages[DIAGNOSTICS_TOPIC]
            for status in array.status
            if status_node(status) == node_name
            or status_node(status).endswith(f'/{node_name}')]


def latest_diagnostics(collector: Collector, node_name: str) -> dict[str, str] | None:
    """Return the key/values of the newest /diagnostics status of node ``node_name``."""
    found = statuses(collector, node_name)
    if not found:
        return None
    return {item.key: item.value for item in found[-1].values}


def diagnostics_collector(node: Node, *topics: tuple[str, Any]) -> Collector:
    """Return a Collector of /diagnostics (and ``topics``) on ``node``."""
    return Collector(node, [(DIAGNOSTICS_TOPIC, DiagnosticArray), *topics])


class Harness:
    """Nodes under test plus a test node, spun by one single-threaded executor."""

    def __init__(self, context: Any, nodes: Iterable[Node] = (),
                 name: str = 'test_harness') -> None:
        """Create the test node and an executor holding it and ``nodes``."""
        self.context = context
        self.node = rclpy.create_node(name, context=context)
        self.nodes: list[Node] = []
        self.executor = SingleThreadedExecutor(context=context)
        self.executor.add_node(self.node)
        for node in nodes:
            self.add(node)

    def add(self, node: Node) -> Node:
        """Spin ``node`` too (and destroy it on close); return it."""
        self.nodes.append(node)
        self.executor.add_node(node)
        return node

    def wait(self, predicate: Callable[[], bool], timeout_s: float = 10.0) -> bool:
        """Spin until ``predicate()`` holds or ``timeout_s`` passes; return it."""
        return wait_for(predicate, timeout_s, self.executor)

    def wait_for_subscribers(self, publisher: Any, count: int = 1,
                             timeout_s: float = 10.0) -> None:
        """Wait until both sides of ``publisher`` have matched.

        The publisher must have ``count`` subscriptions, and every subscription on its
        topic of the harness's nodes (under test and test node) must have matched every
        publisher of those nodes on it: a writer can see a reader before the reader
        sees the writer.
        """
        topic = publisher.topic_name
        nodes = [self.node, *self.nodes]
        writers = sum(1 for node in nodes for own in node.publishers
                      if own.topic_name == topic)

        def matched() -> bool:
            readers = [subscription for node in nodes for subscription in node.subscriptions
                       if subscription.topic_name == topic]
            return (publisher.get_subscription_count() >= count
                    and all(reader.get_publisher_count() >= writers for reader in readers))

        assert self.wait(matched, timeout_s), f'no matched subscriber on {topic}'

    def publish_and_wait(self, publisher: Any, msg: Any, collector: Collector, topic: str,
                         timeout_s: float = 10.0) -> bool:
        """Publish ``msg`` and spin until one more message arrives on ``topic``."""
        before = collector.count(topic)
        publisher.publish(msg)
        return self.wait(lambda: collector.count(topic) > before, timeout_s)

    def close(self) -> None:
        """Destroy every node (the context is shut down by its fixture)."""
        for node in [*self.nodes, self.node]:
            self.executor.remove_node(node)
            node.destroy_node()
        self.executor.shutdown(timeout_sec=1.0)


def classifier_inputs(harness: Harness) -> tuple[Collector, Any, Any]:
    """Return what feeds a classifier under test: a Collector of ``/diagnostics``,
    ``/classification`` and ``/detections``, and publishers of ``/frames`` and ``/fix``,
    each matched to the harness's nodes."""
    from sensor_msgs.msg import Image, NavSatFix
    from std_msgs.msg import String

    collector = diagnostics_collector(harness.node, ('/classification', String),
                                      ('/detections', String))
    frames = harness.node.create_publisher(Image, '/frames', 10)
    fixes = harness.node.create_publisher(NavSatFix, '/fix', 10)
    harness.wait_for_subscribers(frames)
    harness.wait_for_subscribers(fixes)
    return collector, frames, fixes


def classifier_node(context: Any, **overrides: Any) -> Node:
    """Return a disease_classifier node on the shipped model for a test.

    One thread, reliable frames and diagnostics every 0.2 s; ``overrides`` add to or
    replace these parameters. Skips the test when the shipped model is missing.
    """
    from helpers.shipped_model import require_shipped_model
    from plant_disease_ros.nodes.disease_classifier import DiseaseClassifierNode

    require_shipped_model()
    values = {'num_threads': 1, 'qos_reliability': 'reliable', 'diagnostics_period_s': 0.2,
              **overrides}
    return DiseaseClassifierNode(context=context, parameter_overrides=parameters(**values))


@contextmanager
def classifier_stand_in(context: Any) -> Iterator[tuple[Harness, Any]]:
    """Yield a node standing in for the classifier and its ``detections`` publisher.

    The publisher has the classifier's QoS (transient local, keep last 200).
    """
    from std_msgs.msg import String

    from plant_disease_ros.ros.qos import detections_qos

    stand_in = Harness(context, name='classifier_stand_in')
    try:
        yield stand_in, stand_in.node.create_publisher(String, 'detections', detections_qos())
    finally:
        stand_in.close()
