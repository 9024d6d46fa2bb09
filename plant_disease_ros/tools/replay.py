"""Replay a rosbag2 bag through the plant disease pipeline and record what comes out.

The bag (a rosbag2 folder, or a single ``.mcap`` or ``.db3`` file) is read with the
``rosbags`` library; no rosbag2 install is needed. Its camera topic (sensor_msgs/Image or
CompressedImage) and GNSS topic (sensor_msgs/NavSatFix) are found by type unless named,
and published with rclpy exactly as recorded (the CDR bytes, header stamps unchanged),
together with ``/clock`` for nodes running with ``use_sim_time``:

- at the recorded speed, or ``rate`` times it;
- or ``fast``: each frame is sent once the previous one has been classified, so nothing
  is dropped and the pipeline sets the pace. GPS fixes are sent up to ``fix_lead_s``
  ahead of each frame, so a frame never waits for the fix after it; as ``fix_lead_s``
  exceeds the classifier's ``max_fix_age_s`` the detections do not depend on timing.

The pipeline runs as subprocesses (camera_subscriber + disease_classifier, or
plant_disease_pipeline, and disease_map_recorder) in ``namespace`` with
``config/field.yaml``, or a running one is used (``attach``). Its ``label``,
``classification``, ``detections`` and ``markers`` are written to a new MCAP bag; at the
end the recorder's ``~/save`` service writes the GeoJSON and the map is rendered as PNG.

Processes started here get ``ROS_AUTOMATIC_DISCOVERY_RANGE=LOCALHOST`` unless the
variable is already set (a replay is a local affair; set it to SUBNET to attach to a
robot), and keep ``ROS_DOMAIN_ID`` from the environment. They are always stopped at the
end, on errors and on Ctrl-C.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
import heapq
import json
import logging
import os
from pathlib import Path
import re
import shutil
import signal
import subprocess
import sys
import threading
import time
from typing import Any, TextIO

IMAGE_TYPES = {
    'sensor_msgs/msg/Image': 'raw',
    'sensor_msgs/msg/CompressedImage': 'compressed',
}
FIX_TYPE = 'sensor_msgs/msg/NavSatFix'
# Image topics the pipeline itself publishes: never chosen as its input.
OUTPUT_IMAGE_NAMES = ('frames', 'image_annotated', 'explanation')
RECORDED_OUTPUTS = {
    'label': 'std_msgs/msg/String',
    'classification': 'std_msgs/msg/String',
    'detections': 'std_msgs/msg/String',
    'markers': 'visualization_msgs/msg/MarkerArray',
}
DEFAULT_NAMESPACE = 'plant_disease'
CLOCK_PERIOD_S = 0.02
STARTUP_TIMEOUT_S = 90.0
FRAME_TIMEOUT_S = 10.0
FRAME_RETRY_S = 4.0
FIX_LEAD_S = 2.5
SETTLE_QUIET_S = 1.5
SAVE_CATCH_UP_S = 10.0
SAVE_RETRY_S = 0.25
STOP_TIMEOUT_S = 8.0


class ReplayError(RuntimeError):
    """A replay that cannot start or go on; its message is one line for the user."""


@dataclass(frozen=True)
class TopicChoice:
    """A topic of the bag: name, message type and message count."""

    name: str
    msgtype: str
    count: int


@dataclass(frozen=True)
class BagSelection:
    """What will be replayed from a bag."""

    path: Path
    image: TopicChoice
    fix: TopicChoice | None
    start_ns: int
    end_ns: int
    topics: dict[str, tuple[str, int]]

    @property
    def transport(self) -> str:
        """Return 'raw' or 'compressed', the camera_subscriber transport for the image."""
        return IMAGE_TYPES[self.image.msgtype]

    @property
    def duration_s(self) -> float:
        """Return the bag's duration in seconds."""
        return max(self.end_ns - self.start_ns, 0) / 1e9


@dataclass
class ReplayOptions:
    """How to replay: speed, topics, output folder, pipeline or attach, clock."""

    bag: Path
    rate: float = 1.0
    fast: bool = False
    image_topic: str | None = None
    fix_topic: str | None = None
    out_dir: Path | None = None
    attach: bool = False
    single_process: bool = False
    namespace: str = DEFAULT_NAMESPACE
    clock: bool = True
    params_file: Path | None = None
    parameters: dict[str, str] = field(default_factory=dict)
    fix_lead_s: float = FIX_LEAD_S
    frame_timeout_s: float = FRAME_TIMEOUT_S
    startup_timeout_s: float = STARTUP_TIMEOUT_S
    show_progress: bool = True


