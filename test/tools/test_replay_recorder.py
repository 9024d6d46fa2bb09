"""The replay's output side without ROS: recorder counts, progress line, summary, names."""

from __future__ import annotations

from collections import Counter
import io
import json
from pathlib import Path
import threading
import time

import pytest

from plant_disease_ros.tools.replay import (
    output_paths,
    OutputRecorder,
    ReceivedDetections,
    ReplaySummary,
)
from plant_disease_ros.tools.replay.progress import ProgressLine

rosbags = pytest.importorskip('rosbags')

TOPICS = {'/ns/classification': 'std_msgs/msg/String', '/ns/detections': 'std_msgs/msg/String',
          '/ns/label': 'std_msgs/msg/String',
          '/ns/markers': 'visualization_msgs/msg/MarkerArray'}


class ListWriter:
    """A stand-in for a rosbags Writer that keeps (topic, log time, data) in a list."""

    def __init__(self, fail: bool = False) -> None:
        self.written: list[tuple[str, int, bytes]] = []
        self.fail = fail

    def add_connection(self, topic: str, msgtype: str, typestore: object) -> str:
        return topic

    def write(self, connection: str, log_ns: int, data: bytes) -> None:
        if self.fail:
            raise OSError('disk full')
        self.written.append((connection, log_ns, data))


@pytest.fixture(scope='module')
def store() -> object:
    """Return the rosbags typestore the replay uses."""
    from rosbags.typesys import get_typestore, Stores

    return get_typestore(Stores.LATEST)


def string_cdr(store: object, value: object) -> bytes:
    """Return a std_msgs/String CDR message holding ``value`` as JSON (or a plain string)."""
    text = value if isinstance(value, str) else json.dumps(value)
    message = store.types['std_msgs/msg/String'](data=text)
    return bytes(store.serialize_cdr(message, 'std_msgs/msg/String'))


def classification(store: object, sec: int, label: str) -> bytes:
    """Return a classification message of the frame stamped ``sec``."""
    return string_cdr(store, {'stamp': {'sec': sec, 'nanosec': 0}, 'label': label})


def detection(store: object, sec: int, label: str, fix_status: str) -> bytes:
    """Return a detection Feature of the frame stamped ``sec``."""
    return string_cdr(store, {'type': 'Feature', 'geometry': None, 'properties': {
        'label': label, 'fix_status': fix_status, 'stamp': {'sec': sec, 'nanosec': 0}}})


def test_recorder_writes_at_the_replay_clock_and_counts(store: object, tmp_path: Path) -> None:
    """Each output goes to the bag at the clock's time; labels, detections, repeats counted."""
    writer = ListWriter()
    received = ReceivedDetections.create(tmp_path, 'disease_map')
    recorder = OutputRecorder(writer, store, TOPICS, received)
    recorder.set_clock(5_000)
    recorder.receive('/ns/classification', 'classification', classification(store, 1, 'a'))
    recorder.receive('/ns/classification', 'classification',
                     classification(store, 2, 'unknown'))
    recorder.set_clock(7_000)
    recorder.receive('/ns/classification', 'classification', classification(store, 1, 'a'))
    recorder.receive('/ns/label', 'label', string_cdr(store, 'a (0.9)'))
    recorder.receive('/ns/detections', 'detections', detection(store, 1, 'a', 'interpolated'))
    recorder.receive('/ns/classification', 'classification', string_cdr(store, 'not json'))
    recorder.receive('/ns/classification', 'classification',
                     classification(store, 3, 'no_leaf'))
    assert [(topic, log_ns) for topic, log_ns, _ in writer.written] == [
        ('/ns/classification', 5_000), ('/ns/classification', 5_000),
        ('/ns/classification', 7_000), ('/ns/label', 7_000), ('/ns/detections', 7_000),
        ('/ns/classification', 7_000), ('/ns/classification', 7_000)]
    counts = recorder.counts()
    assert (counts.labelled, counts.unknown, counts.no_leaf, counts.duplicates) == (3, 1, 1, 1)
    assert counts.detections == Counter({'a': 1})
    assert counts.fix_status == Counter({'interpolated': 1})
    assert [feature['properties']['label'] for feature in received.features()] == ['a']
    assert received.received == 1
    assert recorder.classified_count == 3 and recorder.write_error == ''
    received.discard()


