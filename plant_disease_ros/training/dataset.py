"""Leaf-photo datasets: scan a class-folder tree, split it reproducibly, decode and cache it.

A dataset is any folder laid out as ``<root>/<class name>/<image>`` (the PlantVillage
layout). Class order is the sorted folder names; it becomes the model's output order.
Nothing here imports TensorFlow: the arrays it returns feed Keras, the evaluator and the
explainers alike. The split manifest itself (:class:`Split`, :func:`read_manifest`)
lives in :mod:`plant_disease_ros.core.split_manifest` and is re-exported here.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
import hashlib
import json
import os
from pathlib import Path
import random
import re
import sys
import time
import zipfile

import cv2
import numpy as np

from plant_disease_ros.core.image_encoding import (
    check_compressed_payload,
    compressed_codec,
    compressed_to_rgb,
    ImageConversionError,
)
from plant_disease_ros.core.labels import crop_of, is_healthy
from plant_disease_ros.core.split_manifest import (
    DatasetError,
    Manifest,  # noqa: F401
    MANIFEST_VERSION,  # noqa: F401
    read_manifest,  # noqa: F401
    Split,
    SPLIT_NAMES,
)

IMAGE_SUFFIXES = ('.jpg', '.jpeg', '.png', '.bmp')
ALPHA_BACKGROUND = (0, 0, 0)
"""What a transparent pixel of a training photo shows: black, as in PlantVillage's
segmented release of leaves cut from their background."""
DECODER_VERSION = 3
"""Part of the decode cache's key: raised when :func:`read_photo` decodes a file otherwise
(2: truncated JPEGs refused, transparency blended over :data:`ALPHA_BACKGROUND`; 3: the
EXIF orientation of JPEGs applied again, an all-zero alpha ignored)."""



@dataclass(frozen=True)
class DatasetIndex:
    """The classes of a dataset and its image files, relative to ``root``."""

    root: Path
    classes: tuple[str, ...]
    files: tuple[tuple[str, int], ...]  # (path relative to root, class index)
    # Entries that are not read as photos (relative to root): another suffix, a folder
    # inside a class folder, a file beside the class folders, a broken link.
    ignored: tuple[str, ...] = ()

    def ignored_summary(self) -> str | None:
        """Return one line saying what was not read as photos, or None when nothing was."""
        if not self.ignored:
            return None
        kinds: dict[str, int] = {}
        for entry in self.ignored:
            path = self.root / entry
            if '/' not in entry:
                kind = 'beside the class folders'
            elif path.is_dir():
                kind = 'folders inside a class folder (not searched)'
            elif not path.exists():
                kind = 'broken links'
            else:
                kind = f'{Path(entry).suffix.lower() or "no suffix"} files'
            kinds[kind] = kinds.get(kind, 0) + 1
        counts = ', '.join(f'{count} {kind}' for kind, count in sorted(kinds.items()))
        return (f'not read as photos ({", ".join(IMAGE_SUFFIXES)} in class folders): '
                f'{counts}, e.g. {self.ignored[0]}')

    def class_counts(self) -> dict[str, int]:
        """Return the number of files of each class."""
        counts = {name: 0 for name in self.classes}
        for _, index in self.files:
            counts[self.classes[index]] += 1
        return counts


def _class_name_problem(name: str) -> str | None:
    """Return why a class folder's name cannot be a label, or None.

    The name becomes a line of the exported ``labels.txt``: it must be valid UTF-8, have
    no control character and no line break of any kind (the labels file is split into
    lines by :meth:`str.splitlines`, which also breaks at U+0085, U+2028 and U+2029: the
    name would become two labels) and no leading or trailing space (two folders would then
    give the same label).
    """
    if not is_utf8(name):
        return 'its name is not valid UTF-8'
    if any(ord(character) < 32 or ord(character) == 127 for character in name):
        return 'its name holds a control character (a tab or a line break)'
    if len(f'{name}.'.splitlines()) > 1:
        breaks = sorted({f'U+{ord(character):04X}' for character in name
                         if len(f'a{character}a'.splitlines()) > 1})
        return f'its name holds a line break ({", ".join(breaks)}): labels.txt would ' \
               'split it into two labels'
    if name != name.strip():
        return 'its name starts or ends with a space'
    return None


def naming_note(classes: Sequence[str]) -> str | None:
    """Return a warning for class names the robot cannot read as crop and condition.

    The nodes take ``Crop___condition`` apart (:mod:`plant_disease_ros.core.labels`): only a
    condition named ``healthy`` is mapped as healthy (every other label is a disease on
    the map), and the ``crops`` parameter filters by the crop part. ``None`` when every
    name has both parts and every name that says healthy is read as healthy.
    """
    unread = [name for name in classes if not is_healthy(name)
              and 'healthy' in re.split('[^a-z]+', name.lower())]  # not 'unhealthy'
    no_crop = [name for name in classes if not crop_of(name)]
    if not unread and not no_crop:
        return None
    parts = []
    if unread:
        parts.append(f'{len(unread)} class name(s) say healthy but will be mapped as a '
                     f'disease ({", ".join(unread[:3])}{", ..." if len(unread) > 3 else ""}): '
                     'only a condition named exactly healthy counts, as in Tomato___healthy')
    if no_crop:
        parts.append(f'{len(no_crop)} class name(s) have no crop part before ___ '
                     f'({", ".join(no_crop[:3])}{", ..." if len(no_crop) > 3 else ""}): the '
                     "nodes' crops parameter cannot select them")
    return 'class names: ' + '; '.join(parts) + '. Rename the folders to Crop___condition.'


def scan_dataset(root: str | os.PathLike, min_classes: int = 2) -> DatasetIndex:
    """Index a folder of class folders, raising :class:`DatasetError` when it is unusable.

    ``min_classes`` is 2 for a classifier's own data; 1 suits an extra photo set (field
    photos of one class) added to other data.
    """
    root = Path(root)
    if not root.is_dir():
        raise DatasetError(f'dataset path {root} is not a folder')
    class_dirs = sorted(entry for entry in root.iterdir() if entry.is_dir()
                        and not entry.name.startswith('.'))
    if not class_dirs:
        raise DatasetError(
            f'{root} holds no class folders: expected <root>/<class name>/<image files>')
    for class_dir in class_dirs:
        problem = _class_name_problem(class_dir.name)
        if problem:
            raise DatasetError(f'class folder {class_dir.name!r} in {root}: {problem}; '
                               'rename it')
    files: list[tuple[str, int]] = []
    empty: list[str] = []
    ignored = [entry.name for entry in sorted(root.iterdir())
               if not entry.name.startswith('.') and not entry.is_dir()]
    for index, class_dir in enumerate(class_dirs):
        images = []
        for path in sorted(class_dir.iterdir()):
            if path.is_file() and path.suffix.lower() in IMAGE_SUFFIXES:
                images.append(path)
            elif not path.name.startswith('.'):
                ignored.append(str(path.relative_to(root)))
        if not images:
            empty.append(class_dir.name)
        files.extend((str(path.relative_to(root)), index) for path in images)
    if empty:
        raise DatasetError(f'class folders without images in {root}: '
                           + '; '.join(_what_is_in(root / name) for name in empty)
                           + f' (photos are {", ".join(IMAGE_SUFFIXES)} files directly in a '
                           'class folder)')
    if len(class_dirs) < min_classes:
        raise DatasetError(
            f'{root} has a single class ({class_dirs[0].name}); a classifier needs two or more')
    return DatasetIndex(root=root, classes=tuple(d.name for d in class_dirs),
                        files=tuple(files), ignored=tuple(ignored))


def _what_is_in(class_dir: Path, shown: int = 3) -> str:
    """Return a class folder's name and what it holds that is not read as photos."""
    found = sorted(entry.name for entry in class_dir.iterdir()
                   if not entry.name.startswith('.'))
    if not found:
        return f'{class_dir.name} (empty)'
    kinds: dict[str, int] = {}
    for name in found:
        kind = 'folders' if (class_dir / name).is_dir() \
            else f'{Path(name).suffix.lower() or "no suffix"} files'
        kinds[kind] = kinds.get(kind, 0) + 1
    counts = ', '.join(f'{count} {kind}' for kind, count in sorted(kinds.items()))
    names = ', '.join(found[:shown]) + (', ...' if len(found) > shown else '')
    return f'{class_dir.name} (holds {counts}: {names})'


