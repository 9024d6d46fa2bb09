"""The files of one disease-map recording run: records, FeatureCollection and summary.

A run named ``<run_name>`` in ``map_dir`` appends one durable record per detection to
``<run_name>.geojsons`` (a restart with the same name continues it) and, on save, writes
``<run_name>.geojson`` (a FeatureCollection) and ``<run_name>_summary.json``.

While the records file cannot be written (a full disk, a read-only remount, its storage
gone) records are held in memory, at most ``max_held`` (the oldest go first beyond that,
and are counted), and appended in order once a write succeeds again.

The run remembers the device ``map_dir`` is on. A missing ``map_dir`` is made again only
on that device (a clean-up removed it): when its nearest existing folder is on another one,
the storage it was on is gone (a USB stick pulled, so the mount point's parent, the root
file system, shows through), and making it there would hide the records under the mount
point once the stick is back. The records are held until ``map_dir`` exists again.

A ``map_dir`` that does not exist at the start is made where it is configured, unless the
run is given ``storage_mount``, the mount point ``map_dir`` must be on: then nothing is
read, made or written in ``map_dir`` while that path is not a mount point (a stick not yet
mounted at boot, or pulled) or ``map_dir`` is not on its device; the records are held as
for storage gone. The run is not continued (:meth:`MapRun.continue_existing`) before it
is mounted: a recorder started without it waits for it before it starts the run.
"""

from __future__ import annotations

from collections import Counter, deque
from collections.abc import Callable, Mapping
from datetime import datetime, timezone
import errno
import hashlib
import json
import math
import os
from pathlib import Path
import socket
import time
from typing import Any

from plant_disease_ros.core.atomic_files import longest_temporary_name, stale_temporaries_in
from plant_disease_ros.core.map_file import (
    encode_record,
    feature_rejection_reason,
    GeoJsonSeqWriter,
    iter_geojson_seq,
    parse_json,
    RecordsFileBusy,
    SeqReadStats,
    tail_geojson_seq,
    write_feature_collection,
    write_json_atomic,
)
from plant_disease_ros.core.map_gis import map_file_names
from plant_disease_ros.core.output_paths import directory_problem

# How much of a refused message a rejection warning quotes.
QUOTED_CHARACTERS = 120
# Records held in memory while the file cannot be written (about 1 KB each).
DEFAULT_MAX_HELD = 10000
HELD_BATCH_BYTES = 1 << 20
# Write errors that MapRun.probe may clear without a record written: what it checks
# disproves them (a free block: ENOSPC; the file opened for writing: a read-only mount, a
# permission, a folder removed). A file too large (EFBIG: FAT32's 4 GiB, RLIMIT_FSIZE), a
# quota (EDQUOT, which statvfs does not show) or an I/O error stays until a write succeeds.
PROBE_CLEARS = frozenset({errno.ENOSPC, errno.EROFS, errno.EACCES, errno.EPERM,
                          errno.ENOENT})
"""Most bytes of held records written (and fsynced) at once when the disk is back."""


def check_storage_mount(storage_mount: str | Path, map_dir: str | Path) -> str | None:
    """Return why ``storage_mount`` is not a mount point ``map_dir`` can lie on, or ``None``.

    It must be an absolute path, and ``map_dir`` (as the run expands it, relative to the
    working directory) that path or a folder below it. Nothing is looked up on disk.
    """
    text = str(storage_mount)
    if not text or not os.path.isabs(text) or '\x00' in text:
        return f'storage_mount must be an absolute path (a mount point), got {text!r}'
    mount = os.path.normpath(text)
    directory = os.path.normpath(os.path.abspath(os.path.expanduser(map_dir)))
    if os.path.commonpath([mount, directory]) != mount:
        return f'map_dir {directory} is not in storage_mount {mount}: it must be on the mount'
    return None


class StorageGone(OSError):
    """``map_dir`` is gone with the storage it was on (unmounted): it is not made again."""


def path_device(path: str | Path) -> int:
    """Return the device (``st_dev``) ``path`` is on; OSError (FileNotFoundError) if none."""
    return os.stat(path).st_dev


