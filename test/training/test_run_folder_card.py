"""A lab run's model card: links that resolve, the shipped model's data, one model only.

No TensorFlow: the run folder and its evaluation are small made-up files; its export is a
copy of the shipped int8 model (the card reads its input and output types from it).
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path
import re
import shutil

from conftest import MODELS_DIR
import pytest

from plant_disease_ros.training.model_card import (
    check_card_inputs,
    starts_from_shipped,
    write_model_card,
)

CLASSES = ['Apple___healthy', 'Apple___scab', 'Pear___healthy']
PNG = b'\x89PNG\r\n\x1a\n' + b'0' * 64
LATENCY = [{'threads': 1, 'p50_ms': 1.0, 'p95_ms': 2.0}]


def summary_of(init: str, **values) -> dict:
    """Return a lab run's train_summary.json (as train writes it) starting from ``init``."""
    options = {'input_size': 96, 'epochs': 5, 'batch_size': 32, 'learning_rate': 1e-3,
               'patience': 5, 'seed': 42, 'split_seed': 42, 'label_smoothing': 0.05,
               'augment_strength': 1.0, 'init': init, 'init_weights': None,
               'head_epochs': 0 if init == 'scratch' else 2, 'unfreeze': None, **values}
    stages = [{'stage': 'train', 'epochs_planned': 5, 'epochs_run': 5}]
    return {'options': options, 'plan': {'transfer': init != 'scratch', 'head_epochs': 0,
                                         'epochs': 5},
            'model': {'architecture': 'resnet_lite', 'width': 0.75, 'input_size': 96},
            'init': 'warm start' if values.get('init_weights') else init, 'stages': stages,
            'epochs_run': 5, 'best_val_accuracy': 0.9, 'train_seconds': 120.0,
            'seconds_per_epoch': 20.0, 'parameters': 123456, 'tensorflow': '2.x',
            'classes': CLASSES}


def make_run(run: Path, summary: dict) -> Path:
    """Write a run folder as train, export and evaluate leave it; return its eval folder."""
    run.mkdir(parents=True)
    (run / 'model.keras').write_bytes(b'keras model of ' + run.name.encode())
    summary = {**summary,
               'model_sha256': hashlib.sha256((run / 'model.keras').read_bytes()).hexdigest()}
    (run / 'train_summary.json').write_text(json.dumps(summary))
    (run / 'training_curves.png').write_bytes(PNG)
    splits = {name: [[f'{label}/{name}{i}.jpg', number] for number, label in enumerate(CLASSES)
                     for i in range(2)] for name in ('train', 'val', 'test')}
    (run / 'split.json').write_text(json.dumps({
        'version': 1, 'root': '/photos/orchard', 'seed': 42,
        'fractions': {'val': 0.2, 'test': 0.2}, 'classes': CLASSES, 'splits': splits}))
    shipped = MODELS_DIR / 'plant_disease_int8.tflite'
    if not shipped.is_file():
        pytest.skip('shipped model not present')
    shutil.copyfile(shipped, run / 'model_int8.tflite')
    evaluation = run / 'eval'
    evaluation.mkdir()
    rows = [{'class': name, 'precision': 1.0, 'recall': 1.0, 'f1': 1.0, 'support': 2}
            for name in CLASSES]
    (evaluation / 'evaluation.json').write_text(json.dumps({
        'model': str(run / 'model_int8.tflite'),
        'model_bytes': (run / 'model_int8.tflite').stat().st_size,
        'int8': {'top1': 1.0, 'top3': 1.0, 'macro_f1': 1.0}, 'photos': 6,
        'most_confused': [], 'per_class': rows, 'machine': 'a CPU', 'backend': 'litert',
        'split': 'test'}))
    (evaluation / 'confusion_matrix.png').write_bytes(PNG)
    return evaluation


def images_of(card: Path) -> dict[str, str]:
    """Return ``{alt text: link}`` of the card's images."""
    return dict(re.findall(r'!\[([^\]]*)\]\(([^)]+)\)', card.read_text()))


