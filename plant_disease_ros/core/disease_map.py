"""The disease map: GeoJSON text sequences (RFC 8142), collections, summaries and grid cells.

A run is recorded as a GeoJSON text sequence (``.geojsons``): every detection is one
record, ``0x1E`` + JSON + ``\\n``, appended, flushed and fsynced on its own, so a killed
recorder loses at most the record it was writing and every complete line stays valid.
The reader tolerates that truncated last record and skips (and counts) records that do
not parse. On save the sequence becomes a FeatureCollection (``.geojson``, RFC 7946),
written atomically, and a summary.

Cells are squares of ``cell_size_m`` in the local ENU frame of an origin: a given datum,
or else the first located feature. Cell ``(i, j)`` covers east in ``[i, i+1) * size`` and
north in ``[j, j+1) * size``.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
import json
import logging
import math
import os
from pathlib import Path
import secrets
from typing import Any, BinaryIO

from plant_disease_ros.core.detections import (
    feature_confidence,
    feature_healthy,
    feature_label,
    feature_position,
    feature_stamp_s,
)
from plant_disease_ros.core.geodesy import geodetic_to_enu

RECORD_SEPARATOR = b'\x1e'
GEOJSON_SEQ_SUFFIX = '.geojsons'
GEOJSON_SUFFIX = '.geojson'

Origin = tuple[float, float, float]  # (latitude deg, longitude deg, altitude m)
CellKey = tuple[int, int]

_LOGGER = logging.getLogger(__name__)


def _reject_constant(name: str) -> Any:
    raise ValueError(f'{name} is not valid JSON')


def parse_json(text: str | bytes) -> Any:
    """Parse strict JSON: ``NaN`` and ``Infinity`` are refused (RFC 8259 has neither)."""
    return json.loads(text, parse_constant=_reject_constant)


def feature_rejection_reason(value: Any) -> str | None:
    """Return why ``value`` is not a usable detection Feature, or ``None`` when it is.

    Reasons: ``'not_an_object'``, ``'not_a_feature'`` (``type`` is not ``'Feature'``),
    ``'bad_geometry'`` (neither ``null`` nor a Point with 2 or 3 finite numbers in range),
    ``'bad_properties'`` (not an object).
    """
    if not isinstance(value, dict):
        return 'not_an_object'
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
                or any(isinstance(item, bool) or not isinstance(item, (int, float))
                       for item in coordinates)):
            return 'bad_geometry'
        if feature_position(value) is None:
            return 'bad_geometry'
        if abs(coordinates[0]) > 180.0 or abs(coordinates[1]) > 90.0:
            return 'bad_geometry'
    properties = value.get('properties')
    if properties is not None and not isinstance(properties, dict):
        return 'bad_properties'
    return None


def encode_record(feature: dict) -> bytes:
    """Return one RFC 8142 record: RS, compact JSON (UTF-8, no NaN), LF."""
    text = json.dumps(feature, separators=(',', ':'), ensure_ascii=False, allow_nan=False)
    return RECORD_SEPARATOR + text.encode('utf-8') + b'\n'


def _fsync_directory(directory: Path) -> None:
    """Make a new or renamed directory entry durable (a no-op where unsupported)."""
    try:
        descriptor = os.open(directory, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(descriptor)
    except OSError:
        pass
    finally:
        os.close(descriptor)


class GeoJsonSeqWriter:
    """Append features to a GeoJSON text sequence file, each record flushed and fsynced.

    An existing file is continued, never truncated. If it ends inside a record (the writer
    was killed mid-write) a line feed is written first, so that fragment stays a line of
    its own that readers skip instead of corrupting the next record.
    """

    def __init__(self, path: str | Path) -> None:
        """Open (creating if needed) ``path`` for appending."""
        self.path = Path(path)
        self.records_written = 0
        self._handle: BinaryIO | None = open(self.path, 'ab')
        if self._handle.tell() > 0:
            with open(self.path, 'rb') as reader:
                reader.seek(-1, os.SEEK_END)
                last_byte = reader.read(1)
            if last_byte != b'\n':
                self._write(b'\n')
        else:
            _fsync_directory(self.path.parent)

    @property
    def closed(self) -> bool:
        """Return whether the writer has been closed."""
        return self._handle is None

    def _write(self, data: bytes) -> None:
        if self._handle is None:
            raise ValueError(f'{self.path} writer is closed')
        self._handle.write(data)
        self._handle.flush()
        os.fsync(self._handle.fileno())

    def append(self, feature: dict) -> None:
        """Append one feature as one record and make it durable before returning."""
        # Encode first: a feature that cannot be encoded must not leave a partial record.
        self._write(encode_record(feature))
        self.records_written += 1

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
        except ValueError:
            newline = text.find('\n', position)
            if newline < 0:
                return values, failures, True
            failures += 1
            position = newline + 1
            continue
        values.append(value)


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


def read_features(path: str | Path, stats: SeqReadStats | None = None) -> list[dict]:
    """Read features from a ``.geojson`` (FeatureCollection or Feature) or a sequence file.

    The format is told by the content, not the suffix: a file starting with RS, or one
    that is not a single JSON text, is read as a text sequence. With ``stats`` what a
    sequence reader skipped is counted there instead of logged.
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
            return [feature for feature in features if feature_rejection_reason(feature)
                    is None]
        if isinstance(value, dict) and feature_rejection_reason(value) is None:
            return [value]
        if value is not None:
            raise ValueError(f'{path}: neither a GeoJSON Feature nor a FeatureCollection')
    if stats is None:
        return read_geojson_seq(path)
    return list(iter_geojson_seq(path, stats))


