"""Per-domain figures from score matrices: accuracy, rejection, calibration (numpy)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from plant_disease_ros.training.crop_scores import check_crops_option, scores_given_crops
from plant_disease_ros.training.field_evaluate import (
    domain_report,
    DomainFrames,
    format_domain_table,
    threshold_sweep,
    write_domain_outputs,
)

LABELS = ['A', 'B', 'C', 'no_leaf']


def frames(name: str, truth: list[int], negative: bool = False,
           groups: list[str] | None = None) -> DomainFrames:
    images = np.zeros((len(truth), 8, 8, 3), np.uint8)
    return DomainFrames(name, images, np.array(truth), negative,
                        groups or [LABELS[index] for index in truth])


def test_leaf_domain_rejection_and_accuracy() -> None:
    scores = np.array([
        [0.9, 0.05, 0.05, 0.0],  # A right, accepted
        [0.3, 0.35, 0.1, 0.25],  # B right but below 0.5: rejected
        [0.1, 0.1, 0.2, 0.6],  # C labelled no_leaf: rejected
        [0.7, 0.2, 0.0, 0.1],  # C wrong (A), accepted; C not in the top 3
    ])
    report = domain_report(scores, frames('field', [0, 1, 2, 2]), LABELS, 0.5)
    assert report['top1'] == pytest.approx(0.5)
    assert report['top3'] == pytest.approx(0.75)
    assert report['rejected_no_leaf'] == pytest.approx(0.25)
    assert report['rejected_below_threshold'] == pytest.approx(0.25)
    assert report['rejected'] == pytest.approx(0.5)
    assert report['accepted_top1'] == pytest.approx(0.5)
    assert report['accepted_and_correct'] == pytest.approx(0.25)
    assert report['accepted_wrong'] == pytest.approx(0.25)  # C named A: a wrong map point
    table = format_domain_table({'field': report})
    row = next(line for line in table.splitlines() if line.startswith('field'))
    # rejected 50 %, then wrong 25 %, then ECE.
    assert row.split()[4:6] == ['50.00%', '25.00%']
    classes = {row['class']: row for row in report['per_class']}
    assert classes['C']['recall'] == 0.0 and classes['A']['precision'] == pytest.approx(0.5)
    assert 'no_leaf' in classes  # predicted once, so it has a row
    assert 0.0 <= report['ece'] <= 1.0


def test_negative_domain_counts_rejections_per_kind() -> None:
    scores = np.array([
        [0.0, 0.0, 0.1, 0.9],  # no_leaf: rejected
        [0.4, 0.3, 0.3, 0.0],  # below threshold: rejected
        [0.8, 0.1, 0.1, 0.0],  # accepted as A: wrong
        [0.1, 0.0, 0.0, 0.9],
    ])
    report = domain_report(scores, frames('negatives', [3] * 4, True,
                                          ['sky', 'sky', 'soil', 'soil']), LABELS, 0.5)
    assert report['labelled_no_leaf'] == pytest.approx(0.5)
    assert report['below_threshold'] == pytest.approx(0.25)
    assert report['rejected'] == pytest.approx(0.75)
    assert report['wrongly_accepted'] == pytest.approx(0.25)
    assert report['per_kind'] == {'sky': {'photos': 2, 'rejected': 1.0},
                                  'soil': {'photos': 2, 'rejected': 0.5}}
    assert report['accepted_as'] == {'A': 1}


def test_outputs_and_table(tmp_path: Path) -> None:
    rng = np.random.default_rng(0)
    domains = [frames('lab', [0, 1, 2, 0, 1]),
               frames('negatives', [3, 3, 3], True, ['sky', 'soil', 'soil'])]
    scores = {d.name: rng.dirichlet(np.ones(4), len(d.truth)) for d in domains}
    reports = write_domain_outputs(domains, scores, LABELS, tmp_path, 0.5)
    for name in ('lab', 'negatives'):
        assert (tmp_path / f'confusion_{name}.png').read_bytes()[:4] == b'\x89PNG'
        assert reports[name]['confusion_png'] == f'confusion_{name}.png'
    assert (tmp_path / 'reliability.png').read_bytes()[:4] == b'\x89PNG'
    assert (tmp_path / 'thresholds.png').read_bytes()[:4] == b'\x89PNG'
    table = format_domain_table(reports)
    assert 'lab' in table and 'negatives' in table and 'ECE' in table


def test_a_frame_the_gate_stops_is_published_as_no_leaf() -> None:
    scores = np.array([
        [0.9, 0.05, 0.05, 0.0],  # A right, passes the gate: accepted
        [0.1, 0.8, 0.1, 0.0],  # B right by the model, stopped by the gate: no_leaf
    ])
    leaves = frames('lab', [0, 1])
    leaves.gate_passed = np.array([True, False])
    report = domain_report(scores, leaves, LABELS, 0.5)
    assert report['top1'] == pytest.approx(0.5)
    assert report['rejected_no_leaf'] == pytest.approx(0.5)
    assert report['stopped_by_gate'] == pytest.approx(0.5)
    assert report['top3'] == pytest.approx(1.0)  # the model's own top-k, as published
    # Calibration is the model's: both of its answers were right.
    assert report['mean_confidence'] == pytest.approx(0.85)
    assert report['ece'] == pytest.approx(0.15)
    negatives = frames('negatives', [3, 3], True, ['sky', 'sky'])
    negatives.gate_passed = np.array([False, True])
    report = domain_report(np.array([[0.8, 0.1, 0.1, 0.0]] * 2), negatives, LABELS, 0.5)
    assert report['labelled_no_leaf'] == pytest.approx(0.5)
    assert report['wrongly_accepted'] == pytest.approx(0.5)
    table = format_domain_table({'negatives': report})
    assert 'by gate' in table and '50.00%' in table


def test_the_table_has_no_gate_column_without_a_gate() -> None:
    report = domain_report(np.array([[0.9, 0.05, 0.05, 0.0]]), frames('lab', [0]), LABELS)
    assert 'stopped_by_gate' not in report
    assert 'by gate' not in format_domain_table({'lab': report})


def test_card_table_shows_wrong_map_points_also_for_older_evaluations() -> None:
    """The card's "wrongly accepted" column; an evaluation without accepted_wrong derives it."""
    from plant_disease_ros.training.field_model_card import domain_table

    leaf = {'photos': 10, 'negative': False, 'top1': 0.6, 'top3': 0.9, 'macro_f1': 0.5,
            'rejected': 0.3, 'accepted_and_correct': 0.5, 'ece': 0.1, 'rejected_no_leaf': 0.1,
            'rejected_below_threshold': 0.2, 'accepted_top1': 0.7, 'confusion_png': 'c.png'}
    negatives = {'photos': 4, 'negative': True, 'top1': 0.75, 'rejected': 0.75,
                 'wrongly_accepted': 0.25, 'ece': 0.05, 'labelled_no_leaf': 0.75,
                 'below_threshold': 0.0, 'confusion_png': 'n.png'}
    lines = domain_table({'score_threshold': 0.5,
                          'domains': {'field': leaf, 'negatives': negatives}}, None)
    assert any('wrongly accepted' in line for line in lines if line.startswith('| domain'))
    field_row = next(line for line in lines if line.startswith('| field'))
    negative_row = next(line for line in lines if line.startswith('| negatives'))
    # 1 - 0.3 rejected - 0.5 accepted and right = 0.2 accepted with a wrong label.
    assert field_row.split(' | ')[5:7] == ['30.0 %', '20.0 %']
    assert negative_row.split(' | ')[5:7] == ['75.0 %', '25.0 %']


