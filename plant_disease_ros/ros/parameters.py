"""Parameter descriptors and the checks a descriptor cannot express, shared by the nodes.

Ranges and ``read_only`` go in the ``ParameterDescriptor``: rclpy enforces them on the
start value and on every change. What a descriptor cannot say (one of a few strings, an
open interval, a list's length) goes in a :class:`ParameterChecks`, registered as an
on-set-parameters callback *before* the parameters are declared, so that rclpy runs it
on the start values too (an invalid one raises ``InvalidParameterValueException``) and
refuses a runtime change with the check's reason.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping, Sequence
import math
from typing import Any

from rcl_interfaces.msg import (
    FloatingPointRange,
    IntegerRange,
    ParameterType,
    SetParametersResult,
)
from rclpy.node import Node
from rclpy.parameter import Parameter

Check = Callable[[Any], str | None]


def float_range(low: float, high: float) -> list[FloatingPointRange]:
    """Return the ``floating_point_range`` of a descriptor: [low, high], any step."""
    return [FloatingPointRange(from_value=float(low), to_value=float(high), step=0.0)]


def integer_range(low: int, high: int) -> list[IntegerRange]:
    """Return the ``integer_range`` of a descriptor: [low, high] in steps of 1."""
    return [IntegerRange(from_value=int(low), to_value=int(high), step=1)]


def one_of(name: str, choices: Sequence[str]) -> Check:
    """Return a check that refuses any value of ``name`` not in ``choices``."""
    def check(value: Any) -> str | None:
        if value in choices:
            return None
        return f'{name} must be one of {", ".join(choices)}, got {value!r}'
    return check


def above(name: str, low: float) -> Check:
    """Return a check that refuses a value of ``name`` that is not finite and > ``low``."""
    def check(value: Any) -> str | None:
        if math.isfinite(value) and value > low:
            return None
        return f'{name} must be > {low:g}, got {value}'
    return check


def raises_no_value_error(name: str, validate: Callable[[Any], object]) -> Check:
    """Return a check that refuses a value of ``name`` for which ``validate`` raises
    ValueError, with the reason ``'<name>: <its message>'``."""
    def check(value: Any) -> str | None:
        try:
            validate(value)
        except ValueError as error:
            return f'{name}: {error}'
        return None
    return check


def choices_text(choices: Sequence[str]) -> str:
    """Return ``choices`` as the ``additional_constraints`` text of a descriptor."""
    return 'one of: ' + ', '.join(repr(choice) for choice in choices)


class ParameterChecks:
    """Checks by parameter name, usable as an on-set-parameters callback."""

    def __init__(self, checks: Mapping[str, Check]) -> None:
        """Check each parameter named in ``checks`` with its function (reason or None)."""
        self._checks = dict(checks)

    def reason(self, parameters: Iterable[Parameter]) -> str | None:
        """Return why one of ``parameters`` is refused, or ``None`` when all pass."""
        for parameter in parameters:
            check = self._checks.get(parameter.name)
            if check is not None:
                reason = check(parameter.value)
                if reason is not None:
                    return reason
        return None

    def __call__(self, parameters: list[Parameter]) -> SetParametersResult:
        """Return the on-set-parameters result for ``parameters``."""
        return set_result(self.reason(parameters))


def set_result(reason: str | None) -> SetParametersResult:
    """Return a SetParametersResult: successful without a reason, refused with one."""
    if reason is None:
        return SetParametersResult(successful=True)
    return SetParametersResult(successful=False, reason=reason)


# A whole number given to a parameter declared with floating-point values, and the type it
# becomes: `ros2 param set /camera_subscriber max_rate_hz 5` sends an INTEGER.
_WHOLE_TO_FLOAT = {
    Parameter.Type.INTEGER: (ParameterType.PARAMETER_DOUBLE, Parameter.Type.DOUBLE, float),
    Parameter.Type.INTEGER_ARRAY: (ParameterType.PARAMETER_DOUBLE_ARRAY,
                                   Parameter.Type.DOUBLE_ARRAY,
                                   lambda values: [float(value) for value in values]),
}


def accept_whole_numbers(node: Node) -> None:
    """Let a runtime change give a floating-point parameter of ``node`` a whole number.

    ``ros2 param set NODE max_rate_hz 5`` sends an integer, which rclpy refuses for a
    parameter declared as a double with the unreadable "Wrong parameter type, expected
    '3' got '2'". Registered as a pre-set-parameters callback, this turns such a value
    (and an integer list for a list of doubles) into the declared type first; the
    descriptor's range and the node's checks then see the number. Start values from a
    parameter file are read before any callback: write them as 5.0 there.
    """
    def convert(parameters: list[Parameter]) -> list[Parameter]:
        converted = []
        for parameter in parameters:
            rule = _WHOLE_TO_FLOAT.get(parameter.type_)
            if rule is not None and node.has_parameter(parameter.name):
                declared = node.describe_parameter(parameter.name)
                if not declared.dynamic_typing and declared.type == rule[0]:
                    parameter = Parameter(parameter.name, rule[1], rule[2](parameter.value))
            converted.append(parameter)
        return converted

    node.add_pre_set_parameters_callback(convert)
