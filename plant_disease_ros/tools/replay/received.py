"""The detections the replay receives, kept in a temporary file instead of memory.

A day's bag (8 h at 10 detections/s) brings about 300,000 detections; held in a list
until the end they took hundreds of MB in the replaying process. Each one is appended
instead to a GeoJSON text sequence (``core.map_file``) hidden in the output folder,
``.<run name>_received.<pid>.<8 hex>.tmp.geojsons``, a batch of at most
:data:`BATCH_BYTES` at a time (one write and one fsync a batch), and read back,
streaming, when the map is made from them at the end (attached, or when the recorder
wrote none). The replay removes the file when it ends, however it ends; one that a
killed replay left is removed by the next replay into the same folder.
"""

from __future__ import annotations

from collections.abc import Iterator
import os
from pathlib import Path
import secrets

from plant_disease_ros.core.atomic_files import locked_by_another, stale_temporaries_in
from plant_disease_ros.core.map_file import (
    encode_record,
    GEOJSON_SEQ_SUFFIX,
    GeoJsonSeqWriter,
    iter_geojson_seq,
    write_feature_collection,
)
from plant_disease_ros.tools.replay.options import one_line, ReplayError

# The encoded detections held in memory before they are written, at most (one detection
# is about 1 KB, so a few dozen).
BATCH_BYTES = 64 * 1024
RECEIVED_TAG = '_received'


def stale_received_files(directory: Path) -> list[Path]:
    """Return the temporary files of replays into ``directory`` that no longer run.

    Its process id alone cannot tell: a replay in another container or on another host
    sharing the folder runs under an id unknown here. A live replay holds a lock on its
    file (``GeoJsonSeqWriter``), so a locked file is never stale.
    """
    return [path for path in stale_temporaries_in(directory, (GEOJSON_SEQ_SUFFIX,))
            if f'{RECEIVED_TAG}.' in path.name and not locked_by_another(path)]


class ReceivedDetections:
    """The detections received, appended to a temporary GeoJSON text sequence file.

    Only counters stay in memory, and at most :data:`BATCH_BYTES` of detections not yet
    written. A batch that cannot be written (a full disk) or a detection that cannot be
    encoded (a NaN) is counted in ``lost`` with the first reason in ``error``; the others
    are still kept. Not thread-safe: the replay's recorder calls :meth:`add` under its
    lock, and reads the detections back only once its executor has stopped.
    """

    def __init__(self, path: Path) -> None:
        """Append to ``path`` (made if missing); OSError when it cannot be opened."""
        self.path = Path(path)
        self._writer: GeoJsonSeqWriter | None = GeoJsonSeqWriter(self.path)
        self._pending: list[bytes] = []
        self._pending_bytes = 0
        self.received = 0
        self.lost = 0
        self.error = ''

    @classmethod
    def create(cls, directory: Path, run_name: str) -> ReceivedDetections:
        """Make the temporary file of run ``run_name`` in ``directory``; ReplayError if not.

        The file of a replay that was killed (kill -9, a power cut) is removed first.
        """
        for stale in stale_received_files(directory):
            try:
                stale.unlink(missing_ok=True)
            except OSError:
                break  # a folder that cannot be written: said just below
        name = (f'.{run_name}{RECEIVED_TAG}.{os.getpid()}.{secrets.token_hex(4)}.tmp'
                f'{GEOJSON_SEQ_SUFFIX}')
        path = Path(directory) / name
        try:
            with open(path, 'xb'):
                pass
        except OSError as error:
            raise ReplayError(f'cannot write in the output folder {directory}: '
                              f'{one_line(error)}') from error
        try:
            return cls(path)
        except OSError as error:
            path.unlink(missing_ok=True)
            raise ReplayError(f'cannot write in the output folder {directory}: '
                              f'{one_line(error)}') from error

    def add(self, feature: dict) -> None:
        """Keep one received detection (written with the next full batch)."""
        self.received += 1
        try:
            record = encode_record(feature)
        except (ValueError, TypeError) as error:  # NaN, or a JSON value it cannot write
            self._lose(1, f'a detection that is not valid JSON: {one_line(error)}')
            return
        self._pending.append(record)
        self._pending_bytes += len(record)
        if self._pending_bytes >= BATCH_BYTES:
            self.flush()

    def flush(self) -> None:
        """Write the detections held in memory (counted in ``lost`` when that fails)."""
        if not self._pending:
            return
        batch, self._pending, self._pending_bytes = self._pending, [], 0
        if self._writer is None:
            self._lose(len(batch), f'{self.path} was closed')
            return
        try:
            self._writer.append_encoded_many(batch)  # all or none
        except OSError as error:
            self._lose(len(batch), f'cannot write {self.path}: {one_line(error)}')

    def _lose(self, count: int, reason: str) -> None:
        self.lost += count
        self.error = self.error or reason

    def features(self) -> Iterator[dict]:
        """Yield the detections kept, in the order received, reading the file (streaming)."""
        self.flush()
        yield from iter_geojson_seq(self.path)

    def write_collection(self, path: Path) -> int:
        """Write the detections kept as a FeatureCollection to ``path``; return the count.

        Atomic and streamed (see ``core.map_file.write_feature_collection``): OSError
        leaves ``path`` as it was.
        """
        return write_feature_collection(path, self.features())

    def shortfall(self) -> str:
        """Return what the detections kept lack of those received, with why, or ''."""
        if not self.lost:
            return ''
        return (f'{self.lost} of the {self.received} detection(s) received here could not '
                f'be kept for the map made from them: {self.error}')

    def discard(self) -> None:
        """Close and remove the file (idempotent; best effort, a file left is removed by
        the next replay into the folder)."""
        self._pending, self._pending_bytes = [], 0
        if self._writer is not None:
            self._writer.close()
            self._writer = None
        try:
            self.path.unlink(missing_ok=True)
        except OSError:
            pass