def _atomic_write(path: Path, write: Any) -> Path:
    """Write through ``write(handle)`` into a temporary file, fsync, rename over ``path``."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    temporary = path.parent / f'.{path.name}.{os.getpid()}.{secrets.token_hex(4)}.tmp'
    # os.open applies the umask, so the result gets the permissions of a plain new file.
    descriptor = os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o666)
    try:
        with os.fdopen(descriptor, 'w', encoding='utf-8') as handle:
            write(handle)
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(temporary, path)
    except BaseException:
        try:
            os.unlink(temporary)
        except OSError:
            pass
        raise
    _fsync_directory(path.parent)
    return path


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


class LocalGrid:
    """Square cells of ``cell_size_m`` in the ENU frame of ``origin`` (else first position)."""

    def __init__(self, cell_size_m: float, origin: Origin | None = None) -> None:
        """Create the grid; without ``origin`` the first located position becomes it."""
        if not (math.isfinite(cell_size_m) and cell_size_m > 0.0):
            raise ValueError(f'cell_size_m must be > 0, got {cell_size_m}')
        self.cell_size_m = float(cell_size_m)
        self.origin: Origin | None = tuple(origin) if origin is not None else None

    def enu(self, feature: dict) -> tuple[float, float, float] | None:
        """Return the feature's ENU position (m), or ``None`` when it has no geometry."""
        position = feature_position(feature)
        if position is None:
            return None
        if self.origin is None:
            self.origin = position
        return geodetic_to_enu(*position, *self.origin)

    def cell_of(self, east: float, north: float) -> CellKey:
        """Return the key of the cell holding ENU ``east, north``."""
        return (math.floor(east / self.cell_size_m), math.floor(north / self.cell_size_m))

    def centre(self, key: CellKey) -> tuple[float, float]:
        """Return the ENU east, north (m) of the centre of cell ``key``."""
        return ((key[0] + 0.5) * self.cell_size_m, (key[1] + 0.5) * self.cell_size_m)


@dataclass
class Cell:
    """The detections aggregated in one grid cell."""

    key: CellKey
    centre_e: float
    centre_n: float
    count: int = 0
    max_confidence: float = 0.0
    label: str = ''                    # the label of the most confident detection
    healthy: bool = True               # the most confident detection is healthy
    diseased_count: int = 0
    label_counts: dict[str, int] = field(default_factory=dict)

    @property
    def majority_label(self) -> str:
        """Return the most frequent label (the first seen on a tie)."""
        if not self.label_counts:
            return self.label
        return max(self.label_counts, key=self.label_counts.__getitem__)


