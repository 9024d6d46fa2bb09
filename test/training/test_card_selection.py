"""The field card says where test photos that copy training photos crowd, and how the
model was chosen among finished runs."""

from __future__ import annotations

from plant_disease_ros.training.field_model_card import near_duplicate_lines, selection_lines


def rows(domain: str, truth: str, count: int) -> list[dict[str, str]]:
    return [{'domain': domain, 'frame': f'{truth}/{number}.jpg', 'truth': truth,
             'correct': '1'} for number in range(count)]


def test_classes_whose_test_photos_are_mostly_copies_are_named() -> None:
    predictions = rows('lab', 'Potato___healthy', 6) + rows('lab', 'Apple___scab', 10)
    copies = {f'data/Potato___healthy/{number}.jpg': {'same_label': True}
              for number in range(6)}
    copies['data/Apple___scab/0.jpg'] = {'same_label': True}
    [text] = near_duplicate_lines({'lab': copies}, predictions, 'near.json')
    assert 'lab 7 of 16' in text
    assert text.endswith('a measure of remembering: lab Potato___healthy (6 of 6).')
    # One copy in ten is no crowd: no class named.
    [text] = near_duplicate_lines({'lab': {'data/Apple___scab/0.jpg': {}}},
                                  rows('lab', 'Apple___scab', 10), 'near.json')
    assert 'remembering' not in text


def test_the_selection_note_is_its_own_section() -> None:
    assert selection_lines('\nTurned down on test: two runs.\n') == [
        '## How this model was chosen', '', 'Turned down on test: two runs.', '']
