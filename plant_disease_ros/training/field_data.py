"""Field photos and non-leaf scenes: a seeded split manifest and the decoded arrays.

The field-fit recipe trains on four domains:

- ``lab``: PlantVillage, split by the lab model's own ``split.json`` (kept unchanged);
- one domain per field photo set: every subfolder of the field folder (``<set>/<class>/
  <photo>``; the shared data holds ``plantdoc`` and ``pp2021_apple``, which come first, in
  that order), whose class names are model labels;
- ``negatives``: non-leaf field scenes in ``<kind>/<photo>`` folders, all labelled
  :data:`NO_LEAF`.

:func:`make_field_split` splits the last three per class (stratified, seeded) and returns
a manifest (``field_split.json``) that holds, per domain, a split manifest of
:mod:`dataset` plus the map from its folder names to model labels. Nothing here imports
TensorFlow. :func:`read_field_split` lives in :mod:`plant_disease_ros.core.split_manifest`
(the demo field reads it without the training layer) and is re-exported here.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
import hashlib
import json
import os
from pathlib import Path
import sys
import time

import numpy as np

from plant_disease_ros.core.outcome import NO_LEAF_LABEL
from plant_disease_ros.core.split_manifest import (
    FIELD_MANIFEST_VERSION,
    read_field_split,  # noqa: F401
)
from plant_disease_ros.training.dataset import (
    DatasetError,
    load_images,
    scan_dataset,
    Split,
    split_files,
)

NO_LEAF = NO_LEAF_LABEL
LAB_DOMAIN = 'lab'
NEGATIVES_DOMAIN = 'negatives'
# The shared field sets, in the order the shipped field split lists them; any other set
# (a subfolder of the field folder) follows them, by name.
FIELD_DOMAINS = ('plantdoc', 'pp2021_apple')
# Domain names the recipe gives itself (field_train's validation adds ``synthetic``).
RESERVED_DOMAINS = (LAB_DOMAIN, NEGATIVES_DOMAIN, 'synthetic')
DEFAULT_VAL_FRACTION = 0.15
DEFAULT_TEST_FRACTION = 0.25


@dataclass(frozen=True)
class DomainSource:
    """A photo folder of one domain and how its folder names map to model labels."""

    name: str
    root: Path
    negative: bool = False  # every folder (a kind of scene) maps to ``no_leaf``


def default_sources(field_dir: str | os.PathLike,
                    negatives_dir: str | os.PathLike) -> list[DomainSource]:
    """Return a domain per field photo set under ``field_dir``, then the negatives domain.

    Every subfolder of ``field_dir`` (not hidden) is a set: the shared sets
    (:data:`FIELD_DOMAINS`) first, in that order, then the others by name. A missing
    ``field_dir``, one with no sets, or a set named like another domain is refused
    (:class:`DatasetError`).
    """
    field_dir = Path(field_dir)
    if not field_dir.is_dir():
        raise DatasetError(f'field data {field_dir} is not a folder: expected '
                           '<field data>/<set>/<class>/<image files>')
    names = sorted(entry.name for entry in field_dir.iterdir()
                   if entry.is_dir() and not entry.name.startswith('.'))
    if not names:
        raise DatasetError(f'{field_dir} holds no field photo sets: expected '
                           '<field data>/<set>/<class>/<image files>')
    clashing = [name for name in names if name in RESERVED_DOMAINS]
    if clashing:
        raise DatasetError(f'field photo sets in {field_dir} named like another domain: '
                           f'{", ".join(clashing)}; rename them')
    names = ([name for name in FIELD_DOMAINS if name in names]
             + [name for name in names if name not in FIELD_DOMAINS])
    sources = [DomainSource(name, field_dir / name) for name in names]
    sources.append(DomainSource(NEGATIVES_DOMAIN, Path(negatives_dir), negative=True))
    return sources


def model_labels(lab_classes: Sequence[str]) -> list[str]:
    """Return the output labels of the field-fit model: the lab classes, then ``no_leaf``."""
    return [*lab_classes, NO_LEAF]


def make_field_split(sources: Sequence[DomainSource], labels: Sequence[str],
                     lab_split_path: str | os.PathLike, seed: int = 42,
                     val_fraction: float = DEFAULT_VAL_FRACTION,
                     test_fraction: float = DEFAULT_TEST_FRACTION) -> dict:
    """Split every domain of ``sources`` per folder (stratified, seeded); return the manifest.

    The lab split is not redone: the manifest names ``lab_split_path`` (by file name; it
    is expected beside the manifest, as ``models/split.json`` is beside
    ``models/field_split.json``) and its SHA-256, so a reader can check it is the split the
    lab model was tested on.
    """
    lab_split_path = Path(lab_split_path)
    domains = {}
    for source in sources:
        index = scan_dataset(source.root, min_classes=1)
        label_map = {name: (NO_LEAF if source.negative else name) for name in index.classes}
        unknown = sorted({label for label in label_map.values() if label not in labels})
        if unknown:
            raise DatasetError(f'{source.root}: folders that are not model labels: '
                               f'{", ".join(unknown)}')
        split = split_files(index.files, index.classes, seed=seed, val_fraction=val_fraction,
                            test_fraction=test_fraction)
        entry = split.to_manifest(source.root)
        entry['label_map'] = label_map
        entry['negative'] = source.negative
        domains[source.name] = entry
    return {
        'version': FIELD_MANIFEST_VERSION,
        'seed': seed,
        'labels': list(labels),
        'lab_split': {'path': lab_split_path.name,
                      'sha256': hashlib.sha256(lab_split_path.read_bytes()).hexdigest()},
        'domains': domains,
    }


def write_field_split(path: str | os.PathLike, manifest: dict) -> Path:
    """Write a field split manifest as JSON and return its path."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(manifest, indent=1) + '\n')
    return path


