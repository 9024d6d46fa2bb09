"""``report --run RUN`` of a user's own run shows that run's analyses, never the shipped ones.

A user who followed the README has the shipped model's explanations and embedding in
``outputs/`` (the commands' default folders) and a run of their own (a 3-class Potato
model): its report must take ``RUN/explanations`` and ``RUN/embedding``, leave a section
out with a note when the run has none, and refuse explanations of another model.
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

from conftest import MODELS_DIR
import cv2
import numpy as np
import pytest

from plant_disease_ros.cli.main import main

SHIPPED_MODEL = MODELS_DIR / 'plant_disease_int8.tflite'
SHIPPED_FLOAT = MODELS_DIR / 'plant_disease_float.keras'
POTATO = ['Potato___Early_blight', 'Potato___Late_blight', 'Potato___healthy']


def write_png(path: Path, colour: tuple[int, int, int]) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    cv2.imwrite(str(path), np.full((24, 32, 3), colour, dtype=np.uint8))
    return path


def write_explanations(folder: Path, model: Path, figure: str, label: str) -> Path:
    """Write an ``explain`` output folder of ``model`` with one photo's figure."""
    write_png(folder / figure, (10, 200, 10))
    (folder / 'explanations.json').write_text(json.dumps({
        'tflite_model': str(model),
        'tflite_model_sha256': hashlib.sha256(model.read_bytes()).hexdigest(),
        'grid': 8, 'fill': 'mean',
        'summary': {'images': 1, 'occlusion_peak_on_leaf_fraction': 1.0},
        'images': [{'image': f'photos/{figure}.jpg', 'figure': figure,
                    'top3_int8': [{'label': label, 'score': 0.9, 'index': 0}]}]}))
    return folder


def write_embedding(folder: Path, classes: list[str], keras: Path | None) -> Path:
    """Write an ``embed`` output folder of photos of ``classes``, of the model ``keras``."""
    write_png(folder / 'pca.png', (200, 10, 10))
    (folder / 'overlap.json').write_text(json.dumps({
        'photos': 9, 'classes': classes, 'k': 3, 'distance': 'cosine', 'pairs': [],
        'tsne': None, 'keras_model': keras and str(keras),
        'keras_model_sha256': keras and hashlib.sha256(keras.read_bytes()).hexdigest()}))
    return folder


