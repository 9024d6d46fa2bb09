"""Checks, made before a long run, that its output file or folder can be written. No ROS.

Nothing is written here: a folder that does not exist yet is fine when its nearest
existing parent is a writable directory (the run creates the missing ones).
"""

from __future__ import annotations

from collections.abc import Iterable
import os
from pathlib import Path


def directory_problem(directory: str | Path) -> str | None:
    """Return why files cannot be written in ``directory`` (one clause), or ``None``.

    ``directory`` is taken as given (expand ``~`` first where the writer does).
    """
    existing = Path(directory).absolute()
    while not existing.exists() and existing != existing.parent:
        if existing.is_symlink():
            return f'{existing} is a broken symbolic link'
        existing = existing.parent
    if not existing.is_dir():
        return f'{existing} is not a directory'
    if not os.access(existing, os.W_OK | os.X_OK):
        return f'{existing} is not writable'
    return None


def check_output_file(path: str | Path, option: str = '--out', folder_hint: str = '') -> None:
    """Raise ValueError naming ``option`` unless ``path`` can be written as a file.

    ``path`` must not be a directory, nor, given as a string, end in a path separator
    (a folder that does not exist yet; ``folder_hint`` is added to those messages, e.g. what
    file to give instead); an existing file must be writable; else its folder must be
    creatable under a writable directory.
    """
    if isinstance(path, str) and path.endswith(tuple(filter(None, (os.sep, os.altsep)))):
        # Path('x/') drops the slash: the file would be named like the folder meant.
        raise ValueError(f'{option} {path} names a folder (it ends in {path[-1]}){folder_hint}')
    path = Path(path)  # as the caller will write it: no ``~`` expansion here
    if path.is_dir():
        raise ValueError(f'{option} {path} is a directory{folder_hint}')
    if path.exists():
        if not os.access(path, os.W_OK):
            raise ValueError(f'{option} {path} is not writable')
        return
    problem = directory_problem(path.absolute().parent)
    if problem:
        raise ValueError(f'{option} {path}: {problem}')


def check_not_an_input(path: str | Path, inputs: Iterable[str | Path | None],
                       option: str = '--out') -> None:
    """Raise ValueError when ``path`` is one of the files a command reads (``inputs``).

    A command that wrote its result over one of its own inputs would destroy it. Entries
    that are None are skipped; paths are compared resolved (``a/../b`` and links count).
    """
    target = Path(path).resolve()
    for item in inputs:
        if item is not None and Path(item).resolve() == target:
            raise ValueError(f'{option} {path} is one of the inputs ({item}); give another file')


def check_not_inside(path: str | Path, folders: Iterable[str | Path | None],
                     option: str = '--out') -> None:
    """Raise ValueError when the folder ``path`` is (or lies in) one of ``folders``.

    A run that wrote into the folder of photos it reads would add its own outputs to its
    data (a class folder named ``runs``). None entries are skipped; paths are compared
    resolved.
    """
    target = Path(path).resolve()
    for item in folders:
        if item is None:
            continue
        folder = Path(item).resolve()
        if target == folder or folder in target.parents:
            raise ValueError(f'{option} {path} lies in the photo folder {item}; give a folder '
                             'outside it (e.g. runs/NAME)')