def domain_files(manifest: dict, domain: str, part: str,
                 root: str | os.PathLike | None = None,
                 ) -> tuple[Path, list[tuple[str, int]], list[str]]:
    """Return ``(root, files, classes)`` of one domain's part, labels as model indices.

    ``files`` pairs each photo (relative to ``root``) with its index in
    ``manifest['labels']``; ``classes`` are the model labels (for the caller's tables).
    ``root`` overrides the manifest's folder (a manifest written elsewhere).
    """
    entry = manifest['domains'].get(domain)
    if entry is None:
        raise DatasetError(f'domain {domain!r} not in the field split '
                           f'(has {", ".join(manifest["domains"])})')
    split = Split.from_manifest(entry)
    labels = list(manifest['labels'])
    to_label = [labels.index(entry['label_map'][name]) for name in split.classes]
    files = [(path, to_label[index]) for path, index in split.parts[part]]
    return Path(root or entry['root']), files, labels


def lab_files(lab_manifest: dict, labels: Sequence[str], part: str,
              root: str | os.PathLike | None = None) -> tuple[Path, list[tuple[str, int]]]:
    """Return ``(root, files)`` of a lab split part with labels as model indices."""
    split = Split.from_manifest(lab_manifest)
    missing = [name for name in split.classes if name not in labels]
    if missing:
        raise DatasetError(f'lab classes missing from the model labels: {", ".join(missing)}')
    to_label = [list(labels).index(name) for name in split.classes]
    files = [(path, to_label[index]) for path, index in split.parts[part]]
    return Path(root or lab_manifest['root']), files


def resolve_lab_split(manifest: dict, manifest_path: str | os.PathLike) -> Path:
    """Return the lab split file a field manifest names (beside the manifest, or as named)."""
    named = Path(manifest['lab_split']['path'])
    beside = Path(manifest_path).parent / named.name
    for candidate in (beside, named):
        if candidate.is_file():
            return candidate
    raise DatasetError(f'lab split {named.name} named by {manifest_path} not found beside it')


def load_domain(root: Path, files: Sequence[tuple[str, int]], size: int,
                cache_dir: str | os.PathLike | None, label: str,
                ) -> tuple[np.ndarray, np.ndarray, list[tuple[str, int]]]:
    """Decode (or read from the cache) one domain part; drop unreadable photos.

    Returns ``(images, labels, kept files)``; one line on stderr says what was decoded.
    """
    started = time.monotonic()
    images, labels, unreadable = load_images(root, files, size, cache_dir=cache_dir)
    print(f'{label}: {len(labels)} photos at {size} px ({len(unreadable)} unreadable, '
          f'{time.monotonic() - started:.0f} s)', file=sys.stderr, flush=True)
    skipped = set(unreadable)
    return images, labels, [item for item in files if item[0] not in skipped]
