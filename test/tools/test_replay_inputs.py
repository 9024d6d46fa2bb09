"""plant-disease replay with awkward inputs and interruptions: real bags, real nodes.

A robot's rate cap under --fast, a second Ctrl-C while the nodes stop, repeated header
stamps in a timed replay, undecodable frames and unusable fixes, a killed recording's
folder, a file-compressed bag.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
import signal
import subprocess
import sys
import time

from helpers.processes import processes_with
import pytest

from plant_disease_ros.tools.replay import inspect_bag, pipeline_commands, ReplayError
from plant_disease_ros.tools.replay.outputs import add_counts
from plant_disease_ros.tools.replay.recorder import OutputCounts
from plant_disease_ros.tools.replay.summary import ReplaySummary

from .test_replay import DEMO_BAG, replay_env, selection, write_bag

rosbags = pytest.importorskip('rosbags')


def replay_cli(*args: str, timeout_s: float = 180.0) -> subprocess.CompletedProcess:
    """Run ``plant-disease replay ARGS`` in a subprocess on loopback; return its result."""
    return subprocess.run(
        [sys.executable, '-m', 'plant_disease_ros.cli.main', 'replay', *args, '--quiet'],
        env=replay_env(), capture_output=True, text=True, timeout=timeout_s)


def classifications_in(output_bag: Path) -> int:
    """Return how many classification messages the replay recorded in its output bag."""
    from rosbags.rosbag2 import Reader

    with Reader(output_bag) as reader:
        return sum(1 for connection in reader.connections
                   if connection.topic.endswith('/classification')
                   for _ in reader.messages(connections=[connection]))


# 1. --fast and a robot's rate cap ---------------------------------------------------------


def test_fast_sets_the_rate_cap_to_zero_after_the_users(tmp_path: Path) -> None:
    """-p max_rate_hz:=2.0 (or a params file's) is replaced by 0 under --fast only."""
    from plant_disease_ros.tools.replay import ReplayOptions
    from plant_disease_ros.tools.replay.run import fast_rate_cap

    options = ReplayOptions(bag=Path('x.mcap'), fast=True, parameters={'max_rate_hz': '2.0'})
    argv = ' '.join(next(command.argv for command in pipeline_commands(
        selection(), options, tmp_path, 'run', None) if command.name == 'camera_subscriber'))
    assert '-p max_rate_hz:=0.0' in argv and 'max_rate_hz:=2.0' not in argv
    timed = ReplayOptions(bag=Path('x.mcap'), parameters={'max_rate_hz': '2.0'})
    every = ' '.join(' '.join(command.argv) for command in pipeline_commands(
        selection(), timed, tmp_path, 'run', None))
    assert 'max_rate_hz:=0.0' not in every
    params = tmp_path / 'robot.yaml'
    params.write_text('/**:\n  ros__parameters:\n    max_rate_hz: 5.0\n')
    assert 'rate cap 5.0 Hz from ' + str(params) in fast_rate_cap({}, params, '/plant_disease')
    assert 'rate cap 2.0 Hz from -p max_rate_hz:=2.0' in fast_rate_cap(
        {'max_rate_hz': '2.0'}, params)
    assert fast_rate_cap({'max_rate_hz': '0.0'}, params) == ''
    assert fast_rate_cap({}, None) == ''


def test_fast_replay_with_a_rate_cap_says_so_and_resends_nothing(tmp_path: Path) -> None:
    """A rate cap of 2 Hz under --fast: one line says it is set to 0, the node runs with 0,
    every frame is classified at the first send."""
    pytest.importorskip('rclpy')
    bag = write_bag(tmp_path / 'capped', compressed_frames=8, fixes=8)
    out = tmp_path / 'out'
    result = replay_cli(str(bag), '--fast', '--single-process', '--out', str(out),
                        '--namespace', f'capped_{os.getpid()}', '-p', 'max_rate_hz:=2.0')
    assert result.returncode == 0, result.stderr + result.stdout
    assert result.stderr.count('replay: --fast sets max_rate_hz to 0') == 1, result.stderr
    summary = json.loads((out / 'summary.json').read_text())
    assert any(warning.startswith('--fast sets max_rate_hz to 0 (camera_subscriber rate cap '
                                  '2.0 Hz from -p max_rate_hz:=2.0)')
               for warning in summary['warnings'])
    assert summary['frames_in'] == summary['labelled'] == 8
    assert summary['resent'] == 0 and summary['unanswered'] == 0
    log = (out / 'logs' / 'plant_disease_pipeline.log').read_text()
    assert 'max_rate_hz 0,' in log and 'max_rate_hz 2' not in log


# 2. A second Ctrl-C while the nodes stop ------------------------------------------------------


def test_a_second_ctrl_c_while_stopping_waits_for_the_stop(tmp_path: Path) -> None:
    """Ctrl-C, then Ctrl-C again while the nodes are still stopping: the replay says it is
    still stopping, stops them, closes a readable output bag and exits 130 (no abort)."""
    pytest.importorskip('rclpy')
    from rosbags.rosbag2 import Reader

    bag = write_bag(tmp_path / 'slow', compressed_frames=20, fixes=12)
    out = tmp_path / 'out'
    namespace = f'twice_int_{os.getpid()}'
    process = subprocess.Popen(
        [sys.executable, '-m', 'plant_disease_ros.cli.main', 'replay', str(bag), '--rate',
         '0.1', '--out', str(out), '--namespace', namespace, '--quiet'],
        env=replay_env(), stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    children: list[int] = []
    second_sent = False
    try:
        deadline = time.monotonic() + 90.0
        while len(children) < 3 and process.poll() is None and time.monotonic() < deadline:
            children = processes_with(f'__ns:=/{namespace}')
            time.sleep(0.2)
        assert len(children) == 3, process.stderr.read() if process.poll() is not None else ''
        time.sleep(1.0)
        process.send_signal(signal.SIGINT)
        # The replay goes on to stop its nodes: while any is still alive, Ctrl-C again.
        time.sleep(0.1)
        deadline = time.monotonic() + 20.0
        while (process.poll() is None and time.monotonic() < deadline
               and any(Path(f'/proc/{pid}').exists() for pid in children)):
            process.send_signal(signal.SIGINT)
            second_sent = True
            time.sleep(0.05)
        _, stderr = process.communicate(timeout=40)
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()
        left = processes_with(f'__ns:=/{namespace}')
        for pid in left:
            os.kill(pid, signal.SIGKILL)
    assert second_sent
    assert process.returncode == 130, stderr
    assert 'SIGINT received: still stopping the nodes and closing the output bag' in stderr
    assert 'terminate called' not in stderr and 'Traceback' not in stderr, stderr
    assert not left
    assert (out / 'output_bag' / 'metadata.yaml').is_file()
    with Reader(out / 'output_bag') as reader:  # readable: the writer was closed
        assert '/' + namespace + '/classification' in reader.topics


# 3. Repeated header stamps in a timed replay ---------------------------------------------------


def test_a_timed_replay_of_repeated_stamps_counts_them_and_claims_no_resend(
        tmp_path: Path) -> None:
    """Every frame stamped alike, at half speed: the repeated-stamp warning as with --fast;
    no frame called re-sent, and not classified only for those without a classification."""
    pytest.importorskip('rclpy')
    bag = write_bag(tmp_path / 'one_stamp', raw_frames=12, fixes=8, one_stamp=True)
    out = tmp_path / 'out'
    result = replay_cli(str(bag), '--rate', '0.5', '--single-process', '--out', str(out),
                        '--namespace', f'stamps_{os.getpid()}')
    assert result.returncode == 0, result.stderr + result.stdout
    summary = json.loads((out / 'summary.json').read_text())
    assert summary['frames_in'] == 12 and summary['repeated_stamps'] == 11
    assert summary['labelled'] == 1  # distinct stamps
    classified = classifications_in(out / 'output_bag')
    assert summary['unanswered'] == 12 - classified
    assert summary['resent'] == 0
    assert any(warning.startswith('11 frame(s) carry the header stamp of an earlier frame')
               for warning in summary['warnings'])
    assert not any('re-sent' in warning for warning in summary['warnings'])
    if classified == 12:
        assert 'not classified' not in result.stdout


# 4, 5. Undecodable frames and fixes without a fix ------------------------------------------------


def test_rejected_frames_and_unusable_fixes_are_summarised(tmp_path: Path) -> None:
    """Two garbled JPEGs among six under --fast: counted as rejected by reason (the camera's
    /diagnostics), neither waited for nor re-sent; every fix is STATUS_NO_FIX: a warning."""
    pytest.importorskip('rclpy')
    bag = write_bag(tmp_path / 'bad', compressed_frames=6, fixes=8, garbled=(2, 4),
                    fix_status=-1)
    out = tmp_path / 'out'
    result = replay_cli(str(bag), '--fast', '--out', str(out), '--frame-timeout', '60',
                        '--namespace', f'garbled_{os.getpid()}')
    assert result.returncode == 0, result.stderr + result.stdout
    summary = json.loads((out / 'summary.json').read_text())
    assert summary['frames_in'] == 6 and summary['labelled'] == 4
    assert summary['rejected'] == {'decode_failed': 2} and summary['rejected_total'] == 2
    assert summary['rejected_by'] == ['camera_subscriber']
    # Noticed from the camera's counters: no timeout, no second send.
    assert summary['unanswered'] == 0 and summary['resent'] == 0
    assert ('2 frame(s) rejected by camera_subscriber, not classified (decode_failed 2)'
            in result.stdout)
    assert ', 2 rejected)' in result.stdout
    assert summary['fixes_in'] == 8 and summary['fixes_unusable'] == {'no_fix': 8}
    assert ('warning:     fix topic /gps/fix: 0 of 8 fixes usable (8 no_fix): every '
            'detection has null geometry') in result.stdout


def test_the_fix_warning_names_every_reason_and_needs_all_fixes_unusable() -> None:
    """NaN and no-fix fixes: 0 of N usable with both reasons; one usable fix: no warning."""
    summary = ReplaySummary(bag=DEMO_BAG, image_topic='/cam', fix_topic='/gps/fix',
                            mode='fast', fixes_in=5)
    summary.fixes_unusable.update({'non_finite': 3, 'no_fix': 2})
    add_counts(summary, OutputCounts())
    assert summary.warnings == ['fix topic /gps/fix: 0 of 5 fixes usable (3 non_finite, '
                                '2 no_fix): every detection has null geometry']
    summary = ReplaySummary(bag=DEMO_BAG, image_topic='/cam', fix_topic='/gps/fix',
                            mode='fast', fixes_in=6)
    summary.fixes_unusable.update({'non_finite': 3, 'no_fix': 2})
    add_counts(summary, OutputCounts())
    assert summary.warnings == []


# 6. A killed recording's folder ------------------------------------------------------------------


def test_a_folder_without_metadata_names_the_recording_inside(tmp_path: Path) -> None:
    """What a killed `ros2 bag record` leaves: the error names its .mcap to give instead."""
    bag = write_bag(tmp_path / 'killed', compressed_frames=2, fixes=2)
    (bag / 'metadata.yaml').unlink()
    inside = bag / 'killed.mcap'
    with pytest.raises(ReplayError) as raised:
        inspect_bag(bag)
    message = str(raised.value)
    assert message.startswith(f'cannot read bag {bag}: a folder without metadata.yaml')
    assert f'it holds {inside} (a killed recording writes no metadata.yaml): give the file ' \
           'instead' in message
    assert '`mcap recover IN.mcap -o OUT.mcap`' in message
    assert inspect_bag(inside).image.count == 2  # the file named does open
    empty = tmp_path / 'empty'
    empty.mkdir()
    with pytest.raises(ReplayError, match='not a rosbag2 bag$'):
        inspect_bag(empty)


def test_a_killed_split_file_compressed_recording_names_every_split(tmp_path: Path) -> None:
    """A killed, file-compressed, split recording: rec_0.mcap.zstd (a closed split,
    compressed) and rec_1.mcap (the open one). Both are named, with how to decompress the
    first and that each split is replayed on its own; the .zstd file given says the same."""
    first = write_bag(tmp_path / 'first', compressed_frames=2, fixes=2, compression='file')
    second = write_bag(tmp_path / 'second', compressed_frames=2, fixes=2)
    killed = tmp_path / 'killed'
    killed.mkdir()
    compressed = killed / 'rec_0.mcap.zstd'
    (first / 'first.mcap.zstd').rename(compressed)
    (second / 'second.mcap').rename(killed / 'rec_1.mcap')
    with pytest.raises(ReplayError) as raised:
        inspect_bag(killed)
    message = str(raised.value)
    assert f'it holds {compressed}, {killed / "rec_1.mcap"} (a killed recording' in message
    assert 'a split recording has one file per split: replay each file' in message
    assert '`zstd -d FILE.zstd` first, then give FILE' in message
    assert 'give the file instead' not in message
    with pytest.raises(ReplayError) as raised:
        inspect_bag(compressed)
    message = str(raised.value)
    assert f'`zstd -d {compressed}` decompresses it, then give {killed / "rec_0.mcap"}' \
        in message
    assert 'Unrecognized storage format' not in message
    # Upper-case names (a copy through a FAT stick) are named the same way.
    shouting = killed / 'REC_0.MCAP.ZSTD'
    compressed.rename(shouting)
    with pytest.raises(ReplayError) as raised:
        inspect_bag(killed)
    assert str(shouting) in str(raised.value) and 'zstd -d FILE.zstd' in str(raised.value)
    with pytest.raises(ReplayError) as raised:
        inspect_bag(shouting)
    assert f'`zstd -d {shouting}` decompresses it' in str(raised.value)


# 7. A file-compressed bag ------------------------------------------------------------------------


def test_a_file_compressed_bag_is_decompressed_once(tmp_path: Path,
                                                    monkeypatch: pytest.MonkeyPatch) -> None:
    """A zstd file-compressed bag replayed in-process: its one file is decompressed once
    (not for the topics, the frames and the fixes each), the copy removed at the end."""
    pytest.importorskip('rclpy')
    from plant_disease_ros.tools.replay import replay, ReplayOptions

    if sys.version_info >= (3, 14):
        from compression import zstd
    else:
        from backports import zstd

    bag = write_bag(tmp_path / 'zipped', compressed_frames=4, fixes=6, compression='file')
    assert [path.name for path in bag.iterdir() if path.suffix == '.zstd'] == [
        'zipped.mcap.zstd']
    opened: list[object] = []
    real_open = zstd.open

    def counting_open(file: object, *args: object, **kwargs: object) -> object:
        opened.append(file)
        return real_open(file, *args, **kwargs)

    monkeypatch.setattr(zstd, 'open', counting_open)
    temporary = tmp_path / 'tmp'
    temporary.mkdir()
    monkeypatch.setenv('TMPDIR', str(temporary))
    monkeypatch.setattr('tempfile.tempdir', None)
    monkeypatch.setenv('ROS_AUTOMATIC_DISCOVERY_RANGE', 'LOCALHOST')
    summary = replay(ReplayOptions(bag=bag, fast=True, single_process=True,
                                   out_dir=tmp_path / 'out', show_progress=False,
                                   namespace=f'zipped_{os.getpid()}'))
    assert summary.frames_in == summary.labelled == 4
    assert summary.bag == bag
    assert len(opened) == 1
    assert not [path for path in temporary.iterdir() if path.name.startswith('replay-')]


# 8. Fixes the classifier drops for their stamp or accuracy ---------------------------------------


def rewrite_fixes(source: Path, destination: Path, *, unstamped: bool = False,
                  accuracy_m: float | None = None) -> Path:
    """Copy bag ``source`` to ``destination``; its NavSatFix messages changed.

    ``unstamped``: stamped exactly 0 (a GPS driver that does not stamp); ``accuracy_m``:
    reporting that 1-sigma horizontal accuracy (east and north variances, approximated).
    """
    import numpy as np
    from rosbags.rosbag2 import Reader, StoragePlugin, Writer
    from rosbags.typesys import get_typestore, Stores

    store = get_typestore(Stores.ROS2_HUMBLE)
    with Reader(source) as reader, Writer(destination, version=8,
                                          storage_plugin=StoragePlugin.MCAP) as writer:
        connections = {connection.id: writer.add_connection(
            connection.topic, connection.msgtype, typestore=store)
            for connection in reader.connections}
        for connection, log_ns, data in reader.messages():
            if connection.msgtype == 'sensor_msgs/msg/NavSatFix':
                message = store.deserialize_cdr(data, connection.msgtype)
                if unstamped:
                    message.header.stamp.sec = message.header.stamp.nanosec = 0
                if accuracy_m is not None:
                    variance = accuracy_m ** 2
                    message.position_covariance = np.array(
                        [variance, 0, 0, 0, variance, 0, 0, 0, 4 * variance], np.float64)
                    message.position_covariance_type = 1  # approximated
                data = store.serialize_cdr(message, connection.msgtype)
            writer.write(connections[connection.id], log_ns, data)
    return destination


def replay_in_process(bag: Path, out: Path, name: str, **options: object) -> ReplaySummary:
    """Replay ``bag`` fast in this process (one pipeline process) into ``out``."""
    from plant_disease_ros.tools.replay import replay, ReplayOptions

    return replay(ReplayOptions(bag=bag, fast=True, single_process=True, out_dir=out,
                                show_progress=False, namespace=f'{name}_{os.getpid()}',
                                **options))  # type: ignore[arg-type]


def test_fixes_stamped_zero_are_counted_as_the_classifier_drops_them(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Eight fixes stamped 0: the classifier drops every one ('unstamped'), and so does the
    replay's count: 0 of 8 usable, with the warning; no detection is located."""
    pytest.importorskip('rclpy')
    monkeypatch.setenv('ROS_AUTOMATIC_DISCOVERY_RANGE', 'LOCALHOST')
    bag = rewrite_fixes(write_bag(tmp_path / 'source', compressed_frames=6, fixes=8),
                        tmp_path / 'unstamped', unstamped=True)
    replay_in_process(bag, tmp_path / 'out', 'unstamped')
    summary = json.loads((tmp_path / 'out' / 'summary.json').read_text())
    assert summary['fixes_in'] == 8 and summary['fixes_unusable'] == {'unstamped': 8}
    assert ('fix topic /gps/fix: 0 of 8 fixes usable (8 unstamped): every detection has null '
            'geometry') in summary['warnings']
    assert summary['detections_total'] == 6 and summary['fix_status'] == {'none': 6}


def test_inaccurate_fixes_are_judged_by_the_replays_accuracy_limit(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Fixes reporting 10 m: a parameter file's max_fix_accuracy_m 5 drops them all (the
    warning names the limit and the file), -p max_fix_accuracy_m:=20 over it keeps them."""
    pytest.importorskip('rclpy')
    monkeypatch.setenv('ROS_AUTOMATIC_DISCOVERY_RANGE', 'LOCALHOST')
    bag = rewrite_fixes(write_bag(tmp_path / 'source', compressed_frames=6, fixes=8),
                        tmp_path / 'converging', accuracy_m=10.0)
    params = tmp_path / 'robot.yaml'
    params.write_text('/**/disease_classifier:\n  ros__parameters:\n'
                      '    max_fix_accuracy_m: 5.0\n')
    replay_in_process(bag, tmp_path / 'strict', 'strict', params_file=params)
    summary = json.loads((tmp_path / 'strict' / 'summary.json').read_text())
    assert summary['fixes_in'] == 8 and summary['fixes_unusable'] == {'inaccurate': 8}
    assert (f'fix topic /gps/fix: 0 of 8 fixes usable (8 inaccurate; max_fix_accuracy_m 5 '
            f'from {params}): every detection has null geometry') in summary['warnings']
    assert summary['fix_status'] == {'none': 6}
    replay_in_process(bag, tmp_path / 'lenient', 'lenient', params_file=params,
                      parameters={'max_fix_accuracy_m': '20.0'})
    summary = json.loads((tmp_path / 'lenient' / 'summary.json').read_text())
    assert summary['fixes_in'] == 8 and summary['fixes_unusable'] == {}
    assert not any('fixes usable' in warning for warning in summary['warnings'])
    assert 'none' not in summary['fix_status'] and summary['detections_total'] == 6


def test_the_accuracy_limit_is_the_started_classifiers_or_the_node_default(
        tmp_path: Path) -> None:
    """-p over the parameter file's classifier section over the node default; attached
    (the running pipeline's value unknown) and unreadable values: the default, said so."""
    from plant_disease_ros.core.fix_buffer import DEFAULT_MAX_FIX_ACCURACY_M
    from plant_disease_ros.tools.replay.run import fix_accuracy_limit

    params = tmp_path / 'robot.yaml'
    params.write_text('/**/disease_classifier:\n  ros__parameters:\n'
                      '    max_fix_accuracy_m: 5.0\n'
                      '/other/camera_subscriber:\n  ros__parameters:\n'
                      '    max_fix_accuracy_m: 7.0\n')
    assert fix_accuracy_limit({}, params, '/plant_disease') == (5.0, str(params))
    assert fix_accuracy_limit({'max_fix_accuracy_m': '20'}, params) == (
        20.0, '-p max_fix_accuracy_m:=20')
    assert fix_accuracy_limit({}, None) == (DEFAULT_MAX_FIX_ACCURACY_M, 'the node default')
    assert fix_accuracy_limit({'max_fix_accuracy_m': 'far'}, params) == (
        DEFAULT_MAX_FIX_ACCURACY_M, 'the node default')
    limit, source = fix_accuracy_limit({'max_fix_accuracy_m': '20'}, params, attached=True)
    assert limit == DEFAULT_MAX_FIX_ACCURACY_M
    assert source == "the node default (attached: the running pipeline's value is not known here)"


# 9. Errors name the user's bag, not its decompressed copy ----------------------------------------


def zstd_module() -> object:
    """Return the zstd module rosbags reads with."""
    if sys.version_info >= (3, 14):
        from compression import zstd
    else:
        from backports import zstd
    return zstd


def private_tempdir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """Point the temporary folder at a new folder of the test's; return it."""
    temporary = tmp_path / 'tmp'
    temporary.mkdir()
    monkeypatch.setenv('TMPDIR', str(temporary))
    monkeypatch.setattr('tempfile.tempdir', None)
    return temporary


def test_a_compressed_bag_cut_short_is_named_in_the_error(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A zstd file-compressed bag whose MCAP was cut in half: the error names the user's
    bag and its .mcap.zstd to decompress before `mcap recover`, never the temporary copy."""
    from plant_disease_ros.tools.replay import replay, ReplayOptions

    zstd = zstd_module()
    bag = write_bag(tmp_path / 'zipped', compressed_frames=4, fixes=6, compression='file')
    inside = bag / 'zipped.mcap.zstd'
    plain = zstd.decompress(inside.read_bytes())  # type: ignore[attr-defined]
    inside.write_bytes(zstd.compress(plain[:len(plain) // 2]))  # type: ignore[attr-defined]
    temporary = private_tempdir(tmp_path, monkeypatch)
    with pytest.raises(ReplayError) as raised:
        replay(ReplayOptions(bag=bag, fast=True, out_dir=tmp_path / 'out',
                             show_progress=False))
    message = str(raised.value)
    assert message.startswith(f'cannot read bag {bag}: '), message
    assert str(temporary) not in message and 'replay-zipped' not in message, message
    assert (f'`zstd -d {inside}` decompresses it (its files are zstd compressed whole), then '
            '`mcap recover IN.mcap -o OUT.mcap` rebuilds one') in message
    assert not list(temporary.iterdir())  # the copy is gone


def test_a_compressed_bag_unreadable_midway_is_named_in_the_error(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A zstd file-compressed bag whose chunk fails its checksum (it opens; its frames do
    not read): the replay stops, and its error names the user's bag."""
    import struct

    pytest.importorskip('rclpy')
    monkeypatch.setenv('ROS_AUTOMATIC_DISCOVERY_RANGE', 'LOCALHOST')
    zstd = zstd_module()
    bag = write_bag(tmp_path / 'zipped', compressed_frames=4, fixes=6, compression='file')
    inside = bag / 'zipped.mcap.zstd'
    plain = bytearray(zstd.decompress(inside.read_bytes()))  # type: ignore[attr-defined]
    position = 8  # after the magic: records of opcode (1 byte), length (8), content
    while plain[position] != 0x06:  # the first chunk
        position += 9 + struct.unpack_from('<Q', plain, position + 1)[0]
    # Its uncompressed CRC, after the start and end times and the uncompressed size.
    struct.pack_into('<I', plain, position + 9 + 24, 0xDEADBEEF)
    inside.write_bytes(zstd.compress(bytes(plain)))  # type: ignore[attr-defined]
    temporary = private_tempdir(tmp_path, monkeypatch)
    with pytest.raises(ReplayError) as raised:
        replay_in_process(bag, tmp_path / 'out', 'midway')
    message = str(raised.value)
    assert message.startswith(f'cannot read bag {bag}: ReaderError: '), message
    assert str(temporary) not in message and 'replay-zipped' not in message, message
    summary = json.loads((tmp_path / 'out' / 'summary.json').read_text())
    assert f'replay stopped early: cannot read bag {bag}: ' in ' '.join(summary['warnings'])
    assert not list(temporary.iterdir())