@dataclass
class ReplaySummary:
    """What a replay did and where its outputs are."""

    bag: Path
    image_topic: str
    fix_topic: str | None
    mode: str
    frames_in: int = 0
    labelled: int = 0
    unknown: int = 0
    unanswered: int = 0
    fixes_in: int = 0
    detections: Counter[str] = field(default_factory=Counter)
    fix_status: Counter[str] = field(default_factory=Counter)
    wall_s: float = 0.0
    out_dir: Path | None = None
    output_bag: Path | None = None
    geojson: Path | None = None
    png: Path | None = None
    save_message: str = ''
    logs: list[Path] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)

    @property
    def frames_per_s(self) -> float:
        """Return labelled frames per wall-clock second, first frame sent to last answer."""
        return self.labelled / self.wall_s if self.wall_s > 0 else 0.0

    def as_dict(self) -> dict[str, Any]:
        """Return the summary as plain JSON types."""
        return {
            'bag': str(self.bag), 'image_topic': self.image_topic, 'fix_topic': self.fix_topic,
            'mode': self.mode, 'frames_in': self.frames_in, 'labelled': self.labelled,
            'unknown': self.unknown, 'unanswered': self.unanswered, 'fixes_in': self.fixes_in,
            'detections': dict(sorted(self.detections.items())),
            'detections_total': sum(self.detections.values()),
            'fix_status': dict(sorted(self.fix_status.items())),
            'wall_s': round(self.wall_s, 3), 'frames_per_s': round(self.frames_per_s, 2),
            'out_dir': str(self.out_dir) if self.out_dir else None,
            'output_bag': str(self.output_bag) if self.output_bag else None,
            'geojson': str(self.geojson) if self.geojson else None,
            'png': str(self.png) if self.png else None,
            'save_message': self.save_message,
            'logs': [str(path) for path in self.logs], 'warnings': self.warnings,
        }

    def lines(self) -> list[str]:
        """Return the human-readable summary."""
        total = sum(self.detections.values())
        lines = [
            f'bag:         {self.bag} (image {self.image_topic}, '
            f'fix {self.fix_topic or "none"}; {self.mode})',
            f'frames in:   {self.frames_in}',
            f'labelled:    {self.labelled} ({self.unknown} unknown below the score threshold'
            + (f', {self.unanswered} not classified' if self.unanswered else '') + ')',
            f'speed:       {self.frames_per_s:.1f} frames/s ({self.wall_s:.1f} s)',
            f'detections:  {total}'
            + (' (' + ', '.join(f'{status} {count}' for status, count in
                                sorted(self.fix_status.items())) + ')' if total else ''),
        ]
        for label, count in sorted(self.detections.items(), key=lambda item: (-item[1],
                                                                              item[0])):
            lines.append(f'  {count:5d}  {label}')
        if self.mode.endswith('attached') and self.save_message:
            lines.append(f'recorder:    {self.save_message}')
        lines += [
            f'GeoJSON:     {self.geojson or "not written"}',
            f'map PNG:     {self.png or "not written"}',
            f'output bag:  {self.output_bag or "not written"}',
        ]
        lines += [f'warning:     {text}' for text in self.warnings]
        return lines


# Bag inspection ------------------------------------------------------------------------


def open_bag(path: Path) -> Any:
    """Open a rosbag2 folder or a .mcap/.db3 file; raise ReplayError with one line."""
    from rosbags.rosbag2 import Reader, ReaderError

    path = Path(path)
    if not path.exists():
        raise ReplayError(f'bag not found: {path}')
    if path.is_dir() and not (path / 'metadata.yaml').is_file():
        raise ReplayError(f'cannot read bag {path}: a folder without metadata.yaml is not a '
                          'rosbag2 bag')
    try:
        reader = Reader(path)
        reader.open()
    except (ReaderError, OSError, ValueError, KeyError, EOFError) as error:
        raise ReplayError(f'cannot read bag {path}: {_one_line(error)}') from error
    except Exception as error:  # corrupt files raise all sorts of errors
        raise ReplayError(f'cannot read bag {path}: corrupt or not a rosbag2 bag '
                          f'({type(error).__name__}: {_one_line(error)})') from error
    return reader


def _one_line(error: BaseException) -> str:
    text = ' '.join(str(error).split())
    return text or type(error).__name__


def _is_output_image(name: str) -> bool:
    return name.rstrip('/').rsplit('/', 1)[-1] in OUTPUT_IMAGE_NAMES


def select_topics(topics: Mapping[str, tuple[str | None, int]], image_topic: str | None = None,
                  fix_topic: str | None = None) -> tuple[TopicChoice, TopicChoice | None]:
    """Choose the image and fix topics from ``{name: (msgtype, count)}``.

    Named topics must exist with a suitable type; a name without ``/compressed`` also
    matches its compressed sub-topic when only that is recorded. Otherwise the image topic
    is the Image or CompressedImage topic with the most messages (raw wins a tie: it
    needs no decoding), leaving out the pipeline's own outputs and compressedDepth, and
    the fix topic is the NavSatFix topic with the most messages (none is fine).
    """
    images = {name: TopicChoice(name, msgtype, count) for name, (msgtype, count) in
              topics.items() if msgtype in IMAGE_TYPES and 'compressedDepth' not in name}
    fixes = {name: TopicChoice(name, msgtype, count) for name, (msgtype, count) in
             topics.items() if msgtype == FIX_TYPE}
    listing = ', '.join(f'{name} ({msgtype})' for name, (msgtype, _) in sorted(topics.items()))
    if image_topic:
        choice = images.get(image_topic) or images.get(image_topic.rstrip('/') + '/compressed')
        if choice is None:
            if image_topic in topics:
                raise ReplayError(f'topic {image_topic} is {topics[image_topic][0]}, not '
                                  'sensor_msgs/msg/Image or CompressedImage')
            raise ReplayError(f'image topic {image_topic} not in the bag; its topics: '
                              f'{listing or "none"}')
        image = choice
    else:
        candidates = [choice for name, choice in images.items() if not _is_output_image(name)]
        if not candidates:
            raise ReplayError('no image topic (sensor_msgs/msg/Image or CompressedImage) in '
                              f'the bag; its topics: {listing or "none"}')
        image = max(candidates, key=lambda c: (c.count, c.msgtype == 'sensor_msgs/msg/Image',
                                               c.name))
    if image.count == 0:
        raise ReplayError(f'image topic {image.name} has no messages')
    if fix_topic:
        if fix_topic not in fixes:
            raise ReplayError(f'fix topic {fix_topic} not in the bag or not NavSatFix; its '
                              f'topics: {listing or "none"}')
        fix = fixes[fix_topic]
    else:
        fix = max(fixes.values(), key=lambda c: (c.count, c.name)) if fixes else None
    return image, fix


