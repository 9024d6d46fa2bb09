"""Split manifests: the lab ``split.json`` and the field ``field_split.json``, read and checked.

A split manifest records a dataset's train/validation/test assignment (:class:`Split`);
a field split manifest holds one per domain. Reading them needs nothing but the standard
library, so the off-robot tools (the demo field takes its photos from the held-out test
splits) read them without the training layer. :mod:`plant_disease_ros.training.dataset`
and :mod:`plant_disease_ros.training.field_data` re-export these names.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
import json
import os
from pathlib import Path

SPLIT_NAMES = ('train', 'val', 'test')
MANIFEST_VERSION = 1
FIELD_MANIFEST_VERSION = 1


class DatasetError(ValueError):
    """A dataset folder that cannot be used, with the reason in the message."""


@dataclass
class Split:
    """A train/validation/test assignment of a dataset's files."""

    classes: tuple[str, ...]
    seed: int
    fractions: dict[str, float]
    parts: dict[str, list[tuple[str, int]]] = field(default_factory=dict)

    def to_manifest(self, root: Path, skipped: Sequence[str] = (),
                    reasons: Mapping[str, str] | None = None) -> dict:
        """Return the JSON-ready manifest of this split (``root`` stored resolved).

        ``skipped``: the photos that could not be decoded; ``reasons``: why, by photo.
        """
        return {
            'version': MANIFEST_VERSION,
            # Absolute, so that the run can be exported or evaluated from any folder.
            'root': str(Path(root).resolve()),
            'seed': self.seed,
            'fractions': self.fractions,
            'classes': list(self.classes),
            'skipped_unreadable': list(skipped),
            'unreadable_reasons': {path: (reasons or {}).get(path, 'unknown')
                                   for path in skipped},
            'splits': {
                name: [[path, index] for path, index in self.parts[name]]
                for name in SPLIT_NAMES
            },
        }

    @classmethod
    def from_manifest(cls, manifest: dict) -> Split:
        """Rebuild a split from a manifest written by :meth:`to_manifest`.

        Raises :class:`DatasetError` naming the file (when read by :func:`read_manifest`)
        if ``manifest`` is not a split manifest.
        """
        source = getattr(manifest, 'source', None) or 'the split manifest'
        if manifest.get('version') != MANIFEST_VERSION:
            raise DatasetError(f'unsupported split manifest version {manifest.get("version")!r} '
                               f'in {source}')
        missing = [key for key in ('classes', 'seed', 'fractions', 'splits')
                   if key not in manifest]
        if missing:
            hint = ' (a field split manifest: pass it as --field-split)' \
                if 'domains' in manifest else ''
            raise DatasetError(f'{source} is not a split manifest (no '
                               f'{", ".join(repr(key) for key in missing)}){hint}')
        try:
            return cls(
                classes=tuple(str(name) for name in manifest['classes']),
                seed=int(manifest['seed']),
                fractions=dict(manifest['fractions']),
                parts={
                    name: [(str(path), int(index)) for path, index in manifest['splits'][name]]
                    for name in SPLIT_NAMES
                },
            )
        except (KeyError, TypeError, ValueError) as error:
            raise DatasetError(f'{source} is not a valid split manifest ({type(error).__name__}: '
                               f'{error})') from error


class Manifest(dict):
    """A manifest read by :func:`read_manifest`: a dict that knows its file.

    A missing key raises :class:`DatasetError` naming the file (a wrong file passed as a
    manifest then ends in one line, not a ``KeyError`` traceback).
    """

    def __init__(self, data: dict, source: str | os.PathLike) -> None:
        super().__init__(data)
        self.source = str(source)

    def __missing__(self, key: str):
        raise DatasetError(f'{self.source} is not the expected manifest (no {key!r})')


def read_manifest(path: str | os.PathLike) -> Manifest:
    """Read a split manifest (``training.dataset.write_manifest`` writes them) or another JSON one.

    Returns a :class:`Manifest`; raises :class:`DatasetError` if the file cannot be read
    or is not a JSON object.
    """
    try:
        data = json.loads(Path(path).read_text())
    except (OSError, json.JSONDecodeError, UnicodeDecodeError) as error:
        raise DatasetError(f'cannot read split manifest {path}: {error}') from error
    if not isinstance(data, dict):
        raise DatasetError(f'{path} is not a split manifest (not a JSON object)')
    return Manifest(data, path)


def read_field_split(path: str | os.PathLike) -> dict:
    """Read a field split manifest, raising :class:`DatasetError` if it is not one."""
    manifest = read_manifest(path)
    if 'domains' not in manifest and 'classes' in manifest and 'splits' in manifest:
        # The other split file, passed in its place: say so instead of what key is missing.
        raise DatasetError(f'{path} is a lab split manifest, not a field split manifest')
    if manifest.get('version') != FIELD_MANIFEST_VERSION or 'domains' not in manifest:
        raise DatasetError(f'{path} is not a field split manifest (version '
                           f'{FIELD_MANIFEST_VERSION} with "domains")')
    return manifest
