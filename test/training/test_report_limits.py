"""The report's limits: odd map file names, where the model is found, page size, options.

A map file whose name is not UTF-8 is skipped with a note; outside the repository the
shipped model is still found; a self-contained page holds each picture once and no data
file; a map folder of many runs shows the newest ``--max-maps``; bad options and an
``--out`` folder are refused with the reason; suggested commands can be pasted.
"""

from __future__ import annotations

import html
import json
import os
from pathlib import Path
import re

from conftest import MODELS_DIR
import pytest

from plant_disease_ros.cli.main import main
from plant_disease_ros.training.report import build_report, ReportInputs
from training import test_report
from training.test_report import detection, unresolved_links

report_inputs = test_report.report_inputs  # the fixture of a full set of inputs


def write_map(path: Path, mtime: float | None = None) -> Path:
    """Write a map file of two detections (``mtime``: its modification time)."""
    features = [detection('Tomato___Early_blight', 48.0, False),
                detection('Tomato___healthy', 48.00001, True)]
    path.write_bytes(json.dumps({'type': 'FeatureCollection', 'features': features}).encode())
    if mtime is not None:
        os.utime(path, (mtime, mtime))
    return path


def test_a_map_file_not_named_in_utf8_is_skipped_with_a_note(tmp_path: Path) -> None:
    field = tmp_path / 'field'
    field.mkdir()
    write_map(field / 'day.geojson')
    write_map(Path(os.fsdecode(os.fsencode(field) + b'/feld\xe9.geojson')))
    result = build_report(ReportInputs(models_dir=tmp_path / 'no_models', run_dir=None,
                                       map_path=field), tmp_path / 'out' / 'index.html')
    page = result.path.read_text(encoding='utf-8')
    section = page[page.index('<section id="map"'):]
    assert 'feld\ufffd.geojson is skipped: its name is not UTF-8; rename it' in section
    assert '<h3>day.geojson' in section and result.sections['map'] == 'ok'


def test_the_shipped_model_is_found_from_any_folder(tmp_path: Path,
                                                    monkeypatch: pytest.MonkeyPatch,
                                                    capsys: pytest.CaptureFixture) -> None:
    if not (MODELS_DIR / 'plant_disease_int8.tflite').is_file():
        pytest.skip('shipped model not present')
    monkeypatch.chdir(tmp_path)
    assert main(['report', '--explanations', '', '--embed', '', '--out', 'r.html']) == 0
    assert '  model         ok' in capsys.readouterr().out
    page = (tmp_path / 'r.html').read_text(encoding='utf-8')
    assert '<code>plant_disease_int8.tflite</code>' in page


def test_a_self_contained_page_holds_each_picture_once(tmp_path: Path) -> None:
    if not (MODELS_DIR / 'evaluation.json').is_file():
        pytest.skip('shipped evaluation not present')
    for inline in (False, True):
        out = tmp_path / f'{inline}.html'
        assert main(['report', '--models', str(MODELS_DIR), '--explanations', '',
                     '--embed', '', '--out', str(out)] + (['--inline'] if inline else [])) == 0
        page = out.read_text(encoding='utf-8')
        sources = re.findall(r'<img src="([^"]+)"', page)
        assert len(sources) >= 3 and len(sources) == len(set(sources))
        if inline:
            assert 'href="data:' not in page
            assert not unresolved_links(out)[0]


def test_the_inline_page_names_data_files_instead_of_holding_them(
        report_inputs: ReportInputs, tmp_path: Path) -> None:
    page = build_report(report_inputs, tmp_path / 'one.html', inline=True).path
    text = page.read_text(encoding='utf-8')
    assert 'href="data:' not in text
    assert '<code>run1.geojson</code>' in text and '<code>evaluation.json</code>' in text