def inspect_bag(path: Path, image_topic: str | None = None,
                fix_topic: str | None = None) -> BagSelection:
    """Open ``path``, choose the topics and return the selection (raises ReplayError)."""
    reader = open_bag(path)
    try:
        topics = {name: (info.msgtype, info.msgcount) for name, info in reader.topics.items()}
        image, fix = select_topics(topics, image_topic, fix_topic)
        return BagSelection(Path(path), image, fix, reader.start_time, reader.end_time, topics)
    finally:
        reader.close()


# Environment and subprocesses -----------------------------------------------------------


def pipeline_environment(base: Mapping[str, str] | None = None) -> dict[str, str]:
    """Return the environment for ROS processes: loopback discovery unless set, same domain."""
    env = dict(os.environ if base is None else base)
    env.setdefault('ROS_AUTOMATIC_DISCOVERY_RANGE', 'LOCALHOST')
    env.setdefault('PYTHONUNBUFFERED', '1')
    return env


def default_params_file() -> Path | None:
    """Return config/field.yaml of the source tree, or of the installed package share."""
    local = Path(__file__).resolve().parents[1] / 'config' / 'field.yaml'
    if local.is_file():
        return local
    try:
        from ament_index_python.packages import get_package_share_directory

        shared = Path(get_package_share_directory('plant_disease_ros')) / 'config' / 'field.yaml'
    except (ImportError, LookupError, ValueError):
        return None
    return shared if shared.is_file() else None


def normalize_namespace(namespace: str) -> str:
    """Return '/ns' for 'ns' or '/ns/', and '' for the root namespace."""
    stripped = namespace.strip().strip('/')
    if stripped and not re.fullmatch(r'[A-Za-z_][A-Za-z0-9_]*(/[A-Za-z_][A-Za-z0-9_]*)*',
                                     stripped):
        raise ReplayError(f'invalid namespace {namespace!r}')
    return f'/{stripped}' if stripped else ''


def executable_command(name: str, module: str) -> list[str]:
    """Return the command of console script ``name``: beside Python, on PATH, or ``-m``."""
    beside = Path(sys.executable).parent / name
    if beside.is_file() and os.access(beside, os.X_OK):
        return [str(beside)]
    found = shutil.which(name)
    if found:
        return [found]
    return [sys.executable, '-m', module]


@dataclass
class PipelineProcess:
    """A started pipeline process and its log file."""

    name: str
    popen: subprocess.Popen
    log_path: Path
    log_file: TextIO

    def log_tail(self, lines: int = 3) -> str:
        """Return the last lines of the process log as one line."""
        try:
            text = self.log_path.read_text(encoding='utf-8', errors='replace')
        except OSError:
            return ''
        tail = [line.strip() for line in text.strip().splitlines()[-lines:]]
        return ' | '.join(line for line in tail if line)


def pipeline_commands(selection: BagSelection, options: ReplayOptions, map_dir: Path,
                      run_name: str, params_file: Path | None) -> list[tuple[str, list[str]]]:
    """Return (name, argv) of each pipeline process for this replay."""
    namespace = normalize_namespace(options.namespace) or '/'
    common = ['--ros-args', '-r', f'__ns:={namespace}']
    if params_file is not None:
        common += ['--params-file', str(params_file)]
    common += ['-p', f'use_sim_time:={"true" if options.clock else "false"}']
    for name, value in options.parameters.items():
        common += ['-p', f'{name}:={value}']
    image_remap = ('image_raw' if selection.transport == 'raw' else 'image_raw/compressed')
    camera = ['-p', f'transport:={selection.transport}',
              '-r', f'{image_remap}:={selection.image.name}']
    classifier = ['-r', f'fix:={selection.fix.name}'] if selection.fix else []
    recorder = ['-p', f'map_dir:={map_dir}', '-p', f'run_name:={run_name}']
    package = 'plant_disease_ros'
    if options.single_process:
        processes = [('plant_disease_pipeline', f'{package}.pipeline_node',
                      camera + classifier)]
    else:
        processes = [('camera_subscriber', f'{package}.camera_subscriber_node', camera),
                     ('disease_classifier', f'{package}.disease_classifier_node', classifier)]
    processes.append(('disease_map_recorder', f'{package}.disease_map_recorder_node',
                      recorder))
    return [(name, executable_command(name, module) + common + extra)
            for name, module, extra in processes]


def start_processes(commands: list[tuple[str, list[str]]], log_dir: Path,
                    env: Mapping[str, str]) -> list[PipelineProcess]:
    """Start each command in its own session with output to ``log_dir/<name>.log``."""
    log_dir.mkdir(parents=True, exist_ok=True)
    started: list[PipelineProcess] = []
    try:
        for name, argv in commands:
            log_path = log_dir / f'{name}.log'
            log_file = open(log_path, 'w', encoding='utf-8')  # closed by stop_processes
            log_file.write('$ ' + ' '.join(argv) + '\n')
            log_file.flush()
            # A session of its own: Ctrl-C reaches the replay, which stops them in order.
            popen = subprocess.Popen(argv, stdout=log_file, stderr=subprocess.STDOUT,
                                     stdin=subprocess.DEVNULL, env=dict(env),
                                     start_new_session=True)
            started.append(PipelineProcess(name, popen, log_path, log_file))
    except OSError as error:
        stop_processes(started)
        raise ReplayError(f'cannot start {name}: {error}') from error
    return started