@pytest.fixture
def user_run(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """Return runs/mine, an exported 3-class run, beside the shipped model's outputs/."""
    if not SHIPPED_MODEL.is_file():
        pytest.skip('shipped model not present')
    monkeypatch.chdir(tmp_path)
    run = tmp_path / 'runs' / 'mine'
    run.mkdir(parents=True)
    (run / 'model_int8.tflite').write_bytes(b'TFL3' + bytes(3000))
    (run / 'model.keras').write_bytes(b'the run keras model')
    (run / 'labels.txt').write_text(''.join(f'{name}\n' for name in POTATO))
    (run / 'MODEL_CARD.md').write_text('# Model card: model_int8.tflite\n\nPotato.\n')
    shipped_labels = (MODELS_DIR / 'labels.txt').read_text().split()
    write_explanations(tmp_path / 'outputs' / 'explanations', SHIPPED_MODEL,
                       'shipped_explain.png', shipped_labels[0])
    write_embedding(tmp_path / 'outputs' / 'embedding', shipped_labels, SHIPPED_FLOAT)
    return run


def report(run: Path, capsys: pytest.CaptureFixture, *options: str) -> tuple[dict, str]:
    """Run ``report --run RUN --out RUN/report/index.html``; return (states, page).

    ``--overwrite``: a test may report the same run again.
    """
    out = run / 'report' / 'index.html'
    assert main(['report', '--run', str(run), '--out', str(out), '--overwrite',
                 *options]) == 0
    printed = capsys.readouterr().out
    states = dict(line.strip().split(maxsplit=1) for line in printed.splitlines()
                  if line.startswith('  '))
    return states, out.read_text(encoding='utf-8')


def section(page: str, key: str) -> str:
    start = page.index(f'<section id="{key}"')
    return page[start:page.index('</section>', start)]


def test_a_run_without_analyses_leaves_them_out(user_run: Path,
                                                capsys: pytest.CaptureFixture) -> None:
    states, page = report(user_run, capsys)
    assert states['explanations'] == f'left out: no {user_run / "explanations"}'
    assert states['embedding'] == f'left out: no {user_run / "embedding"}'
    explanations = section(page, 'explanations')
    assert 'shipped_explain.png' not in page and 'plant_disease_int8.tflite' not in page
    assert f'--out {user_run / "explanations"}' in explanations
    assert 'pca.png' not in page
    assert not (user_run / 'report' / 'index_files' / 'explanations.json').exists()


def test_the_runs_own_analyses_are_shown(user_run: Path,
                                         capsys: pytest.CaptureFixture) -> None:
    write_explanations(user_run / 'explanations', user_run / 'model_int8.tflite',
                       'potato_explain.png', POTATO[1])
    write_embedding(user_run / 'embedding', POTATO, user_run / 'model.keras')
    states, page = report(user_run, capsys)
    assert states['explanations'] == 'ok' and states['embedding'] == 'ok'
    assert 'potato_explain.png' in section(page, 'explanations')
    assert 'shipped_explain.png' not in page
    files = user_run / 'report' / 'index_files'
    shown = json.loads((files / 'explanations.json').read_text())
    assert shown['tflite_model'] == str(user_run / 'model_int8.tflite')
    assert json.loads((files / 'overlap.json').read_text())['classes'] == POTATO


def test_explanations_of_another_model_are_refused_with_the_reason(
        user_run: Path, tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    shipped = tmp_path / 'outputs'
    states, page = report(user_run, capsys, '--explanations', str(shipped / 'explanations'),
                          '--embed', str(shipped / 'embedding'))
    assert states['explanations'].startswith(f'skipped {shipped / "explanations"}: ')
    assert f"not the report's model {user_run / 'model_int8.tflite'}" \
        in states['explanations']
    assert states['embedding'].startswith(f'skipped {shipped / "embedding"}: ')
    assert 'shipped_explain.png' not in page and 'pca.png' not in page
    assert 'are not shown' in section(page, 'explanations')
    # Explanations that do not say which model they are of are not trusted either.
    document = json.loads((shipped / 'explanations' / 'explanations.json').read_text())
    del document['tflite_model'], document['tflite_model_sha256']
    (user_run / 'explanations').mkdir()
    (user_run / 'explanations' / 'explanations.json').write_text(json.dumps(document))
    states, _ = report(user_run, capsys)
    assert states['explanations'].endswith('they do not say which model they explain')


def test_the_shipped_models_report_still_takes_outputs(user_run: Path, tmp_path: Path,
                                                       capsys: pytest.CaptureFixture) -> None:
    """Without a run export the report is of the shipped model: outputs/ is its own."""
    out = tmp_path / 'shipped_report' / 'index.html'
    assert main(['report', '--run', str(tmp_path / 'runs' / 'none'), '--models',
                 str(MODELS_DIR), '--out', str(out)]) == 0
    printed = capsys.readouterr().out
    assert '  explanations  ok' in printed and '  embedding     ok' in printed
    assert 'shipped_explain.png' in out.read_text(encoding='utf-8')


def write_evaluation(folder: Path, model: Path, top1: float) -> Path:
    """Write an ``evaluate`` output folder of ``model`` (its sha256 recorded, as evaluate does)."""
    write_png(folder / 'confusion_matrix.png', (30, 30, 200))
    (folder / 'evaluation.json').write_text(json.dumps({
        'model': str(model), 'model_bytes': model.stat().st_size,
        'model_sha256': hashlib.sha256(model.read_bytes()).hexdigest(),
        'photos': 12, 'split': 'test', 'int8': {'top1': top1, 'top3': 1.0, 'macro_f1': 0.5}}))
    return folder


def test_an_evaluation_of_another_model_is_refused_with_the_reason(
        user_run: Path, tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    shipped_eval = write_evaluation(tmp_path / 'shipped_eval', SHIPPED_MODEL, 0.8765)
    states, page = report(user_run, capsys, '--eval', str(shipped_eval))
    assert states['evaluation'] == (
        f'skipped {shipped_eval / "evaluation.json"}: it evaluates {SHIPPED_MODEL}, '
        f"not the report's model {user_run / 'model_int8.tflite'}")
    evaluation = section(page, 'evaluation')
    assert 'is not shown' in evaluation
    assert '87.65' not in page and 'confusion_matrix.png' not in evaluation
    # The run's own evaluation is shown.
    own = write_evaluation(user_run / 'eval', user_run / 'model_int8.tflite', 0.4321)
    states, page = report(user_run, capsys)
    assert states['evaluation'] == 'ok'
    assert '43.21 %' in section(page, 'evaluation')
    assert own.is_dir()
    # An older evaluation without the digest: told by its model's size.
    document = json.loads((own / 'evaluation.json').read_text())
    del document['model_sha256']
    document['model_bytes'] += 1
    (own / 'evaluation.json').write_text(json.dumps(document))
    states, _ = report(user_run, capsys)
    assert states['evaluation'].startswith(f'skipped {own / "evaluation.json"}: it evaluates')
