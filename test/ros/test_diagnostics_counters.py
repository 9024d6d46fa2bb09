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


def test_node_sets_in_two_namespaces_publish_statuses_of_their_own(harness, tmp_path) -> None:
    """Two cameras' node sets (/left, /right) and one in the root namespace: each node's
    status name carries its namespace, so a monitor keeps them apart; the root names stay
    ``<node>: <what>``."""
    from helpers.ros import parameters, status_node, statuses
    from helpers.shipped_model import require_shipped_model

    from plant_disease_ros.nodes.camera_subscriber import CameraSubscriberNode
    from plant_disease_ros.nodes.disease_classifier import DiseaseClassifierNode
    from plant_disease_ros.nodes.disease_map_recorder import DiseaseMapRecorder

    require_shipped_model()
    period = parameters(diagnostics_period_s=0.2)
    for namespace in ('/left', '/right', '/'):
        harness.add(CameraSubscriberNode(context=harness.context, namespace=namespace,
                                         parameter_overrides=period))
        harness.add(DiseaseClassifierNode(
            context=harness.context, namespace=namespace,
            parameter_overrides=parameters(num_threads=1, diagnostics_period_s=0.2)))
        harness.add(DiseaseMapRecorder(
            context=harness.context, namespace=namespace,
            parameter_overrides=parameters(map_dir=str(tmp_path / 'maps'))))
    collector = diagnostics_collector(harness.node)
    expected = {f'{prefix}{name}' for prefix in ('left/', 'right/', '')
                for name in ('camera_subscriber: frames', 'disease_classifier: frames',
                             'disease_map_recorder: map recorder')}

    def names() -> set[str]:
        return {status.name for array in collector.messages['/diagnostics']
                for status in array.status}

    assert harness.wait(lambda: expected <= names(), timeout_s=30.0), names()
    assert names() == expected
    # Each recorder's status is its own: the file of its namespace's run.
    files = {status_node(status): dict((item.key, item.value) for item in status.values)
             ['file'] for status in statuses(collector, 'disease_map_recorder')}
    assert len(files) == 3 and len(set(files.values())) == 3, files
    assert files['left/disease_map_recorder'].endswith('_left.geojsons')
    assert [status.name for status in statuses(collector, 'left/camera_subscriber')][:1] \
        == ['left/camera_subscriber: frames']


def test_the_readme_names_the_statuses_of_the_launched_nodes(harness, tmp_path) -> None:
    """The README's example status names are those of field.launch.py's default namespace
    and layout (the one-process pipeline and the recorder), as the nodes name them."""
    import ast
    from pathlib import Path

    from helpers.ros import parameters
    from helpers.shipped_model import require_shipped_model

    from plant_disease_ros.nodes.disease_map_recorder import DiseaseMapRecorder
    from plant_disease_ros.nodes.pipeline import create_pipeline

    require_shipped_model()
    root = Path(__file__).resolve().parents[2]
    tree = ast.parse((root / 'launch' / 'field.launch.py').read_text(encoding='utf-8'))
    [namespace] = [keyword.value.value for call in ast.walk(tree)
                   if isinstance(call, ast.Call) and getattr(call.func, 'id', '')
                   == 'DeclareLaunchArgument' and call.args
                   and getattr(call.args[0], 'value', None) == 'namespace'
                   for keyword in call.keywords if keyword.arg == 'default_value']
    nodes = [*create_pipeline(context=harness.context, namespace=namespace),
             DiseaseMapRecorder(context=harness.context, namespace=namespace,
                                parameter_overrides=parameters(map_dir=str(tmp_path / 'maps')))]
    for node in nodes:
        harness.add(node)
    names = [node.diagnostics.name for node in nodes]
    assert names == [f'{namespace}/camera_subscriber: frames',
                     f'{namespace}/disease_classifier: frames',
                     f'{namespace}/disease_map_recorder: map recorder']
    readme = ' '.join((root / 'README.md').read_text(encoding='utf-8').split())
    for name in names:
        assert f'`{name}`' in readme, name
