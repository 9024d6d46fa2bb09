"""Record the pipeline's outputs: write them to the output bag as received, and count them.

The detections received are kept for the map in a temporary file (``received``), not in
memory: what grows here is the label of each distinct frame stamp classified and each
motion blur estimate (what the summary counts), nothing per detection.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
import json
import threading
import time
from typing import Any

from plant_disease_ros.core.detections import UNKNOWN_LABEL
from plant_disease_ros.core.outcome import NO_LEAF_LABEL
from plant_disease_ros.tools.replay.options import one_line
from plant_disease_ros.tools.replay.received import ReceivedDetections

# Output topic (relative to the pipeline's namespace) → message type.
RECORDED_OUTPUTS = {
    'label': 'std_msgs/msg/String',
    'classification': 'std_msgs/msg/String',
    'detections': 'std_msgs/msg/String',
    'markers': 'visualization_msgs/msg/MarkerArray',
}


def output_topics(namespace: str) -> dict[str, str]:
    """Return ``{kind: topic}`` of the recorded outputs of a pipeline in ``namespace``."""
    return {kind: f'{namespace}/{kind}' for kind in RECORDED_OUTPUTS}


@dataclass
class OutputCounts:
    """What the recorder has counted so far."""

    labelled: int = 0
    unknown: int = 0
    duplicates: int = 0
    detections: Counter[str] = field(default_factory=Counter)
    fix_status: Counter[str] = field(default_factory=Counter)
    no_leaf: int = 0
    # The classifier's motion blur estimates (percent of the frame side), in stamp order.
    motion_blur: list[float] = field(default_factory=list)


class OutputRecorder:
    """Receive the pipeline's outputs (raw CDR), write them to the output bag, count them.

    ``writer`` is an open rosbags Writer; ``topics`` maps each output topic to its type.
    Messages are written with the replay clock's time, so the output bag lines up with
    the input bag; never before ``start_ns`` (the input bag's start): the clock runs up to
    it while the pipeline starts, and a message then (the latched markers) would start
    the output bag that much earlier. Callbacks come from the player's executor thread.
    Each detection is handed to ``received`` (kept in its file for the map), or only
    counted without one.
    """

    def __init__(self, writer: Any, typestore: Any, topics: Mapping[str, str],
                 received: ReceivedDetections | None = None, start_ns: int = 0) -> None:
        self.writer = writer
        self.received = received
        self.typestore = typestore
        self._lock = threading.Condition()
        self._start_ns = start_ns
        self._clock_ns = start_ns
        self._connections = {
            topic: writer.add_connection(topic, msgtype, typestore=typestore)
            for topic, msgtype in topics.items()}
        self._classified: dict[tuple[int, int], str] = {}
        self._classifications = 0  # every classification message, repeated stamps too
        # Of them, those of a leaf (neither no_leaf nor unknown): each gives one detection,
        # which the classifier may hold a while (waiting for a fix, a stamp far ahead).
        self._leaf_classifications = 0
        self._detection_messages = 0
        self.received_messages = 0   # every output message handed to the bag, any topic
        # Of them, the results of frames (not the markers a recorder latches at its start):
        # a run refused before playing has none, and its bag is empty of what it is for.
        self.result_messages = 0
        self._blur: dict[tuple[int, int], float] = {}
        self._counts = OutputCounts()
        self._last_output_s = time.monotonic()
        self.write_error = ''

    def callback(self, topic: str, kind: str) -> Callable[[bytes], None]:
        """Return the subscription callback of an output topic."""
        def receive(data: bytes) -> None:
            self.receive(topic, kind, data)
        return receive

    def set_clock(self, clock_ns: int) -> None:
        """Set the log time of the messages received from now on."""
        with self._lock:
            self._clock_ns = max(clock_ns, self._start_ns)

    def receive(self, topic: str, kind: str, data: bytes) -> None:
        """Write one message to the bag and update the counts."""
        with self._lock:
            self.received_messages += 1
            try:
                self.writer.write(self._connections[topic], self._clock_ns, data)
            except Exception as error:  # reported once, at the end
                self.write_error = self.write_error or one_line(error)
            if kind != 'markers':
                self._last_output_s = time.monotonic()
                self.result_messages += 1
            if kind in ('classification', 'detections'):
                text = self.typestore.deserialize_cdr(data, 'std_msgs/msg/String').data
                self._count(kind, text)
            self._lock.notify_all()

    def _count(self, kind: str, text: str) -> None:
        try:
            value = json.loads(text)
        except ValueError:
            return
        counts = self._counts
        if kind == 'classification':
            self._classifications += 1
            stamp = value.get('stamp') or {}
            key = (int(stamp.get('sec', 0)), int(stamp.get('nanosec', 0)))
            if key in self._classified:
                counts.duplicates += 1
            self._classified[key] = str(value.get('label', ''))
            if self._classified[key] not in (UNKNOWN_LABEL, NO_LEAF_LABEL, ''):
                self._leaf_classifications += 1
            blur = value.get('motion_blur')
            if isinstance(blur, dict) and isinstance(blur.get('percent'), (int, float)):
                self._blur[key] = float(blur['percent'])
        else:
            self._detection_messages += 1
            properties = value.get('properties') or {}
            counts.detections[str(properties.get('label', ''))] += 1
            counts.fix_status[str(properties.get('fix_status', ''))] += 1
            if self.received is not None:
                self.received.add(value)

    @property
    def classified_count(self) -> int:
        """Return how many distinct frames have been classified."""
        with self._lock:
            return len(self._classified)

    @property
    def last_output_s(self) -> float:
        """Return the monotonic time of the last output other than markers."""
        with self._lock:
            return self._last_output_s

    def wait_for(self, key: tuple[int, int], timeout_s: float) -> bool:
        """Wait until the classification of the frame stamped ``key`` has come."""
        deadline = time.monotonic() + timeout_s
        with self._lock:
            while key not in self._classified:
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    return False
                self._lock.wait(min(remaining, 0.05))
        return True

    @property
    def classifications(self) -> int:
        """Return how many classification messages came (a stamp seen twice counts twice)."""
        with self._lock:
            return self._classifications

    def wait_for_classifications(self, count: int, timeout_s: float) -> bool:
        """Wait until ``count`` classification messages have come in all."""
        deadline = time.monotonic() + timeout_s
        with self._lock:
            while self._classifications < count:
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    return False
                self._lock.wait(min(remaining, 0.05))
        return True

    def detections_due(self) -> tuple[int, int]:
        """Return (detections received, detections due): one due per leaf classification."""
        with self._lock:
            return self._detection_messages, self._leaf_classifications

    def counts(self) -> OutputCounts:
        """Return a copy of the counts."""
        with self._lock:
            counts = self._counts
            labels = Counter(self._classified.values())
            return OutputCounts(len(self._classified), labels[UNKNOWN_LABEL], counts.duplicates,
                                Counter(counts.detections), Counter(counts.fix_status),
                                no_leaf=labels[NO_LEAF_LABEL],
                                motion_blur=[self._blur[key] for key in sorted(self._blur)])
