"""replay -p overrides: read as rcl reads them, held against what the nodes declare."""

from __future__ import annotations

import math

import pytest

from plant_disease_ros.tools.replay.overrides import override_problems, rcl_value, type_takes

BOOL, INTEGER, DOUBLE, STRING, DOUBLE_ARRAY, INTEGER_ARRAY = 1, 2, 3, 4, 8, 7
DECLARED = {
    'camera_subscriber': {'max_rate_hz': (DOUBLE, 0.0), 'roi': (INTEGER_ARRAY, [0, 0, 0, 0]),
                          'crop_mode': (STRING, 'center')},
    'disease_classifier': {'score_threshold': (DOUBLE, 0.5), 'top_k': (INTEGER, 3),
                           'gps_required': (BOOL, True), 'crops': (STRING, ''),
                           'camera_offset_m': (DOUBLE_ARRAY, [0.0, 0.0])},
    'disease_map_recorder': {'map_dir': (STRING, 'maps')},
}


@pytest.mark.parametrize(('text', 'expected'), [
    ('0.9', 0.9), ('0,9', '0,9'), ('3', 3), ('0x10', 16), ('010', 8), ('1e3', 1000.0),
    ('.5', 0.5), ('true', True), ('Off', False), ('Grape', 'Grape'), ("'0.9'", '0.9'),
    ('[1, 2, 3]', [1, 2, 3]), ('[0.5,1]', [0.5, 1]), ('[]', []), ('', None),
])
def test_values_are_read_as_rcl_reads_them(text: str, expected: object) -> None:
    """Type as rcl's YAML parser: bool words, strtol base 0, strtod, else a string."""
    value = rcl_value(text)
    assert value == expected and type(value) is type(expected)


def test_special_floats() -> None:
    """YAML's .inf and .nan are doubles."""
    assert rcl_value('.inf') == math.inf and math.isnan(rcl_value('.nan'))


def test_a_double_takes_whole_numbers_but_no_string_or_bool() -> None:
    """As the nodes take a whole number for a double (accept_whole_numbers)."""
    assert type_takes(DOUBLE, 0.9) and type_takes(DOUBLE, 1)
    assert not type_takes(DOUBLE, '0,9') and not type_takes(DOUBLE, True)
    assert type_takes(INTEGER, 3) and not type_takes(INTEGER, 3.5)
    assert type_takes(INTEGER_ARRAY, [1, 2]) and not type_takes(INTEGER_ARRAY, [1.5])
    assert type_takes(DOUBLE_ARRAY, [1, 0.5]) and not type_takes(DOUBLE_ARRAY, 1.0)


def holding(values: dict[str, object]) -> dict:
    """Return DECLARED with the nodes holding ``values`` (what rcl set from overrides)."""
    return {node: {name: (kind, values.get(name, held))
                   for name, (kind, held) in parameters.items()}
            for node, parameters in DECLARED.items()}


def test_overrides_the_nodes_take_are_no_problem() -> None:
    """Right names and types (a whole number for a double, a list, a bool) pass."""
    assert override_problems({'score_threshold': '0.9', 'max_rate_hz': '5', 'top_k': '2',
                              'gps_required': 'false', 'roi': '[0, 0, 10, 10]',
                              'camera_offset_m': '[0.2, 0]', 'crops': 'Grape',
                              'map_dir': ''}, holding({
                                  'score_threshold': 0.9, 'max_rate_hz': 5.0, 'top_k': 2,
                                  'gps_required': False, 'roi': [0, 0, 10, 10],
                                  'camera_offset_m': [0.2, 0.0], 'crops': 'Grape'})) == []


def test_a_number_rcl_read_otherwise_is_named_with_the_value_the_node_holds() -> None:
    """1_000 is a number to Python, a string to rcl: the node kept its file's 3; and a C
    hexadecimal double, which rcl's strtod reads, is no problem when the node holds it."""
    problems = override_problems({'top_k': '1_000'}, DECLARED)
    assert problems == [
        "-p top_k:=1_000: disease_classifier runs with 3, not 1000: rcl did not read "
        "'1_000' as a number (write it plainly: digits, a decimal point)"]
    assert override_problems({'score_threshold': '0x1p-1'}, DECLARED) == []


def test_a_decimal_comma_is_named_with_the_value_the_node_runs_with() -> None:
    """'0,9' is a string to rcl: the double stays at the file's 0.5."""
    problems = override_problems({'score_threshold': '0,9'}, DECLARED)
    assert problems == [
        "-p score_threshold:=0,9: rcl reads '0,9' as a string, which disease_classifier's "
        'double parameter score_threshold does not take; it runs with 0.5 (a decimal '
        'point, not a comma: -p score_threshold:=0.9)']


def test_a_misspelt_name_is_named_with_the_closest_declared_one() -> None:
    """No node declares 'score_treshold': the problem suggests 'score_threshold'."""
    problems = override_problems({'score_treshold': '0.9', 'nothing_like_it': '1'},
                                 DECLARED)
    assert len(problems) == 2
    assert problems[0] == ('-p score_treshold:=0.9: no node of the pipeline (camera_subscriber, '
                           'disease_classifier, disease_map_recorder) has a parameter '
                           'score_treshold (did you mean score_threshold?)')
    assert 'nothing_like_it' in problems[1] and 'did you mean' not in problems[1]


def test_a_string_for_an_integer_and_a_number_for_a_string_are_problems() -> None:
    """Each wrong type is named with the node's type and value."""
    problems = override_problems({'top_k': 'three', 'crop_mode': '3'}, DECLARED)
    assert len(problems) == 2
    assert "disease_classifier's integer parameter top_k does not take; it runs with 3" \
        in problems[0]
    assert problems[1] == ("-p crop_mode:=3: rcl reads '3' as an integer, which "
                           "camera_subscriber's string parameter crop_mode does not take; "
                           "it runs with 'center'")
