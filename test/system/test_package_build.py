"""The package as ROS 2 tooling sees it: package.xml and a real ``colcon build``."""

from __future__ import annotations

import ast
import os
from pathlib import Path
import shutil
import subprocess
import sys
import xml.etree.ElementTree as ElementTree

from conftest import REPO_ROOT
import pytest

# ros2launch: the ``ros2 launch`` verb the README starts the node set with.
ROS_DEPENDENCIES = {'rclpy', 'sensor_msgs', 'std_msgs', 'std_srvs', 'geometry_msgs',
                    'visualization_msgs', 'diagnostic_msgs', 'launch', 'launch_ros',
                    'ros2launch'}
PYTHON_DEPENDENCIES = {'python3-numpy', 'python3-opencv', 'python3-yaml'}
EXECUTABLES = {'camera_subscriber', 'disease_classifier', 'disease_map_recorder',
               'plant_disease_pipeline'}


def test_package_xml_is_format_3_with_every_dependency() -> None:
    root = ElementTree.parse(REPO_ROOT / 'package.xml').getroot()
    assert root.get('format') == '3'
    assert root.findtext('name') == 'plant_disease_ros'
    assert root.find('export/build_type').text == 'ament_python'
    depends = {element.text for element in root if element.tag.endswith('depend')}
    assert ROS_DEPENDENCIES <= depends and PYTHON_DEPENDENCIES <= depends
    assert (REPO_ROOT / 'resource' / 'plant_disease_ros').exists()
    # No GUI on a headless robot: rosdep must not pull in rviz2 (and Qt) for the nodes.
    assert 'rviz2' not in depends


def test_every_ros_package_the_code_imports_is_a_dependency() -> None:
    """rosdep installs what package.xml names: each ROS package imported must be there."""
    imported: set[str] = set()
    for path in (REPO_ROOT / 'plant_disease_ros').rglob('*.py'):
        for node in ast.walk(ast.parse(path.read_text(encoding='utf-8'))):
            if isinstance(node, ast.Import):
                imported |= {alias.name.split('.')[0] for alias in node.names}
            elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
                imported.add(node.module.split('.')[0])
    ros_packages = {name for name in imported
                    if name.endswith(('_msgs', '_srvs', '_interfaces'))
                    or name in ('rclpy', 'ament_index_python')}
    assert {'rclpy', 'rcl_interfaces', 'sensor_msgs'} <= ros_packages  # the scan works
    root = ElementTree.parse(REPO_ROOT / 'package.xml').getroot()
    depends = {element.text for element in root if element.tag.endswith('depend')}
    assert ros_packages <= depends, sorted(ros_packages - depends)


def _colcon() -> str:
    colcon = shutil.which('colcon') or str(Path(sys.executable).with_name('colcon'))
    if not Path(colcon).exists():
        pytest.skip('colcon is not installed (pip install colcon-common-extensions)')
    return colcon


def test_colcon_build_installs_share_files_and_executables(tmp_path: Path) -> None:
    colcon = _colcon()
    source = tmp_path / 'src' / 'plant_disease_ros'
    ignore = shutil.ignore_patterns('.venv', '.git', 'runs', 'outputs', 'build', 'install',
                                    'log', '__pycache__', '*.egg-info', 'test')
    shutil.copytree(REPO_ROOT, source, ignore=ignore)
    env = {key: value for key, value in os.environ.items() if key != 'PYTHONPATH'}
    result = subprocess.run(
        [colcon, 'build', '--packages-select', 'plant_disease_ros', '--event-handlers',
         'console_direct-'], cwd=tmp_path, capture_output=True, text=True, timeout=240,
        env=env)
    assert result.returncode == 0, result.stdout[-2000:] + result.stderr[-2000:]
    share = tmp_path / 'install' / 'plant_disease_ros' / 'share' / 'plant_disease_ros'
    for relative in ('package.xml', 'launch/field.launch.py', 'config/field.yaml',
                     'config/fastdds_profile.xml', 'config/field.rviz',
                     'models/plant_disease_int8.tflite', 'models/labels.txt',
                     'models/MODEL_CARD.md', 'demo/field_demo.mcap'):
        assert (share / relative).is_file(), relative
    assert not list((share / 'models').glob('*.keras'))
    index = tmp_path / 'install' / 'plant_disease_ros' / 'share' / 'ament_index'
    assert (index / 'resource_index' / 'packages' / 'plant_disease_ros').exists()
    lib = tmp_path / 'install' / 'plant_disease_ros' / 'lib' / 'plant_disease_ros'
    assert EXECUTABLES <= {path.name for path in lib.iterdir()}
