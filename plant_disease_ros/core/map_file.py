"""The map file format: GeoJSON text sequences (RFC 8142) and FeatureCollections.

A run is recorded as a GeoJSON text sequence (``.geojsons``): every detection is one
record, ``0x1E`` + JSON + ``\\n``, appended, flushed and fsynced on its own, so a killed
recorder loses at most the record it was writing and every complete line stays valid.
The reader tolerates that truncated last record and skips (and counts) records that do
not parse. On save the sequence becomes a FeatureCollection (``.geojson``, RFC 7946),
written atomically.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass, field
import errno
import fcntl
import io
import json
import logging
import os
from pathlib import Path
from typing import Any, BinaryIO

from plant_disease_ros.core.atomic_files import fsync_directory, replacing
from plant_disease_ros.core.detections import (
    feature_position,
    feature_stamp_s,
    finite_number,
)
from plant_disease_ros.core.fix_buffer import (
    MAX_ABS_ALTITUDE_M,
    MAX_ABS_LATITUDE_DEG,
    MAX_ABS_LONGITUDE_DEG,
)

RECORD_SEPARATOR = b'\x1e'
GEOJSON_SEQ_SUFFIX = '.geojsons'
GEOJSON_SUFFIX = '.geojson'

_LOGGER = logging.getLogger(__name__)


def _reject_constant(name: str) -> Any:
    raise ValueError(f'{name} is not valid JSON')


# A detection Feature is 4 levels deep (properties, top_k, one entry). A deeper one is
# refused ('too_deep'): near Python's recursion limit, any later reader or writer of the
# record (json.dumps, a copy) would fail on it.
MAX_JSON_DEPTH = 32


def json_depth(value: Any, limit: int = MAX_JSON_DEPTH) -> int:
    """Return how deeply ``value`` nests lists and objects (a scalar is 0, ``{}`` is 1).

    Iterative, so it cannot itself run out of stack; it stops counting past ``limit``.
    """
    depth = 0
    stack = [(value, 1)]
    while stack:
        item, level = stack.pop()
        if isinstance(item, dict):
            children: Iterable[Any] = item.values()
        elif isinstance(item, list):
            children = item
        else:
            continue
        depth = max(depth, level)
        if depth > limit:
            break
        stack.extend((child, level + 1) for child in children)
    return depth


def parse_json(text: str | bytes) -> Any:
    """Parse strict JSON: ``NaN`` and ``Infinity`` are refused (RFC 8259 has neither).

    Text nested so deeply that the parser runs out of stack is a ValueError too.
    """
    try:
        return json.loads(text, parse_constant=_reject_constant)
    except RecursionError:
        raise ValueError('JSON nested too deeply to parse') from None


def _is_number(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool)


def _unreadable_number(feature: dict) -> bool:
    """Return whether a number the map reads from ``feature`` is not a finite float.

    ``confidence`` and the ``stamp`` (``sec`` + ``nanosec``) are read as floats: a JSON
    integer too large for one, or 1e400 (which parses to infinity), would make every
    reader of the record fail. Other types are tolerated: the readers take them as absent.
    """
    properties = feature['properties']
    confidence = properties.get('confidence')
    if _is_number(confidence) and finite_number(confidence) is None:
        return True
    stamp = properties.get('stamp')
    return (isinstance(stamp, dict)
            and all(isinstance(part, int) and not isinstance(part, bool)
                    for part in (stamp.get('sec'), stamp.get('nanosec', 0)))
            and feature_stamp_s(feature) is None)


def feature_rejection_reason(value: Any) -> str | None:
    """Return why ``value`` is not a usable detection Feature, or ``None`` when it is.

    Reasons: ``'not_an_object'``, ``'not_a_feature'`` (``type`` is not ``'Feature'``),
    ``'bad_geometry'`` (neither ``null`` nor a Point with 2 or 3 finite numbers in range:
    latitude within 90, longitude within 180 degrees, altitude within ``1e5`` m, the limit
    of a usable GPS fix), ``'bad_properties'`` (not an object, or a ``confidence`` or
    ``stamp`` number that is not a finite float, such as a 400-digit JSON integer),
    ``'too_deep'`` (lists and objects nested deeper than ``MAX_JSON_DEPTH`` levels).
    """
    if not isinstance(value, dict):
        return 'not_an_object'
    if json_depth(value) > MAX_JSON_DEPTH:
        return 'too_deep'
    if value.get('type') != 'Feature':
        return 'not_a_feature'
    if 'geometry' not in value:
        return 'bad_geometry'
    geometry = value['geometry']
    if geometry is not None:
        if not isinstance(geometry, dict) or geometry.get('type') != 'Point':
            return 'bad_geometry'
        coordinates = geometry.get('coordinates')
        if (not isinstance(coordinates, list) or len(coordinates) not in (2, 3)
                or not all(_is_number(item) for item in coordinates)):
            return 'bad_geometry'
        position = feature_position(value)
        if position is None:
            return 'bad_geometry'
        latitude, longitude, altitude = position
        if (abs(longitude) > MAX_ABS_LONGITUDE_DEG or abs(latitude) > MAX_ABS_LATITUDE_DEG
                or abs(altitude) > MAX_ABS_ALTITUDE_M):
            return 'bad_geometry'
    properties = value.get('properties')
    if properties is not None and not isinstance(properties, dict):
        return 'bad_properties'
    if properties is not None and _unreadable_number(value):
        return 'bad_properties'
    return None


def encode_record(feature: dict) -> bytes:
    """Return one RFC 8142 record: RS, compact JSON (UTF-8, no NaN), LF."""
    text = json.dumps(feature, separators=(',', ':'), ensure_ascii=False, allow_nan=False)
    return RECORD_SEPARATOR + text.encode('utf-8') + b'\n'


class RecordsFileBusy(OSError):
    """Another writer (a second recorder of the same run) holds the records file."""

    @classmethod
    def of(cls, path: str | Path) -> RecordsFileBusy:
        """Return the error for the records file ``path``."""
        return cls(errno.EBUSY, 'another process is writing it (a second recorder with the '
                   'same map_dir and run_name?)', str(path))


class GeoJsonSeqWriter:
    """Append features to a GeoJSON text sequence file, each record flushed and fsynced.

    An existing file is continued, never truncated. If it ends inside a record (the writer
    was killed mid-write) a line feed is written first, so that fragment stays a line of
    its own that readers skip instead of corrupting the next record. Where that line feed
    cannot be written now (a full disk), the writer opens all the same and says why in
    ``repair_error``: the line feed goes with the first append that succeeds, in the same
    write (see :meth:`repair`). The writer holds an exclusive lock on the file while it is
    open: two writers of one file (two recorders of the same run) would interleave, and a
    full disk's cut-back of one would cut away the other's records.
    """

    def __init__(self, path: str | Path) -> None:
        """Open (creating if needed) ``path`` for appending; RecordsFileBusy if locked.

        Other OSErrors of opening it (a read-only file system, a folder in its place)
        are raised; a line feed after a cut-off last record that cannot be written is
        not (see the class).
        """
        self.path = Path(path)
        self.records_written = 0
        # Whether the file ends in a cut-off record that still needs its line feed, and why
        # that could not be written yet (None: not tried, or done).
        self._line_feed_due = False
        self.repair_error: OSError | None = None
        # Unbuffered: a failed write leaves nothing behind in a buffer to be written later.
        self._handle: BinaryIO | None = open(self.path, 'ab', buffering=0)
        try:
            try:
                fcntl.flock(self._handle.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                raise RecordsFileBusy.of(self.path) from None
            except OSError:
                pass  # a file system without locks (some FUSE mounts): written unlocked
            end = self._handle.seek(0, os.SEEK_END)
            if end > 0:
                with open(self.path, 'rb') as reader:
                    reader.seek(-1, os.SEEK_END)
                    last_byte = reader.read(1)
                if last_byte != b'\n':
                    self._line_feed_due = True
                    self.repair()
            else:
                fsync_directory(self.path.parent)
        except BaseException:
            self.close()
            raise

    @property
    def closed(self) -> bool:
        """Return whether the writer has been closed."""
        return self._handle is None

    def identity(self) -> tuple[int, int]:
        """Return ``(st_dev, st_ino)`` of the open file; ValueError when closed.

        Compared with the file at ``path`` later, after this writer is closed, it tells
        whether the file there is still this one.
        """
        if self._handle is None:
            raise ValueError(f'{self.path} writer is closed')
        opened = os.fstat(self._handle.fileno())
        return opened.st_dev, opened.st_ino

    def replaced(self) -> bool:
        """Return whether the open file is no longer the one at ``path``.

        Its folder removed or renamed (a clean-up, storage unmounted and mounted again) or
        the file replaced: appends would go on into a file nobody can read, and a save
        would read the path's. Raises ValueError when the writer is closed.
        """
        if self._handle is None:
            raise ValueError(f'{self.path} writer is closed')
        opened = os.fstat(self._handle.fileno())
        if opened.st_nlink == 0:
            return True
        try:
            named = os.stat(self.path)
        except OSError:
            return True
        return (named.st_dev, named.st_ino) != (opened.st_dev, opened.st_ino)

    def repair(self) -> bool:
        """Write the line feed a cut-off last record still needs; return whether it is done.

        True at once when none is needed. A failure (a full disk) is kept in
        ``repair_error`` and leaves the file as it was; nothing is raised.
        """
        if not self._line_feed_due:
            return True
        try:
            self._write(b'')
        except OSError as error:
            self.repair_error = error
            return False
        return True

    def _write(self, data: bytes) -> None:
        """Append ``data`` whole and durable, or raise OSError with the file as it was.

        A full disk (ENOSPC) or a quota can let part of ``data`` through before the write
        fails, and a delayed-allocation file system may only fail at fsync: either way the
        file is cut back to its length before the write, so it never ends in half a record.
        The line feed a cut-off last record still needs (see ``repair_error``) goes first,
        in the same write.
        """
        if self._handle is None:
            raise ValueError(f'{self.path} writer is closed')
        if self._line_feed_due:
            data = b'\n' + data
        descriptor = self._handle.fileno()
        length = os.fstat(descriptor).st_size
        try:
            view = memoryview(data)
            while view:
                written = os.write(descriptor, view)
                view = view[written:]
            os.fsync(descriptor)
        except OSError:
            self._cut_back(descriptor, length)
            raise
        self._line_feed_due = False
        self.repair_error = None

    def _cut_back(self, descriptor: int, length: int) -> None:
        """Truncate the file to ``length`` bytes after a failed write (best effort)."""
        try:
            if os.fstat(descriptor).st_size > length:
                os.ftruncate(descriptor, length)
                os.fsync(descriptor)
        except OSError as error:
            # A read-only remount refuses this too, but then nothing was written either.
            _LOGGER.warning('%s: cannot cut a failed write back: %s', self.path, error)

    def append(self, feature: dict) -> None:
        """Append one feature as one record and make it durable before returning."""
        # Encode first: a feature that cannot be encoded must not leave a partial record.
        self.append_encoded(encode_record(feature))

    def append_encoded(self, record: bytes) -> None:
        """Append one record made by :func:`encode_record`, durable before returning.

        Raises OSError (full disk, read-only file system) with the file left as it was.
        """
        self._write(record)
        self.records_written += 1

    def append_encoded_many(self, records: Sequence[bytes]) -> None:
        """Append several encoded records with one write and one fsync, all or none.

        For a backlog (records held while the disk was full): an fsync each would block
        the writer for minutes on an SD card. Raises OSError with the file as it was.
        """
        if records:
            self._write(b''.join(records))
            self.records_written += len(records)

    def close(self) -> None:
        """Close the file (idempotent)."""
        if self._handle is not None:
            self._handle.close()
            self._handle = None

    def __enter__(self) -> GeoJsonSeqWriter:
        """Return the writer itself."""
        return self

    def __exit__(self, *exc_info: object) -> None:
        """Close the writer."""
        self.close()


@dataclass
class SeqReadStats:
    """What reading a GeoJSON text sequence found besides its features."""

    records: int = 0              # features returned
    skipped: int = 0              # complete records that did not parse or are not Features
    truncated_tail: bool = False  # the last record was incomplete (a killed writer)
    # A FeatureCollection's features that are not detections (polygons of a disease grid,
    # another layer): left out and counted, by reason.
    not_detections: dict[str, int] = field(default_factory=dict)
    cut_collection: bool = False  # a FeatureCollection cut short: its whole lines were read


def _raw_records(handle: BinaryIO) -> Iterator[tuple[bytes, bool]]:
    """Yield ``(record bytes, is_last)`` split on RS; text before the first RS is a record."""
    pending = b''
    started = False
    for line in handle:
        parts = line.split(RECORD_SEPARATOR)
        pending += parts[0]
        for part in parts[1:]:
            if started or pending.strip():
                yield pending, False
            started = True
            pending = part
    yield pending, True


def iter_geojson_seq(path: str | Path, stats: SeqReadStats | None = None) -> Iterator[dict]:
    """Yield the Features of a GeoJSON text sequence file in file order, streaming.

    A record that does not parse, or parses to something that is not a Feature, is skipped
    and counted in ``stats.skipped``; an incomplete last record (no final line feed and
    not parseable) is dropped and flagged in ``stats.truncated_tail``. Lines without RS
    (newline-delimited GeoJSON) are read too.
    """
    stats = stats if stats is not None else SeqReadStats()
    with open(path, 'rb') as handle:
        for raw, is_last in _raw_records(handle):
            text = raw.decode('utf-8', errors='replace')
            values, failures, tail_failed = _decode_values(text)
            stats.skipped += failures
            if tail_failed:
                if is_last and not text.endswith('\n'):
                    stats.truncated_tail = True
                else:
                    stats.skipped += 1
            for value in values:
                if feature_rejection_reason(value) is None:
                    stats.records += 1
                    yield value
                else:
                    stats.skipped += 1


_DECODER = json.JSONDecoder(parse_constant=_reject_constant)


def _decode_values(text: str) -> tuple[list[Any], int, bool]:
    """Decode the JSON texts in one record: ``(values, failed lines, last part failed)``.

    A record normally holds one JSON text; newline-delimited texts without RS are read
    too. What does not parse is skipped up to the next line feed.
    """
    values: list[Any] = []
    failures = 0
    position = 0
    while True:
        while position < len(text) and text[position] in ' \t\r\n':
            position += 1
        if position >= len(text):
            return values, failures, False
        try:
            value, position = _DECODER.raw_decode(text, position)
        except (ValueError, RecursionError):
            newline = text.find('\n', position)
            if newline < 0:
                return values, failures, True
            failures += 1
            position = newline + 1
            continue
        values.append(value)


def tail_geojson_seq(path: str | Path, count: int, max_bytes: int = 4 << 20) -> list[dict]:
    """Return up to the last ``count`` Features of a GeoJSON text sequence, oldest first.

    Only the last ``max_bytes`` of the file are read (a day's run may be hundreds of
    megabytes); the record cut by that start is left out, as are records that do not
    parse. A file that cannot be read gives ``[]``.
    """
    try:
        with open(path, 'rb') as handle:
            size = handle.seek(0, 2)
            start = max(size - max_bytes, 0)
            handle.seek(start)
            data = handle.read()
    except OSError:
        return []
    if start > 0:
        first = data.find(RECORD_SEPARATOR)
        data = data[first:] if first >= 0 else b''
    features: list[dict] = []
    for raw, _ in _raw_records(io.BytesIO(data)):
        values, _, _ = _decode_values(raw.decode('utf-8', errors='replace'))
        features.extend(value for value in values if feature_rejection_reason(value) is None)
    return features[-count:] if count > 0 else []


def scan_geojson_seq(path: str | Path) -> tuple[list[dict], SeqReadStats]:
    """Return the features of a GeoJSON text sequence file and what was skipped."""
    stats = SeqReadStats()
    features = list(iter_geojson_seq(path, stats))
    return features, stats


def read_geojson_seq(path: str | Path) -> list[dict]:
    """Return the features of a GeoJSON text sequence; skips an incomplete last record.

    Records that do not parse are skipped and their number logged as a warning; use
    :func:`scan_geojson_seq` to get the counts.
    """
    features, stats = scan_geojson_seq(path)
    if stats.skipped:
        _LOGGER.warning('%s: skipped %d record(s) that did not parse as a GeoJSON Feature',
                        path, stats.skipped)
    return features


def feature_collection(features: Iterable[dict]) -> dict:
    """Return a GeoJSON FeatureCollection of ``features``."""
    return {'type': 'FeatureCollection', 'features': list(features)}


def compact_json(value: Any) -> str:
    """Return ``value`` as the compact JSON the GeoJSON topics carry (ASCII, no NaN).

    No spaces after separators, non-ASCII characters escaped, ValueError for a NaN or an
    infinity (not JSON).
    """
    return json.dumps(value, separators=(',', ':'), allow_nan=False)


def collection_text(features: Iterable[bytes]) -> bytes:
    """Return the compact FeatureCollection of features already encoded (``compact_json``).

    The same bytes as ``compact_json(feature_collection(...))`` of the features' dicts:
    a list is its items' texts joined by commas.
    """
    return _COLLECTION_HEAD + b','.join(features) + b']}'


def read_features(path: str | Path, stats: SeqReadStats | None = None) -> list[dict]:
    """Read features from a ``.geojson`` (FeatureCollection or Feature) or a sequence file.

    The format is told by the content, not the suffix: a file starting with RS, or one
    that is not a single JSON text, is read as a text sequence. With ``stats`` what a
    sequence reader skipped is counted there instead of logged, and so are the features
    of a FeatureCollection that are not detections (``not_detections``). A collection cut
    short (copied while written, a full disk) in the one-feature-a-line form
    :func:`write_feature_collection` writes is read line by line (``cut_collection``).
    """
    path = Path(path)
    with open(path, 'rb') as handle:
        head = handle.read(4096).lstrip()
    if not head.startswith(RECORD_SEPARATOR):
        try:
            with open(path, 'rb') as handle:
                value = parse_json(handle.read())
        except (ValueError, UnicodeDecodeError):
            value = None
        if isinstance(value, dict) and value.get('type') == 'FeatureCollection':
            features = value.get('features')
            if not isinstance(features, list):
                raise ValueError(f'{path}: FeatureCollection without a features list')
            kept = []
            for feature in features:
                reason = feature_rejection_reason(feature)
                if reason is None:
                    kept.append(feature)
                elif stats is not None:
                    stats.not_detections[reason] = stats.not_detections.get(reason, 0) + 1
            if stats is not None:
                stats.records = len(kept)
            return kept
        if value is None and head.startswith(_COLLECTION_HEAD):
            return _read_cut_collection(path, stats)
        if isinstance(value, dict) and feature_rejection_reason(value) is None:
            return [value]
        if value is not None:
            raise ValueError(f'{path}: neither a GeoJSON Feature nor a FeatureCollection')
    if stats is None:
        return read_geojson_seq(path)
    return list(iter_geojson_seq(path, stats))


# The first line write_feature_collection writes; each feature follows on a line of its own.
_COLLECTION_HEAD = b'{"type":"FeatureCollection","features":['


def _read_cut_collection(path: Path, stats: SeqReadStats | None) -> list[dict]:
    """Read the whole feature lines of a FeatureCollection cut short (see read_features)."""
    stats = stats if stats is not None else SeqReadStats()
    stats.cut_collection = True
    features = []
    with open(path, 'rb') as handle:
        lines = handle.read().split(b'\n')[1:]
    for line in lines:
        line = line.strip().rstrip(b',')
        if not line or line in (b']}', b']'):
            continue
        try:
            value = parse_json(line)
        except (ValueError, UnicodeDecodeError):
            stats.truncated_tail = True  # the line the cut went through
            continue
        if feature_rejection_reason(value) is None:
            features.append(value)
        else:
            stats.skipped += 1
    stats.records = len(features)
    return features


def _atomic_write(path: Path, write: Any) -> Path:
    """Write through ``write(handle)`` (text) into ``path`` atomically (temporary + rename)."""
    with replacing(path) as temporary:
        with open(temporary, 'x', encoding='utf-8') as handle:
            write(handle)
    return Path(path)


def write_json_atomic(path: str | Path, value: Any) -> Path:
    """Write ``value`` as indented JSON to ``path`` atomically (temporary file + rename)."""
    def write(handle: Any) -> None:
        json.dump(value, handle, indent=2, ensure_ascii=False, allow_nan=False)
        handle.write('\n')

    return _atomic_write(Path(path), write)


def write_feature_collection(path: str | Path, features: Iterable[dict]) -> int:
    """Write ``features`` as a FeatureCollection to ``path`` atomically; return the count.

    Features are streamed one per line, so a long run never needs all of them in memory.
    """
    count = 0

    def write(handle: Any) -> None:
        nonlocal count
        handle.write('{"type":"FeatureCollection","features":[')
        for feature in features:
            handle.write(',\n' if count else '\n')
            handle.write(json.dumps(feature, separators=(',', ':'), ensure_ascii=False,
                                    allow_nan=False))
            count += 1
        handle.write('\n]}\n')

    _atomic_write(Path(path), write)
    return count
