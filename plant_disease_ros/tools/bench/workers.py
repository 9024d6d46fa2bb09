"""The bench's worker programs, each a separate process: camera publisher, Keras baseline,
DDS relay; and the client that drives the publisher over its stdin and stdout.

``python -m plant_disease_ros.tools.bench publisher|baseline|relay`` runs one; the bench
starts them through ``plant_disease_ros.tools.process``.
"""

from __future__ import annotations

import argparse
import array
from collections.abc import Iterator, Sequence
import json
import os
import queue
import select
import signal
import subprocess
import sys
import threading
import time
from types import FrameType
from typing import Any

import cv2
import numpy as np

from plant_disease_ros.core import allocator_tuning
from plant_disease_ros.tools.bench.config import BenchError
from plant_disease_ros.tools.bench.environment import prepare_environment
from plant_disease_ros.tools.bench.frames import bench_frame, jpeg_bytes
from plant_disease_ros.tools.bench.plan import Phase
from plant_disease_ros.tools.bench.stats import summarize
from plant_disease_ros.tools.process import (
    check_alive,
    ChildProcess,
    ProcessGroup,
    Terminated,
)

WORKER_MODULE = 'plant_disease_ros.tools.bench'
PUBLISHER = 'publisher'
# How often the publisher, waiting for a command, looks for a stop signal: one taken by
# another thread of the process (a DDS thread) runs its Python handler only when the main
# thread runs again.
COMMAND_POLL_S = 0.2
# How long the bench waits for the publisher to end after its 'quit' before stopping it.
QUIT_TIMEOUT_S = 5.0


def worker_command(worker: str, *args: str) -> list[str]:
    """Return the argv that runs ``worker`` ('publisher', 'baseline' or 'relay')."""
    return [sys.executable, '-m', WORKER_MODULE, worker, *args]


def emit(event: dict[str, Any]) -> None:
    """Write one JSON line to stdout for the bench."""
    sys.stdout.write(json.dumps(event) + '\n')
    sys.stdout.flush()


def wait_for_subscriber(publisher: Any, timeout_s: float) -> bool:
    """Wait until ``publisher`` has matched a subscriber; return whether it did."""
    deadline = time.monotonic() + timeout_s
    while publisher.get_subscription_count() == 0:
        if time.monotonic() > deadline:
            return False
        time.sleep(0.05)
    return True


class StopSignals:
    """SIGINT, SIGTERM and SIGHUP end a worker's loop: the first raises :class:`Terminated`.

    Installed before rclpy (which is then told to install none): rclpy's own SIGTERM
    handler shuts the context down but leaves a worker blocked on its stdin. SIGINT is
    handled even when inherited ignored (a bench run as a shell's background job starts
    its children so); SIGHUP stays ignored under ``nohup``. Signals that come once the
    worker is stopping (:meth:`stopping`) are only noted: they would cut its clean-up
    (destroying its node frees its DDS shared memory) short.
    """

    def __init__(self) -> None:
        """Start with no signal taken and no handlers installed."""
        self.signum: int | None = None
        self._stopping = False

    def install(self) -> None:
        """Handle the stop signals in this (main) thread from now on."""
        for signum in (signal.SIGINT, signal.SIGTERM, signal.SIGHUP):
            if signum == signal.SIGHUP and signal.getsignal(signum) is signal.SIG_IGN:
                continue
            signal.signal(signum, self._handle)

    def stopping(self) -> None:
        """Only note the signals from now on (the worker cleans up)."""
        self._stopping = True

    def _handle(self, signum: int, frame: FrameType | None) -> None:
        if self.signum is not None or self._stopping:
            return
        self.signum = signum
        raise Terminated(signum)


