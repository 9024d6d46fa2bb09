"""ros.parameters: checks a descriptor cannot express, run by rclpy on start and change."""

from __future__ import annotations

import math

import pytest

pytest.importorskip('rclpy')

from rcl_interfaces.msg import ParameterDescriptor  # noqa: E402
import rclpy  # noqa: E402
from rclpy.exceptions import InvalidParameterValueException  # noqa: E402
from rclpy.parameter import Parameter  # noqa: E402

from plant_disease_ros.ros.parameters import (  # noqa: E402
    above,
    choices_text,
    float_range,
    integer_range,
    one_of,
    ParameterChecks,
    set_result,
)

CHECKS = ParameterChecks({'mode': one_of('mode', ('a', 'b')),
                          'fraction': above('fraction', 0.0)})


def test_one_of_and_above() -> None:
    assert one_of('mode', ('a', 'b'))('a') is None
    assert one_of('mode', ('a', 'b'))('c') == "mode must be one of a, b, got 'c'"
    assert above('fraction', 0.0)(0.5) is None
    for value in (0.0, -1.0, math.nan, math.inf):
        assert above('fraction', 0.0)(value) is not None
    assert choices_text(('a', 'b')) == "one of: 'a', 'b'"


def test_ranges() -> None:
    (floats,) = float_range(0, 1)
    assert (floats.from_value, floats.to_value, floats.step) == (0.0, 1.0, 0.0)
    (integers,) = integer_range(1, 64)
    assert (integers.from_value, integers.to_value, integers.step) == (1, 64, 1)


def test_checks_as_a_callback() -> None:
    assert CHECKS([Parameter('mode', value='b'), Parameter('other', value=-5)]).successful
    result = CHECKS([Parameter('mode', value='a'), Parameter('fraction', value=0.0)])
    assert not result.successful and result.reason.startswith('fraction must be > 0')
    assert set_result(None).successful and set_result('no').reason == 'no'


def test_rclpy_runs_the_checks_on_start_values_and_changes(ros_context: object) -> None:
    def make(mode: str) -> rclpy.node.Node:
        node = rclpy.create_node('parameters_test', context=ros_context,
                                 parameter_overrides=[Parameter('mode', value=mode)])
        node.add_on_set_parameters_callback(CHECKS)
        node.declare_parameter('mode', 'a')
        node.declare_parameter('fraction', 0.5, ParameterDescriptor(
            floating_point_range=float_range(0.0, 1.0)))
        return node

    with pytest.raises(InvalidParameterValueException, match='mode must be one of'):
        make('z')
    node = make('b')
    try:
        assert node.get_parameter('mode').value == 'b'
        assert not node.set_parameters([Parameter('fraction', value=0.0)])[0].successful
        assert not node.set_parameters([Parameter('fraction', value=1.5)])[0].successful
        assert node.set_parameters([Parameter('fraction', value=1.0)])[0].successful
    finally:
        node.destroy_node()


@pytest.mark.parametrize(('overrides', 'expected'), [
    ({}, 'raw'),
    ({'image_transport': 'compressed'}, 'compressed'),
    ({'image_transport': 'compressed', 'transport': ''}, 'compressed'),
])
def test_image_transport_picks_the_input(ros_context: object, overrides: dict,
                                         expected: str) -> None:
    """image_transport picks the input."""
    from plant_disease_ros.nodes.camera_subscriber import CameraSubscriberNode

    node = CameraSubscriberNode(context=ros_context, parameter_overrides=[
        Parameter(name, value=value) for name, value in overrides.items()])
    try:
        assert node.transport == expected
        suffix = '/compressed' if expected == 'compressed' else ''
        assert node.image_subscription.topic == f'/image_raw{suffix}'
    finally:
        node.destroy_node()


@pytest.mark.parametrize('value', ['compressed', 'raw', 'theora'])
def test_the_retired_transport_name_is_refused_with_its_new_name(ros_context: object,
                                                                 value: str) -> None:
    """An old params file's 'transport' would have beaten the launch's image_transport:
    it is refused at start, naming the parameter to use instead."""
    from plant_disease_ros.nodes.camera_subscriber import CameraSubscriberNode

    with pytest.raises(InvalidParameterValueException, match="renamed 'image_transport'"):
        CameraSubscriberNode(context=ros_context,
                             parameter_overrides=[Parameter('transport', value=value)])
