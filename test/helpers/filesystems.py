"""Small real file systems for fault tests: a tmpfs (or a loop-mounted ext4 image).

A full disk or a read-only directory is injected for real: the code under test gets the
kernel's ENOSPC or EROFS, not a mock. Mounting needs root (CI runs as root); where
neither a tmpfs nor a loop device can be mounted the test is skipped with the reason.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
import errno
import os
from pathlib import Path
import shutil
import subprocess

import pytest

CHUNK_SIZES = (65536, 4096, 512, 1)


def _run(argv: list[str]) -> str | None:
    """Run ``argv``; return its error text, or ``None`` when it succeeded."""
    if shutil.which(argv[0]) is None:
        return f'{argv[0]} not found'
    result = subprocess.run(argv, capture_output=True, text=True, timeout=60)
    if result.returncode == 0:
        return None
    return (result.stderr or result.stdout).strip() or f'exit status {result.returncode}'


def _mount(mount_point: Path, size_kib: int, read_only: bool, work_dir: Path) -> str | None:
    """Mount a tmpfs, else an ext4 image, at ``mount_point``; return why neither worked."""
    options = f'size={size_kib}k,mode=0777' + (',ro' if read_only else '')
    tmpfs_error = _run(['mount', '-t', 'tmpfs', '-o', options, 'tmpfs', str(mount_point)])
    if tmpfs_error is None:
        return None
    image = work_dir / f'{mount_point.name}.ext4'
    with open(image, 'wb') as handle:
        handle.truncate(max(size_kib, 1024) * 1024)
    loop_error = (_run(['mkfs.ext4', '-q', '-F', '-m', '0', str(image)])
                  or _run(['mount', '-o', 'loop' + (',ro' if read_only else ''), str(image),
                           str(mount_point)]))
    if loop_error is None:
        if not read_only:
            os.chmod(mount_point, 0o777)
        return None
    return f'tmpfs: {tmpfs_error}; loop ext4: {loop_error}'


def mount_small(mount_point: Path, size_kib: int = 64, read_only: bool = False) -> str | None:
    """Mount a small file system at ``mount_point`` (created); return why it failed, or None."""
    mount_point.mkdir(parents=True, exist_ok=True)
    return _mount(mount_point, size_kib, read_only, mount_point.parent)


def unmount(mount_point: Path) -> None:
    """Unmount ``mount_point`` (lazily: a file left open must not keep it mounted)."""
    _run(['umount', '-l', str(mount_point)])


@contextmanager
def small_filesystem(mount_point: Path, size_kib: int = 64,
                     read_only: bool = False) -> Iterator[Path]:
    """Mount a small file system at ``mount_point`` for a block; unmount it afterwards.

    Skips the test when it cannot be mounted (not root, no tmpfs, no loop device).
    """
    reason = mount_small(mount_point, size_kib, read_only)
    if reason is not None:
        pytest.skip(f'cannot mount a small file system (needs root): {reason}')
    try:
        yield mount_point
    finally:
        unmount(mount_point)


def fill(path: Path) -> int:
    """Write ``path`` until the file system refuses (ENOSPC); return the bytes written."""
    written = 0
    with open(path, 'wb', buffering=0) as handle:
        for size in CHUNK_SIZES:
            block = b'\0' * size
            while True:
                try:
                    count = handle.write(block)
                except OSError as error:
                    if error.errno not in (errno.ENOSPC, errno.EDQUOT):
                        raise
                    break
                written += count or 0
                if not count or count < size:
                    break
    return written


# Device numbers of a simulated USB stick (see FakeMounts), and of the same stick plugged in
# again, which gets another number.
STICK = os.makedev(8, 17)
STICK_AGAIN = os.makedev(8, 33)


class FakeMounts:
    """A ``device_of`` hook: folders that report the device of a stick mounted on them.

    A path at or below a fake mount point reports that mount's device, any other path its
    real ``st_dev``; a path that does not exist raises FileNotFoundError as os.stat does.
    """

    def __init__(self, root: Path) -> None:
        """Keep a pulled stick's files in ``root``/stick_contents."""
        self.mounts: dict[Path, int] = {}
        self._away = root / 'stick_contents'  # where a pulled stick's files are kept
        assert os.stat(root).st_dev not in (STICK, STICK_AGAIN)

    def __call__(self, path: Path) -> int:
        """Return the device ``path`` is on: a plugged stick's, else the real one."""
        real = os.stat(path).st_dev
        path = Path(path).absolute()
        for point in (path, *path.parents):
            if point in self.mounts:
                return self.mounts[point]
        return real

    def is_mount(self, path: Path) -> bool:
        """Return whether a stick is plugged in on ``path`` (an ``os.path.ismount`` hook)."""
        return Path(path).absolute() in self.mounts

    def plug(self, mount_point: Path, device: int) -> None:
        """Mount the stick on ``mount_point``: its files (if pulled before) are back."""
        mount_point.mkdir(parents=True, exist_ok=True)
        if self._away.exists():
            for item in sorted(self._away.iterdir()):
                item.rename(mount_point / item.name)
            self._away.rmdir()
        self.mounts[mount_point.absolute()] = device

    def pull(self, mount_point: Path) -> None:
        """Unmount it: its files leave, the bare mount point is on its parent's device."""
        self._away.mkdir()
        for item in sorted(mount_point.iterdir()):
            item.rename(self._away / item.name)
        del self.mounts[mount_point.absolute()]