def format_device(device: int) -> str:
    """Return a device number as ``major:minor`` (as ``lsblk`` and ``mountinfo`` show it)."""
    return f'{os.major(device)}:{os.minor(device)}'


class RecentFeatures:
    """The last ``capacity`` features recorded, to know one that comes again.

    A recorder that (re)joins a running classifier gets its recent detections again
    (transient local), and some of them are in the file already. Two features are the same
    when their JSON is, key order aside: the classifier sends a detection once, so only a
    repeat delivery (or a bag played again with the very same fixes) matches.
    """

    def __init__(self, capacity: int = 1000) -> None:
        """Remember at most ``capacity`` features (the oldest are forgotten first)."""
        if capacity < 1:
            raise ValueError(f'capacity must be >= 1, got {capacity}')
        self.capacity = int(capacity)
        self._order: deque[str] = deque()
        self._counts: Counter[str] = Counter()

    @staticmethod
    def key(feature: dict) -> str:
        """Return the feature's JSON with sorted keys."""
        return json.dumps(feature, sort_keys=True, separators=(',', ':'), ensure_ascii=False)

    def __contains__(self, feature: dict) -> bool:
        """Return whether ``feature`` is among the last ones added."""
        return self.key(feature) in self._counts

    def add(self, feature: dict) -> None:
        """Remember ``feature``."""
        key = self.key(feature)
        self._order.append(key)
        self._counts[key] += 1
        if len(self._order) > self.capacity:
            oldest = self._order.popleft()
            self._counts[oldest] -= 1
            if not self._counts[oldest]:
                del self._counts[oldest]


# Another run's save temporaries are removed at start only when older than this (s).
OTHER_RUNS_TEMPORARY_AGE_S = 3600.0
# How many of the newest other runs in map_dir a recorder looks at for the detections a
# late-joining recorder gets from the classifier (other cameras' runs among them).
EARLIER_RUNS = 8


def earlier_runs_tail(directory: str | Path, run_name: str, count: int,
                      runs: int = EARLIER_RUNS) -> list[dict]:
    """Return the last ``count`` records of each of the newest ``runs`` other runs in
    ``directory`` (by modification time; those of ``run_name`` left out), the oldest run's
    first, so that a bounded memory of them keeps the newest.

    A recorder starting a new run gets the classifier's last detections too: those an
    earlier run holds belong to it; those none holds were published while no recorder
    ran (a restart across midnight, which changes the default run name) and would be lost.
    """
    directory = Path(directory)
    def modified(path: Path) -> float:
        try:
            return path.stat().st_mtime
        except OSError:
            return -math.inf   # gone or unreadable: last

    try:
        candidates = [path for path in directory.iterdir()
                      if path.name.endswith('.geojsons') and not path.name.startswith('.')
                      and path.name != f'{run_name}.geojsons']
    except OSError:
        return []
    candidates.sort(key=modified, reverse=True)
    features: list[dict] = []
    for path in reversed(candidates[:runs]):
        features.extend(tail_geojson_seq(path, count))
    return features


def run_file_paths(directory: str | Path, run_name: str) -> tuple[Path, Path, Path]:
    """Return a run's records (``.geojsons``), collection (``.geojson``) and summary paths."""
    directory = Path(directory)
    return (directory / f'{run_name}.geojsons', directory / f'{run_name}.geojson',
            directory / f'{run_name}_summary.json')


def newer_records_of(collection: str | Path) -> Path | None:
    """Return the run's records file beside ``collection`` when it was written after it.

    The recorder writes the collection (``.geojson``) on ``~/save`` and when it stops, and
    appends every record to ``.geojsons`` at once. A records file newer than the
    collection holds detections the collection lacks: the recorder still runs, or was cut
    off (a power cut, kill -9) after its last save. ``None`` for any other file, an
    up-to-date one, or a records file without one readable record.
    """
    collection = Path(collection)
    if collection.suffix.lower() != '.geojson':
        return None
    records = collection.with_suffix('.geojsons')
    try:
        newer = records.stat().st_mtime > collection.stat().st_mtime
    except OSError:
        return None
    # A records file of zeros (a power cut) holds nothing the collection lacks.
    return records if newer and tail_geojson_seq(records, 1) else None