def split_files(files: Sequence[tuple[str, int]], classes: Sequence[str], seed: int = 42,
                val_fraction: float = 0.15, test_fraction: float = 0.15) -> Split:
    """Split files per class (stratified), deterministically for a given seed.

    Each class's files are sorted, shuffled with a generator seeded from ``seed`` and the
    class name, then cut into test, validation and train parts. Every class with three or
    more files gets at least one test, one validation and one training file (when the
    fraction of that part is above zero).
    """
    if not 0 <= val_fraction < 1 or not 0 <= test_fraction < 1 \
            or val_fraction + test_fraction >= 1:
        raise DatasetError('val and test fractions must be in [0, 1) and sum below 1')
    by_class: dict[int, list[str]] = {index: [] for index in range(len(classes))}
    for path, index in files:
        by_class[index].append(path)
    parts: dict[str, list[tuple[str, int]]] = {name: [] for name in SPLIT_NAMES}
    for index, paths in by_class.items():
        paths = sorted(paths)
        class_seed = int(hashlib.sha256(f'{seed}:{classes[index]}'.encode()).hexdigest()[:16], 16)
        random.Random(class_seed).shuffle(paths)
        # Leave room for a validation file too (only very large test fractions need it).
        n_test = _part_size(len(paths), test_fraction, keep=2 if val_fraction > 0 else 1)
        # The share of the remaining files that is val_fraction of the class; the class
        # size (not the remainder) decides whether it gets a validation file at all.
        n_val = _part_size(len(paths) - n_test, val_fraction * len(paths)
                           / max(1, len(paths) - n_test), class_size=len(paths))
        parts['test'].extend((p, index) for p in paths[:n_test])
        parts['val'].extend((p, index) for p in paths[n_test:n_test + n_val])
        parts['train'].extend((p, index) for p in paths[n_test + n_val:])
    return Split(classes=tuple(classes), seed=seed,
                 fractions={'val': val_fraction, 'test': test_fraction}, parts=parts)


