"""The shipped int8 model: its paths and the one loader of its classifier for the tests."""

from __future__ import annotations

from functools import cache
from pathlib import Path

import pytest

from plant_disease_ros.core.classifier import ClassifierOptions, DiseaseClassifier

MODELS_DIR = Path(__file__).resolve().parents[2] / 'models'
MODEL_PATH = MODELS_DIR / 'plant_disease_int8.tflite'
LABELS_PATH = MODELS_DIR / 'labels.txt'


def require_shipped_model() -> None:
    """Skip the test when the shipped model or its labels are missing."""
    if not MODEL_PATH.is_file() or not LABELS_PATH.is_file():
        pytest.skip('shipped model not present')


@cache
def shipped_classifier() -> DiseaseClassifier:
    """Return the shipped classifier on one thread (loaded once; skip if it is missing).

    One thread: the tests are about what the model says, not how fast it says it.
    """
    require_shipped_model()
    return DiseaseClassifier.create_from_options(ClassifierOptions(
        model_path=str(MODEL_PATH), labels_path=str(LABELS_PATH), num_threads=1))


def shipped_labels() -> list[str]:
    """Return the shipped model's labels, one per class, in output order."""
    require_shipped_model()
    return LABELS_PATH.read_text(encoding='utf-8').split()