def test_threshold_sweep_of_hand_made_frames() -> None:
    confidence = np.array([0.9, 0.6, 0.4, 0.95])
    no_leaf = np.array([False, False, False, True])
    correct = np.array([True, False, True, False])
    rows = {row['threshold']: row for row in threshold_sweep(confidence, no_leaf, correct,
                                                             False, (0.0, 0.5, 0.7, 0.95))}
    # At 0 only the no_leaf frame is rejected; the 0.6 frame is a wrong map point.
    assert rows[0.0] == {'threshold': 0.0, 'rejected': 0.25, 'wrong': 0.25}
    assert rows[0.5] == {'threshold': 0.5, 'rejected': 0.5, 'wrong': 0.25}
    assert rows[0.7] == {'threshold': 0.7, 'rejected': 0.75, 'wrong': 0.0}
    assert rows[0.95] == {'threshold': 0.95, 'rejected': 1.0, 'wrong': 0.0}
    # Non-leaf frames: every accepted frame is a wrong point.
    negative = threshold_sweep(confidence, no_leaf, correct, True, (0.5,))
    assert negative == [{'threshold': 0.5, 'rejected': 0.5, 'wrong': 0.5}]


@pytest.mark.parametrize('negative', [False, True])
def test_threshold_sweep_agrees_with_the_report_at_its_threshold(negative: bool) -> None:
    rng = np.random.default_rng(3)
    scores = rng.dirichlet(np.ones(4) * 0.5, 60)
    truth = [3] * 60 if negative else list(rng.integers(0, 3, 60))
    report = domain_report(scores, frames('d', truth, negative,
                                          ['k'] * 60 if negative else None), LABELS, 0.5)
    row = next(row for row in report['threshold_sweep'] if row['threshold'] == 0.5)
    assert row['rejected'] == pytest.approx(report['rejected'])
    wrong = report['wrongly_accepted'] if negative else report['accepted_wrong']
    assert row['wrong'] == pytest.approx(wrong)
    rejected = [row['rejected'] for row in report['threshold_sweep']]
    assert rejected == sorted(rejected)  # a higher threshold never rejects fewer