def _part_size(count: int, fraction: float, class_size: int | None = None,
               keep: int = 1) -> int:
    """Return how many of ``count`` files go to a part of share ``fraction``.

    At least one if ``fraction`` is positive and the class (``class_size`` files, by
    default ``count``) has three or more; always leaving ``keep`` of the ``count`` behind.
    """
    if fraction <= 0 or count - keep < 1 or (count if class_size is None else class_size) < 3:
        return 0
    return max(1, min(count - keep, round(count * fraction)))


def write_manifest(path: str | os.PathLike, split: Split, root: Path,
                   skipped: Sequence[str] = (),
                   reasons: Mapping[str, str] | None = None) -> None:
    """Write the split manifest as JSON (``reasons``: why each skipped photo was)."""
    Path(path).write_text(json.dumps(split.to_manifest(root, skipped, reasons), indent=1)
                          + '\n')


def is_utf8(name: str) -> bool:
    """Return whether a file name (as :func:`os.fsdecode` gives it) is valid UTF-8."""
    try:
        name.encode('utf-8')
    except UnicodeEncodeError:
        return False
    return True


def printable(path: str | os.PathLike) -> str:
    """Return ``path`` as text any output can hold: bytes that are not UTF-8 as ``\\xff``."""
    return os.fsencode(path).decode('utf-8', 'backslashreplace')


class UnreadablePhoto(ValueError):
    """A photo that cannot be used, with the file and the reason in the message."""