class CellAggregator:
    """Aggregate located detections per grid cell: count, max confidence and its label."""

    def __init__(self, cell_size_m: float, origin: Origin | None = None) -> None:
        """Create an empty aggregator; without ``origin`` the first located feature is it."""
        self.grid = LocalGrid(cell_size_m, origin)
        self._cells: dict[CellKey, Cell] = {}

    @property
    def origin(self) -> Origin | None:
        """Return the ENU origin (``None`` until a datum or a located feature gives one)."""
        return self.grid.origin

    @property
    def cell_size_m(self) -> float:
        """Return the cell edge length in metres."""
        return self.grid.cell_size_m

    def __len__(self) -> int:
        """Return the number of cells with detections."""
        return len(self._cells)

    def add(self, feature: dict) -> Cell | None:
        """Add one detection; return its updated cell, or ``None`` when it has no position."""
        enu = self.grid.enu(feature)
        if enu is None:
            return None
        key = self.grid.cell_of(enu[0], enu[1])
        cell = self._cells.get(key)
        if cell is None:
            centre_e, centre_n = self.grid.centre(key)
            cell = Cell(key=key, centre_e=centre_e, centre_n=centre_n)
            self._cells[key] = cell
        label = feature_label(feature)
        confidence = feature_confidence(feature)
        healthy = feature_healthy(feature)
        cell.count += 1
        cell.label_counts[label] = cell.label_counts.get(label, 0) + 1
        if not healthy:
            cell.diseased_count += 1
        if cell.count == 1 or confidence > cell.max_confidence:
            cell.max_confidence = confidence
            cell.label = label
            cell.healthy = healthy
        return cell

    def cells(self) -> list[Cell]:
        """Return a snapshot of the cells in the order they were first filled."""
        return [
            Cell(key=cell.key, centre_e=cell.centre_e, centre_n=cell.centre_n,
                 count=cell.count, max_confidence=cell.max_confidence, label=cell.label,
                 healthy=cell.healthy, diseased_count=cell.diseased_count,
                 label_counts=dict(cell.label_counts))
            for cell in self._cells.values()
        ]


class MapSummary:
    """Accumulate the summary of a run one detection at a time (see :func:`summarize`)."""

    def __init__(self, cell_size_m: float, origin: Origin | None = None) -> None:
        """Create an empty summary over cells of ``cell_size_m`` from ``origin``."""
        self.grid = LocalGrid(cell_size_m, origin)
        self.detections = 0
        self.located = 0
        self.per_label: Counter[str] = Counter()
        self.fix_status: Counter[str] = Counter()
        self.diseased_detections = 0
        self.cells: set[CellKey] = set()
        self.diseased_cells: set[CellKey] = set()
        self.diseased_cells_per_label: dict[str, set[CellKey]] = {}
        self.first_stamp_s: float | None = None
        self.last_stamp_s: float | None = None

    def add(self, feature: dict) -> None:
        """Count one detection feature."""
        self.detections += 1
        label = feature_label(feature)
        self.per_label[label] += 1
        properties = feature.get('properties') or {}
        status = properties.get('fix_status')
        self.fix_status[status if isinstance(status, str) else 'unknown'] += 1
        healthy = feature_healthy(feature)
        if not healthy:
            self.diseased_detections += 1
        stamp = feature_stamp_s(feature)
        if stamp is not None:
            self.first_stamp_s = stamp if self.first_stamp_s is None else min(
                self.first_stamp_s, stamp)
            self.last_stamp_s = stamp if self.last_stamp_s is None else max(
                self.last_stamp_s, stamp)
        enu = self.grid.enu(feature)
        if enu is None:
            return
        self.located += 1
        key = self.grid.cell_of(enu[0], enu[1])
        self.cells.add(key)
        if not healthy:
            self.diseased_cells.add(key)
            self.diseased_cells_per_label.setdefault(label, set()).add(key)

    def as_dict(self) -> dict:
        """Return the summary as a JSON-ready dict."""
        origin = self.grid.origin
        return {
            'detections': self.detections,
            'located': self.located,
            'unlocated': self.detections - self.located,
            'detections_per_label': dict(sorted(self.per_label.items())),
            'healthy_detections': self.detections - self.diseased_detections,
            'diseased_detections': self.diseased_detections,
            'cell_size_m': self.grid.cell_size_m,
            'cells': len(self.cells),
            'diseased_cells': len(self.diseased_cells),
            'diseased_cells_per_label': {
                label: len(keys) for label, keys in sorted(self.diseased_cells_per_label.items())
            },
            'fix_status': dict(sorted(self.fix_status.items())),
            'origin': None if origin is None else {
                'latitude': origin[0], 'longitude': origin[1], 'altitude': origin[2]},
            'first_stamp_s': self.first_stamp_s,
            'last_stamp_s': self.last_stamp_s,
        }


def summarize(features: Iterable[dict], cell_size_m: float,
              origin: Origin | None = None) -> dict:
    """Summarise detections: per label, diseased cells per label, located and unlocated.

    Cells are ``cell_size_m`` squares in the ENU frame of ``origin`` (latitude, longitude,
    altitude), or of the first located feature when ``origin`` is ``None``. A cell counts
    as diseased for a label when at least one detection of that (non-healthy) label lies
    in it.
    """
    summary = MapSummary(cell_size_m, origin)
    for feature in features:
        summary.add(feature)
    return summary.as_dict()
