"""Benchmark the model, the core and the nodes on this machine, in one run.

Sections (each optional, see ``SECTIONS``):

- ``model``: bare interpreter ``invoke()`` at 1 and 2 threads, core ``classify()`` on
  640x480 and 1920x1080 frames (resize included), and the message conversions the nodes
  do per frame.
- ``latency``: end to end, from the camera publishing a frame to the ``classification``
  JSON arriving, through the nodes over DDS: 640x480 and 1920x1080, raw bgr8 and JPEG,
  as two processes (camera_subscriber + disease_classifier) and as the single-process
  pipeline, and the DDS floor: a relay that passes each stamp on with no work. The
  camera publishes at its default QoS (reliable, keep last 10) at 5 Hz, so every frame
  is measured unqueued.
- ``sustained``: 30 fps at 640x480 and a 60 fps 1080p flood: processed fps, dropped
  frames, latency p95 over the run and over its first and last 10 s, CPU% and RSS of each
  node process (psutil) and the RSS growth.
- ``capacity``: 640x480 offered at 300 fps, more than any rig takes: processed fps is the
  rig's capacity on this machine.
- ``baseline``: a seed-style rclpy node that runs the float Keras model with
  ``model.predict`` on every frame (what Keras tutorial code does), fed the same 1080p
  flood and the same capacity input; the throughput ratios of our layouts to it.
- ``explain``: the cost of the optional ``explanation`` output (occlusion map, grid 4).

Every frame's header stamp is the wall-clock time it was published (``time.time_ns``,
the same clock in every process on the machine) and its ``frame_id`` names the phase, so
the probe that receives ``classification`` attributes and times every frame.

The camera, the nodes, the relay and the baseline run as separate processes started by
the bench; ``python -m plant_disease_ros.tools.bench publisher|baseline|relay`` are those
workers. Every process gets ``ROS_AUTOMATIC_DISCOVERY_RANGE=LOCALHOST`` (unless set)
and the bench's ``ROS_DOMAIN_ID``.
"""

from __future__ import annotations

import argparse
import array
from collections import defaultdict
from collections.abc import Callable, Iterable, Sequence
from dataclasses import asdict, dataclass, field
from datetime import datetime, timezone
import importlib.metadata
import json
import math
import os
from pathlib import Path
import platform
import queue
import signal
import subprocess
import sys
import tempfile
import threading
import time
from typing import Any

import cv2
import numpy as np

from plant_disease_ros.core import allocator_tuning
from plant_disease_ros.tools.machine import cpu_model, cpu_time_counters, steal_percent

SECTIONS: tuple[str, ...] = ('model', 'latency', 'sustained', 'capacity', 'baseline',
                             'explain')
SIZES: dict[str, tuple[int, int]] = {'640x480': (640, 480), '1920x1080': (1920, 1080)}
TRANSPORTS: tuple[str, ...] = ('raw', 'compressed')
LAYOUTS: tuple[str, ...] = ('nodes', 'pipeline')
LATENCY_RATE_HZ = 5.0
SUSTAINED_RUNS: tuple[tuple[float, str], ...] = ((30.0, '640x480'), (60.0, '1920x1080'))
FLOOD = (60.0, '1920x1080')
# Offered more frames than any rig here takes: processed fps is then its capacity.
CAPACITY = (300.0, '640x480')
EXPLAIN_PERIOD_S = 1.0
EXPLAIN_GRID = 4
KERAS_MODEL_FILENAME = 'plant_disease_float.keras'
FLAT_WINDOW_S = 10.0
RSS_SETTLE_S = 5.0
SAMPLE_PERIOD_S = 0.5
JPEG_QUALITY = 90
# Bars of issue 6, checked at the end of a run.
BAR_E2E_OVER_INVOKE_MS = 3.0
BAR_RSS_GROWTH_MB = 10.0
BAR_FLAT_RATIO = 1.25
BAR_FLAT_SLACK_MS = 2.0
BAR_BASELINE_RATIO = 20.0
# Above this share of CPU time stolen by a VM host in any phase, the report flags the run.
STEAL_BUSY_PERCENT = 1.0

PACKAGES: tuple[str, ...] = (
    'plant_disease_ros', 'numpy', 'opencv-python-headless', 'opencv-python', 'ai-edge-litert',
    'tflite-runtime', 'tensorflow-cpu', 'tensorflow', 'keras', 'rclpy', 'ros-rclpy',
    'ros-fastdds', 'ros-rmw-fastrtps-cpp', 'psutil')


class BenchError(RuntimeError):
    """A part of the bench that could not run (a node died, no frames came back)."""


@dataclass
class BenchConfig:
    """What to run and for how long."""

    sections: tuple[str, ...] = SECTIONS
    duration_s: float = 60.0  # each sustained run
    latency_duration_s: float = 10.0  # each latency phase
    baseline_duration_s: float = 30.0
    capacity_duration_s: float = 20.0
    model_iterations: int = 500
    model_path: str = ''
    labels_path: str = ''
    keras_model: str = ''
    num_threads: int = 2
    domain_id: int | None = None
    log_dir: str = ''
    quick: bool = False
    progress: Callable[[str], None] | None = None

    @classmethod
    def quick_config(cls, **overrides: Any) -> BenchConfig:
        """Return the ~1-2 minute smoke configuration (every path, short phases)."""
        values: dict[str, Any] = {'duration_s': 8.0, 'latency_duration_s': 3.0,
                                  'baseline_duration_s': 8.0, 'capacity_duration_s': 5.0,
                                  'model_iterations': 100,
                                  'quick': True}
        values.update(overrides)
        return cls(**values)


# Environment and machine ------------------------------------------------------------


def _repo_or_share_file(*parts: str) -> Path | None:
    """Return a package data file from the ament share directory or the source tree."""
    try:
        from ament_index_python.packages import get_package_share_directory
        share = Path(get_package_share_directory('plant_disease_ros'))
        if share.joinpath(*parts).is_file():
            return share.joinpath(*parts)
    except Exception:  # noqa: BLE001 - no ament index: use the source tree
        pass
    path = Path(__file__).resolve().parents[1].joinpath(*parts)
    return path if path.is_file() else None


def prepare_environment(domain_id: int | None = None) -> dict[str, str]:
    """Set the DDS environment of the bench and of every process it starts; return it.

    Loopback-only discovery unless the caller chose otherwise, a private domain id, the
    package's Fast DDS profile (the one the field launch uses) unless one is set.
    Call before rclpy is imported.
    """
    os.environ.setdefault('ROS_AUTOMATIC_DISCOVERY_RANGE', 'LOCALHOST')
    if domain_id is not None:
        os.environ['ROS_DOMAIN_ID'] = str(int(domain_id))
    else:
        os.environ.setdefault('ROS_DOMAIN_ID', str(10 + os.getpid() % 90))
    os.environ.setdefault('RMW_IMPLEMENTATION', 'rmw_fastrtps_cpp')
    if not (os.environ.get('FASTDDS_DEFAULT_PROFILES_FILE')
            or os.environ.get('FASTRTPS_DEFAULT_PROFILES_FILE')):
        profile = _repo_or_share_file('config', 'fastdds_profile.xml')
        if profile is not None:
            os.environ['FASTDDS_DEFAULT_PROFILES_FILE'] = str(profile)
    os.environ.setdefault('TF_CPP_MIN_LOG_LEVEL', '2')
    keys = ('ROS_AUTOMATIC_DISCOVERY_RANGE', 'ROS_DOMAIN_ID', 'RMW_IMPLEMENTATION',
            'FASTDDS_DEFAULT_PROFILES_FILE')
    return {key: os.environ.get(key, '') for key in keys}


def _package_versions() -> dict[str, str]:
    """Return the installed versions of the libraries the figures depend on."""
    versions = {}
    for name in PACKAGES:
        try:
            versions[name] = importlib.metadata.version(name)
        except importlib.metadata.PackageNotFoundError:
            continue
    return versions