def read_photo(path: str | os.PathLike) -> np.ndarray:
    """Decode an image file as RGB uint8 at its own size; :class:`UnreadablePhoto` if not.

    The robot's decoder (:func:`~plant_disease_ros.core.image_encoding.compressed_to_rgb`)
    checks it, so a training photo meets a camera frame's checks; a JPEG is turned by its
    EXIF orientation, as photo viewers show it. Refused: a
    file that cannot be opened, a truncated JPEG (libjpeg would pad it with grey and train
    on that), one whose header claims more pixels than a camera gives and one OpenCV
    cannot decode, and a file whose name is not valid UTF-8 (its bytes kept by Python as
    surrogates, which no UTF-8 table, report or figure title can hold). A photo with
    transparency (a leaf cut out of its background) is blended over
    :data:`ALPHA_BACKGROUND`, not shown with the colours its transparent pixels store.
    """
    if not is_utf8(Path(path).name):
        raise UnreadablePhoto(f'cannot use {printable(path)}: its file name is not valid '
                              'UTF-8, so it could not be written to predictions.csv or a '
                              'report; rename it')
    try:
        data = np.fromfile(str(path), dtype=np.uint8)
    except OSError as error:
        raise UnreadablePhoto(f'cannot read {path}: {error.strerror or error}') from error
    try:
        if compressed_codec('', data) != 'jpeg':
            return compressed_to_rgb(data, alpha_background=ALPHA_BACKGROUND)
        # A JPEG has no alpha, but may have an EXIF orientation (a phone held upright):
        # the colour decode applies it, as every photo viewer does.
        check_compressed_payload(data)
        bgr = cv2.imdecode(data, cv2.IMREAD_COLOR)
    except (ImageConversionError, cv2.error) as error:
        raise UnreadablePhoto(f'cannot decode {path}: {error}') from error
    if bgr is None or bgr.size == 0:
        raise UnreadablePhoto(f'cannot decode {path}: not a readable JPEG')
    return cv2.cvtColor(bgr, cv2.COLOR_BGR2RGB)


def read_rgb(path: str | os.PathLike) -> np.ndarray | None:
    """Return :func:`read_photo`'s pixels, or None for an unreadable photo.

    For datasets: one such photo is skipped and counted, it does not end a training run.
    """
    try:
        return read_photo(path)
    except UnreadablePhoto:
        return None


def decode_rgb(path: str | os.PathLike, size: int) -> np.ndarray | None:
    """Decode an image file as RGB uint8 resized to ``size``×``size``, or None if unreadable.

    Resizing uses area interpolation, the same as the robot-side preprocessing
    (:func:`plant_disease_ros.core.preprocessing.resize_to_input`).
    """
    rgb = read_rgb(path)
    if rgb is None:
        return None
    return cv2.resize(rgb, (size, size), interpolation=cv2.INTER_AREA)


ProgressCallback = Callable[[int, int], None]


