"""Small photo folders for training tests: a few real photos a class, copied from the data."""

from __future__ import annotations

from collections.abc import Iterable
from pathlib import Path
import shutil


def copy_photos(source: Path, destination: Path, count: int) -> None:
    """Copy the first ``count`` photos of ``source`` (by name) into a new ``destination``."""
    destination.mkdir(parents=True)
    for photo in sorted(source.iterdir())[:count]:
        shutil.copyfile(photo, destination / photo.name)


def class_folder(data_dir: Path, root: Path, classes: Iterable[str], per_class: int) -> Path:
    """Fill ``root`` with ``<class>/`` folders of ``per_class`` photos each; return it."""
    for name in classes:
        copy_photos(data_dir / name, root / name, per_class)
    return root


LEAVES_DIR = Path(__file__).resolve().parents[1] / 'data' / 'leaves'


def leaf_copies(root: Path, classes: Iterable[str], copies: int) -> Path:
    """Fill ``root`` with ``<class>/<n>.jpg``: ``copies`` copies of each class's test leaf
    (``test/data/leaves/<class>.jpg``); return it."""
    for name in classes:
        (root / name).mkdir(parents=True)
        for number in range(copies):
            shutil.copyfile(LEAVES_DIR / f'{name}.jpg', root / name / f'{number}.jpg')
    return root


def touch_tree(root: Path, counts: dict[str, int]) -> Path:
    """Make ``root/<name>/000.jpg``... placeholder files, ``counts[name]`` of each; return it.

    For tests of folder layouts that never decode a photo.
    """
    for name, count in counts.items():
        (root / name).mkdir(parents=True)
        for index in range(count):
            (root / name / f'{index:03d}.jpg').write_bytes(b'x')
    return root
