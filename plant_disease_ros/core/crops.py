"""The crops a field grows: scores that favour their labels (no ROS, no TensorFlow).

A robot in an apple orchard knows it is in an apple orchard. Told so (the classifier's
``crops`` parameter, ``evaluate --crops``), it should never put ``Tomato___Late_blight``
on the map, and a frame the model finds half apple scab and half tomato leaf mould is
most likely an apple scab. But an orchard also has weeds and the neighbour's potatoes in
view: a leaf the model is sure is a tomato leaf must not become an apple disease either.

:class:`CropFilter` weighs the model's probabilities with a prior: the labels of the
field's crops (and labels without a crop part, ``no_leaf`` among them) weigh 1, those of
other crops ``other_crops_weight`` (default 0.1), and the weighted probabilities are
normalised. Only the field's labels are published; what the other crops keep is the
chance that the frame shows another plant, so such a leaf gets a low score and is
``unknown`` below ``score_threshold``. Weight 0 trusts the crops fully (each score is the
model's probability given the crops), weight 1 only hides the other labels. The default
was chosen on validation photos: it keeps most leaves of other crops off the map for a
few more of the field's own leaves rejected (``benchmarks/crops.py`` measures both).

Crop names are matched without regard to case, spaces, underscores and punctuation:
``apple``, ``Apple`` and ``APPLE`` name ``Apple___*``; ``pepper bell`` names
``Pepper,_bell___*``.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
import re

import numpy as np

from plant_disease_ros.core.labels import crop_of

DEFAULT_OTHER_CROPS_WEIGHT = 0.1

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


class CropFilter:
    """Weigh a model's probabilities towards the labels of some crops (see the module).

    An empty crop list keeps every label: the filter is then inactive and returns the
    probabilities unchanged.
    """

    def __init__(self, labels: Sequence[str], crops: Iterable[str] = (),
                 other_crops_weight: float = DEFAULT_OTHER_CROPS_WEIGHT) -> None:
        """Check ``crops`` against the crops of ``labels``; ValueError names the known ones.

        ``other_crops_weight`` in [0, 1]: the prior weight of other crops' labels.
        """
        weight = float(other_crops_weight)
        if not 0.0 <= weight <= 1.0:
            raise ValueError(f'other_crops_weight must be in [0, 1], got {other_crops_weight}')
        self.other_crops_weight = weight
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
        # The chosen names are the labels' own crop parts (model_crops): compare as they are.
        self.keep = np.array([not chosen or not crop_of(label) or crop_of(label) in chosen
                              for label in self.labels], dtype=bool)
        self.kept_indices = np.flatnonzero(self.keep)

    @property
    def active(self) -> bool:
        """Return whether some labels are left out."""
        return bool(self.crops)

    def describe(self) -> str:
        """Return the crops as one line: 'Apple, Tomato', or 'all' when inactive."""
        return ', '.join(self.crops) if self.crops else 'all'

    def apply(self, probabilities: np.ndarray) -> np.ndarray:
        """Return ``probabilities`` (one row per frame, or one frame) given the crops.

        Kept labels: their probability divided by (the kept labels' sum + the weight × the
        other labels' sum). Left-out labels: 0, so a row sums to less than 1 by the share
        left to other plants. A frame whose kept labels all hold 0 keeps all zeros: no
        kept label can be its top category above any positive ``score_threshold``.
        """
        values = np.asarray(probabilities, dtype=np.float32)
        if values.shape[-1] != len(self.labels):
            raise ValueError(f'expected {len(self.labels)} scores per frame, got '
                             f'{values.shape[-1]}')
        if not self.active:
            return values
        kept = np.where(self.keep, values, np.float32(0.0))
        kept_sum = kept.sum(axis=-1, keepdims=True)
        total = kept_sum + np.float32(self.other_crops_weight) * (
            values.sum(axis=-1, keepdims=True) - kept_sum)
        return np.divide(kept, total, out=np.zeros_like(kept), where=total > 0)


__all__ = ['CropFilter', 'crop_key', 'DEFAULT_OTHER_CROPS_WEIGHT', 'model_crops', 'parse_crops']