def _git_describe() -> str:
    """Return ``git describe --always --dirty`` of the source tree, '' if unknown."""
    try:
        result = subprocess.run(
            ['git', 'describe', '--always', '--dirty'], cwd=Path(__file__).resolve().parent,
            capture_output=True, text=True, timeout=5, check=False)
    except (OSError, subprocess.SubprocessError):
        return ''
    return result.stdout.strip() if result.returncode == 0 else ''


def busy_processes(threshold_percent: float = 20.0, sample_s: float = 0.5) -> list[dict]:
    """Return the other processes using more than ``threshold_percent`` of a core now."""
    import psutil

    own = os.getpid()
    processes = []
    for process in psutil.process_iter(['pid', 'name']):
        if process.info['pid'] == own:
            continue
        try:
            process.cpu_percent(None)
            processes.append(process)
        except (psutil.NoSuchProcess, psutil.AccessDenied):
            continue
    time.sleep(sample_s)
    busy = []
    for process in processes:
        try:
            percent = process.cpu_percent(None)
        except (psutil.NoSuchProcess, psutil.AccessDenied):
            continue
        if percent >= threshold_percent:
            busy.append({'pid': process.info['pid'], 'name': process.info['name'],
                         'cpu_percent': round(percent, 1)})
    return sorted(busy, key=lambda item: -item['cpu_percent'])


def describe_machine() -> dict[str, Any]:
    """Return the machine, its load and the library versions, for the report."""
    import psutil

    cores = os.cpu_count() or 1
    try:
        usable = len(os.sched_getaffinity(0))
    except AttributeError:
        usable = cores
    load = os.getloadavg() if hasattr(os, 'getloadavg') else (math.nan,) * 3
    busy = busy_processes()
    return {
        'date_utc': datetime.now(timezone.utc).isoformat(timespec='seconds'),
        'cpu_model': cpu_model(),
        'cores_logical': cores,
        'cores_physical': psutil.cpu_count(logical=False),
        'cores_usable': usable,
        'memory_gb': round(psutil.virtual_memory().total / 2**30, 1),
        'platform': platform.platform(),
        'machine': platform.machine(),
        'python': platform.python_version(),
        'load_average_1_5_15': [round(value, 2) for value in load],
        'busy_processes_at_start': busy,
        'busy': bool(busy) or load[0] > 0.5 * usable,
        'versions': _package_versions(),
        'git': _git_describe(),
    }


# Statistics -----------------------------------------------------------------------------


def summarize(values: Iterable[float]) -> dict[str, float | int | None]:
    """Return n, p50, p95, mean and max of ``values`` (milliseconds); None when empty."""
    data = np.asarray(list(values), dtype=np.float64)
    if data.size == 0:
        return {'n': 0, 'p50': None, 'p95': None, 'mean': None, 'max': None}
    return {'n': int(data.size), 'p50': round(float(np.percentile(data, 50)), 3),
            'p95': round(float(np.percentile(data, 95)), 3),
            'mean': round(float(data.mean()), 3), 'max': round(float(data.max()), 3)}


def _time_calls(call: Callable[[], Any], iterations: int, warmup: int = 5,
                budget_s: float = 20.0) -> list[float]:
    """Return the duration (ms) of ``iterations`` calls after ``warmup``, within a budget."""
    for _ in range(warmup):
        call()
    times = []
    deadline = time.perf_counter() + budget_s
    for _ in range(iterations):
        start = time.perf_counter()
        call()
        times.append((time.perf_counter() - start) * 1e3)
        if start > deadline:
            break
    return times


# Frames ---------------------------------------------------------------------------------


def _leaf_photo() -> np.ndarray | None:
    """Return a leaf photo (BGR) from the source tree's test data, if there is one."""
    root = Path(__file__).resolve().parents[1]
    for path in (root / 'test' / 'data' / 'leaves' / 'Tomato___Early_blight.jpg',
                 *sorted((root / 'test' / 'data' / 'leaves').glob('*.jpg'))):
        image = cv2.imread(str(path), cv2.IMREAD_COLOR)
        if image is not None:
            return image
    return None


