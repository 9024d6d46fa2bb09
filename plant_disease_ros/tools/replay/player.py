"""The replay's own ROS node: publishes the bag and /clock, subscribes the pipeline's outputs.

It runs on a private rclpy context with its executor in a thread of its own, so the
replay's main thread can pace the bag while the outputs arrive.
"""

from __future__ import annotations

from collections import Counter
import threading
import time
from typing import Any

from plant_disease_ros.tools.replay.bag import BagSelection
from plant_disease_ros.tools.replay.recorder import (
    output_topics,
    OutputRecorder,
    RECORDED_OUTPUTS,
)

# The nodes whose frame rejections (``rejected.<reason>`` on /diagnostics) the replay
# counts: a frame either refuses is never classified.
FRAME_NODES = ('camera_subscriber', 'disease_classifier')
# The nodes a started pipeline has in its namespace, each once (the single process hosts
# the first two under these names too).
PIPELINE_NODES = ('camera_subscriber', 'disease_classifier', 'disease_map_recorder')
_REJECTED_PREFIX = 'rejected.'

_MESSAGE_CLASSES = {
    'std_msgs/msg/String': ('std_msgs.msg', 'String'),
    'visualization_msgs/msg/MarkerArray': ('visualization_msgs.msg', 'MarkerArray'),
}