def test_scores_given_the_crops_of_a_field() -> None:
    """A fixed crop list, each photo's own crop, and the most leaf-like crop of non-leaf."""
    labels = ['Apple___scab', 'Apple___healthy', 'Tomato___blight', 'no_leaf']
    scores = np.array([[0.2, 0.1, 0.6, 0.1],     # an apple scab the model calls tomato
                       [0.05, 0.05, 0.7, 0.2],   # soil, tomato-ish
                       [0.3, 0.0, 0.1, 0.6]], np.float32)  # soil, a little apple-ish
    truth = np.array([0, 3, 3])
    apple = scores_given_crops(scores, truth, labels, 'apple', other_crops_weight=0.0)
    np.testing.assert_allclose(apple[0], [0.5, 0.25, 0.0, 0.25], atol=1e-6)
    np.testing.assert_array_equal(scores_given_crops(scores, truth, labels, 'all'), scores)
    np.testing.assert_array_equal(scores_given_crops(scores, truth, labels, ''), scores)
    known = scores_given_crops(scores[:1], truth[:1], labels, 'known', other_crops_weight=0.0)
    np.testing.assert_allclose(known, apple[:1], atol=1e-6)
    # The nodes' default weight leaves the other crops a share: 0.2 / (0.4 + 0.1 × 0.6).
    weighted = scores_given_crops(scores[:1], truth[:1], labels, 'known')
    assert weighted[0, 0] == pytest.approx(0.2 / 0.46, abs=1e-6)
    # Non-leaf frames: tomato for the first (0.7 / 0.9), apple for the second (0.3 / 0.9).
    soil = scores_given_crops(scores[1:], truth[1:], labels, 'known', negative=True,
                              other_crops_weight=0.0)
    np.testing.assert_allclose(soil[0], [0.0, 0.0, 0.7 / 0.9, 0.2 / 0.9], atol=1e-6)
    np.testing.assert_allclose(soil[1], [1 / 3, 0.0, 0.0, 2 / 3], atol=1e-6)
    assert check_crops_option(None, labels) == check_crops_option(' ALL ', labels) == 'all'
    assert check_crops_option('Known', labels) == 'known'
    assert check_crops_option('tomato, apple', labels) == 'Tomato, Apple'
    with pytest.raises(ValueError, match="'Grape'"):
        check_crops_option('Grape', labels)
    with pytest.raises(ValueError, match='crop part'):
        check_crops_option('known', ['scab', 'healthy'])
    with pytest.raises(ValueError, match=r'\[0, 1\]'):
        check_crops_option('all', labels, other_crops_weight=2.0)