def summary_path_of(map_file: str | Path) -> Path:
    """Return the summary path of the run a ``.geojsons`` or ``.geojson`` file belongs to."""
    map_file = Path(map_file)
    run_name = map_file.name
    for suffix in ('.geojsons', '.geojson'):
        if run_name.endswith(suffix):
            run_name = run_name[:-len(suffix)]
            break
    return run_file_paths(map_file.parent, run_name)[2]


def default_run_name(namespace: str = '') -> str:
    """Return the run name when none is given: today's local date (``YYYY-MM-DD``).

    ``namespace`` is the recorder's node namespace less the package's default one: a
    second camera's node set (``/left``, ``/robot1/right``) gets its own run,
    ``2026-05-04_left``, ``2026-05-04_robot1_right``, instead of being refused the first
    camera's.
    """
    date = time.strftime('%Y-%m-%d')
    tag = '_'.join(part for part in namespace.split('/') if part)
    return f'{date}_{tag}' if tag else date


# The longest file name where map_dir does not exist yet to be asked (Linux's NAME_MAX),
# and the most bytes a name is taken to have anywhere: vfat and exFAT say 1530 (255
# characters of up to 6 bytes) but take 255 characters, which ASCII names fill.
DEFAULT_NAME_MAX = 255


def run_file_names(run_name: str) -> dict[str, str]:
    """Return every file name written in ``map_dir`` for a run, each with what it is.

    The run's files and the temporaries (see
    :func:`~plant_disease_ros.core.atomic_files.replacing`) of the collection and the
    summary at their longest; and what ``plant-disease map <run_name>.geojson`` writes
    beside them by default (:func:`~plant_disease_ros.core.map_gis.map_file_names`).
    """
    records, collection, summary = run_file_paths('.', run_name)
    names = {name: f"`plant-disease map`'s {what}"
             for name, what in map_file_names(run_name).items()}
    names.update({
        records.name: 'the records file', collection.name: 'the collection',
        summary.name: 'the summary',
        longest_temporary_name(collection): "a save's temporary collection",
        longest_temporary_name(summary): "a save's temporary summary"})
    return names


def name_max(directory: str | Path) -> int:
    """Return the longest file name (bytes) ``directory`` takes: NAME_MAX of its file system.

    At most :data:`DEFAULT_NAME_MAX`, which is also the answer where it does not exist
    (yet) or cannot be asked.
    """
    try:
        limit = os.pathconf(directory, 'PC_NAME_MAX')
    except (OSError, ValueError):
        return DEFAULT_NAME_MAX
    return min(limit, DEFAULT_NAME_MAX) if limit > 0 else DEFAULT_NAME_MAX


def validate_run_name(run_name: str, directory: str | Path | None = None) -> str:
    """Return ``run_name`` if it is a plain file name stem; raise ValueError otherwise.

    Too long is refused too: every file written in ``directory`` (``map_dir``) for the run
    (:func:`run_file_names`; the longest is the temporary of the temporary of
    ``plant-disease map``'s grid GeoJSON) must fit the file system's longest name
    (:func:`name_max`; without ``directory``, :data:`DEFAULT_NAME_MAX`), or the records
    would be written and every save, or every map of the run, would fail.
    """
    if (not run_name or run_name != run_name.strip() or run_name.startswith('.')
            or '/' in run_name or '\\' in run_name or '\x00' in run_name):
        raise ValueError(f'run_name {run_name!r} must be a plain file name (no path, '
                         'no leading dot)')
    limit = name_max(directory) if directory is not None else DEFAULT_NAME_MAX
    length = len(os.fsencode(run_name))
    names = run_file_names(run_name)
    longest = max(names, key=lambda name: len(os.fsencode(name)))
    extra = len(os.fsencode(longest)) - length
    if length + extra > limit:
        where = f'in {directory}' if directory is not None else '(NAME_MAX)'
        raise ValueError(
            f'run_name is too long ({length} bytes): at most {limit - extra} bytes, as file '
            f'names {where} are at most {limit} bytes and the longest file written for the '
            f'run ({names[longest]}) adds {extra} to it')
    return run_name


