"""Frame streams from another process reach the classifier (the measured delivery problem).

A camera-driver stand-in (``stream_publisher.py``) publishes 50 bgr8 frames at 10 Hz,
640x480 then 1920x1080, with a reliable (the default publisher QoS) or a best-effort
publisher. camera_subscriber and disease_classifier run as their own processes with the
shipped settings: ``qos_reliability`` 'auto' and ``config/fastdds_profile.xml``. The test
counts what arrives on ``classification`` and wants at least 90 % of the frames.

The best-effort driver gets the profile too, as the README tells camera drivers to: the
shared-memory segment that must hold a large best-effort frame is the publisher's. A
reliable driver runs without it.
"""

from __future__ import annotations

from collections.abc import Iterator
import json
from pathlib import Path
import select
import signal
import subprocess
import sys

from helpers.node_helpers import (
    Harness,
    python_module_command,
    require_shipped_model,
    results_qos,
    ros_subprocess_env,
)
import pytest

rclpy = pytest.importorskip('rclpy')

from diagnostic_msgs.msg import DiagnosticArray  # noqa: E402
from rclpy.qos import ReliabilityPolicy  # noqa: E402
from std_msgs.msg import String  # noqa: E402

PUBLISHER_SCRIPT = Path(__file__).resolve().parents[1] / 'helpers' / 'stream_publisher.py'
FRAME_COUNT = 50
RATE_HZ = 10.0
MIN_DELIVERED = 0.9
SIZES = [(640, 480), (1920, 1080)]
COUNTER_KEYS = ('received', 'processed', 'dropped', 'latency_mean_ms', 'latency_p95_ms')


def read_line(process: subprocess.Popen, timeout_s: float) -> str:
    """Return the next stdout line of ``process`` ('' on timeout or exit)."""
    ready, _, _ = select.select([process.stdout], [], [], timeout_s)
    return process.stdout.readline().strip() if ready else ''


def stop(process: subprocess.Popen) -> None:
    """Interrupt a process this test started, then kill it if it does not exit."""
    if process.poll() is None:
        process.send_signal(signal.SIGINT)
        try:
            process.wait(timeout=5)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(timeout=5)


