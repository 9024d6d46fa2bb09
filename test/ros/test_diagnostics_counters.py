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
    'explanations.map', 'explanations.flat', 'explanations.gate', 'explanations.failed',
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


def test_rejections_taken_back_leave_later_ones_visible(ros_context) -> None:
    """Two rejections shown, taken back (an undone time jump restored those fixes), then a
    new one: the status shows the new one, and the totals are right."""
    from rclpy.node import Node

    from plant_disease_ros.ros.diagnostics import NodeDiagnostics

    node = Node('uncount_test', context=ros_context)
    try:
        diagnostics = NodeDiagnostics(node, period_s=3600.0)
        diagnostics.count_rejected('previous_timeline', category='fix')
        diagnostics.count_rejected('previous_timeline', category='fix')
        diagnostics.publish()
        diagnostics.uncount_rejected('previous_timeline', 'fix', 2)
        assert diagnostics.rejected_total('fix') == 0
        assert diagnostics.status().message == 'ok'
        diagnostics.count_rejected('previous_timeline', category='fix')
        status = diagnostics.status()
        assert 'rejected in the last period: fix previous_timeline: 1' in status.message
        values = {item.key: item.value for item in status.values}
        assert values['fix_rejected.previous_timeline'] == '1'
        diagnostics.destroy()
    finally:
        node.destroy_node()
