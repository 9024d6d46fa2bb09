"""The bench's DDS environment: the Fast DDS profile under the name the distribution reads."""

from __future__ import annotations

import ast
import os
from pathlib import Path

import pytest

from plant_disease_ros.tools.bench import environment as bench_environment
from plant_disease_ros.tools.bench.environment import prepare_environment
from plant_disease_ros.tools.process import ros_environment

REPO_ROOT = Path(__file__).resolve().parents[2]
SHIPPED_PROFILE = REPO_ROOT / 'config' / 'fastdds_profile.xml'
LAUNCH_FILE = REPO_ROOT / 'launch' / 'field.launch.py'
FASTDDS_VARIABLE = 'FASTDDS_DEFAULT_PROFILES_FILE'
FASTRTPS_VARIABLE = 'FASTRTPS_DEFAULT_PROFILES_FILE'


def launch_rule(distro: str) -> str:
    """Return the variable launch/field.launch.py exports for ``distro``, by its own rule.

    Its ``dds_profile_variable`` and ``FAST_DDS_2_DISTROS`` compiled alone (``launch`` is
    not installable from PyPI, so the file is never imported).
    """
    tree = ast.parse(LAUNCH_FILE.read_text(encoding='utf-8'))
    body = [node for node in tree.body
            if (isinstance(node, ast.FunctionDef) and node.name == 'dds_profile_variable')
            or (isinstance(node, ast.Assign) and any(
                isinstance(target, ast.Name) and target.id == 'FAST_DDS_2_DISTROS'
                for target in node.targets))]
    assert len(body) == 2
    namespace: dict = {}
    exec(compile(ast.Module(body=body, type_ignores=[]), str(LAUNCH_FILE), 'exec'), namespace)
    return namespace['dds_profile_variable'](distro)


@pytest.fixture
def clean_environment(monkeypatch: pytest.MonkeyPatch) -> pytest.MonkeyPatch:
    """Neither profile variable set; every variable the bench sets is restored after."""
    for name in (FASTDDS_VARIABLE, FASTRTPS_VARIABLE, 'ROS_DISTRO', 'TF_CPP_MIN_LOG_LEVEL'):
        # setenv first, so that monkeypatch records the variable's state before the test
        # and restores it (a variable absent before is removed again): a bare delenv of an
        # absent variable records nothing, and what the bench sets leaked into later tests.
        monkeypatch.setenv(name, '')
        monkeypatch.delenv(name)
    for name in ('ROS_AUTOMATIC_DISCOVERY_RANGE', 'ROS_DOMAIN_ID', 'RMW_IMPLEMENTATION'):
        if name in os.environ:
            monkeypatch.setenv(name, os.environ[name])  # restored as it was after the test
        else:
            monkeypatch.setenv(name, '')                # recorded: removed again after it
            monkeypatch.delenv(name)
    return monkeypatch


@pytest.mark.parametrize('distro, variable, unread', [
    ('jazzy', FASTRTPS_VARIABLE, FASTDDS_VARIABLE),
    ('humble', FASTRTPS_VARIABLE, FASTDDS_VARIABLE),
    ('kilted', FASTDDS_VARIABLE, FASTRTPS_VARIABLE),
    ('', FASTDDS_VARIABLE, FASTRTPS_VARIABLE),
])
def test_the_shipped_profile_goes_under_the_name_the_distribution_reads(
        clean_environment: pytest.MonkeyPatch, distro: str, variable: str,
        unread: str) -> None:
    """Jazzy's Fast DDS 2.14 reads only FASTRTPS_..., Kilted's 3.x FASTDDS_...: the bench
    (and every process it starts) gets the shipped profile under the one read, as the
    launch file exports it."""
    if distro:
        clean_environment.setenv('ROS_DISTRO', distro)
    environment = prepare_environment()
    assert variable == launch_rule(distro)
    assert os.environ.get(variable) == str(SHIPPED_PROFILE)
    assert unread not in os.environ
    assert environment.get(variable) == str(SHIPPED_PROFILE)  # in the report too
    children = ros_environment()
    assert children.get(variable) == str(SHIPPED_PROFILE) and unread not in children


def test_a_profile_already_set_is_kept_or_given_the_name_read(
        clean_environment: pytest.MonkeyPatch, tmp_path: Path) -> None:
    """A profile set under the name read is kept; one set only under the other name (a
    robot's setting from before an upgrade) is exported under the name read too."""
    own = tmp_path / 'robot_profile.xml'
    clean_environment.setenv('ROS_DISTRO', 'jazzy')
    clean_environment.setenv(FASTRTPS_VARIABLE, str(own))
    assert prepare_environment()[FASTRTPS_VARIABLE] == str(own)
    clean_environment.delenv(FASTRTPS_VARIABLE)
    clean_environment.setenv(FASTDDS_VARIABLE, str(own))
    environment = prepare_environment()
    assert environment[FASTRTPS_VARIABLE] == environment[FASTDDS_VARIABLE] == str(own)


def test_the_rule_is_the_launch_files() -> None:
    """The bench's helper and the launch file's own copy agree on every distribution."""
    for distro in ('foxy', 'galactic', 'humble', 'iron', 'jazzy', 'Jazzy ', 'kilted',
                   'rolling', ''):
        assert bench_environment.dds_profile_variable(distro) == launch_rule(distro), distro
