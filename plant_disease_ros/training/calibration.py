"""Confidence calibration: temperature scaling, expected calibration error, reliability plot.

A temperature ``T`` divides the logits before the softmax. It is fitted on validation
photos, either by minimising the negative log-likelihood (the default: a one-dimensional,
convex problem in ``log T``, solved by golden-section search) or by minimising the mean of
the per-domain expected calibration errors (a grid in ``log T``). When the domains
disagree, one over- and another under-confident, the NLL fit follows the over-confident
one: its wrong answers cost the most, and softening all scores keeps more of them under
a score threshold. The mean-ECE fit serves the most domains, and accepts more of the
over-confident domain's wrong answers. It is folded into the last dense layer (kernel and
bias divided by ``T``), so the exported int8 model's scores are calibrated without any
change on the robot. numpy only, except :func:`fold_temperature`.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path

import numpy as np

DEFAULT_BINS = 15
OBJECTIVES = ('nll', 'domain-ece')  # what fit_calibration minimises; the first is the default
PRE_CHOICE_OBJECTIVE = 'nll'  # how runs from before the choice existed were calibrated


def softmax(logits: np.ndarray, temperature: float = 1.0) -> np.ndarray:
    """Return the row-wise softmax of ``logits / temperature``."""
    scaled = np.asarray(logits, np.float64) / temperature
    scaled -= scaled.max(axis=1, keepdims=True)
    exp = np.exp(scaled)
    return exp / exp.sum(axis=1, keepdims=True)


def negative_log_likelihood(logits: np.ndarray, labels: np.ndarray, temperature: float,
                            weights: np.ndarray | None = None) -> float:
    """Return the (weighted) mean negative log-likelihood of ``labels`` at ``temperature``."""
    scaled = np.asarray(logits, np.float64) / temperature
    scaled -= scaled.max(axis=1, keepdims=True)
    log_norm = np.log(np.exp(scaled).sum(axis=1))
    losses = log_norm - scaled[np.arange(len(labels)), labels]
    if weights is None:
        return float(losses.mean())
    return float((losses * weights).sum() / weights.sum())


def fit_temperature(logits: np.ndarray, labels: np.ndarray,
                    weights: np.ndarray | None = None,
                    bounds: tuple[float, float] = (0.05, 20.0), iterations: int = 80) -> float:
    """Return the temperature minimising the validation NLL (golden-section in log T)."""
    if len(labels) == 0:
        raise ValueError('cannot fit a temperature on no photos')
    low, high = np.log(bounds[0]), np.log(bounds[1])
    ratio = (np.sqrt(5.0) - 1.0) / 2.0
    a, b = high - ratio * (high - low), low + ratio * (high - low)

    def nll(log_t: float) -> float:
        return negative_log_likelihood(logits, labels, float(np.exp(log_t)), weights)

    fa, fb = nll(a), nll(b)
    for _ in range(iterations):
        if fa < fb:
            high, b, fb = b, a, fa
            a = high - ratio * (high - low)
            fa = nll(a)
        else:
            low, a, fa = a, b, fb
            b = low + ratio * (high - low)
            fb = nll(b)
    return float(np.exp((low + high) / 2.0))


def domain_eces(logits: np.ndarray, labels: np.ndarray, domains: Sequence[str],
                temperature: float = 1.0, bins: int = DEFAULT_BINS) -> dict[str, float]:
    """Return the ECE of each domain (first-seen order) with the scores at ``temperature``."""
    probabilities = softmax(logits, temperature)
    confidence = probabilities.max(axis=1)
    correct = probabilities.argmax(axis=1) == np.asarray(labels)
    domains = np.asarray(domains)
    return {name: expected_calibration_error(confidence[domains == name],
                                             correct[domains == name], bins)
            for name in dict.fromkeys(domains.tolist())}


def fit_temperature_by_domain_ece(logits: np.ndarray, labels: np.ndarray,
                                  domains: Sequence[str], bins: int = DEFAULT_BINS,
                                  bounds: tuple[float, float] = (0.25, 4.0),
                                  steps: int = 241) -> float:
    """Return the temperature minimising the mean per-domain ECE (a grid in log T).

    The grid holds ``T = 1`` exactly, so the fit never ends worse than leaving the scores
    as they are; of equal means the temperature nearest 1 wins.
    """
    if len(labels) == 0:
        raise ValueError('cannot fit a temperature on no photos')
    grid = np.unique(np.append(np.exp(np.linspace(np.log(bounds[0]), np.log(bounds[1]),
                                                  steps)), 1.0))
    best, best_key = 1.0, None
    for temperature in grid:
        mean_ece = float(np.mean(list(domain_eces(logits, labels, domains,
                                                  float(temperature), bins).values())))
        key = (round(mean_ece, 12), abs(np.log(temperature)))
        if best_key is None or key < best_key:
            best, best_key = float(temperature), key
    return best


def check_objective(objective: str) -> None:
    """Raise ``ValueError`` unless ``objective`` is one of :data:`OBJECTIVES`."""
    if objective not in OBJECTIVES:
        raise ValueError(f'unknown calibration objective {objective!r}; one of '
                         f'{", ".join(OBJECTIVES)}')


def fit_calibration(logits: np.ndarray, labels: np.ndarray, domains: Sequence[str],
                    objective: str = OBJECTIVES[0]) -> float:
    """Return the temperature for ``objective`` (``nll`` or ``domain-ece``), domains equal."""
    check_objective(objective)
    if objective == 'domain-ece':
        return fit_temperature_by_domain_ece(logits, labels, domains)
    return fit_temperature(logits, labels, domain_weights(domains))


def domain_weights(domains: Sequence[str]) -> np.ndarray:
    """Return per-photo weights giving every domain the same total weight."""
    names, inverse, counts = np.unique(np.asarray(domains), return_inverse=True,
                                       return_counts=True)
    del names
    return (1.0 / counts)[inverse]


def reliability_bins(confidence: np.ndarray, correct: np.ndarray,
                     bins: int = DEFAULT_BINS) -> list[dict]:
    """Return per-bin count, mean confidence and accuracy over equal-width bins of [0, 1]."""
    confidence = np.asarray(confidence, np.float64)
    correct = np.asarray(correct, np.float64)
    edges = np.linspace(0.0, 1.0, bins + 1)
    index = np.clip(np.digitize(confidence, edges[1:-1], right=True), 0, bins - 1)
    rows = []
    for number in range(bins):
        members = index == number
        count = int(members.sum())
        rows.append({
            'low': float(edges[number]), 'high': float(edges[number + 1]), 'count': count,
            'confidence': float(confidence[members].mean()) if count else None,
            'accuracy': float(correct[members].mean()) if count else None,
        })
    return rows


def expected_calibration_error(confidence: np.ndarray, correct: np.ndarray,
                               bins: int = DEFAULT_BINS) -> float:
    """Return the ECE: the photo-weighted mean |accuracy - confidence| over the bins."""
    total = len(confidence)
    if total == 0:
        return float('nan')
    return float(sum(row['count'] / total * abs(row['accuracy'] - row['confidence'])
                     for row in reliability_bins(confidence, correct, bins) if row['count']))


def plot_reliability(curves: Mapping[str, tuple[np.ndarray, np.ndarray]], path: str | Path,
                     bins: int = DEFAULT_BINS, title: str = 'Reliability') -> Path:
    """Draw one reliability curve per domain (``name -> (confidence, correct)``) to a PNG."""
    import matplotlib

    matplotlib.use('Agg')
    import matplotlib.pyplot as plt

    figure, axis = plt.subplots(figsize=(6.5, 6))
    axis.plot([0, 1], [0, 1], color='grey', linestyle='--', linewidth=1, label='perfect')
    for name, (confidence, correct) in curves.items():
        rows = [row for row in reliability_bins(confidence, correct, bins) if row['count']]
        ece = expected_calibration_error(confidence, correct, bins)
        axis.plot([row['confidence'] for row in rows], [row['accuracy'] for row in rows],
                  marker='o', markersize=4, label=f'{name} (ECE {100 * ece:.1f} %)')
    axis.set(xlim=(0, 1), ylim=(0, 1), xlabel='top-1 score (confidence)',
             ylabel='fraction correct', title=title)
    axis.legend(loc='upper left', fontsize=8)
    axis.grid(alpha=0.3)
    figure.tight_layout()
    path = Path(path)
    figure.savefig(path, dpi=110)
    plt.close(figure)
    return path


def logits_of(model, images: np.ndarray, batch_size: int = 128) -> np.ndarray:
    """Return the pre-softmax outputs of a classifier whose last layer is ``probs``."""
    import tensorflow as tf

    dense = model.get_layer('probs')
    features = tf.keras.Model(model.inputs, dense.input).predict(
        images.astype(np.float32), batch_size=batch_size, verbose=0)
    kernel, bias = dense.get_weights()
    return features @ kernel + bias


def fold_temperature(model, temperature: float) -> None:
    """Divide the ``probs`` layer's kernel and bias by ``temperature`` (in place)."""
    dense = model.get_layer('probs')
    kernel, bias = dense.get_weights()
    dense.set_weights([kernel / temperature, bias / temperature])
