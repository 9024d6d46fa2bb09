"""The static HTML report: Markdown rendering (markdown-it-py), sections with and without
inputs, and that every picture and link of the page resolves offline."""

from __future__ import annotations

import hashlib
from html.parser import HTMLParser
import json
from pathlib import Path
from urllib.parse import unquote

from conftest import MODELS_DIR
import cv2
import numpy as np
import pytest

from plant_disease_ros.core.classifier import Category, Classification
from plant_disease_ros.core.fix_buffer import FixLookup, GeoFix
from plant_disease_ros.training.report import build_report, ReportInputs
from plant_disease_ros.training.report_html import markdown_to_html

CARD = """# Model card: test model

A *tiny* card with **bold** text, `code_with_underscores` and Tomato___Early_blight.
See [the paper](https://arxiv.org/abs/1511.08060) and [the split](split.json) and
[a missing file](nowhere.csv).

## Figures

- first item
  continued
- second item

| class | test |
| --- | ---: |
| Apple___Apple_scab | 12 |

![training curves](training_curves.png)
![confusion matrix](confusion_matrix.png)
![gone](missing.png)

```bash
plant-disease train --data <folder>
```
"""


class PageLinks(HTMLParser):
    """Collect every src/href of a page and every id."""

    def __init__(self) -> None:
        super().__init__()
        self.links: list[tuple[str, str, str]] = []
        self.ids: set[str] = set()

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        for name, value in attrs:
            if name == 'id' and value:
                self.ids.add(value)
            if name in ('src', 'href') and value is not None:
                self.links.append((tag, name, value))


def unresolved_links(page: Path) -> tuple[list[str], int]:
    """Return (problems, number of links checked) of an HTML page."""
    parser = PageLinks()
    parser.feed(page.read_text(encoding='utf-8'))
    problems = []
    for tag, name, value in parser.links:
        if value.startswith('data:'):
            continue
        if value.startswith('#'):
            if value[1:] not in parser.ids:
                problems.append(f'{tag} {name}={value}: no such id')
            continue
        if value.startswith(('http://', 'https://', 'mailto:')):
            if tag != 'a':  # a page that loads anything from the network is not offline
                problems.append(f'{tag} {name}={value}: network resource')
            continue
        if not (page.parent / unquote(value)).is_file():
            problems.append(f'{tag} {name}={value}: missing file')
    return problems, len(parser.links)


def write_png(path: Path, colour: tuple[int, int, int] = (40, 160, 60)) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    cv2.imwrite(str(path), np.full((24, 32, 3), colour, dtype=np.uint8))
    return path


def detection(label: str, latitude: float, healthy: bool) -> dict:
    from plant_disease_ros.core.detections import detection_feature

    classification = Classification(categories=(Category(3, label, 0.9),), preprocess_ms=1.0,
                                    invoke_ms=2.0, postprocess_ms=0.1)
    fix = GeoFix(stamp_s=10.0, latitude=latitude, longitude=11.0, altitude=300.0)
    feature = detection_feature(stamp_sec=10, stamp_nanosec=0, frame_id='camera',
                                classification=classification,
                                fix_lookup=FixLookup(status='nearest', fix=fix, age_s=0.0))
    assert feature['properties']['healthy'] == healthy
    return feature


