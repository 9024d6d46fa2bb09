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
    prediction_rows,
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
    # top-1 50 % of 4 frames: Wilson 95 % interval 15.0–85.0 %; rejected 50 %, wrong 25 %.
    assert report['top1_interval'] == pytest.approx([0.15004, 0.84996], abs=1e-5)
    assert report['rejected_interval'] == pytest.approx([0.15004, 0.84996], abs=1e-5)
    assert row.split()[2:4] == ['50.00%', '15.0–85.0']
    assert row.split()[5:7] == ['50.00%', '25.00%']
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
    assert field_row.split(' | ')[6:8] == ['30.0 %', '20.0 %']
    assert negative_row.split(' | ')[6:8] == ['75.0 %', '25.0 %']
    # The interval of older evaluations comes from top-1 and the count: 6 of 10, 3 of 4.
    assert field_row.split(' | ')[2:4] == ['60.0 %', '31.3–83.2 %']
    assert negative_row.split(' | ')[2:4] == ['75.0 %', '30.1–95.4 %']


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
    # A frame all on another crop's label: its kept labels all hold 0. The node ranks only
    # the kept labels (the first of them, in label order, on a tie), never the other crop.
    elsewhere = np.array([[1.0, 0.0, 0.0, 0.0]], np.float32)
    told = scores_given_crops(elsewhere, truth[:1], labels, 'tomato', other_crops_weight=0.0)
    assert int(told.argmax(axis=1)[0]) == 2 and told.max() < 1e-30
    assert told[0, 0] == 0.0 and told[0, 1] == 0.0
    known = scores_given_crops(elsewhere, np.array([2]), labels, 'known',
                               other_crops_weight=0.0)
    assert int(known.argmax(axis=1)[0]) == 2
    assert check_crops_option(None, labels) == check_crops_option(' ALL ', labels) == 'all'
    assert check_crops_option('Known', labels) == 'known'
    assert check_crops_option('tomato, apple', labels) == 'Tomato, Apple'
    with pytest.raises(ValueError, match="'Grape'"):
        check_crops_option('Grape', labels)
    with pytest.raises(ValueError, match='crop part'):
        check_crops_option('known', ['scab', 'healthy'])
    with pytest.raises(ValueError, match=r'\[0, 1\]'):
        check_crops_option('all', labels, other_crops_weight=2.0)


def test_predictions_say_what_the_nodes_publish_per_frame(tmp_path: Path) -> None:
    """predictions.csv: a row per frame with the published label and the map outcome."""
    import csv

    scores = np.array([
        [0.9, 0.05, 0.05, 0.0],  # A right, accepted: a right map point
        [0.3, 0.35, 0.1, 0.25],  # B right but below 0.5: published unknown, rejected
        [0.1, 0.1, 0.2, 0.6],  # C labelled no_leaf: rejected
        [0.7, 0.2, 0.0, 0.1],  # C named A, accepted: a wrong map point
    ])
    leaves = frames('field', [0, 1, 2, 2])
    leaves.frame_names = ['A/1.jpg', 'B/2.jpg', 'C/3.jpg', 'C/4.jpg']
    negatives = frames('negatives', [3, 3], True, ['sky', 'soil'])
    negatives.frame_names = ['sky/5.jpg', 'soil/6.jpg']
    negatives.gate_passed = np.array([False, True])
    negative_scores = np.array([[0.8, 0.1, 0.1, 0.0],  # stopped by the gate: no_leaf
                                [0.6, 0.3, 0.1, 0.0]])  # passed, accepted as A: wrong
    write_domain_outputs([leaves, negatives], {'field': scores, 'negatives': negative_scores},
                         LABELS, tmp_path, 0.5)
    with open(tmp_path / 'predictions.csv', newline='') as handle:
        rows = list(csv.DictReader(handle))
    assert [(row['domain'], row['frame'], row['truth'], row['label'], row['published'],
             row['correct'], row['outcome'], row['gate']) for row in rows] == [
        ('field', 'A/1.jpg', 'A', 'A', 'A', '1', 'right', ''),
        ('field', 'B/2.jpg', 'B', 'B', 'unknown', '1', 'rejected', ''),
        ('field', 'C/3.jpg', 'C', 'no_leaf', 'no_leaf', '0', 'rejected', ''),
        ('field', 'C/4.jpg', 'C', 'A', 'A', '0', 'wrong', ''),
        ('negatives', 'sky/5.jpg', 'no_leaf', 'no_leaf', 'no_leaf', '1', 'rejected', 'stopped'),
        ('negatives', 'soil/6.jpg', 'no_leaf', 'A', 'A', '0', 'wrong', 'passed'),
    ]
    assert rows[1]['score'] == '0.3500' and rows[1]['top3'] == 'B;A;no_leaf'


