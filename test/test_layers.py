"""Guard the layers: each folder of the package imports only from the layers below it.

The layer rule is read from the source: every ``import`` of every module, at the top or
inside a function (a lazy import counts too), and every ``importlib.import_module`` of a
constant name, is found by parsing the module, and no import may go up a layer:

    core  <-  ros  <-  nodes
    core, ros  <-  tools  <-  cli
    core, ros  <-  training  <-  cli

``tools`` and ``training`` never import ``nodes`` (the nodes run as processes) nor ``cli``,
``tools`` never imports ``training``, and ``training`` takes from ``tools`` only the
modules in :data:`ALLOWED` (evaluation through the nodes, the bench's machine description,
the recorder's grid reader).

``core`` must also work without ROS: each core module is imported in a fresh interpreter
whose import system refuses rclpy, rosidl, message packages and every other ROS module,
so a ROS import anywhere in the core (even indirect) fails.
"""

from __future__ import annotations

import ast
from pathlib import Path
import subprocess
import sys

import pytest

REPO_ROOT = Path(__file__).resolve().parents[1]
PACKAGE = 'plant_disease_ros'
PACKAGE_DIR = REPO_ROOT / PACKAGE
CORE_DIR = PACKAGE_DIR / 'core'
# layer -> the layers it must not import from.
FORBIDDEN = {
    'core': {'ros', 'nodes', 'tools', 'cli', 'training'},
    'ros': {'nodes', 'tools', 'cli', 'training'},
    'nodes': {'tools', 'cli', 'training'},
    'tools': {'nodes', 'cli', 'training'},
    'cli': {'nodes'},
    'training': {'nodes', 'cli', 'tools'},
}
# layer -> the modules of a forbidden layer it may import all the same (and their names).
ALLOWED = {
    'training': ('plant_disease_ros.tools.node_evaluation',
                 'plant_disease_ros.tools.bench.machine',
                 'plant_disease_ros.tools.replay.outputs'),
}


def module_name(path: Path) -> str:
    """Return the dotted module name of a file of the package."""
    parts = path.relative_to(REPO_ROOT).with_suffix('').parts
    return '.'.join(parts[:-1] if parts[-1] == '__init__' else parts)


def imported_modules(source: str, module: str, is_package: bool = False) -> set[str]:
    """Return every module ``source`` (module ``module``) imports, relative ones resolved."""
    package = module if is_package else module.rpartition('.')[0]
    found: set[str] = set()
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package.split('.')
                base = base[:len(base) - (node.level - 1)]
                prefix = '.'.join(base + ([node.module] if node.module else []))
            else:
                prefix = node.module or ''
            found.add(prefix)
            # ``from package import module`` imports the module.
            found.update(f'{prefix}.{alias.name}' for alias in node.names)
        elif (isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute | ast.Name)
              and getattr(node.func, 'attr', getattr(node.func, 'id', '')) == 'import_module'
              and node.args and isinstance(node.args[0], ast.Constant)
              and isinstance(node.args[0].value, str)):
            found.add(node.args[0].value)
    return found


def layer_of(module: str) -> str | None:
    """Return the layer (first folder under the package) of ``module``, if it has one."""
    parts = module.split('.')
    return parts[1] if len(parts) > 1 and parts[0] == PACKAGE else None


def layer_violations(layer: str) -> list[str]:
    """Return 'module -> imported' for every import of ``layer`` that goes up a layer."""
    violations = []
    for path in sorted((PACKAGE_DIR / layer).rglob('*.py')):
        module = module_name(path)
        source = path.read_text(encoding='utf-8')
        for imported in sorted(imported_modules(source, module, path.stem == '__init__')):
            allowed = ALLOWED.get(layer, ())
            if (layer_of(imported) in FORBIDDEN[layer]
                    and not any(imported == name or imported.startswith(name + '.')
                                for name in allowed)):
                violations.append(f'{module} -> {imported}')
    return violations


def test_layers_exist() -> None:
    for layer in ('core', 'ros', 'nodes', 'tools', 'cli', 'training'):
        assert (PACKAGE_DIR / layer / '__init__.py').is_file(), layer


@pytest.mark.parametrize('layer', sorted(FORBIDDEN))
def test_no_import_goes_up_a_layer(layer: str) -> None:
    assert list((PACKAGE_DIR / layer).glob('*.py')), f'no modules in {layer}/'
    assert layer_violations(layer) == []


def test_every_layer_has_a_rule() -> None:
    layers = {path.parent.name for path in PACKAGE_DIR.glob('*/__init__.py')}
    assert layers == set(FORBIDDEN)


@pytest.mark.parametrize('name', [name for names in ALLOWED.values() for name in names])
def test_allowed_exceptions_exist(name: str) -> None:
    parts = name.split('.')
    path = REPO_ROOT.joinpath(*parts)
    assert path.with_suffix('.py').is_file() or (path / '__init__.py').is_file(), name


