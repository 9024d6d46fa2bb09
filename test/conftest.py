"""Shared pytest set-up: the ROS environment of the whole run, and a fresh rclpy context.

The environment is set here, once, at import, before any test module imports rclpy: DDS
discovery stays on loopback, the run has a private domain id, and every ROS process of
the run (in this process or a child) uses the package's Fast DDS profile, as
scripts/ros_env.sh sets it for a shell. Child processes inherit it (see
``helpers.processes``).
"""

from __future__ import annotations

import atexit
from collections.abc import Iterator
import os
from pathlib import Path
import shutil
import tempfile

import pytest

REPO_ROOT = Path(__file__).resolve().parents[1]
MODELS_DIR = REPO_ROOT / 'models'
DATA_DIR = Path(os.environ.get('PLANT_DISEASE_DATA', REPO_ROOT.parent / 'shared' / 'data'
                               / 'plantvillage'))
TEST_IMAGES_DIR = REPO_ROOT / 'test' / 'data'

os.environ['ROS_AUTOMATIC_DISCOVERY_RANGE'] = 'LOCALHOST'
# A private domain per test run; CI and each developer set their own.
# 10..99: domains above 101 use ports in Linux's ephemeral range.
os.environ.setdefault('ROS_DOMAIN_ID', str(10 + os.getpid() % 90))
# pytest-xdist (scripts/test.sh runs two workers): the first worker keeps the run's domain,
# each other one takes a free domain of its own as scripts/ros_env.sh does, so the nodes of
# two tests running side by side never see each other.
_worker_domain_lock = None
if os.environ.get('PYTEST_XDIST_WORKER', 'gw0') != 'gw0':
    from helpers.domains import take_free_domain

    _worker_domain_lock = take_free_domain(avoid=int(os.environ['ROS_DOMAIN_ID']))
    os.environ['ROS_DOMAIN_ID'] = str(_worker_domain_lock.domain)
os.environ.setdefault('RMW_IMPLEMENTATION', 'rmw_fastrtps_cpp')
# Only the current variable: the FASTRTPS_ one is deprecated and warns on Kilted.
os.environ.pop('FASTRTPS_DEFAULT_PROFILES_FILE', None)
os.environ.setdefault('FASTDDS_DEFAULT_PROFILES_FILE',
                      str(REPO_ROOT / 'config' / 'fastdds_profile.xml'))
os.environ.setdefault('RCUTILS_COLORIZED_OUTPUT', '0')
# rclpy and every node process write their log files here, not into ~/.ros/log: a test
# run leaves nothing behind (the folder goes when the run ends).
if 'ROS_LOG_DIR' not in os.environ:
    _ros_log_dir = tempfile.mkdtemp(prefix='plant_disease_ros_test_logs_')
    os.environ['ROS_LOG_DIR'] = _ros_log_dir
    atexit.register(shutil.rmtree, _ros_log_dir, True)

try:
    from hypothesis import settings

    # CI explores the same examples every run: a red CI then means a change broke it.
    settings.register_profile('ci', derandomize=True, deadline=None)
    if os.environ.get('CI'):
        settings.load_profile('ci')
except ImportError:
    pass


@pytest.fixture
def ros_context() -> Iterator[object]:
    """Give a test its own initialised rclpy context, shut down afterwards."""
    rclpy = pytest.importorskip('rclpy')
    context = rclpy.Context()
    rclpy.init(context=context)
    try:
        yield context
    finally:
        rclpy.try_shutdown(context=context)


@pytest.fixture
def harness(ros_context: object) -> Iterator[object]:
    """Give a test a ``helpers.ros.Harness`` in its own context, closed afterwards."""
    from helpers.ros import Harness

    harness = Harness(ros_context)
    yield harness
    harness.close()


# The folders whose files take longest first: pytest-xdist (--dist loadfile) hands the files
# out in this order, so a worker that finishes early takes the many short core and node
# tests at the end, instead of waiting while the other trains a model.
_FOLDER_ORDER = ('training', 'system', 'tools', 'ros', 'core')


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """Run the test files of the slow folders first (stable within a folder)."""
    def rank(item: pytest.Item) -> int:
        parts = Path(str(item.path)).relative_to(REPO_ROOT / 'test').parts
        return _FOLDER_ORDER.index(parts[0]) if parts[0] in _FOLDER_ORDER else len(
            _FOLDER_ORDER)

    items.sort(key=rank)