def check_writable_directory(directory: str | Path) -> str | None:
    """Return why run files cannot be written in ``directory``, or ``None`` when they can.

    A directory that does not exist yet is fine if its nearest existing parent is a
    writable directory (it is created with the first record). Nothing is written here.
    """
    path = Path(directory).expanduser()  # as MapRun expands it
    problem = directory_problem(path)
    return f'map_dir {path}: {problem}' if problem else None


def format_origin(origin: tuple[float, float, float]) -> str:
    """Return ``lat, lon, alt`` of an origin as text (degrees to 1e-7, metres to cm)."""
    return f'{origin[0]:.7f}, {origin[1]:.7f}, {origin[2]:.2f} m'


def parse_detection(text: str) -> tuple[dict | None, str | None, str]:
    """Return ``(feature, None, '')`` for a usable detection, else ``(None, reason, detail)``.

    Reasons: ``'invalid_json'``, one of :func:`feature_rejection_reason`'s, or
    ``'bad_text'``: a string that is no Unicode text (a lone surrogate such as
    ``"\\ud800"``, valid JSON), which no UTF-8 record can hold.
    """
    try:
        value = parse_json(text)
    except ValueError as error:
        return None, 'invalid_json', str(error)
    reason = feature_rejection_reason(value)
    if reason is not None:
        return None, reason, text[:QUOTED_CHARACTERS]
    try:
        encode_record(value)
    except UnicodeEncodeError as error:
        return None, 'bad_text', f'{error.reason} in {text[:QUOTED_CHARACTERS]}'
    return value, None, ''


def _has_free_block(directory: Path) -> bool:
    """Return whether the file system of ``directory`` has a block this process may use.

    Root may use the blocks reserved for it; True when it cannot be asked.
    """
    try:
        usage = os.statvfs(directory)
    except OSError:
        return True
    return (usage.f_bfree if os.geteuid() == 0 else usage.f_bavail) > 0


