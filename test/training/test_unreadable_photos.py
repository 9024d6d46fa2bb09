"""Photos that cannot be decoded are named with the reason by train and evaluate.

``train`` prints the first few and a count, and ``split.json`` keeps every reason;
``evaluate --data`` prints them too, and ``evaluation.json`` keeps the reasons.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

from conftest import TEST_IMAGES_DIR
from helpers.photo_folders import leaf_copies
from helpers.shipped_model import LABELS_PATH, MODEL_PATH, require_shipped_model
import pytest

from plant_disease_ros.cli.main import main
from plant_disease_ros.training.dataset import describe_unreadable, printable
from plant_disease_ros.training.train import prepare_split, TrainOptions

CLASSES = ('Apple___healthy', 'Potato___Early_blight', 'Tomato___Late_blight')


def folder_with_unreadable_photos(root: Path, copies: int = 4) -> Path:
    """Write ``copies`` photos a class and, in the first class, two that cannot be decoded."""
    leaf_copies(root, CLASSES, copies)
    whole = (TEST_IMAGES_DIR / 'leaves' / f'{CLASSES[0]}.jpg').read_bytes()
    (root / CLASSES[0] / 'cut.jpg').write_bytes(whole[:len(whole) // 2])
    (root / CLASSES[0] / 'text.jpg').write_text('not a photo at all\n')
    return root


def test_train_names_each_unreadable_photo_and_split_json_keeps_why(
        tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    data = folder_with_unreadable_photos(tmp_path / 'photos')
    out = tmp_path / 'run'
    prepare_split(TrainOptions(data_dir=str(data), out_dir=str(out), input_size=32,
                               val_fraction=0.25, test_fraction=0.25, cache_dir=None))
    manifest = json.loads((out / 'split.json').read_text())
    cut, text = f'{CLASSES[0]}/cut.jpg', f'{CLASSES[0]}/text.jpg'
    assert manifest['skipped_unreadable'] == [cut, text]
    reasons = manifest['unreadable_reasons']
    assert set(reasons) == {cut, text}
    assert reasons[cut].startswith(f'cannot decode {cut}: ') and 'truncated' in reasons[cut]
    assert reasons[text].startswith(f'cannot decode {text}: ')
    printed = capsys.readouterr().err
    assert 'skipped 2 unreadable photo(s) (all listed with the reason in split.json):' in printed
    assert f'  {reasons[cut]}' in printed and f'  {reasons[text]}' in printed


def test_evaluate_prints_the_unreadable_photos_and_records_why(
        tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    require_shipped_model()
    data = folder_with_unreadable_photos(tmp_path / 'photos', copies=1)
    out = tmp_path / 'eval'
    assert main(['evaluate', '--model', str(MODEL_PATH), '--labels', str(LABELS_PATH),
                 '--data', str(data), '--out', str(out), '--cache-dir', '',
                 '--threads', '1']) == 0
    report = json.loads((out / 'evaluation.json').read_text())
    cut = f'{CLASSES[0]}/cut.jpg'
    assert report['photos'] == 3 and sorted(report['unreadable_reasons']) == [
        cut, f'{CLASSES[0]}/text.jpg']
    printed = capsys.readouterr().err
    assert (f'skipped 2 unreadable photo(s) (all listed with the reason in '
            f'{out / "evaluation.json"}):') in printed
    assert f'  {report["unreadable_reasons"][cut]}' in printed


def test_many_unreadable_photos_are_named_first_then_counted() -> None:
    reasons = {f'a/{number}.jpg': f'cannot decode a/{number}.jpg: no' for number in range(8)}
    lines = describe_unreadable(reasons, 'split.json').splitlines()
    assert lines[0] == 'skipped 8 unreadable photo(s) (all listed with the reason in split.json):'
    assert lines[1:6] == [f'  cannot decode a/{number}.jpg: no' for number in range(5)]
    assert lines[6:] == ['  ... and 3 more']


def test_a_photo_name_that_is_not_utf8_is_skipped_by_evaluate_and_explain(
        tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    """Both finish, naming it; before, evaluate died writing predictions.csv."""
    require_shipped_model()
    data = leaf_copies(tmp_path / 'photos', CLASSES, 1)
    odd = os.path.join(os.fsencode(data / CLASSES[0]), b'bad\xff.jpg')
    with open(odd, 'wb') as handle:
        handle.write((TEST_IMAGES_DIR / 'leaves' / f'{CLASSES[0]}.jpg').read_bytes())
    reason = (f'cannot use {CLASSES[0]}/bad\\xff.jpg: its file name is not valid UTF-8, so '
              'it could not be written to predictions.csv or a report; rename it')
    out = tmp_path / 'eval'
    assert main(['evaluate', '--model', str(MODEL_PATH), '--labels', str(LABELS_PATH),
                 '--data', str(data), '--out', str(out), '--cache-dir', '',
                 '--threads', '1']) == 0
    assert f'  {reason}' in capsys.readouterr().err
    report = json.loads((out / 'evaluation.json').read_text())
    assert report['photos'] == 3
    assert list(report['unreadable_reasons'].values()) == [reason]
    assert (out / 'predictions.csv').read_text(encoding='utf-8').count('\n') == 4

    explained = tmp_path / 'explained'
    assert main(['explain', os.fsdecode(odd), str(data / CLASSES[1] / '0.jpg'),
                 '--no-gradcam', '--model', str(MODEL_PATH), '--labels', str(LABELS_PATH),
                 '--grid', '2', '--no-figures', '--out', str(explained)]) == 0
    assert f'skipped: cannot use {printable(odd)}: its file name is not valid UTF-8' \
        in capsys.readouterr().err
