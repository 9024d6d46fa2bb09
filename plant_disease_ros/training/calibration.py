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
change on the robot.

The ``adaptive`` objective serves both kinds of domain: after the NLL temperature, each
frame's logits ``z`` are multiplied by its own scale ``exp(b + w · z)`` (a
:class:`ScoreScaling`, fitted by the domain-weighted NLL with a small L2 penalty on ``w``,
its range over the validation frames kept within what int8 can carry).
Confident, lab-like logits get sharpened and the flat logits of unfamiliar field photos
softened, which one temperature cannot do. A positive scale keeps every frame's ranking of
the labels, so top-1 does not change. The export adds it to the int8 graph
(:func:`with_score_scaling`: one dense unit, an exponential and a multiply before the
softmax), so the robot again needs no change. numpy only, except :func:`fold_temperature`,
:func:`logits_of` and :func:`with_score_scaling`.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

DEFAULT_BINS = 15
# What fit_calibration minimises; the first is the default.
ADAPTIVE = 'adaptive'  # the NLL temperature, then a per-frame ScoreScaling
OBJECTIVES = (ADAPTIVE, 'nll', 'domain-ece')
MAX_LOG_SCALE_PARAM = 4.0  # bound on the bias and standardised weights of a ScoreScaling
# Widest spread of a ScoreScaling's log scale (b + w · z) over the frames it was fitted on:
# e^4, a factor of about 55 between the softest and the sharpest frame. The int8 graph
# quantises the scale and the scaled logits over their whole range, so a wider one leaves
# the softly scaled frames a handful of levels and the int8 scores stop following the
# float ones. The shipped model's spans 2.9 on its validation photos.
MAX_LOG_SCALE_SPREAD = 4.0
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
    return domain_eces_of_scores(softmax(logits, temperature), labels, domains, bins)


def domain_eces_of_scores(probabilities: np.ndarray, labels: np.ndarray,
                          domains: Sequence[str], bins: int = DEFAULT_BINS) -> dict[str, float]:
    """Return the ECE of each domain (first-seen order) of already calibrated scores."""
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
    """Return the temperature for ``objective``, domains weighted equally.

    ``adaptive`` returns the NLL temperature; :func:`fit_score_scaling` then fits the
    per-frame scale on the logits divided by it.
    """
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


@dataclass(frozen=True)
class ScoreScaling:
    """A per-frame temperature: each frame's logits ``z`` are multiplied by ``exp(b + w · z)``.

    ``weights`` holds ``w`` (one per label), ``bias`` ``b``. Fitted by
    :func:`fit_score_scaling`; :func:`with_score_scaling` puts it into a Keras model.
    """

    weights: np.ndarray
    bias: float

    def scales(self, logits: np.ndarray) -> np.ndarray:
        """Return the multiplier of each row of ``logits``."""
        return np.exp(self.bias + np.asarray(logits, np.float64) @ self.weights)

    def probabilities(self, logits: np.ndarray) -> np.ndarray:
        """Return the softmax of each row of ``logits`` times its scale."""
        logits = np.asarray(logits, np.float64)
        return softmax(logits * self.scales(logits)[:, None])

    def to_json(self) -> dict:
        """Return a JSON-ready dict (:meth:`from_json` reads it back)."""
        return {'weights': [float(value) for value in self.weights], 'bias': float(self.bias)}

    @classmethod
    def from_json(cls, data: Mapping) -> ScoreScaling:
        """Read :meth:`to_json`'s dict; raise ``ValueError`` on a malformed one."""
        try:
            weights = np.asarray(data['weights'], np.float64)
            bias = float(data['bias'])
        except (KeyError, TypeError, ValueError) as error:
            raise ValueError(f'not a score scaling (weights and bias): {error}') from error
        if weights.ndim != 1 or not len(weights) or not np.all(np.isfinite(weights)) \
                or not np.isfinite(bias):
            raise ValueError('a score scaling needs finite weights, one per label, and bias')
        return cls(weights, bias)


