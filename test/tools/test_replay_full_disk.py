"""plant-disease replay into a full disk: the error names the file and says what was kept."""

from __future__ import annotations

import os
from pathlib import Path
import re
import subprocess
import sys

from helpers.filesystems import small_filesystem
import pytest

from plant_disease_ros.core.map_file import read_features

REPO_ROOT = Path(__file__).resolve().parents[2]
DEMO_BAG = REPO_ROOT / 'demo' / 'field_demo.mcap'

pytest.importorskip('rosbags')


def test_a_replay_into_a_full_disk_names_the_file_and_what_was_kept(tmp_path: Path) -> None:
    """On a 64 KiB file system the demo's output bag, map or summary cannot be written:
    exit 2 with the path that failed, the records file named with the detections it holds,
    and the summary lines of what was replayed still printed (not a bare errno)."""
    pytest.importorskip('rclpy')
    env = dict(os.environ, ROS_AUTOMATIC_DISCOVERY_RANGE='LOCALHOST')
    env.setdefault('ROS_DOMAIN_ID', '23')
    namespace = f'full_disk_{os.getpid()}'
    with small_filesystem(tmp_path / 'small', size_kib=64) as small:
        out = small / 'out'
        result = subprocess.run(
            [sys.executable, '-m', 'plant_disease_ros.cli.main', 'replay', str(DEMO_BAG),
             '--fast', '--single-process', '--out', str(out), '--namespace', namespace,
             '--quiet'], env=env, capture_output=True, text=True, timeout=300)
        records = out / 'disease_map.geojsons'
        kept = len(read_features(records)) if records.is_file() else 0
    assert result.returncode == 2, result.stderr + result.stdout
    error = result.stderr.strip().splitlines()[-1]
    assert error.startswith('plant-disease replay: error: cannot write the '), error
    assert 'No space left on device' in error
    failed = re.findall(r'cannot write the (?:output bag|map|summary) (\S+):', error)
    assert failed and all(path.startswith(str(out)) for path in failed), error
    assert kept > 0
    assert f'{kept} detection(s) are kept in the records file {records}' in error
    assert 'frames in:   120' in result.stdout
    assert re.search(r'^detections:\s+\d+', result.stdout, re.MULTILINE), result.stdout
