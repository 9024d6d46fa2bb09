"""Write a file so that it is either the old one or the whole new one. No ROS.

A write that fails halfway (a full disk, a file-size limit, a crash, Ctrl-C) must not
leave a truncated map, model or report where the previous good one was. Everything is
written into a temporary file beside the target, flushed to disk, then renamed over the
target (``os.replace`` is atomic within one file system), and the folder is synced so
the rename survives a power cut.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager
import fcntl
import hashlib
import os
from pathlib import Path
import re
import secrets
import shutil
import signal
import threading
import time
from typing import Any


def fsync_directory(directory: str | Path) -> None:
    """Flush a folder's entries (a new or renamed file in it) to disk, where possible."""
    try:
        descriptor = os.open(directory, os.O_RDONLY | os.O_DIRECTORY)
    except OSError:
        return
    try:
        os.fsync(descriptor)
    except OSError:
        pass  # some file systems cannot sync a directory
    finally:
        os.close(descriptor)


def _fsync_file(path: Path) -> None:
    descriptor = os.open(path, os.O_RDONLY)
    try:
        os.fsync(descriptor)
    finally:
        os.close(descriptor)


@contextmanager
def replacing(path: str | Path) -> Iterator[Path]:
    """Give a temporary path beside ``path``; on a clean exit, rename it over ``path``.

    The temporary name keeps ``path``'s suffix, so writers that choose the format by the
    suffix (matplotlib, Keras) write the right one. On an exception the temporary file is
    removed and ``path`` is left as it was.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    temporary = _temporary_beside(path)
    try:
        yield temporary
        _fsync_file(temporary)
        os.replace(temporary, path)
    except BaseException:
        try:
            temporary.unlink()
        except OSError:
            pass
        raise
    fsync_directory(path.parent)


# The largest process id Linux gives (pid_max is at most 2**22), and the length of the
# random part of a temporary name (4 bytes in hex).
MAX_PID = 1 << 22
TOKEN_CHARACTERS = 8


def _temporary_name(path: Path, pid: int, token: str) -> str:
    """Return the name of the temporary beside ``path`` of process ``pid``."""
    return f'.{path.stem}.{pid}.{token}.tmp{path.suffix}'


def _temporary_beside(path: Path) -> Path:
    """Return a fresh temporary name beside ``path`` that keeps its suffix."""
    return path.parent / _temporary_name(path, os.getpid(), secrets.token_hex(4))


def longest_temporary_name(path: str | Path) -> str:
    """Return the longest name the temporary beside ``path`` (see :func:`replacing`) can have.

    A target whose temporary name is too long for the file system cannot be written.
    """
    return _temporary_name(Path(path), MAX_PID, 'f' * TOKEN_CHARACTERS)


@contextmanager
def replacing_together(*paths: str | Path,
                       before_renames: Callable[[], None] | None = None
                       ) -> Iterator[list[Path]]:
    """Give a temporary path beside each of ``paths``; on a clean exit, replace them all.

    The files that belong together (a map's picture and its grid files) are written to
    their temporaries in the block; a temporary left unwritten leaves its file as it is.
    Only once every written one is flushed to disk are they renamed, one after the other
    with SIGINT and SIGTERM held back (raised again after the last rename; in the main
    thread), so a failure or Ctrl-C leaves either every old file or every new one. On an
    exception every temporary is removed and every file left as it was.
    ``before_renames``: called once every temporary is flushed, with the signals held,
    just before the first rename (to remove files the new set does without); nothing
    before it changes the files.
    """
    targets = [Path(path) for path in paths]
    for target in targets:
        target.parent.mkdir(parents=True, exist_ok=True)
    temporaries = [_temporary_beside(target) for target in targets]
    try:
        yield temporaries
        written = [(temporary, target) for temporary, target in zip(temporaries, targets,
                                                                    strict=True)
                   if temporary.exists()]
        for temporary, _ in written:
            _fsync_file(temporary)
        held = _hold_termination()
        try:
            if before_renames is not None:
                before_renames()
            for temporary, target in written:
                os.replace(temporary, target)
        finally:
            _release_termination(held)
    except BaseException:
        for temporary in temporaries:
            try:
                temporary.unlink()
            except OSError:
                pass
        raise
    for folder in {target.parent for target in targets}:
        fsync_directory(folder)


@contextmanager
def replacing_set(folder: str | Path, last: str,
                  removed: Iterable[str] = ()) -> Iterator[Path]:
    """Give an empty staging folder; on a clean exit its files replace ``folder``'s together.

    For the files that one run writes into ``folder`` (an evaluation's report and its
    pictures): each is written into the staging folder (inside ``folder``) under its own
    name. On a clean exit they are moved into ``folder`` with :func:`replacing_together`,
    ``last`` (the file that says the set is whole: ``evaluation.json``) after every other,
    and the old ``last`` is removed before the first is moved: however the moves are cut
    short, ``folder`` never holds a ``last`` beside files of another set (a failure while
    moving leaves no ``last``: no set). ``removed``: names of an earlier set's files that
    this one need not write (``mistakes_lab.png``); those it did not write are removed
    with the old ``last``. Nothing is removed until every new file is flushed to disk,
    and from then on SIGINT and SIGTERM are held: a failure or Ctrl-C before that leaves
    the earlier set whole. On an exception before the moves the staging folder is removed
    and ``folder`` left as it was. Staging folders of processes now dead (killed by
    SIGKILL or SIGTERM) are removed first.
    """
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    for stale in stale_staging_folders(folder, last):
        shutil.rmtree(stale, ignore_errors=True)
    staging = folder / f'.{last}.{os.getpid()}.{secrets.token_hex(4)}.tmp'
    staging.mkdir()
    try:
        yield staging
        others = sorted(entry.name for entry in staging.iterdir()
                        if entry.is_file() and entry.name != last)
        names = others + ([last] if (staging / last).is_file() else [])

        def remove_earlier() -> None:
            # The old last first: from here on the folder holds no whole set until the
            # new last is moved in, after every other file.
            for name in [last, *(name for name in removed if name not in others)]:
                (folder / name).unlink(missing_ok=True)

        with replacing_together(*(folder / name for name in names),
                                before_renames=remove_earlier) as temporaries:
            for name, temporary in zip(names, temporaries, strict=True):
                os.replace(staging / name, temporary)
    finally:
        shutil.rmtree(staging, ignore_errors=True)


def stale_staging_folders(folder: str | Path, last: str) -> list[Path]:
    """Return the staging folders :func:`replacing_set` left in ``folder`` in processes
    now dead, for sets whose last file is ``last``.

    A process killed during an evaluation (SIGKILL, or SIGTERM without a handler) leaves
    its hidden staging folder ``.<last>.<pid>.<8 hex>.tmp``; as for
    :func:`stale_temporaries_in`, those of ids that no longer run, or last changed before
    this boot, are listed; those of running processes never.
    """
    pattern = re.compile(re.escape(f'.{last}.') + r'(\d+)\.[0-9a-f]{8}\.tmp')

    def owner(entry: Path) -> int | None:
        found = pattern.fullmatch(entry.name)
        if found is None or entry.is_symlink() or not entry.is_dir():
            return None
        return int(found[1])

    return _left_by_dead_processes(folder, owner)


class _HeldSignals:
    """SIGINT and SIGTERM caught and kept while files are renamed (see :func:`hold_signals`)."""

    def __init__(self) -> None:
        self.previous: dict[int, Any] = {}
        self.pending: list[int] = []

    def catch(self, signum: int, frame: object) -> None:
        self.pending.append(signum)


def _hold_termination() -> _HeldSignals | None:
    """Catch SIGINT and SIGTERM (keeping them) until :func:`_release_termination`.

    Python runs signal handlers in the main thread whichever thread the signal came to, so
    swapping the handlers holds them in a process with threads too; a signal mask would
    not. None (nothing held) outside the main thread, where handlers cannot be set.
    """
    if threading.current_thread() is not threading.main_thread():
        return None
    held = _HeldSignals()
    for signum in (signal.SIGINT, signal.SIGTERM):
        handler = signal.getsignal(signum)
        if handler is None or handler == signal.SIG_IGN:
            continue  # set outside Python (cannot be put back), or ignored anyway
        held.previous[signum] = signal.signal(signum, held.catch)
    return held


def _release_termination(held: _HeldSignals | None) -> None:
    """Put the handlers back; a signal that came meanwhile is raised again now."""
    if held is None:
        return
    for signum, handler in held.previous.items():
        signal.signal(signum, handler)
    if held.pending:
        signal.raise_signal(held.pending[0])


def sha256_of(path: str | Path) -> str:
    """Return the hex sha256 of a file's bytes (read in blocks: a model, an evaluation)."""
    digest = hashlib.sha256()
    with open(path, 'rb') as handle:
        for block in iter(lambda: handle.read(1 << 20), b''):
            digest.update(block)
    return digest.hexdigest()


# Any temporary of :func:`replacing`: .<stem>.<pid>.<8 hex>.tmp<suffix>.
_TEMPORARY = re.compile(r'\.(.+)\.(\d+)\.[0-9a-f]{8}\.tmp(\.[^.]+)?')


def stale_temporaries_in(directory: str | Path, suffixes: tuple[str, ...]) -> list[Path]:
    """Return the temporaries :func:`replacing` left in ``directory`` in processes now dead,
    for any file ending in one of ``suffixes`` (``'.json'``).

    A process killed while replacing a file (kill -9 during a long save) leaves its
    temporary file, named with its process id: those of ids that no longer run can be
    removed, and those last written before this boot (a power cut: after a reboot the id
    may be another process's, often the same node's again). Those of running processes
    written since the boot (perhaps being written now) are never listed.
    """
    def owner(entry: Path) -> int | None:
        found = _TEMPORARY.fullmatch(entry.name)
        if found is None or (found[3] or '') not in suffixes:
            return None
        return int(found[2])

    return _left_by_dead_processes(directory, owner)


def _left_by_dead_processes(folder: str | Path,
                            owner: Callable[[Path], int | None]) -> list[Path]:
    """Return the entries of ``folder`` whose ``owner`` process id no longer runs, or that
    were last changed before this boot; entries ``owner`` gives None are not listed."""
    stale: list[Path] = []
    try:
        entries = list(Path(folder).iterdir())
    except OSError:
        return stale
    boot_s = _boot_time_s()
    for entry in entries:
        pid = owner(entry)
        if pid is None:
            continue
        if not _process_runs(pid) or _written_before(entry, boot_s):
            stale.append(entry)
    return sorted(stale)


def locked_by_another(path: str | Path) -> bool:
    """Return whether an open file elsewhere holds a lock (``flock``) on ``path``.

    A file that is missing, cannot be opened, or lies on a file system without locks
    reads as not locked. The check takes the lock for a moment and lets it go.
    """
    try:
        descriptor = os.open(path, os.O_RDONLY)
    except OSError:
        return False
    try:
        fcntl.flock(descriptor, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        return True
    except OSError:
        return False  # a file system without locks
    finally:
        os.close(descriptor)  # and with it the lock, if this took it
    return False


def _boot_time_s() -> float | None:
    """Return when this machine booted, on the wall clock, or None where unknown."""
    try:
        return time.time() - time.clock_gettime(time.CLOCK_BOOTTIME)
    except (AttributeError, OSError):
        return None


def _written_before(entry: Path, moment_s: float | None) -> bool:
    """Return whether ``entry`` was last modified before ``moment_s``."""
    if moment_s is None:
        return False
    try:
        return entry.stat().st_mtime < moment_s
    except OSError:
        return False


def _process_runs(pid: int) -> bool:
    """Return whether process ``pid`` exists (ours, or another user's)."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def write_bytes_atomic(path: str | Path, data: bytes) -> Path:
    """Write ``data`` to ``path`` atomically; return ``path``."""
    with replacing(path) as temporary:
        with open(temporary, 'xb') as handle:
            handle.write(data)
    return Path(path)


def write_text_atomic(path: str | Path, text: str) -> Path:
    """Write ``text`` (UTF-8) to ``path`` atomically; return ``path``."""
    return write_bytes_atomic(path, text.encode('utf-8'))