def test_nothing_is_written_before_the_input_bags_start(store: object) -> None:
    """The latched markers arrive while the clock still runs up to the bag's start (90 s
    before it): they are written at the start, so the output bag starts with the input."""
    writer = ListWriter()
    start_ns = 1_700_000_000 * 10**9
    recorder = OutputRecorder(writer, store, TOPICS, start_ns=start_ns)
    markers = b'\x00\x01\x00\x00\x00\x00\x00\x00'
    recorder.receive('/ns/markers', 'markers', markers)
    recorder.set_clock(start_ns - 88 * 10**9)
    recorder.receive('/ns/markers', 'markers', markers)
    recorder.set_clock(start_ns + 5)
    recorder.receive('/ns/label', 'label', string_cdr(store, 'a'))
    assert [log_ns for _, log_ns, _ in writer.written] == [start_ns, start_ns, start_ns + 5]


def test_recorder_counts_are_a_copy(store: object) -> None:
    """A snapshot does not change when more outputs arrive."""
    recorder = OutputRecorder(ListWriter(), store, TOPICS)
    recorder.receive('/ns/detections', 'detections', detection(store, 1, 'a', 'nearest'))
    before = recorder.counts()
    recorder.receive('/ns/detections', 'detections', detection(store, 2, 'b', 'stale'))
    assert sum(before.detections.values()) == 1 and before.fix_status == {'nearest': 1}
    assert sum(recorder.counts().detections.values()) == 2


def test_recorder_keeps_the_first_write_error_and_goes_on(store: object) -> None:
    """A failing output bag is reported once; counting goes on."""
    recorder = OutputRecorder(ListWriter(fail=True), store, TOPICS)
    recorder.receive('/ns/classification', 'classification', classification(store, 1, 'a'))
    recorder.receive('/ns/classification', 'classification', classification(store, 2, 'b'))
    assert recorder.write_error == 'disk full' and recorder.counts().labelled == 2


def test_markers_do_not_count_as_activity(store: object) -> None:
    """Latched markers arriving late do not keep the replay waiting for quiet."""
    recorder = OutputRecorder(ListWriter(), store, TOPICS)
    before = recorder.last_output_s
    recorder.receive('/ns/markers', 'markers', b'\x00\x01\x00\x00\x00\x00\x00\x00')
    assert recorder.last_output_s == before
    time.sleep(0.01)  # the monotonic clock moves on: a label must move the time with it
    recorder.receive('/ns/label', 'label', string_cdr(store, 'a'))
    assert recorder.last_output_s > before


def test_wait_for_returns_when_the_frame_is_classified(store: object) -> None:
    """wait_for wakes up on the classification from another thread; False on timeout."""
    recorder = OutputRecorder(ListWriter(), store, TOPICS)
    assert not recorder.wait_for((3, 0), 0.01)
    sender = threading.Thread(target=recorder.callback('/ns/classification', 'classification'),
                              args=(classification(store, 3, 'a'),))
    sender.start()
    assert recorder.wait_for((3, 0), 30.0)
    sender.join()


def test_progress_line_on_a_pipe_draws_each_tenth() -> None:
    """Not a terminal: the first line, one per further 10 % of the frames, the forced one."""
    stream = io.StringIO()
    progress = ProgressLine(20, stream, enabled=True)
    for sent in range(1, 21):
        progress.update(sent, sent - 1, 10.0, sent / 10, 2.0)
    progress.update(20, 20, 10.0, 2.0, 2.0, force=True)
    progress.finish()
    lines = stream.getvalue().splitlines()
    assert len(lines) == 1 + 10 + 1
    assert lines[0].startswith('replay: 1/20 frames sent')
    assert lines[-1] == 'replay: 20/20 frames sent, 20 labelled, 10.0 frames/s, bag 2.0/2.0 s'


def test_progress_line_disabled_writes_nothing() -> None:
    """--quiet: no progress output at all."""
    stream = io.StringIO()
    progress = ProgressLine(5, stream, enabled=False)
    progress.update(5, 5, 1.0, 1.0, 1.0, force=True)
    progress.finish()
    assert stream.getvalue() == ''


