"""Classification metrics on score matrices (numpy only)."""

from __future__ import annotations

from collections.abc import Sequence
import math

import numpy as np


def top_k_accuracy(scores: np.ndarray, labels: np.ndarray, k: int) -> float:
    """Return the fraction of rows whose true label is among the ``k`` highest scores.

    Ties (frequent in a uint8 output) go to the lower label index, as the classifier ranks
    them, so top-1 is the share of rows whose ``argmax`` is right: what the nodes publish.
    """
    if len(labels) == 0:
        return float('nan')
    top = np.argsort(-scores, axis=1, kind='stable')[:, :k]
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


# The normal quantile of a two-sided 95 % interval.
Z_95 = 1.959963984540054


def wilson_interval(successes: int, trials: int, z: float = Z_95) -> tuple[float, float]:
    """Return the Wilson score interval of a proportion (95 % by default).

    Unlike ``p ± z·√(p(1-p)/n)`` it stays inside [0, 1] and is not empty at 0 or ``trials``
    successes, which matters for the small field test sets (a class of 9 photos). With no
    trials it is (0, 1): nothing is known.
    """
    if trials < 0 or not 0 <= successes <= trials:
        raise ValueError(f'need 0 <= successes <= trials, got {successes} of {trials}')
    if trials == 0:
        return 0.0, 1.0
    share = successes / trials
    z2 = z * z
    centre = (share + z2 / (2 * trials)) / (1 + z2 / trials)
    half = z * math.sqrt(share * (1 - share) / trials + z2 / (4 * trials * trials)) \
        / (1 + z2 / trials)
    low = 0.0 if successes == 0 else max(0.0, centre - half)
    high = 1.0 if successes == trials else min(1.0, centre + half)
    return low, high


def mcnemar_exact_p(fixed: int, broken: int) -> float:
    """Return the two-sided exact McNemar p-value of a paired comparison.

    ``fixed``: items the new model gets right and the old one wrong; ``broken``: the
    reverse. Under "no difference" each of those ``n = fixed + broken`` discordant items
    is equally likely to go either way, so the p-value is twice the binomial(n, 1/2) tail
    of the smaller count (at most 1). Items both get right or both get wrong carry no
    evidence. No discordant item gives 1.
    """
    if fixed < 0 or broken < 0:
        raise ValueError(f'counts must be >= 0, got {fixed} and {broken}')
    total = fixed + broken
    if total == 0:
        return 1.0
    tail = sum(math.comb(total, count) for count in range(min(fixed, broken) + 1))
    return min(1.0, 2 * tail / 2 ** total)


def split_description(split: str) -> str:
    """Return what an evaluation's photos were, for headings and captions.

    ``split`` is an evaluation's ``split``: 'test', 'val', 'train', or 'all' (every photo
    of a folder given with ``--data``).
    """
    return {
        'test': 'held-out test photos',
        'val': 'validation photos (they chose the checkpoint: the figures flatter the model)',
        'train': 'training photos (the model learned them: not a measure of accuracy)',
        'all': 'every photo of the folder (held out only if the model never trained on it)',
    }.get(split, f'{split} photos')