def stdin_lines(poll_s: float = COMMAND_POLL_S) -> Iterator[str]:
    """Yield stdin's lines until it closes, returning to Python every ``poll_s``.

    A plain ``for line in sys.stdin`` stays blocked in ``read`` when a stop signal is taken
    by another thread; here the signal's handler runs within ``poll_s``. Reads the file
    descriptor itself, so no thread holds ``sys.stdin``'s lock at exit.
    """
    fd = sys.stdin.fileno()
    pending = b''
    while True:
        ready, _, _ = select.select([fd], [], [], poll_s)
        if not ready:
            continue
        chunk = os.read(fd, 65536)
        if not chunk:
            if pending:
                yield pending.decode()
            return
        pending += chunk
        *lines, pending = pending.split(b'\n')
        for line in lines:
            yield line.decode() + '\n'


def run_publisher(argv: Sequence[str]) -> int:
    """Worker: a camera publishing bgr8 Image and JPEG CompressedImage on command.

    Reads JSON commands on stdin: ``{"cmd": "phase", "name", "width", "height",
    "transport", "rate_hz", "duration_s"}`` publishes that stream (stamp = publish
    wall-clock time, frame_id = name) and answers ``{"event": "phase_done", ...}``;
    ``{"cmd": "quit"}`` or the end of stdin ends it, and so does a stop signal, SIGINT
    even when inherited ignored (:class:`StopSignals`): it then destroys its node, shuts
    rclpy down and returns 0. Publishers use the default QoS (reliable, keep last 10), as
    a camera driver left at its defaults does.
    """
    parser = argparse.ArgumentParser(prog='bench publisher')
    parser.add_argument('--match-timeout-s', type=float, default=30.0)
    args = parser.parse_args(argv)
    stop = StopSignals()
    stop.install()
    rclpy: Any = None
    node: Any = None
    try:
        import rclpy
        from rclpy.node import Node
        from rclpy.qos import QoSProfile
        from rclpy.signals import SignalHandlerOptions
        from sensor_msgs.msg import CompressedImage, Image

        rclpy.init(signal_handler_options=SignalHandlerOptions.NO)
        node = Node('bench_camera')
        publishers = {
            'raw': node.create_publisher(Image, 'image_raw', QoSProfile(depth=10)),
            'compressed': node.create_publisher(CompressedImage, 'image_raw/compressed',
                                                QoSProfile(depth=10)),
        }
        messages: dict[tuple[int, int, str], Any] = {}

        def message(width: int, height: int, transport: str) -> Any:
            key = (width, height, transport)
            if key not in messages:
                bgr = bench_frame(width, height)
                if transport == 'raw':
                    msg = Image(height=height, width=width, encoding='bgr8', step=width * 3)
                    msg.data = array.array('B', bgr.tobytes())
                else:
                    msg = CompressedImage(format='bgr8; jpeg compressed bgr8')
                    msg.data = array.array('B', jpeg_bytes(bgr))
                messages[key] = msg
            return messages[key]

        emit({'event': 'ready', 'pid': os.getpid()})
        for line in stdin_lines():
            command = json.loads(line)
            if command.get('cmd') == 'quit':
                break
            emit(publish_phase(publishers[command['transport']],
                               message(int(command['width']), int(command['height']),
                                       command['transport']),
                               command, args.match_timeout_s))
    except Terminated as stopped:
        print(f'bench publisher: {stopped}, stopping', file=sys.stderr)
    finally:
        stop.stopping()
        if node is not None:
            node.destroy_node()
        if rclpy is not None:
            rclpy.try_shutdown()
    return 0