def stop_processes(processes: list[PipelineProcess], timeout_s: float = STOP_TIMEOUT_S) -> None:
    """Stop processes: SIGINT (clean shutdown, the recorder saves), then SIGTERM, SIGKILL."""
    for process in processes:
        if process.popen.poll() is None:
            try:
                process.popen.send_signal(signal.SIGINT)
            except OSError:
                pass
    deadline = time.monotonic() + timeout_s
    for stop in (None, signal.SIGTERM, signal.SIGKILL):
        for process in processes:
            if process.popen.poll() is not None:
                continue
            if stop is not None:
                try:
                    process.popen.send_signal(stop)
                except OSError:
                    pass
            try:
                process.popen.wait(timeout=max(deadline - time.monotonic(), 0.1))
            except subprocess.TimeoutExpired:
                pass
        if all(process.popen.poll() is not None for process in processes):
            break
        deadline = time.monotonic() + 2.0
    for process in processes:
        try:
            process.popen.wait(timeout=1.0)
        except subprocess.TimeoutExpired:
            pass
        process.log_file.close()


def check_alive(processes: list[PipelineProcess]) -> None:
    """Raise ReplayError when a pipeline process has exited."""
    for process in processes:
        code = process.popen.poll()
        if code is not None:
            raise ReplayError(f'{process.name} exited with status {code}: '
                              f'{process.log_tail() or "no output"} (log: {process.log_path})')


# Output folder ----------------------------------------------------------------------------


def _unique(path: Path) -> Path:
    if not path.exists() and not path.with_suffix('.geojsons').exists():
        return path
    for number in range(2, 10000):
        candidate = path.with_name(f'{path.name}-{number}')
        if not candidate.exists() and not candidate.with_suffix('.geojsons').exists():
            return candidate
    raise ReplayError(f'no free output name for {path}')


def output_paths(out_dir: Path | None, bag: Path) -> tuple[Path, Path, Path, str]:
    """Return (out folder, output bag folder, map folder, run name); names are new.

    In the out folder: ``output_bag/`` and the recorder's ``disease_map.geojsons``,
    ``.geojson``, ``_summary.json`` and the ``.png``; a second replay into the same
    folder gets ``output_bag-2`` and ``disease_map-2``.
    """
    if out_dir is None:
        stem = re.sub(r'[^A-Za-z0-9_-]', '_', bag.name.split('.')[0]) or 'bag'
        out_dir = Path('outputs') / 'replay' / f'{stem}-{time.strftime("%Y%m%d-%H%M%S")}'
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    output_bag = _unique(out_dir / 'output_bag')
    run_name = _unique(out_dir / 'disease_map').name
    return out_dir, output_bag, out_dir, run_name


# The replay node ----------------------------------------------------------------------------


class _Recorder:
    """Receive the pipeline's outputs (raw CDR), write them to the output bag, count them."""

    def __init__(self, writer: Any, typestore: Any, topics: dict[str, str]) -> None:
        self.writer = writer
        self.typestore = typestore
        self.lock = threading.Condition()
        self.clock_ns = 0
        self.connections = {
            topic: writer.add_connection(topic, msgtype, typestore=typestore)
            for topic, msgtype in topics.items()}
        self.classified: dict[tuple[int, int], str] = {}
        self.duplicates = 0
        self.labels = 0
        self.detections: Counter[str] = Counter()
        self.fix_status: Counter[str] = Counter()
        self.features: list[dict] = []
        self.last_output_s = time.monotonic()
        self.write_error = ''

    def callback(self, topic: str, kind: str) -> Any:
        """Return the subscription callback of an output topic."""
        def receive(data: bytes) -> None:
            self.receive(topic, kind, data)
        return receive

    def receive(self, topic: str, kind: str, data: bytes) -> None:
        """Write one message to the bag and update the counts."""
        with self.lock:
            try:
                self.writer.write(self.connections[topic], self.clock_ns, data)
            except Exception as error:  # reported once, at the end
                self.write_error = self.write_error or _one_line(error)
            if kind != 'markers':
                self.last_output_s = time.monotonic()
            if kind in ('classification', 'detections', 'label'):
                text = self.typestore.deserialize_cdr(data, 'std_msgs/msg/String').data
                self._count(kind, text)
            self.lock.notify_all()

    def _count(self, kind: str, text: str) -> None:
        if kind == 'label':
            self.labels += 1
            return
        try:
            value = json.loads(text)
        except ValueError:
            return
        if kind == 'classification':
            stamp = value.get('stamp') or {}
            key = (int(stamp.get('sec', 0)), int(stamp.get('nanosec', 0)))
            if key in self.classified:
                self.duplicates += 1
            self.classified[key] = str(value.get('label', ''))
        else:
            properties = value.get('properties') or {}
            self.detections[str(properties.get('label', ''))] += 1
            self.fix_status[str(properties.get('fix_status', ''))] += 1
            self.features.append(value)

    def wait_for(self, key: tuple[int, int], timeout_s: float) -> bool:
        """Wait until the classification of the frame stamped ``key`` has come."""
        deadline = time.monotonic() + timeout_s
        with self.lock:
            while key not in self.classified:
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    return False
                self.lock.wait(min(remaining, 0.05))
        return True


