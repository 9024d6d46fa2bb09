"""Read the input bag: open it, choose its image and fix topics, and stream its messages.

The bag (a rosbag2 folder, or a single ``.mcap`` or ``.db3`` file) is read with the
``rosbags`` library, so no rosbag2 install is needed; messages stay CDR bytes.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path, PurePath
import re
import shutil
import sys
import tempfile
from typing import Any

from plant_disease_ros.tools.replay.options import one_line, ReplayError

IMAGE_TYPES = {
    'sensor_msgs/msg/Image': 'raw',
    'sensor_msgs/msg/CompressedImage': 'compressed',
}
FIX_TYPE = 'sensor_msgs/msg/NavSatFix'
# A storage file a file-compressed bag compressed whole ('rec_0.mcap.zstd').
_ZSTD_SUFFIX = '.zstd'
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


def open_bag(path: Path, display_path: Path | None = None) -> Any:
    """Open a rosbag2 folder or a .mcap/.db3 file; raise ReplayError with one line.

    The error names ``display_path`` (default ``path``): the user's bag when ``path`` is
    its decompressed copy (see :func:`readable_bag`), a folder gone when the user reads it.
    """
    from rosbags.rosbag2 import Reader, ReaderError

    path = Path(path)
    shown = Path(display_path) if display_path is not None else path
    if not path.exists():
        raise ReplayError(f'bag not found: {shown}')
    if path.is_dir() and not (path / 'metadata.yaml').is_file():
        raise ReplayError(f'cannot read bag {shown}: a folder without metadata.yaml is not a '
                          f'rosbag2 bag{_no_metadata_hint(shown)}')
    if path.is_file() and path.suffix.lower() == _ZSTD_SUFFIX:
        raise ReplayError(
            f'cannot read bag {shown}: a zstd-compressed storage file (of a file-compressed '
            'bag; its metadata.yaml says so, and without one the replay cannot): '
            f'`zstd -d {shown}` decompresses it, then give {shown.with_suffix("")}')
    try:
        reader = Reader(path)
        reader.open()
    except (ReaderError, OSError, ValueError, KeyError, EOFError) as error:
        raise ReplayError(f'cannot read bag {shown}: {one_line(error).rstrip(".")}'
                          f'{_cut_short_hint(path, shown)}') from error
    except Exception as error:  # corrupt files raise all sorts of errors
        raise ReplayError(f'cannot read bag {shown}: corrupt or not a rosbag2 bag '
                          f'({type(error).__name__}: {one_line(error)})') from error
    return reader


def _zstd() -> Any:
    """Return the zstd module rosbags reads with (``compression.zstd`` from Python 3.14)."""
    if sys.version_info >= (3, 14):
        from compression import zstd
    else:
        from backports import zstd
    return zstd


@contextmanager
def readable_bag(path: Path) -> Iterator[Path]:
    """Yield the path to read ``path`` from: itself, or a decompressed copy, removed after.

    rosbags decompresses a file-compressed bag (``compression_mode: file``, each storage
    file zstd-compressed whole) into a new temporary folder on every open; a replay opens
    its bag more than once (topics, frames, fixes at the same time). So such a bag is
    decompressed here once, into a temporary bag folder of the same storage files,
    uncompressed, with its metadata saying so. Anything else (a bare file, a
    per-message-compressed or uncompressed bag, metadata that cannot be read: open_bag
    says why) is read where it is. ReplayError when the decompression fails.
    """
    path = Path(path)
    metadata = _file_compressed_metadata(path)
    if metadata is None:
        yield path
        return
    from ruamel.yaml import YAML

    folder = Path(tempfile.mkdtemp(prefix=f'replay-{path.name}-'))
    try:
        names = []
        try:
            zstd = _zstd()
            for relative in metadata['relative_file_paths']:
                source = path / PurePath(relative).name
                names.append(source.stem)  # 'x.mcap.zstd' -> 'x.mcap'
                with source.open('rb') as raw, zstd.open(raw, 'rb') as compressed, \
                        (folder / source.stem).open('wb') as plain:
                    shutil.copyfileobj(compressed, plain)
        except Exception as error:  # a corrupt or short file, a full disk
            raise ReplayError(f'cannot read bag {path}: cannot decompress it into {folder}: '
                              f'{type(error).__name__}: {one_line(error)}') from error
        metadata['compression_mode'] = ''
        metadata['compression_format'] = ''
        metadata['relative_file_paths'] = names
        for entry in metadata.get('files') or []:
            if isinstance(entry, dict) and 'path' in entry:
                entry['path'] = PurePath(str(entry['path'])).stem
        YAML(typ='safe').dump({'rosbag2_bagfile_information': metadata},
                              folder / 'metadata.yaml')
        yield folder
    finally:
        shutil.rmtree(folder, ignore_errors=True)


def _file_compressed_metadata(path: Path) -> dict | None:
    """Return the bag information of a file-compressed bag folder, else None."""
    if not (path.is_dir() and (path / 'metadata.yaml').is_file()):
        return None
    try:
        from ruamel.yaml import YAML

        document = YAML(typ='safe').load((path / 'metadata.yaml').read_text(encoding='utf-8'))
        metadata = document['rosbag2_bagfile_information']
        mode = str(metadata.get('compression_mode') or '').lower()
        compressor = str(metadata.get('compression_format') or '').lower()
        files = metadata['relative_file_paths']
    except Exception:  # open_bag reports what is wrong with it
        return None
    if mode != 'file' or compressor != 'zstd' or not isinstance(files, list):
        return None
    return dict(metadata)


def _parts(name: str) -> list[str]:
    """Return a topic's name parts without a transport suffix ('/compressed')."""
    parts = [part for part in name.strip('/').split('/') if part]
    if parts and parts[-1] == 'compressed':
        parts = parts[:-1]
    return parts