@pytest.fixture
def report_inputs(tmp_path: Path) -> ReportInputs:
    """Return a full set of synthetic report inputs."""
    models = tmp_path / 'models'
    models.mkdir()
    (models / 'MODEL_CARD.md').write_text(CARD)
    (models / 'labels.txt').write_text('Apple___Apple_scab\nTomato___healthy\n')
    (models / 'plant_disease_int8.tflite').write_bytes(b'TFL3' + bytes(100))
    (models / 'plant_disease_float.keras').write_bytes(b'keras model')
    (models / 'split.json').write_text('{}')
    run = tmp_path / 'run'
    write_png(run / 'training_curves.png')
    (run / 'train_summary.json').write_text(json.dumps({
        'model': {'architecture': 'mobilenet_v2', 'width': 0.5, 'input_size': 96},
        'epochs_run': 3, 'best_val_accuracy': 0.91, 'train_seconds': 600, 'parameters': 1234}))
    evaluation = run / 'eval'
    write_png(evaluation / 'confusion_matrix.png', (200, 30, 30))
    (evaluation / 'evaluation.json').write_text(json.dumps({
        'model': str(models / 'plant_disease_int8.tflite'),
        'model_sha256': hashlib.sha256(b'TFL3' + bytes(100)).hexdigest(),
        'photos': 42, 'split': 'test', 'int8': {'top1': 0.9, 'top3': 0.99, 'macro_f1': 0.88},
        'float': {'top1': 0.91, 'top3': 0.99}, 'int8_float_agreement': 0.97,
        'most_confused': [{'truth': 'a', 'predicted': 'b', 'count': 2}]}))
    explanations = tmp_path / 'explanations'
    write_png(explanations / 'leaf_explain.png')
    (explanations / 'explanations.json').write_text(json.dumps({
        'tflite_model': str(models / 'plant_disease_int8.tflite'), 'grid': 8, 'fill': 'mean',
        'summary': {'images': 2, 'occlusion_peak_on_leaf_fraction': 1.0,
                    'gradcam_peak_on_leaf_fraction': 0.5,
                    'iou_top20': {'mean': 0.4, 'median': 0.4, 'min': 0.3, 'max': 0.5},
                    'top1_agreement': 1.0},
        'images': [
            {'image': 'photos/leaf.jpg', 'figure': 'leaf_explain.png', 'iou_top20': 0.5,
             'top3_int8': [{'label': 'Tomato___healthy', 'score': 0.9, 'index': 1}],
             'top3_float': [{'label': 'Tomato___healthy', 'score': 0.8, 'index': 1}],
             'occlusion_peak_on_leaf': True, 'gradcam_peak_on_leaf': False},
            {'image': 'photos/other.jpg', 'figure': 'gone.png', 'iou_top20': 0.3,
             'top3_int8': [{'label': 'Apple___Apple_scab', 'score': 0.7, 'index': 0}]},
        ]}))
    embed = tmp_path / 'embed'
    write_png(embed / 'pca.png')
    write_png(embed / 'tsne.png')
    (embed / 'overlap.json').write_text(json.dumps({
        'photos': 30, 'k': 10, 'distance': 'cosine', 'tsne': 'numpy (exact)',
        'keras_model': str(models / 'plant_disease_float.keras'),
        'keras_model_sha256': hashlib.sha256(b'keras model').hexdigest(),
        'pairs': [{'classes': ['a', 'b'], 'overlap': 0.2, 'first_to_second': 0.1,
                   'second_to_first': 0.3}]}))
    field = tmp_path / 'field'
    field.mkdir()
    features = [detection('Tomato___Early_blight', 48.0, False),
                detection('Tomato___healthy', 48.00001, True)]
    (field / 'run1.geojson').write_text(json.dumps(
        {'type': 'FeatureCollection', 'features': features}))
    return ReportInputs(models_dir=models, run_dir=run, explanations_dir=explanations,
                        embed_dir=embed, map_path=field)


def test_markdown_card() -> None:
    page = markdown_to_html(CARD, resolve=lambda target: f'files/{target}'
                            if target != 'missing.png' and target != 'nowhere.csv' else None)
    assert '<h1 id="model-card-test-model">' in page
    assert '<em>tiny</em>' in page and '<strong>bold</strong>' in page
    assert '<code>code_with_underscores</code>' in page
    assert 'Tomato___Early_blight' in page  # underscores in names are not emphasis
    assert '<a href="https://arxiv.org/abs/1511.08060">the paper</a>' in page
    assert '<a href="files/split.json">the split</a>' in page
    assert 'a missing file' in page and 'nowhere.csv' not in page
    assert '<li>first item\ncontinued</li>' in page  # a lazy continuation line
    assert '<th style="text-align:right">test</th>' in page
    assert '<img src="files/training_curves.png" alt="training curves">' in page
    assert 'picture not available: gone' in page
    assert '&lt;folder&gt;' in page and 'class="language-bash"' in page
    assert '<h3 id="shifted">shifted</h3>' in markdown_to_html('# shifted', heading_offset=2)
    assert '<h6' in markdown_to_html('#### deep', heading_offset=3)
    # Raw HTML in a card is shown as text, never run.
    assert '&lt;script&gt;' in markdown_to_html('<script>alert(1)</script>')
    assert '<script' not in markdown_to_html('a <script>alert(1)</script> b')


