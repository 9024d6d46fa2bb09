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


def save_run(run: Path, num_classes: int = len(POTATO), export: bool = True) -> Path:
    """Write ``model.keras`` (and its uint8 export ``model_int8.tflite``) and labels."""
    tf = pytest.importorskip('tensorflow')
    keras = tf.keras
    keras.utils.set_random_seed(1)
    inputs = keras.Input(shape=(INPUT_SIZE, INPUT_SIZE, 3), name='rgb')
    x = keras.layers.Rescaling(1.0 / 127.5, offset=-1.0)(inputs)
    x = keras.layers.Conv2D(8, 3, strides=4, activation='relu', name='features')(x)
    x = keras.layers.GlobalAveragePooling2D()(x)
    model = keras.Model(inputs, keras.layers.Dense(num_classes, activation='softmax')(x))
    run.mkdir(parents=True, exist_ok=True)
    model.save(run / 'model.keras')
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
