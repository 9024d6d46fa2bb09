"""Typed outputs beside the JSON topics: vision_msgs and foxglove_msgs messages.

The JSON topics (``classification``, ``detections``) stay; beside them the nodes publish
what ROS vision tools and Foxglove read natively:

- ``results`` (vision_msgs/Classification): the image's header, one ObjectHypothesis per
  top-k category, ``class_id`` = the label;
- ``label_info`` (vision_msgs/LabelInfo, transient local): the class map (index -> label)
  and ``score_threshold``, republished when the threshold changes;
- ``detections/geojson`` (foxglove_msgs/GeoJSON): the ``detections`` Feature, with the
  ``properties.name`` Foxglove's Map panel shows;
- ``map/geojson`` (foxglove_msgs/GeoJSON, transient local), from the recorder: the disease
  grid as a FeatureCollection of cell polygons, republished when it changes.

The interface packages are imported when available (on a robot: rosdep keys
``vision_msgs`` and ``foxglove_msgs``); without one its outputs are off, the JSON topics
go on, and the node logs once which typed outputs it has.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence
import importlib
import math
import time
from types import ModuleType
from typing import Any

from rclpy.node import Node
from std_msgs.msg import Header

from plant_disease_ros.core.classifier import Classification
from plant_disease_ros.core.labels import display_name
from plant_disease_ros.core.map_file import compact_json, feature_collection
from plant_disease_ros.core.outcome import FrameOutcome, NO_LEAF_LABEL
from plant_disease_ros.ros.conversions import copy_header
from plant_disease_ros.ros.qos import latched_qos, results_qos

RESULTS_TOPIC = 'results'
LABEL_INFO_TOPIC = 'label_info'
DETECTIONS_GEOJSON_TOPIC = 'detections/geojson'
MAP_GEOJSON_TOPIC = 'map/geojson'


def import_messages(package: str) -> tuple[ModuleType | None, str]:
    """Return ``<package>.msg`` and '', or ``None`` and why it cannot be imported."""
    try:
        return importlib.import_module(f'{package}.msg'), ''
    except ImportError as error:
        return None, f'{package} is not installed ({error})'


def classification_to_vision(classification: Classification, header: Header,
                             vision_msgs: ModuleType,
                             outcome: FrameOutcome | None = None) -> Any:
    """Return the vision_msgs/Classification of one frame: header copy, top-k hypotheses.

    A frame the vegetation gate rejected (``outcome`` no_leaf for a gate reason) gets one
    hypothesis, ``no_leaf`` with score 1.0 (its ``confidence`` on every output, see
    :meth:`FrameOutcome.confidence`): the gate is a rule, and the model's classes of a
    frame without vegetation would read as an answer. When the model itself says
    ``no_leaf``, its own top-k stand (``no_leaf`` first).
    """
    message = vision_msgs.Classification()
    message.header = copy_header(header)
    if outcome is not None and outcome.by_gate:
        message.results = [vision_msgs.ObjectHypothesis(
            class_id=NO_LEAF_LABEL, score=outcome.confidence(classification))]
        return message
    message.results = [vision_msgs.ObjectHypothesis(class_id=str(category.label),
                                                    score=float(category.score))
                       for category in classification.categories]
    return message


def label_info_message(labels: Sequence[str], score_threshold: float, header: Header,
                       vision_msgs: ModuleType) -> Any:
    """Return the vision_msgs/LabelInfo: class map (index -> label) and the threshold."""
    message = vision_msgs.LabelInfo()
    message.header = copy_header(header)
    message.class_map = [vision_msgs.VisionClass(class_id=index, class_name=str(label))
                         for index, label in enumerate(labels)]
    message.threshold = float(score_threshold)
    return message


def named_feature(feature: dict) -> dict:
    """Return ``feature`` with ``properties.name`` ('Tomato: Early blight 0.93') when unset."""
    properties = dict(feature.get('properties') or {})
    if not properties.get('name'):
        label = properties.get('label')
        confidence = properties.get('confidence')
        name = display_name(label) if isinstance(label, str) and label else 'detection'
        if isinstance(confidence, int | float):
            name = f'{name} {confidence:.2f}'
        properties['name'] = name
    return {**feature, 'properties': properties}


def geojson_message(value: dict, foxglove_msgs: ModuleType) -> Any:
    """Return a foxglove_msgs/GeoJSON holding ``value`` (a Feature or FeatureCollection)."""
    return foxglove_msgs.GeoJSON(geojson=compact_json(value))


def collection_message(features: Iterable[dict] | bytes, foxglove_msgs: ModuleType) -> Any:
    """Return a foxglove_msgs/GeoJSON FeatureCollection of ``features``.

    ``features``: dicts, or the collection already encoded (``core.map_gis``'s
    ``aggregator_geojson``: compact, ASCII bytes), which goes into the message as it is.
    """
    if isinstance(features, bytes):
        return foxglove_msgs.GeoJSON(geojson=features.decode('ascii'))
    return geojson_message(feature_collection(features), foxglove_msgs)


def describe(available: Sequence[str], missing: Sequence[str]) -> str:
    """Return the one log line naming the typed outputs a node has and why others are off."""
    text = 'typed outputs: ' + (', '.join(available) if available else 'none')
    if missing:
        text += '; off: ' + '; '.join(missing)
    return text


class ClassifierTypedOutputs:
    """The classifier's typed publishers: ``results``, ``label_info``, ``detections/geojson``."""

    def __init__(self, node: Node, labels: Sequence[str], score_threshold: float) -> None:
        """Create the publishers whose packages import, publish LabelInfo, log what is on."""
        self._node = node
        self._labels = list(labels)
        self.vision_msgs, vision_missing = import_messages('vision_msgs')
        self.foxglove_msgs, foxglove_missing = import_messages('foxglove_msgs')
        self.results_publisher = self.label_info_publisher = None
        self.geojson_publisher = None
        self._label_info_threshold = score_threshold
        self._label_info_unstamped = False
        available: list[str] = []
        if self.vision_msgs is not None:
            self.results_publisher = node.create_publisher(
                self.vision_msgs.Classification, RESULTS_TOPIC, results_qos())
            self.label_info_publisher = node.create_publisher(
                self.vision_msgs.LabelInfo, LABEL_INFO_TOPIC, latched_qos())
            available += [f'{RESULTS_TOPIC} (vision_msgs/Classification)',
                          f'{LABEL_INFO_TOPIC} (vision_msgs/LabelInfo)']
        if self.foxglove_msgs is not None:
            self.geojson_publisher = node.create_publisher(
                self.foxglove_msgs.GeoJSON, DETECTIONS_GEOJSON_TOPIC, results_qos())
            available.append(f'{DETECTIONS_GEOJSON_TOPIC} (foxglove_msgs/GeoJSON)')
        self.available = available
        node.get_logger().info(describe(
            available, [reason for reason in (vision_missing, foxglove_missing) if reason]))
        self.publish_label_info(score_threshold)

    def publish_label_info(self, score_threshold: float) -> None:
        """Publish the class map with ``score_threshold`` (at start and when it changes).

        Under sim time before the first ``/clock`` the node's time is 0, which readers take
        for "unstamped": such a class map is published again, stamped, with the first
        classified frame once the clock runs.
        """
        if self.label_info_publisher is None:
            return
        stamp = self._node.get_clock().now().to_msg()
        self._label_info_threshold = score_threshold
        self._label_info_unstamped = stamp.sec == 0 and stamp.nanosec == 0
        self.label_info_publisher.publish(label_info_message(
            self._labels, score_threshold, Header(stamp=stamp), self.vision_msgs))

    def publish_classification(self, classification: Classification, header: Header,
                               outcome: FrameOutcome | None = None) -> None:
        """Publish ``results`` for one classified frame (see :func:`classification_to_vision`)."""
        if self._label_info_unstamped and self._node.get_clock().now().nanoseconds > 0:
            self.publish_label_info(self._label_info_threshold)
        if self.results_publisher is not None:
            self.results_publisher.publish(
                classification_to_vision(classification, header, self.vision_msgs, outcome))

    def publish_detection(self, feature: dict) -> None:
        """Publish one detection Feature, named, on ``detections/geojson``."""
        if self.geojson_publisher is not None:
            self.geojson_publisher.publish(
                geojson_message(named_feature(feature), self.foxglove_msgs))