def test_full_report_links_resolve(report_inputs: ReportInputs, tmp_path: Path) -> None:
    result = build_report(report_inputs, tmp_path / 'out' / 'index.html')
    assert all(state == 'ok' for state in result.sections.values()), result.sections
    page = result.path.read_text(encoding='utf-8')
    problems, checked = unresolved_links(result.path)
    assert not problems and checked >= 12, problems
    assert 'Model card: test model' in page and '90.00 %' in page
    assert 'Tomato___Early_blight' in page and 'run1.geojson' in page
    assert 'picture missing' in page  # an explanation whose PNG went away
    assert 'Shown in the <a href="#model">model card</a>: the confusion matrix' in page
    # Pictures the card names are found in the run and evaluation folders and copied.
    copied = {path.name for path in (tmp_path / 'out' / 'index_files').iterdir()}
    assert {'training_curves.png', 'confusion_matrix.png', 'pca.png', 'tsne.png',
            'leaf_explain.png', 'split.json', 'run1.geojson', 'evaluation.json',
            'explanations.json', 'overlap.json'} <= copied
    assert any(name.endswith('_map.png') for name in copied)  # rendered from the GeoJSON


def test_a_folder_the_report_did_not_make_is_never_touched(report_inputs: ReportInputs,
                                                           tmp_path: Path) -> None:
    """``site_files/`` of the user's own: refused before anything is written."""
    out = tmp_path / 'out'
    notes = out / 'site_files' / 'notes.txt'
    notes.parent.mkdir(parents=True)
    notes.write_text('precious\n')
    with pytest.raises(ValueError, match='not made by plant-disease report'):
        build_report(report_inputs, out / 'site.html')
    assert notes.read_text() == 'precious\n'
    assert sorted(path.name for path in out.iterdir()) == ['site_files']
    with pytest.raises(ValueError, match='is a directory'):
        build_report(report_inputs, out / 'site_files')


