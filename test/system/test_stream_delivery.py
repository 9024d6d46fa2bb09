"""Frame streams from another process through camera_subscriber and disease_classifier.

A camera-driver stand-in (``helpers/stream_publisher.py``) publishes 50 bgr8 frames at
10 Hz, 640x480 then 1920x1080, with a reliable (the default publisher QoS) or a
best-effort publisher. camera_subscriber and disease_classifier run as their own
processes with the shipped settings: ``qos_reliability`` 'auto' and the package's Fast DDS
profile. The best-effort driver gets the profile too, as the README tells camera drivers
to: the shared-memory segment that must hold a large best-effort frame is the
publisher's. A reliable driver runs without it.

How many of the frames reach the nodes depends on how busy the host is: image
subscriptions keep only the newest frame, by design. So the test asserts what the design
guarantees, and the bench measures delivery ratios:

- every frame a node received was processed, dropped or rejected (its counters add up);
- every frame the classifier processed gave one classification (nothing is lost inside
  the nodes or on the reliable results topic);
- the newest frame wins: classifications come in frame order, and the last frame of a
  reliable stream is always classified.

Before the streams, the test primes the chain with frames of its own until one comes out
classified: then every endpoint has matched, the test's result reader included.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
import select
import sys

from helpers.images import leaf_rgb, make_image
from helpers.processes import child_environment, NodeProcesses
from helpers.ros import diagnostics_collector, Harness, latest_diagnostics, statuses
from helpers.shipped_model import require_shipped_model
import pytest

rclpy = pytest.importorskip('rclpy')

from rclpy.qos import QoSProfile, ReliabilityPolicy  # noqa: E402
from sensor_msgs.msg import Image  # noqa: E402
from std_msgs.msg import String  # noqa: E402

from plant_disease_ros.tools.process import ChildProcess  # noqa: E402

PUBLISHER_SCRIPT = Path(__file__).resolve().parents[1] / 'helpers' / 'stream_publisher.py'
FRAME_COUNT = 50
RATE_HZ = 10.0
SIZES = [(640, 480), (1920, 1080)]
CAMERA, CLASSIFIER = 'camera_subscriber', 'disease_classifier'
CLASSIFICATION = '/classification'
PRIMER = 'primer'


def read_line(child: ChildProcess, timeout_s: float) -> str:
    """Return the next stdout line of ``child`` ('' on timeout or exit)."""
    ready, _, _ = select.select([child.popen.stdout], [], [], timeout_s)
    return child.popen.stdout.readline().strip() if ready else ''


def counter(values: dict[str, str], key: str) -> int:
    """Return a diagnostics counter as an int."""
    return int(values[key])


class StreamRun:
    """The node processes, the stream publishers and the test's collecting node."""

    def __init__(self, harness: Harness, processes: NodeProcesses) -> None:
        self.harness = harness
        self.processes = processes
        self.results = diagnostics_collector(harness.node, (CLASSIFICATION, String))
        self.primers_sent = 0
        self.primers_lost = 0

    def start_publisher(self, width: int, height: int, reliability: str,
                        run_id: str) -> ChildProcess:
        """Start a stream publisher that waits for 'go'."""
        child = self.processes.start_script(
            run_id, [sys.executable, str(PUBLISHER_SCRIPT), '--width', str(width),
                     '--height', str(height), '--rate-hz', str(RATE_HZ), '--count',
                     str(FRAME_COUNT), '--reliability', reliability, '--frame-id', run_id],
            env=child_environment(profile=reliability == 'best_effort'))
        assert read_line(child, 30.0) == 'READY', self.processes.logs()
        return child

    def indices(self, run_id: str) -> list[int]:
        """Return the frame indices of ``run_id`` classified, in arrival order."""
        indices = []
        for frame_id in self.results.frame_ids(CLASSIFICATION):
            run, _, index = frame_id.partition('/')
            if run == run_id:
                indices.append(int(index))
        return indices

    def values(self, node_name: str) -> dict[str, str]:
        """Return the latest diagnostics values of a node ({} before the first)."""
        return latest_diagnostics(self.results, node_name) or {}

    def wait_graph(self, reliability: str) -> None:
        """Wait until the camera subscribes the stream and every result reaches the test."""
        node = self.harness.node
        expected = (ReliabilityPolicy.RELIABLE if reliability == 'reliable'
                    else ReliabilityPolicy.BEST_EFFORT)
        diagnostics, classifications = self.results.subscriptions

        def ready() -> bool:
            self.processes.check_alive()
            cameras = node.get_subscriptions_info_by_topic('/image_raw')
            return (any(info.qos_profile.reliability == expected for info in cameras)
                    and len(node.get_subscriptions_info_by_topic('/frames')) >= 1
                    and classifications.get_publisher_count() >= 1
                    and diagnostics.get_publisher_count() >= 2)

        assert self.harness.wait(ready, 60.0), self.processes.logs()
        # Seeing the classifier's writer does not mean it sees the test's reader yet: send
        # frames of the run's reliability until one comes out classified.
        primer = node.create_publisher(Image, '/image_raw', QoSProfile(
            depth=1, reliability=expected))
        frame = make_image(leaf_rgb(64, 48), 'bgr8', frame_id=f'{PRIMER}/0')

        def primed() -> bool:
            self.processes.check_alive()
            primer.publish(frame)
            self.primers_sent += 1
            return self.harness.wait(lambda: PRIMER in self.run_ids(), 1.0)

        assert self.harness.wait(primed, 60.0), self.processes.logs()
        node.destroy_publisher(primer)
        self.primers_lost = self.wait_primers_settled()

    def wait_primers_settled(self) -> int:
        """Wait until the classifier's count holds still; return primers not received.

        Primers published before the test's reader matched were classified but never
        reached the test: they are the only classifications the test may miss.
        """
        start = len(statuses(self.results, CLASSIFIER))

        def steady() -> bool:
            fresh = statuses(self.results, CLASSIFIER)[start:]
            if len(fresh) < 2:
                return False
            last_two = [{item.key: item.value for item in status.values}['processed']
                        for status in fresh[-2:]]
            return last_two[0] == last_two[1]

        assert self.harness.wait(steady, 30.0), self.values(CLASSIFIER)
        lost = counter(self.values(CLASSIFIER), 'processed') - self.results.count(
            CLASSIFICATION)
        assert 0 <= lost < self.primers_sent, (lost, self.primers_sent)
        return lost

    def run_ids(self) -> set[str]:
        """Return the runs (frame_id prefixes) of the classifications received."""
        return {frame_id.partition('/')[0]
                for frame_id in self.results.frame_ids(CLASSIFICATION)}

    def settled(self) -> bool:
        """Return whether the classifier has published every frame it processed."""
        processed = self.values(CLASSIFIER).get('processed')
        return processed is not None and int(processed) == (
            self.results.count(CLASSIFICATION) + self.primers_lost)

    def stream(self, publisher: ChildProcess, run_id: str, reliability: str) -> list[int]:
        """Let ``publisher`` send its frames; return the indices classified."""
        publisher.popen.stdin.write('go\n')
        publisher.popen.stdin.flush()
        lines: list[str] = []

        def publisher_done() -> bool:
            # The harness spins meanwhile: results are taken as they come.
            line = read_line(publisher, 0.0)
            if line:
                lines.append(line)
            return bool(lines)

        assert self.harness.wait(publisher_done, 120.0), self.processes.logs()
        assert lines == [f'DONE {FRAME_COUNT}'], lines
        last = FRAME_COUNT - 1

        def run_settled() -> bool:
            # A reliable stream's last frame is the newest: it is always classified.
            return self.settled() and (reliability != 'reliable' or last in self.indices(run_id))

        assert self.harness.wait(run_settled, 60.0), (
            run_id, self.indices(run_id), self.values(CAMERA), self.values(CLASSIFIER))
        return self.indices(run_id)