# The whole map's GeoJSON is built at most this share of the time: a day's map of 20,000
# cells took a quarter of a second to encode on a laptop core (seconds on a Pi), which
# every marker period would make a core's worth of work. Joined from the cells' cached
# texts it takes 0.05 s here with its message (benchmarks/results/2026-12-07-geojson-cache.md).
MAP_GEOJSON_MAX_SHARE = 0.1


class MapTypedOutput:
    """The recorder's latched ``map/geojson``: the grid cells, republished when changed.

    Only while something subscribes (a late subscriber gets the map within a period of
    joining), and never more than :data:`MAP_GEOJSON_MAX_SHARE` of the time: after a
    publication that took ``t`` seconds, the next waits ``t / share``.
    """

    def __init__(self, node: Node) -> None:
        """Create the publisher if foxglove_msgs imports; log once whether it is on."""
        self.foxglove_msgs, missing = import_messages('foxglove_msgs')
        self.publisher = None
        self.changed = True
        self.last_cost_s = 0.0
        self._next_s = -math.inf
        available = []
        if self.foxglove_msgs is not None:
            self.publisher = node.create_publisher(
                self.foxglove_msgs.GeoJSON, MAP_GEOJSON_TOPIC, latched_qos())
            available.append(f'{MAP_GEOJSON_TOPIC} (foxglove_msgs/GeoJSON)')
        node.get_logger().info(describe(available, [missing] if missing else []))

    def publish_if_changed(self, features: Callable[[], Iterable[dict] | bytes]) -> bool:
        """Publish the FeatureCollection ``features()`` if the map changed since last time,
        something subscribes and the time share allows it; return whether it did.

        ``features()``: the cells' Features, or the collection's text (see
        :func:`collection_message`; the recorder's cells are kept encoded)."""
        if self.publisher is None or not self.changed:
            return False
        now = time.monotonic()
        if now < self._next_s or self.publisher.get_subscription_count() == 0:
            return False
        self.publisher.publish(collection_message(features(), self.foxglove_msgs))
        self.last_cost_s = time.monotonic() - now
        self._next_s = now + self.last_cost_s / MAP_GEOJSON_MAX_SHARE
        self.changed = False
        return True
