"""The labels file and helpers for PlantVillage-style labels ('Tomato___Early_blight')."""

from __future__ import annotations

import os
from pathlib import Path

from plant_disease_ros.core.interpreter_loader import ModelLoadError

# PlantVillage separates the crop from the condition with three underscores.
LABEL_SEPARATOR = '___'
HEALTHY = 'healthy'


def load_labels(path: str | os.PathLike) -> list[str]:
    """Read one label per line (index = line number); raise ModelLoadError if unusable.

    Surrounding whitespace and trailing blank lines are ignored; a blank or duplicate
    label in the middle of the file would shift the class indices, so it is an error.
    """
    if not str(path):
        raise ModelLoadError('no labels path given')
    label_path = Path(path).expanduser()
    if not label_path.is_file():
        raise ModelLoadError(f'{label_path}: labels file not found')
    try:
        text = label_path.read_text(encoding='utf-8-sig')
    except (OSError, UnicodeDecodeError) as error:
        raise ModelLoadError(f'{label_path}: cannot read labels file: {error}') from error
    labels = [line.strip() for line in text.splitlines()]
    while labels and not labels[-1]:
        labels.pop()
    if not labels:
        raise ModelLoadError(f'{label_path}: labels file is empty')
    seen: dict[str, int] = {}
    for number, label in enumerate(labels, start=1):
        if not label:
            raise ModelLoadError(f'{label_path}: blank label on line {number}')
        if label in seen:
            raise ModelLoadError(
                f'{label_path}: duplicate label {label!r} on lines {seen[label]} and {number}')
        seen[label] = number
    return labels


def crop_of(label: str) -> str:
    """Return the crop of a label ('Tomato___Early_blight' -> 'Tomato'), '' if none."""
    crop, separator, _ = label.partition(LABEL_SEPARATOR)
    return crop if separator else ''


def condition_of(label: str) -> str:
    """Return the condition of a label ('Tomato___Early_blight' -> 'Early_blight').

    A label without a crop part is its own condition.
    """
    _, separator, condition = label.partition(LABEL_SEPARATOR)
    return condition if separator else label


def is_healthy(label: str) -> bool:
    """Return whether the label names a healthy plant ('Tomato___healthy' -> True)."""
    return condition_of(label).strip().lower() == HEALTHY


def display_name(label: str) -> str:
    """Return a readable name: 'Tomato___Early_blight' -> 'Tomato: Early blight'."""
    crop = crop_of(label).replace('_', ' ').strip()
    condition = condition_of(label).replace('_', ' ').strip()
    return f'{crop}: {condition}' if crop else condition
