"""Where the report's pictures come from, and how the page refers to them.

An evaluation folder supplies pictures only once its evaluation is shown; picture URLs
survive any page name; a self-contained page loads nothing from the network; the ids of
the page are unique; a card cannot pull files from outside the folders searched.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from plant_disease_ros.training.report import build_report, ReportInputs
from training import test_report
from training.test_report import unresolved_links
from training.test_user_run_report import POTATO, report, section, write_evaluation, write_png

report_inputs = test_report.report_inputs  # the fixture of a full set of inputs


@pytest.fixture
def exported_run(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """Return runs/mine: exported, with a card, no curves and no evaluation of its own."""
    monkeypatch.chdir(tmp_path)
    run = tmp_path / 'runs' / 'mine'
    run.mkdir(parents=True)
    (run / 'model_int8.tflite').write_bytes(b'TFL3' + bytes(3000))
    (run / 'labels.txt').write_text(''.join(f'{name}\n' for name in POTATO))
    (run / 'train_summary.json').write_text(json.dumps({'epochs_run': 1}))
    (run / 'MODEL_CARD.md').write_text('# Model card\n\n![curves](training_curves.png)\n\n'
                                       '![matrix](confusion_matrix.png)\n')
    return run


def test_a_rejected_evaluation_folder_supplies_no_picture(
        exported_run: Path, tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    other = tmp_path / 'other_model'
    other_model = other / 'other.tflite'
    other_model.parent.mkdir()
    other_model.write_bytes(b'TFL3 another model')
    write_evaluation(other, other_model, 0.9)
    write_png(other / 'training_curves.png', (9, 9, 9))
    states, page = report(exported_run, capsys, '--eval', str(other))
    assert states['evaluation'].startswith(f'skipped {other / "evaluation.json"}')
    assert states['training'] == 'no training_curves.png'
    files = exported_run / 'report' / 'index_files'
    assert not files.exists() or not any(files.iterdir()), list(files.iterdir())
    assert 'picture not available: curves' in section(page, 'model')
    assert 'picture not available: matrix' in section(page, 'model')
    # Shown once accepted: the evaluation's pictures (the Training section's curves are
    # still the run's alone).
    write_evaluation(other, exported_run / 'model_int8.tflite', 0.9)
    states, page = report(exported_run, capsys, '--eval', str(other))
    assert states['evaluation'] == 'ok' and states['training'] == 'no training_curves.png'
    assert 'picture not available: matrix' not in page


def test_a_self_contained_page_loads_nothing_from_the_web(report_inputs: ReportInputs,
                                                          tmp_path: Path) -> None:
    card = report_inputs.models_dir / 'MODEL_CARD.md'
    card.write_text(card.read_text() + '\n![remote curves](https://example.com/t.png)\n'
                    '[the paper](https://example.com/paper)\n')
    for inline in (True, False):
        page = build_report(report_inputs, tmp_path / f'inline_{inline}.html',
                            inline=inline).path
        problems, _ = unresolved_links(page)
        assert not problems, problems
        text = page.read_text(encoding='utf-8')
        assert 'src="https://' not in text
        assert '<a href="https://example.com/t.png">' in text
        assert '<a href="https://example.com/paper">the paper</a>' in text


@pytest.mark.parametrize('name', ['field day #3.html', 'why?.html', 'a%20b.html'])
def test_pictures_resolve_whatever_the_page_is_called(report_inputs: ReportInputs,
                                                      tmp_path: Path, name: str) -> None:
    from urllib.parse import unquote, urlsplit

    page = build_report(report_inputs, tmp_path / 'out' / name).path
    problems, checked = unresolved_links(page)
    assert not problems and checked >= 12, problems
    # As a browser reads them: '#' starts a fragment, '?' a query, '%' an escape.
    parser = test_report.PageLinks()
    parser.feed(page.read_text(encoding='utf-8'))
    local = [value for _, _, value in parser.links
             if not value.startswith(('#', 'data:', 'http:', 'https:', 'mailto:'))]
    assert len(local) >= 10
    for value in local:
        parts = urlsplit(value)
        assert not parts.fragment and not parts.query, value
        assert (page.parent / unquote(parts.path)).is_file(), value


def test_every_id_of_the_page_is_unique(report_inputs: ReportInputs, tmp_path: Path) -> None:
    import re

    card = report_inputs.models_dir / 'MODEL_CARD.md'
    card.write_text(card.read_text() + '\n## Model\n\nm\n\n## Training\n\nt\n\n## Map\n')
    page = build_report(report_inputs, tmp_path / 'out' / 'index.html').path
    text = page.read_text(encoding='utf-8')
    ids = re.findall(r'\sid="([^"]*)"', text)
    assert len(ids) == len(set(ids)), sorted(ids)
    assert 'card-training' in ids and 'training' in ids
    assert text.index('<section id="training"') > text.index('id="card-training"')


def test_a_card_cannot_pull_files_from_outside_its_folders(report_inputs: ReportInputs,
                                                           tmp_path: Path) -> None:
    secret = tmp_path / 'secret.txt'
    secret.write_text('not for the report\n')
    write_png(tmp_path / 'private.png', (1, 1, 1))
    card = report_inputs.models_dir / 'MODEL_CARD.md'
    card.write_text(card.read_text() + '\n[x](../secret.txt) and [y](../../../etc/passwd)\n'
                    '![z](../private.png)\n')
    for inline in (False, True):
        page = build_report(report_inputs, tmp_path / 'out' / f'{inline}.html',
                            inline=inline).path
        text = page.read_text(encoding='utf-8')
        assert 'picture not available: z' in text
        files = tmp_path / 'out' / f'{inline}_files'
        copied = {path.name for path in files.iterdir()} if files.is_dir() else set()
        assert not copied & {'secret.txt', 'passwd', 'private.png'}
        assert 'not for the report' not in text and 'root:' not in text
        assert 'bm90IGZvciB0aGUgcmVwb3J0' not in text  # base64 of the secret's start


def test_a_cards_own_links_are_shown_from_its_evaluation_and_its_run(
        exported_run: Path, tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    """The confinement of card links keeps what a card legitimately links: an evaluation
    folder beside the run (``../../ev/...``, as model-card writes it), a run's ``eval``
    that is a link to another disk, and a card in an export folder naming its run's
    ``../training_curves.png`` (all three were 'picture not available')."""
    beside = write_evaluation(tmp_path / 'ev', exported_run / 'model_int8.tflite', 0.9)
    card = exported_run / 'MODEL_CARD.md'
    card.write_text('# Model card\n\n![beside](../../ev/confusion_matrix.png)\n')
    states, page = report(exported_run, capsys, '--eval', str(beside))
    assert states['evaluation'] == 'ok'
    assert 'picture not available: beside' not in section(page, 'model')
    # eval/ a link to another disk.
    other_disk = write_evaluation(tmp_path / 'disk' / 'ev', exported_run / 'model_int8.tflite',
                                  0.9)
    (exported_run / 'eval').symlink_to(other_disk, target_is_directory=True)
    card.write_text('# Model card\n\n![linked](eval/confusion_matrix.png)\n')
    states, page = report(exported_run, capsys)
    assert states['evaluation'] == 'ok'
    assert 'picture not available: linked' not in section(page, 'model')
    # A card in an export folder of the run.
    export = exported_run / 'export'
    export.mkdir()
    for name in ('model_int8.tflite', 'labels.txt'):
        (export / name).write_bytes((exported_run / name).read_bytes())
    (export / 'MODEL_CARD.md').write_text('# Model card\n\n![curves](../training_curves.png)\n')
    write_png(exported_run / 'training_curves.png', (5, 90, 5))
    states, page = report(exported_run, capsys, '--models', str(export))
    assert 'picture not available: curves' not in section(page, 'model')
    # Still nothing from outside: the folder above the run.
    (export / 'MODEL_CARD.md').write_text('# Model card\n\n![above](../../private.png)\n')
    write_png(exported_run.parent / 'private.png', (1, 1, 1))
    states, page = report(exported_run, capsys, '--models', str(export))
    assert 'picture not available: above' in section(page, 'model')
