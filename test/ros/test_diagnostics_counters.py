"""The classifier publishes every outcome and geotag counter from its first status.

A key that appears only at its first event cannot be told from one that is not counted at
all: an operator watching ``frames.unknown`` must read 0, not nothing.
"""

from __future__ import annotations

from helpers.ros import classifier_node, diagnostics_collector, latest_diagnostics
import pytest

rclpy = pytest.importorskip('rclpy')

COUNTERS = {
    'frames.leaf', 'frames.unknown', 'frames.no_leaf', 'frames.no_colour',
    'frames.unstamped', 'detections.interpolated', 'detections.nearest',
    'detections.stale', 'detections.none', 'time_jumps_back', 'stamp_glitches',
}


def test_the_classifier_counts_from_zero_before_any_frame(harness) -> None:
    """No frame has come: every counter is there, at 0."""
    classifier = harness.add(classifier_node(harness.context))
    collector = diagnostics_collector(harness.node)
    assert harness.wait(lambda: latest_diagnostics(collector, 'disease_classifier')
                        is not None)
    values = latest_diagnostics(collector, 'disease_classifier')
    assert {key: values.get(key) for key in COUNTERS} == dict.fromkeys(COUNTERS, '0')
    assert classifier.outcome_counts == {'leaf': 0, 'unknown': 0, 'no_leaf': 0}