@pytest.mark.parametrize('where', ['run', 'elsewhere'])
def test_the_card_links_the_evaluation_confusion_matrix_where_it_is(
        tmp_path: Path, where: str) -> None:
    run = tmp_path / 'runs' / 'mine'
    evaluation = make_run(run, summary_of('scratch'))
    card = run / 'MODEL_CARD.md' if where == 'run' else tmp_path / 'cards' / 'CARD.md'
    write_model_card(run, evaluation, card, run / 'model_int8.tflite', LATENCY)
    images = images_of(card)
    assert set(images) == {'confusion matrix', 'training curves'}
    for link in images.values():
        assert (card.parent / link).is_file(), link  # what a Markdown viewer opens
    assert (card.parent / images['confusion matrix']).resolve() == \
        (evaluation / 'confusion_matrix.png').resolve()
    if where == 'run':
        assert images == {'confusion matrix': 'eval/confusion_matrix.png',
                          'training curves': 'training_curves.png'}


def test_a_run_from_the_shipped_model_carries_its_data_sources_and_licences(
        tmp_path: Path) -> None:
    shipped_run = tmp_path / 'shipped_run'
    make_run(shipped_run, summary_of('shipped'))
    card = shipped_run / 'MODEL_CARD.md'
    write_model_card(shipped_run, shipped_run / 'eval', card,
                     shipped_run / 'model_int8.tflite', LATENCY)
    attribution = card.read_text().split('## Data attribution and licences')[1]
    assert "their sources and licences are their owner's to state here" in attribution
    assert "start from the shipped model's" in attribution
    # The shipped card's sources: lab photos, field photos and non-leaf scenes.
    shipped_card = (Path(__file__).resolve().parents[2] / 'models' / 'MODEL_CARD.md')
    for source in ('PlantVillage', 'CC BY-SA 3.0', 'PlantDoc', 'Plant Pathology 2021',
                   'CC BY-NC 4.0', 'GPL-3.0', 'Pebble-Dataset'):
        assert source in attribution, source
        assert source in shipped_card.read_text(), source

    # A warm start from that run descends from the shipped model too; scratch does not.
    warm = summary_of('shipped', init_weights=str(shipped_run / 'model.keras'))
    assert starts_from_shipped(warm)
    scratch_run = tmp_path / 'scratch_run'
    make_run(scratch_run, summary_of('scratch'))
    write_model_card(scratch_run, scratch_run / 'eval', scratch_run / 'MODEL_CARD.md',
                     scratch_run / 'model_int8.tflite', LATENCY)
    assert 'PlantDoc' not in (scratch_run / 'MODEL_CARD.md').read_text()
    assert not starts_from_shipped(summary_of(str(scratch_run / 'model.keras')))
    assert starts_from_shipped(summary_of(str(shipped_run)))


def test_a_model_keras_replaced_after_the_summary_is_refused(tmp_path: Path) -> None:
    run = tmp_path / 'run'
    evaluation = make_run(run, summary_of('scratch'))
    check_card_inputs(run, evaluation, run / 'model_int8.tflite')
    (run / 'model.keras').write_bytes(b'another model')
    with pytest.raises(ValueError, match='model.keras is not the model .* describes'):
        write_model_card(run, evaluation, run / 'MODEL_CARD.md', run / 'model_int8.tflite',
                         LATENCY)
    assert not (run / 'MODEL_CARD.md').exists()


