"""Guard the boundary: ``plant_disease_ros.core`` imports and works without any ROS module.

Each core module is imported in a fresh interpreter whose import system refuses rclpy,
rosidl, message packages and every other ROS module, so a ROS import anywhere in the
core (even indirect) fails this test.
"""

from __future__ import annotations

from pathlib import Path
import subprocess
import sys

import pytest

REPO_ROOT = Path(__file__).resolve().parents[1]
CORE_DIR = REPO_ROOT / 'plant_disease_ros' / 'core'
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