def bench_frame(width: int, height: int) -> np.ndarray:
    """Return a ``height``×``width`` BGR camera frame: a leaf photo, else a drawn leaf."""
    photo = _leaf_photo()
    if photo is not None:
        return cv2.resize(photo, (width, height), interpolation=cv2.INTER_LINEAR)
    rng = np.random.default_rng(0)
    frame = np.full((height, width, 3), (120, 110, 100), np.uint8)
    cv2.ellipse(frame, (width // 2, height // 2), (width // 3, height // 4), 30, 0, 360,
                (40, 150, 60), -1)
    noise = rng.integers(0, 24, frame.shape, dtype=np.uint8)
    return cv2.add(frame, noise)


def jpeg_bytes(bgr: np.ndarray, quality: int = JPEG_QUALITY) -> bytes:
    """Return ``bgr`` encoded as JPEG."""
    ok, encoded = cv2.imencode('.jpg', bgr, [cv2.IMWRITE_JPEG_QUALITY, int(quality)])
    if not ok:
        raise BenchError('cannot encode a JPEG frame')
    return encoded.tobytes()


# Section: model and core ------------------------------------------------------------------


def bench_model(config: BenchConfig) -> dict[str, Any]:
    """Time bare invoke (1 and 2 threads), classify() and the per-frame conversions."""
    from plant_disease_ros.core.classifier import (
        ClassifierOptions,
        default_labels_path,
        default_model_path,
        DiseaseClassifier,
    )
    from plant_disease_ros.core.interpreter_loader import load_interpreter

    model_path = Path(config.model_path) if config.model_path else default_model_path()
    labels_path = Path(config.labels_path) if config.labels_path else default_labels_path()
    iterations = config.model_iterations
    result: dict[str, Any] = {'model_path': str(model_path), 'invoke': {}, 'classify': {},
                              'conversions': {}}
    rng = np.random.default_rng(0)
    for threads in (1, 2):
        model = load_interpreter(model_path, num_threads=threads)
        info = np.iinfo(model.input.dtype) if np.dtype(model.input.dtype).kind in 'iu' \
            else None
        if info is not None:
            tensor = rng.integers(info.min, info.max + 1, model.input.shape,
                                  dtype=np.int64).astype(model.input.dtype)
        else:
            tensor = rng.uniform(0, 255, model.input.shape).astype(model.input.dtype)
        model.interpreter.set_tensor(model.input_index, tensor)
        times = _time_calls(model.interpreter.invoke, iterations, warmup=20)
        result['invoke'][str(threads)] = summarize(times)
        result['backend'] = model.backend
        result['input'] = (f'{model.input_size[0]}x{model.input_size[1]}x3 '
                           f'{np.dtype(model.input.dtype).name}')
        del model
    classifier = DiseaseClassifier.create_from_options(ClassifierOptions(
        model_path=str(model_path), labels_path=str(labels_path),
        num_threads=config.num_threads))
    for size, (width, height) in SIZES.items():
        rgb = cv2.cvtColor(bench_frame(width, height), cv2.COLOR_BGR2RGB)
        times = _time_calls(lambda image=rgb: classifier.classify(image), iterations)
        result['classify'][size] = summarize(times)
    result['classify_threads'] = config.num_threads
    result['conversions'] = bench_conversions(max(20, iterations // 5))
    return result


def bench_conversions(iterations: int) -> dict[str, Any]:
    """Time the message conversions the nodes do on every frame."""
    from sensor_msgs.msg import CompressedImage, Image
    from std_msgs.msg import Header

    from plant_disease_ros.ros.conversions import (
        compressed_image_to_rgb,
        image_to_rgb,
        rgb_to_image,
    )

    result = {}
    for size, (width, height) in SIZES.items():
        bgr = bench_frame(width, height)
        raw = Image(height=height, width=width, encoding='bgr8', step=width * 3)
        raw.data = array.array('B', bgr.tobytes())
        compressed = CompressedImage(format='bgr8; jpeg compressed bgr8')
        compressed.data = array.array('B', jpeg_bytes(bgr))
        rgb = image_to_rgb(raw)
        result[f'image_to_rgb bgr8 {size}'] = summarize(
            _time_calls(lambda msg=raw: image_to_rgb(msg), iterations))
        result[f'compressed_image_to_rgb jpeg {size}'] = summarize(
            _time_calls(lambda msg=compressed: compressed_image_to_rgb(msg), iterations))
        result[f'rgb_to_image rgb8 {size}'] = summarize(
            _time_calls(lambda image=rgb: rgb_to_image(image, Header()), iterations))
        result[f'jpeg bytes {size}'] = len(compressed.data)
    return result


# Workers (separate processes) ---------------------------------------------------------------


def _emit(event: dict[str, Any]) -> None:
    """Write one JSON line to stdout for the bench."""
    sys.stdout.write(json.dumps(event) + '\n')
    sys.stdout.flush()


def _wait_for_subscriber(publisher: Any, timeout_s: float) -> bool:
    """Wait until ``publisher`` has matched a subscriber; return whether it did."""
    deadline = time.monotonic() + timeout_s
    while publisher.get_subscription_count() == 0:
        if time.monotonic() > deadline:
            return False
        time.sleep(0.05)
    return True


def run_publisher(argv: Sequence[str]) -> int:
    """Worker: a camera publishing bgr8 Image and JPEG CompressedImage on command.

    Reads JSON commands on stdin: ``{"cmd": "phase", "name", "width", "height",
    "transport", "rate_hz", "duration_s"}`` publishes that stream (stamp = publish
    wall-clock time, frame_id = name) and answers ``{"event": "phase_done", ...}``;
    ``{"cmd": "quit"}`` ends. Publishers use the default QoS (reliable, keep last 10),
    as a camera driver left at its defaults does.
    """
    parser = argparse.ArgumentParser(prog='bench publisher')
    parser.add_argument('--match-timeout-s', type=float, default=30.0)
    args = parser.parse_args(argv)
    import rclpy
    from rclpy.node import Node
    from rclpy.qos import QoSProfile
    from sensor_msgs.msg import CompressedImage, Image

    rclpy.init()
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

    _emit({'event': 'ready', 'pid': os.getpid()})
    try:
        for line in sys.stdin:
            command = json.loads(line)
            if command.get('cmd') == 'quit':
                break
            _emit(_publish_phase(publishers[command['transport']],
                                 message(int(command['width']), int(command['height']),
                                         command['transport']),
                                 command, args.match_timeout_s))
    except KeyboardInterrupt:
        pass
    finally:
        node.destroy_node()
        rclpy.try_shutdown()
    return 0


def _publish_phase(publisher: Any, msg: Any, command: dict, match_timeout_s: float) -> dict:
    """Publish ``msg`` at ``rate_hz`` for ``duration_s``; return the phase report."""
    name = str(command['name'])
    if not _wait_for_subscriber(publisher, match_timeout_s):
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
    stamp and frame id at once. Its latency is what two DDS hops between Python processes
    (one image, one result) cost on this machine, with no conversion or model. Like the
    nodes, it keeps freed frame buffers resident (``core.allocator_tuning``).
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


# The probe: receives classification in the bench process ----------------------------------


class Probe:
    """An rclpy node in the bench process that times every ``classification`` it receives."""

    def __init__(self) -> None:
        """Start the node and spin it in a background thread."""
        import rclpy
        from rclpy.executors import SingleThreadedExecutor
        from rclpy.node import Node
        from rclpy.qos import QoSProfile, ReliabilityPolicy
        from std_msgs.msg import String

        self._rclpy = rclpy
        self.context = rclpy.Context()
        rclpy.init(context=self.context)
        self.node = Node('bench_probe', context=self.context)
        self._lock = threading.Lock()
        # frame_id -> [(receipt wall-clock ns, image stamp ns, DDS reception ns or 0)]
        self.receipts: dict[str, list[tuple[int, int, int]]] = defaultdict(list)
        self.explanations = 0
        self.malformed = 0
        self._explanation_subscription: Any = None
        self.node.create_subscription(
            String, 'classification', self._on_classification,
            QoSProfile(depth=100, reliability=ReliabilityPolicy.RELIABLE))
        self.executor = SingleThreadedExecutor(context=self.context)
        self.executor.add_node(self.node)
        self._thread = threading.Thread(target=self._spin, name='bench_probe', daemon=True)
        self._thread.start()

    def _spin(self) -> None:
        while self.context.ok():
            try:
                self.executor.spin_once(timeout_sec=0.1)
            except Exception:  # noqa: BLE001 - shutdown races end the loop
                if not self.context.ok():
                    return
                raise

    def _on_classification(self, msg: Any, info: Any) -> None:
        now_ns = time.time_ns()
        # When Fast DDS took the sample off the wire in this process: what is left of the
        # latency after it is this process's own executor getting to the callback.
        dds_ns = int(info.get('received_timestamp') or 0)
        try:
            data = json.loads(msg.data)
            stamp_ns = int(data['stamp']['sec']) * 1_000_000_000 + int(data['stamp']['nanosec'])
            frame_id = str(data.get('frame_id', ''))
        except (ValueError, KeyError, TypeError):
            self.malformed += 1
            return
        with self._lock:
            self.receipts[frame_id].append((now_ns, stamp_ns, dds_ns))

    def _on_explanation(self, _msg: Any) -> None:
        self.explanations += 1

    def received(self, frame_id: str) -> list[tuple[int, int, int]]:
        """Return the receipts of frames with ``frame_id``: (callback, stamp, DDS) ns."""
        with self._lock:
            return list(self.receipts.get(frame_id, ()))

    def classification_publishers(self) -> int:
        """Return the number of ``classification`` publishers seen."""
        return self.node.count_publishers('/classification')

    def watch_explanations(self, on: bool) -> None:
        """Subscribe to ``explanation`` (the classifier computes it only when watched)."""
        from rclpy.qos import QoSProfile, ReliabilityPolicy
        from sensor_msgs.msg import Image

        if on and self._explanation_subscription is None:
            self._explanation_subscription = self.node.create_subscription(
                Image, 'explanation', self._on_explanation,
                QoSProfile(depth=10, reliability=ReliabilityPolicy.RELIABLE))
        elif not on and self._explanation_subscription is not None:
            self.node.destroy_subscription(self._explanation_subscription)
            self._explanation_subscription = None

    def close(self) -> None:
        """Stop spinning and shut the context down."""
        self._rclpy.try_shutdown(context=self.context)
        self._thread.join(timeout=2.0)
        self.executor.shutdown(timeout_sec=1.0)
        self.node.destroy_node()


# Processes ------------------------------------------------------------------------------


@dataclass
class Sample:
    """One CPU/RSS sample of a process."""

    wall_ns: int
    cpu_percent: float
    rss_bytes: int


class ProcessGroup:
    """Child processes of one rig: started with the bench environment, sampled, stopped."""

    def __init__(self, log_dir: Path, env: dict[str, str]) -> None:
        """Keep logs in ``log_dir``; start children with ``env``."""
        self.log_dir = log_dir
        self.env = env
        self.processes: dict[str, subprocess.Popen] = {}
        self.samples: dict[str, list[Sample]] = defaultdict(list)
        self._stop = threading.Event()
        self._sampler: threading.Thread | None = None

    def log_path(self, name: str) -> Path:
        """Return the log file of child ``name``."""
        return self.log_dir / f'{name}.log'

    def start(self, name: str, argv: list[str], pipes: bool = False) -> subprocess.Popen:
        """Start child ``name``; with ``pipes`` its stdin/stdout are pipes (a worker)."""
        log = self.log_path(name).open('wb')
        process = subprocess.Popen(
            argv, env=self.env, stdin=subprocess.PIPE if pipes else subprocess.DEVNULL,
            stdout=subprocess.PIPE if pipes else log, stderr=log, start_new_session=True,
            text=pipes, bufsize=1 if pipes else -1)
        log.close()
        self.processes[name] = process
        return process

    def check_alive(self, names: Iterable[str] | None = None) -> None:
        """Raise BenchError naming the first child that has exited, with its log's tail."""
        for name in names or list(self.processes):
            process = self.processes[name]
            if process.poll() is not None:
                raise BenchError(f'{name} exited with status {process.returncode}: '
                                 f'{self.log_tail(name)}')

    def log_tail(self, name: str, lines: int = 3) -> str:
        """Return the last lines of a child's log on one line."""
        try:
            text = self.log_path(name).read_text(errors='replace').strip().splitlines()
        except OSError:
            return ''
        return ' | '.join(text[-lines:])

    def start_sampling(self, names: Iterable[str]) -> None:
        """Sample CPU% and RSS of the named children every SAMPLE_PERIOD_S."""
        import psutil

        handles = {name: psutil.Process(self.processes[name].pid) for name in names}

        def sample() -> None:
            for handle in handles.values():
                try:
                    handle.cpu_percent(None)
                except psutil.Error:
                    pass
            while not self._stop.wait(SAMPLE_PERIOD_S):
                now = time.time_ns()
                for name, handle in handles.items():
                    try:
                        with handle.oneshot():
                            self.samples[name].append(Sample(
                                now, handle.cpu_percent(None), handle.memory_info().rss))
                    except psutil.Error:
                        continue

        self._sampler = threading.Thread(target=sample, name='bench_sampler', daemon=True)
        self._sampler.start()

    def stop(self) -> None:
        """Stop sampling; SIGINT every child, SIGKILL the ones still alive after 5 s."""
        self._stop.set()
        if self._sampler is not None:
            self._sampler.join(timeout=2.0)
        for process in self.processes.values():
            if process.poll() is None:
                try:
                    os.kill(process.pid, signal.SIGINT)
                except ProcessLookupError:
                    pass
        deadline = time.monotonic() + 5.0
        for process in self.processes.values():
            try:
                process.wait(timeout=max(0.1, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                os.kill(process.pid, signal.SIGKILL)
                process.wait(timeout=5.0)
        for process in self.processes.values():
            for stream in (process.stdin, process.stdout):
                if stream is not None:
                    stream.close()


class PublisherWorker:
    """Drive the publisher worker process: one phase at a time over stdin/stdout."""

    def __init__(self, group: ProcessGroup) -> None:
        """Start the worker in ``group`` and wait until its publishers exist."""
        self.group = group
        self.process = group.start('publisher', [
            sys.executable, '-m', 'plant_disease_ros.tools.bench', 'publisher'], pipes=True)
        self._lines: queue.Queue[str] = queue.Queue()
        threading.Thread(target=self._read, daemon=True).start()
        ready = self._next_event(timeout_s=60.0)
        if ready.get('event') != 'ready':
            raise BenchError(f'publisher did not start: {ready}')

    def _read(self) -> None:
        assert self.process.stdout is not None
        for line in self.process.stdout:
            self._lines.put(line)

    def _next_event(self, timeout_s: float) -> dict:
        deadline = time.monotonic() + timeout_s
        while True:
            try:
                line = self._lines.get(timeout=0.5)
            except queue.Empty:
                self.group.check_alive(['publisher'])
                if time.monotonic() > deadline:
                    raise BenchError(f'publisher silent for {timeout_s:.0f} s') from None
                continue
            try:
                return json.loads(line)
            except ValueError:
                continue  # a stray log line

    def run_phase(self, phase: Phase) -> dict:
        """Publish one phase and return the worker's report."""
        assert self.process.stdin is not None
        self.process.stdin.write(json.dumps({
            'cmd': 'phase', 'name': phase.name, 'width': phase.width,
            'height': phase.height, 'transport': phase.transport,
            'rate_hz': phase.rate_hz, 'duration_s': phase.duration_s}) + '\n')
        self.process.stdin.flush()
        report = self._next_event(timeout_s=phase.duration_s + 60.0)
        if report.get('error'):
            raise BenchError(f'publisher: {report["error"]}')
        return report


# Rigs and phases ------------------------------------------------------------------------


@dataclass(frozen=True)
class Phase:
    """One stream: ``rate_hz`` frames of one size and transport for ``duration_s``."""

    name: str
    # 'warmup' | 'latency' | 'sustained' | 'capacity' | 'baseline' | 'baseline-capacity' |
    # 'explain-off' | 'explain-on'
    kind: str
    width: int
    height: int
    transport: str
    rate_hz: float
    duration_s: float

    @property
    def size(self) -> str:
        """Return 'WxH'."""
        return f'{self.width}x{self.height}'


@dataclass(frozen=True)
class Rig:
    """The processes frames go through: 'nodes' | 'pipeline' | 'relay' | 'baseline'."""

    layout: str
    transport: str
    explain: bool = False
    # False: the nodes leave glibc malloc at its defaults (PLANT_DISEASE_TUNE_MALLOC=0),
    # for the same-run comparison with the shipped allocator setting.
    malloc_tuning: bool = True

    @property
    def name(self) -> str:
        """Return e.g. 'nodes-raw', 'pipeline-raw-malloc-defaults'."""
        suffix = '' if self.malloc_tuning else '-malloc-defaults'
        return f'{self.layout}-{self.transport}{suffix}'


@dataclass
class PhaseResult:
    """What one phase measured."""

    rig: str
    phase: Phase
    published: int
    t0_ns: int
    t1_ns: int
    latencies_ms: list[float] = field(default_factory=list)
    receipt_offsets_s: list[float] = field(default_factory=list)
    # Stamp to the probe's DDS reception (without the probe's executor), where known.
    dds_latencies_ms: list[float] = field(default_factory=list)
    # The camera's publish() call, which the latency includes.
    publish_ms: dict[str, Any] = field(default_factory=dict)
    processes: dict[str, dict[str, Any]] = field(default_factory=dict)
    explanations: int = 0
    # Share of CPU time the VM host stole during the phase (None where unknown).
    steal_percent: float | None = None

    @property
    def elapsed_s(self) -> float:
        """Return the publishing time of the phase."""
        return max(1e-9, (self.t1_ns - self.t0_ns) / 1e9)

    def latency_window(self, start_s: float, end_s: float) -> list[float]:
        """Return the latencies of frames received between two offsets from the start."""
        return [latency for latency, offset in zip(self.latencies_ms, self.receipt_offsets_s,
                                                          strict=True)
                if start_s <= offset <= end_s]

    def summary(self) -> dict[str, Any]:
        """Return the phase's figures as a JSON-ready dictionary."""
        processed_in_run = sum(1 for offset in self.receipt_offsets_s
                               if offset <= self.elapsed_s)
        window = min(FLAT_WINDOW_S, self.elapsed_s / 3.0)
        first = summarize(self.latency_window(0.0, window))
        last = summarize(self.latency_window(self.elapsed_s - window, self.elapsed_s))
        return {
            'rig': self.rig, 'phase': self.phase.name, 'kind': self.phase.kind,
            'size': self.phase.size, 'transport': self.phase.transport,
            'rate_hz': self.phase.rate_hz, 'duration_s': round(self.elapsed_s, 2),
            'published': self.published,
            'published_fps': round(self.published / self.elapsed_s, 2),
            'processed': len(self.latencies_ms),
            'processed_fps': round(processed_in_run / self.elapsed_s, 2),
            'dropped': max(0, self.published - len(self.latencies_ms)),
            'latency_ms': summarize(self.latencies_ms),
            'latency_at_dds_receipt_ms': summarize(self.dds_latencies_ms),
            'camera_publish_ms': self.publish_ms,
            'flat_window_s': round(window, 2),
            'latency_p95_first_ms': first['p95'],
            'latency_p95_last_ms': last['p95'],
            'processes': self.processes,
            'explanations': self.explanations,
            'host_steal_percent': self.steal_percent,
        }


def _process_summary(samples: list[Sample], t0_ns: int, t1_ns: int) -> dict[str, Any]:
    """Return CPU% and RSS figures of one process over [t0, t1]."""
    inside = [sample for sample in samples if t0_ns <= sample.wall_ns <= t1_ns]
    if not inside:
        return {'samples': 0}
    span_s = (t1_ns - t0_ns) / 1e9
    window_ns = int(min(FLAT_WINDOW_S, span_s / 3.0) * 1e9)
    # DDS buffer pools fill in the first seconds of a new stream: not a leak.
    settle_ns = int(min(RSS_SETTLE_S, span_s / 6.0) * 1e9)
    start = [s.rss_bytes for s in inside
             if t0_ns + settle_ns <= s.wall_ns <= t0_ns + settle_ns + window_ns] or \
        [inside[0].rss_bytes]
    end = [s.rss_bytes for s in inside if s.wall_ns >= t1_ns - window_ns] or \
        [inside[-1].rss_bytes]
    mb = 1024.0 * 1024.0
    rss_start, rss_end = float(np.median(start)) / mb, float(np.median(end)) / mb
    cpu = [sample.cpu_percent for sample in inside]
    return {
        'samples': len(inside),
        'cpu_percent_mean': round(float(np.mean(cpu)), 1),
        'cpu_percent_max': round(float(np.max(cpu)), 1),
        'rss_first_sample_mb': round(inside[0].rss_bytes / mb, 1),
        'rss_start_mb': round(rss_start, 1),
        'rss_end_mb': round(rss_end, 1),
        'rss_growth_mb': round(rss_end - rss_start, 2),
        'rss_max_mb': round(max(s.rss_bytes for s in inside) / mb, 1),
    }


def _capacity_phase(layout: str, duration_s: float, kind: str = 'capacity') -> Phase:
    """Return the saturating 640x480 phase of one rig."""
    rate_hz, size = CAPACITY
    width, height = SIZES[size]
    return Phase(f'cap-{layout}-{rate_hz:g}fps-{size}', kind, width, height, 'raw', rate_hz,
                 duration_s)


def _latency_phases(rig: Rig, duration_s: float) -> list[Phase]:
    """Return the unqueued 5 Hz latency phases of one rig, one per frame size."""
    return [Phase(f'lat-{rig.name}-{size}', 'latency', width, height, rig.transport,
                  LATENCY_RATE_HZ, duration_s) for size, (width, height) in SIZES.items()]


def build_plan(config: BenchConfig, keras_model: Path | None) -> list[tuple[Rig, list[Phase]]]:
    """Return the rigs to start and the phases each runs, for the selected sections."""
    sections = set(config.sections)
    plan: list[tuple[Rig, list[Phase]]] = []
    if 'latency' in sections:
        # The floor first: two DDS hops with no work, to read the rigs' figures against.
        relay = Rig('relay', 'raw')
        plan.append((relay, _latency_phases(relay, config.latency_duration_s)))
    for layout in LAYOUTS:
        for transport in TRANSPORTS:
            phases: list[Phase] = []
            if 'latency' in sections:
                phases += _latency_phases(Rig(layout, transport), config.latency_duration_s)
            if transport == 'raw' and 'sustained' in sections:
                for rate_hz, size in SUSTAINED_RUNS:
                    width, height = SIZES[size]
                    phases.append(Phase(f'sus-{layout}-{rate_hz:g}fps-{size}', 'sustained',
                                        width, height, transport, rate_hz, config.duration_s))
            if transport == 'raw' and 'capacity' in sections:
                phases.append(_capacity_phase(layout, config.capacity_duration_s))
            explain = layout == 'pipeline' and transport == 'raw' and 'explain' in sections
            if explain:
                width, height = SIZES['640x480']
                for kind in ('explain-off', 'explain-on'):
                    phases.append(Phase(f'{kind}-{layout}-640x480', kind, width, height,
                                        transport, LATENCY_RATE_HZ, config.latency_duration_s))
            if phases:
                plan.append((Rig(layout, transport, explain=explain), phases))
    if 'latency' in sections:
        # The shipped layout once more with glibc's allocator defaults: what keeping freed
        # frame buffers resident (core.allocator_tuning) is worth, in the same run.
        defaults = Rig('pipeline', 'raw', malloc_tuning=False)
        plan.append((defaults, _latency_phases(defaults, config.latency_duration_s)))
    if 'baseline' in sections and keras_model is not None:
        rate_hz, size = FLOOD
        width, height = SIZES[size]
        phases = [Phase(f'base-{rate_hz:g}fps-{size}', 'baseline', width, height, 'raw',
                        rate_hz, config.baseline_duration_s)]
        if 'capacity' in sections:
            phases.append(_capacity_phase('baseline', config.baseline_duration_s,
                                          kind='baseline-capacity'))
        plan.append((Rig('baseline', 'raw'), phases))
    return plan


class Bench:
    """Run the selected sections and collect the report."""

    def __init__(self, config: BenchConfig) -> None:
        """Prepare the environment (before rclpy is imported) and the log folder."""
        self.config = config
        self.environment = prepare_environment(config.domain_id)
        self.log_dir = Path(config.log_dir) if config.log_dir else Path(
            tempfile.mkdtemp(prefix='plant_disease_bench_'))
        self.log_dir.mkdir(parents=True, exist_ok=True)
        self.errors: list[str] = []
        self._probe: Probe | None = None

    def say(self, text: str) -> None:
        """Report progress."""
        if self.config.progress is not None:
            self.config.progress(text)

    def keras_model_path(self) -> Path | None:
        """Return the float Keras model for the baseline, or None (baseline skipped)."""
        if self.config.keras_model:
            path = Path(self.config.keras_model)
        else:
            from plant_disease_ros.core.classifier import default_model_path
            path = default_model_path().parent / KERAS_MODEL_FILENAME
        return path if path.is_file() else None

    def run(self) -> dict[str, Any]:
        """Run every selected section; return the report (errors included, never raised)."""
        config = self.config
        report: dict[str, Any] = {
            'schema': 1,
            'machine': describe_machine(),
            'environment': self.environment,
            'settings': {key: value for key, value in asdict(config).items()
                         if key != 'progress'},
            'log_dir': str(self.log_dir),
        }
        report['settings']['sections'] = list(config.sections)
        if report['machine']['busy']:
            self.say('warning: the machine is busy (see busy_processes_at_start); the '
                     'figures will be pessimistic')
        if 'model' in config.sections:
            self.say('model: invoke at 1 and 2 threads, classify(), conversions')
            try:
                report['model'] = bench_model(config)
            except Exception as error:  # noqa: BLE001 - report and go on
                self._error('model', error)
        keras_model = self.keras_model_path()
        if 'baseline' in config.sections and keras_model is None:
            report['baseline'] = {'skipped': 'no float Keras model (--keras-model, default '
                                             f'models/{KERAS_MODEL_FILENAME})'}
        results: list[PhaseResult] = []
        plan = build_plan(config, keras_model)
        if plan:
            self._probe = Probe()
            try:
                for rig, phases in plan:
                    try:
                        results += self.run_rig(rig, phases, keras_model)
                    except Exception as error:  # noqa: BLE001 - the other rigs still run
                        self._error(rig.name, error)
            finally:
                self._probe.close()
        summaries = [result.summary() for result in results]
        report['latency'] = [s for s in summaries if s['kind'] == 'latency']
        report['sustained'] = [s for s in summaries if s['kind'] == 'sustained']
        report['capacity'] = [s for s in summaries if s['kind'] == 'capacity']
        baseline_runs = {s['kind']: s for s in summaries if s['kind'].startswith('baseline')}
        if 'baseline' in baseline_runs:
            report['baseline'] = self.baseline_summary(
                baseline_runs['baseline'], baseline_runs.get('baseline-capacity'),
                report['sustained'], report['capacity'], keras_model)
        explain_runs = [s for s in summaries if s['kind'].startswith('explain')]
        if 'explain' in config.sections:
            report['explain'] = self.explain_summary(explain_runs)
        report['bars'] = evaluate_bars(report)
        report['errors'] = self.errors
        return report

    def _error(self, where: str, error: BaseException) -> None:
        text = f'{where}: {type(error).__name__}: {error}'
        self.errors.append(text)
        self.say(f'error: {text}')

    def node_commands(self, rig: Rig, keras_model: Path | None) -> dict[str, list[str]]:
        """Return the child processes of a rig: name -> argv."""
        python = sys.executable
        config = self.config
        classifier = ['-p', f'num_threads:={config.num_threads}']
        if config.model_path:
            classifier += ['-p', f'model_path:={config.model_path}']
        if config.labels_path:
            classifier += ['-p', f'labels_path:={config.labels_path}']
        if rig.explain:
            classifier += ['-p', f'explain_period_s:={EXPLAIN_PERIOD_S}']
        camera = ['-p', f'transport:={rig.transport}']
        if rig.layout == 'nodes':
            return {
                'camera_subscriber': [python, '-m', 'plant_disease_ros.nodes.camera_subscriber',
                                      '--ros-args', *camera],
                'disease_classifier': [python, '-m', 'plant_disease_ros.nodes.disease_classifier',
                                       '--ros-args', *classifier],
            }
        if rig.layout == 'pipeline':
            return {'plant_disease_pipeline': [python, '-m', 'plant_disease_ros.nodes.pipeline',
                                               '--ros-args', *camera, *classifier]}
        if rig.layout == 'relay':
            return {'dds_relay': [python, '-m', 'plant_disease_ros.tools.bench', 'relay']}
        from plant_disease_ros.core.classifier import default_labels_path
        labels = config.labels_path or str(default_labels_path())
        return {'keras_baseline': [python, '-m', 'plant_disease_ros.tools.bench', 'baseline',
                                   '--keras-model', str(keras_model), '--labels', labels]}

    def run_rig(self, rig: Rig, phases: list[Phase],
                keras_model: Path | None) -> list[PhaseResult]:
        """Start a rig's processes, warm it up, run its phases, stop it."""
        assert self._probe is not None
        probe = self._probe
        self.say(f'{rig.name}: starting')
        env = dict(os.environ)
        if not rig.malloc_tuning:
            env[allocator_tuning.ENV_SWITCH] = '0'
        group = ProcessGroup(self.log_dir / rig.name, env)
        group.log_dir.mkdir(parents=True, exist_ok=True)
        results = []
        try:
            # The camera first: 'auto' QoS subscriptions then match its reliability at once.
            publisher = PublisherWorker(group)
            nodes = self.node_commands(rig, keras_model)
            for name, argv in nodes.items():
                group.start(name, argv)
            deadline = time.monotonic() + 120.0
            while probe.classification_publishers() == 0:
                group.check_alive(nodes)
                if time.monotonic() > deadline:
                    raise BenchError('no classification publisher after 120 s')
                time.sleep(0.2)
            group.start_sampling([*nodes, 'publisher'])
            sizes = {(phase.width, phase.height) for phase in phases}
            for width, height in sorted(sizes):
                self.warm_up(rig, publisher, group, width, height)
            for phase in phases:
                self.say(f'{rig.name}: {phase.name} ({phase.rate_hz:g} Hz, '
                         f'{phase.duration_s:g} s)')
                if phase.kind == 'explain-on':
                    probe.watch_explanations(True)
                    time.sleep(1.0)
                explanations_before = probe.explanations
                counters = cpu_time_counters()
                report = publisher.run_phase(phase)
                stolen = steal_percent(counters, cpu_time_counters())
                self.drain(phase.name, report['published'])
                group.check_alive(nodes)
                result = self.phase_result(rig, phase, report, group, list(nodes))
                result.steal_percent = stolen
                result.explanations = probe.explanations - explanations_before
                if phase.kind == 'explain-on':
                    probe.watch_explanations(False)
                results.append(result)
                summary = result.summary()
                self.say(f'  published {summary["published"]}, processed '
                         f'{summary["processed"]} ({summary["processed_fps"]:g} fps), '
                         f'latency p50 {summary["latency_ms"]["p50"]} ms, p95 '
                         f'{summary["latency_ms"]["p95"]} ms')
        finally:
            group.stop()
        return results

    def warm_up(self, rig: Rig, publisher: PublisherWorker, group: ProcessGroup,
                width: int, height: int) -> None:
        """Publish 1-s bursts at 5 Hz until 3 frames of this size came back (max 90 s)."""
        assert self._probe is not None
        name = f'warm-{rig.name}-{width}x{height}'
        deadline = time.monotonic() + 90.0
        while len(self._probe.received(name)) < 3:
            if time.monotonic() > deadline:
                raise BenchError(f'{rig.name}: no {width}x{height} frame came back in 90 s '
                                 f'(logs in {group.log_dir})')
            publisher.run_phase(Phase(name, 'warmup', width, height, rig.transport,
                                      LATENCY_RATE_HZ, 1.0))
            group.check_alive()
        time.sleep(0.5)

    def drain(self, frame_id: str, published: int, quiet_s: float = 0.5,
              limit_s: float = 15.0) -> None:
        """Wait until every frame came back or none came for ``quiet_s``."""
        assert self._probe is not None
        deadline = time.monotonic() + limit_s
        count, last_change = -1, time.monotonic()
        while time.monotonic() < deadline:
            received = len(self._probe.received(frame_id))
            if received >= published:
                return
            if received != count:
                count, last_change = received, time.monotonic()
            elif time.monotonic() - last_change > quiet_s:
                return
            time.sleep(0.05)

    def phase_result(self, rig: Rig, phase: Phase, report: dict, group: ProcessGroup,
                     nodes: list[str]) -> PhaseResult:
        """Turn the receipts and samples of one phase into a PhaseResult."""
        assert self._probe is not None
        t0_ns, t1_ns = int(report['t0_ns']), int(report['t1_ns'])
        receipts = sorted(self._probe.received(phase.name))
        result = PhaseResult(rig=rig.name, phase=phase, published=int(report['published']),
                             t0_ns=t0_ns, t1_ns=t1_ns)
        result.latencies_ms = [(received - stamp) / 1e6 for received, stamp, _ in receipts]
        result.receipt_offsets_s = [(received - t0_ns) / 1e9 for received, _, _ in receipts]
        result.dds_latencies_ms = [(dds - stamp) / 1e6 for _, stamp, dds in receipts if dds]
        result.publish_ms = dict(report.get('publish_ms') or {})
        for name in [*nodes, 'publisher']:
            result.processes[name] = _process_summary(group.samples.get(name, []), t0_ns,
                                                      t1_ns)
        return result

    def baseline_summary(self, baseline: dict, capacity: dict | None, sustained: list[dict],
                         our_capacity: list[dict], keras_model: Path | None) -> dict[str, Any]:
        """Return the baseline's runs and our throughput over its, per layout.

        ``capacity_ratios`` compare processed fps when more frames are offered than any
        rig takes (the throughput bar); ``ratios`` compare them at the 60 fps flood, which
        caps ours at 60.
        """
        summary: dict[str, Any] = {'keras_model': str(keras_model), 'run': baseline,
                                   'capacity_run': capacity, 'ratios': {},
                                   'capacity_ratios': {}}

        def ratios(base: dict | None, runs: list[dict], size: str, rate_hz: float) -> dict:
            if base is None or not base['processed_fps'] > 0:
                return {}
            return {run['rig'].split('-')[0]: round(run['processed_fps']
                                                    / base['processed_fps'], 1)
                    for run in runs if run['size'] == size and run['rate_hz'] == rate_hz}

        summary['ratios'] = ratios(baseline, sustained, FLOOD[1], FLOOD[0])
        summary['capacity_ratios'] = ratios(capacity, our_capacity, CAPACITY[1], CAPACITY[0])
        return summary

    def explain_summary(self, runs: list[dict]) -> dict[str, Any]:
        """Return the explanation's cost: per map in-process, and on node latency."""
        result: dict[str, Any] = {'grid': EXPLAIN_GRID, 'period_s': EXPLAIN_PERIOD_S}
        try:
            result['core'] = bench_explanation(self.config)
        except Exception as error:  # noqa: BLE001 - report and go on
            self._error('explain (core)', error)
        by_kind = {run['kind']: run for run in runs}
        off, on = by_kind.get('explain-off'), by_kind.get('explain-on')
        if off and on:
            result['off'] = off
            result['on'] = on
            result['explanations_received'] = on['explanations']
            if on['explanations'] == 0:
                result['note'] = ('no explanation received: the classifier does not offer '
                                  'explain_period_s, or it failed (see the logs)')
        return result


def bench_explanation(config: BenchConfig) -> dict[str, Any]:
    """Time one occlusion map (grid 4) and its overlay on a 640x480 frame, in-process."""
    from plant_disease_ros.core.classifier import ClassifierOptions, DiseaseClassifier
    from plant_disease_ros.core.occlusion import occlusion_heatmap, overlay_heatmap

    classifier = DiseaseClassifier.create_from_options(ClassifierOptions(
        model_path=config.model_path, labels_path=config.labels_path,
        num_threads=config.num_threads))
    rgb = cv2.cvtColor(bench_frame(*SIZES['640x480']), cv2.COLOR_BGR2RGB)

    def explain() -> None:
        overlay_heatmap(rgb, occlusion_heatmap(classifier, rgb, grid=EXPLAIN_GRID))

    iterations = 10 if config.quick else 30
    return {'heatmap_and_overlay_ms': summarize(_time_calls(explain, iterations, warmup=2)),
            'invocations_per_map': EXPLAIN_GRID * EXPLAIN_GRID + 1}


# Bars and report --------------------------------------------------------------------------


def _find(runs: list[dict], **match: Any) -> dict | None:
    for run in runs:
        if all(run.get(key) == value for key, value in match.items()):
            return run
    return None


def evaluate_bars(report: dict[str, Any]) -> list[dict[str, Any]]:
    """Check the figures against the bars of issue 6; return one row per bar."""
    bars: list[dict[str, Any]] = []
    invoke = report.get('model', {}).get('invoke', {})
    threads = str(report.get('settings', {}).get('num_threads', 2))
    invoke_p50 = (invoke.get(threads) or {}).get('p50')
    for layout in LAYOUTS:
        run = _find(report.get('latency', []), rig=f'{layout}-raw', size='640x480')
        if run is None or invoke_p50 is None or run['latency_ms']['p50'] is None:
            continue
        limit = invoke_p50 + BAR_E2E_OVER_INVOKE_MS
        bars.append({'bar': f'e2e p50 <= invoke p50 + {BAR_E2E_OVER_INVOKE_MS:g} ms '
                            f'(640x480 raw, {layout})',
                     'value': run['latency_ms']['p50'], 'limit': round(limit, 3),
                     'pass': run['latency_ms']['p50'] <= limit})
    rate_hz, size = FLOOD
    for run in report.get('sustained', []):
        if run['size'] != size or run['rate_hz'] != rate_hz:
            continue
        first, last = run['latency_p95_first_ms'], run['latency_p95_last_ms']
        if first is not None and last is not None:
            limit = first * BAR_FLAT_RATIO + BAR_FLAT_SLACK_MS
            bars.append({'bar': f'flood p95 flat: last {run["flat_window_s"]:g} s <= first x '
                                f'{BAR_FLAT_RATIO:g} + {BAR_FLAT_SLACK_MS:g} ms ({run["rig"]})',
                         'value': last, 'limit': round(limit, 3), 'pass': last <= limit})
        for name, figures in run['processes'].items():
            if name == 'publisher' or 'rss_growth_mb' not in figures:
                continue
            bars.append({'bar': f'flood RSS growth < {BAR_RSS_GROWTH_MB:g} MB ({name})',
                         'value': figures['rss_growth_mb'], 'limit': BAR_RSS_GROWTH_MB,
                         'pass': figures['rss_growth_mb'] < BAR_RSS_GROWTH_MB})
    rate_hz, size = CAPACITY
    for layout, ratio in report.get('baseline', {}).get('capacity_ratios', {}).items():
        if ratio is not None:
            bars.append({'bar': f'throughput >= {BAR_BASELINE_RATIO:g}x the Keras baseline '
                                f'({layout}, {size} offered at {rate_hz:g} fps)',
                         'value': ratio, 'limit': BAR_BASELINE_RATIO,
                         'pass': ratio >= BAR_BASELINE_RATIO})
    return bars


def _cell(value: Any) -> str:
    if value is None:
        return '-'
    if isinstance(value, bool):
        return 'yes' if value else 'NO'
    if isinstance(value, float):
        return f'{value:.2f}' if abs(value) < 100 else f'{value:.0f}'
    return str(value)


def _table(title: str, header: list[str], rows: list[list[Any]]) -> str:
    """Return an aligned text table."""
    cells = [[_cell(value) for value in row] for row in rows]
    widths = [max(len(header[i]), *(len(row[i]) for row in cells)) if cells else len(header[i])
              for i in range(len(header))]
    lines = [title, '  '.join(h.rjust(w) if i else h.ljust(w)
                              for i, (h, w) in enumerate(zip(header, widths, strict=True))),
             '  '.join('-' * w for w in widths)]
    for row in cells:
        lines.append('  '.join(c.rjust(w) if i else c.ljust(w)
                               for i, (c, w) in enumerate(zip(row, widths, strict=True))))
    return '\n'.join(lines)


def _phase_runs(report: dict[str, Any]) -> list[dict[str, Any]]:
    """Return every phase summary of the report (latency, sustained, capacity, baseline)."""
    runs = [run for key in ('latency', 'sustained', 'capacity') for run in report.get(key, [])]
    baseline = report.get('baseline') or {}
    runs += [run for run in (baseline.get('run'), baseline.get('capacity_run')) if run]
    return runs


def host_steal(report: dict[str, Any]) -> dict[str, Any] | None:
    """Return the median and max host steal over the phases, or None where not measured."""
    measured = [(run['host_steal_percent'], run['phase']) for run in _phase_runs(report)
                if run.get('host_steal_percent') is not None]
    if not measured:
        return None
    worst = max(measured)
    return {'median': round(float(np.median([value for value, _ in measured])), 1),
            'max': worst[0], 'max_phase': worst[1]}


def format_report(report: dict[str, Any]) -> str:
    """Return the report as text tables (what the command prints)."""
    machine = report['machine']
    versions = machine['versions']
    parts = [
        f'plant-disease bench, {machine["date_utc"]} -- {machine["cpu_model"]}, '
        f'{machine["cores_usable"]} usable of {machine["cores_logical"]} logical cores, '
        f'{machine["memory_gb"]} GB, {machine["platform"]}',
        'versions: ' + ', '.join(f'{name} {version}' for name, version in versions.items()),
        f'load average at start {machine["load_average_1_5_15"]}'
        + ('  ** BUSY: figures are pessimistic **' if machine['busy'] else ''),
    ]
    steal = host_steal(report)
    if steal is not None:
        parts.append(f'host steal during the phases: median {steal["median"]:g} %, max '
                     f'{steal["max"]:g} % ({steal["max_phase"]})'
                     + ('  ** HOST BUSY: figures are pessimistic **'
                        if steal['max'] > STEAL_BUSY_PERCENT else ''))
    model = report.get('model')
    if model:
        rows = [[f'invoke, {threads} thread(s)', *(s[k] for k in ('p50', 'p95', 'mean', 'n'))]
                for threads, s in model['invoke'].items()]
        rows += [[f'classify() {size}, {model["classify_threads"]} threads',
                  *(s[k] for k in ('p50', 'p95', 'mean', 'n'))]
                 for size, s in model['classify'].items()]
        rows += [[name, *(s[k] for k in ('p50', 'p95', 'mean', 'n'))]
                 for name, s in model['conversions'].items() if isinstance(s, dict)]
        parts.append(_table(f'model {Path(model["model_path"]).name} ({model.get("backend")}, '
                            f'input {model.get("input")}), ms', ['what', 'p50', 'p95', 'mean',
                                                                 'n'], rows))
    if report.get('latency'):
        floors = {run['size']: run['latency_ms']['p50'] for run in report['latency']
                  if run['rig'] == 'relay-raw'}
        rows = []
        for run in report['latency']:
            p50, floor = run['latency_ms']['p50'], floors.get(run['size'])
            over = (round(p50 - floor, 2) if p50 is not None and floor is not None
                    and run['rig'] != 'relay-raw' else None)
            rows.append([run['rig'], run['size'], run['published'], run['processed'], p50,
                         run['latency_ms']['p95'], run['latency_ms']['max'],
                         run.get('host_steal_percent'), over,
                         (run.get('camera_publish_ms') or {}).get('p50'),
                         (run.get('latency_at_dds_receipt_ms') or {}).get('p50')])
        parts.append(_table(f'end-to-end latency, publish -> classification, '
                            f'{LATENCY_RATE_HZ:g} Hz, ms (relay = DDS floor, no work)',
                            ['rig', 'size', 'published', 'delivered', 'p50', 'p95', 'max',
                             'steal %', 'p50 - floor', 'publish()', 'p50 at DDS rx'], rows)
                     + "\nwithin the p50: publish() = the camera's own publish call (p50); "
                       "p50 at DDS rx = stamp to the probe's DDS reception, before the "
                       "probe's executor runs its callback")
    if report.get('capacity'):
        rows = [[run['rig'], run['published_fps'], run['processed_fps'],
                 run['latency_ms']['p50'], run['latency_ms']['p95'],
                 run.get('host_steal_percent')]
                for run in report['capacity']]
        rate_hz, size = CAPACITY
        parts.append(_table(f'capacity: {size} offered at {rate_hz:g} fps',
                            ['rig', 'pub fps', 'proc fps', 'p50 ms', 'p95 ms', 'steal %'],
                            rows))
    if report.get('sustained'):
        rows = []
        for run in report['sustained']:
            for name, figures in run['processes'].items():
                first = name == next(iter(run['processes']))
                rows.append([
                    run['rig'] if first else '', f'{run["rate_hz"]:g} fps {run["size"]}'
                    if first else '',
                    run['published_fps'] if first else '', run['processed_fps'] if first else '',
                    run['dropped'] if first else '', run['latency_ms']['p95'] if first else '',
                    run['latency_p95_first_ms'] if first else '',
                    run['latency_p95_last_ms'] if first else '',
                    run.get('host_steal_percent') if first else '', name,
                    figures.get('cpu_percent_mean'), figures.get('rss_end_mb'),
                    figures.get('rss_growth_mb')])
        parts.append(_table('sustained input (p95 ms; first/last = first and last window; '
                            'CPU % of one core; RSS MB)',
                            ['rig', 'input', 'pub fps', 'proc fps', 'dropped', 'p95',
                             'p95 first', 'p95 last', 'steal %', 'process', 'CPU %', 'RSS',
                             'RSS +'],
                            rows))
    baseline = report.get('baseline')
    if baseline:
        if 'skipped' in baseline:
            parts.append(f'baseline: skipped ({baseline["skipped"]})')
        else:
            rows = []
            for label, run, ratios in (
                    (f'{FLOOD[0]:g} fps {FLOOD[1]} flood', baseline['run'], baseline['ratios']),
                    (f'{CAPACITY[1]} offered at {CAPACITY[0]:g} fps',
                     baseline.get('capacity_run'), baseline.get('capacity_ratios', {}))):
                if not run:
                    continue
                rows.append([label, 'keras model.predict', run['processed_fps'],
                             run['latency_ms']['p50'], run['latency_ms']['p95']])
                for layout, ratio in ratios.items():
                    rows.append(['', f'{layout} / baseline throughput', ratio, None, None])
            parts.append(_table('seed-style baseline (Keras model.predict per frame)',
                                ['input', 'what', 'proc fps / ratio', 'p50 ms', 'p95 ms'],
                                rows))
    explain = report.get('explain')
    if explain:
        rows = []
        core = explain.get('core', {}).get('heatmap_and_overlay_ms')
        if core:
            rows.append([f'occlusion grid {explain["grid"]} + overlay (in-process)', core['p50'],
                         core['p95'], None])
        for kind in ('off', 'on'):
            run = explain.get(kind)
            if run:
                rows.append([f'pipeline 640x480 latency, explanation {kind}',
                             run['latency_ms']['p50'], run['latency_ms']['p95'],
                             run['latency_ms']['max']])
        if 'explanations_received' in explain:
            rows.append(['explanations received', explain['explanations_received'], None,
                         None])
        parts.append(_table(f'explanation cost (every {explain["period_s"]:g} s), ms',
                            ['what', 'p50', 'p95', 'max'], rows))
        if explain.get('note'):
            parts.append(f'explain: {explain["note"]}')
    if report.get('bars'):
        rows = [[bar['bar'], bar['value'], bar['limit'], bar['pass']] for bar in report['bars']]
        parts.append(_table('bars (issue 6)', ['bar', 'value', 'limit', 'pass'], rows))
    for error in report.get('errors', []):
        parts.append(f'ERROR {error}')
    return '\n\n'.join(parts)


def _json_ready(value: Any) -> Any:
    """Return ``value`` with NaN/inf replaced by None (strict JSON)."""
    if isinstance(value, float):
        return value if math.isfinite(value) else None
    if isinstance(value, dict):
        return {str(key): _json_ready(item) for key, item in value.items()}
    if isinstance(value, (list, tuple)):
        return [_json_ready(item) for item in value]
    return value


def write_report(report: dict[str, Any], path: Path) -> None:
    """Write the report as indented strict JSON."""
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(_json_ready(report), indent=2, allow_nan=False) + '\n')


def run_bench(config: BenchConfig) -> dict[str, Any]:
    """Run the bench with ``config``; return the report."""
    return Bench(config).run()


def main(argv: Sequence[str] | None = None) -> int:
    """Run a worker: ``python -m plant_disease_ros.tools.bench publisher|baseline|relay ...``."""
    args = list(sys.argv[1:] if argv is None else argv)
    workers = {'publisher': run_publisher, 'baseline': run_baseline, 'relay': run_relay}
    if not args or args[0] not in workers:
        print(f'usage: python -m plant_disease_ros.tools.bench {{{",".join(workers)}}} ...; '
              'the bench itself is `plant-disease bench`', file=sys.stderr)
        return 2
    prepare_environment()
    return workers[args[0]](args[1:])


if __name__ == '__main__':
    sys.exit(main())