def test_an_export_or_evaluation_of_the_replaced_run_is_refused(tmp_path: Path) -> None:
    """train --overwrite records what was in the folder: it describes the earlier model."""
    run = tmp_path / 'run'
    evaluation = make_run(run, summary_of('scratch'))
    summary = json.loads((run / 'train_summary.json').read_text())
    stale = {'model_int8.tflite': hashlib.sha256((run / 'model_int8.tflite').read_bytes())
             .hexdigest(),
             'eval/evaluation.json': hashlib.sha256((evaluation / 'evaluation.json')
                                                    .read_bytes()).hexdigest()}
    (run / 'train_summary.json').write_text(json.dumps({**summary, 'replaced_outputs': stale}))
    with pytest.raises(ValueError, match='--model .* describes an earlier model; run '
                                         'plant-disease export'):
        check_card_inputs(run, evaluation, run / 'model_int8.tflite')
    (run / 'model_int8.tflite').write_bytes(b'1' * 2048)  # exported again
    with pytest.raises(ValueError, match='--evaluation .* describes an earlier model'):
        check_card_inputs(run, evaluation, run / 'model_int8.tflite')


def test_an_evaluation_of_another_tflite_is_refused(tmp_path: Path) -> None:
    run = tmp_path / 'run'
    evaluation = make_run(run, summary_of('scratch'))
    (run / 'model_int8.tflite').write_bytes(b'0' * 3000)  # photo evaluation: size recorded
    with pytest.raises(ValueError, match='is of another model'):
        check_card_inputs(run, evaluation, run / 'model_int8.tflite')
    report = json.loads((evaluation / 'evaluation.json').read_text())
    report['model_sha256'] = hashlib.sha256(b'0' * 3000).hexdigest()  # field: hash recorded
    (evaluation / 'evaluation.json').write_text(json.dumps(report))
    check_card_inputs(run, evaluation, run / 'model_int8.tflite')
    (run / 'model_int8.tflite').write_bytes(b'1' * 3000)
    with pytest.raises(ValueError, match='is of another model'):
        check_card_inputs(run, evaluation, run / 'model_int8.tflite')


def test_model_card_cli_refuses_before_timing(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                              capsys: pytest.CaptureFixture[str]) -> None:
    from plant_disease_ros.cli import model_card as card_cli
    from plant_disease_ros.cli.main import main

    run = tmp_path / 'run'
    evaluation = make_run(run, summary_of('scratch'))
    (run / 'labels.txt').write_text('\n'.join(CLASSES) + '\n')
    (run / 'model.keras').write_bytes(b'retrained')
    monkeypatch.setattr(card_cli, 'benchmark_invoke',
                        lambda *args: pytest.fail('timed a model it then refused'))
    assert main(['model-card', '--run', str(run), '--evaluation', str(evaluation)]) == 2
    error = capsys.readouterr().err
    assert error.count('\n') == 1 and 'model.keras is not the model' in error
    assert not (run / 'MODEL_CARD.md').exists()


def test_the_card_reads_the_input_and_output_types_from_the_model(tmp_path: Path) -> None:
    """An ``export --input-type int8`` model takes pixels minus 128, not raw uint8 pixels."""
    pytest.importorskip('tensorflow')
    from helpers.tiny_model import build_tiny_model

    run = tmp_path / 'run'
    evaluation = make_run(run, summary_of('scratch'))
    card = run / 'MODEL_CARD.md'
    write_model_card(run, evaluation, card, run / 'model_int8.tflite', LATENCY)
    text = card.read_text()
    assert '- Input: raw RGB pixels (uint8, scale 1, zero point 0) resized' in text
    assert '- Output: 3 class probabilities (uint8), in the order' in text
    build_tiny_model(run / 'model_int8.tflite', num_classes=len(CLASSES), quantize='int8')
    report = json.loads((evaluation / 'evaluation.json').read_text())
    report['model_bytes'] = (run / 'model_int8.tflite').stat().st_size
    (evaluation / 'evaluation.json').write_text(json.dumps(report))
    write_model_card(run, evaluation, card, run / 'model_int8.tflite', LATENCY)
    text = card.read_text()
    assert '- Input: RGB pixels minus 128 (int8, scale 1, zero point -128) resized' in text
    assert '- Output: 3 class probabilities (int8), in the order' in text
    assert 'uint8' not in text