class _Player:
    """The rclpy side of a replay: publishers, output subscriptions, clock, executor."""

    def __init__(self, selection: BagSelection, options: ReplayOptions,
                 recorder: _Recorder) -> None:
        import rclpy
        from rclpy.executors import SingleThreadedExecutor
        from rclpy.qos import DurabilityPolicy, HistoryPolicy, QoSProfile, ReliabilityPolicy
        from rclpy.signals import SignalHandlerOptions
        from sensor_msgs.msg import CompressedImage, Image, NavSatFix

        self.rclpy = rclpy
        self.context = rclpy.Context()
        # args=[]: the replay's own command line is not for rcl. No rclpy signal handler:
        # Ctrl-C raises KeyboardInterrupt here and the replay stops its subprocesses itself.
        rclpy.init(args=[], context=self.context,
                   signal_handler_options=SignalHandlerOptions.NO)
        self.node = rclpy.create_node('plant_disease_replay', context=self.context)
        reliable = QoSProfile(history=HistoryPolicy.KEEP_LAST, depth=10,
                              reliability=ReliabilityPolicy.RELIABLE,
                              durability=DurabilityPolicy.VOLATILE)
        image_type = Image if selection.transport == 'raw' else CompressedImage
        self.image_publisher = self.node.create_publisher(image_type, selection.image.name,
                                                          reliable)
        self.fix_publisher = (self.node.create_publisher(NavSatFix, selection.fix.name,
                                                         reliable)
                              if selection.fix else None)
        self.clock_publisher = None
        self.clock_type: Any = None
        self.clock_warning = ''
        if options.clock:
            try:
                from rosgraph_msgs.msg import Clock
            except ImportError:
                self.clock_warning = ('rosgraph_msgs is not installed: no /clock published; '
                                      'the pipeline runs on wall time')
            else:
                self.clock_type = Clock
                self.clock_publisher = self.node.create_publisher(
                    Clock, '/clock', QoSProfile(depth=1, reliability=ReliabilityPolicy.RELIABLE))
        namespace = normalize_namespace(options.namespace)
        self.output_topics = {kind: f'{namespace}/{kind}' for kind in RECORDED_OUTPUTS}
        self.frames_topic = f'{namespace}/frames'
        modules = {'std_msgs/msg/String': ('std_msgs.msg', 'String'),
                   'visualization_msgs/msg/MarkerArray': ('visualization_msgs.msg',
                                                          'MarkerArray')}
        self.subscriptions = []
        for kind, topic in self.output_topics.items():
            module_name, class_name = modules[RECORDED_OUTPUTS[kind]]
            module = __import__(module_name, fromlist=[class_name])
            durability = (DurabilityPolicy.TRANSIENT_LOCAL if kind == 'markers'
                          else DurabilityPolicy.VOLATILE)
            qos = QoSProfile(history=HistoryPolicy.KEEP_LAST, depth=200,
                             reliability=ReliabilityPolicy.RELIABLE, durability=durability)
            self.subscriptions.append(self.node.create_subscription(
                getattr(module, class_name), topic, recorder.callback(topic, kind), qos,
                raw=True))
        from std_srvs.srv import Trigger

        self.trigger_type = Trigger
        self.save_service = f'{namespace}/disease_map_recorder/save'
        self.save_client = self.node.create_client(Trigger, self.save_service)
        self.executor = SingleThreadedExecutor(context=self.context)
        self.executor.add_node(self.node)
        self._spinning = True
        self._thread = threading.Thread(target=self._spin, name='replay-executor', daemon=True)
        self._thread.start()
        self.clock_ns = 0
        self.recorder = recorder

    def _spin(self) -> None:
        while self._spinning and self.context.ok():
            try:
                self.executor.spin_once(timeout_sec=0.05)
            except Exception:  # a shutdown race ends the loop
                if not self._spinning:
                    break
                raise

    def publish_clock(self, bag_ns: int) -> None:
        """Advance the clock to ``bag_ns`` (never back) and publish it."""
        if bag_ns > self.clock_ns:
            self.clock_ns = bag_ns
        with self.recorder.lock:
            self.recorder.clock_ns = self.clock_ns
        if self.clock_publisher is not None:
            message = self.clock_type()
            message.clock.sec = self.clock_ns // 1_000_000_000
            message.clock.nanosec = self.clock_ns % 1_000_000_000
            self.clock_publisher.publish(message)

    def frames_linked(self) -> bool:
        """Return whether the ``frames`` topic has a publisher and a subscriber."""
        return (self.node.count_publishers(self.frames_topic) > 0
                and self.node.count_subscribers(self.frames_topic) > 0)

    def frames_reliability_matched(self) -> bool:
        """Return whether every ``frames`` subscriber is reliable when all publishers are."""
        from rclpy.qos import ReliabilityPolicy

        publishers = self.node.get_publishers_info_by_topic(self.frames_topic)
        subscribers = self.node.get_subscriptions_info_by_topic(self.frames_topic)
        if not publishers or not subscribers:
            return False
        if any(info.qos_profile.reliability != ReliabilityPolicy.RELIABLE
               for info in publishers):
            return True
        return all(info.qos_profile.reliability == ReliabilityPolicy.RELIABLE
                   for info in subscribers)

    def output_publishers(self) -> int:
        """Return how many publishers the classification topic has."""
        return self.node.count_publishers(self.output_topics['classification'])

    def save(self, timeout_s: float = 15.0) -> tuple[bool, str]:
        """Call the recorder's ~/save; return (success, message)."""
        if not self.save_client.wait_for_service(timeout_sec=min(timeout_s, 5.0)):
            return False, f'{self.save_service} not available'
        future = self.save_client.call_async(self.trigger_type.Request())
        deadline = time.monotonic() + timeout_s
        while not future.done() and time.monotonic() < deadline:
            time.sleep(0.02)
        if not future.done():
            return False, f'{self.save_service} did not answer in {timeout_s:g} s'
        response = future.result()
        return bool(response.success), str(response.message)

    def close(self) -> None:
        """Stop the executor thread and shut the context down."""
        self._spinning = False
        self._thread.join(timeout=2.0)
        try:
            self.executor.shutdown(timeout_sec=1.0)
            self.node.destroy_node()
        finally:
            self.rclpy.try_shutdown(context=self.context)


