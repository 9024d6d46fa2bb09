"""scripts/build_interfaces.sh and scripts/ros_env.sh: the interface packages of the typed outputs.

The build itself runs in scripts/test.sh before the tests (minutes); here only what is
cheap: without sources the script builds nothing and says so, and ros_env.sh sources the
install tree only when a build finished.
"""

from __future__ import annotations

import os
from pathlib import Path
import subprocess

REPO_ROOT = Path(__file__).resolve().parents[2]
SCRIPT = REPO_ROOT / 'scripts' / 'build_interfaces.sh'
INSTALL = REPO_ROOT / 'build' / 'interfaces' / 'install'


def test_without_sources_nothing_is_built_and_the_reason_is_given(tmp_path: Path) -> None:
    """Missing ../shared/ros_interfaces: exit 0, typed outputs off, the install tree kept."""
    before = sorted(INSTALL.iterdir()) if INSTALL.is_dir() else None
    result = subprocess.run(['bash', str(SCRIPT), str(tmp_path / 'missing')],
                            capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, result.stderr
    assert 'typed outputs' in result.stderr and 'stay off' in result.stderr
    assert (sorted(INSTALL.iterdir()) if INSTALL.is_dir() else None) == before


def test_ros_env_adds_the_install_tree_only_after_a_finished_build(tmp_path: Path) -> None:
    """ros_env.sh keys on the build's stamp file, and keeps `set -u` shells working."""
    text = (REPO_ROOT / 'scripts' / 'ros_env.sh').read_text(encoding='utf-8')
    assert 'build/interfaces/install' in text and '.built-from' in text
    env = {key: value for key, value in os.environ.items() if key != 'AMENT_PREFIX_PATH'}
    result = subprocess.run(
        ['bash', '-c', 'set -euo pipefail; source scripts/ros_env.sh; '
                       'echo "${AMENT_PREFIX_PATH:-none}"'],
        cwd=REPO_ROOT, env=env, capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, result.stderr
    built = (INSTALL / '.built-from').is_file()
    assert (str(INSTALL) in result.stdout) == built, result.stdout
