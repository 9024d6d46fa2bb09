"""What the nodes would publish for evaluated photos: evaluate, the model card, the report.

Top-1 counts the top label whatever its score, but the nodes publish ``unknown`` below
``score_threshold``: an evaluation of a photo folder prints and records the rejected share
and the wrong map points (as predictions.csv counts them), and the card shows them.
"""

from __future__ import annotations

import csv
import json
from pathlib import Path

from helpers.photo_folders import leaf_copies
from helpers.shipped_model import LABELS_PATH, MODEL_PATH, require_shipped_model
import pytest

from plant_disease_ros.cli.main import main

CLASSES = ('Apple___healthy', 'Potato___Early_blight', 'Tomato___Late_blight')


def photo_folder(root: Path, copies: int = 2) -> Path:
    """Write ``root/<class>/<n>.jpg``: ``copies`` copies of each class's test leaf."""
    return leaf_copies(root, CLASSES, copies)


def evaluate(data: Path, out: Path, *extra: str) -> int:
    """Run ``plant-disease evaluate`` of the shipped model on ``data`` into ``out``."""
    return main(['evaluate', '--model', str(MODEL_PATH), '--labels', str(LABELS_PATH),
                 '--data', str(data), '--out', str(out), '--cache-dir', '', '--threads', '1',
                 *extra])


def test_evaluate_prints_and_records_the_rejected_share_and_wrong_map_points(
        tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    """At a score threshold no score reaches, every photo is rejected: top-1 hides that."""
    require_shipped_model()
    data = photo_folder(tmp_path / 'photos')
    out = tmp_path / 'eval'
    assert evaluate(data, out, '--score-threshold', '1.0') == 0
    printed = capsys.readouterr().out
    report = json.loads((out / 'evaluation.json').read_text())
    with open(out / 'predictions.csv', newline='') as handle:
        outcomes = [row['outcome'] for row in csv.DictReader(handle)]
    assert outcomes.count('rejected') == 6
    int8 = report['int8']
    assert int8['outcomes'] == {'right': 0, 'wrong': 0, 'rejected': 6}
    assert int8['rejected'] == 1.0 and int8['accepted_wrong'] == 0.0
    assert int8['top1'] > 0  # the top labels are right; none would reach the map
    assert ('int8  published at score_threshold 1: 0 right, 0 wrong map points (0.00 %), '
            '6 rejected (100.00 %: no map point)') in printed
    assert 'rejected: top score below score_threshold' in printed


def test_evaluate_counts_as_predictions_csv_does_at_the_default_threshold(
        tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    require_shipped_model()
    out = tmp_path / 'eval'
    assert evaluate(photo_folder(tmp_path / 'photos'), out) == 0
    report = json.loads((out / 'evaluation.json').read_text())
    assert report['score_threshold'] == 0.5
    with open(out / 'predictions.csv', newline='') as handle:
        outcomes = [row['outcome'] for row in csv.DictReader(handle)]
    counts = {name: outcomes.count(name) for name in ('right', 'wrong', 'rejected')}
    assert report['int8']['outcomes'] == counts
    assert report['int8']['rejected'] == pytest.approx(counts['rejected'] / 6)
    assert report['int8']['accepted_wrong'] == pytest.approx(counts['wrong'] / 6)
    assert f'{counts["right"]} right, {counts["wrong"]} wrong map points' in \
        capsys.readouterr().out


def test_a_photo_the_vegetation_gate_stops_is_counted_as_the_nodes_publish_it(
        tmp_path: Path) -> None:
    """A flat grey 'photo' in a class folder: the nodes' gate stops it (no_leaf, no map
    point) whatever the model says; with --no-vegetation-gate the model's answer counts."""
    require_shipped_model()
    import cv2
    import numpy as np

    data = photo_folder(tmp_path / 'photos', copies=1)
    cv2.imwrite(str(data / CLASSES[0] / 'grey.png'), np.full((96, 96, 3), 128, np.uint8))
    assert evaluate(data, tmp_path / 'gated', '--score-threshold', '0') == 0
    report = json.loads((tmp_path / 'gated' / 'evaluation.json').read_text())
    assert report['stopped_by_gate'] == 1
    with open(tmp_path / 'gated' / 'predictions.csv', newline='') as handle:
        rows = {row['frame']: row for row in csv.DictReader(handle)}
    grey = rows[f'{CLASSES[0]}/grey.png']
    assert (grey['gate'], grey['published'], grey['outcome']) == ('stopped', 'no_leaf',
                                                                   'rejected')
    assert evaluate(data, tmp_path / 'ungated', '--score-threshold', '0',
                    '--no-vegetation-gate') == 0
    report = json.loads((tmp_path / 'ungated' / 'evaluation.json').read_text())
    assert report['stopped_by_gate'] is None
    with open(tmp_path / 'ungated' / 'predictions.csv', newline='') as handle:
        rows = {row['frame']: row for row in csv.DictReader(handle)}
    assert rows[f'{CLASSES[0]}/grey.png']['gate'] == ''  # the model's own answer counts


def test_a_model_without_no_leaf_publishes_no_leaf_for_a_stopped_frame() -> None:
    """The gate's no_leaf is no class of such a model: not its last label either."""
    import numpy as np

    from plant_disease_ros.training.field_evaluate import DomainFrames, prediction_rows

    labels = ['Grape___healthy', 'Grape___rot']
    frames = DomainFrames('photos', np.zeros((2, 4, 4, 3), np.uint8), np.array([0, 1]),
                          False, labels, gate_passed=np.array([True, False]))
    rows = prediction_rows(np.array([[0.9, 0.1], [0.2, 0.8]]), frames, labels, 0.5)
    assert [(row['label'], row['published'], row['outcome']) for row in rows] == [
        ('Grape___healthy', 'Grape___healthy', 'right'), ('no_leaf', 'no_leaf', 'rejected')]