class _Progress:
    """One progress line on stderr, redrawn in place on a terminal, every 10 % otherwise."""

    def __init__(self, total: int, stream: TextIO, enabled: bool) -> None:
        self.total = max(total, 1)
        self.stream = stream
        self.enabled = enabled
        self.tty = bool(getattr(stream, 'isatty', lambda: False)())
        self.last_draw = 0.0
        self.last_decile = -1
        self.drawn = False

    def update(self, sent: int, labelled: int, fps: float, bag_s: float, bag_total_s: float,
               force: bool = False) -> None:
        """Redraw the line (throttled)."""
        if not self.enabled:
            return
        now = time.monotonic()
        decile = sent * 10 // self.total
        if self.tty and not force and now - self.last_draw < 0.2:
            return
        if not self.tty and not force and decile == self.last_decile:
            return
        self.last_draw, self.last_decile = now, decile
        line = (f'replay: {sent}/{self.total} frames sent, {labelled} labelled, '
                f'{fps:.1f} frames/s, bag {bag_s:.1f}/{bag_total_s:.1f} s')
        if self.tty:
            self.stream.write('\r' + line + '\x1b[K')
            self.drawn = True
        else:
            self.stream.write(line + '\n')
        self.stream.flush()

    def finish(self) -> None:
        """End the progress line."""
        if self.enabled and self.tty and self.drawn:
            self.stream.write('\n')
            self.stream.flush()


# Bag reading helpers -------------------------------------------------------------------------


@dataclass(order=True)
class _BagMessage:
    log_ns: int
    order: int
    kind: str = field(compare=False)
    data: bytes = field(compare=False)


def _read_messages(reader: Any, topic: str, kind: str, order: int) -> Iterator[_BagMessage]:
    connections = [c for c in reader.connections if c.topic == topic]
    messages = reader.messages(connections=connections)
    while True:
        try:
            _, log_ns, data = next(messages)
        except StopIteration:
            return
        except Exception as error:  # a corrupt chunk shows only when it is read
            raise ReplayError(f'cannot read bag {reader.path}: {type(error).__name__}: '
                              f'{_one_line(error)}') from error
        yield _BagMessage(int(log_ns), order, kind, bytes(data))


def _stamp_key(typestore: Any, data: bytes, msgtype: str) -> tuple[int, int]:
    message = typestore.deserialize_cdr(data, msgtype)
    return int(message.header.stamp.sec), int(message.header.stamp.nanosec)


# The replay ------------------------------------------------------------------------------------


def replay(options: ReplayOptions, stream: TextIO = sys.stderr) -> ReplaySummary:
    """Replay ``options.bag`` through the pipeline; return the summary (ReplayError on failure)."""
    if not options.fast and not options.rate > 0.0:
        raise ReplayError(f'--rate must be > 0, got {options.rate}')
    try:
        import rosbags  # noqa: F401
    except ImportError as error:
        raise ReplayError(f'replay needs the rosbags package: {error}') from error
    selection = inspect_bag(options.bag, options.image_topic, options.fix_topic)
    try:
        import rclpy  # noqa: F401
    except ImportError as error:
        raise ReplayError(
            f'replay needs rclpy and the ROS 2 message packages: {error}') from error
    # This process joins the graph too: loopback unless the user chose otherwise.
    os.environ.setdefault('ROS_AUTOMATIC_DISCOVERY_RANGE', 'LOCALHOST')
    from rosbags.rosbag2 import StoragePlugin, Writer
    from rosbags.typesys import get_typestore, Stores

    typestore = get_typestore(Stores.LATEST)
    out_dir, output_bag, map_dir, run_name = output_paths(options.out_dir, selection.path)
    summary = ReplaySummary(
        bag=selection.path, image_topic=selection.image.name,
        fix_topic=selection.fix.name if selection.fix else None,
        mode=('fast' if options.fast else f'rate {options.rate:g}')
        + (', attached' if options.attach else ''), out_dir=out_dir)
    if selection.fix is None:
        summary.warnings.append('no NavSatFix topic: every detection has null geometry')
    params_file = options.params_file or default_params_file()
    env = pipeline_environment()
    env.setdefault('ROS_LOG_DIR', str(out_dir / 'logs' / 'ros'))

    namespace = normalize_namespace(options.namespace)
    writer = Writer(output_bag, version=8, storage_plugin=StoragePlugin.MCAP)
    writer.open()
    recorder = _Recorder(writer, typestore, {
        f'{namespace}/{kind}': msgtype for kind, msgtype in RECORDED_OUTPUTS.items()})
    processes: list[PipelineProcess] = []
    player: _Player | None = None
    reader = None
    progress = _Progress(selection.image.count, stream, options.show_progress)
    try:
        player = _Player(selection, options, recorder)
        if player.clock_warning:
            summary.warnings.append(player.clock_warning)
        if not options.attach:
            commands = pipeline_commands(selection, options, map_dir.resolve(), run_name,
                                         params_file)
            processes = start_processes(commands, out_dir / 'logs', env)
            summary.logs = [process.log_path for process in processes]
        _wait_until_ready(player, selection, options, processes)

        reader = open_bag(selection.path)
        fixes = (list(_read_messages(reader, selection.fix.name, 'fix', 0))
                 if selection.fix else [])
        images = _read_messages(reader, selection.image.name, 'image', 1)
        player.publish_clock(selection.start_ns)
        wall_start = time.monotonic()
        if options.fast:
            _play_fast(player, recorder, images, fixes, selection, options, processes,
                       summary, progress, typestore, wall_start)
        else:
            _play_timed(player, recorder, images, fixes, selection, options, processes,
                        summary, progress, typestore, wall_start)
        _settle(player, recorder, options, processes)
        summary.wall_s = max(recorder.last_output_s - wall_start, 1e-9)
        if not options.fast:
            # Timed replay: frames the pipeline dropped (it keeps only the newest).
            summary.unanswered = max(summary.frames_in - len(recorder.classified), 0)
        progress.update(summary.frames_in, len(recorder.classified),
                        len(recorder.classified) / max(summary.wall_s, 1e-9),
                        (min(player.clock_ns, selection.end_ns) - selection.start_ns) / 1e9,
                        selection.duration_s, force=True)
        progress.finish()
        if options.attach:
            ok, message = player.save()
        else:
            with recorder.lock:
                received = len(recorder.features)
            ok, message = _save_when_complete(player, map_dir / f'{run_name}.geojson',
                                              received)
        summary.save_message = message
        if not ok:
            summary.warnings.append(f'recorder save: {message}')
        _collect(summary, recorder)
    except KeyboardInterrupt:
        progress.finish()
        raise
    finally:
        if reader is not None:
            reader.close()
        stop_processes(processes)
        if player is not None:
            player.close()
        writer.close()
    summary.output_bag = output_bag
    if recorder.write_error:
        summary.warnings.append(f'output bag: {recorder.write_error}')
    _write_map(summary, recorder, map_dir, run_name, options)
    (out_dir / 'summary.json').write_text(json.dumps(summary.as_dict(), indent=1) + '\n',
                                          encoding='utf-8')
    return summary


