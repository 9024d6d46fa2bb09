"""plant-disease replay: clear errors, topic choice, commands, and a tiny bag end to end."""

from __future__ import annotations

from collections.abc import Sequence
import dataclasses
import json
import os
from pathlib import Path
import signal
import subprocess
import sys

import cv2
from helpers.processes import processes_with, signal_once_started
import numpy as np
import pytest

from plant_disease_ros.cli import main as cli
from plant_disease_ros.core.motion_blur import smear
from plant_disease_ros.tools.replay import (
    BagSelection,
    inspect_bag,
    output_paths,
    pipeline_commands,
    ReplayError,
    ReplayOptions,
    ReplaySummary,
    save_when_complete,
    select_topics,
    TopicChoice,
)
from plant_disease_ros.tools.replay.bag import BagMessage, other_cameras
from plant_disease_ros.tools.replay.outputs import write_summary
from plant_disease_ros.tools.replay.playback import timed_start_ns

REPO_ROOT = Path(__file__).resolve().parents[2]
TEST_LEAF = REPO_ROOT / 'test' / 'data' / 'leaves' / 'Tomato___Early_blight.jpg'
DEMO_BAG = REPO_ROOT / 'demo' / 'field_demo.mcap'
START_S = 1_700_000_000.0

rosbags = pytest.importorskip('rosbags')


def write_bag(path: Path, *, storage: str = 'mcap', raw_frames: int = 0,
              compressed_frames: int = 0, fixes: int = 0, image_topic: str = '/cam/image_raw',
              fix_topic: str = '/gps/fix', extra_string_topic: str | None = None,
              smear_px: int = 0, depth: bool = False, one_stamp: bool = False,
              empty_fix_topic: bool = False, garbled: Sequence[int] = (),
              fix_status: int = 0, compression: str = '') -> Path:
    """Write a small rosbag2 folder with camera frames at 10 Hz and fixes at 5 Hz.

    ``smear_px`` smears the frames along their rows, as a long exposure on the move does;
    ``depth`` makes the raw frames 16UC1 depth images; with ``one_stamp`` every frame
    carries the first frame's header stamp (a driver that does not stamp);
    ``empty_fix_topic`` records the fix topic without a message; the compressed frames
    numbered in ``garbled`` (from 0) hold bytes no decoder reads; every fix has status
    ``fix_status`` (-1: no fix); ``compression`` 'file' or 'message' compresses the bag
    with zstd.
    """
    from rosbags.rosbag2 import CompressionFormat, CompressionMode, StoragePlugin, Writer
    from rosbags.typesys import get_typestore, Stores

    store = get_typestore(Stores.ROS2_HUMBLE)
    types = store.types
    plugin = StoragePlugin.MCAP if storage == 'mcap' else StoragePlugin.SQLITE3
    bgr = cv2.resize(cv2.imread(str(TEST_LEAF)), (320, 240))
    bgr = smear(bgr, smear_px, 'horizontal')

    def header(t: float, frame_id: str) -> object:
        sec = int(t)
        return types['std_msgs/msg/Header'](
            stamp=types['builtin_interfaces/msg/Time'](sec=sec, nanosec=int((t - sec) * 1e9)),
            frame_id=frame_id)

    records: list[tuple[str, str, float, object]] = []
    for index in range(raw_frames):
        t = START_S + index * 0.1
        stamp = START_S if one_stamp else t
        if depth:
            millimetres = np.full((240, 320), 1500, np.uint16)
            message = types['sensor_msgs/msg/Image'](
                header=header(stamp, 'camera'), height=240, width=320, encoding='16UC1',
                is_bigendian=0, step=640, data=millimetres.view(np.uint8).reshape(-1))
        else:
            message = types['sensor_msgs/msg/Image'](
                header=header(stamp, 'camera'), height=240, width=320, encoding='bgr8',
                is_bigendian=0, step=960, data=bgr.reshape(-1))
        records.append((image_topic, 'sensor_msgs/msg/Image', t, message))
    for index in range(compressed_frames):
        t = START_S + index * 0.1
        data = cv2.imencode('.jpg', bgr)[1].reshape(-1)
        if index in garbled:
            data = np.frombuffer(b'\xff\xd8garbage' * 10, dtype=np.uint8)
        message = types['sensor_msgs/msg/CompressedImage'](
            header=header(t, 'camera'), format='jpeg', data=data)
        records.append((image_topic + '/compressed', 'sensor_msgs/msg/CompressedImage', t,
                        message))
    for index in range(fixes):
        t = START_S - 0.5 + index * 0.2
        message = types['sensor_msgs/msg/NavSatFix'](
            header=header(t, 'gps'),
            status=types['sensor_msgs/msg/NavSatStatus'](status=fix_status, service=1),
            latitude=52.0 + index * 1e-6, longitude=5.0, altitude=10.0,
            position_covariance=np.zeros(9), position_covariance_type=0)
        records.append((fix_topic, 'sensor_msgs/msg/NavSatFix', t, message))
    if extra_string_topic:
        records.append((extra_string_topic, 'std_msgs/msg/String', START_S,
                        types['std_msgs/msg/String'](data='hello')))
    writer = Writer(path, version=8, storage_plugin=plugin)
    if compression:
        writer.set_compression(CompressionMode[compression.upper()], CompressionFormat.ZSTD)
    with writer:
        connections = {}
        if empty_fix_topic:
            connections[fix_topic] = writer.add_connection(
                fix_topic, 'sensor_msgs/msg/NavSatFix', typestore=store)
        for topic, msgtype, _, _ in records:
            if topic not in connections:
                connections[topic] = writer.add_connection(topic, msgtype, typestore=store)
        for topic, msgtype, t, message in sorted(records, key=lambda record: record[2]):
            writer.write(connections[topic], int(t * 1e9),
                         store.serialize_cdr(message, msgtype))
    return path


def run_cli(args: Sequence[str], capsys: pytest.CaptureFixture[str]) -> tuple[int, str]:
    """Run ``plant-disease`` in-process; return (status, stderr)."""
    status = cli.main(list(args))
    return status, capsys.readouterr().err


def replay_env() -> dict[str, str]:
    """Return a subprocess environment on loopback and this run's private domain."""
    env = dict(os.environ)
    env['ROS_AUTOMATIC_DISCOVERY_RANGE'] = 'LOCALHOST'
    env.setdefault('ROS_DOMAIN_ID', '23')
    return env


def fast_replay(bag: Path, out: Path, namespace: str,
                *extra: str) -> subprocess.CompletedProcess[str]:
    """Run ``replay BAG --fast --single-process`` into ``out`` in ``namespace``, quietly."""
    return subprocess.run(
        [sys.executable, '-m', 'plant_disease_ros.cli.main', 'replay', str(bag), '--fast',
         '--single-process', '--out', str(out), '--namespace', namespace, '--quiet', *extra],
        env=replay_env(), capture_output=True, text=True, timeout=120)


# Errors -----------------------------------------------------------------------------------


def test_missing_path_is_one_line_exit_2(tmp_path: Path,
                                         capsys: pytest.CaptureFixture[str]) -> None:
    """A bag path that does not exist: exit 2, one line naming it."""
    status, err = run_cli(['replay', str(tmp_path / 'nope.mcap')], capsys)
    assert status == 2
    assert err.strip().count('\n') == 0
    assert 'bag not found' in err and 'nope.mcap' in err


@pytest.mark.parametrize('name', ['broken.mcap', 'broken.db3'])
def test_corrupt_bag_is_one_line_exit_2(tmp_path: Path, name: str,
                                        capsys: pytest.CaptureFixture[str]) -> None:
    """Garbage in a .mcap or .db3 file: exit 2, one line, no traceback."""
    path = tmp_path / name
    path.write_bytes(b'\x89MCAP0\r\n' + os.urandom(300) if name.endswith('.mcap')
                     else os.urandom(300))
    status, err = run_cli(['replay', str(path)], capsys)
    assert status == 2
    assert err.strip().count('\n') == 0 and 'Traceback' not in err
    assert 'cannot read bag' in err


