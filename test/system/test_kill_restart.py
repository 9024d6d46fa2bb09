"""kill -9 and restart of each node: classifications resume, the map file stays valid.

The nodes run as their console scripts, each in its own process, fed by a camera at
10 Hz and a GPS at 5 Hz from this test. Each node in turn is killed with SIGKILL (no
clean-up at all) and started again; a frame published after the restart must come out
classified (for the recorder: as a new record in its map file) within a generous bound.
The measured restart figures are printed; timing belongs to the bench. The recorder,
killed several times while it writes, must leave a map file whose every complete record
parses, and it must continue that file after a restart. Last, one frame is followed
through the whole restarted chain: its classification and its record come out.
"""

from __future__ import annotations

from collections.abc import Iterator
import json
import os
from pathlib import Path
import shutil
import subprocess
import sys
import time

import pytest

rclpy = pytest.importorskip('rclpy')

from helpers.gps import make_fix  # noqa: E402
from helpers.images import leaf_rgb, make_image  # noqa: E402
from helpers.processes import node_processes, NodeProcesses  # noqa: E402
from helpers.ros import Harness, results_qos  # noqa: E402
from rclpy.qos import QoSProfile  # noqa: E402
from sensor_msgs.msg import Image, NavSatFix  # noqa: E402
from std_msgs.msg import String  # noqa: E402

from plant_disease_ros.core.map_file import scan_geojson_seq  # noqa: E402

# Restarts take a few seconds here (the figures are printed); the bound only catches a
# node that never comes back, so it is as generous as the start's.
START_TIMEOUT_S = 60.0
RESUME_LIMIT_S = START_TIMEOUT_S
RECORDER_KILLS = 3
CLASSIFICATION = '/classification'


class Field:
    """A camera (10 Hz) and a GPS (5 Hz) in this process, and a classification listener."""

    def __init__(self, context) -> None:
        """Create the test node, its publishers and timers."""
        self.harness = Harness(context, name='kill_restart_field')
        node = self.harness.node
        self.images = node.create_publisher(Image, 'image_raw', QoSProfile(depth=10))
        self.fixes = node.create_publisher(NavSatFix, 'fix', QoSProfile(depth=10))
        # (frame number, monotonic receipt time) of every classification.
        self.classified: list[tuple[int, float]] = []
        node.create_subscription(String, CLASSIFICATION, self._on_classification,
                                 results_qos())
        self.rgb = leaf_rgb(320, 240)
        self.frames = 0
        node.create_timer(0.1, self._publish_frame)
        node.create_timer(0.2, self._publish_fix)

    def _publish_frame(self) -> None:
        self.images.publish(make_image(self.rgb, 'bgr8', stamp_s=time.time(),
                                       frame_id=f'frame-{self.frames}'))
        self.frames += 1

    def _publish_fix(self) -> None:
        self.fixes.publish(make_fix(47.3769 + self.frames * 1e-6, 8.5417, 408.0,
                                    stamp_s=time.time()))

    def _on_classification(self, msg: String) -> None:
        frame_id = json.loads(msg.data)['frame_id']
        if frame_id.startswith('frame-'):
            self.classified.append((int(frame_id.removeprefix('frame-')), time.monotonic()))

    def wait(self, predicate, timeout_s: float) -> bool:
        """Spin (camera, GPS, results) until ``predicate()`` or ``timeout_s``."""
        return self.harness.wait(predicate, timeout_s)

    def last_classified(self) -> int:
        """Return the number of the newest frame classified so far (-1: none)."""
        return max((frame for frame, _ in self.classified), default=-1)

    def seconds_to_classification_of_next_frame(self, since: float,
                                                timeout_s: float) -> float | None:
        """Return seconds from ``since`` to the classification of a frame not yet sent.

        Only frames published from now on count: a classification of an older frame may
        still be on its way from the process that was killed.
        """
        first_frame = self.frames
        if not self.wait(lambda: self.last_classified() >= first_frame, timeout_s):
            return None
        return min(receipt for frame, receipt in self.classified
                   if frame >= first_frame) - since

    def close(self) -> None:
        """Destroy the node and the executor."""
        self.harness.close()


def recorded_frames(path: Path) -> list[int]:
    """Return the frame numbers of the complete, valid records in a map file."""
    if not path.exists():
        return []
    return [int(feature['properties']['frame_id'].removeprefix('frame-'))
            for feature in scan_geojson_seq(path)[0]]


def restart(field: Field, processes: NodeProcesses, name: str) -> float:
    """kill -9 node ``name``, start it again; return the monotonic restart time."""
    processes.kill_9(name)
    restart_s = time.monotonic()
    processes.restart(name)
    return restart_s


def follow_a_frame_through(field: Field, records_path: Path | None) -> None:
    """Assert that a frame published now comes out classified (and recorded)."""
    first_frame = field.frames
    assert field.wait(lambda: field.last_classified() >= first_frame, RESUME_LIMIT_S), \
        'no classification of a new frame'
    if records_path is not None:
        assert field.wait(lambda: max(recorded_frames(records_path), default=-1)
                          >= first_frame, RESUME_LIMIT_S), 'no record of a new frame'


