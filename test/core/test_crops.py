"""The crops of a field: scores given those crops, in the core and the shipped classifier."""

from __future__ import annotations

from pathlib import Path

import cv2
from helpers.shipped_model import require_shipped_model, shipped_classifier
import numpy as np
import pytest

from plant_disease_ros.core.classifier import ClassifierOptions, DiseaseClassifier
from plant_disease_ros.core.crops import (
    crop_key,
    CropFilter,
    DEFAULT_OTHER_CROPS_WEIGHT,
    model_crops,
    parse_crops,
)
from plant_disease_ros.core.interpreter_loader import ModelLoadError

LABELS = ['Apple___Apple_scab', 'Apple___healthy', 'Pepper,_bell___healthy',
          'Tomato___Late_blight', 'Tomato___healthy', 'no_leaf']
REPO_ROOT = Path(__file__).resolve().parents[2]
LEAVES_DIR = REPO_ROOT / 'test' / 'data' / 'leaves'


def test_names_and_lists() -> None:
    assert model_crops(LABELS) == ['Apple', 'Pepper,_bell', 'Tomato']
    assert model_crops(['scab', 'healthy']) == []
    assert crop_key('Pepper,_bell') == crop_key('pepper bell') == 'pepperbell'
    assert parse_crops(' Apple, tomato ;;Potato ') == ['Apple', 'tomato', 'Potato']
    assert parse_crops('') == parse_crops(' , ') == []


def test_filter_keeps_the_crops_and_no_leaf() -> None:
    crops = CropFilter(LABELS, ['APPLE', 'pepper bell', 'apple'])
    assert crops.crops == ('Apple', 'Pepper,_bell')
    assert crops.active and crops.describe() == 'Apple, Pepper,_bell'
    assert crops.keep.tolist() == [True, True, True, False, False, True]
    assert crops.kept_indices.tolist() == [0, 1, 2, 5]
    every = CropFilter(LABELS)
    assert not every.active and every.describe() == 'all' and every.keep.all()


def test_unknown_crop_names_the_known_ones() -> None:
    with pytest.raises(ValueError, match=r"'Grape'.*knows Apple, Pepper,_bell, Tomato"):
        CropFilter(LABELS, ['Apple', 'Grape'])
    with pytest.raises(ValueError, match='no crop part'):
        CropFilter(['scab', 'healthy'], ['Apple'])
    # A model without crop parts still takes "every crop".
    assert CropFilter(['scab', 'healthy']).keep.all()


def test_apply_is_the_probability_given_the_crops() -> None:
    scores = np.array([[0.10, 0.05, 0.05, 0.60, 0.15, 0.05],
                       [0.00, 0.00, 0.00, 0.70, 0.30, 0.00]], np.float32)
    apple = CropFilter(LABELS, ['Apple'], other_crops_weight=0.0)
    given = apple.apply(scores)
    # The tomato-looking frame is an apple scab given an orchard: 0.10 / 0.20.
    np.testing.assert_allclose(given[0], [0.5, 0.25, 0.0, 0.0, 0.0, 0.25], atol=1e-6)
    # Nothing left for the kept labels: all zero, not a division by zero.
    np.testing.assert_array_equal(given[1], np.zeros(6, np.float32))
    # One frame (1-D) as well; every crop leaves the scores as they are.
    np.testing.assert_allclose(apple.apply(scores[0]), given[0])
    np.testing.assert_array_equal(CropFilter(LABELS).apply(scores), scores)
    with pytest.raises(ValueError, match='expected 6 scores'):
        apple.apply(np.ones(5, np.float32))