def rewrite_evaluation(evaluation: Path, **values) -> None:
    """Change fields of ``evaluation``'s evaluation.json (as a newer evaluate writes them)."""
    path = evaluation / 'evaluation.json'
    path.write_text(json.dumps({**json.loads(path.read_text()), **values}))


def test_the_card_shows_the_photos_the_nodes_would_publish_as_unknown(tmp_path: Path) -> None:
    """Top-1 100 % on 6 test photos, 1 of them below score_threshold: the card says so."""
    run = tmp_path / 'run'
    evaluation = make_run(run, summary_of('scratch'))
    rewrite_evaluation(evaluation, score_threshold=0.5, int8={
        'top1': 1.0, 'top3': 1.0, 'macro_f1': 1.0,
        'outcomes': {'right': 5, 'wrong': 0, 'rejected': 1},
        'rejected': 1 / 6, 'accepted_wrong': 0.0})
    card = run / 'MODEL_CARD.md'
    write_model_card(run, evaluation, card, run / 'model_int8.tflite', LATENCY)
    text = card.read_text()
    assert '| | top-1 | top-3 | rejected | wrong map points |' in text
    assert '| int8 TFLite | 100.00 % | 100.00 % | 16.67 % | 0.00 % |' in text
    assert "At the nodes' `score_threshold` 0.5: 1 of 6 photos rejected (16.67 %" in text
    assert 'published as `unknown`' in text