class StreamRun:
    """The node processes, the publisher processes and the test's counting node."""

    def __init__(self, harness: Harness, log_dir: Path) -> None:
        self.harness = harness
        self.log_dir = log_dir
        self.processes: list[subprocess.Popen] = []
        self.received: dict[str, set[int]] = {}
        self.counters: dict[str, dict[str, str]] = {}
        harness.node.create_subscription(String, '/classification', self._count,
                                         results_qos(200))
        harness.node.create_subscription(DiagnosticArray, '/diagnostics',
                                         self._keep_counters, results_qos(50))

    def _count(self, msg: String) -> None:
        """Note which frame of which run was classified (frame_id '<run>/<index>')."""
        run_id, _, index = json.loads(msg.data)['frame_id'].partition('/')
        self.received.setdefault(run_id, set()).add(int(index))

    def _keep_counters(self, msg: DiagnosticArray) -> None:
        """Keep the nodes' latest frame counters (for the report and failure messages)."""
        for status in msg.status:
            values = {item.key: item.value for item in status.values}
            self.counters[status.hardware_id] = {key: values.get(key, '')
                                                 for key in COUNTER_KEYS}

    def start_publisher(self, width: int, height: int, reliability: str,
                        run_id: str) -> subprocess.Popen:
        """Start a stream publisher that waits for 'go'."""
        process = subprocess.Popen(
            [sys.executable, str(PUBLISHER_SCRIPT), '--width', str(width), '--height',
             str(height), '--rate-hz', str(RATE_HZ), '--count', str(FRAME_COUNT),
             '--reliability', reliability, '--frame-id', run_id],
            stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
            text=True, env=ros_subprocess_env(profile=reliability == 'best_effort'))
        self.processes.append(process)
        assert read_line(process, 20.0) == 'READY', 'the stream publisher did not start'
        return process

    def start_node(self, module: str, name: str) -> subprocess.Popen:
        """Start one of the package's nodes as a process with the shipped profile."""
        with open(self.log_dir / f'{name}.log', 'w') as log:
            process = subprocess.Popen(
                python_module_command(module, '-p', 'diagnostics_period_s:=1.0'),
                stdout=log, stderr=subprocess.STDOUT, env=ros_subprocess_env(profile=True))
        self.processes.append(process)
        return process

    def wait_graph(self, reliability: str, timeout_s: float = 25.0) -> None:
        """Wait until camera_subscriber matched the stream and the classifier is up."""
        node = self.harness.node
        expected = (ReliabilityPolicy.RELIABLE if reliability == 'reliable'
                    else ReliabilityPolicy.BEST_EFFORT)

        def ready() -> bool:
            cameras = node.get_subscriptions_info_by_topic('/image_raw')
            return (any(info.qos_profile.reliability == expected for info in cameras)
                    and len(node.get_subscriptions_info_by_topic('/frames')) >= 1
                    and len(node.get_publishers_info_by_topic('/classification')) >= 1)

        assert self.harness.wait(ready, timeout_s), self.logs()

    def stream(self, publisher: subprocess.Popen, run_id: str) -> int:
        """Let ``publisher`` send its frames; return how many were classified."""
        publisher.stdin.write('go\n')
        publisher.stdin.flush()
        # All frames in, or the stream's duration and a grace period.
        self.harness.wait(lambda: len(self.received.get(run_id, ())) >= FRAME_COUNT,
                          FRAME_COUNT / RATE_HZ + 4.0)
        return len(self.received.get(run_id, ()))

    def lost(self, run_id: str) -> list[int]:
        """Return the indices of the frames of ``run_id`` that were not classified."""
        return sorted(set(range(FRAME_COUNT)) - self.received.get(run_id, set()))

    def logs(self) -> str:
        """Return the node logs (for failure messages)."""
        return '\n'.join(path.read_text() for path in sorted(self.log_dir.glob('*.log')))

    def close(self) -> None:
        """Stop every process, newest first."""
        for process in reversed(self.processes):
            stop(process)


@pytest.fixture
def stream_run(ros_context, tmp_path) -> Iterator[StreamRun]:
    """Give a test a StreamRun; stop every process it started afterwards."""
    harness = Harness(ros_context)
    run = StreamRun(harness, tmp_path)
    try:
        yield run
    finally:
        run.close()
        harness.close()


@pytest.mark.parametrize('reliability', ['reliable', 'best_effort'])
def test_frame_stream_from_another_process_reaches_the_classifier(
        stream_run: StreamRun, reliability: str, record_property) -> None:
    """>= 90 % of 640x480 and 1920x1080 frames at 10 Hz are classified."""
    require_shipped_model()
    # Both "camera drivers" exist before the nodes start, as on a robot.
    publishers = {}
    for width, height in SIZES:
        run_id = f'{reliability}_{width}x{height}'
        publishers[run_id] = stream_run.start_publisher(width, height, reliability, run_id)
    stream_run.start_node('plant_disease_ros.nodes.camera_subscriber', 'camera_subscriber')
    stream_run.start_node('plant_disease_ros.nodes.disease_classifier', 'disease_classifier')
    stream_run.wait_graph(reliability)
    delivered = {}
    for run_id, publisher in publishers.items():
        delivered[run_id] = stream_run.stream(publisher, run_id)
        record_property(run_id, f'{delivered[run_id]}/{FRAME_COUNT}')
        print(f'{run_id}: {delivered[run_id]}/{FRAME_COUNT} frames classified, lost '
              f'{stream_run.lost(run_id)}; node counters so far {stream_run.counters}')
    if min(delivered.values()) < FRAME_COUNT:
        # Let the nodes' final counters arrive: they tell where frames were lost.
        stream_run.harness.wait(lambda: False, 1.2)
        print(f'final node counters {stream_run.counters}')
    for run_id, count in delivered.items():
        assert count >= MIN_DELIVERED * FRAME_COUNT, (
            f'{run_id}: only {count}/{FRAME_COUNT} classified (lost '
            f'{stream_run.lost(run_id)}); {delivered}; node counters '
            f'{stream_run.counters}\n{stream_run.logs()}')
