"""The crops a field grows: scores restricted to their labels (no ROS, no TensorFlow).

A robot in an apple orchard knows it is in an apple orchard. Told so (the classifier's
``crops`` parameter, ``evaluate --crops``), it should never put ``Tomato___Late_blight``
on the map, and a frame the model finds half apple scab and half tomato leaf mould is an
apple scab. :class:`CropFilter` does that with the model's own probabilities: the labels
of other crops get 0 and the rest are divided by what they hold together, so each score
is the model's probability *given that the frame shows one of these crops or no leaf*.
Labels without a crop part (``no_leaf``, or every label of a model trained on condition
names only) are always kept.

Crop names are matched without regard to case, spaces, underscores and punctuation:
``apple``, ``Apple`` and ``APPLE`` name ``Apple___*``; ``pepper bell`` names
``Pepper,_bell___*``.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
import re

import numpy as np

from plant_disease_ros.core.labels import crop_of

# Separators of a crops list given as one string ('Apple, Tomato' or 'Apple;Tomato').
_LIST_SEPARATORS = re.compile(r'[,;]')


def crop_key(name: str) -> str:
    """Return the form crop names are compared in: lower case letters and digits only."""
    return ''.join(character for character in name.lower() if character.isalnum())


def model_crops(labels: Sequence[str]) -> list[str]:
    """Return the crops named by ``labels``, in label order, each once."""
    return list(dict.fromkeys(crop for crop in map(crop_of, labels) if crop))


def parse_crops(text: str) -> list[str]:
    """Return the crop names of a comma- or semicolon-separated list ('' -> [])."""
    return [part.strip() for part in _LIST_SEPARATORS.split(text) if part.strip()]


def crop_names(value: object) -> list[str]:
    """Return the crop names of a setting: a comma-separated string or a list of strings.

    TypeError for any other type (a number, a boolean, a list of numbers).
    """
    if isinstance(value, str):
        return parse_crops(value)
    if isinstance(value, (list, tuple)) and all(isinstance(item, str) for item in value):
        return [item.strip() for item in value if item.strip()]
    raise TypeError(f'crops must be a string or a list of strings, got {value!r}')


class CropFilter:
    """Restrict a model's probabilities to the labels of some crops (see the module).

    An empty crop list keeps every label: the filter is then inactive and returns the
    probabilities unchanged.
    """

    def __init__(self, labels: Sequence[str], crops: Iterable[str] = ()) -> None:
        """Check ``crops`` against the crops of ``labels``; ValueError names the known ones."""
        self.labels = list(labels)
        known = model_crops(self.labels)
        by_key = {crop_key(crop): crop for crop in known}
        chosen: list[str] = []
        unknown: list[str] = []
        for name in crops:
            crop = by_key.get(crop_key(name))
            if crop is None:
                unknown.append(str(name))
            elif crop not in chosen:
                chosen.append(crop)
        if unknown:
            offer = ', '.join(known) if known else 'none: its labels have no crop part'
            raise ValueError(f'unknown crop(s) {", ".join(map(repr, unknown))}; the model '
                             f'knows {offer}')
        self.crops: tuple[str, ...] = tuple(chosen)
        crop_keys = {crop_key(crop) for crop in chosen}
        self.keep = np.array([not chosen or not crop_of(label)
                              or crop_key(crop_of(label)) in crop_keys
                              for label in self.labels], dtype=bool)
        self.kept_indices = np.flatnonzero(self.keep)

    @classmethod
    def from_text(cls, labels: Sequence[str], text: str) -> CropFilter:
        """Return the filter of a comma-separated crop list ('' = every crop)."""
        return cls(labels, parse_crops(text))

    @property
    def active(self) -> bool:
        """Return whether some labels are left out."""
        return bool(self.crops)

    def describe(self) -> str:
        """Return the crops as one line: 'Apple, Tomato', or 'all' when inactive."""
        return ', '.join(self.crops) if self.crops else 'all'

    def apply(self, probabilities: np.ndarray) -> np.ndarray:
        """Return ``probabilities`` (one row per frame, or one frame) given the crops.

        Left-out labels get 0; the kept ones are divided by their sum. A frame whose kept
        labels all hold 0 (the model is sure it shows another crop) keeps all zeros: no
        kept label can be its top category above any positive ``score_threshold``.
        """
        values = np.asarray(probabilities, dtype=np.float32)
        if values.shape[-1] != len(self.labels):
            raise ValueError(f'expected {len(self.labels)} scores per frame, got '
                             f'{values.shape[-1]}')
        if not self.active:
            return values
        kept = np.where(self.keep, values, np.float32(0.0))
        total = kept.sum(axis=-1, keepdims=True)
        return np.divide(kept, total, out=np.zeros_like(kept), where=total > 0)


__all__ = ['CropFilter', 'crop_key', 'crop_names', 'model_crops', 'parse_crops']
