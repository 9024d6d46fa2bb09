"""config/field.yaml holds every node parameter, with the nodes' own declared defaults.

Each node is started in-process without the file and its parameters are read back; the
file must have exactly those keys (less rclpy's built-ins) with the same values and types.
Then the nodes are started with the file through rcl's own YAML parser, which must accept
it and change nothing.
"""

from __future__ import annotations

from collections.abc import Iterator
import importlib
import inspect
from pathlib import Path
import re
from typing import Any

import pytest
import yaml

REPO_ROOT = Path(__file__).resolve().parents[2]
FIELD_YAML = REPO_ROOT / 'config' / 'field.yaml'
NODE_MODULES = {
    'camera_subscriber': 'plant_disease_ros.nodes.camera_subscriber',
    'disease_classifier': 'plant_disease_ros.nodes.disease_classifier',
    'disease_map_recorder': 'plant_disease_ros.nodes.disease_map_recorder',
}
# Declared by rclpy itself on every node; set by the launch file, not by field.yaml.
BUILTIN_PARAMETERS = {'use_sim_time', 'start_type_description_service'}
# Retired names still declared (so that a file naming them is refused); the shipped file
# uses the new ones.
DEPRECATED_PARAMETERS = {'transport'}


def node_class(module_name: str) -> type:
    """Return the one rclpy Node subclass defined in ``module_name``."""
    from rclpy.node import Node

    module = importlib.import_module(module_name)
    classes = [value for value in vars(module).values()
               if inspect.isclass(value) and issubclass(value, Node)
               and value.__module__ == module.__name__]
    assert len(classes) == 1, f'expected one Node class in {module_name}, got {classes}'
    return classes[0]


def plain(value: Any) -> Any:
    """Return a parameter value as plain Python (arrays as lists)."""
    if isinstance(value, str | bool | int | float) or value is None:
        return value
    return list(value)


def node_parameters(module_name: str, context: object) -> dict[str, Any]:
    """Start the node of ``module_name`` in ``context``; return its non-builtin parameters."""
    node = node_class(module_name)(context=context)
    try:
        parameters = node.get_parameters_by_prefix('')
        return {name: plain(parameter.value) for name, parameter in parameters.items()
                if name not in BUILTIN_PARAMETERS | DEPRECATED_PARAMETERS}
    finally:
        node.destroy_node()


def same_value(left: Any, right: Any) -> bool:
    """Compare two parameter values including their type (1 is not 1.0, 0 is not False)."""
    if isinstance(left, list) and isinstance(right, list):
        return len(left) == len(right) and all(
            same_value(a, b) for a, b in zip(left, right, strict=True))
    return type(left) is type(right) and left == right


@pytest.fixture(scope='module')
def yaml_parameters() -> dict[str, Any]:
    """Return the ros__parameters of field.yaml's /** section."""
    document = yaml.safe_load(FIELD_YAML.read_text(encoding='utf-8'))
    assert list(document) == ['/**'], 'field.yaml has one section, /**'
    assert list(document['/**']) == ['ros__parameters']
    parameters = document['/**']['ros__parameters']
    assert isinstance(parameters, dict) and parameters
    return parameters


@pytest.fixture
def isolated_cwd(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Path]:
    """Run in a scratch folder: the recorder's relative map_dir must not touch the repo."""
    monkeypatch.chdir(tmp_path)
    yield tmp_path


def test_every_line_is_commented(yaml_parameters: dict[str, Any]) -> None:
    """Each parameter line carries a comment; numbers name a range, e.g. [0, 1] or (0, 1]."""
    lines = FIELD_YAML.read_text(encoding='utf-8').splitlines()
    seen = set()
    for line in lines:
        match = re.match(r'^ {4}([a-z_]+):\s*(.*?)\s*#\s*(.+)$', line)
        if not match:
            continue
        name, value, comment = match.groups()
        seen.add(name)
        if isinstance(yaml_parameters[name], float | int) and not isinstance(
                yaml_parameters[name], bool):
            assert re.search(r'[\[(].*,.*[\])]|>=|> 0', comment), f'{name}: no range'
        assert len(comment) >= 10, f'{name}: comment too short'
    assert seen == set(yaml_parameters), f'uncommented: {set(yaml_parameters) - seen}'


def test_top_k_range_is_the_classifiers() -> None:
    """top_k's comment gives the declared range, [1, max(3, classes)], as the README does.

    The classifier allows 3 for a model of fewer classes (this file's top_k: 3 starts a
    2-class model); the comment said [1, number of classes].
    """
    (comment,) = [line.split('#', 1)[1] for line in
                  FIELD_YAML.read_text(encoding='utf-8').splitlines()
                  if line.startswith('    top_k:')]
    (readme_row,) = [line for line in
                     (REPO_ROOT / 'README.md').read_text(encoding='utf-8').splitlines()
                     if line.startswith('| `top_k` | disease_classifier |')]
    assert '[1, max(3, classes)]' in comment, comment
    assert '| [1, max(3, classes)] |' in readme_row, readme_row
    source = (REPO_ROOT / 'plant_disease_ros' / 'nodes' / 'disease_classifier.py').read_text(
        encoding='utf-8')
    assert 'integer_range=integer_range(1, max(3, num_labels))' in source


def test_yaml_equals_declared_defaults(yaml_parameters: dict[str, Any], ros_context: object,
                                       isolated_cwd: Path) -> None:
    """Same keys and the same typed values as the nodes declare; no key nobody declares."""
    declared_by: dict[str, list[str]] = {}
    for node_name, module_name in NODE_MODULES.items():
        parameters = node_parameters(module_name, ros_context)
        assert parameters, f'{node_name} declares no parameters'
        for name, value in parameters.items():
            declared_by.setdefault(name, []).append(node_name)
            assert name in yaml_parameters, f'{node_name}.{name} is missing from field.yaml'
            assert same_value(yaml_parameters[name], value), (
                f'{node_name}.{name}: field.yaml has {yaml_parameters[name]!r}, '
                f'the node declares {value!r}')
    unknown = set(yaml_parameters) - set(declared_by)
    assert not unknown, f'field.yaml keys no node declares: {sorted(unknown)}'


def test_rcl_accepts_the_file(yaml_parameters: dict[str, Any], isolated_cwd: Path) -> None:
    """rcl's parser loads field.yaml for every node and the values stay the defaults."""
    rclpy = pytest.importorskip('rclpy')
    context = rclpy.Context()
    rclpy.init(args=['--ros-args', '--params-file', str(FIELD_YAML)], context=context)
    try:
        for node_name, module_name in NODE_MODULES.items():
            parameters = node_parameters(module_name, context)
            for name, value in parameters.items():
                assert same_value(yaml_parameters[name], value), (node_name, name, value)
    finally:
        rclpy.try_shutdown(context=context)