def _no_metadata_hint(folder: Path) -> str:
    """Return advice for a folder of storage files without metadata.yaml, or ''.

    A killed `ros2 bag record` leaves its .mcap (or .db3) file without the metadata.yaml
    it writes at the end: the file alone is a bag the replay reads. A split recording
    leaves one file per split (all of them named: the replay reads one at a time), and a
    file-compressed one has zstd-compressed the splits it closed (``rec_0.mcap.zstd``):
    ``zstd -d`` makes them files the replay reads.
    """
    # Any case of the suffixes: a recording copied through a FAT stick may be upper case.
    files = sorted((entry for entry in folder.iterdir() if entry.is_file()
                    and entry.name.lower().endswith(('.mcap', '.db3', '.mcap.zstd',
                                                     '.db3.zstd'))),
                   key=lambda entry: _natural_key(entry.name))
    if not files:
        return ''
    shown = files if len(files) <= 6 else files[:5]
    named = ', '.join(str(entry) for entry in shown) + (
        f' and {len(files) - len(shown)} more' if len(files) > len(shown) else '')
    compressed = [entry for entry in files if entry.suffix.lower() == _ZSTD_SUFFIX]
    hint = f'; it holds {named} (a killed recording writes no metadata.yaml): '
    if len(files) == 1 and not compressed:
        hint += 'give the file instead'
    else:
        hint += ('a split recording has one file per split: replay each file (each with '
                 'its own --out)' if len(files) > 1 else 'replay the file')
    if compressed:
        hint += (f'; {"its .zstd files are" if len(compressed) > 1 else "the .zstd file is"} '
                 'zstd-compressed: `zstd -d FILE.zstd` first, then give FILE')
    if any(entry.name.lower().endswith(('.mcap', '.mcap.zstd')) for entry in files):
        hint += ('; if one does not open, `mcap recover IN.mcap -o OUT.mcap` rebuilds its '
                 'summary')
    return hint


def _natural_key(name: str) -> list[object]:
    """Return a sort key that puts rec_2 before rec_10."""
    return [int(part) if part.isdigit() else part for part in re.split(r'(\d+)', name)]


