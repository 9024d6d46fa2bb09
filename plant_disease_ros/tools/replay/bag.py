"""Read the input bag: open it, choose its image and fix topics, and stream its messages.

The bag (a rosbag2 folder, or a single ``.mcap`` or ``.db3`` file) is read with the
``rosbags`` library, so no rosbag2 install is needed; messages stay CDR bytes.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from plant_disease_ros.tools.replay.options import one_line, ReplayError

IMAGE_TYPES = {
    'sensor_msgs/msg/Image': 'raw',
    'sensor_msgs/msg/CompressedImage': 'compressed',
}
FIX_TYPE = 'sensor_msgs/msg/NavSatFix'
# Image topics the pipeline itself publishes: never chosen as its input.
OUTPUT_IMAGE_NAMES = ('frames', 'image_annotated', 'explanation')
# The fix the classifier publishes with each located detection: never chosen as input.
OUTPUT_FIX_SUFFIX = 'detections/fix'
# Words in a topic name that mark a camera stream without the colour a leaf needs (depth,
# infrared, stereo disparity): chosen automatically only when no other image topic has
# messages.
NON_COLOUR_WORDS = ('depth', 'disparity', 'infra', 'ir', 'thermal', 'confidence')


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


@dataclass(order=True)
class BagMessage:
    """One recorded message: log time, a tie-breaker for merging, its kind and CDR bytes."""

    log_ns: int
    order: int
    kind: str = field(compare=False)
    data: bytes = field(compare=False)


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
        raise ReplayError(f'cannot read bag {path}: {one_line(error).rstrip(".")}'
                          f'{_cut_short_hint(path)}') from error
    except Exception as error:  # corrupt files raise all sorts of errors
        raise ReplayError(f'cannot read bag {path}: corrupt or not a rosbag2 bag '
                          f'({type(error).__name__}: {one_line(error)})') from error
    return reader


def _parts(name: str) -> list[str]:
    """Return a topic's name parts without a transport suffix ('/compressed')."""
    parts = [part for part in name.strip('/').split('/') if part]
    if parts and parts[-1] == 'compressed':
        parts = parts[:-1]
    return parts


def _cut_short_hint(path: Path) -> str:
    """Return advice for an MCAP bag that does not open: often a recording cut short."""
    mcap = path.suffix == '.mcap' or (path.is_dir() and any(path.glob('*.mcap')))
    return ('; an MCAP file whose recording was cut short (power loss, a killed recorder) '
            'has no summary at its end: `mcap recover IN.mcap -o OUT.mcap` rebuilds one'
            if mcap else '')


def _is_output_image(name: str) -> bool:
    parts = _parts(name)
    return bool(parts) and parts[-1] in OUTPUT_IMAGE_NAMES


def _is_output_fix(name: str) -> bool:
    return '/'.join(_parts(name)).endswith(OUTPUT_FIX_SUFFIX)


def looks_non_colour(name: str) -> bool:
    """Return whether a topic name says depth, infrared or disparity (no leaf colour)."""
    words = {word.rstrip('0123456789') for part in _parts(name)
             for word in part.lower().replace('-', '_').split('_')}  # 'infra1' is 'infra'
    return any(word in words for word in NON_COLOUR_WORDS)


def select_topics(topics: Mapping[str, tuple[str | None, int]], image_topic: str | None = None,
                  fix_topic: str | None = None) -> tuple[TopicChoice, TopicChoice | None]:
    """Choose the image and fix topics from ``{name: (msgtype, count)}``.

    Named topics must exist with a suitable type; a name without ``/compressed`` also
    matches its compressed sub-topic when only that is recorded. Otherwise the image topic
    is the Image or CompressedImage topic with the most messages (raw wins a tie: it
    needs no decoding), leaving out the pipeline's own outputs and compressedDepth, and
    the fix topic is the NavSatFix topic with the most messages (none is fine), leaving
    out the classifier's own ``detections/fix``. An image topic whose name says depth,
    infrared or disparity is chosen only when no other has messages.
    """
    images = {name: TopicChoice(name, msgtype, count) for name, (msgtype, count) in
              topics.items() if msgtype in IMAGE_TYPES and 'compressedDepth' not in name}
    fixes = {name: TopicChoice(name, msgtype, count) for name, (msgtype, count) in
             topics.items() if msgtype == FIX_TYPE}
    input_fixes = {name: choice for name, choice in fixes.items() if not _is_output_fix(name)}
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
        image = max(candidates, key=lambda c: (
            c.count > 0 and not looks_non_colour(c.name), c.count,
            c.msgtype == 'sensor_msgs/msg/Image', c.name))
    if image.count == 0:
        raise ReplayError(f'image topic {image.name} has no messages')
    if fix_topic:
        if fix_topic not in fixes:
            raise ReplayError(f'fix topic {fix_topic} not in the bag or not NavSatFix; its '
                              f'topics: {listing or "none"}')
        fix = fixes[fix_topic]
    else:
        fix = (max(input_fixes.values(), key=lambda c: (c.count, c.name)) if input_fixes
               else None)
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


def read_messages(reader: Any, topic: str, kind: str, order: int) -> Iterator[BagMessage]:
    """Yield the messages of ``topic`` in log order; a corrupt chunk is a ReplayError."""
    connections = [c for c in reader.connections if c.topic == topic]
    messages = reader.messages(connections=connections)
    while True:
        try:
            _, log_ns, data = next(messages)
        except StopIteration:
            return
        except Exception as error:  # a corrupt chunk shows only when it is read
            raise ReplayError(f'cannot read bag {reader.path}: {type(error).__name__}: '
                              f'{one_line(error)}') from error
        yield BagMessage(int(log_ns), order, kind, bytes(data))


def stamp_key(typestore: Any, data: bytes, msgtype: str) -> tuple[int, int]:
    """Return (sec, nanosec) of the header stamp of a CDR message."""
    message = typestore.deserialize_cdr(data, msgtype)
    return int(message.header.stamp.sec), int(message.header.stamp.nanosec)