class MapRun:
    """Append detections to a run's records file; save its collection and summary."""

    def __init__(self, map_dir: str | Path, run_name: str,
                 max_held: int = DEFAULT_MAX_HELD,
                 storage_mount: str | Path | None = None) -> None:
        """Name the run's files in ``map_dir``; raise ValueError for a bad ``run_name``.

        ``max_held`` bounds the records kept in memory while the file cannot be written.
        ``storage_mount``: the mount point ``map_dir`` must be on (see the module); None
        or empty: none. ValueError when it is not absolute or ``map_dir`` is not in it. A
        symbolic link (``os.path.ismount`` is False for one) is resolved now: its target is
        the mount point looked at, and ``storage_mount_link`` names the link.
        """
        if max_held < 0:
            raise ValueError(f'max_held must be >= 0, got {max_held}')
        self.storage_mount: Path | None = None
        # The symbolic link storage_mount was given as (resolved at the start), or None.
        self.storage_mount_link: Path | None = None
        if storage_mount is not None and str(storage_mount) != '':
            problem = check_storage_mount(storage_mount, map_dir)
            if problem is not None:
                raise ValueError(problem)
            given = Path(os.path.normpath(str(storage_mount)))
            self.storage_mount = Path(os.path.realpath(given))
            if self.storage_mount != given:
                self.storage_mount_link = given
        # Whether a path is a mount point: a test sets one that says so of a folder it
        # stands a stick on (see device_of).
        self.is_mount: Callable[[Path], bool] = os.path.ismount
        directory = Path(map_dir).expanduser()
        self.name = validate_run_name(
            run_name, directory if directory.is_dir() else None)
        self.max_held = int(max_held)
        self.records_path, self.collection_path, self.summary_path = run_file_paths(
            directory, run_name)
        self.records_at_start = 0
        self.records_skipped_at_start = 0
        self.records_written = 0
        # Records that could not be written yet, oldest first, encoded.
        self._held: deque[bytes] = deque()
        self._batch_bytes = HELD_BATCH_BYTES  # the next batch of held records, at most
        self.records_dropped = 0
        self.write_error = ''
        # The errno of the OSError write_error says (None: none, or the storage is gone).
        self._write_errno: int | None = None
        # Opened on the first record: a run that never records leaves no files behind.
        self._writer: GeoJsonSeqWriter | None = None
        # Times the records file was found removed or replaced under the open writer, and
        # what the last such event cost (see _open_writer).
        self.files_replaced = 0
        self.replaced_note = ''
        self._not_in_file = 0  # records counted before the file was replaced
        self._file_lost = False  # the open file was found replaced; counted at the reopen
        self._file_identity: tuple[int, int] | None = None  # (st_dev, st_ino) last opened
        # Returns the st_dev of a path, FileNotFoundError when it does not exist: a test
        # sets one that reports another device for some paths (storage that went away).
        self.device_of: Callable[[Path], int] = path_device
        # The device map_dir is on (None until it exists), and whether map_dir was a mount
        # of its own there (on another device than its parent): see _storage_gone.
        self.map_dir_device: int | None = None
        self._map_dir_mounted = False
        # Why map_dir cannot be written (its storage is gone), or '' (see write_held).
        self.storage_gone = ''
        self._claim: socket.socket | None = None

    def continue_existing(self, add: Callable[[dict], None]) -> None:
        """Hand each record of an earlier session of this run to ``add``, in file order.

        Sets ``records_at_start`` and ``records_skipped_at_start`` (unreadable records,
        e.g. the one a kill mid-write leaves). Raises StorageGone, reading nothing, while
        ``storage_mount`` is not mounted (or ``map_dir`` not on it): the bare folder holds
        none of the run's records; start the run once it is (see ``check_storage``).
        """
        if self.storage_mount is not None:
            gone = self._storage_gone()
            if gone:
                raise StorageGone(gone)
        if not self.records_path.exists():
            return
        stats = SeqReadStats()
        for feature in iter_geojson_seq(self.records_path, stats):
            add(feature)
        self.records_at_start = stats.records
        self.records_skipped_at_start = stats.skipped + int(stats.truncated_tail)

    @property
    def records_in_file(self) -> int:
        """Return the records in the file: earlier sessions' and this one's (since a replace)."""
        return self.records_at_start + self.records_written - self._not_in_file

    @property
    def records_held(self) -> int:
        """Return the records waiting in memory for the file to be writable again."""
        return len(self._held)

    def append(self, feature: dict) -> None:
        """Append ``feature`` as one durable record; raise OSError or ValueError on failure."""
        self._append_encoded(encode_record(feature))

    def _append_encoded(self, record: bytes) -> None:
        """Append one encoded record (opening the file first); raise OSError on failure."""
        self._append_encoded_many([record])

    def remove_stale_temporaries(self) -> list[Path]:
        """Remove what saves killed midway (kill -9 of a long save) left; return those paths.

        Those of every run in the folder (a save of yesterday's run cut by a power cut),
        of processes that no longer run or written before this boot: a save running now
        keeps its own. Another run's are removed only when older than
        :data:`OTHER_RUNS_TEMPORARY_AGE_S`: it may be saved by a process of another host.
        """
        removed = []
        own = {f'.{path.stem}.' for path in (self.collection_path, self.summary_path)}
        old = time.time() - OTHER_RUNS_TEMPORARY_AGE_S
        for stale in stale_temporaries_in(self.records_path.parent, ('.geojson', '.json')):
            try:
                # Another run's may be a save in progress by a process this machine cannot
                # see (a container, another host on a share): only old ones are removed.
                if (not any(stale.name.startswith(prefix) for prefix in own)
                        and stale.stat().st_mtime > old):
                    continue
                stale.unlink()
            except FileNotFoundError:
                continue
            removed.append(stale)
        return removed

    def claim(self) -> None:
        """Claim the run for this process, so a second recorder of it is refused at start.

        On this machine the claim is an abstract Unix socket named after the records file
        (no file is made: a run that never records leaves none; the kernel releases it
        when the process ends, also after kill -9); an existing records file is also
        opened and locked now (another machine writing it over a share). Raises
        RecordsFileBusy (an OSError) when another process holds either.

        A file that ends in a cut-off record (a kill mid-write) whose line feed cannot be
        written now (a full disk) is claimed all the same: ``write_error`` says why, the
        records are held as for any failed write, and the line feed goes with the first
        append that succeeds.
        """
        if self._claim is None:
            key = hashlib.sha256(os.path.abspath(self.records_path).encode()).hexdigest()
            claim = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
            try:
                claim.bind(f'\0plant_disease_ros.run.{key[:40]}')
            except OSError as error:
                claim.close()
                if error.errno != errno.EADDRINUSE:
                    raise
                raise RecordsFileBusy.of(self.records_path) from None
            self._claim = claim
        if self.storage_mount is not None and self.check_storage():
            return  # the bare mount point: nothing there is this run's
        if self.map_dir_device is None and self.records_path.parent.is_dir():
            self._note_device()
        if self._writer is None and self.records_path.exists():
            try:
                writer = self._opened(GeoJsonSeqWriter(self.records_path))
                if writer.repair_error is not None:
                    self.write_error = (f'{writer.repair_error} (its cut-off last record '
                                        'cannot be ended yet)')
                    self._write_errno = writer.repair_error.errno
            except RecordsFileBusy:
                raise
            except OSError:
                # Not writable now (a read-only stick mounted after the start): the first
                # record says why and is held; the file is opened (locked) once it can be.
                # Without storage_mount an unwritable file stops the start, as before.
                if self.storage_mount is None:
                    raise

    def check_storage(self) -> str:
        """Return why ``map_dir`` must not be written now (see ``_storage_gone``), or ``''``.

        Also says so in ``storage_gone`` and ``write_error`` while nothing is held (with
        records held, :meth:`write_held` does), so that ``storage_mount`` not mounted is
        reported before any record comes.
        """
        gone = self._storage_gone()
        if gone:
            self.write_error = self.storage_gone = gone
        elif self.storage_gone and not self._held:
            self.write_error = self.storage_gone = ''
        return gone

    def _mount_problem(self, directory: Path) -> str:
        """Return why ``directory`` (``map_dir``) is not on ``storage_mount`` now, or ``''``."""
        mount = self.storage_mount
        if mount is None:
            return ''
        if not self.is_mount(mount):
            return f'storage_mount {mount} is not mounted'
        # Through the links a symbolic storage_mount in map_dir's path was resolved by.
        where, device = self._nearest_existing(Path(os.path.realpath(directory)))
        mounted = self.device_of(mount)
        if device == mounted:
            return ''
        return (f'storage_mount {mount}: map_dir {self.records_path.parent} is not on it '
                f'({where} is on device {format_device(device)}, {mount} on '
                f'{format_device(mounted)})')

    def _note_device(self) -> None:
        """Remember the device ``map_dir`` (which exists) is on now."""
        directory = self.records_path.parent.absolute()
        self.map_dir_device = self.device_of(directory)
        self._map_dir_mounted = self.map_dir_device != self.device_of(directory.parent)

    def _nearest_existing(self, path: Path) -> tuple[Path, int]:
        """Return ``path`` or its nearest existing parent, and the device it is on."""
        for candidate in (path, *path.parents):
            try:
                return candidate, self.device_of(candidate)
            except (FileNotFoundError, NotADirectoryError):
                continue
        raise FileNotFoundError(errno.ENOENT, 'no existing parent', str(path))

    def _storage_gone(self) -> str:
        """Return why ``map_dir`` must not be written now (its storage gone), or ``''``.

        Gone: ``map_dir`` is missing and its nearest existing folder is on another device
        than the one it was on (made there, it would lie hidden under the mount point
        once the storage is back), or ``map_dir`` was a mount of its own and is now a
        bare folder on its parent's device. A missing ``map_dir`` whose parent is on its
        device (a clean-up removed it) may be made again; an existing one on another
        device (a stick plugged in again gets another number) is written to.

        With ``storage_mount``, that alone decides: ``map_dir`` must not be written while
        it is not a mount point or ``map_dir`` (its nearest existing folder) is on another
        device; once it is mounted ``map_dir`` is written, made if missing, whatever
        device it was on before (a stick plugged in again, or another one).
        """
        if self.storage_mount is not None:
            return self._mount_problem(self.records_path.parent.absolute())
        if self.map_dir_device is None:
            return ''  # not made yet: the first record makes it where it is configured
        directory = self.records_path.parent.absolute()
        was = format_device(self.map_dir_device)
        where, device = self._nearest_existing(directory)
        if where != directory:
            if device == self.map_dir_device:
                return ''
            return (f'map_dir {self.records_path.parent}: its storage is gone (was device '
                    f'{was}; {where} is now on device {format_device(device)})')
        if (device == self.map_dir_device or not self._map_dir_mounted
                or device != self.device_of(directory.parent)):
            return ''
        return (f'map_dir {self.records_path.parent}: its storage is gone (was device {was}, '
                f'mounted there; it is now a bare folder on device {format_device(device)}, '
                'the one of its parent)')

    def _open_writer(self) -> GeoJsonSeqWriter:
        """Return the open writer, (re)opening the records file (and its folder) if needed.

        An open file that is no longer the one at the path (its folder removed, storage
        mounted again) is given up: the records go to a new file at the path, and
        ``files_replaced`` and ``replaced_note`` say how many of this session's records
        went to the lost one. So does a file closed after a failed write that is not the
        one at the path when it is opened again. Raises StorageGone, making nothing, while
        ``map_dir``'s storage is gone (see :meth:`_storage_gone`).
        """
        if self._writer is not None and self._writer.replaced():
            self._close_writer()
            self._file_lost = True
        if self._writer is None:
            gone = self._storage_gone()
            if gone:
                raise StorageGone(gone)
            replaced = self._file_lost or self._file_changed()
            self.records_path.parent.mkdir(parents=True, exist_ok=True)
            self._note_device()  # made, or there again (a stick's number may be new)
            writer = self._opened(GeoJsonSeqWriter(self.records_path))
            if replaced:
                # Counted once opened: a retry whose open fails (a read-only remount)
                # finds the same lost file again, and must not count it again.
                self._file_lost = False
                self._count_replaced()
            return writer
        return self._writer

    def _opened(self, writer: GeoJsonSeqWriter) -> GeoJsonSeqWriter:
        """Take ``writer`` as the open records file; remember which file it is."""
        self._writer = writer
        self._file_identity = writer.identity()
        return writer

    def _file_changed(self) -> bool:
        """Return whether the file at the path is not the one last opened (or is missing)."""
        if self._file_identity is None:
            return False
        try:
            named = os.stat(self.records_path)
        except OSError:
            return True
        return (named.st_dev, named.st_ino) != self._file_identity

    def _count_replaced(self) -> None:
        """Count the records file found replaced; say what the old and the new one hold."""
        lost = self.records_in_file
        self.files_replaced += 1
        # The file now at the path may hold records (a card mounted again, a restored
        # copy): they are the ones it has, whatever the old file held.
        found = SeqReadStats()
        if self.records_path.exists():
            for _ in iter_geojson_seq(self.records_path, found):
                pass
        self._not_in_file = self.records_at_start + self.records_written - found.records
        if found.records:
            self.replaced_note = (
                f'{self.records_path} was replaced while open (storage mounted again?): '
                f'continuing the file now there, which holds {found.records} record(s) '
                f'(the old one held {lost})')
        else:
            self.replaced_note = (
                f'{self.records_path} was removed or replaced while open: a new file was '
                f'started there; the {lost} record(s) in the old one are not in it')

    def _close_writer(self) -> None:
        """Close the records file if open; the next write opens the path again."""
        if self._writer is not None:
            self._writer.close()
            self._writer = None

    def _append_encoded_many(self, records: list[bytes]) -> None:
        """Append encoded records, all or none (opening the file first); OSError on failure.

        After a failure the file is closed: the next attempt opens the path again, so
        storage that comes back (a card or a share mounted again) is written to, not the
        dead descriptor of the old mount.
        """
        writer = self._open_writer()
        try:
            writer.append_encoded_many(records)
        except OSError:
            self._close_writer()
            raise
        self.records_written += len(records)

    def record(self, feature: dict) -> bool:
        """Append ``feature`` durably, or hold it while the file cannot be written.

        Return True when it (and every record held before it) is in the file, False when
        the write failed (``write_error`` says why): it is then held, or, beyond
        ``max_held`` held records (0: none), the oldest is dropped and counted in
        ``records_dropped``. Records are written in the order they came. Raises ValueError
        for a feature that cannot be encoded.
        """
        self._held.append(encode_record(feature))
        self.write_held()
        while len(self._held) > self.max_held:
            self._held.popleft()
            self.records_dropped += 1
        # write_held clears the error only once every held record is in the file.
        return not self.write_error

    def write_held(self) -> int:
        """Append the held records in order until a write fails; return how many were written.

        They go in batches, one fsync a batch: a backlog of thousands (a disk full for a
        while) is written in a few fsyncs, not one each, which would block the node for
        minutes while new detections queue up. A batch is written whole or not at all, so
        a failed batch halves the next one's size (down to one record): a disk with less
        room than a batch still takes what fits, one failed write a call; each success
        doubles it again, up to :data:`HELD_BATCH_BYTES`.
        """
        written = 0
        while self._held:
            batch, size = [], 0
            for record in self._held:
                if batch and size + len(record) > self._batch_bytes:
                    break
                batch.append(record)
                size += len(record)
            try:
                self._append_encoded_many(batch)
            except StorageGone as error:
                # Nothing was tried: the batch's size is not the problem.
                self.write_error = self.storage_gone = str(error)
                return written
            except OSError as error:
                self._note_write_error(error)
                self._batch_bytes = max(1, size // 2)
                return written
            for _ in batch:
                self._held.popleft()
            written += len(batch)
            self._batch_bytes = min(HELD_BATCH_BYTES, self._batch_bytes * 2)
        self.write_error = self.storage_gone = ''
        self._write_errno = None
        return written

    def _note_write_error(self, error: OSError) -> None:
        """Keep ``error`` as the write error (the storage is there: it is not gone)."""
        self.write_error = str(error)
        self._write_errno = error.errno
        self.storage_gone = ''

    def probe(self) -> bool:
        """With none held after a failed write, clear ``write_error`` if the file can be written.

        Nothing is held when ``max_held`` is 0 (or every held record was dropped), so no
        retry would find the disk writable again and the error would stay until the next
        record. The file is opened (made if missing), a cut-off last record's line feed
        written, and the file system must have a free block: then the error is cleared.
        Only an error those checks disprove is (storage gone, or one of
        :data:`PROBE_CLEARS`); any other (EFBIG, EDQUOT, EIO) stays until a record is
        written. Return whether no error is left; nothing is raised.
        """
        if not self.write_error or self._held:
            return not self.write_error
        if not self.storage_gone and self._write_errno not in PROBE_CLEARS:
            return False
        try:
            writer = self._open_writer()
        except StorageGone as error:
            self.write_error = self.storage_gone = str(error)
            return False
        except OSError as error:
            self._note_write_error(error)
            return False
        if not writer.repair():
            self.write_error = (f'{writer.repair_error} (its cut-off last record cannot be '
                                'ended yet)')
            self._write_errno = writer.repair_error.errno if writer.repair_error else None
            return False
        if not _has_free_block(self.records_path.parent):
            return False
        self.write_error = self.storage_gone = ''
        self._write_errno = None
        return True

    def save(self, extra: Mapping[str, Any], saved_at: datetime | None = None) -> int:
        """Write the FeatureCollection and the summary (run fields, then ``extra``).

        Return the number of features written; raise OSError or ValueError on failure
        (StorageGone, making nothing, while ``map_dir``'s storage is gone).
        """
        gone = self._storage_gone()
        if gone:
            raise StorageGone(gone)
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
            # Detections that never reached the file: still held at this save, or dropped
            # because the memory queue was full while the disk was.
            'records_held_unwritten': self.records_held,
            'records_dropped_queue_full': self.records_dropped,
            # The records file removed or replaced under the recorder (see _open_writer).
            'records_file_replaced': self.files_replaced,
            'records_file_note': self.replaced_note,
            **extra,
        })
        return count

    def close(self) -> None:
        """Try once more to write the held records, then close the file (idempotent).

        What is still held afterwards is counted in ``records_held`` (and the summary).
        """
        self.write_held()
        self._close_writer()
        if self._claim is not None:
            self._claim.close()
            self._claim = None