def test_folder_without_metadata_is_an_error(tmp_path: Path,
                                             capsys: pytest.CaptureFixture[str]) -> None:
    """A folder that is not a rosbag2 bag: exit 2 with one line."""
    status, err = run_cli(['replay', str(tmp_path)], capsys)
    assert status == 2 and 'cannot read bag' in err


def test_truncated_mcap_is_an_error(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """An MCAP file cut in half (a recording that died) is reported, not a traceback."""
    bag = write_bag(tmp_path / 'bag', compressed_frames=3, fixes=3)
    data = (bag / 'bag.mcap').read_bytes()
    cut = tmp_path / 'cut.mcap'
    cut.write_bytes(data[:len(data) // 2])
    status, err = run_cli(['replay', str(cut)], capsys)
    assert status == 2 and err.strip().count('\n') == 0


def test_bag_without_image_topic(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """Only GPS and a string topic: exit 2, the message lists what the bag has."""
    bag = write_bag(tmp_path / 'gps_only', fixes=4, extra_string_topic='/note')
    status, err = run_cli(['replay', str(bag)], capsys)
    assert status == 2
    assert 'no image topic' in err and '/gps/fix' in err and '/note' in err


def test_named_topics_must_exist(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """--image-topic and --fix-topic that the bag lacks are clear errors."""
    bag = write_bag(tmp_path / 'bag', compressed_frames=2, fixes=2)
    status, err = run_cli(['replay', str(bag), '--image-topic', '/other'], capsys)
    assert status == 2 and 'image topic /other not in the bag' in err
    status, err = run_cli(['replay', str(bag), '--fix-topic', '/cam/image_raw/compressed'],
                          capsys)
    assert status == 2 and 'fix topic' in err


@pytest.mark.parametrize(('options', 'message'), [
    (['--rate', 'inf'], '--rate must be a finite number > 0 and <= 1e+06, got inf'),
    (['--rate', 'nan'], '--rate must be a finite number > 0 and <= 1e+06, got nan'),
    (['--rate', '0'], '--rate must be a finite number > 0 and <= 1e+06, got 0.0'),
    (['--rate', '1e9'], '--rate must be a finite number > 0 and <= 1e+06, got 1000000000.0'),
    (['--startup-timeout', 'inf'], '--startup-timeout must be a finite number > 0, got inf'),
    (['--startup-timeout', 'nan'], '--startup-timeout must be a finite number > 0, got nan'),
    (['--startup-timeout', '0'], '--startup-timeout must be a finite number > 0, got 0.0'),
    (['--fast', '--fix-lead', 'inf'], '--fix-lead must be a finite number >= 0, got inf'),
    (['--fast', '--fix-lead', 'nan'], '--fix-lead must be a finite number >= 0, got nan'),
    (['--fast', '--fix-lead', '-1'], '--fix-lead must be a finite number >= 0, got -1.0'),
    (['--fast', '--frame-timeout', '0'], '--frame-timeout must be a finite number > 0, got 0.0'),
    (['--frame-timeout', '-2'], '--frame-timeout must be a finite number > 0, got -2.0'),
    (['--fast', '--frame-timeout', 'inf'],
     '--frame-timeout must be a finite number > 0, got inf'),
    # A running pipeline keeps its parameters: -p would be listed as applied and do nothing.
    (['--attach', '-p', 'score_threshold:=0.99'],
     '-p set the parameters of the nodes a replay starts; with --attach the running '
     'pipeline keeps its own (change them with ros2 param set, or replay without --attach)'),
    (['--attach', '--params-file', 'config/field.yaml', '-p', 'top_k:=3'],
     '-p and --params-file set the parameters of the nodes a replay starts; with --attach '
     'the running pipeline keeps its own (change them with ros2 param set, or replay '
     'without --attach)'),
])
def test_out_of_range_options_are_one_line_before_anything_starts(
        tmp_path: Path, capsys: pytest.CaptureFixture[str], options: list[str],
        message: str) -> None:
    """Infinite, NaN, zero or negative rates, timeouts and leads: exit 2 naming the option."""
    out = tmp_path / 'out'
    status, err = run_cli(['replay', str(DEMO_BAG), '--quiet', '--out', str(out), *options],
                          capsys)
    assert status == 2
    assert err == f'plant-disease replay: error: {message}\n'
    assert not out.exists()


def test_a_zero_fix_lead_and_large_timeouts_are_accepted() -> None:
    """The checks refuse only what has no meaning: a lead of 0 s is one."""
    options = ReplayOptions(bag=DEMO_BAG, fast=True, fix_lead_s=0.0, frame_timeout_s=1e5,
                            startup_timeout_s=1e5)
    assert options.check() is None
    assert (options.fix_lead_s, options.frame_timeout_s, options.startup_timeout_s) == (
        0.0, 1e5, 1e5)


# Output names -------------------------------------------------------------------------------


def touch(folder: Path, *names: str) -> dict[str, bytes]:
    """Create files (a name ending in / is a folder) in ``folder``; return file contents."""
    contents = {}
    for name in names:
        path = folder / name
        if name.endswith('/'):
            path.mkdir(parents=True)
        else:
            path.parent.mkdir(parents=True, exist_ok=True)
            contents[name] = f'run file {name}'.encode()
            path.write_bytes(contents[name])
    return contents


def test_first_run_in_a_folder_has_the_plain_names(tmp_path: Path) -> None:
    """Run 1: output_bag, disease_map, summary.json and logs in the new folder."""
    outputs = output_paths(tmp_path / 'new', DEMO_BAG)
    assert outputs.number == 1 and outputs.out_dir == tmp_path / 'new'
    assert outputs.output_bag == tmp_path / 'new' / 'output_bag'
    assert outputs.run_name == 'disease_map' and outputs.map_dir == tmp_path / 'new'
    assert outputs.summary == tmp_path / 'new' / 'summary.json'
    assert outputs.logs == tmp_path / 'new' / 'logs'


def test_a_run_without_detections_is_not_overwritten(tmp_path: Path) -> None:
    """Run 1 wrote no .geojsons (no detection): run 2 still gets -2 for every output."""
    touch(tmp_path, 'output_bag/', 'logs/', 'disease_map.geojson', 'disease_map_summary.json',
          'disease_map.png', 'disease_map_grid.geojson', 'summary.json')
    outputs = output_paths(tmp_path, DEMO_BAG)
    assert outputs.number == 2
    assert outputs.output_bag.name == 'output_bag-2' and outputs.run_name == 'disease_map-2'
    assert outputs.summary.name == 'summary-2.json' and outputs.logs.name == 'logs-2'


def test_an_attached_run_is_not_overwritten(tmp_path: Path) -> None:
    """An attached run leaves only disease_map_received.* locally: they count too."""
    touch(tmp_path, 'disease_map_received.geojson', 'disease_map.png')
    assert output_paths(tmp_path, DEMO_BAG).run_name == 'disease_map-2'


def test_a_failed_start_takes_its_number_for_every_output(tmp_path: Path) -> None:
    """A run that left only output_bag-2 (failed start): the next is 3 for all outputs."""
    touch(tmp_path, 'output_bag/', 'disease_map.geojsons', 'summary.json', 'output_bag-2/',
          'logs-2/')
    outputs = output_paths(tmp_path, DEMO_BAG)
    assert outputs.number == 3
    assert [outputs.output_bag.name, outputs.run_name, outputs.summary.name,
            outputs.logs.name] == ['output_bag-3', 'disease_map-3', 'summary-3.json', 'logs-3']


def test_an_out_that_is_a_file_is_a_replay_error(tmp_path: Path) -> None:
    """--out naming a file: a one-line ReplayError, nothing created."""
    (tmp_path / 'file').write_text('x')
    with pytest.raises(ReplayError, match='is not a folder'):
        output_paths(tmp_path / 'file', DEMO_BAG)


def test_summary_is_written_atomically(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A write that fails half-way leaves the old summary whole and no temporary file."""
    summary = ReplaySummary(bag=DEMO_BAG, image_topic='/cam', fix_topic=None, mode='fast')
    path = write_summary(tmp_path / 'summary.json', summary)
    before = path.read_bytes()
    assert json.loads(before)['mode'] == 'fast'

    def fail_half_way(self: Path, text: str, encoding: str | None = None) -> int:
        with open(self, 'w', encoding=encoding) as handle:
            handle.write(text[:10])
        raise OSError(28, 'No space left on device')

    monkeypatch.setattr(Path, 'write_text', fail_half_way)
    summary.mode = 'rate 2'
    with pytest.raises(OSError):
        write_summary(path, summary)
    assert path.read_bytes() == before
    assert [entry.name for entry in tmp_path.iterdir()] == ['summary.json']


def test_a_timed_replay_starts_at_the_first_frame_or_fix_not_the_bags_first_message() -> None:
    """A `record -a` bag whose /tf starts 30 s before the camera does not idle 30 s first."""
    second = 1_000_000_000
    frame = BagMessage(40 * second, 5, 'image', b'')
    assert timed_start_ns(frame, BagMessage(38 * second, 3, 'fix', b'')) == 38 * second
    assert timed_start_ns(frame, BagMessage(41 * second, 6, 'fix', b'')) == 40 * second
    assert timed_start_ns(frame, None) == 40 * second


# Topic choice ---------------------------------------------------------------------------------


def test_select_topics_prefers_most_messages_and_raw_on_a_tie() -> None:
    """The image topic with most messages wins; raw wins a tie; outputs are left out."""
    topics = {
        '/cam/image_raw': ('sensor_msgs/msg/Image', 10),
        '/cam/image_raw/compressed': ('sensor_msgs/msg/CompressedImage', 10),
        '/plant_disease/image_annotated': ('sensor_msgs/msg/Image', 50),
        '/depth/image_raw/compressedDepth': ('sensor_msgs/msg/CompressedImage', 90),
        '/gps/fix': ('sensor_msgs/msg/NavSatFix', 5),
        '/plant_disease/detections/fix': ('sensor_msgs/msg/NavSatFix', 3),
    }
    image, fix = select_topics(topics)
    assert image == TopicChoice('/cam/image_raw', 'sensor_msgs/msg/Image', 10)
    assert fix is not None and fix.name == '/gps/fix'
    topics['/cam/image_raw/compressed'] = ('sensor_msgs/msg/CompressedImage', 90)
    image, _ = select_topics(topics)
    assert image.name == '/cam/image_raw/compressed'


def test_the_other_cameras_of_a_two_camera_bag_are_named() -> None:
    """A replay plays one camera: the others are named, one camera's transports once."""
    topics = {
        '/left/camera/image_raw': ('sensor_msgs/msg/Image', 120),
        '/left/camera/image_raw/compressed': ('sensor_msgs/msg/CompressedImage', 120),
        '/right/camera/image_raw/compressed': ('sensor_msgs/msg/CompressedImage', 120),
        '/rear/camera/image_raw': ('sensor_msgs/msg/Image', 0),
        '/left/camera/depth/image_raw': ('sensor_msgs/msg/Image', 120),
        '/plant_disease/image_annotated': ('sensor_msgs/msg/Image', 120),
        '/gps/fix': ('sensor_msgs/msg/NavSatFix', 60),
    }
    image, _ = select_topics(topics)
    assert image.name == '/left/camera/image_raw'
    assert other_cameras(topics, image.name) == ['/right/camera/image_raw/compressed']
    assert other_cameras(topics, '/right/camera/image_raw/compressed') == [
        '/left/camera/image_raw', '/left/camera/image_raw/compressed']
    del topics['/right/camera/image_raw/compressed']
    assert other_cameras(topics, image.name) == []


def test_select_topics_never_takes_the_pipelines_outputs_or_a_depth_stream() -> None:
    """A `ros2 bag record -a` on the robot holds the pipeline's own outputs and more."""
    topics = {
        '/camera/color/image_raw': ('sensor_msgs/msg/Image', 600),
        '/camera/depth/image_rect_raw': ('sensor_msgs/msg/Image', 900),
        '/camera/infra1/image_rect_raw': ('sensor_msgs/msg/Image', 900),
        '/plant_disease/image_annotated/compressed': ('sensor_msgs/msg/CompressedImage', 950),
        '/gps/fix': ('sensor_msgs/msg/NavSatFix', 60),
        # The classifier's located detections: more messages than the receiver's fixes.
        '/plant_disease/detections/fix': ('sensor_msgs/msg/NavSatFix', 240),
    }
    image, fix = select_topics(topics)
    assert image.name == '/camera/color/image_raw'
    assert fix is not None and fix.name == '/gps/fix'
    # Without its own fix topic the bag has none: the outputs' fixes are not one.
    del topics['/gps/fix']
    assert select_topics(topics)[1] is None
    # A depth stream alone is still taken (named only when nothing else has messages).
    assert select_topics({'/camera/depth/image_rect_raw': ('sensor_msgs/msg/Image', 9),
                          '/camera/color/image_raw': ('sensor_msgs/msg/Image', 0)}
                         )[0].name == '/camera/depth/image_rect_raw'


def test_an_mcap_cut_short_is_named_with_the_way_to_recover_it(tmp_path: Path) -> None:
    bag = write_bag(tmp_path / 'whole', compressed_frames=4, fixes=2)
    whole = next(bag.glob('*.mcap')).read_bytes()
    cut = tmp_path / 'cut.mcap'
    cut.write_bytes(whole[:len(whole) // 2])
    with pytest.raises(ReplayError, match=r'cannot read bag .*cut\.mcap: .*; an MCAP file '
                                          r'whose recording was cut short .*mcap recover'):
        inspect_bag(cut)


def test_select_topics_by_name() -> None:
    """A named topic is used; the raw name finds a compressed-only recording."""
    topics = {'/a/image_raw/compressed': ('sensor_msgs/msg/CompressedImage', 4),
              '/b/image': ('sensor_msgs/msg/Image', 9),
              '/fix1': ('sensor_msgs/msg/NavSatFix', 4), '/fix2': ('sensor_msgs/msg/NavSatFix', 1),
              '/s': ('std_msgs/msg/String', 1)}
    image, fix = select_topics(topics, image_topic='/a/image_raw', fix_topic='/fix2')
    assert image.name == '/a/image_raw/compressed' and fix is not None and fix.name == '/fix2'
    with pytest.raises(ReplayError, match='is std_msgs/msg/String'):
        select_topics(topics, image_topic='/s')
    _, fix = select_topics({'/b/image': ('sensor_msgs/msg/Image', 9)})
    assert fix is None


def test_inspect_bag_detects_topics_in_both_storages(tmp_path: Path) -> None:
    """sqlite3 and MCAP bags, folders and bare files, are read and their topics found."""
    sqlite = write_bag(tmp_path / 'sqlite', storage='sqlite3', raw_frames=3, fixes=4)
    mcap = write_bag(tmp_path / 'mcap', compressed_frames=2, fixes=3)
    for path, transport, count in ((sqlite, 'raw', 3), (mcap, 'compressed', 2),
                                   (mcap / 'mcap.mcap', 'compressed', 2),
                                   (sqlite / 'sqlite.db3', 'raw', 3)):
        selection = inspect_bag(path)
        assert selection.transport == transport and selection.image.count == count
        assert selection.fix is not None and selection.fix.name == '/gps/fix'
        assert selection.duration_s > 0


# Commands ---------------------------------------------------------------------------------------


def selection(transport: str = 'compressed',
              image_topic: str = '/camera/image_raw/compressed') -> BagSelection:
    """Return a selection of a bag with one image topic and a fix topic."""
    msgtype = ('sensor_msgs/msg/CompressedImage' if transport == 'compressed'
               else 'sensor_msgs/msg/Image')
    return BagSelection(Path('x.mcap'), TopicChoice(image_topic, msgtype, 3),
                        TopicChoice('/gps/fix', 'sensor_msgs/msg/NavSatFix', 3), 0, 1, {})


def argv_of(commands: list) -> dict[str, str]:
    """Return ``{executable name: argv joined by spaces}``."""
    return {command.name: ' '.join(command.argv) for command in commands}


def test_pipeline_commands_remap_inputs_and_set_parameters(tmp_path: Path) -> None:
    """Namespace, params file, sim time, transport, remappings and map folder are passed."""
    options = ReplayOptions(bag=Path('x.mcap'), namespace='field', parameters={'top_k': '5'})
    commands = argv_of(pipeline_commands(selection(), options, tmp_path / 'map', 'run',
                                         Path('config/field.yaml')))
    assert set(commands) == {'camera_subscriber', 'disease_classifier', 'disease_map_recorder'}
    camera = commands['camera_subscriber']
    assert '-r __ns:=/field' in camera and '--params-file config/field.yaml' in camera
    assert '-p use_sim_time:=true' in camera and '-p image_transport:=compressed' in camera
    assert '-r image_raw/compressed:=/camera/image_raw/compressed ' in camera + ' '
    assert '-p top_k:=5' in camera
    assert '-r fix:=/gps/fix' in commands['disease_classifier']
    recorder = commands['disease_map_recorder']
    assert f'-p map_dir:={tmp_path / "map"}' in recorder and '-p run_name:=run' in recorder
    options = ReplayOptions(bag=Path('x.mcap'), single_process=True, clock=False)
    commands = argv_of(pipeline_commands(selection('raw', '/cam/image'), options, tmp_path,
                                         'run', None))
    assert set(commands) == {'plant_disease_pipeline', 'disease_map_recorder'}
    pipeline = commands['plant_disease_pipeline']
    assert '-p use_sim_time:=false' in pipeline and '-r image_raw:=/cam/image' in pipeline
    assert '-r fix:=/gps/fix' in pipeline and '--params-file' not in pipeline


def test_a_fast_replay_learns_refused_frames_sooner_unless_p_sets_the_period(
        tmp_path: Path) -> None:
    """--fast waits for a refused frame's /diagnostics: the nodes publish them every
    0.05 s instead of every second (110 bad frames cost about 2 minutes), unless -p
    diagnostics_period_s gives a period; a timed replay leaves the nodes' period."""
    def camera_argv(**option_values: object) -> str:
        options = ReplayOptions(bag=Path('x.mcap'), **option_values)
        return argv_of(pipeline_commands(selection(), options, tmp_path, 'run',
                                         None))['camera_subscriber'] + ' '

    assert '-p diagnostics_period_s:=0.05 ' in camera_argv(fast=True)
    mine = camera_argv(fast=True, parameters={'diagnostics_period_s': '2.0'})
    assert '-p diagnostics_period_s:=2.0 ' in mine and ':=0.05' not in mine
    assert 'diagnostics_period_s' not in camera_argv()
    # A parameter file the user names keeps its period; one without a period does not.
    with_period = tmp_path / 'with_period.yaml'
    with_period.write_text('/**:\n  ros__parameters:\n    diagnostics_period_s: 0.5\n')
    assert ':=0.05' not in camera_argv(fast=True, params_file=with_period)
    without = tmp_path / 'without.yaml'
    without.write_text('/**:\n  ros__parameters:\n    top_k: 3\n')
    assert '-p diagnostics_period_s:=0.05 ' in camera_argv(fast=True, params_file=without)


def test_the_wall_time_covers_the_playback_after_the_last_output(
        monkeypatch: pytest.MonkeyPatch) -> None:
    """Frames refused after the last classification still took the replay's time: the
    summary's wall time runs to the end of the playback, not to the last output."""
    from collections import Counter
    import io
    from types import SimpleNamespace

    from plant_disease_ros.tools.replay import playback as playback_module
    from plant_disease_ros.tools.replay.progress import ProgressLine

    class FakeTime:
        """A monotonic clock that moves only when slept on."""

        def __init__(self) -> None:
            self.now = 1000.0

        def monotonic(self) -> float:
            return self.now

        def sleep(self, seconds: float) -> None:
            self.now += seconds

    clock = FakeTime()
    monkeypatch.setattr(playback_module, 'time', clock)
    player = SimpleNamespace(clock_ns=0, diagnostics_statuses=0,
                             publish_clock=lambda ns: None, frames_rejected=Counter)
    # The last classification came 1 s after the first frame; the playback ended at 60 s.
    recorder = SimpleNamespace(last_output_s=clock.now + 1.0, classified_count=10,
                               classifications=10)
    bag = SimpleNamespace(start_ns=0, end_ns=int(60e9), duration_s=60.0)
    summary = ReplaySummary(bag=Path('x'), image_topic='/cam/image_raw', fix_topic=None,
                            mode='fast', out_dir=Path('out'))
    summary.frames_in = 120
    playback = playback_module.Playback(
        player, recorder, bag, ReplayOptions(bag=Path('x'), fast=True), summary,
        ProgressLine(120, io.StringIO(), False), None, lambda: None)
    playback.wall_start = clock.now
    playback.play_end = clock.now + 60.0
    clock.now += 60.0
    playback.settle()
    assert summary.wall_s >= 60.0
    assert summary.frames_per_s <= 10 / 60.0


def test_frames_and_fixes_stamped_in_other_time_bases_are_named() -> None:
    """Frames stamped since boot, fixes in GPS time: the summary warns with both ranges;
    stamps that overlap, or lie a few seconds apart, give no warning."""
    from plant_disease_ros.tools.replay.playback import stamp_gap_warning

    warning = stamp_gap_warning((601.34, 671.035), (1749738600.0, 1749738674.0))
    assert warning.startswith('the frames are stamped 601.340 to 671.035 s and the fixes '
                              '1749738600.000 to 1749738674.000 s, 1749737929 s apart')
    assert stamp_gap_warning((1749738674.0, 1749738700.0), (601.0, 671.0)) != ''
    assert stamp_gap_warning((100.0, 200.0), (150.0, 250.0)) == ''
    assert stamp_gap_warning((100.0, 200.0), (205.0, 250.0)) == ''
    assert stamp_gap_warning(None, (1.0, 2.0)) == stamp_gap_warning((1.0, 2.0), None) == ''


def test_a_replay_of_boot_stamped_frames_warns(tmp_path: Path) -> None:
    """End to end: frames stamped 1.7e9 s before their fixes: no detection is located and
    the summary says why, naming both ranges."""
    pytest.importorskip('rclpy')
    from rosbags.rosbag2 import Reader, Writer
    from rosbags.typesys import get_typestore, Stores

    source = write_bag(tmp_path / 'gps_time', compressed_frames=4, fixes=6)
    store = get_typestore(Stores.ROS2_HUMBLE)
    bag = tmp_path / 'boot'
    with Reader(source) as reader, Writer(bag, version=8) as writer:
        connections = {}
        for connection, timestamp, data in reader.messages():
            if connection.topic not in connections:
                connections[connection.topic] = writer.add_connection(
                    connection.topic, connection.msgtype, typestore=store)
            if connection.msgtype.endswith('CompressedImage'):
                message = store.deserialize_cdr(data, connection.msgtype)
                message.header.stamp.sec -= int(START_S) - 600  # since boot: 600 s
                data = store.serialize_cdr(message, connection.msgtype)
            writer.write(connections[connection.topic], timestamp, data)
    out = tmp_path / 'out'
    result = fast_replay(bag, out, f'boot_{os.getpid()}')
    assert result.returncode == 0, result.stderr + result.stdout
    summary = json.loads((out / 'summary.json').read_text())
    gap = [warning for warning in summary['warnings']
           if warning.startswith('the frames are stamped 600.000 to 600.300 s and the fixes '
                                 f'{START_S - 0.5:.3f} to')]
    assert len(gap) == 1, summary['warnings']
    assert 'warning:     the frames are stamped 600.000' in result.stdout


def test_pipeline_commands_keep_a_compressed_topic_without_the_suffix(tmp_path: Path) -> None:
    """A CompressedImage topic not named '.../compressed' is remapped under its own name."""
    options = ReplayOptions(bag=Path('x.mcap'))
    commands = argv_of(pipeline_commands(selection('compressed', '/cam/jpeg'), options,
                                         tmp_path, 'run', None))
    camera = commands['camera_subscriber'] + ' '
    assert '-r image_raw/compressed:=/cam/jpeg ' in camera
    assert '/cam/jpeg/compressed' not in camera


def test_the_warning_for_replay_owned_overrides_agrees_in_number() -> None:
    """One ignored override is 'it', several are 'them'; none, no warning."""
    from plant_disease_ros.tools.replay.run import ignored_overrides

    assert ignored_overrides({'run_name': 'x', 'top_k': '3'}) == (
        '-p run_name ignored: the replay sets it from the bag and its output folder')
    assert ignored_overrides({'run_name': 'x', 'map_dir': '/m'}) == (
        '-p map_dir, run_name ignored: the replay sets them from the bag and its output folder')
    assert ignored_overrides({'top_k': '3'}) == ''


def test_replay_owned_parameters_are_not_overridden(tmp_path: Path) -> None:
    """-p image_transport (or transport), map_dir or run_name would break the remapping
    or the save: left out."""
    options = ReplayOptions(bag=Path('x.mcap'), parameters={
        'image_transport': 'raw', 'transport': 'raw', 'map_dir': '/elsewhere',
        'run_name': 'other', 'top_k': '2'})
    commands = argv_of(pipeline_commands(selection(), options, tmp_path, 'run', None))
    every = ' '.join(commands.values())
    assert 'transport:=raw' not in every and '/elsewhere' not in every
    assert 'run_name:=other' not in every and '-p top_k:=2' in every


def test_invalid_namespace_is_one_line_exit_2(tmp_path: Path,
                                              capsys: pytest.CaptureFixture[str]) -> None:
    """A namespace ROS refuses ends the replay before anything is started."""
    pytest.importorskip('rclpy')
    bag = write_bag(tmp_path / 'bag', compressed_frames=2, fixes=2)
    status, err = run_cli(['replay', str(bag), '--namespace', 'bad name', '--quiet',
                           '--out', str(tmp_path / 'out')], capsys)
    assert status == 2 and 'invalid namespace' in err
    assert err.strip().count('\n') == 0
    assert not (tmp_path / 'out').exists()


class SlowRecorderPlayer:
    """A stand-in for the replay's player whose recorder saves ``per_save`` more each call."""

    def __init__(self, collection: Path, features: list[dict], per_save: int) -> None:
        self.collection = collection
        self.features = features
        self.per_save = per_save
        self.saves = 0
        self.clock_ns = 0

    def save(self) -> tuple[bool, str]:
        from plant_disease_ros.core.map_file import write_feature_collection

        self.saves += 1
        saved = self.features[:self.saves * self.per_save]
        write_feature_collection(self.collection, saved)
        return True, f'wrote {self.collection} ({len(saved)} feature(s))'

    def publish_clock(self, bag_ns: int) -> None:
        self.clock_ns = max(self.clock_ns, bag_ns)


def detections(count: int) -> list[dict]:
    """Return ``count`` detections as the replay receives them."""
    return [{'type': 'Feature', 'geometry': None,
             'properties': {'label': 'Tomato___Early_blight', 'confidence': 0.9,
                            'stamp': {'sec': index, 'nanosec': 0}, 'frame_id': 'camera',
                            'fix_status': 'no_fix'}}
            for index in range(count)]


def test_save_waits_for_a_recorder_that_lags_behind(tmp_path: Path) -> None:
    """A save served while detections still queue at the recorder is repeated until complete."""
    player = SlowRecorderPlayer(tmp_path / 'run.geojson', detections(7), per_save=3)
    ok, message = save_when_complete(player, player.collection, 7, catch_up_s=5.0)
    assert ok, message
    assert player.saves == 3
    assert '(7 feature(s))' in message
    assert player.clock_ns > 0


def test_save_reports_detections_the_recorder_never_got(tmp_path: Path) -> None:
    """A recorder that stays short is a failed save with both counts, not a silent map."""
    player = SlowRecorderPlayer(tmp_path / 'run.geojson', detections(2), per_save=5)
    ok, message = save_when_complete(player, player.collection, 5, catch_up_s=0.3)
    assert not ok
    assert '2 of the 5 detection(s) received here' in message
    assert player.saves >= 2


# End to end with the real nodes ----------------------------------------------------------------


def test_tiny_raw_sqlite_bag_replays_single_process(tmp_path: Path) -> None:
    """Six raw frames from a sqlite3 bag go through plant_disease_pipeline; all recorded."""
    pytest.importorskip('rclpy')
    from rosbags.rosbag2 import Reader
    from rosbags.typesys import get_typestore, Stores

    bag = write_bag(tmp_path / 'tiny', storage='sqlite3', raw_frames=6, fixes=8)
    out = tmp_path / 'out'
    namespace = f'tiny_{os.getpid()}'
    result = fast_replay(bag, out, namespace)
    assert result.returncode == 0, result.stderr + result.stdout
    summary = json.loads((out / 'summary.json').read_text())
    assert summary['frames_in'] == 6 and summary['labelled'] == 6
    assert summary['unanswered'] == 0
    assert Path(summary['png']).is_file() and Path(summary['geojson']).is_file()
    assert 'frames/s' in result.stdout and str(out) in result.stdout
    store = get_typestore(Stores.LATEST)
    with Reader(summary['output_bag']) as reader:
        topics = {name: info.msgcount for name, info in reader.topics.items()}
        stamps = set()
        for connection, _, data in reader.messages():
            if connection.topic.endswith('/classification'):
                value = json.loads(store.deserialize_cdr(data, connection.msgtype).data)
                stamps.add((value['stamp']['sec'], value['stamp']['nanosec']))
    assert topics[f'/{namespace}/classification'] == 6
    assert topics[f'/{namespace}/label'] == 6
    assert len(stamps) == 6
    assert not processes_with(f'__ns:=/{namespace}')
    # Sharp frames: the one motion blur estimate (every 5th leaf frame) is short, no warning.
    assert summary['motion_blur']['estimates'] == 1
    assert summary['motion_blur']['median_percent'] < 5.0
    assert not any('smeared' in warning for warning in summary['warnings'])


def test_a_stream_the_pipeline_takes_no_frame_of_stops_and_keeps_its_summary(
        tmp_path: Path) -> None:
    """Depth frames (16UC1) are refused by the nodes: 5 unanswered in a row end the replay,
    in seconds rather than hours, and what was sent is still summarised, as rejected by the
    camera (its /diagnostics), not as lost."""
    pytest.importorskip('rclpy')
    bag = write_bag(tmp_path / 'depth', raw_frames=12, depth=True, empty_fix_topic=True)
    out = tmp_path / 'out'
    result = fast_replay(bag, out, f'depth_{os.getpid()}', '--frame-timeout', '1')
    assert result.returncode == 2, result.stderr + result.stdout
    assert '5 frames of /cam/image_raw in a row got no classification' in result.stderr
    assert 'summarised in' in result.stderr
    summary = json.loads((out / 'summary.json').read_text())
    assert (summary['frames_in'], summary['labelled'], summary['unanswered']) == (5, 0, 0)
    assert summary['rejected'] == {'unknown_encoding': 5}
    assert summary['rejected_by'] == ['camera_subscriber']
    assert any(warning.startswith('replay stopped early') for warning in summary['warnings'])
    assert ('fix topic /gps/fix has no messages: every detection has null geometry'
            in summary['warnings'])


def test_frames_with_one_stamp_are_paced_one_by_one_and_reported(tmp_path: Path) -> None:
    """A driver that does not stamp: every frame is still sent after the previous answer."""
    pytest.importorskip('rclpy')
    bag = write_bag(tmp_path / 'stamps', raw_frames=4, fixes=4, one_stamp=True)
    out = tmp_path / 'out'
    result = fast_replay(bag, out, f'stamps_{os.getpid()}', '-p', 'run_name:=mine')
    assert result.returncode == 0, result.stderr + result.stdout
    summary = json.loads((out / 'summary.json').read_text())
    assert (summary['frames_in'], summary['repeated_stamps'], summary['unanswered']) == (4, 3, 0)
    assert summary['labelled'] == 1  # distinct stamps
    assert any('carry the header stamp of an earlier frame' in warning
               for warning in summary['warnings'])
    assert not any('classified twice' in warning for warning in summary['warnings'])
    ignored = '-p run_name ignored: the replay sets it from the bag and its output folder'
    assert ignored in summary['warnings'] and ignored in result.stderr
    # Which model made it, with what: the shipped one, config/field.yaml and the -p's.
    assert summary['model'] == {'path': str(REPO_ROOT / 'models' / 'plant_disease_int8.tflite'),
                                'labels': {'path': str(REPO_ROOT / 'models' / 'labels.txt'),
                                           'count': 22}}
    assert summary['params_file'] == str(REPO_ROOT / 'config' / 'field.yaml')
    assert summary['parameters'] == {'run_name': 'mine'}
    assert f'model:       {summary["model"]["path"]} (labels ' in result.stdout
    assert '-p run_name:=mine' in result.stdout


def test_a_bag_of_smeared_frames_is_reported(tmp_path: Path) -> None:
    """30 frames smeared by 24 px of a 240 px crop (10 %): the summary says to shorten it."""
    pytest.importorskip('rclpy')
    bag = write_bag(tmp_path / 'smeared', raw_frames=30, fixes=16, smear_px=24)
    out = tmp_path / 'out'
    result = fast_replay(bag, out, f'smeared_{os.getpid()}')
    assert result.returncode == 0, result.stderr + result.stdout
    summary = json.loads((out / 'summary.json').read_text())
    leaves = summary['labelled'] - summary['no_leaf']
    blur = summary['motion_blur']
    # Every 5th leaf frame (a frame re-sent after a timeout may shift that by one).
    assert abs(blur['estimates'] - leaves // 5) <= 1 and blur['estimates'] >= 5
    assert blur['median_percent'] == pytest.approx(100 * 24 / 240, abs=1.5)
    assert blur['highest_window_median_percent'] == pytest.approx(blur['median_percent'])
    smeared = [warning for warning in summary['warnings'] if 'frames smeared' in warning]
    assert len(smeared) == 1 and 'shorten the exposure' in smeared[0]
    assert 'motion blur: ' in result.stdout and 'frames smeared' in result.stdout


def test_pipeline_that_fails_to_start_is_one_line(tmp_path: Path) -> None:
    """A node that exits at start (invalid parameter) ends the replay with exit 2."""
    pytest.importorskip('rclpy')
    bag = write_bag(tmp_path / 'tiny', compressed_frames=2, fixes=2)
    namespace = f'bad_{os.getpid()}'
    result = subprocess.run(
        [sys.executable, '-m', 'plant_disease_ros.cli.main', 'replay', str(bag), '--fast',
         '--out', str(tmp_path / 'out'), '--namespace', namespace, '--quiet',
         '-p', 'crop_mode:=sideways'],
        env=replay_env(), capture_output=True, text=True, timeout=120)
    assert result.returncode == 2, result.stderr
    assert 'exited with status' in result.stderr and 'camera_subscriber' in result.stderr
    assert result.stderr.strip().count('\n') == 0
    assert not processes_with(f'__ns:=/{namespace}')


def test_overrides_the_nodes_drop_are_refused_before_playing(tmp_path: Path) -> None:
    """A decimal comma (a string to rcl, dropped for the file's double) and a misspelt
    name (declared by no node) ran with 0.5 and were listed as applied: now exit 2, both
    named, nothing played."""
    pytest.importorskip('rclpy')
    bag = write_bag(tmp_path / 'tiny', compressed_frames=2, fixes=2)
    out = tmp_path / 'out'
    namespace = f'overrides_{os.getpid()}'
    result = fast_replay(bag, out, namespace, '-p', 'score_threshold:=0,9',
                         '-p', 'score_treshold:=0.9', '-p', 'top_k:=2')
    assert result.returncode == 2, result.stderr + result.stdout
    error = result.stderr.strip()
    assert error.count('\n') == 0
    assert ("-p score_threshold:=0,9: rcl reads '0,9' as a string, which disease_classifier's "
            'double parameter score_threshold does not take; it runs with 0.5') in error
    assert '(a decimal point, not a comma: -p score_threshold:=0.9)' in error
    assert ('-p score_treshold:=0.9: no node of the pipeline' in error
            and '(did you mean score_threshold?)' in error)
    assert 'top_k' not in error and '(nothing was played)' in error
    assert not (out / 'summary.json').exists()
    # Nothing played: no output bag left (the recorder's start-up markers are no result),
    # so the next run keeps number 1.
    assert not (out / 'output_bag').exists(), sorted(path.name for path in out.iterdir())
    assert not processes_with(f'__ns:=/{namespace}')


def test_a_failed_start_keeps_only_its_logs_and_leaves_its_number_free(tmp_path: Path) -> None:
    """Run 2 refused by a node: no empty output bag or map of run 2 (the next run is 2,
    not 3), run 1 untouched, and the logs that say why kept under a name of their own."""
    pytest.importorskip('rclpy')
    bag = write_bag(tmp_path / 'tiny', compressed_frames=2, fixes=2)
    out = tmp_path / 'out'
    run1 = touch(out, 'output_bag/', 'logs/', 'disease_map.geojson', 'summary.json')
    result = subprocess.run(
        [sys.executable, '-m', 'plant_disease_ros.cli.main', 'replay', str(bag), '--fast',
         '--out', str(out), '--namespace', f'refused_{os.getpid()}', '--quiet',
         '-p', 'crop_mode:=sideways'],
        env=replay_env(), capture_output=True, text=True, timeout=120)
    assert result.returncode == 2, result.stderr
    assert result.stderr.strip().count('\n') == 0
    kept = [path for path in out.iterdir() if path.name.startswith('logs-failed-start-')]
    assert len(kept) == 1 and (kept[0] / 'camera_subscriber.log').is_file()
    assert f'(log: {kept[0] / "camera_subscriber.log"})' in result.stderr
    assert "; the run's empty outputs were removed (output_bag-2" in result.stderr
    assert result.stderr.strip().endswith(f'; its logs are in {kept[0]}')
    assert sorted(path.name for path in out.iterdir()) == sorted(
        ['output_bag', 'logs', 'disease_map.geojson', 'summary.json', kept[0].name])
    assert {name: (out / name).read_bytes() for name in run1} == run1
    assert output_paths(out, bag).number == 2


def test_a_failed_start_removes_only_its_own_empty_outputs(tmp_path: Path) -> None:
    """Run 2's empty bag and map go; run 1's files, and a map holding detections, stay."""
    from plant_disease_ros.tools.replay.outputs import discard_failed_start

    run1 = touch(tmp_path, 'output_bag/x.mcap', 'logs/a.log', 'disease_map.geojson',
                 'disease_map_summary.json', 'summary.json')
    touch(tmp_path, 'output_bag-2/metadata.yaml', 'logs-2/camera_subscriber.log',
          'disease_map-2.geojsons')
    (tmp_path / 'disease_map-2.geojsons').write_text('')
    (tmp_path / 'disease_map-2.geojson').write_text(
        '{"type": "FeatureCollection", "features": []}')
    (tmp_path / 'disease_map-2_summary.json').write_text('{"cell_size_m": 2.0}')
    outputs = output_paths(tmp_path, DEMO_BAG)
    assert outputs.number == 3  # as the failed run 2 left it
    outputs = dataclasses.replace(
        outputs, number=2, output_bag=tmp_path / 'output_bag-2', run_name='disease_map-2',
        summary=tmp_path / 'summary-2.json', logs=tmp_path / 'logs-2')
    logs, removed = discard_failed_start(outputs, bag_empty=True)
    assert removed == ['output_bag-2', 'disease_map-2.geojsons', 'disease_map-2.geojson',
                       'disease_map-2_summary.json']
    assert logs is not None and logs.name.startswith('logs-failed-start-')
    assert (logs / 'camera_subscriber.log').is_file()
    assert sorted(path.name for path in tmp_path.iterdir()) == sorted(
        ['output_bag', 'logs', 'disease_map.geojson', 'disease_map_summary.json',
         'summary.json', logs.name])
    assert {name: (tmp_path / name).read_bytes() for name in run1} == run1
    assert output_paths(tmp_path, DEMO_BAG).number == 2
    # A map that holds a detection is never removed.
    (tmp_path / 'disease_map-2.geojsons').write_text(
        '\x1e{"type": "Feature", "geometry": null, "properties": {"label": "A___b", '
        '"confidence": 0.9, "stamp": {"sec": 1, "nanosec": 0}}}\n')
    # Nor a bag that something was recorded in (another pipeline in the namespace).
    touch(tmp_path, 'output_bag-2/metadata.yaml')
    assert discard_failed_start(outputs, bag_empty=False)[1] == []
    assert (tmp_path / 'disease_map-2.geojsons').is_file()
    assert (tmp_path / 'output_bag-2' / 'metadata.yaml').is_file()


def test_the_summary_names_the_model_labels_and_parameters(tmp_path: Path) -> None:
    """The model the nodes load: -p over the parameter file over the shipped model."""
    from plant_disease_ros.tools.replay.run import pipeline_model

    mine = tmp_path / 'mine'
    mine.mkdir()
    (mine / 'grape.tflite').write_bytes(b'model')
    (mine / 'labels.txt').write_text('Grape___healthy\nGrape___rot\nGrape___mildew\n')
    params = tmp_path / 'params.yaml'
    params.write_text(f'/**:\n  ros__parameters:\n    model_path: {mine / "grape.tflite"}\n'
                      "    labels_path: ''\n")
    model, labels, count = pipeline_model({}, params)
    assert (model, labels, count) == (mine / 'grape.tflite', mine / 'labels.txt', 3)
    other = tmp_path / 'other.tflite'
    model, labels, count = pipeline_model({'model_path': str(other)}, params)
    assert model == other and labels == REPO_ROOT / 'models' / 'labels.txt' and count == 22
    summary = ReplaySummary(bag=DEMO_BAG, image_topic='/cam', fix_topic=None, mode='fast',
                            model_path=mine / 'grape.tflite', labels_path=mine / 'labels.txt',
                            label_count=3, params_file=params,
                            parameters={'crops': 'Grape'})
    assert summary.as_dict()['model'] == {
        'path': str(mine / 'grape.tflite'),
        'labels': {'path': str(mine / 'labels.txt'), 'count': 3}}
    assert summary.as_dict()['parameters'] == {'crops': 'Grape'}
    lines = summary.lines()
    assert f'model:       {mine / "grape.tflite"} (labels {mine / "labels.txt"}, 3 labels)' \
        in lines
    assert f'parameters:  {params}, -p crops:=Grape' in lines


def test_ctrl_c_stops_the_pipeline(tmp_path: Path) -> None:
    """SIGINT during a slow replay: exit 130 and no pipeline process left behind."""
    pytest.importorskip('rclpy')
    bag = write_bag(tmp_path / 'slow', compressed_frames=20, fixes=12)
    out = tmp_path / 'out'
    namespace = f'sigint_{os.getpid()}'
    process = subprocess.Popen(
        [sys.executable, '-m', 'plant_disease_ros.cli.main', 'replay', str(bag), '--rate', '0.1',
         '--out', str(out), '--namespace', namespace, '--quiet'],
        env=replay_env(), stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    run = signal_once_started(process, lambda: processes_with(f'__ns:=/{namespace}'), 3,
                              signal.SIGINT)
    assert len(run.children) == 3
    assert run.returncode == 130, run.stderr
    assert not run.left


def interrupt(started: list[subprocess.Popen]) -> None:
    """Stop the node processes a test started by hand: SIGINT, then kill after 10 s."""
    for process in started:
        process.send_signal(signal.SIGINT)
    for process in started:
        try:
            process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


def test_attach_to_a_running_pipeline(tmp_path: Path) -> None:
    """--attach publishes to a pipeline started elsewhere and records its outputs."""
    pytest.importorskip('rclpy')
    bag = write_bag(tmp_path / 'tiny', compressed_frames=4, fixes=6)
    namespace = f'attach_{os.getpid()}'
    ros_args = ['--ros-args', '-r', f'__ns:=/{namespace}']
    bin_dir = Path(sys.executable).parent
    started = [
        subprocess.Popen([str(bin_dir / 'plant_disease_pipeline'), *ros_args,
                          '-p', 'image_transport:=compressed',
                          '-r', 'image_raw/compressed:=/cam/image_raw/compressed',
                          '-r', 'fix:=/gps/fix'], env=replay_env(),
                         stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL),
        subprocess.Popen([str(bin_dir / 'disease_map_recorder'), *ros_args,
                          '-p', f'map_dir:={tmp_path / "robot_maps"}'], env=replay_env(),
                         stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL),
    ]
    try:
        result = subprocess.run(
            [sys.executable, '-m', 'plant_disease_ros.cli.main', 'replay', str(bag), '--fast',
             '--attach', '--no-clock', '--namespace', namespace, '--out', str(tmp_path / 'out'),
             '--quiet'], env=replay_env(), capture_output=True, text=True, timeout=120)
    finally:
        interrupt(started)
    assert result.returncode == 0, result.stderr + result.stdout
    summary = json.loads((tmp_path / 'out' / 'summary.json').read_text())
    assert summary['frames_in'] == 4 and summary['labelled'] == 4
    assert summary['mode'] == 'fast, attached'
    assert 'robot_maps' in summary['save_message']
    assert Path(summary['png']).is_file()


def test_attach_waits_for_the_detections_the_classifier_still_holds(tmp_path: Path) -> None:
    """The last frames come after the last fix: their detections wait fix_wait_s (10 s) in
    an attached classifier, long after the outputs went quiet. The summary and the save
    it calls still cover every one (they lacked them: the save came first)."""
    pytest.importorskip('rclpy')
    bag = write_bag(tmp_path / 'tiny', compressed_frames=6, fixes=2)  # fixes 0..0.2 s
    namespace = f'attach_held_{os.getpid()}'
    ros_args = ['--ros-args', '-r', f'__ns:=/{namespace}']
    bin_dir = Path(sys.executable).parent
    maps = tmp_path / 'robot_maps'
    started = [
        subprocess.Popen([str(bin_dir / 'plant_disease_pipeline'), *ros_args,
                          '-p', 'image_transport:=compressed', '-p', 'score_threshold:=0.0',
                          '-p', 'fix_wait_s:=10.0', '-p', 'use_sim_time:=true',
                          '-r', 'image_raw/compressed:=/cam/image_raw/compressed',
                          '-r', 'fix:=/gps/fix'], env=replay_env(),
                         stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL),
        subprocess.Popen([str(bin_dir / 'disease_map_recorder'), *ros_args,
                          '-p', f'map_dir:={maps}', '-p', 'run_name:=held',
                          '-p', 'use_sim_time:=true'], env=replay_env(),
                         stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL),
    ]
    try:
        result = subprocess.run(
            [sys.executable, '-m', 'plant_disease_ros.cli.main', 'replay', str(bag), '--fast',
             '--attach', '--namespace', namespace, '--out', str(tmp_path / 'out'),
             '--quiet'], env=replay_env(), capture_output=True, text=True, timeout=180)
    finally:
        interrupt(started)
    assert result.returncode == 0, result.stderr + result.stdout
    summary = json.loads((tmp_path / 'out' / 'summary.json').read_text())
    leaves = summary['labelled'] - summary['no_leaf'] - summary['unknown']
    assert summary['frames_in'] == 6 and leaves == 6, summary
    assert sum(summary['detections'].values()) == 6, summary
    assert f'{maps / "held.geojson"} (6 feature(s))' in summary['save_message'], summary
    assert not any('detection(s)' in warning for warning in summary['warnings'])


def test_second_run_into_the_same_folder_keeps_the_first(tmp_path: Path) -> None:
    """Run 2 into run 1's folder writes -2 files only; run 1's files are unchanged."""
    pytest.importorskip('rclpy')
    bag = write_bag(tmp_path / 'tiny', storage='sqlite3', raw_frames=3, fixes=6)
    out = tmp_path / 'out'
    namespace = f'twice_{os.getpid()}'
    argv = [sys.executable, '-m', 'plant_disease_ros.cli.main', 'replay', str(bag), '--fast',
            '--single-process', '--out', str(out), '--namespace', namespace, '--quiet']
    first = subprocess.run(argv, env=replay_env(), capture_output=True, text=True, timeout=120)
    assert first.returncode == 0, first.stderr + first.stdout
    run1 = {path: path.read_bytes() for path in out.rglob('*') if path.is_file()}
    assert out / 'summary.json' in run1 and out / 'disease_map.png' in run1
    names1 = {path.name for path in out.iterdir()}
    second = subprocess.run(argv, env=replay_env(), capture_output=True, text=True,
                            timeout=120)
    assert second.returncode == 0, second.stderr + second.stdout
    assert {path: path.read_bytes() for path in run1} == run1
    summary = json.loads((out / 'summary-2.json').read_text())
    assert summary['output_bag'] == str(out / 'output_bag-2')
    assert summary['png'] == str(out / 'disease_map-2.png')
    assert summary['geojson'] == str(out / 'disease_map-2.geojson')
    assert summary['grid_geojson'] == str(out / 'disease_map-2_grid.geojson')
    assert all(str(out / 'logs-2') in log for log in summary['logs'])
    new = {path.name for path in out.iterdir()} - names1
    assert all('-2' in name for name in new) and 'summary-2.json' in new, new


def test_sigterm_stops_the_pipeline(tmp_path: Path) -> None:
    """SIGTERM to a replay of the demo bag: exit 143, no pipeline process left behind."""
    pytest.importorskip('rclpy')
    namespace = f'sigterm_{os.getpid()}'
    process = subprocess.Popen(
        [sys.executable, '-m', 'plant_disease_ros.cli.main', 'replay', str(DEMO_BAG),
         '--rate', '0.5', '--out', str(tmp_path / 'out'), '--namespace', namespace,
         '--quiet'],
        env=replay_env(), stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    run = signal_once_started(process, lambda: processes_with(f'__ns:=/{namespace}'), 3,
                              signal.SIGTERM)
    assert len(run.children) == 3 and not run.left
    assert run.returncode == 143, run.stderr
    assert run.stderr.strip().endswith('terminated by SIGTERM; the pipeline was stopped'), \
        run.stderr


@pytest.mark.parametrize(('text', 'expected'), [
    # rcl applies every matching section in file order: the later one wins.
    ('/plant_disease/disease_classifier:\n  ros__parameters:\n    model_path: /a\n'
     '/**:\n  ros__parameters:\n    model_path: /b\n', '/b'),
    ('/**:\n  ros__parameters:\n    model_path: /b\n'
     '/plant_disease/disease_classifier:\n  ros__parameters:\n    model_path: /a\n', '/a'),
    # A name without a leading '/' is from the root: not /plant_disease/disease_classifier.
    ('disease_classifier:\n  ros__parameters:\n    model_path: /root\n', None),
    ('/other/disease_classifier:\n  ros__parameters:\n    model_path: /other\n', None),
    # Nested mappings make the name; wildcards match one (*) or any number (**) of tokens.
    ('plant_disease:\n  disease_classifier:\n    ros__parameters:\n      model_path: /n\n',
     '/n'),
    ('/*/disease_classifier:\n  ros__parameters:\n    model_path: /star\n', '/star'),
    ('/**/disease_classifier:\n  ros__parameters:\n    model_path: /any\n', '/any'),
    # The pipeline process's name is no node name: its classifier is disease_classifier.
    ('/plant_disease/plant_disease_pipeline:\n  ros__parameters:\n    model_path: /p\n',
     None),
])
def test_the_summary_resolves_the_params_file_as_rcl_does(
        tmp_path: Path, text: str, expected: str | None) -> None:
    from plant_disease_ros.tools.replay.run import file_parameters

    params = tmp_path / 'params.yaml'
    params.write_text(text)
    found = file_parameters(params, '/plant_disease/disease_classifier', ('model_path',))
    assert found.get('model_path') == expected


def test_detections_that_found_no_fix_though_the_bag_has_fixes_are_named() -> None:
    """Stamp ranges that overlap but are offset (a camera clock 50 s off the GPS's): most
    detections stale; the summary names both ranges. A few stale ones do not."""
    from plant_disease_ros.tools.replay.playback import unlocated_warning

    frames, fixes = (650.0, 724.0), (600.0, 674.0)
    warning = unlocated_warning({'stale': 67}, frames, fixes)
    assert warning.startswith('67 of 67 detections found no fix near their stamp')
    assert 'frames stamped 650.000 to 724.000 s, fixes 600.000 to 674.000 s' in warning
    assert unlocated_warning({'interpolated': 61, 'nearest': 2, 'stale': 4},
                             frames, fixes) == ''
    assert unlocated_warning({'stale': 3, 'none': 2, 'interpolated': 4}, frames, fixes) != ''
    assert unlocated_warning({'stale': 4}, frames, fixes) == ''       # too few to tell
    assert unlocated_warning({'stale': 67}, frames, None) == ''       # no fix at all
