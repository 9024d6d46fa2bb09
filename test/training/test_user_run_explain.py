"""``explain --model RUN/model_int8.tflite --labels RUN/labels.txt`` of a user's own run.

The README's command for a run of one's own: Grad-CAM must use the run's float model
(``RUN/model.keras``), not the shipped 22-class one; without it, occlusion only. The run
is a tiny untrained 3-class model, its Keras file and its int8 export side by side, as
``train`` and ``export`` leave them; the photos are the test leaves.
"""

from __future__ import annotations

from collections.abc import Iterator
import json
from pathlib import Path

from conftest import TEST_IMAGES_DIR
import numpy as np
import pytest

from plant_disease_ros.cli.main import main
from plant_disease_ros.training.calibration import ScoreScaling

POTATO = ['Potato___Early_blight', 'Potato___Late_blight', 'Potato___healthy']
PHOTOS = [TEST_IMAGES_DIR / 'leaves' / f'{name}.jpg' for name in POTATO[:2]]
INPUT_SIZE = 64


def calibration_batches(count: int = 8) -> Iterator[list[np.ndarray]]:
    """Yield calibration batches spanning the full 0..255 pixel range."""
    rng = np.random.default_rng(0)
    for index in range(count):
        image = rng.uniform(0, 255, (1, INPUT_SIZE, INPUT_SIZE, 3))
        image[0, 0, 0, :] = 0.0 if index % 2 else 255.0
        yield [image.astype(np.float32)]


def save_run(run: Path, num_classes: int = len(POTATO), export: bool = True,
             scaling: ScoreScaling | None = None) -> Path:
    """Write ``model.keras`` (and its uint8 export ``model_int8.tflite``) and labels.

    With ``scaling`` the run is one calibrated ``adaptive``: its export has the per-frame
    score scale, and its ``train_summary.json`` records it, as a field-fit run's does.
    """
    tf = pytest.importorskip('tensorflow')
    keras = tf.keras
    keras.utils.set_random_seed(1)
    inputs = keras.Input(shape=(INPUT_SIZE, INPUT_SIZE, 3), name='rgb')
    x = keras.layers.Rescaling(1.0 / 127.5, offset=-1.0)(inputs)
    x = keras.layers.Conv2D(8, 3, strides=4, activation='relu', name='features')(x)
    x = keras.layers.GlobalAveragePooling2D()(x)
    model = keras.Model(inputs, keras.layers.Dense(num_classes, activation='softmax',
                                                   name='probs')(x))
    run.mkdir(parents=True, exist_ok=True)
    model.save(run / 'model.keras')
    if scaling is not None:
        from plant_disease_ros.training.calibration import with_score_scaling

        model = with_score_scaling(model, scaling)
        (run / 'train_summary.json').write_text(json.dumps(
            {'calibration_objective': 'adaptive', 'score_scaling': scaling.to_json()}))
    if export:
        converter = tf.lite.TFLiteConverter.from_keras_model(model)
        converter.optimizations = [tf.lite.Optimize.DEFAULT]
        converter.representative_dataset = calibration_batches
        converter.target_spec.supported_ops = [tf.lite.OpsSet.TFLITE_BUILTINS_INT8]
        converter.inference_input_type = tf.uint8
        converter.inference_output_type = tf.uint8
        (run / 'model_int8.tflite').write_bytes(converter.convert())
        (run / 'labels.txt').write_text(''.join(f'{name}\n' for name in POTATO))
    return run