def test_summary_lines_and_json() -> None:
    """The printed summary: counts, fix statuses, labels by count, outputs and warnings."""
    summary = ReplaySummary(bag=Path('field.mcap'), image_topic='/cam', fix_topic=None,
                            mode='fast', frames_in=4, labelled=3, unknown=1, no_leaf=1,
                            unanswered=1,
                            detections=Counter({'b': 1, 'a': 2}),
                            fix_status=Counter({'nearest': 1, 'interpolated': 2}),
                            wall_s=1.5, warnings=['no NavSatFix topic'])
    assert summary.lines() == [
        'bag:         field.mcap (image /cam, fix none; fast)',
        'frames in:   4',
        'labelled:    3 (1 no_leaf: no leaf in view, 1 unknown below the score threshold, '
        '1 not classified)',
        'speed:       2.0 frames/s (1.5 s)',
        'detections:  3 (interpolated 2, nearest 1)',
        '      2  a',
        '      1  b',
        'GeoJSON:     not written',
        'map PNG:     not written',
        'grid:        not written',
        'output bag:  not written',
        'warning:     no NavSatFix topic',
    ]
    value = json.loads(json.dumps(summary.as_dict()))
    assert value['detections'] == {'a': 2, 'b': 1} and value['detections_total'] == 3
    assert value['frames_per_s'] == 2.0 and value['no_leaf'] == 1


def test_output_paths_never_reuse_a_name(tmp_path: Path) -> None:
    """A second replay into the same folder gets output_bag-2 and disease_map-2."""
    first = output_paths(tmp_path / 'out', Path('x.mcap'))
    assert (first.output_bag.name, first.run_name, first.map_dir, first.summary.name) == (
        'output_bag', 'disease_map', first.out_dir, 'summary.json')
    first.output_bag.mkdir()
    (first.map_dir / f'{first.run_name}.geojsons').write_text('')
    second = output_paths(tmp_path / 'out', Path('x.mcap'))
    assert (second.output_bag.name, second.run_name, second.summary.name,
            second.logs.name) == ('output_bag-2', 'disease_map-2', 'summary-2.json', 'logs-2')


def test_recorder_keeps_the_motion_blur_estimates_in_stamp_order(store: object) -> None:
    """Only frames with an estimate count; out-of-order arrivals are put in stamp order."""
    recorder = OutputRecorder(ListWriter(), store, TOPICS)
    for sec, blur in ((3, {'px': 30.0, 'axis': 'horizontal', 'percent': 6.25}),
                      (1, {'px': 4.0, 'axis': 'vertical', 'percent': 0.83}),
                      (2, None), (4, {'percent': 'bad'})):
        recorder.receive('/ns/classification', 'classification', string_cdr(store, {
            'stamp': {'sec': sec, 'nanosec': 0}, 'label': 'a', 'motion_blur': blur}))
    assert recorder.counts().motion_blur == [0.83, 6.25]


def blur_summary(percents: list[float]) -> ReplaySummary:
    """Return a replay summary holding these motion blur estimates."""
    return ReplaySummary(bag=Path('field.mcap'), image_topic='/cam', fix_topic=None,
                         mode='fast', frames_in=50, labelled=50, motion_blur=percents,
                         wall_s=1.0)


def test_summary_reports_the_motion_blur_and_warns_on_a_smeared_stretch() -> None:
    """Sharp then smeared: the 15-estimate median passes 5 %, so the summary warns."""
    sharp = blur_summary([1.0] * 20)
    assert 'motion blur: 1.0 % of the frame side (median of 20 estimates; highest median ' \
           'of 15 in a row 1.0 %)' in sharp.lines()
    assert sharp.motion_blur_warning == ''
    assert sharp.as_dict()['motion_blur'] == {
        'estimates': 20, 'median_percent': 1.0, 'highest_window_median_percent': 1.0}

    smeared = blur_summary([1.0] * 20 + [7.0] * 8)  # 8 of the last 15 smeared
    assert smeared.highest_blur_median == 7.0
    assert 'the median of 15 consecutive motion blur estimates reached 7.0 % of the frame ' \
           'side' in smeared.motion_blur_warning
    assert 'shorten the exposure' in smeared.motion_blur_warning
    brief = blur_summary([1.0] * 20 + [7.0] * 7)  # 7 of 15: the median stays sharp
    assert brief.highest_blur_median == 1.0 and brief.motion_blur_warning == ''

    few = blur_summary([9.0] * 4)  # under the 5 estimates the node needs before it warns
    assert few.highest_blur_median is None and few.motion_blur_warning == ''
    short = blur_summary([9.0] * 6)  # 6 estimates: the window is what there is
    assert 'the median of 6 consecutive' in short.motion_blur_warning
    assert 'highest median of 6 in a row 9.0 %' in short.lines()[5]
    assert few.lines()[5] == 'motion blur: 9.0 % of the frame side (median of 4 estimates)'
    assert blur_summary([]).as_dict()['motion_blur'] is None
    assert not any(line.startswith('motion blur') for line in blur_summary([]).lines())
