"""``plant-disease --help`` and every verb's ``--help`` work without the heavy dependencies.

docs/ARCHITECTURE.md promises that ``cli/`` imports TensorFlow, matplotlib, rosbags and
rclpy only when a verb runs, so the help works on a robot that has none of them. Each
help is run in a fresh interpreter whose import system refuses those four packages.
"""

from __future__ import annotations

from pathlib import Path
import subprocess
import sys

import pytest

from plant_disease_ros.cli.main import SUBCOMMANDS

REPO_ROOT = Path(__file__).resolve().parents[1]
HEAVY = ('tensorflow', 'matplotlib', 'rosbags', 'rclpy')

BLOCKER = f"""
import importlib.abc
import runpy
import sys

HEAVY = {HEAVY!r}


class HeavyBlocker(importlib.abc.MetaPathFinder):
    def find_spec(self, name, path=None, target=None):
        if name.split('.')[0] in HEAVY:
            raise ImportError(f'{{name!r}} blocked by the help test')
        return None


sys.meta_path.insert(0, HeavyBlocker())
sys.argv = ['plant-disease'] + sys.argv[1:]
try:
    runpy.run_module('plant_disease_ros.cli.main', run_name='__main__')
finally:
    loaded = sorted(name for name in sys.modules if name.split('.')[0] in HEAVY)
    assert not loaded, f'heavy modules loaded: {{loaded}}'
"""


def run_help(*args: str) -> subprocess.CompletedProcess:
    """Run ``plant-disease ARGS`` with the heavy packages blocked, in a fresh interpreter."""
    return subprocess.run([sys.executable, '-c', BLOCKER, *args], cwd=REPO_ROOT,
                          capture_output=True, text=True, timeout=120)


def test_main_help_lists_every_verb_without_heavy_packages() -> None:
    result = run_help('--help')
    assert result.returncode == 0, result.stderr
    for name in SUBCOMMANDS:
        assert name in result.stdout


@pytest.mark.parametrize('verb', sorted(SUBCOMMANDS))
def test_verb_help_without_heavy_packages(verb: str) -> None:
    result = run_help(verb, '--help')
    assert result.returncode == 0, result.stderr
    assert f'plant-disease {verb}' in result.stdout


def test_blocker_blocks_the_heavy_packages() -> None:
    for name in HEAVY:
        blocked = subprocess.run([sys.executable, '-c', BLOCKER.replace(
            "runpy.run_module('plant_disease_ros.cli.main', run_name='__main__')",
            f'import {name}')], cwd=REPO_ROOT, capture_output=True, text=True, timeout=60)
        assert blocked.returncode != 0
        assert 'blocked by the help test' in blocked.stderr