def test_an_evaluation_of_all_photos_is_counted_as_evaluated_and_training_photos_named(
        tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    """`evaluate --data FOLDER` of the run's own folder: 15/16/16 photos, most learned."""
    run = tmp_path / 'run'
    evaluation = make_run(run, summary_of('scratch'))
    support = dict(zip(CLASSES, (15, 16, 16), strict=True))
    rows = [{'class': name, 'precision': 1.0, 'recall': 1.0, 'f1': 1.0, 'support': count}
            for name, count in support.items()]
    rewrite_evaluation(evaluation, split='all', photos=47, per_class=rows,
                       root='/photos/orchard')
    split = json.loads((run / 'split.json').read_text())['splits']
    learned = [path for path, _ in split['train'] + split['val']]
    frames = learned + [f'{name}/other{i}.jpg' for name, count in support.items()
                        for i in range(count)][:47 - len(learned)]
    with open(evaluation / 'predictions.csv', 'w', newline='') as handle:
        handle.write('domain,frame\n' + ''.join(f'photos,{frame}\n' for frame in frames))
    card = run / 'MODEL_CARD.md'
    write_model_card(run, evaluation, card, run / 'model_int8.tflite', LATENCY)
    text = card.read_text()
    assert 'fewer than 10' not in text  # 15, 16 and 16 evaluated photos
    assert 'all photos' not in text
    assert 'int8/float top-1 agreement on 47 evaluated photos: not measured' in text
    assert '| class | precision | recall | F1 | evaluated photos |' in text
    warning = ('12 of the 47 evaluated photos (26 %) were used to train this run '
               '(6 training and 6 validation, in its split.json)')
    assert f'> **Warning:** {warning}' in text
    # Another folder (a copy, or the photos moved) that cannot be read: by name alone.
    rewrite_evaluation(evaluation, root='/photos/another_orchard')
    write_model_card(run, evaluation, card, run / 'model_int8.tflite', LATENCY)
    assert (f'> **Warning:** {warning[:-1]}; 12 of them matched by their <class>/<image> '
            'name alone') in card.read_text()


def write_predictions(evaluation: Path, frames: list[str]) -> None:
    """Write the evaluation's predictions.csv of ``frames`` (the columns the card reads)."""
    (evaluation / 'predictions.csv').write_text(
        'domain,frame\n' + ''.join(f'photos,{frame}\n' for frame in frames))


def test_a_copied_photo_folder_is_matched_by_content(tmp_path: Path) -> None:
    """`evaluate --data COPY` of the run's photos: the same bytes are the same photos."""
    run = tmp_path / 'run'
    evaluation = make_run(run, summary_of('scratch'))
    manifest = json.loads((run / 'split.json').read_text())
    photos, copy = tmp_path / 'photos', tmp_path / 'copy'
    manifest['root'] = str(photos)
    (run / 'split.json').write_text(json.dumps(manifest))
    frames = [path for path, _ in manifest['splits']['train']]  # 6 training photos
    for number, frame in enumerate(frames):
        for folder in (photos, copy):
            (folder / frame).parent.mkdir(parents=True, exist_ok=True)
            (folder / frame).write_bytes(f'photo {number}'.encode())
    (copy / frames[0]).write_bytes(b'another photo of the same name')
    rewrite_evaluation(evaluation, split='all', photos=6, root=str(copy))
    write_predictions(evaluation, frames)
    card = run / 'MODEL_CARD.md'
    write_model_card(run, evaluation, card, run / 'model_int8.tflite', LATENCY)
    assert ('> **Warning:** 5 of the 6 evaluated photos (83 %) were used to train this run '
            '(5 training, in its split.json):') in card.read_text()


def test_an_evaluation_of_another_runs_split_is_matched_photo_by_photo(
        tmp_path: Path) -> None:
    """run2's model on run1's test split: photos run2 trained on are not held out."""
    run = tmp_path / 'run2'
    evaluation = make_run(run, summary_of('scratch'))
    own = hashlib.sha256((run / 'split.json').read_bytes()).hexdigest()
    splits = json.loads((run / 'split.json').read_text())['splits']
    # run1's test photos: 3 of run2's training photos, 1 of its validation, 2 of its test.
    frames = ([path for path, _ in splits['train'][:3]] + [splits['val'][0][0]]
              + [path for path, _ in splits['test'][:2]])
    other = str(tmp_path / 'run1' / 'split.json')
    rewrite_evaluation(evaluation, split='test', photos=6, root='/photos/orchard',
                       split_manifest={'path': other, 'sha256': 'f' * 64})
    write_predictions(evaluation, frames)
    card = run / 'MODEL_CARD.md'
    write_model_card(run, evaluation, card, run / 'model_int8.tflite', LATENCY)
    text = card.read_text()
    assert 'held-out' not in text
    assert f"## Figures on the test split of `{other}` (not this run's split)" in text
    assert ('> **Warning:** 4 of the 6 evaluated photos (67 %) were used to train this run '
            '(3 training and 1 validation, in its split.json)') in text
    # The same photos as the test split of the run's own split.json: held out, no warning.
    rewrite_evaluation(evaluation, split_manifest={'path': str(run / 'split.json'),
                                                   'sha256': own})
    write_model_card(run, evaluation, card, run / 'model_int8.tflite', LATENCY)
    text = card.read_text()
    assert '## Test figures (held-out test split)' in text and 'Warning' not in text


def test_a_split_json_that_is_not_the_runs_is_refused(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
        capsys: pytest.CaptureFixture[str]) -> None:
    """An --overwrite run cut short wrote a new split.json beside the earlier model."""
    from plant_disease_ros.cli import model_card as card_cli
    from plant_disease_ros.cli.main import main

    run = tmp_path / 'run'
    evaluation = make_run(run, summary_of('scratch'))
    (run / 'labels.txt').write_text('\n'.join(CLASSES) + '\n')
    check_card_inputs(run, evaluation, run / 'model_int8.tflite')  # no hash: as before
    summary = json.loads((run / 'train_summary.json').read_text())
    summary['split_sha256'] = hashlib.sha256((run / 'split.json').read_bytes()).hexdigest()
    (run / 'train_summary.json').write_text(json.dumps(summary))
    check_card_inputs(run, evaluation, run / 'model_int8.tflite')
    manifest = json.loads((run / 'split.json').read_text())
    manifest['seed'] = 7  # the new run's split
    (run / 'split.json').write_text(json.dumps(manifest))
    monkeypatch.setattr(card_cli, 'benchmark_invoke',
                        lambda *args: pytest.fail('timed a model it then refused'))
    assert main(['model-card', '--run', str(run), '--evaluation', str(evaluation)]) == 2
    error = capsys.readouterr().err
    assert error.count('\n') == 1
    assert f'{run / "split.json"} is not the split {run / "train_summary.json"} was ' \
        'trained with' in error
    assert not (run / 'MODEL_CARD.md').exists()


def test_float_figures_of_another_keras_model_are_refused(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
        capsys: pytest.CaptureFixture[str]) -> None:
    """evaluate --keras w2/model.keras on r1's export: the card's float row is not r1's."""
    from plant_disease_ros.cli import model_card as card_cli
    from plant_disease_ros.cli.main import main

    run = tmp_path / 'r1'
    evaluation = make_run(run, summary_of('scratch'))
    (run / 'labels.txt').write_text('\n'.join(CLASSES) + '\n')
    other = tmp_path / 'w2' / 'model.keras'
    other.parent.mkdir()
    other.write_bytes(b'keras model of w2')
    report = json.loads((evaluation / 'evaluation.json').read_text())
    report['float'] = {'top1': 0.5, 'top3': 1.0}
    report['int8_float_agreement'] = 0.5

    def record(path: Path) -> dict:
        return {'path': str(path.resolve()),
                'sha256': hashlib.sha256(path.read_bytes()).hexdigest()}

    (evaluation / 'evaluation.json').write_text(json.dumps(
        {**report, 'keras_model': record(run / 'model.keras')}))
    check_card_inputs(run, evaluation, run / 'model_int8.tflite')  # the run's own
    (evaluation / 'evaluation.json').write_text(json.dumps(
        {**report, 'keras_model': record(other)}))
    monkeypatch.setattr(card_cli, 'benchmark_invoke',
                        lambda *args: pytest.fail('timed a model it then refused'))
    assert main(['model-card', '--run', str(run), '--evaluation', str(evaluation)]) == 2
    error = capsys.readouterr().err
    assert error.count('\n') == 1
    assert f'--evaluation {evaluation} scored the float model {other.resolve()} (--keras), ' \
        f"not {run / 'model.keras'}: its float figures are not this run's; evaluate again " \
        f"with --keras {run / 'model.keras'}, or without --keras" in error
    assert not (run / 'MODEL_CARD.md').exists()
    # A field evaluation's --keras is the float twin export --float-out wrote (another
    # sha256): the field card names it, nothing is refused.
    from plant_disease_ros.training.model_card import check_float_model

    check_float_model(run, evaluation, {'keras_model': record(other), 'domains': {}})


def test_a_run_folder_copied_without_model_keras_is_told_by_the_summary(
        tmp_path: Path) -> None:
    """RUN/model.keras missing: the evaluation's --keras sha256 against the summary's."""
    from plant_disease_ros.training.model_card import check_float_model

    run, evaluation = tmp_path / 'run', tmp_path / 'run' / 'eval'
    evaluation.mkdir(parents=True)
    elsewhere = tmp_path / 'kept' / 'model.keras'
    elsewhere.parent.mkdir()
    elsewhere.write_bytes(b'the run model, kept elsewhere')
    digest = hashlib.sha256(elsewhere.read_bytes()).hexdigest()
    (run / 'train_summary.json').write_text(json.dumps({'model_sha256': digest}))
    check_float_model(run, evaluation, {'keras_model': {'path': str(elsewhere),
                                                        'sha256': digest}})
    with pytest.raises(ValueError) as refused:
        check_float_model(run, evaluation, {'keras_model': {'path': str(elsewhere),
                                                            'sha256': 'f' * 64}})
    assert f"{run / 'model.keras'} is missing" in str(refused.value)
    assert '--keras ' + str(run / 'model.keras') not in str(refused.value)
