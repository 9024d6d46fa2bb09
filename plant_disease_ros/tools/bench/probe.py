"""The probe: an rclpy node in the bench process that times every ``classification``.

Each frame's header stamp is its publish wall-clock time and its ``frame_id`` names the
phase, so a receipt is attributed and timed without any other bookkeeping.
"""

from __future__ import annotations

from collections import defaultdict
import json
import threading
import time
from typing import Any

# (receipt wall-clock ns, image stamp ns, DDS reception ns or 0)
Receipt = tuple[int, int, int]


class Probe:
    """Subscribe to ``classification`` (and on demand ``explanation``) in its own context."""

    def __init__(self) -> None:
        """Start the node and spin it in a background thread."""
        import rclpy
        from rclpy.executors import SingleThreadedExecutor
        from rclpy.node import Node
        from rclpy.qos import QoSProfile, ReliabilityPolicy
        from std_msgs.msg import String

        self._rclpy = rclpy
        self.context = rclpy.Context()
        rclpy.init(context=self.context)
        self.node = Node('bench_probe', context=self.context)
        self._lock = threading.Lock()
        self.receipts: dict[str, list[Receipt]] = defaultdict(list)
        self.explanations = 0
        self.malformed = 0
        self._explanation_subscription: Any = None
        self.node.create_subscription(
            String, 'classification', self._on_classification,
            QoSProfile(depth=100, reliability=ReliabilityPolicy.RELIABLE))
        self.executor = SingleThreadedExecutor(context=self.context)
        self.executor.add_node(self.node)
        self._thread = threading.Thread(target=self._spin, name='bench_probe', daemon=True)
        self._thread.start()

    def _spin(self) -> None:
        while self.context.ok():
            try:
                self.executor.spin_once(timeout_sec=0.1)
            except Exception:  # noqa: BLE001 - shutdown races end the loop
                if not self.context.ok():
                    return
                raise

    def _on_classification(self, msg: Any, info: Any) -> None:
        now_ns = time.time_ns()
        # When Fast DDS took the sample off the wire in this process: the rest of the
        # latency is this process's own executor getting to the callback.
        dds_ns = int(info.get('received_timestamp') or 0)
        try:
            data = json.loads(msg.data)
            stamp_ns = int(data['stamp']['sec']) * 1_000_000_000 + int(data['stamp']['nanosec'])
            frame_id = str(data.get('frame_id', ''))
        except (ValueError, KeyError, TypeError):
            self.malformed += 1
            return
        with self._lock:
            self.receipts[frame_id].append((now_ns, stamp_ns, dds_ns))

    def _on_explanation(self, _msg: Any) -> None:
        self.explanations += 1

    def received(self, frame_id: str) -> list[Receipt]:
        """Return the receipts of frames with ``frame_id``: (callback, stamp, DDS) ns."""
        with self._lock:
            return list(self.receipts.get(frame_id, ()))

    def classification_publishers(self) -> int:
        """Return the number of ``classification`` publishers seen."""
        return self.node.count_publishers('/classification')

    def watch_explanations(self, on: bool) -> None:
        """Subscribe to ``explanation`` (the classifier computes it only when watched)."""
        from rclpy.qos import QoSProfile, ReliabilityPolicy
        from sensor_msgs.msg import Image

        if on and self._explanation_subscription is None:
            self._explanation_subscription = self.node.create_subscription(
                Image, 'explanation', self._on_explanation,
                QoSProfile(depth=10, reliability=ReliabilityPolicy.RELIABLE))
        elif not on and self._explanation_subscription is not None:
            self.node.destroy_subscription(self._explanation_subscription)
            self._explanation_subscription = None

    def close(self) -> None:
        """Stop spinning and shut the context down."""
        self._rclpy.try_shutdown(context=self.context)
        self._thread.join(timeout=2.0)
        self.executor.shutdown(timeout_sec=1.0)
        self.node.destroy_node()
