"""Classification metrics on score matrices (numpy only)."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np


def top_k_accuracy(scores: np.ndarray, labels: np.ndarray, k: int) -> float:
    """Return the fraction of rows whose true label is among the ``k`` highest scores."""
    if len(labels) == 0:
        return float('nan')
    top = np.argsort(-scores, axis=1)[:, :k]
    return float(np.mean(np.any(top == labels[:, None], axis=1)))


def confusion_matrix(labels: np.ndarray, predicted: np.ndarray, num_classes: int) -> np.ndarray:
    """Return the ``num_classes``² matrix of counts, rows = truth, columns = prediction."""
    matrix = np.zeros((num_classes, num_classes), dtype=np.int64)
    np.add.at(matrix, (labels, predicted), 1)
    return matrix


def per_class_report(matrix: np.ndarray, classes: Sequence[str]) -> list[dict]:
    """Return precision, recall, F1 and support of each class from a confusion matrix."""
    rows = []
    for index, name in enumerate(classes):
        true_positive = float(matrix[index, index])
        predicted = float(matrix[:, index].sum())
        support = float(matrix[index, :].sum())
        precision = true_positive / predicted if predicted else 0.0
        recall = true_positive / support if support else 0.0
        f1 = 2 * precision * recall / (precision + recall) if precision + recall else 0.0
        rows.append({'class': name, 'precision': precision, 'recall': recall, 'f1': f1,
                     'support': int(support)})
    return rows


def macro_f1(report: Sequence[dict]) -> float:
    """Return the unweighted mean F1 over classes that have support."""
    values = [row['f1'] for row in report if row['support']]
    return float(np.mean(values)) if values else float('nan')


def most_confused(matrix: np.ndarray, classes: Sequence[str], count: int = 5) -> list[dict]:
    """Return the ``count`` largest off-diagonal cells as (truth, predicted, n)."""
    off = matrix.copy()
    np.fill_diagonal(off, 0)
    order = np.argsort(-off, axis=None)[:count]
    pairs = []
    for flat in order:
        truth, predicted = np.unravel_index(flat, off.shape)
        if off[truth, predicted] == 0:
            break
        pairs.append({'truth': classes[truth], 'predicted': classes[predicted],
                      'count': int(off[truth, predicted])})
    return pairs
