"""Did the nodes take the replay's ``-p NAME:=VALUE`` overrides? Checked before the bag plays.

rcl applies an override only to a node that declares the name, and only when the value's
type (as rcl reads the text) is the declared one: ``-p score_treshold:=0.9`` (a typo) and
``-p score_threshold:=0,9`` (a decimal comma: a string, which a double parameter does not
take, so the parameter file's value stays) are dropped without a word. Here each override
is held against what the started nodes declare (their ``list_parameters`` and
``get_parameters`` services); no ROS import: the caller fetches those.
"""

from __future__ import annotations

from collections.abc import Mapping
import difflib
import math
import re
from typing import Any

# rcl_interfaces/msg/ParameterType
PARAMETER_TYPES = {1: 'bool', 2: 'integer', 3: 'double', 4: 'string', 5: 'byte array',
                   6: 'bool array', 7: 'integer array', 8: 'double array', 9: 'string array'}
# The element type each array type takes (rcl reads a flow sequence's items one by one).
_ARRAY_OF = {6: 1, 7: 2, 8: 3, 9: 4}
# What rcl's YAML parser reads as a bool (rcl_yaml_param_parser).
_TRUE = {'Y', 'y', 'yes', 'Yes', 'YES', 'true', 'True', 'TRUE', 'on', 'On', 'ON'}
_FALSE = {'N', 'n', 'no', 'No', 'NO', 'false', 'False', 'FALSE', 'off', 'Off', 'OFF'}
_YAML_FLOATS = {'.nan': math.nan, '.NaN': math.nan, '.NAN': math.nan, '.inf': math.inf,
                '.Inf': math.inf, '.INF': math.inf, '-.inf': -math.inf, '-.Inf': -math.inf,
                '-.INF': -math.inf, '+.inf': math.inf}

# Node name -> {parameter name: (ParameterType, value)}: what each node declares.
Declared = Mapping[str, Mapping[str, tuple[int, Any]]]


def rcl_value(text: str) -> Any:
    """Return the value rcl reads from ``-p NAME:=text``: bool, int, float, str or a list.

    As rcl's YAML parser types a scalar: quoted is a string, then a bool word, then an
    integer (``strtol`` base 0: ``0x10``, ``010`` octal), then a float (``strtod``, YAML's
    ``.inf``/``.nan``), else a string; ``[a, b]`` is a list of such items. None for an
    empty value (rcl sets nothing).
    """
    text = text.strip()
    if not text:
        return None
    if len(text) >= 2 and text[0] == text[-1] and text[0] in '\'"':
        return text[1:-1]
    if text.startswith('[') and text.endswith(']'):
        inner = text[1:-1].strip()
        return [rcl_value(item) for item in inner.split(',')] if inner else []
    if text in _TRUE:
        return True
    if text in _FALSE:
        return False
    if re.fullmatch(r'[+-]?0[0-7]+', text):
        return int(text, 8)
    try:
        return int(text, 0)
    except ValueError:
        pass
    if text in _YAML_FLOATS:
        return _YAML_FLOATS[text]
    try:
        return float(text)
    except ValueError:
        return text


def _scalar_taken(parameter_type: int, value: Any) -> bool:
    """Return whether a scalar of that declared type takes ``value``."""
    if parameter_type == 1:
        return isinstance(value, bool)
    if parameter_type == 2:
        return isinstance(value, int) and not isinstance(value, bool)
    if parameter_type == 3:
        # A whole number is taken as that number (the nodes' accept_whole_numbers).
        return isinstance(value, (int, float)) and not isinstance(value, bool)
    if parameter_type == 4:
        return isinstance(value, str)
    return False


def type_takes(parameter_type: int, value: Any) -> bool:
    """Return whether a parameter declared with ``parameter_type`` takes ``value``."""
    if parameter_type in _ARRAY_OF:
        return isinstance(value, list) and all(
            _scalar_taken(_ARRAY_OF[parameter_type], item) for item in value)
    if parameter_type == 5:
        return isinstance(value, list)
    return not isinstance(value, list) and _scalar_taken(parameter_type, value)


def _type_name(value: Any) -> str:
    """Return what rcl reads ``value`` as, in the declared types' words, with its article."""
    if isinstance(value, list):
        return 'a list'
    if isinstance(value, bool):
        return 'a bool'
    if isinstance(value, int):
        return 'an integer'
    if isinstance(value, float):
        return 'a double'
    return 'a string'


def override_problems(overrides: Mapping[str, str], declared: Declared) -> list[str]:
    """Return one line per override the nodes did not take (none: all were taken).

    An override no node declares names the closest declared names; one whose value rcl
    reads as another type than a node declared says what that node runs with instead. An
    empty value is left alone (rcl sets nothing from it).
    """
    problems: list[str] = []
    known = sorted({name for parameters in declared.values() for name in parameters})
    for name, text in overrides.items():
        holders = {node: parameters[name] for node, parameters in declared.items()
                   if name in parameters}
        if not holders:
            close = difflib.get_close_matches(name, known, n=2, cutoff=0.75)
            problems.append(
                f'-p {name}:={text}: no node of the pipeline ({", ".join(sorted(declared))}) '
                f'has a parameter {name}'
                + (f' (did you mean {" or ".join(close)}?)' if close else ''))
            continue
        value = rcl_value(text)
        if value is None:
            continue
        for node, (parameter_type, held) in sorted(holders.items()):
            if type_takes(parameter_type, value) or _hex_double(parameter_type, text, held):
                if _same(held, value) or _hex_double(parameter_type, text, held):
                    continue
                # Taken as this type here, not by rcl (1_000, 0o17, non-ASCII digits): the
                # node kept another value.
                problems.append(
                    f'-p {name}:={text}: {node} runs with {held!r}, not {value!r}: rcl did '
                    f'not read {text!r} as a number (write it plainly: digits, a decimal '
                    'point)')
                break
            hint = ''
            if isinstance(value, str) and ',' in text and parameter_type == 3:
                try:
                    hint = (f' (a decimal point, not a comma: '
                            f'-p {name}:={float(text.replace(",", "."))!r})')
                except ValueError:
                    hint = ''
            declared_name = PARAMETER_TYPES.get(parameter_type, f'type {parameter_type}')
            problems.append(
                f'-p {name}:={text}: rcl reads {text!r} as {_type_name(value)}, which '
                f"{node}'s {declared_name} parameter {name} does not take; it runs with "
                f'{held!r}{hint}')
            break
    return problems


def _same(held: Any, value: Any) -> bool:
    """Return whether the node holds ``value`` (a whole number for a double counts; NaN too)."""
    if isinstance(held, (list, tuple)) and isinstance(value, list):
        return len(held) == len(value) and all(
            _same(left, right) for left, right in zip(held, value, strict=True))
    if isinstance(held, float) and isinstance(value, (int, float)):
        return held == value or (math.isnan(held) and math.isnan(value))
    return held == value


def _hex_double(parameter_type: int, text: str, held: Any) -> bool:
    """Return whether ``text`` is a C hexadecimal double (0x1p-1) that the node holds.

    rcl reads numbers with strtod, which takes them; this replay's reading does not.
    """
    if parameter_type != 3 or not isinstance(held, float):
        return False
    try:
        return float.fromhex(text.strip()) == held
    except ValueError:
        return False
