"""The files of one disease-map recording run: records, FeatureCollection and summary.

A run named ``<run_name>`` in ``map_dir`` appends one durable record per detection to
``<run_name>.geojsons`` (a restart with the same name continues it) and, on save, writes
``<run_name>.geojson`` (a FeatureCollection) and ``<run_name>_summary.json``.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from datetime import datetime, timezone
from pathlib import Path
import time
from typing import Any

from plant_disease_ros.core.map_file import (
    feature_rejection_reason,
    GeoJsonSeqWriter,
    iter_geojson_seq,
    parse_json,
    SeqReadStats,
    write_feature_collection,
    write_json_atomic,
)

# How much of a refused message a rejection warning quotes.
QUOTED_CHARACTERS = 120


def default_run_name() -> str:
    """Return today's local date (``YYYY-MM-DD``), the run name when none is given."""
    return time.strftime('%Y-%m-%d')


def validate_run_name(run_name: str) -> str:
    """Return ``run_name`` if it is a plain file name stem; raise ValueError otherwise."""
    if (not run_name or run_name != run_name.strip() or run_name.startswith('.')
            or '/' in run_name or '\\' in run_name or '\x00' in run_name):
        raise ValueError(f'run_name {run_name!r} must be a plain file name (no path, '
                         'no leading dot)')
    return run_name


def format_origin(origin: tuple[float, float, float]) -> str:
    """Return ``lat, lon, alt`` of an origin as text (degrees to 1e-7, metres to cm)."""
    return f'{origin[0]:.7f}, {origin[1]:.7f}, {origin[2]:.2f} m'


def parse_detection(text: str) -> tuple[dict | None, str | None, str]:
    """Return ``(feature, None, '')`` for a usable detection, else ``(None, reason, detail)``.

    Reasons: ``'invalid_json'`` or one of :func:`feature_rejection_reason`'s.
    """
    try:
        value = parse_json(text)
    except ValueError as error:
        return None, 'invalid_json', str(error)
    reason = feature_rejection_reason(value)
    if reason is not None:
        return None, reason, text[:QUOTED_CHARACTERS]
    return value, None, ''


class MapRun:
    """Append detections to a run's records file; save its collection and summary."""

    def __init__(self, map_dir: str | Path, run_name: str) -> None:
        """Name the run's files in ``map_dir``; raise ValueError for a bad ``run_name``."""
        self.name = validate_run_name(run_name)
        directory = Path(map_dir).expanduser()
        self.records_path = directory / f'{run_name}.geojsons'
        self.collection_path = directory / f'{run_name}.geojson'
        self.summary_path = directory / f'{run_name}_summary.json'
        self.records_at_start = 0
        self.records_skipped_at_start = 0
        self.records_written = 0
        # Opened on the first record: a run that never records leaves no files behind.
        self._writer: GeoJsonSeqWriter | None = None

    def continue_existing(self, add: Callable[[dict], None]) -> None:
        """Hand each record of an earlier session of this run to ``add``, in file order.

        Sets ``records_at_start`` and ``records_skipped_at_start`` (unreadable records,
        e.g. the one a kill mid-write leaves).
        """
        if not self.records_path.exists():
            return
        stats = SeqReadStats()
        for feature in iter_geojson_seq(self.records_path, stats):
            add(feature)
        self.records_at_start = stats.records
        self.records_skipped_at_start = stats.skipped + int(stats.truncated_tail)

    @property
    def records_in_file(self) -> int:
        """Return the records of earlier sessions plus those written in this one."""
        return self.records_at_start + self.records_written

    def append(self, feature: dict) -> None:
        """Append ``feature`` as one durable record; raise OSError or ValueError on failure."""
        if self._writer is None:
            self.records_path.parent.mkdir(parents=True, exist_ok=True)
            self._writer = GeoJsonSeqWriter(self.records_path)
        self._writer.append(feature)
        self.records_written += 1

    def save(self, extra: Mapping[str, Any], saved_at: datetime | None = None) -> int:
        """Write the FeatureCollection and the summary (run fields, then ``extra``).

        Return the number of features written; raise OSError or ValueError on failure.
        """
        records = (iter_geojson_seq(self.records_path) if self.records_path.exists()
                   else iter(()))
        count = write_feature_collection(self.collection_path, records)
        saved_at = saved_at or datetime.now(timezone.utc)
        write_json_atomic(self.summary_path, {
            'run_name': self.name,
            'saved_at': saved_at.isoformat(timespec='seconds'),
            'records_file': str(self.records_path),
            'feature_collection': str(self.collection_path),
            'features_in_collection': count,
            'records_written_this_session': self.records_written,
            'records_continued': self.records_at_start,
            **extra,
        })
        return count

    def close(self) -> None:
        """Close the records file (idempotent)."""
        if self._writer is not None:
            self._writer.close()
