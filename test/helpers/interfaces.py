"""The interface packages of the typed outputs (vision_msgs, foxglove_msgs) for the tests.

``scripts/build_interfaces.sh`` builds them from ``../shared/ros_interfaces`` and
``scripts/ros_env.sh`` puts them on the paths (a ROS 2 installation provides them too).
Without them the typed-output tests skip with the reason, except in CI with the sources
present: there a missing build is a failure, not a skip.
"""

from __future__ import annotations

import importlib
import os
from pathlib import Path
from types import ModuleType

import pytest

REPO_ROOT = Path(__file__).resolve().parents[2]
SOURCES = Path(os.environ.get('PLANT_DISEASE_INTERFACES',
                              REPO_ROOT.parent / 'shared' / 'ros_interfaces'))
PACKAGES = ('vision_msgs', 'foxglove_msgs')


def require_interfaces() -> tuple[ModuleType, ModuleType]:
    """Return ``vision_msgs.msg`` and ``foxglove_msgs.msg``; skip (or fail in CI) without."""
    modules = []
    for package in PACKAGES:
        try:
            modules.append(importlib.import_module(f'{package}.msg'))
        except ImportError as error:
            reason = (f'{package} is not importable ({error}): run scripts/build_interfaces.sh '
                      'and source scripts/ros_env.sh, or source a ROS 2 installation')
            have_sources = all((SOURCES / name / 'package.xml').is_file() for name in PACKAGES)
            if os.environ.get('CI') == 'true' and have_sources:
                pytest.fail(f'CI has the interface sources in {SOURCES} but {reason}')
            pytest.skip(reason)
    return modules[0], modules[1]