def fit_score_scaling(logits: np.ndarray, labels: np.ndarray, domains: Sequence[str],
                      l2: float = 0.01, steps: int = 1500,
                      learning_rate: float = 0.02) -> ScoreScaling:
    """Fit a :class:`ScoreScaling` by the domain-weighted NLL (full-batch Adam).

    The logits are standardised per label for the fit (``l2`` penalises the standardised
    weights) and the result is mapped back, so it applies to raw logits. Starts from the
    identity (scale 1), so with no signal in the logits it stays near the temperature fit.
    """
    logits = np.asarray(logits, np.float64)
    labels = np.asarray(labels)
    if len(labels) == 0:
        raise ValueError('cannot fit a score scaling on no photos')
    weights = domain_weights(domains)
    weights = weights / weights.sum()
    mean, spread = logits.mean(axis=0), logits.std(axis=0) + 1e-6
    features = (logits - mean) / spread
    rows = np.arange(len(labels))
    params = np.zeros(logits.shape[1] + 1)  # standardised w, then b
    first, second = np.zeros_like(params), np.zeros_like(params)
    beta1, beta2 = 0.9, 0.999
    for step in range(1, steps + 1):
        scale = np.exp(params[-1] + features @ params[:-1])
        probabilities = softmax(logits * scale[:, None])
        # d(loss)/d(log scale) of each frame: scale * (E_p[z] - z_label).
        slope = weights * scale * ((probabilities * logits).sum(axis=1) - logits[rows, labels])
        gradient = np.append(features.T @ slope + 2.0 * l2 * params[:-1], slope.sum())
        first = beta1 * first + (1 - beta1) * gradient
        second = beta2 * second + (1 - beta2) * gradient ** 2
        params -= learning_rate * (first / (1 - beta1 ** step)) \
            / (np.sqrt(second / (1 - beta2 ** step)) + 1e-8)
        # Frames all right make the NLL fall for ever as the scale grows: keep it finite.
        np.clip(params, -MAX_LOG_SCALE_PARAM, MAX_LOG_SCALE_PARAM, out=params)
    raw = params[:-1] / spread
    return limit_log_scale_spread(ScoreScaling(raw, float(params[-1] - mean @ raw)), logits,
                                  labels, weights)


def limit_log_scale_spread(scaling: ScoreScaling, logits: np.ndarray, labels: np.ndarray,
                           weights: np.ndarray | None = None,
                           limit: float = MAX_LOG_SCALE_SPREAD) -> ScoreScaling:
    """Return ``scaling`` with its log scale spanning at most ``limit`` over ``logits``.

    A fit on few or near-constant logits (a small or barely trained model: a label whose
    logit hardly moves gets a huge raw weight) can make the scale range over many orders
    of magnitude, which int8 cannot carry. Then ``w`` shrinks to fit the limit and ``b``
    is refitted by the NLL (for a fixed ``w`` it is a temperature); otherwise the scaling
    is returned as it is.
    """
    logits = np.asarray(logits, np.float64)
    log_scales = scaling.bias + logits @ scaling.weights
    spread = float(np.ptp(log_scales)) if len(log_scales) else 0.0
    if spread <= limit:
        return scaling
    shrunk = scaling.weights * (limit / spread)
    scaled = logits * np.exp(logits @ shrunk)[:, None]
    temperature = fit_temperature(scaled, labels, weights,
                                  bounds=(float(np.exp(-MAX_LOG_SCALE_PARAM)),
                                          float(np.exp(MAX_LOG_SCALE_PARAM))))
    return ScoreScaling(shrunk, float(-np.log(temperature)))


def calibrated_probabilities(logits: np.ndarray, temperature: float = 1.0,
                             scaling: ScoreScaling | None = None) -> np.ndarray:
    """Return the scores of ``logits`` after the temperature and, if given, the scaling."""
    scaled = np.asarray(logits, np.float64) / temperature
    return softmax(scaled) if scaling is None else scaling.probabilities(scaled)


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


def with_score_scaling(model, scaling: ScoreScaling):
    """Return a new Keras model: ``model`` with ``scaling`` between its logits and softmax.

    ``model``'s last layer must be the softmax dense layer ``probs``. The new head is a
    linear copy of it (``logits``), one dense unit (``log_scale``, ``b + w · z``), an
    exponential, a multiply and a softmax (``scores``): operations a full-integer int8
    TFLite model has. ``model`` itself is left as it is.
    """
    import tensorflow as tf

    keras = tf.keras
    dense = model.get_layer('probs')
    kernel, bias = dense.get_weights()
    if len(scaling.weights) != kernel.shape[1]:
        raise ValueError(f'the score scaling has {len(scaling.weights)} weights but the model '
                         f'{kernel.shape[1]} outputs')
    logits_layer = keras.layers.Dense(kernel.shape[1], name='logits')
    log_scale_layer = keras.layers.Dense(1, name='log_scale')
    logits = logits_layer(dense.input)
    scale = keras.layers.Activation('exponential', name='scale')(log_scale_layer(logits))
    scaled = keras.layers.Multiply(name='scaled_logits')([logits, scale])
    scores = keras.layers.Softmax(name='scores')(scaled)
    logits_layer.set_weights([kernel, bias])
    log_scale_layer.set_weights([scaling.weights[:, None].astype(np.float32),
                                 np.array([scaling.bias], np.float32)])
    return keras.Model(model.inputs, scores, name=f'{model.name}_scaled')
