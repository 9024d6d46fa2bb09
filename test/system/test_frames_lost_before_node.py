"""Frames lost before camera_subscriber are counted: lost + dropped + processed = sent.

A camera-driver stand-in (``helpers/stream_publisher.py``, its own process) sends 50
frames as fast as it can, to camera_subscriber running in the test process:

- reliable 1920x1080: most of what the node does not take was replaced in its depth-1
  queue by a newer frame (``dropped_by_design``); a few may be lost on the way when the
  driver's keep-last-10 history drops frames not yet acknowledged (Fast DDS reports those
  lost: ``lost_in_transport``);
- best effort 640x480 from a driver without the package's Fast DDS profile: its 512 KB
  shared-memory segment cannot hold such a frame, so the middleware loses them on the
  way (``lost_in_transport``), as a misconfigured camera driver does.

The first and last frames are tiny and the stream starts once the node has taken the
first, so every frame sent lies inside the span of sequence numbers the node saw. The
node's counts are checked against the driver's own: the frame indices the node never
took are exactly its sequence gaps, and received + dropped_by_design + lost_in_transport
is the number of frames the driver sent.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
import select
import sys

from helpers.processes import child_environment, NodeProcesses
from helpers.ros import Harness, parameters
import pytest

rclpy = pytest.importorskip('rclpy')

from rclpy.qos import ReliabilityPolicy  # noqa: E402

from plant_disease_ros.nodes.camera_subscriber import CameraSubscriberNode  # noqa: E402
from plant_disease_ros.tools.process import ChildProcess  # noqa: E402

PUBLISHER_SCRIPT = Path(__file__).resolve().parents[1] / 'helpers' / 'stream_publisher.py'
FRAME_COUNT = 50


def read_line(child: ChildProcess, timeout_s: float) -> str:
    """Return the next stdout line of ``child`` ('' on timeout or exit)."""
    ready, _, _ = select.select([child.popen.stdout], [], [], timeout_s)
    return child.popen.stdout.readline().strip() if ready else ''


def send_line(child: ChildProcess, line: str) -> None:
    child.popen.stdin.write(line + '\n')
    child.popen.stdin.flush()


@pytest.fixture
def rig(ros_context, tmp_path) -> Iterator[tuple[Harness, NodeProcesses, CameraSubscriberNode]]:
    camera = CameraSubscriberNode(context=ros_context, parameter_overrides=parameters(
        crop_mode='none', diagnostics_period_s=0.2))
    harness = Harness(ros_context, [camera], name='frames_lost_test')
    processes = NodeProcesses(tmp_path)
    try:
        yield harness, processes, camera
    finally:
        processes.stop()
        harness.close()


@pytest.mark.parametrize('reliability, width, height', [
    ('reliable', 1920, 1080), ('best_effort', 640, 480)])
def test_lost_dropped_and_processed_add_up_to_what_the_camera_sent(
        rig, reliability: str, width: int, height: int) -> None:
    harness, processes, camera = rig
    taken: list[int] = []
    camera.add_frame_listener(
        lambda rgb, header: taken.append(int(header.frame_id.rpartition('/')[2])))
    driver = processes.start_script('camera_driver', [
        sys.executable, str(PUBLISHER_SCRIPT), '--width', str(width), '--height', str(height),
        '--rate-hz', '1000', '--count', str(FRAME_COUNT), '--reliability', reliability,
        '--frame-id', 'camera', '--small-ends'], env=child_environment(profile=False))
    assert read_line(driver, 30.0) == 'READY', processes.logs()
    expected = (ReliabilityPolicy.RELIABLE if reliability == 'reliable'
                else ReliabilityPolicy.BEST_EFFORT)
    subscription = camera.image_subscription
    assert harness.wait(lambda: subscription.reliability == expected
                        and not subscription.handing_over
                        and subscription.subscription.get_publisher_count() >= 1, 30.0)
    send_line(driver, 'go')
    assert harness.wait(lambda: camera.diagnostics.received >= 1, 30.0), processes.logs()
    assert read_line(driver, 10.0) == 'FIRST'
    send_line(driver, 'next')
    lines: list[str] = []

    def last_frame_taken() -> bool:
        line = read_line(driver, 0.0)
        if line:
            lines.append(line)
        return bool(lines) and camera.sequence_gaps.sent == FRAME_COUNT

    assert harness.wait(last_frame_taken, 120.0), (lines, taken, processes.logs())
    assert lines == [f'DONE {FRAME_COUNT}']
    if reliability == 'best_effort':
        # Frames too large for the driver's shared memory never arrive whole.
        assert harness.wait(lambda: camera.lost_in_transport > 0)
    gaps = camera.sequence_gaps
    diagnostics = camera.diagnostics
    missing = sorted(set(range(FRAME_COUNT)) - set(taken))
    # The node's sequence gaps are exactly the frames the driver sent that it never took.
    assert (taken[0], taken[-1]) == (0, FRAME_COUNT - 1)
    assert taken == sorted(set(taken))
    assert gaps.missed == len(missing)
    assert diagnostics.received == gaps.received == len(taken)
    assert diagnostics.received == (diagnostics.processed + diagnostics.dropped
                                    + diagnostics.rejected_total())
    assert camera.lost_in_transport <= gaps.missed
    assert (diagnostics.processed + camera.dropped_by_design + camera.lost_in_transport
            == FRAME_COUNT)
    [gid] = gaps.publishers
    assert harness.wait(lambda: camera.diagnostics.values.get(f'publisher.{gid.hex()}.sent')
                        == FRAME_COUNT)
    print(f'{reliability} {width}x{height}: sent {FRAME_COUNT}, processed '
          f'{diagnostics.processed}, dropped_by_design {camera.dropped_by_design}, '
          f'lost_in_transport {camera.lost_in_transport}')