def test_other_crops_keep_their_weighted_share() -> None:
    """The other crops' weighted share stays out of the kept scores: a leaf the model calls
    a tomato leaf scores low in an orchard instead of becoming an apple disease."""
    scores = np.array([[0.10, 0.05, 0.05, 0.60, 0.15, 0.05],
                       [0.01, 0.01, 0.00, 0.97, 0.01, 0.00]], np.float32)
    default = CropFilter(LABELS, ['Apple'])
    assert default.other_crops_weight == DEFAULT_OTHER_CROPS_WEIGHT == 0.1
    given = default.apply(scores)
    # 0.10 / (0.20 + 0.1 × 0.80) and 0.01 / (0.02 + 0.1 × 0.98).
    assert given[0, 0] == pytest.approx(0.10 / 0.28, abs=1e-6)
    assert given[1].max() == pytest.approx(0.01 / 0.118, abs=1e-6) and given[1].max() < 0.1
    np.testing.assert_array_equal(given[:, [2, 3, 4]], 0.0)
    # Weight 1 only hides the other labels; the ranking of the kept ones never changes.
    np.testing.assert_allclose(CropFilter(LABELS, ['Apple'], 1.0).apply(scores),
                               np.where(default.keep, scores, 0.0), atol=1e-6)
    for weight in (0.0, 0.3, 1.0):
        ranked = CropFilter(LABELS, ['Apple'], weight).apply(scores)[:, default.keep]
        assert ranked.argmax(axis=1).tolist() == scores[:, default.keep].argmax(axis=1).tolist()
    for weight in (-0.1, 1.5):
        with pytest.raises(ValueError, match=r'other_crops_weight must be in \[0, 1\]'):
            CropFilter(LABELS, ['Apple'], weight)


def read_leaf(label: str) -> np.ndarray:
    """Read the repository's photo of ``label`` as RGB."""
    return cv2.cvtColor(cv2.imread(str(LEAVES_DIR / f'{label}.jpg')), cv2.COLOR_BGR2RGB)


def test_shipped_classifier_in_an_orchard() -> None:
    """Set to Apple, the shipped model only ever names apple labels or no_leaf."""
    require_shipped_model()
    classifier = shipped_classifier()
    try:
        tomato = read_leaf('Tomato___Late_blight')
        everywhere = classifier.classify(tomato, top_k=3)
        assert everywhere.top.label == 'Tomato___Late_blight' and everywhere.crops == ()
        raw = classifier.probabilities(tomato)
        orchard = classifier.set_crops(['apple'])
        result = classifier.classify(tomato, top_k=30)
        apple_labels = {label for label in classifier.labels
                        if label.startswith('Apple___')} | {'no_leaf'}
        assert result.crops == ('Apple',)
        assert {category.label for category in result.categories} == apple_labels
        given = classifier.probabilities(tomato)
        np.testing.assert_allclose(given, orchard.apply(raw), atol=1e-6)
        assert result.top.score == pytest.approx(float(given.max()))
        # The model is sure it is a tomato leaf: in the orchard it scores low (unknown).
        assert result.top.score < 0.5
        # Trusting the crops fully turns a leaf the model gives a little apple probability
        # (a potato leaf: 5 %) into a confident apple answer; one it gives none (the tomato
        # leaf) keeps all zeros, so it can never pass a threshold.
        potato = read_leaf('Potato___Early_blight')
        weighted = classifier.classify(potato).top.score
        trusting_filter = classifier.set_crops(['apple'], other_crops_weight=0.0)
        assert orchard.other_crops_weight == 0.1 and trusting_filter.other_crops_weight == 0.0
        trusting = classifier.probabilities(potato)
        assert float(trusting.sum()) == pytest.approx(1.0, abs=1e-5)
        assert float(trusting.max()) > max(0.5, weighted)
        kept = [classifier.labels.index(label) for label in apple_labels]
        assert float(raw[kept].sum()) == 0.0  # int8: no apple probability left at all
        np.testing.assert_array_equal(classifier.probabilities(tomato), 0.0)
        # An apple leaf keeps its label, with at least the score it had among all crops.
        scab = read_leaf('Apple___Apple_scab')
        assert classifier.classify(scab).top.label == 'Apple___Apple_scab'
        with pytest.raises(ValueError, match='Grape'):
            classifier.set_crops(['Grape'])
        assert classifier.crop_filter is trusting_filter  # a refused value changes nothing
        classifier.set_crops([])
        assert classifier.classify(tomato).top.label == 'Tomato___Late_blight'
    finally:
        classifier.set_crops([])


def test_options_crops_and_a_bad_one() -> None:
    require_shipped_model()
    classifier = DiseaseClassifier.create_from_options(ClassifierOptions(crops=('Tomato',)))
    assert classifier.crop_filter.crops == ('Tomato',)
    assert classifier.classify(read_leaf('Apple___healthy')).top.label.startswith(
        ('Tomato___', 'no_leaf'))
    with pytest.raises(ModelLoadError, match="unknown crop.*'Grape'"):
        DiseaseClassifier.create_from_options(ClassifierOptions(crops=('Grape',)))