def _cut_short_hint(path: Path, shown: Path | None = None) -> str:
    """Return advice for an MCAP bag that does not open: often a recording cut short.

    ``path`` is what was opened, ``shown`` the user's bag (default ``path``): when that is
    a file-compressed bag, ``path`` its decompressed copy, its zstd files are named, to be
    decompressed before ``mcap recover``.
    """
    mcap = path.suffix == '.mcap' or (path.is_dir() and any(path.glob('*.mcap')))
    if not mcap:
        return ''
    advice = ('; an MCAP file whose recording was cut short (power loss, a killed recorder) '
              'has no summary at its end: ')
    metadata = _file_compressed_metadata(shown) if shown is not None else None
    if metadata is not None:
        files = [str(shown / PurePath(str(relative)).name)
                 for relative in metadata['relative_file_paths']
                 if str(relative).endswith('.mcap.zstd')]
        if files:
            named = ' '.join(files[:3]) + (f' (and {len(files) - 3} more)'
                                           if len(files) > 3 else '')
            return (advice + f'`zstd -d {named}` decompresses it (its files are zstd '
                    'compressed whole), then `mcap recover IN.mcap -o OUT.mcap` rebuilds one '
                    '(the recovered file alone is a bag the replay reads)')
    return advice + '`mcap recover IN.mcap -o OUT.mcap` rebuilds one'


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


def other_cameras(topics: Mapping[str, tuple[str | None, int]], image: str) -> list[str]:
    """Return the colour camera topics with messages that are not the camera of ``image``.

    A bag of a robot with two cameras: a replay plays one, the others would be left out
    without a word. The raw and compressed topics of one camera count as one; the
    pipeline's own outputs, depth, infrared and disparity streams are not cameras here.
    """
    camera = _parts(image)
    return sorted(name for name, (msgtype, count) in topics.items()
                  if msgtype in IMAGE_TYPES and count > 0 and 'compressedDepth' not in name
                  and not _is_output_image(name) and not looks_non_colour(name)
                  and _parts(name) != camera)


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


def inspect_bag(path: Path, image_topic: str | None = None, fix_topic: str | None = None,
                display_path: Path | None = None) -> BagSelection:
    """Open ``path``, choose the topics and return the selection (raises ReplayError).

    The selection's path, and the errors, name ``display_path`` (default ``path``; see
    :func:`open_bag`).
    """
    reader = open_bag(path, display_path)
    try:
        topics = {name: (info.msgtype, info.msgcount) for name, info in reader.topics.items()}
        image, fix = select_topics(topics, image_topic, fix_topic)
        return BagSelection(Path(display_path if display_path is not None else path), image,
                            fix, reader.start_time, reader.end_time, topics)
    finally:
        reader.close()


def read_messages(reader: Any, topic: str, kind: str, order: int,
                  display_path: Path | None = None) -> Iterator[BagMessage]:
    """Yield the messages of ``topic`` in log order; a corrupt chunk is a ReplayError.

    The error names ``display_path`` (default the reader's path; see :func:`open_bag`).
    """
    shown = display_path if display_path is not None else reader.path
    connections = [c for c in reader.connections if c.topic == topic]
    messages = reader.messages(connections=connections)
    while True:
        try:
            _, log_ns, data = next(messages)
        except StopIteration:
            return
        except Exception as error:  # a corrupt chunk shows only when it is read
            raise ReplayError(f'cannot read bag {shown}: {type(error).__name__}: '
                              f'{one_line(error)}') from error
        yield BagMessage(int(log_ns), order, kind, bytes(data))


def stamp_key(typestore: Any, data: bytes, msgtype: str) -> tuple[int, int]:
    """Return (sec, nanosec) of the header stamp of a CDR message."""
    message = typestore.deserialize_cdr(data, msgtype)
    return int(message.header.stamp.sec), int(message.header.stamp.nanosec)