def _wait_until_ready(player: _Player, selection: BagSelection, options: ReplayOptions,
                      processes: list[PipelineProcess]) -> None:
    """Wait until the pipeline listens to the image (and fix) topic and publishes results."""
    started = time.monotonic()
    deadline = started + options.startup_timeout_s
    # Nodes on sim time run their timers (QoS matching, diagnostics) only while /clock
    # moves, so the clock runs up to the bag's start meanwhile: from start minus the
    # longest wait, at wall speed.
    preroll_ns = selection.start_ns - int(options.startup_timeout_s * 1e9)
    while True:
        player.publish_clock(preroll_ns + int((time.monotonic() - started) * 1e9))
        check_alive(processes)
        waiting = []
        if player.image_publisher.get_subscription_count() == 0:
            waiting.append(f'a subscriber on {selection.image.name}')
        if player.fix_publisher is not None and player.fix_publisher.get_subscription_count() == 0:
            waiting.append(f'a subscriber on {selection.fix.name}')  # type: ignore[union-attr]
        if player.output_publishers() == 0:
            waiting.append(f'a publisher on {player.output_topics["classification"]}')
        if not options.attach and not player.save_client.service_is_ready():
            waiting.append(player.save_service)
        if not options.attach and not options.single_process and not player.frames_linked():
            waiting.append(f'a subscriber on {player.frames_topic}')
        if not waiting:
            break
        if time.monotonic() > deadline:
            where = (' (is the pipeline running in namespace '
                     f'{normalize_namespace(options.namespace) or "/"}?)' if options.attach
                     else '')
            raise ReplayError(f'pipeline not ready after {options.startup_timeout_s:g} s: '
                              f'no {", ".join(waiting)}{where}')
        time.sleep(CLOCK_PERIOD_S)
    # The classifier's 'auto' frames subscription may have started before the camera's
    # publisher and fallen back to best effort; give it a few seconds to match reliable
    # (large best-effort frames can be lost between processes). Discovery is not
    # symmetric either: the other side may need a moment to match us.
    settle_until = time.monotonic() + 0.5
    matched_until = time.monotonic() + 5.0
    while time.monotonic() < settle_until or (
            time.monotonic() < matched_until and not options.attach
            and not options.single_process and not player.frames_reliability_matched()):
        player.publish_clock(preroll_ns + int((time.monotonic() - started) * 1e9))
        time.sleep(CLOCK_PERIOD_S)


def _play_fast(player: _Player, recorder: _Recorder, images: Iterator[_BagMessage],
               fixes: list[_BagMessage], selection: BagSelection, options: ReplayOptions,
               processes: list[PipelineProcess], summary: ReplaySummary, progress: _Progress,
               typestore: Any, wall_start: float) -> None:
    """Send each frame once the previous one is classified; fixes go ``fix_lead_s`` ahead.

    While a frame is being classified the clock runs on at wall speed, but never past the
    next frame's time: timers of nodes on sim time keep working, and no frame is late.
    """
    lead_ns = int(options.fix_lead_s * 1e9)
    next_fix = 0
    upcoming = next(images, None)
    while upcoming is not None:
        image, upcoming = upcoming, next(images, None)
        limit_ns = upcoming.log_ns if upcoming is not None else image.log_ns + lead_ns
        while next_fix < len(fixes) and fixes[next_fix].log_ns <= image.log_ns + lead_ns:
            player.fix_publisher.publish(fixes[next_fix].data)  # type: ignore[union-attr]
            next_fix += 1
            summary.fixes_in += 1
        player.publish_clock(image.log_ns)
        key = _stamp_key(typestore, image.data, selection.image.msgtype)
        player.image_publisher.publish(image.data)
        summary.frames_in += 1
        sent = time.monotonic()
        retried = False
        while True:
            if recorder.wait_for(key, CLOCK_PERIOD_S):
                break
            waited = time.monotonic() - sent
            player.publish_clock(min(image.log_ns + int(waited * 1e9), limit_ns))
            if waited >= options.frame_timeout_s:
                check_alive(processes)
                summary.unanswered += 1
                break
            if not retried and waited >= min(FRAME_RETRY_S, options.frame_timeout_s / 2):
                check_alive(processes)
                # Lost on the way (a QoS switch, a discovery race): send it once more.
                player.image_publisher.publish(image.data)
                retried = True
        elapsed = time.monotonic() - wall_start
        progress.update(summary.frames_in, len(recorder.classified),
                        len(recorder.classified) / max(elapsed, 1e-9),
                        (image.log_ns - selection.start_ns) / 1e9, selection.duration_s)
    for fix in fixes[next_fix:]:
        player.fix_publisher.publish(fix.data)  # type: ignore[union-attr]
        summary.fixes_in += 1
    if fixes:
        player.publish_clock(fixes[-1].log_ns)


