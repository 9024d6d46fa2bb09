"""The model card's figures without test photos that are copies of training photos."""

from __future__ import annotations

import json
from pathlib import Path

from plant_disease_ros.training.field_model_card import near_duplicate_lines

REPO_ROOT = Path(__file__).resolve().parents[2]


def rows(domain: str, outcomes: dict[str, bool]) -> list[dict[str, str]]:
    """Return predictions.csv rows of ``domain``: frame -> right or not."""
    return [{'domain': domain, 'frame': frame, 'correct': '1' if right else '0'}
            for frame, right in outcomes.items()]


def test_top1_without_the_copies_per_domain() -> None:
    copies = {'lab': {'plantvillage/A___x/1.jpg': {'train': 'plantvillage/A___x/9.jpg',
                                                    'same_label': True},
                      'plantvillage/A___y/2.jpg': {'train': 'plantvillage/A___x/8.jpg',
                                                    'same_label': False}},
              'orchard': {}}
    predictions = (rows('lab', {'A___x/1.jpg': True, 'A___y/2.jpg': True, 'A___x/3.jpg': True,
                                'A___y/4.jpg': False})
                   + rows('orchard', {'A___x/5.jpg': True}))
    [line] = near_duplicate_lines(copies, predictions, 'copies.json')
    assert 'listed in `copies.json`' in line
    # 3 of 4 right with the copies; 1 of 2 without them (Wilson 9.5-90.5 %).
    assert ("lab 2 of 4 (1 with the training copy's label): top-1 without them 50.0 % "
            '(9.5–90.5 %) against 75.0 % with them') in line
    assert line.endswith('The orchard test photos have none.')


def test_nothing_to_say_without_copies() -> None:
    assert near_duplicate_lines({'lab': {}}, rows('lab', {'a/1.jpg': True}), 'x.json') == []


def test_the_shipped_list_names_test_photos_of_the_shipped_splits() -> None:
    """Every listed photo is a test photo, and its training copy a training photo."""
    copies = json.loads((REPO_ROOT / 'models' / 'test_near_duplicates.json').read_text())
    lab = json.loads((REPO_ROOT / 'models' / 'split.json').read_text())
    field = json.loads((REPO_ROOT / 'models' / 'field_split.json').read_text())
    parts = {'lab': {name: {path for path, _ in lab['splits'][name]}
                     for name in ('train', 'test')}}
    for domain, entry in field['domains'].items():
        parts[domain] = {name: {path for path, _ in entry['splits'][name]}
                         for name in ('train', 'test')}
    assert len(copies['lab']) == 143 and len(copies['plantdoc']) == 17
    assert copies['pp2021_apple'] == {} and copies['negatives'] == {}
    for domain in ('lab', 'plantdoc'):
        for test_path, entry in copies[domain].items():
            # Paths under the data root: plantvillage/<class>/<file>, field/plantdoc/...
            assert test_path.split('/', 1 if domain == 'lab' else 2)[-1] in parts[domain]['test']
            train_domain = 'lab' if entry['train'].startswith('plantvillage/') else domain
            train_path = entry['train'].split('/', 1 if train_domain == 'lab' else 2)[-1]
            assert train_path in parts[train_domain]['train'], entry