@pytest.fixture
def field(ros_context) -> Iterator[Field]:
    """Return the camera/GPS field of the test, closed afterwards."""
    field = Field(ros_context)
    yield field
    field.close()


def clean_what_the_kills_left(killed_segments: list[Path]) -> None:
    """Run Fast DDS's `fastdds shm clean`, as the README advises after kills; check it works.

    A SIGKILLed node cannot release its 32 MiB segment: without this every run of these
    tests would leave it in /dev/shm. Only segments no live process holds are removed.
    Checked on the segments the killed nodes owned: other DDS programs on the machine
    come and go meanwhile, and their segments are none of this test's business.
    """
    assert killed_segments, 'the killed nodes owned no shared-memory segment: nothing checked'
    assert any(path.exists() for path in killed_segments), 'gone before the clean ran'
    tool = shutil.which('fastdds', path=str(Path(sys.executable).parent)) \
        or shutil.which('fastdds')
    if tool is None:
        pytest.skip('no fastdds command to clean the segments of killed nodes')
    # The tool runs the python3 on PATH and needs psutil: this environment's.
    path = f'{Path(sys.executable).parent}{os.pathsep}{os.environ.get("PATH", "")}'
    result = subprocess.run([tool, 'shm', 'clean'], capture_output=True, text=True,
                            timeout=60, env={**os.environ, 'PATH': path})
    assert result.returncode == 0, result.stdout + result.stderr
    left = [path.name for path in killed_segments if path.exists()]
    assert not left, f"a killed node's segment was not cleaned: {left}"


def test_kill_9_and_restart_each_node(field: Field, tmp_path: Path) -> None:
    """Each of camera_subscriber, disease_classifier, disease_map_recorder survives kill -9."""
    map_dir = tmp_path / 'maps'
    records_path = map_dir / 'kill_restart.geojsons'
    args = {
        'camera_subscriber': [],
        'disease_classifier': ['-p', 'score_threshold:=0.0', '-p', 'num_threads:=1'],
        'disease_map_recorder': ['-p', f'map_dir:={map_dir}', '-p', 'run_name:=kill_restart'],
    }
    resume: dict[str, float | None] = {}
    with node_processes(tmp_path / 'logs', remove_killed_segments=False) as processes:
        for name, ros_args in args.items():
            processes.start(name, *ros_args)
        assert field.seconds_to_classification_of_next_frame(
            time.monotonic(), START_TIMEOUT_S) is not None, 'no classification at start'
        assert field.wait(lambda: len(recorded_frames(records_path)) >= 5,
                          START_TIMEOUT_S), 'the recorder wrote nothing'
        for name in ('camera_subscriber', 'disease_classifier'):
            restart_s = restart(field, processes, name)
            resume[name] = field.seconds_to_classification_of_next_frame(
                restart_s, RESUME_LIMIT_S)
        for kill in range(RECORDER_KILLS):
            restart_s = restart(field, processes, 'disease_map_recorder')
            # A frame sent after the restart: the killed recorder cannot have written it.
            first_new = field.frames
            wrote = field.wait(
                lambda n=first_new: max(recorded_frames(records_path), default=-1) >= n,
                RESUME_LIMIT_S)
            resume[f'disease_map_recorder #{kill + 1}'] = (time.monotonic() - restart_s
                                                          if wrote else None)
        print('resume after kill -9 and restart (s):',
              {name: seconds and round(seconds, 3) for name, seconds in resume.items()})
        for name, seconds in resume.items():
            assert seconds is not None, f'{name}: nothing new within {RESUME_LIMIT_S} s'
        follow_a_frame_through(field, records_path)
    features, stats = scan_geojson_seq(records_path)
    # At most one record per kill can be cut mid-write; every complete one parses.
    assert stats.skipped + int(stats.truncated_tail) <= RECORDER_KILLS, stats
    assert len(features) >= 10
    for feature in features:
        assert feature['type'] == 'Feature' and 'fix_status' in feature['properties']
    clean_what_the_kills_left(processes.killed_segments)


def test_kill_9_and_restart_pipeline(field: Field, tmp_path: Path) -> None:
    """plant_disease_pipeline killed with SIGKILL classifies new frames after a restart."""
    with node_processes(tmp_path / 'logs', remove_killed_segments=False) as processes:
        processes.start('plant_disease_pipeline', '-p', 'num_threads:=1')
        assert field.seconds_to_classification_of_next_frame(
            time.monotonic(), START_TIMEOUT_S) is not None, 'no classification at start'
        restart_s = restart(field, processes, 'plant_disease_pipeline')
        resumed = field.seconds_to_classification_of_next_frame(restart_s, RESUME_LIMIT_S)
        print(f'pipeline resumed {resumed and round(resumed, 3)} s after kill -9 and restart')
        assert resumed is not None, f'nothing within {RESUME_LIMIT_S} s of the restart'
        follow_a_frame_through(field, None)
    clean_what_the_kills_left(processes.killed_segments)