def print_progress(label: str) -> ProgressCallback:
    """Return a callback that prints ``label done/total`` to stderr.

    On a terminal one line is rewritten about every 2 %; in a log file (stderr not a
    terminal) a full line is printed every 25 %, without carriage returns.
    """
    started = time.monotonic()
    terminal = bool(getattr(sys.stderr, 'isatty', None) and sys.stderr.isatty())

    def report(done: int, total: int) -> None:
        step = max(1, total // (50 if terminal else 4))
        if done == total or done % step == 0:
            elapsed = time.monotonic() - started
            text = f'{label}: {done}/{total} ({100 * done // max(total, 1)} %, ' \
                   f'{elapsed:.0f} s)'
            if terminal:
                print(f'\r{text}', end='\n' if done == total else '', file=sys.stderr,
                      flush=True)
            else:
                print(text, file=sys.stderr, flush=True)

    return report


def load_images(root: Path, files: Sequence[tuple[str, int]], size: int,
                cache_dir: str | os.PathLike | None = None,
                progress: ProgressCallback | None = None,
                ) -> tuple[np.ndarray, np.ndarray, list[str]]:
    """Decode ``files`` into ``(images uint8 N×size×size×3, labels int32 N, unreadable)``.

    With ``cache_dir`` the decoded arrays are stored in a ``.npz`` keyed by the file list,
    the files' sizes and modification times and ``size``, so later epochs and runs skip
    JPEG decoding, and a photo changed in place is decoded again.
    """
    cache_path = None
    if cache_dir is not None:
        key = hashlib.sha256()
        key.update(os.fsencode(f'{root.resolve()}|{size}|decoder {DECODER_VERSION}'))
        for path, index in files:
            full = root / path
            try:
                stat = full.stat()
                # The modification time too: a photo fixed in place is decoded again.
                version = f'{stat.st_size}|{stat.st_mtime_ns}'
            except OSError:
                version = '-1'
            # os.fsencode: a file name that is not valid UTF-8 keeps its bytes.
            key.update(os.fsencode(f'{path}|{index}|{version}'))
        cache_path = Path(cache_dir) / f'images_{size}px_{key.hexdigest()[:20]}.npz'
        if cache_path.exists():
            cached = read_cache(cache_path)
            if cached is not None:
                return cached
    images = np.empty((len(files), size, size, 3), dtype=np.uint8)
    labels = np.empty((len(files),), dtype=np.int32)
    unreadable: list[str] = []
    kept = 0
    for number, (path, index) in enumerate(files, start=1):
        rgb = decode_rgb(root / path, size)
        if rgb is None:
            unreadable.append(path)
        else:
            images[kept] = rgb
            labels[kept] = index
            kept += 1
        if progress is not None:
            progress(number, len(files))
    images, labels = images[:kept], labels[:kept]
    if cache_path is not None:
        cache_path.parent.mkdir(parents=True, exist_ok=True)
        tmp = cache_path.with_suffix('.tmp.npz')
        np.savez(tmp, images=images, labels=labels, unreadable=np.array(unreadable, dtype=str))
        os.replace(tmp, cache_path)
    return images, labels, unreadable


def read_cache(path: Path) -> tuple[np.ndarray, np.ndarray, list[str]] | None:
    """Return the arrays of a decode cache file, or None (and say so) if it is unreadable.

    A file cut short (a full disk, a killed copy) or otherwise damaged is a cache miss: the
    photos are decoded again and the file is written anew.
    """
    try:
        with np.load(path, allow_pickle=False) as cached:
            return cached['images'], cached['labels'], list(cached['unreadable'])
    except (OSError, ValueError, KeyError, EOFError, zipfile.BadZipFile) as error:
        print(f'decode cache {path} is unreadable ({type(error).__name__}: {error}): '
              'decoding the photos again and rewriting it', file=sys.stderr)
        return None


def unreadable_reasons(root: Path, paths: Sequence[str]) -> dict[str, str]:
    """Return why each photo of ``paths`` (under ``root``) cannot be decoded, by path.

    :func:`load_images` lists them (its cache keeps no reason): each is read again, and
    the reason names it by its path under ``root``.
    """
    reasons = {}
    for path in paths:
        try:
            read_photo(Path(root) / path)
            reasons[path] = 'decoded now: it changed after it was read'
        except UnreadablePhoto as error:
            full = Path(root) / path
            reasons[path] = str(error).replace(str(full), path).replace(
                printable(full), printable(path))
    return reasons


def describe_unreadable(reasons: Mapping[str, str], where: str, shown: int = 5) -> str:
    """Return the lines that name the skipped photos and why: the first ``shown``, a count.

    ``where``: where all of them are listed (``'split.json'``).
    """
    lines = [f'skipped {len(reasons)} unreadable photo(s) (all listed with the reason in '
             f'{where}):']
    lines += [f'  {reason}' for reason in list(reasons.values())[:shown]]
    if len(reasons) > shown:
        lines.append(f'  ... and {len(reasons) - shown} more')
    return '\n'.join(lines)


def subsample(files: Sequence[tuple[str, int]], per_class: int,
              seed: int = 0) -> list[tuple[str, int]]:
    """Keep at most ``per_class`` files of each class, chosen deterministically."""
    by_class: dict[int, list[tuple[str, int]]] = {}
    for item in sorted(files):
        by_class.setdefault(item[1], []).append(item)
    kept: list[tuple[str, int]] = []
    for index in sorted(by_class):
        items = by_class[index]
        random.Random(seed + index).shuffle(items)
        kept.extend(sorted(items[:per_class]))
    return kept
