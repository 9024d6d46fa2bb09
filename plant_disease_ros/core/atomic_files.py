"""Write a file so that it is either the old one or the whole new one. No ROS.

A write that fails halfway (a full disk, a file-size limit, a crash, Ctrl-C) must not
leave a truncated map, model or report where the previous good one was. Everything is
written into a temporary file beside the target, flushed to disk, then renamed over the
target (``os.replace`` is atomic within one file system), and the folder is synced so
the rename survives a power cut.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
import fcntl
import hashlib
import os
from pathlib import Path
import re
import secrets
import time


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
    temporary = path.parent / f'.{path.stem}.{os.getpid()}.{secrets.token_hex(4)}.tmp{path.suffix}'
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
    stale: list[Path] = []
    try:
        entries = list(Path(directory).iterdir())
    except OSError:
        return stale
    boot_s = _boot_time_s()
    for entry in entries:
        found = _TEMPORARY.fullmatch(entry.name)
        if found is None or (found[3] or '') not in suffixes:
            continue
        if not _process_runs(int(found[2])) or _written_before(entry, boot_s):
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