def publish_phase(publisher: Any, msg: Any, command: dict, match_timeout_s: float) -> dict:
    """Publish ``msg`` at ``rate_hz`` for ``duration_s``; return the phase report."""
    name = str(command['name'])
    if not wait_for_subscriber(publisher, match_timeout_s):
        return {'event': 'phase_done', 'name': name, 'published': 0,
                'error': f'no subscriber on {publisher.topic_name} after {match_timeout_s} s'}
    rate_hz = float(command['rate_hz'])
    period_s = 1.0 / rate_hz if rate_hz > 0 else 0.0
    msg.header.frame_id = name
    published = 0
    publish_ms: list[float] = []
    start = time.monotonic()
    end = start + float(command['duration_s'])
    next_s = start
    t0_ns = time.time_ns()
    while True:
        now = time.monotonic()
        if now >= end:
            break
        if next_s > now:
            time.sleep(min(next_s - now, end - now))
            continue
        stamp_ns = time.time_ns()
        msg.header.stamp.sec, msg.header.stamp.nanosec = divmod(stamp_ns, 1_000_000_000)
        publisher.publish(msg)
        publish_ms.append((time.time_ns() - stamp_ns) / 1e6)
        published += 1
        # A publisher that falls behind does not burst to catch up.
        next_s = max(next_s + period_s, time.monotonic() - period_s)
    t1_ns = time.time_ns()
    # publish() itself: serialising the frame and handing it to DDS, inside the latency.
    return {'event': 'phase_done', 'name': name, 'published': published, 't0_ns': t0_ns,
            't1_ns': t1_ns, 'publish_ms': summarize(publish_ms)}


def run_baseline(argv: Sequence[str]) -> int:
    """Worker: the seed-style node -- Keras ``model.predict`` on every frame.

    Written the way Keras tutorials and the seed projects do it: a default-QoS
    subscription (reliable, depth 10), the frame turned into a numpy array, resized and
    passed to ``model.predict`` one at a time; the result published as JSON on
    ``classification`` with the image stamp (the same shape as disease_classifier's).
    """
    parser = argparse.ArgumentParser(prog='bench baseline')
    parser.add_argument('--keras-model', required=True)
    parser.add_argument('--labels', required=True)
    args = parser.parse_args(argv)
    import tensorflow as tf

    from plant_disease_ros.core.labels import load_labels

    model = tf.keras.models.load_model(args.keras_model, compile=False)
    height, width = (int(side) for side in model.input_shape[1:3])
    labels = load_labels(args.labels)
    model.predict(np.zeros((1, height, width, 3), np.float32), verbose=0)

    import rclpy
    from rclpy.node import Node
    from sensor_msgs.msg import Image
    from std_msgs.msg import String

    from plant_disease_ros.ros.conversions import header_to_dict
    from plant_disease_ros.ros.startup import spin_until_shutdown

    rclpy.init()
    node = Node('keras_baseline')
    publisher = node.create_publisher(String, 'classification', 10)

    def on_image(msg: Image) -> None:
        channels = 4 if msg.encoding in ('rgba8', 'bgra8') else 3
        frame = np.frombuffer(msg.data, dtype=np.uint8).reshape(msg.height, msg.width,
                                                                channels)
        rgb = cv2.cvtColor(frame, cv2.COLOR_BGR2RGB) if msg.encoding == 'bgr8' else frame
        batch = np.expand_dims(cv2.resize(rgb, (width, height)).astype(np.float32), 0)
        probabilities = model.predict(batch, verbose=0)[0]
        index = int(np.argmax(probabilities))
        publisher.publish(String(data=json.dumps({
            **header_to_dict(msg.header),
            'label': labels[index] if index < len(labels) else str(index),
            'confidence': float(probabilities[index]),
        })))

    node.create_subscription(Image, 'image_raw', on_image, 10)
    spin_until_shutdown(node)
    return 0


def run_relay(argv: Sequence[str]) -> int:
    """Worker: the DDS floor -- pass each frame's stamp on to ``classification``, no work.

    Subscribes ``image_raw`` as the nodes do (reliable, keep last 1, against the
    default-QoS camera) and publishes the classification-shaped JSON with the frame's
    stamp and frame id at once: two DDS hops between Python processes, no conversion or
    model. Like the nodes, it keeps freed frame buffers resident (``allocator_tuning``).
    """
    argparse.ArgumentParser(prog='bench relay').parse_args(argv)
    allocator_tuning.keep_frame_buffers_resident()
    import rclpy
    from rclpy.node import Node
    from rclpy.qos import QoSProfile, ReliabilityPolicy
    from sensor_msgs.msg import Image
    from std_msgs.msg import String

    from plant_disease_ros.ros.conversions import header_to_dict
    from plant_disease_ros.ros.startup import spin_until_shutdown

    rclpy.init()
    node = Node('dds_relay')
    publisher = node.create_publisher(String, 'classification', 10)

    def on_image(msg: Image) -> None:
        publisher.publish(String(data=json.dumps(header_to_dict(msg.header))))

    node.create_subscription(Image, 'image_raw', on_image,
                             QoSProfile(depth=1, reliability=ReliabilityPolicy.RELIABLE))
    spin_until_shutdown(node)
    return 0


