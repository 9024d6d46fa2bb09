"""Shared pytest fixtures: loopback-only DDS on a private domain, rclpy contexts, waiting.

The environment is set at import, before any test module imports rclpy, so no test can
start Fast DDS on an external interface.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
import os
from pathlib import Path
import time

import pytest

os.environ['ROS_AUTOMATIC_DISCOVERY_RANGE'] = 'LOCALHOST'
# A private domain per test run; CI and each developer set their own.
# 10..99: domains above 101 use ports in Linux's ephemeral range.
os.environ.setdefault('ROS_DOMAIN_ID', str(10 + os.getpid() % 90))
os.environ.setdefault('RMW_IMPLEMENTATION', 'rmw_fastrtps_cpp')

try:
    from hypothesis import settings

    # CI explores the same examples every run: a red CI then means a change broke it.
    settings.register_profile('ci', derandomize=True, deadline=None)
    if os.environ.get('CI'):
        settings.load_profile('ci')
except ImportError:
    pass

REPO_ROOT = Path(__file__).resolve().parents[1]
MODELS_DIR = REPO_ROOT / 'models'
DATA_DIR = Path(os.environ.get('PLANT_DISEASE_DATA', REPO_ROOT.parent / 'shared' / 'data'
                               / 'plantvillage'))
TEST_IMAGES_DIR = REPO_ROOT / 'test' / 'data'


def rclpy_available() -> bool:
    """Return whether rclpy (the ROS 2 wheels) can be imported."""
    try:
        import rclpy  # noqa: F401
    except ImportError:
        return False
    return True


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


def spin_until(executor, predicate: Callable[[], bool], timeout_s: float = 10.0) -> bool:
    """Spin ``executor`` until ``predicate()`` holds or ``timeout_s`` passes; return it."""
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if predicate():
            return True
        executor.spin_once(timeout_sec=0.02)
    return predicate()


@pytest.fixture
def shipped_model_paths() -> tuple[Path, Path]:
    """Return the shipped model and labels paths."""
    return MODELS_DIR / 'plant_disease_int8.tflite', MODELS_DIR / 'labels.txt'