def test_layer_violations_sees_a_bad_import(tmp_path, monkeypatch) -> None:
    # A tools module that imports training (or nodes) and a training module that takes a
    # tools module outside ALLOWED are both reported; an allowed one is not.
    package = tmp_path / PACKAGE
    for layer in ('tools', 'training'):
        (package / layer).mkdir(parents=True)
        (package / layer / '__init__.py').write_text('')
    (package / 'tools' / 'bad.py').write_text(
        'from plant_disease_ros.training.dataset import Split\n'
        'def lazy():\n'
        '    import plant_disease_ros.nodes.pipeline\n')
    (package / 'training' / 'bad.py').write_text(
        'from plant_disease_ros.tools.node_evaluation import node_scores\n'
        'from plant_disease_ros.tools.demo_bag import write_demo_bag\n')
    monkeypatch.setattr(sys.modules[__name__], 'REPO_ROOT', tmp_path)
    monkeypatch.setattr(sys.modules[__name__], 'PACKAGE_DIR', package)
    assert layer_violations('tools') == [
        'plant_disease_ros.tools.bad -> plant_disease_ros.nodes.pipeline',
        'plant_disease_ros.tools.bad -> plant_disease_ros.training.dataset',
        'plant_disease_ros.tools.bad -> plant_disease_ros.training.dataset.Split']
    assert layer_violations('training') == [
        'plant_disease_ros.training.bad -> plant_disease_ros.tools.demo_bag',
        'plant_disease_ros.training.bad -> plant_disease_ros.tools.demo_bag.write_demo_bag']


def test_import_finder_sees_every_kind_of_import() -> None:
    source = (
        'import plant_disease_ros.tools.bench\n'
        'from plant_disease_ros.cli import main\n'
        'from ..training.dataset import load\n'
        'from . import sibling\n'
        'def lazy():\n'
        '    from plant_disease_ros.nodes import pipeline\n'
        '    importlib.import_module("plant_disease_ros.ros.qos")\n')
    found = imported_modules(source, 'plant_disease_ros.core.example')
    assert {'plant_disease_ros.tools.bench', 'plant_disease_ros.cli.main',
            'plant_disease_ros.training.dataset', 'plant_disease_ros.core.sibling',
            'plant_disease_ros.nodes.pipeline', 'plant_disease_ros.ros.qos'} <= found
    assert {layer_of(name) for name in found} >= FORBIDDEN['core']

CORE_MODULES = sorted(path.stem for path in CORE_DIR.glob('*.py') if path.stem != '__init__')

BLOCKER = """
import importlib.abc
import sys

ROS_ROOTS = {
    'rclpy', 'rcl', 'rmw', 'rcutils', 'rpyutils', 'rosidl', 'rosgraph_msgs', 'ros2cli',
    'launch', 'launch_ros', 'launch_testing', 'ament_index_python', 'rosbag2_py',
    'message_filters', 'cv_bridge', 'image_geometry', 'tf2_ros', 'tf2_py',
    'builtin_interfaces', 'type_description_interfaces', 'service_msgs',
}
ROS_PREFIXES = ('rclpy', 'rcl_', 'rmw_', 'rosidl', 'rosbag2', 'ros2', 'tf2_', 'ament_')
ROS_SUFFIXES = ('_msgs', '_srvs', '_actions', '_interfaces')


def is_ros(name):
    root = name.split('.')[0]
    return root in ROS_ROOTS or root.startswith(ROS_PREFIXES) or root.endswith(ROS_SUFFIXES)


class RosBlocker(importlib.abc.MetaPathFinder):
    def find_spec(self, name, path=None, target=None):
        if is_ros(name):
            raise ImportError(f'ROS module {name!r} blocked by the core boundary test')
        return None


sys.meta_path.insert(0, RosBlocker())
"""

CHECK_NONE_LOADED = """
loaded = sorted(name for name in sys.modules if is_ros(name))
assert not loaded, f'ROS modules loaded: {loaded}'
"""


def run_blocked(code: str) -> subprocess.CompletedProcess:
    """Run ``code`` after the ROS blocker in a fresh Python interpreter."""
    return subprocess.run([sys.executable, '-c', BLOCKER + code], cwd=REPO_ROOT,
                          capture_output=True, text=True, timeout=120)


def test_core_modules_found() -> None:
    for expected in ('image_encoding', 'preprocessing', 'interpreter_loader', 'labels',
                     'classifier', 'latency', 'rate_limiter'):
        assert expected in CORE_MODULES


@pytest.mark.parametrize('module', CORE_MODULES)
def test_core_module_imports_without_ros(module: str) -> None:
    result = run_blocked(f'import plant_disease_ros.core.{module}\n' + CHECK_NONE_LOADED)
    assert result.returncode == 0, result.stderr


def test_default_paths_work_without_ament_index() -> None:
    code = ('from plant_disease_ros.core.classifier import default_model_path\n'
            'print(default_model_path())\n' + CHECK_NONE_LOADED)
    result = run_blocked(code)
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == str(REPO_ROOT / 'models' / 'plant_disease_int8.tflite')


@pytest.mark.parametrize('statement', ['import rclpy', 'import rclpy.node',
                                       'from sensor_msgs.msg import Image',
                                       'import std_msgs.msg', 'import rosidl_runtime_py',
                                       'import ament_index_python.packages'])
def test_blocker_blocks_ros(statement: str) -> None:
    result = run_blocked(statement)
    assert result.returncode != 0
    assert 'blocked by the core boundary test' in result.stderr
