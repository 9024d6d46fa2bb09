"""The report shows an embedding only beside the model it is of, and only its own t-SNE.

``embed`` records the Keras model (path and sha256) in ``overlap.json`` and removes a
``tsne.png`` of an earlier embedding it does not replace (``--no-tsne``); the report
refuses an embedding of another model (the shipped one, ``embed`` without ``--keras``,
beside a run's), one that does not say its model, and a t-SNE the embedding did not make.
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import numpy as np
import pytest

from plant_disease_ros.training.embed import embed_features
from training.test_report_retrained import retrained_run  # noqa: F401 - a fixture
from training.test_user_run_report import POTATO, report, section, write_png


def features_of(classes: int = 3, per_class: int = 6) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(0)
    labels = np.repeat(np.arange(classes), per_class)
    return rng.normal(0.0, 1.0, (len(labels), 16)) + labels[:, None], labels


def test_embed_records_its_model_and_drops_an_earlier_tsne(tmp_path: Path) -> None:
    keras = tmp_path / 'model.keras'
    keras.write_bytes(b'a keras model')
    out = tmp_path / 'embedding'
    features, labels = features_of()
    embed_features(features, labels, POTATO, out_dir=out, k=3, perplexity=3,
                   keras_path=keras)
    document = json.loads((out / 'overlap.json').read_text())
    assert document['keras_model'] == str(keras)
    assert document['keras_model_sha256'] == hashlib.sha256(b'a keras model').hexdigest()
    assert (out / 'tsne.png').is_file() and document['tsne']
    # Again, PCA only, into the same folder: the earlier t-SNE is not left beside it.
    embed_features(features[:12], labels[:12], POTATO, out_dir=out, k=3, with_tsne=False,
                   keras_path=keras)
    assert not (out / 'tsne.png').exists()
    assert json.loads((out / 'overlap.json').read_text())['tsne'] is None


def write_embedding(folder: Path, keras: Path | None, tsne: bool = False) -> Path:
    """Write an embedding folder of the Potato photos made with ``keras`` (None: unrecorded)."""
    write_png(folder / 'pca.png', (200, 10, 10))
    write_png(folder / 'tsne.png', (10, 10, 200))  # an earlier embedding's, unless ``tsne``
    document = {'photos': 9, 'classes': POTATO, 'k': 3, 'distance': 'cosine', 'pairs': [],
                'tsne': 'numpy (exact)' if tsne else None}
    if keras is not None:
        document.update(keras_model=str(keras),
                        keras_model_sha256=hashlib.sha256(keras.read_bytes()).hexdigest())
    (folder / 'overlap.json').write_text(json.dumps(document))
    return folder


@pytest.fixture
def exported_run(retrained_run: Path) -> Path:  # noqa: F811 - the fixture above
    """Return a run exported from its current model.keras."""
    (retrained_run / 'model_int8.tflite').write_bytes(b'TFL3' + bytes(2000))
    return retrained_run


def test_an_embedding_of_another_model_is_not_shown(exported_run: Path, tmp_path: Path,
                                                    capsys: pytest.CaptureFixture) -> None:
    shipped = tmp_path / 'plant_disease_float.keras'
    shipped.write_bytes(b'the shipped float model')
    write_embedding(exported_run / 'embedding', shipped)
    states, page = report(exported_run, capsys)
    assert states['embedding'].startswith(f'skipped {exported_run / "embedding"}: ')
    assert f'it embeds {shipped}' in states['embedding']
    embedding = section(page, 'embedding')
    assert 'is not shown' in embedding and 'pca.png' not in embedding
    assert f'--keras {exported_run / "model.keras"}' in embedding


def test_an_embedding_that_does_not_say_its_model_is_not_shown(
        exported_run: Path, capsys: pytest.CaptureFixture) -> None:
    write_embedding(exported_run / 'embedding', None)
    states, page = report(exported_run, capsys)
    assert 'its model is unknown' in states['embedding']
    assert 'pca.png' not in section(page, 'embedding')


def test_the_runs_embedding_shows_only_the_tsne_it_made(
        exported_run: Path, capsys: pytest.CaptureFixture) -> None:
    write_embedding(exported_run / 'embedding', exported_run / 'model.keras')
    states, page = report(exported_run, capsys)
    assert states['embedding'] == 'ok'
    embedding = section(page, 'embedding')
    assert 'pca.png' in embedding and 'tsne.png' not in embedding
    write_embedding(exported_run / 'embedding', exported_run / 'model.keras', tsne=True)
    _, page = report(exported_run, capsys)
    assert 'tsne.png' in section(page, 'embedding')
    # A model.keras trained again since: its embedding is of the earlier model.
    (exported_run / 'model.keras').write_bytes(b'trained once more')
    states, _ = report(exported_run, capsys)
    assert states['embedding'].startswith('skipped')