class ReplayPlayer:
    """The rclpy side of a replay: publishers, output subscriptions, clock, save client.

    ``namespace`` is the pipeline's, normalised ('' for the root). With ``clock`` the
    player publishes /clock (when rosgraph_msgs is installed; else ``clock_warning``
    says why not).
    """

    def __init__(self, selection: BagSelection, namespace: str, clock: bool,
                 recorder: OutputRecorder) -> None:
        from diagnostic_msgs.msg import DiagnosticArray
        import rclpy
        from rclpy.executors import SingleThreadedExecutor
        from rclpy.qos import DurabilityPolicy, HistoryPolicy, QoSProfile, ReliabilityPolicy
        from rclpy.signals import SignalHandlerOptions
        from sensor_msgs.msg import CompressedImage, Image, NavSatFix
        from std_srvs.srv import Trigger

        self.rclpy = rclpy
        self.namespace = namespace
        self.recorder = recorder
        self.clock_ns = 0
        self.context = rclpy.Context()
        # args=[]: the replay's own command line is not for rcl. No rclpy signal handler:
        # Ctrl-C raises KeyboardInterrupt here and the replay stops its subprocesses itself.
        rclpy.init(args=[], context=self.context,
                   signal_handler_options=SignalHandlerOptions.NO)
        self.node = rclpy.create_node('plant_disease_replay', context=self.context)
        reliable = QoSProfile(history=HistoryPolicy.KEEP_LAST, depth=10,
                              reliability=ReliabilityPolicy.RELIABLE,
                              durability=DurabilityPolicy.VOLATILE)
        image_type = Image if selection.transport == 'raw' else CompressedImage
        self.image_publisher = self.node.create_publisher(image_type, selection.image.name,
                                                          reliable)
        self.fix_publisher = (self.node.create_publisher(NavSatFix, selection.fix.name,
                                                         reliable)
                              if selection.fix else None)
        self.clock_publisher = None
        self.clock_type: Any = None
        self.clock_warning = ''
        if clock:
            try:
                from rosgraph_msgs.msg import Clock
            except ImportError:
                self.clock_warning = ('rosgraph_msgs is not installed: no /clock published; '
                                      'the pipeline runs on wall time')
            else:
                self.clock_type = Clock
                self.clock_publisher = self.node.create_publisher(
                    Clock, '/clock', QoSProfile(depth=1, reliability=ReliabilityPolicy.RELIABLE))
        self.output_topics = output_topics(namespace)
        self.frames_topic = f'{namespace}/frames'
        self.subscriptions = []
        for kind, topic in self.output_topics.items():
            module_name, class_name = _MESSAGE_CLASSES[RECORDED_OUTPUTS[kind]]
            module = __import__(module_name, fromlist=[class_name])
            # Markers are latched by the pipeline: a late subscriber still gets them.
            durability = (DurabilityPolicy.TRANSIENT_LOCAL if kind == 'markers'
                          else DurabilityPolicy.VOLATILE)
            qos = QoSProfile(history=HistoryPolicy.KEEP_LAST, depth=200,
                             reliability=ReliabilityPolicy.RELIABLE, durability=durability)
            self.subscriptions.append(self.node.create_subscription(
                getattr(module, class_name), topic, recorder.callback(topic, kind), qos,
                raw=True))
        # The latest /diagnostics status of each pipeline node, and how many came.
        self._diagnostics_lock = threading.Lock()
        self._frame_nodes = {f'{namespace}/{name}': name for name in FRAME_NODES}
        self._rejected: dict[str, Counter[str]] = {}
        self._statuses = 0
        # The map recorder's status (its name, not its hardware_id: that is its file):
        # ``received`` and ``records_held`` of its latest one, and how many came.
        self._recorder_status_name = (
            f'{namespace}/disease_map_recorder'.lstrip('/') + ': map recorder')
        self._recorder_counts: tuple[int, int] | None = None
        self._recorder_statuses = 0
        self.subscriptions.append(self.node.create_subscription(
            DiagnosticArray, '/diagnostics', self._on_diagnostics,
            QoSProfile(history=HistoryPolicy.KEEP_LAST, depth=50,
                       reliability=ReliabilityPolicy.RELIABLE)))
        self.trigger_type = Trigger
        self.save_service = f'{namespace}/disease_map_recorder/save'
        self.save_client = self.node.create_client(Trigger, self.save_service)
        self.executor = SingleThreadedExecutor(context=self.context)
        self.executor.add_node(self.node)
        self._spinning = True
        self._thread = threading.Thread(target=self._spin, name='replay-executor', daemon=True)
        self._thread.start()

    def _spin(self) -> None:
        while self._spinning and self.context.ok():
            try:
                self.executor.spin_once(timeout_sec=0.05)
            except Exception:  # a shutdown race ends the loop
                if not self._spinning:
                    break
                raise

    def _on_diagnostics(self, message: Any) -> None:
        """Keep the frame rejections of the pipeline's nodes (counted since their start)."""
        for status in message.status:
            if status.name == self._recorder_status_name:
                self._on_recorder_status(status)
                continue
            name = self._frame_nodes.get(status.hardware_id)
            if name is None:
                continue
            rejected: Counter[str] = Counter()
            for item in status.values:
                if item.key.startswith(_REJECTED_PREFIX):
                    try:
                        rejected[item.key[len(_REJECTED_PREFIX):]] = int(item.value)
                    except ValueError:
                        continue
            with self._diagnostics_lock:
                self._rejected[name] = rejected
                self._statuses += 1

    def _on_recorder_status(self, status: Any) -> None:
        values = {item.key: item.value for item in status.values}
        try:
            counts = int(values['received']), int(values.get('records_held', 0))
        except (KeyError, ValueError):
            return
        with self._diagnostics_lock:
            self._recorder_counts = counts
            self._recorder_statuses += 1

    def recorder_status(self) -> tuple[int, tuple[int, int] | None]:
        """Return how many map recorder statuses came, and its latest (received, held).

        ``received``: the detections the recorder took since it started; ``held``: those
        not yet in its records file.
        """
        with self._diagnostics_lock:
            return self._recorder_statuses, self._recorder_counts

    def frames_rejected(self) -> Counter[tuple[str, str]]:
        """Return the frames the pipeline's nodes rejected, by (node, reason), so far.

        As their latest /diagnostics status says: counts since each node started, up to
        one diagnostics period old.
        """
        with self._diagnostics_lock:
            return Counter({(node, reason): count for node, reasons in self._rejected.items()
                            for reason, count in reasons.items()})

    @property
    def diagnostics_statuses(self) -> int:
        """Return how many /diagnostics statuses of the pipeline's nodes came so far."""
        with self._diagnostics_lock:
            return self._statuses

    def publish_clock(self, bag_ns: int) -> None:
        """Advance the clock to ``bag_ns`` (never back) and publish it."""
        if bag_ns > self.clock_ns:
            self.clock_ns = bag_ns
        self.recorder.set_clock(self.clock_ns)
        if self.clock_publisher is not None:
            message = self.clock_type()
            message.clock.sec = self.clock_ns // 1_000_000_000
            message.clock.nanosec = self.clock_ns % 1_000_000_000
            self.clock_publisher.publish(message)

    def frames_linked(self) -> bool:
        """Return whether the ``frames`` topic has a publisher and a subscriber."""
        return (self.node.count_publishers(self.frames_topic) > 0
                and self.node.count_subscribers(self.frames_topic) > 0)

    def frames_reliability_matched(self) -> bool:
        """Return whether every ``frames`` subscriber is reliable when all publishers are."""
        from rclpy.qos import ReliabilityPolicy

        publishers = self.node.get_publishers_info_by_topic(self.frames_topic)
        subscribers = self.node.get_subscriptions_info_by_topic(self.frames_topic)
        if not publishers or not subscribers:
            return False
        if any(info.qos_profile.reliability != ReliabilityPolicy.RELIABLE
               for info in publishers):
            return True
        return all(info.qos_profile.reliability == ReliabilityPolicy.RELIABLE
                   for info in subscribers)

    def output_publishers(self) -> int:
        """Return how many publishers the classification topic has."""
        return self.node.count_publishers(self.output_topics['classification'])

    def pipeline_in_namespace(self) -> Counter[str]:
        """Return what of a pipeline the graph shows in the namespace, each with its count.

        Keys name it for the user: 'node NAME' for each pipeline node, 'publisher on
        TOPIC' for the classification topic, 'service NAME' for the recorder's save, and
        'another publisher on TOPIC' for a publisher other than this player's on the
        bag's image or fix topic or on /clock. Absent keys count 0. One pipeline has each
        of the first three once.
        """
        namespace = self.namespace or '/'
        found: Counter[str] = Counter(
            f'node {name}' for name, node_namespace in self.node.get_node_names_and_namespaces()
            if node_namespace == namespace and name in PIPELINE_NODES)
        found[f'publisher on {self.output_topics["classification"]}'] = self.output_publishers()
        found[f'service {self.save_service}'] = self.node.count_services(self.save_service)
        # The bag's topics and /clock are played under their own names, which no namespace
        # separates: another publisher on one (another replay, a camera or GPS driver, a
        # simulator's clock) would feed this replay's nodes too.
        for topic, own in ((self.image_publisher.topic_name, self.image_publisher),
                           (self.fix_publisher.topic_name if self.fix_publisher else None,
                            self.fix_publisher),
                           ('/clock', self.clock_publisher)):
            if topic is not None:
                found[f'another publisher on {topic}'] = (
                    self.node.count_publishers(topic) - (own is not None))
        return +found

    def declared_parameters(self, node_name: str, timeout_s: float = 5.0
                            ) -> dict[str, tuple[int, Any]] | None:
        """Return the parameters node ``node_name`` of the namespace declares, with values.

        Name -> (rcl_interfaces ParameterType, value), from its ``list_parameters`` and
        ``get_parameters`` services; None when they do not answer within ``timeout_s``.
        """
        from rcl_interfaces.srv import GetParameters, ListParameters
        from rclpy.parameter import parameter_value_to_python

        base = f'{self.namespace}/{node_name}'
        deadline = time.monotonic() + timeout_s
        listed = self._call(ListParameters, f'{base}/list_parameters',
                            ListParameters.Request(), deadline)
        if listed is None:
            return None
        names = list(listed.result.names)
        got = self._call(GetParameters, f'{base}/get_parameters',
                         GetParameters.Request(names=names), deadline)
        if got is None or len(got.values) != len(names):
            return None
        return {name: (value.type, parameter_value_to_python(value))
                for name, value in zip(names, got.values, strict=True)}

    def _call(self, service_type: Any, name: str, request: Any, deadline: float) -> Any:
        """Call service ``name`` and return its response; None after ``deadline``."""
        client = self.node.create_client(service_type, name)
        try:
            if not client.wait_for_service(timeout_sec=max(deadline - time.monotonic(), 0.0)):
                return None
            future = client.call_async(request)
            while not future.done() and time.monotonic() < deadline:
                time.sleep(0.01)
            return future.result() if future.done() else None
        finally:
            self.node.destroy_client(client)

    def save(self, timeout_s: float = 15.0) -> tuple[bool, str]:
        """Call the recorder's ~/save; return (success, message)."""
        if not self.save_client.wait_for_service(timeout_sec=min(timeout_s, 5.0)):
            return False, f'{self.save_service} not available'
        future = self.save_client.call_async(self.trigger_type.Request())
        deadline = time.monotonic() + timeout_s
        while not future.done() and time.monotonic() < deadline:
            time.sleep(0.02)
        if not future.done():
            return False, f'{self.save_service} did not answer in {timeout_s:g} s'
        response = future.result()
        return bool(response.success), str(response.message)

    def close(self) -> None:
        """Stop the executor thread and shut the context down."""
        self._spinning = False
        self._thread.join(timeout=2.0)
        try:
            self.executor.shutdown(timeout_sec=1.0)
            self.node.destroy_node()
        finally:
            self.rclpy.try_shutdown(context=self.context)