def test_a_map_folder_shows_the_newest_runs(tmp_path: Path,
                                            capsys: pytest.CaptureFixture) -> None:
    field = tmp_path / 'field'
    field.mkdir()
    for number in range(13):
        write_map(field / f'run{number:02d}.geojson', 1_700_000_000 + number)
    result = build_report(ReportInputs(models_dir=tmp_path / 'no_models', run_dir=None,
                                       map_path=field, max_maps=10),
                          tmp_path / 'out' / 'index.html')
    section = result.path.read_text(encoding='utf-8').split('<section id="map"')[1]
    headings = re.findall(r'<h3>(run\d+)\.geojson', section)
    assert headings == [f'run{number:02d}' for number in range(12, 2, -1)]
    assert '13 runs in' in section and 'the newest 10 shown, 3 more not' in section
    assert 'run02' not in section and result.sections['map'] == 'ok'
    drawn = [line for line in capsys.readouterr().err.splitlines() if 'drawing the map' in line]
    assert len(drawn) == 10
    # --max-maps 0 shows none, and the section's state says so (it said ok).
    none = build_report(ReportInputs(models_dir=tmp_path / 'no_models', run_dir=None,
                                     map_path=field, max_maps=0),
                        tmp_path / 'none' / 'index.html')
    assert none.sections['map'] == 'none shown (--max-maps 0)'
    assert '13 runs in' in none.path.read_text(encoding='utf-8')
    one = tmp_path / 'one'
    one.mkdir()
    write_map(one / 'run.geojson', 1_700_000_000)
    single = build_report(ReportInputs(models_dir=tmp_path / 'no_models', run_dir=None,
                                       map_path=one, max_maps=0),
                          tmp_path / 'single' / 'index.html')
    assert '1 run in' in single.path.read_text(encoding='utf-8')
    assert single.sections['map'] == 'none shown (--max-maps 0)'


def test_bad_options_are_refused(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    assert main(['report', '--max-explanations', '-1', '--out', str(tmp_path / 'a.html')]) == 2
    assert '--max-explanations must be 0 or more' in capsys.readouterr().err
    assert main(['report', '--max-maps', '-2', '--out', str(tmp_path / 'a.html')]) == 2
    (tmp_path / 'site').mkdir()
    assert main(['report', '--out', str(tmp_path / 'site')]) == 2
    error = capsys.readouterr().err
    assert 'is a folder' in error and 'earlier report' not in error


def test_suggested_commands_can_be_pasted(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                          capsys: pytest.CaptureFixture) -> None:
    monkeypatch.chdir(tmp_path)
    run = tmp_path / 'my runs' / 'mine'
    run.mkdir(parents=True)
    (run / 'model_int8.tflite').write_bytes(b'TFL3' + bytes(300))
    (run / 'labels.txt').write_text('A___x\nB___y\n')
    out = tmp_path / 'report.html'
    assert main(['report', '--run', str(run), '--out', str(out)]) == 0
    page = html.unescape(out.read_text(encoding='utf-8'))
    folder = f"'{run / 'explanations'}'"
    assert f'--out {folder}</code>' in page
    assert f'--out {folder}</code>.' not in page
    assert f"--model '{run / 'model_int8.tflite'}'" in page


def test_after_a_colcon_install_the_report_takes_the_source_models_folder(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A colcon install's share folder holds the model, labels and card, not the card's
    evaluation and figures: the report of the shipped model takes the source tree's
    models/ (it took the share folder: no evaluation, every picture missing)."""
    pytest.importorskip('ament_index_python')
    from plant_disease_ros.core.classifier import default_model_path, source_models_dir
    from plant_disease_ros.training.report import shipped_models_folder

    source = source_models_dir()
    if not (source / 'evaluation.json').is_file():
        pytest.skip('the source tree has no models/evaluation.json')
    prefix = tmp_path / 'install'
    share = prefix / 'share' / 'plant_disease_ros' / 'models'
    share.mkdir(parents=True)
    for name in ('plant_disease_int8.tflite', 'labels.txt', 'MODEL_CARD.md'):
        (share / name).write_bytes((source / name).read_bytes())
    index = prefix / 'share' / 'ament_index' / 'resource_index' / 'packages'
    index.mkdir(parents=True)
    (index / 'plant_disease_ros').write_text('')
    monkeypatch.setenv('AMENT_PREFIX_PATH', str(prefix))
    monkeypatch.chdir(tmp_path)
    assert default_model_path() == share / 'plant_disease_int8.tflite'  # installed
    assert shipped_models_folder() == source
    result = build_report(ReportInputs(models_dir=shipped_models_folder(), run_dir=None),
                          tmp_path / 'out' / 'index.html')
    assert result.sections['evaluation'] == 'ok'
    # Without the source tree's files (a robot with the install only): the share folder.
    monkeypatch.setattr('plant_disease_ros.core.classifier.source_models_dir',
                        lambda: tmp_path / 'no_source')
    assert shipped_models_folder() == share