def test_frame_names_must_match_the_frames() -> None:
    leaves = frames('field', [0, 1])
    assert leaves.names() == ['0', '1']
    leaves.frame_names = ['only-one.jpg']
    with pytest.raises(ValueError, match='1 frame names for 2 frames'):
        leaves.names()


def test_tied_scores_count_as_the_label_the_nodes_publish() -> None:
    """A uint8 output often ties; top-1, top-3 and the rows rank ties as the classifier."""
    from plant_disease_ros.training.metrics import top_k_accuracy

    # 22 labels scored in four levels: most rows tie at the top. The classifier publishes
    # the lowest tied index (argmax); top-1 counts exactly those rows right.
    levels = np.random.default_rng(0).integers(0, 4, (2000, 22)).astype(np.float32)
    assert top_k_accuracy(levels, levels.argmax(axis=1), 1) == 1.0
    # 40 rows tied between A and B (the classifier publishes A, the lower index).
    scores = np.tile(np.array([[0.4, 0.4, 0.2, 0.0]]), (40, 1))
    truth_b = np.ones(40, np.int64)
    assert top_k_accuracy(scores, truth_b, 1) == 0.0
    assert top_k_accuracy(scores, np.zeros(40, np.int64), 1) == 1.0
    report = domain_report(scores, frames('field', [1] * 40), LABELS, 0.3)
    assert report['top1'] == 0.0 and report['top3'] == 1.0
    rows = prediction_rows(scores, frames('field', [1] * 40), LABELS, 0.3)
    assert {row['label'] for row in rows} == {'A'} and {row['top3'] for row in rows} == {
        'A;B;C'}


def test_the_most_confident_mistakes_are_drawn_per_domain(tmp_path: Path) -> None:
    from plant_disease_ros.training.mistakes import most_confident_mistakes

    scores = np.array([
        [0.9, 0.05, 0.05, 0.0],  # A right: not a mistake
        [0.2, 0.7, 0.1, 0.0],  # A named B at 0.7: a wrong map point
        [0.1, 0.85, 0.05, 0.0],  # A named B at 0.85: the most confident mistake
        [0.4, 0.35, 0.25, 0.0],  # C named A below 0.5: rejected, not drawn
    ])
    leaves = frames('field', [0, 0, 0, 2])
    rows = prediction_rows(scores, leaves, LABELS, 0.5)
    assert most_confident_mistakes(rows) == [2, 1]
    assert most_confident_mistakes(rows, count=1) == [2]
    clean = frames('lab', [0])
    stale = tmp_path / 'mistakes_lab.png'
    stale.write_bytes(b'an earlier evaluation')
    reports = write_domain_outputs([leaves, clean],
                                   {'field': scores, 'lab': np.array([[0.9, 0.1, 0.0, 0.0]])},
                                   LABELS, tmp_path, 0.5)
    assert reports['field']['mistakes_png'] == 'mistakes_field.png'
    assert (tmp_path / 'mistakes_field.png').read_bytes()[:4] == b'\x89PNG'
    # No mistake, no picture (and none left over from an earlier evaluation).
    assert reports['lab']['mistakes_png'] is None and not stale.exists()


def test_the_reliability_title_names_the_split(tmp_path: Path,
                                               monkeypatch: pytest.MonkeyPatch) -> None:
    """It said 'test photos' whatever the split (a --split val evaluation too)."""
    from plant_disease_ros.training import field_evaluate

    titles = []
    plot_reliability = field_evaluate.plot_reliability

    def recording(curves: dict, path: Path, title: str) -> Path:
        titles.append(title)
        return plot_reliability(curves, path, title=title)

    monkeypatch.setattr(field_evaluate, 'plot_reliability', recording)
    domains = [frames('lab', [0, 1, 2])]
    scores = {'lab': np.random.default_rng(0).dirichlet(np.ones(4), 3)}
    write_domain_outputs(domains, scores, LABELS, tmp_path, 0.5, split='val')
    write_domain_outputs(domains, scores, LABELS, tmp_path, 0.5)
    assert titles == ['Reliability of the int8 top-1 score, val photos',
                      'Reliability of the int8 top-1 score, test photos']


def test_unreadable_photos_of_a_domain_are_in_its_report() -> None:
    leaves = frames('field', [0, 1])
    assert domain_report(np.eye(4)[[0, 1]], leaves, LABELS)['unreadable'] == []
    leaves.unreadable = {'B/gone.jpg': 'B/gone.jpg: no such file'}
    report = domain_report(np.eye(4)[[0, 1]], leaves, LABELS)
    assert report['unreadable'] == ['B/gone.jpg']
    assert report['unreadable_reasons'] == {'B/gone.jpg': 'B/gone.jpg: no such file'}
