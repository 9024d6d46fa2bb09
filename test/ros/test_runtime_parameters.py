"""Runtime parameter changes that must reach what is already under way (real rclpy nodes).

A lower fix_wait_s reaches the detections already waiting for a fix; a new
input_timeout_s does not restart the silence counted since the start; the pipeline's
classifier refuses input_timeout_s (its camera watches the images); a top_k of 3 from
field.yaml starts a model of 2 classes; the recorder takes tf2 frame ids only and keeps
its marker timer when marker_period_s is set to the value it has.
"""

from __future__ import annotations

from pathlib import Path

from helpers.gps import make_fix
from helpers.images import leaf_rgb, make_image
from helpers.ros import Harness, parameters
from helpers.shipped_model import require_shipped_model
import numpy as np
import pytest

rclpy = pytest.importorskip('rclpy')

from plant_disease_ros.nodes.camera_subscriber import CameraSubscriberNode  # noqa: E402
from plant_disease_ros.nodes.disease_classifier import DiseaseClassifierNode  # noqa: E402
from plant_disease_ros.nodes.disease_map_recorder import DiseaseMapRecorder  # noqa: E402
from plant_disease_ros.nodes.pipeline import create_pipeline  # noqa: E402

FRAME = np.full((48, 64, 3), (60, 140, 50), dtype=np.uint8)


def test_a_lower_fix_wait_reaches_the_detections_already_waiting(harness: Harness) -> None:
    require_shipped_model()
    classifier = harness.add(DiseaseClassifierNode(
        context=harness.context, parameter_overrides=parameters(
            score_threshold=0.0, fix_wait_s=10.0)))
    # A fix before the frame: its detection waits for one after it, up to 10 s.
    classifier._on_fix(make_fix(52.0, 5.0, 10.0, stamp_s=9.0))
    leaf = leaf_rgb(96, 96)
    classifier.process_frame(leaf, make_image(leaf, 'rgb8', stamp_s=10.0).header)
    assert len(classifier.fix_wait) == 1    # a detection (no gate, no threshold), waiting
    assert classifier.set_parameters(parameters(fix_wait_s=0.0))[0].successful
    assert len(classifier.fix_wait) == 0
    assert classifier.detection_counts['nearest'] == 1


def test_a_new_input_timeout_keeps_the_silence_counted_since_the_start(
        harness: Harness) -> None:
    camera = harness.add(CameraSubscriberNode(context=harness.context,
                                              parameter_overrides=parameters(
                                                  input_timeout_s=0.3)))
    assert harness.wait(lambda: camera.diagnostics.input_silence() != '')
    assert camera.set_parameters(parameters(input_timeout_s=0.2))[0].successful
    assert 'since the start' in camera.diagnostics.input_silence()


def test_the_pipelines_classifier_refuses_input_timeout_and_says_where_it_goes(
        ros_context) -> None:
    require_shipped_model()
    camera, classifier = create_pipeline(context=ros_context,
                                         parameter_overrides=parameters(input_timeout_s=5.0))
    try:
        result = classifier.set_parameters(parameters(input_timeout_s=1.0))[0]
        assert not result.successful and 'camera_subscriber' in result.reason
        assert camera.set_parameters(parameters(input_timeout_s=1.0))[0].successful
        # The other parameters still change.
        assert classifier.set_parameters(parameters(score_threshold=0.7))[0].successful
    finally:
        camera.destroy_node()
        classifier.destroy_node()


def test_top_k_3_starts_a_model_of_two_classes(harness: Harness, tmp_path: Path) -> None:
    pytest.importorskip('tensorflow')
    from helpers.tiny_model import build_tiny_model, write_labels

    model = build_tiny_model(tmp_path / 'two.tflite', num_classes=2)
    labels = write_labels(tmp_path / 'labels.txt', 2)
    classifier = harness.add(DiseaseClassifierNode(
        context=harness.context, parameter_overrides=parameters(
            model_path=str(model), labels_path=str(labels), top_k=3)))
    assert classifier.top_k == 2
    result = classifier.process_frame(FRAME, make_image(FRAME, 'rgb8', stamp_s=1.0).header)
    assert result is not None and len(result.categories) == 2


def test_the_recorder_takes_tf2_frame_ids_and_keeps_its_timer_for_the_same_period(
        harness: Harness, tmp_path: Path) -> None:
    recorder = harness.add(DiseaseMapRecorder(context=harness.context,
                                              parameter_overrides=parameters(
                                                  map_dir=str(tmp_path),
                                                  marker_period_s=0.5)))
    for frame in (' map', 'map frame', 'map/', 'a//b', '\tmap', '/map', ''):
        result = recorder.set_parameters(parameters(map_frame=frame))[0]
        assert not result.successful and 'tf2 frame id' in result.reason, frame
    for frame in ('odom', 'base_link', 'robot_1/map', 'gps-antenna', 'utm.32N'):
        assert recorder.set_parameters(parameters(map_frame=frame))[0].successful, frame
    timer = recorder._marker_timer
    assert recorder.set_parameters(parameters(marker_period_s=0.5))[0].successful
    assert recorder._marker_timer is timer
    # A period rclpy truncates to whole nanoseconds (4.1 s: 4099999999 ns) is the same too.
    assert recorder.set_parameters(parameters(marker_period_s=4.1))[0].successful
    timer = recorder._marker_timer
    assert recorder.set_parameters(parameters(marker_period_s=4.1))[0].successful
    assert recorder._marker_timer is timer
    assert recorder.set_parameters(parameters(marker_period_s=0.25))[0].successful
    assert recorder._marker_timer is not timer
    assert recorder._marker_timer.timer_period_ns == 250_000_000


def test_a_refused_start_value_names_the_parameter_first_not_as_a_stray_word() -> None:
    """rclpy appends ': <name>' to its message; the node's one-line error puts it first."""
    from rclpy.exceptions import InvalidParameterValueException

    from plant_disease_ros.ros.startup import parameter_error_text

    error = InvalidParameterValueException('crops', 'Tomato', "unknown crop(s) 'Tomato'")
    assert str(error).endswith(': crops')
    assert parameter_error_text(error) == (
        "crops: Invalid parameter value (Tomato) for parameter. Reason: unknown crop(s) "
        "'Tomato'")
    assert parameter_error_text(ValueError('map_dir: not writable')) == 'map_dir: not writable'


def test_a_whole_number_for_a_float_at_start_is_refused_with_the_fix(ros_context) -> None:
    """`-p max_rate_hz:=3` or `3` in a parameters file: rclpy refuses the INTEGER at start;
    the one-line error names the parameter and says to write 3.0."""
    from rclpy.exceptions import InvalidParameterTypeException

    from plant_disease_ros.nodes.camera_subscriber import CameraSubscriberNode
    from plant_disease_ros.ros.startup import parameter_error_text

    with pytest.raises(InvalidParameterTypeException) as caught:
        CameraSubscriberNode(context=ros_context, parameter_overrides=parameters(max_rate_hz=3))
    text = parameter_error_text(caught.value)
    assert text.startswith('max_rate_hz: ')
    assert text.endswith('(write a whole number with a decimal point: 3.0, not 3)')
