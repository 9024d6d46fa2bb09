"""A free ROS domain for a pytest-xdist worker, reserved as scripts/ros_env.sh reserves one.

ros_env.sh holds a lock file per domain (``<id>.lock`` in ``/dev/shm/plant_disease_ros_domains``
or, where that folder cannot be used, in ``$TMPDIR/plant_disease_ros_domains-<uid>``) for as
long as the shell and its children live. A worker other than the first takes the first
domain of 10..99 whose lock no one holds, in the same folders, and keeps it until it exits:
a demo, another test run and the other workers never get it.
"""

from __future__ import annotations

from dataclasses import dataclass
import fcntl
import os
from pathlib import Path
import tempfile
from typing import IO

FIRST_DOMAIN, LAST_DOMAIN = 10, 99


@dataclass
class DomainLock:
    """A domain id and the open lock file that reserves it (released when closed)."""

    domain: int
    file: IO[bytes]


def lock_folders() -> list[Path]:
    """Return the folders ros_env.sh keeps its domain locks in, in its order."""
    shared = os.environ.get('PLANT_DISEASE_DOMAIN_LOCKS', '/dev/shm/plant_disease_ros_domains')
    private = Path(tempfile.gettempdir()) / f'plant_disease_ros_domains-{os.getuid()}'
    return [Path(shared), private]


def take_free_domain(avoid: int) -> DomainLock:
    """Reserve the first free domain other than ``avoid``, starting past this process's id.

    Raises RuntimeError when every domain of 10..99 is held (or no lock folder is usable):
    two workers on one domain would see each other's nodes, which must not pass silently.
    """
    span = LAST_DOMAIN - FIRST_DOMAIN + 1
    for folder in lock_folders():
        try:
            folder.mkdir(parents=True, exist_ok=True)
        except OSError:
            continue
        for step in range(span):
            domain = FIRST_DOMAIN + (os.getpid() + step) % span
            if domain == avoid:
                continue
            path = folder / f'{domain}.lock'
            try:
                lock_file = open(path, 'ab')  # noqa: SIM115 - held until the worker exits
            except OSError:
                try:
                    lock_file = open(path, 'rb')  # noqa: SIM115 - another user's lock file
                except OSError:
                    continue
            try:
                fcntl.flock(lock_file, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except OSError:
                lock_file.close()
                continue
            return DomainLock(domain, lock_file)
    raise RuntimeError('no free ROS domain (10..99) for this pytest-xdist worker: every '
                       'domain lock is held')