def test_a_failed_rebuild_leaves_the_previous_report_whole(
        report_inputs: ReportInputs, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from plant_disease_ros.training import report

    out = tmp_path / 'out'
    page = out / 'index.html'
    build_report(report_inputs, page)
    before = {path.name: path.read_bytes() for path in (out / 'index_files').iterdir()}
    html = page.read_text(encoding='utf-8')

    def fail(inputs: ReportInputs, assets: object) -> tuple[str, str]:
        raise OSError(28, 'No space left on device')

    monkeypatch.setattr(report, 'SECTIONS', (*report.SECTIONS, ('late', 'Late', fail)))
    with pytest.raises(OSError, match='No space left'):
        build_report(report_inputs, page)
    assert page.read_text(encoding='utf-8') == html
    after = {path.name: path.read_bytes() for path in (out / 'index_files').iterdir()}
    assert after == before
    assert sorted(path.name for path in out.iterdir()) == ['index.html', 'index_files']
    # A rebuild that succeeds replaces its own folder: a stale picture goes.
    monkeypatch.undo()
    (out / 'index_files' / 'stale.png').write_bytes(b'old')
    build_report(report_inputs, page)
    assert not (out / 'index_files' / 'stale.png').exists()
    assert unresolved_links(page)[0] == []


def test_inline_report_is_one_file(report_inputs: ReportInputs, tmp_path: Path) -> None:
    result = build_report(report_inputs, tmp_path / 'single.html', inline=True)
    problems, _ = unresolved_links(result.path)
    assert not problems
    assert 'src="data:image/png;base64,' in result.path.read_text(encoding='utf-8')
    assert not (tmp_path / 'single_files').exists()


def test_report_without_inputs_says_what_is_missing(tmp_path: Path) -> None:
    inputs = ReportInputs(models_dir=tmp_path / 'no_models', run_dir=tmp_path / 'no_run',
                          explanations_dir=tmp_path / 'no_expl', embed_dir=None,
                          map_path=tmp_path / 'no_map')
    result = build_report(inputs, tmp_path / 'report' / 'index.html')
    assert all(state != 'ok' for state in result.sections.values()), result.sections
    page = result.path.read_text(encoding='utf-8')
    assert page.count('class="missing"') >= 6
    assert 'plant-disease explain' in page and 'plant-disease embed' in page
    problems, _ = unresolved_links(result.path)
    assert not problems


def test_report_of_the_repository_resolves(tmp_path: Path) -> None:
    from plant_disease_ros.cli.main import main

    out = tmp_path / 'repo_report' / 'index.html'
    assert main(['report', '--models', str(MODELS_DIR), '--out', str(out)]) == 0
    problems, _ = unresolved_links(out)
    assert not problems
    # The shipped evaluation is per domain: its table and pictures are shown.
    page = out.read_text(encoding='utf-8')
    evaluation = page[page.index('<section id="evaluation"'):]
    evaluation = evaluation[:evaluation.index('</section>')]
    assert '<td>pp2021_apple</td>' in evaluation and 'held-out test photos' in evaluation
    assert 'confusion_negatives.png' in evaluation and 'missing' not in evaluation


def test_report_of_a_users_run_never_shows_the_shipped_model_as_its_own(
        tmp_path: Path) -> None:
    from plant_disease_ros.cli.main import main

    run = tmp_path / 'runs' / 'mine'
    write_png(run / 'training_curves.png')
    (run / 'train_summary.json').write_text(json.dumps({
        'model': {'architecture': 'resnet_lite', 'width': 0.75, 'input_size': 128},
        'epochs_run': 5, 'best_val_accuracy': 0.8, 'train_seconds': 60, 'parameters': 99}))
    (run / 'model_int8.tflite').write_bytes(b'TFL3' + bytes(3000))
    (run / 'labels.txt').write_text('Pear___healthy\nPear___scab\n')
    (run / 'MODEL_CARD.md').write_text('# Model card: model_int8.tflite\n\nMine.\n')
    out = tmp_path / 'report' / 'index.html'
    result_code = main(['report', '--run', str(run), '--explanations', '', '--embed', '',
                        '--out', str(out)])
    assert result_code == 0
    page = out.read_text(encoding='utf-8')
    assert '<code>model_int8.tflite</code>' in page and 'Pear___scab' in page
    assert 'plant_disease_int8.tflite' not in page and 'Tomato___healthy' not in page
    # No evaluation of the run: said so, the shipped evaluation is not shown instead.
    assert 'No <code>confusion_matrix.png</code>' in page
    assert '2730' not in page and 'pp2021_apple' not in page


def test_a_replay_folder_shows_each_runs_detections_on_its_recorded_grid(tmp_path: Path) -> None:
    """`--map` a replay folder: the grids are not detection maps, the cells are the
    recorder's (its summary), and the newest run comes first."""
    import os

    from plant_disease_ros.core.map_gis import grid_features, write_grid_files

    field = tmp_path / 'replay'
    field.mkdir()
    features = [detection('Tomato___Early_blight', 48.0, False),
                detection('Tomato___Early_blight', 48.00003, False),
                detection('Tomato___healthy', 48.00001, True)]
    origin = {'latitude': 48.00002, 'longitude': 11.0, 'altitude': 300.0}
    for number, (run, cell_size_m) in enumerate((('disease_map', 5.0),
                                                 ('disease_map-2', 0.5))):
        (field / f'{run}.geojson').write_text(json.dumps(
            {'type': 'FeatureCollection', 'features': features}))
        (field / f'{run}_summary.json').write_text(json.dumps(
            {'cell_size_m': cell_size_m, 'origin': origin}))
        grid = write_grid_files(grid_features(features, cell_size_m), field / run)
        for path in (field / f'{run}.geojson', grid.geojson):
            os.utime(path, (1_700_000_000 + number * 60,) * 2)  # run 2 is the newer
    result = build_report(ReportInputs(models_dir=tmp_path / 'no_models', run_dir=None,
                                       map_path=field), tmp_path / 'out' / 'index.html')
    assert result.sections['map'] == 'ok'
    page = result.path.read_text(encoding='utf-8')
    section = page[page.index('id="map"'):]
    assert 'grid.geojson</h3>' not in section and 'detections</th><td>0' not in section
    headings = [line for line in section.split('<h3>')[1:]]
    assert headings[0].startswith('disease_map-2.geojson (newest run)</h3>')
    assert headings[1].startswith('disease_map.geojson</h3>')
    # 2.2 m south to 1.1 m north of the origin: one 5 m cell centred on it (2 m cells
    # centred on the first detection would be three); 0.5 m cells part them.
    assert 'diseased 5 m cells</th><td>1 of 1 (grid: disease_map_summary.json)' in section
    assert 'diseased 0.5 m cells</th><td>2 of 3 (grid: disease_map-2_summary.json)' in section


def map_section(field: Path, out: Path) -> str:
    """Return the map section of a report of the maps in ``field``, written to ``out``."""
    result = build_report(ReportInputs(models_dir=out.parent / 'no_models', run_dir=None,
                                       map_path=field), out / 'index.html')
    page = result.path.read_text(encoding='utf-8')
    return page[page.index('id="map"'):]


def test_a_run_cut_off_after_its_last_save_shows_its_records(tmp_path: Path) -> None:
    """The collection (saved at 1 detection) is older than the records (3): the report
    shows the records; a collection saved after its last record is shown as before."""
    import os

    from plant_disease_ros.core.map_file import GeoJsonSeqWriter, write_feature_collection

    field = tmp_path / 'maps'
    field.mkdir()
    features = [detection('Tomato___Early_blight', 48.0, False),
                detection('Tomato___Early_blight', 48.00003, False),
                detection('Tomato___healthy', 48.00001, True)]
    write_feature_collection(field / 'day.geojson', features[:1])
    with GeoJsonSeqWriter(field / 'day.geojsons') as writer:
        for feature in features:
            writer.append(feature)
    os.utime(field / 'day.geojson', (1_700_000_000,) * 2)
    os.utime(field / 'day.geojsons', (1_700_000_600,) * 2)

    section = map_section(field, tmp_path / 'cut_off')
    assert '<h3>day.geojsons' in section and 'detections</th><td>3' in section
    assert 'unreadable records' not in section
    # A torn last record is counted; a file of zeros is left out with the reason.
    with open(field / 'day.geojsons', 'ab') as handle:
        handle.write(b'\x1e{"type": "Feat')
    os.utime(field / 'day.geojsons', (1_700_000_600,) * 2)
    (field / 'zeros.geojsons').write_bytes(bytes(8192))
    section = map_section(field, tmp_path / 'torn')
    assert ('unreadable records</th><td>0 skipped, and an incomplete last record'
            in section)
    assert 'zeros.geojsons is left out: it holds no readable detection' in section
    assert '<h3>zeros.geojsons' not in section
    (field / 'zeros.geojsons').unlink()
    os.utime(field / 'day.geojson', (1_700_001_200,) * 2)
    section = map_section(field, tmp_path / 'saved')
    assert '<h3>day.geojson' in section and '<h3>day.geojsons' not in section
    assert 'detections</th><td>1' in section


def test_the_evaluation_section_shows_what_the_nodes_would_publish(
        report_inputs: ReportInputs, tmp_path: Path) -> None:
    """Top-1 90 % on 42 photos, 14 of them under score_threshold: the page says so."""
    path = report_inputs.run_dir / 'eval' / 'evaluation.json'
    evaluation = json.loads(path.read_text())
    evaluation['score_threshold'] = 0.5
    evaluation['int8'].update(outcomes={'right': 26, 'wrong': 2, 'rejected': 14},
                              rejected=14 / 42, accepted_wrong=2 / 42)
    path.write_text(json.dumps(evaluation))
    page = build_report(report_inputs, tmp_path / 'out' / 'index.html').path.read_text(
        encoding='utf-8')
    section = page[page.index('id="evaluation"'):page.index('id="explanations"')]
    assert ('int8 rejected (top score below score_threshold 0.5: unknown, no map point)'
            '</th><td>14 photos, 33.33 %') in section
    assert 'int8 wrong map points (accepted with a wrong label)</th><td>2 photos, 4.76 %' \
        in section


def test_a_map_picture_older_than_its_run_is_drawn_again(tmp_path: Path) -> None:
    """A PNG drawn at lunch beside a map saved at night: the table counts every detection,
    so the picture is drawn from the file (the old PNG showed fewer) and the page says so."""
    import os

    from plant_disease_ros.core.map_file import write_feature_collection

    field = tmp_path / 'maps'
    field.mkdir()
    features = [detection('Tomato___Early_blight', 48.0, False),
                detection('Tomato___healthy', 48.00003, True)]
    write_feature_collection(field / 'day.geojson', features)
    write_png(field / 'day.png')
    os.utime(field / 'day.png', (1_700_000_000,) * 2)
    os.utime(field / 'day.geojson', (1_700_000_600,) * 2)

    stale = map_section(field, tmp_path / 'late')
    assert 'day.png is older than day.geojson: the map below is drawn from the file' in stale
    assert 'day_map.png' in stale and '>day.png<' not in stale
    os.utime(field / 'day.png', (1_700_001_200,) * 2)  # drawn after the last save
    fresh = map_section(field, tmp_path / 'fresh')
    assert 'is older than' not in fresh and 'day_map.png' not in fresh
    assert '>day.png<' in fresh
    # Copied with cp -r: the files of one moment get mtimes in any order, a second apart.
    os.utime(field / 'day.png', (1_700_000_599,) * 2)
    copied = map_section(field, tmp_path / 'copied')
    assert 'is older than' not in copied and '>day.png<' in copied