@pytest.fixture
def stream_run(ros_context, tmp_path) -> Iterator[StreamRun]:
    """Give a test a StreamRun; stop every process it started afterwards."""
    harness = Harness(ros_context, name='stream_delivery_test')
    processes = NodeProcesses(tmp_path)
    try:
        yield StreamRun(harness, processes)
    finally:
        processes.stop()
        harness.close()


def check_counters_add_up(run: StreamRun) -> None:
    """Every status of each node: received = processed + dropped + rejected."""
    for node_name in (CAMERA, CLASSIFIER):
        found = statuses(run.results, node_name)
        assert found, f'no diagnostics from {node_name}'
        for status in found:
            values = {item.key: item.value for item in status.values}
            assert counter(values, 'received') == (
                counter(values, 'processed') + counter(values, 'dropped')
                + counter(values, 'rejected')), (node_name, values)
            # No rate cap and good frames: nothing is dropped or rejected.
            assert (values['dropped'], values['rejected']) == ('0', '0'), (node_name, values)


@pytest.mark.parametrize('reliability', ['reliable', 'best_effort'])
def test_frame_stream_from_another_process_is_accounted_for(
        stream_run: StreamRun, reliability: str, record_property) -> None:
    """Frames received are all classified, in order; the newest frame always wins."""
    require_shipped_model()
    # Both "camera drivers" exist before the nodes start, as on a robot.
    publishers = {}
    for width, height in SIZES:
        run_id = f'{reliability}_{width}x{height}'
        publishers[run_id] = stream_run.start_publisher(width, height, reliability, run_id)
    for name in (CAMERA, CLASSIFIER):
        stream_run.processes.start(name, '-p', 'diagnostics_period_s:=0.5')
    stream_run.wait_graph(reliability)

    for run_id, publisher in publishers.items():
        indices = stream_run.stream(publisher, run_id, reliability)
        # Delivery is the bench's figure; the test only reports it.
        record_property(run_id, f'{len(indices)}/{FRAME_COUNT}')
        print(f'{run_id}: {len(indices)}/{FRAME_COUNT} frames classified; node counters '
              f'{stream_run.values(CAMERA)} {stream_run.values(CLASSIFIER)}')
        assert indices, f'{run_id}: no frame classified'
        # Newest wins: never an older frame after a newer one, never one frame twice.
        assert indices == sorted(set(indices)), (run_id, indices)
        assert all(0 <= index < FRAME_COUNT for index in indices), indices

    assert stream_run.run_ids() == {PRIMER, *publishers}
    # The classifier published every frame it processed, and took no frame the camera
    # did not pass on; the camera took no more frames than were sent.
    assert stream_run.harness.wait(lambda: stream_run.settled() and counter(
        stream_run.values(CAMERA), 'processed') >= counter(
        stream_run.values(CLASSIFIER), 'received'), 30.0), (
        stream_run.values(CAMERA), stream_run.values(CLASSIFIER))
    assert counter(stream_run.values(CAMERA), 'received') <= (
        FRAME_COUNT * len(publishers) + stream_run.primers_sent)
    check_counters_add_up(stream_run)