@pytest.fixture(scope='module')
def user_run(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Return runs/mine: an exported 3-class run."""
    return save_run(tmp_path_factory.mktemp('user') / 'runs' / 'mine')


def explain(run: Path, out: Path, *options: str) -> int:
    return main(['explain', *map(str, PHOTOS), '--model', str(run / 'model_int8.tflite'),
                 '--labels', str(run / 'labels.txt'), '--out', str(out), '--grid', '2',
                 '--threads', '1', *options])


def test_grad_cam_uses_the_runs_own_float_model(user_run: Path, tmp_path: Path,
                                               capsys: pytest.CaptureFixture) -> None:
    out = user_run / 'explanations'
    assert explain(user_run, out, '--no-figures') == 0, capsys.readouterr().err
    document = json.loads((out / 'explanations.json').read_text())
    assert document['keras_model'] == str(user_run / 'model.keras')
    assert document['tflite_model'] == str(user_run / 'model_int8.tflite')
    for record in document['images']:
        assert len(record['top3_float']) == 3
        assert {item['label'] for item in record['top3_float']} == set(POTATO)
    # The report of that run shows them: they are of its own model.
    page = user_run / 'report' / 'index.html'
    assert main(['report', '--run', str(user_run), '--out', str(page)]) == 0
    assert '  explanations  ok' in capsys.readouterr().out


def test_without_a_float_model_beside_it_occlusion_only(user_run: Path, tmp_path: Path,
                                                        capsys: pytest.CaptureFixture
                                                        ) -> None:
    exported = tmp_path / 'exported'
    exported.mkdir()
    for name in ('model_int8.tflite', 'labels.txt'):
        (exported / name).write_bytes((user_run / name).read_bytes())
    out = tmp_path / 'explanations'
    assert explain(exported, out, '--no-figures') == 0
    assert f'no float Keras model beside {exported / "model_int8.tflite"}: occlusion only' \
        in capsys.readouterr().err
    document = json.loads((out / 'explanations.json').read_text())
    assert document['keras_model'] is None
    assert all(record['top3_float'] is None for record in document['images'])


def test_a_float_model_of_other_classes_says_what_to_pass(user_run: Path, tmp_path: Path,
                                                          capsys: pytest.CaptureFixture
                                                          ) -> None:
    other = save_run(tmp_path / 'other', num_classes=5, export=False)
    code = explain(user_run, tmp_path / 'explanations', '--keras', str(other / 'model.keras'))
    assert code == 2
    error = capsys.readouterr().err.strip().splitlines()[-1]
    assert f'has 5 outputs but {user_run / "labels.txt"} has 3 labels' in error
    assert '--keras RUN/model.keras' in error and '--no-gradcam' in error


def test_a_batch_of_only_unreadable_photos_is_skipped(user_run: Path, tmp_path: Path,
                                                      capsys: pytest.CaptureFixture) -> None:
    # Photos go 16 at a time: the 17th, alone in its batch, cannot be decoded.
    photos = tmp_path / 'photos'
    photos.mkdir()
    leaves = sorted((TEST_IMAGES_DIR / 'leaves').glob('*.jpg'))[:16]
    for leaf in leaves:
        (photos / leaf.name).write_bytes(leaf.read_bytes())
    (photos / 'zz_broken.jpg').write_bytes(b'not a jpeg')
    out = tmp_path / 'explanations'
    code = main(['explain', str(photos), '--model', str(user_run / 'model_int8.tflite'),
                 '--labels', str(user_run / 'labels.txt'), '--out', str(out), '--grid', '2',
                 '--threads', '1', '--no-figures'])
    assert code == 0, capsys.readouterr().err
    assert 'skipped: ' in capsys.readouterr().err
    document = json.loads((out / 'explanations.json').read_text())
    assert len(document['images']) == 16
    assert all(record['top3_float'] for record in document['images'])
    assert [item['image'] for item in document['unreadable']] == [
        str(photos / 'zz_broken.jpg')]
    assert document['summary']['unreadable'] == 1


def test_a_second_run_does_not_explain_the_first_runs_figures(user_run: Path,
                                                              tmp_path: Path) -> None:
    photos = tmp_path / 'photos'
    photos.mkdir()
    for photo in PHOTOS:
        (photos / photo.name).write_bytes(photo.read_bytes())
    out = photos / 'explanations'  # inside the folder explained
    for again in ([], ['--overwrite']):
        assert main(['explain', str(photos), '--model', str(user_run / 'model_int8.tflite'),
                     '--labels', str(user_run / 'labels.txt'), '--out', str(out),
                     '--grid', '2', '--threads', '1', *again]) == 0
        document = json.loads((out / 'explanations.json').read_text())
        assert sorted(Path(record['image']).name for record in document['images']) == \
            sorted(photo.name for photo in PHOTOS)
    assert len(list(out.glob('*_explain.png'))) == len(PHOTOS)


# Logits of the untrained model are small: a large scale makes the scores far sharper.
SCALING = ScoreScaling(np.array([0.5, -0.5, 0.2]), 2.5)


def scores_by_label(top3: list[dict]) -> dict[str, float]:
    return {item['label']: item['score'] for item in top3}


def test_float_scores_get_the_runs_score_scaling(tmp_path: Path,
                                                 capsys: pytest.CaptureFixture) -> None:
    run = save_run(tmp_path / 'runs' / 'scaled', scaling=SCALING)
    out = tmp_path / 'explanations'
    assert explain(run, out, '--no-figures') == 0, capsys.readouterr().err
    document = json.loads((out / 'explanations.json').read_text())
    assert document['summary']['float_scores'] == (
        'float with the score scaling of the int8 model (from '
        f'{run / "train_summary.json"})')
    for record in document['images']:
        float_scores = scores_by_label(record['top3_float'])
        int8_scores = scores_by_label(record['top3_int8'])
        # The int8 scores are sharper than the float model's own softmax (1/3 each).
        assert max(int8_scores.values()) > 0.5
        for label, score in int8_scores.items():
            assert float_scores[label] == pytest.approx(score, abs=0.05)


def test_float_scores_of_an_unknown_calibration_are_labelled(
        user_run: Path, tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    out = user_run / 'explanations'  # where the module's first test explained too
    assert explain(user_run, out, '--overwrite') == 0
    printed = capsys.readouterr()
    assert f'no training summary beside {user_run / "model.keras"}' in printed.err
    assert 'float scores: float, without score calibration' in printed.out
    document = json.loads((out / 'explanations.json').read_text())
    assert document['summary']['float_scores'] == 'float, without score calibration'
    page = user_run / 'report' / 'index.html'
    assert main(['report', '--run', str(user_run), '--out', str(page), '--overwrite']) == 0
    assert '; float, without score calibration: Potato' in page.read_text(encoding='utf-8')
    # Named, the run's calibration is used; a file without one says the scores compare.
    summary = tmp_path / 'train_summary.json'
    summary.write_text(json.dumps({'score_scaling': None}))
    assert explain(user_run, tmp_path / 'named', '--no-figures', '--calibration',
                   str(summary)) == 0
    document = json.loads((tmp_path / 'named' / 'explanations.json').read_text())
    assert document['summary']['float_scores'] == (
        f'float; the int8 model adds no score scaling ({summary})')
    assert explain(user_run, tmp_path / 'none', '--no-gradcam', '--calibration',
                   str(summary)) == 2
    assert '--calibration applies to the float scores of Grad-CAM' in capsys.readouterr().err
    summary.write_text(json.dumps({'score_scaling': {'weights': [1.0], 'bias': 0.0}}))
    assert explain(user_run, tmp_path / 'wrong', '--calibration', str(summary)) == 2
    assert 'the score scaling has 1 weights but the model 3 outputs' in capsys.readouterr().err


def test_the_shipped_float_model_takes_its_last_stages_calibration() -> None:
    from plant_disease_ros.training.explain import default_keras_path, float_calibration_beside

    stage = default_keras_path().parent / 'stages' / '6_field_blur.json'
    if not stage.is_file():
        pytest.skip('shipped stage summaries not present')
    calibration = float_calibration_beside(default_keras_path())
    assert calibration is not None and calibration.source == stage
    recorded = json.loads(stage.read_text())['score_scaling']
    assert calibration.scaling is not None and calibration.scaling.bias == recorded['bias']


def test_patch_help_and_an_even_patch(user_run: Path, tmp_path: Path,
                                      capsys: pytest.CaptureFixture) -> None:
    import argparse

    from plant_disease_ros.cli.explain import add_arguments

    parser = argparse.ArgumentParser()
    add_arguments(parser)
    help_text = ' '.join(parser.format_help().split())
    assert 'retried with a 3-cell, then a 5-cell patch' in help_text
    assert explain(user_run, tmp_path / 'even', '--patch', '2') == 2
    assert capsys.readouterr().err.strip().endswith(
        '--patch must be an odd number of cells (1, 3, 5, ...) to be centred on its cell, '
        'got 2')
    assert not (tmp_path / 'even').exists()


def test_an_earlier_explanation_or_report_is_replaced_only_with_overwrite(
        user_run: Path, tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    """Explanations of one model are never rewritten next to another's figures, nor a
    report silently replaced: both are refused unless --overwrite, which replaces them."""
    out = tmp_path / 'explanations'
    assert explain(user_run, out) == 0
    # The earlier run's summary lists one more figure (a photo it explained, not now).
    summary = json.loads((out / 'explanations.json').read_text())
    summary['images'].append({**summary['images'][0], 'figure': 'gone_explain.png'})
    (out / 'explanations.json').write_text(json.dumps(summary))
    first = (out / 'explanations.json').read_text()
    (out / 'gone_explain.png').write_bytes(b'a figure of an earlier run')
    (out / 'notes.txt').write_text('mine\n')
    (out / 'holiday_explain.png').write_bytes(b'a user file, named like a figure')
    assert explain(user_run, out, '--no-figures') == 2
    error = capsys.readouterr().err.strip().splitlines()[-1]
    assert f'--out {out} holds earlier explanations' in error and '--overwrite' in error
    assert (out / 'explanations.json').read_text() == first
    assert explain(user_run, out, '--overwrite') == 0
    assert not (out / 'gone_explain.png').exists()  # of the earlier run
    assert len(list(out.glob('*_explain.png'))) == len(PHOTOS) + 1
    assert (out / 'notes.txt').read_text() == 'mine\n'  # not the command's
    # Only what the earlier summary lists goes: a file of the user's stays, whatever its name.
    assert (out / 'holiday_explain.png').read_bytes() == b'a user file, named like a figure'
    page = tmp_path / 'report' / 'index.html'
    command = ['report', '--run', str(user_run), '--explanations', str(out), '--out', str(page)]
    assert main(command) == 0
    before = page.read_bytes()
    capsys.readouterr()
    assert main(command) == 2
    error = capsys.readouterr().err
    assert f'--out {page}: {page} and {page.parent / "index_files"} already exist' in error
    assert page.read_bytes() == before
    assert main([*command, '--overwrite']) == 0