WORKERS = {'publisher': run_publisher, 'baseline': run_baseline, 'relay': run_relay}


def main(argv: Sequence[str] | None = None) -> int:
    """Run a worker: ``python -m plant_disease_ros.tools.bench publisher|baseline|relay ...``."""
    args = list(sys.argv[1:] if argv is None else argv)
    if not args or args[0] not in WORKERS:
        print(f'usage: python -m {WORKER_MODULE} {{{",".join(WORKERS)}}} ...; '
              'the bench itself is `plant-disease bench`', file=sys.stderr)
        return 2
    prepare_environment()
    return WORKERS[args[0]](args[1:])


class PublisherWorker:
    """Drive the publisher worker process: one phase at a time over stdin/stdout."""

    def __init__(self, group: ProcessGroup, start_timeout_s: float = 60.0) -> None:
        """Start the worker in ``group`` and wait until its publishers exist."""
        self.child: ChildProcess = group.start(PUBLISHER, worker_command(PUBLISHER),
                                               pipes=True)
        self.lines: queue.Queue[str] = queue.Queue()
        threading.Thread(target=self.read_stdout, name='bench_publisher_reader',
                         daemon=True).start()
        ready = self.next_event(timeout_s=start_timeout_s)
        if ready.get('event') != 'ready':
            raise BenchError(f'publisher did not start: {ready}')

    def read_stdout(self) -> None:
        """Queue the worker's stdout lines until it closes (runs in a thread)."""
        stdout = self.child.popen.stdout
        if stdout is None:
            return
        try:
            for line in stdout:
                self.lines.put(line)
        except (OSError, ValueError):
            return  # closed by the group's stop

    def next_event(self, timeout_s: float) -> dict:
        """Return the worker's next JSON event; raise if it exits or stays silent."""
        deadline = time.monotonic() + timeout_s
        while True:
            try:
                line = self.lines.get(timeout=0.5)
            except queue.Empty:
                check_alive([self.child])
                if time.monotonic() > deadline:
                    raise BenchError(f'publisher silent for {timeout_s:.0f} s') from None
                continue
            try:
                return json.loads(line)
            except ValueError:
                continue  # a stray log line

    def close(self, timeout_s: float = QUIT_TIMEOUT_S) -> bool:
        """Ask the worker to quit and close its stdin; return whether it ended in time.

        Called before the rig's group is stopped, so the worker ends on its own (its node
        destroyed, its DDS shared memory freed) rather than by signals.
        """
        stdin = self.child.popen.stdin
        if stdin is not None and not stdin.closed:
            try:
                stdin.write(json.dumps({'cmd': 'quit'}) + '\n')
                stdin.flush()
            except (OSError, ValueError):
                pass  # it has gone already
            try:
                stdin.close()
            except (OSError, ValueError):
                pass
        try:
            self.child.popen.wait(timeout=timeout_s)
        except subprocess.TimeoutExpired:
            return False
        return True

    def run_phase(self, phase: Phase) -> dict:
        """Publish one phase and return the worker's report."""
        stdin = self.child.popen.stdin
        if stdin is None:
            raise BenchError('the publisher has no stdin pipe')
        stdin.write(json.dumps({
            'cmd': 'phase', 'name': phase.name, 'width': phase.width,
            'height': phase.height, 'transport': phase.transport,
            'rate_hz': phase.rate_hz, 'duration_s': phase.duration_s}) + '\n')
        stdin.flush()
        report = self.next_event(timeout_s=phase.duration_s + 60.0)
        if report.get('error'):
            raise BenchError(f'publisher: {report["error"]}')
        return report
