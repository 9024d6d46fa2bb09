"""Evaluation scores given the crops of a field, as a node with ``crops`` set gives them.

``plant-disease evaluate --crops Apple`` scores every photo as a node told "this is an
apple orchard" would (:class:`~plant_disease_ros.core.crops.CropFilter`).
``--crops known`` answers "what if the robot always knew the crop of the row it drives":
each leaf photo is scored given its own crop, and each non-leaf frame given the crop under
which it looks most like a leaf (its best leaf score is highest), so that a non-leaf
frame counts as rejected only if no field would have put it on the map. Both weigh the
other crops' labels with ``other_crops_weight``, as the node does.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from plant_disease_ros.core.crops import (
    CropFilter,
    DEFAULT_OTHER_CROPS_WEIGHT,
    model_crops,
    parse_crops,
)
from plant_disease_ros.core.labels import crop_of

KNOWN_CROPS = 'known'
EVERY_CROP = 'all'


def check_crops_option(text: str | None, labels: Sequence[str],
                       other_crops_weight: float = DEFAULT_OTHER_CROPS_WEIGHT) -> str:
    """Return the option as it will be reported ('all', 'known' or 'Apple, Tomato').

    ValueError for a crop ``labels`` do not name, or a weight outside [0, 1].
    """
    if not 0.0 <= other_crops_weight <= 1.0:
        raise ValueError(f'other crops weight must be in [0, 1], got {other_crops_weight}')
    if text is None or not text.strip() or text.strip().lower() == EVERY_CROP:
        return EVERY_CROP
    if text.strip().lower() == KNOWN_CROPS:
        if not model_crops(labels):
            raise ValueError('--crops known needs labels with a crop part (Crop___condition)')
        return KNOWN_CROPS
    return CropFilter(labels, parse_crops(text)).describe()


# The smallest positive score: given to the kept labels of a frame whose kept labels all
# score 0, so that ranking the row (argmax, top-3) picks kept labels, first in label order,
# as the node ranks only the kept labels; far below any score_threshold.
_TIE_BREAK = np.float32(np.nextafter(np.float32(0), np.float32(1)))


def _given(crop_filter: CropFilter, scores: np.ndarray) -> np.ndarray:
    """Return ``crop_filter.apply(scores)``, a row whose kept labels all hold 0 tie-broken."""
    given = crop_filter.apply(scores)
    silent = ~(given[:, crop_filter.keep] > 0).any(axis=1)
    if silent.any():
        given[np.ix_(silent, crop_filter.keep)] = _TIE_BREAK
    return given


def scores_given_crops(scores: np.ndarray, truth: np.ndarray, labels: Sequence[str],
                       crops: str, negative: bool = False,
                       other_crops_weight: float = DEFAULT_OTHER_CROPS_WEIGHT) -> np.ndarray:
    """Return ``scores`` (N × labels) given the crops of :func:`check_crops_option`.

    ``truth`` (label index per row) picks each leaf photo's crop with ``known``;
    ``negative`` rows (non-leaf frames) take their most leaf-like crop instead.
    """
    option = check_crops_option(crops, labels)
    scores = np.asarray(scores, dtype=np.float32)
    if option == EVERY_CROP:
        return scores
    if option != KNOWN_CROPS:
        return _given(CropFilter(labels, parse_crops(option), other_crops_weight), scores)
    filters = {crop: CropFilter(labels, [crop], other_crops_weight)
               for crop in model_crops(labels)}
    given = {crop: _given(crop_filter, scores) for crop, crop_filter in filters.items()}
    out = scores.copy()
    if negative:
        # Per frame, the crop whose best leaf label scores highest given that crop.
        names = list(given)
        leaf = np.array([bool(crop_of(label)) for label in labels])
        leaf_best = np.stack([np.where(filters[name].keep & leaf, given[name], 0.0).max(axis=1)
                              for name in names], axis=1)
        choice = leaf_best.argmax(axis=1)
        for column, name in enumerate(names):
            rows = choice == column
            out[rows] = given[name][rows]
        return out
    for row, index in enumerate(np.asarray(truth, dtype=np.int64)):
        crop = crop_of(labels[index])
        if crop in given:
            out[row] = given[crop][row]
    return out


__all__ = ['check_crops_option', 'EVERY_CROP', 'KNOWN_CROPS', 'scores_given_crops']