def _play_timed(player: _Player, recorder: _Recorder, images: Iterator[_BagMessage],
                fixes: list[_BagMessage], selection: BagSelection, options: ReplayOptions,
                processes: list[PipelineProcess], summary: ReplaySummary, progress: _Progress,
                typestore: Any, wall_start: float) -> None:
    """Send every message at its recorded time (scaled by the rate), with the clock ticking."""
    rate = options.rate
    start_ns = selection.start_ns
    last_check = 0.0
    for message in heapq.merge(iter(fixes), images):
        target = wall_start + (message.log_ns - start_ns) / 1e9 / rate
        while True:
            now = time.monotonic()
            player.publish_clock(start_ns + int((now - wall_start) * rate * 1e9))
            if now - last_check > 0.5:
                check_alive(processes)
                last_check = now
            if now >= target:
                break
            time.sleep(min(CLOCK_PERIOD_S, target - now))
        player.publish_clock(message.log_ns)
        if message.kind == 'fix':
            player.fix_publisher.publish(message.data)  # type: ignore[union-attr]
            summary.fixes_in += 1
            continue
        player.image_publisher.publish(message.data)
        summary.frames_in += 1
        elapsed = time.monotonic() - wall_start
        progress.update(summary.frames_in, len(recorder.classified),
                        len(recorder.classified) / max(elapsed, 1e-9),
                        (message.log_ns - start_ns) / 1e9, selection.duration_s)


def _settle(player: _Player, recorder: _Recorder, options: ReplayOptions,
            processes: list[PipelineProcess]) -> None:
    """Let the last frames be classified and waiting detections go out; keep the clock on.

    Ends when no output has come for SETTLE_QUIET_S (and at least that long after the
    last frame), or after frame_timeout_s.
    """
    start = time.monotonic()
    deadline = start + options.frame_timeout_s
    step_ns = int(CLOCK_PERIOD_S * 1e9 * (1.0 if options.fast else options.rate))
    while time.monotonic() < deadline:
        player.publish_clock(player.clock_ns + step_ns)
        quiet = time.monotonic() - max(recorder.last_output_s, start)
        if quiet >= SETTLE_QUIET_S and time.monotonic() - start >= SETTLE_QUIET_S:
            break
        time.sleep(CLOCK_PERIOD_S)
    check_alive(processes)


def _save_when_complete(player: _Player, collection: Path, expected: int,
                        catch_up_s: float = SAVE_CATCH_UP_S) -> tuple[bool, str]:
    """Save the recorder's map once it holds the ``expected`` detections this side received.

    The recorder appends each detection (one fsync) on its own executor, which may serve
    the save request while detections still wait in its queue: on a slow disk the map
    would miss the last ones. So save, count the saved features and save again until the
    count reaches ``expected``, for at most ``catch_up_s``; a shortfall left is reported.
    """
    from plant_disease_ros.core.map_file import read_features

    deadline = time.monotonic() + catch_up_s
    while True:
        ok, message = player.save()
        if not ok:
            return ok, message
        try:
            saved = len(read_features(collection))
        except (OSError, ValueError) as error:
            return False, f'{message}, but it cannot be read back: {_one_line(error)}'
        if saved >= expected:
            return ok, message
        if time.monotonic() >= deadline:
            return False, (f'{message}: {saved} of the {expected} detection(s) received here '
                           f'after {catch_up_s:g} s')
        player.publish_clock(player.clock_ns + int(SAVE_RETRY_S * 1e9))
        time.sleep(SAVE_RETRY_S)


def _collect(summary: ReplaySummary, recorder: _Recorder) -> None:
    with recorder.lock:
        summary.labelled = len(recorder.classified)
        summary.unknown = sum(1 for label in recorder.classified.values() if label == 'unknown')
        summary.detections = Counter(recorder.detections)
        summary.fix_status = Counter(recorder.fix_status)
        if recorder.duplicates:
            summary.warnings.append(f'{recorder.duplicates} frame(s) classified twice '
                                    '(re-sent after a timeout)')


def _write_map(summary: ReplaySummary, recorder: _Recorder, map_dir: Path, run_name: str,
               options: ReplayOptions) -> None:
    """Point at the recorder's GeoJSON (or write ours when attached) and render the PNG."""
    from plant_disease_ros.core.map_file import read_features, write_feature_collection

    collection = map_dir / f'{run_name}.geojson'
    if options.attach or not collection.is_file():
        if not options.attach:
            summary.warnings.append(f'the recorder wrote no {collection}; the map is made '
                                    'from the detections received')
        map_dir.mkdir(parents=True, exist_ok=True)
        collection = map_dir / f'{run_name}_received.geojson'
        write_feature_collection(collection, recorder.features)
    summary.geojson = collection
    try:
        from plant_disease_ros.core.map_render import render_disease_map
    except ImportError as error:
        summary.warnings.append(f'no PNG: {error}')
        return
    features = read_features(collection)
    # matplotlib logs a warning when equal aspect overrides the limits; not news here.
    axes_logger = logging.getLogger('matplotlib.axes._base')
    level = axes_logger.level
    axes_logger.setLevel(logging.ERROR)
    try:
        summary.png = render_disease_map(
            features, map_dir / f'{run_name}.png',
            title=f'{summary.bag.name}: {len(features)} detection(s)')
    finally:
        axes_logger.setLevel(level)
