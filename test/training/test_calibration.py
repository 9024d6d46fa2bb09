"""Temperature scaling, expected calibration error and the reliability plot (numpy)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from plant_disease_ros.training.calibration import (
    calibrated_probabilities,
    domain_eces,
    domain_weights,
    expected_calibration_error,
    fit_calibration,
    fit_score_scaling,
    fit_temperature,
    fit_temperature_by_domain_ece,
    negative_log_likelihood,
    plot_reliability,
    reliability_bins,
    ScoreScaling,
    softmax,
)


def sampled(temperature: float, count: int = 4000, classes: int = 5, seed: int = 0):
    """Return logits whose labels are drawn from softmax(logits / temperature)."""
    rng = np.random.default_rng(seed)
    logits = rng.normal(0, 3, (count, classes))
    probabilities = softmax(logits, temperature)
    labels = np.array([rng.choice(classes, p=row) for row in probabilities])
    return logits, labels


@pytest.mark.parametrize('true_temperature', [0.5, 1.0, 2.5])
def test_fit_temperature_recovers_the_generating_temperature(true_temperature: float) -> None:
    logits, labels = sampled(true_temperature)
    fitted = fit_temperature(logits, labels)
    assert fitted == pytest.approx(true_temperature, rel=0.12)
    assert negative_log_likelihood(logits, labels, fitted) <= \
        negative_log_likelihood(logits, labels, 1.0) + 1e-9


def test_temperature_lowers_the_ece_of_overconfident_scores() -> None:
    logits, labels = sampled(2.0, seed=1)
    before = softmax(logits)
    fitted = fit_temperature(logits, labels)
    after = softmax(logits, fitted)
    ece_before = expected_calibration_error(before.max(1), before.argmax(1) == labels)
    ece_after = expected_calibration_error(after.max(1), after.argmax(1) == labels)
    assert ece_after < ece_before / 2 and ece_after < 0.03


def mean_domain_ece(logits: np.ndarray, labels: np.ndarray, domains: np.ndarray,
                    temperature: float) -> float:
    """Return the mean over domains of the ECE at ``temperature``."""
    return float(np.mean(list(domain_eces(logits, labels, domains, temperature).values())))


@pytest.mark.parametrize('true_temperature', [0.5, 2.5])
def test_domain_ece_fit_recovers_the_generating_temperature(true_temperature: float) -> None:
    logits, labels = sampled(true_temperature, seed=3)
    domains = np.array(['lab'] * len(labels))
    fitted = fit_temperature_by_domain_ece(logits, labels, domains)
    assert fitted == pytest.approx(true_temperature, rel=0.15)
    assert fit_calibration(logits, labels, domains, 'domain-ece') == fitted


def test_domain_ece_fit_serves_the_domains_better_than_nll_when_they_disagree() -> None:
    """One domain under-confident, one over-confident: NLL follows the over-confident one."""
    sharp_logits, sharp_labels = sampled(0.5, count=3000, seed=4)   # scores too soft
    soft_logits, soft_labels = sampled(3.0, count=3000, seed=5)     # scores too sharp
    logits = np.concatenate([sharp_logits, soft_logits])
    labels = np.concatenate([sharp_labels, soft_labels])
    domains = np.array(['under'] * 3000 + ['over'] * 3000)
    by_ece = fit_calibration(logits, labels, domains, 'domain-ece')
    by_nll = fit_calibration(logits, labels, domains, 'nll')
    assert by_nll == pytest.approx(fit_temperature(logits, labels, domain_weights(domains)))
    assert mean_domain_ece(logits, labels, domains, by_ece) < \
        mean_domain_ece(logits, labels, domains, by_nll)
    assert mean_domain_ece(logits, labels, domains, by_ece) <= \
        mean_domain_ece(logits, labels, domains, 1.0)
    with pytest.raises(ValueError, match='unknown calibration objective'):
        fit_calibration(logits, labels, domains, 'brier')
    with pytest.raises(ValueError):
        fit_temperature_by_domain_ece(np.zeros((0, 3)), np.zeros(0, int), [])


def test_ece_of_hand_made_cases() -> None:
    confidence = np.array([0.9] * 10)
    assert expected_calibration_error(confidence, np.array([1] * 9 + [0])) == \
        pytest.approx(0.0, abs=1e-12)
    assert expected_calibration_error(confidence, np.zeros(10)) == pytest.approx(0.9)
    assert np.isnan(expected_calibration_error(np.array([]), np.array([])))
    bins = reliability_bins(np.array([0.05, 0.95, 1.0]), np.array([0, 1, 1]), bins=10)
    assert [row['count'] for row in bins] == [1] + [0] * 8 + [2]
    assert bins[0]['accuracy'] == 0.0 and bins[-1]['confidence'] == pytest.approx(0.975)


def test_domain_weights_give_each_domain_the_same_total() -> None:
    weights = domain_weights(['lab'] * 8 + ['field'] * 2)
    assert weights[:8].sum() == pytest.approx(1.0) and weights[8:].sum() == pytest.approx(1.0)


def test_fit_temperature_refuses_no_photos() -> None:
    with pytest.raises(ValueError):
        fit_temperature(np.zeros((0, 3)), np.zeros(0, int))


def test_reliability_plot_is_a_png(tmp_path: Path) -> None:
    rng = np.random.default_rng(2)
    curves = {'lab': (rng.random(50), rng.random(50) < 0.5),
              'field': (rng.random(30), rng.random(30) < 0.3)}
    path = plot_reliability(curves, tmp_path / 'r.png')
    assert path.read_bytes()[:4] == b'\x89PNG'


def two_domains(count: int = 3000, seed: int = 5):
    """Sharp lab-like frames (labels from T 0.5) and flat field-like ones (T 2.5).

    The last logit (the background class) sits high on the field-like frames and low on
    the lab-like ones, as ``no_leaf`` does, so the logits tell the domains apart.
    """
    rng = np.random.default_rng(seed)
    logits, labels, domains = [], [], []
    for name, temperature, background in (('lab', 0.5, -3.0), ('field', 2.5, 2.0)):
        part = rng.normal(0, 2, (count, 5))
        part[:, -1] = rng.normal(background, 0.5, count)
        probabilities = softmax(part, temperature)
        labels.append([rng.choice(5, p=row) for row in probabilities])
        logits.append(part)
        domains += [name] * count
    return np.concatenate(logits), np.concatenate(labels), np.array(domains)


def test_score_scaling_serves_a_sharp_and_a_flat_domain_at_once() -> None:
    logits, labels, domains = two_domains()
    temperature = fit_calibration(logits, labels, domains, 'nll')
    scaling = fit_score_scaling(logits / temperature, labels, domains)
    single = calibrated_probabilities(logits, temperature)
    scaled = calibrated_probabilities(logits, temperature, scaling)
    weights = domain_weights(domains)

    def nll(probabilities: np.ndarray) -> float:
        picked = probabilities[np.arange(len(labels)), labels]
        return float((-np.log(picked) * weights).sum() / weights.sum())

    assert nll(scaled) < nll(single) - 0.02
    # The lab-like frames are sharpened and the field-like ones softened.
    scales = scaling.scales(logits / temperature)
    assert scales[domains == 'lab'].mean() > 1.3 > 0.9 > scales[domains == 'field'].mean()
    for name in ('lab', 'field'):
        members = domains == name
        before = expected_calibration_error(single[members].max(1),
                                            single[members].argmax(1) == labels[members])
        after = expected_calibration_error(scaled[members].max(1),
                                           scaled[members].argmax(1) == labels[members])
        assert after < before and after < 0.04, name
    # A positive scale keeps each frame's ranking: top-1 is unchanged.
    np.testing.assert_array_equal(scaled.argmax(1), single.argmax(1))


def test_score_scaling_without_a_domain_signal_stays_near_one() -> None:
    logits, labels = sampled(1.0, seed=9)
    scaling = fit_score_scaling(logits, labels, np.array(['lab'] * len(labels)))
    assert np.all(np.abs(np.log(scaling.scales(logits))) < 0.25)


def test_score_scaling_json_round_trip_and_refusals() -> None:
    scaling = ScoreScaling(np.array([0.1, -0.2, 0.3]), -0.4)
    again = ScoreScaling.from_json(scaling.to_json())
    np.testing.assert_array_equal(again.weights, scaling.weights)
    assert again.bias == scaling.bias
    logits = np.array([[1.0, 2.0, 0.5]])
    expected = softmax(logits * np.exp(-0.4 + logits @ scaling.weights))
    np.testing.assert_allclose(again.probabilities(logits), expected)
    for bad in ({}, {'weights': [1.0]}, {'weights': 'abc', 'bias': 0.0},
                {'weights': [], 'bias': 0.0}, {'weights': [float('nan')], 'bias': 0.0},
                {'weights': [[1.0]], 'bias': 0.0}, None):
        with pytest.raises(ValueError, match='score scaling'):
            ScoreScaling.from_json(bad)
    with pytest.raises(ValueError, match='no photos'):
        fit_score_scaling(np.zeros((0, 3)), np.zeros(0, int), np.array([]))


def test_calibrated_probabilities_without_scaling_is_the_temperature_softmax() -> None:
    logits, _ = sampled(1.0, count=50, seed=2)
    np.testing.assert_allclose(calibrated_probabilities(logits, 1.7), softmax(logits, 1.7))


def test_score_scaling_stays_finite_when_every_frame_is_right() -> None:
    rng = np.random.default_rng(4)
    logits = rng.normal(0, 1, (200, 4))
    logits[np.arange(200), 0] += 5.0  # class 0 always on top, and always the label
    scaling = fit_score_scaling(logits, np.zeros(200, int), np.array(['lab'] * 200))
    scales = scaling.scales(logits)
    assert np.all(np.isfinite(scales)) and scales.min() > 1.0  # sharpened, but bounded
    assert abs(scaling.bias) <= 4.0 + 1e-9 + abs(logits.mean(0) @ scaling.weights)
    assert np.all(np.isfinite(scaling.probabilities(logits)))


def test_score_scaling_keeps_its_range_within_what_int8_can_carry() -> None:
    """A label whose logit barely moves gets a huge raw weight; the range is then shrunk."""
    from plant_disease_ros.training.calibration import (
        limit_log_scale_spread,
        MAX_LOG_SCALE_SPREAD,
    )

    rng = np.random.default_rng(11)
    logits = rng.normal(0, 1, (400, 4))
    # Half the frames are always right (the fit wants them as sharp as it can), half are
    # labelled at random (as soft as it can); the last logit hardly moves (as a barely
    # trained model's no_leaf) but tells the two halves apart.
    sharp = rng.random(400) < 0.5
    labels = np.where(sharp, logits.argmax(axis=1), rng.integers(0, 4, 400))
    logits[:, -1] = np.where(sharp, 0.01, -0.01) + rng.normal(0, 0.002, 400)
    domains = np.array(['lab'] * 400)
    scaling = fit_score_scaling(logits, labels, domains)
    log_scales = np.log(scaling.scales(logits))
    assert np.ptp(log_scales) == pytest.approx(MAX_LOG_SCALE_SPREAD)  # shrunk to the limit
    assert np.abs(scaling.weights[-1]) > 10.0  # the fit did lean on the quiet logit
    # Shrunk, it still scores the frames better than no scaling at all.
    weights = np.ones(400)
    assert negative_log_likelihood(np.log(scaling.probabilities(logits)), labels, 1.0,
                                   weights) < negative_log_likelihood(logits, labels, 1.0,
                                                                      weights)
    # A scaling within the limit is returned as it is.
    modest = ScoreScaling(np.array([0.1, 0.0, -0.1, 0.0]), 0.3)
    assert limit_log_scale_spread(modest, logits, labels) is modest
