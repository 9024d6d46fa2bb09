"""``explain`` with the shipped int8 model alone (``--no-gradcam``): what it says and writes.

No TensorFlow: occlusion only, a 2×2 grid, a few photos. Peak on the leaf is judged only
where the leaf mask separates a leaf (not in a field photo nor a greyscale one), an IoU
only between top regions of about the size asked, figures never overwrite another file,
any file name is drawn as it is, and a phone-sized photo is analysed on a small copy.
"""

from __future__ import annotations

import json
from pathlib import Path

from conftest import MODELS_DIR, TEST_IMAGES_DIR
import cv2
import numpy as np
import pytest

from plant_disease_ros.cli.main import main
from plant_disease_ros.core.occlusion import leaf_mask

MODEL = MODELS_DIR / 'plant_disease_int8.tflite'
LABELS = MODELS_DIR / 'labels.txt'
LEAF = TEST_IMAGES_DIR / 'leaves' / 'Apple___Black_rot.jpg'

pytestmark = pytest.mark.skipif(not MODEL.is_file(), reason=f'no shipped model at {MODEL}')


def read_rgb(path: Path) -> np.ndarray:
    return cv2.cvtColor(cv2.imread(str(path)), cv2.COLOR_BGR2RGB)


def write_rgb(path: Path, rgb: np.ndarray) -> Path:
    assert cv2.imwrite(str(path), cv2.cvtColor(rgb, cv2.COLOR_RGB2BGR))
    return path


def explain(*arguments: str | Path) -> int:
    return main(['explain', '--no-gradcam', '--model', str(MODEL), '--labels', str(LABELS),
                 '--grid', '2', '--threads', '1', *map(str, arguments)])


def records_by_name(out: Path) -> dict[str, dict]:
    document = json.loads((out / 'explanations.json').read_text())
    return {Path(record['image']).name: record for record in document['images']}


def test_peak_on_the_leaf_is_judged_only_where_the_leaf_separates(
        tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    photo = read_rgb(LEAF)
    leaf = leaf_mask(photo)
    # A field photo: leaves and grass to the edges, the mask covers the whole frame.
    grass = np.random.default_rng(0).normal((70, 120, 40), 20, photo.shape)
    field = photo.copy()
    field[~leaf] = np.clip(grass, 0, 255).astype(np.uint8)[~leaf]
    # A greyscale photo: no hue to find the leaf by, the mask is empty.
    grey = np.repeat(cv2.cvtColor(photo, cv2.COLOR_RGB2GRAY)[..., None], 3, axis=2)
    photos = [write_rgb(tmp_path / 'field.png', field), write_rgb(tmp_path / 'grey.png', grey),
              LEAF]
    out = tmp_path / 'out'
    assert explain(*photos, '--out', out, '--no-figures', '--grid', '8') == 0
    printed = capsys.readouterr().out
    records = records_by_name(out)
    assert records['field.png']['leaf_fraction'] > 0.9
    assert records['grey.png']['leaf_fraction'] < 0.02
    for name in ('field.png', 'grey.png'):
        assert records[name]['occlusion_peak_on_leaf'] is None
        assert records[name]['leaf_separable'] is False
    assert records[LEAF.name]['occlusion_peak_on_leaf'] is True
    assert records[LEAF.name]['leaf_separable'] is True
    summary = json.loads((out / 'explanations.json').read_text())['summary']
    assert summary['leaf_not_separable'] == 2
    assert summary['occlusion_peak_on_leaf_fraction'] == 1.0  # of the one lab photo
    assert 'leaf not separable from the background: 2 photos' in printed


def test_a_figure_overwrites_no_file_in_out(tmp_path: Path,
                                            capsys: pytest.CaptureFixture) -> None:
    folder = tmp_path / 'd'
    folder.mkdir()
    (folder / 'leaf.jpg').write_bytes(LEAF.read_bytes())
    # Another photo, named as leaf.jpg's figure would be, explained too.
    other = read_rgb(TEST_IMAGES_DIR / 'leaves' / 'Tomato___healthy.jpg')
    write_rgb(folder / 'leaf_explain.png', other)
    photo_bytes = (folder / 'leaf_explain.png').read_bytes()
    # A file of the user's, named like a figure, not explained and not of an earlier run.
    (folder / 'leaf_explain_explain.png').write_bytes(b'mine')
    assert explain(folder / 'leaf.jpg', folder / 'leaf_explain.png', '--out', folder) == 0
    assert (folder / 'leaf_explain.png').read_bytes() == photo_bytes
    assert (folder / 'leaf_explain_explain.png').read_bytes() == b'mine'
    records = records_by_name(folder)
    figures = {name: record['figure'] for name, record in records.items()}
    assert figures == {'leaf.jpg': 'leaf_2_explain.png',
                       'leaf_explain.png': 'leaf_explain_2_explain.png'}
    assert all(cv2.imread(str(folder / figure)) is not None for figure in figures.values())
    # --overwrite replaces the earlier run's figures in place; the rest stays.
    capsys.readouterr()
    assert explain(folder / 'leaf.jpg', folder / 'leaf_explain.png', '--out', folder,
                   '--overwrite') == 0
    assert {name: record['figure'] for name, record in records_by_name(folder).items()} \
        == figures
    assert (folder / 'leaf_explain.png').read_bytes() == photo_bytes
    assert (folder / 'leaf_explain_explain.png').read_bytes() == b'mine'
    assert sorted(path.name for path in folder.iterdir()) == sorted([
        'explanations.json', 'leaf.jpg', 'leaf_explain.png', 'leaf_explain_explain.png',
        *figures.values()])


def test_a_dollar_pair_in_a_file_name_is_drawn_as_it_is(tmp_path: Path) -> None:
    photos = tmp_path / 'photos'
    photos.mkdir()
    (photos / 'leaf $x^$.jpg').write_bytes(LEAF.read_bytes())
    out = tmp_path / 'out'
    assert explain(photos, '--out', out) == 0
    record = records_by_name(out)['leaf $x^$.jpg']
    assert record['figure'] == 'leaf $x^$_explain.png'
    assert cv2.imread(str(out / record['figure'])) is not None


def test_a_phone_photo_is_analysed_on_a_small_copy(tmp_path: Path,
                                                   monkeypatch: pytest.MonkeyPatch) -> None:
    from plant_disease_ros.training import explain as explain_module

    photo = read_rgb(LEAF)
    big = write_rgb(tmp_path / 'big.jpg',
                    cv2.resize(photo, (2400, 1600), interpolation=cv2.INTER_CUBIC))
    shapes = []

    def recording_leaf_mask(rgb: np.ndarray) -> np.ndarray:
        shapes.append(rgb.shape)
        return leaf_mask(rgb)

    monkeypatch.setattr(explain_module, 'leaf_mask', recording_leaf_mask)
    result = explain_module.explain_images([big, LEAF], model_path=MODEL, labels_path=LABELS,
                                           keras_path=None, out_dir=tmp_path / 'out', grid=8,
                                           num_threads=1)
    assert shapes == [(683, 1024, 3), photo.shape]
    large, small = result.explanations
    # The same kind of numbers as the photo at its own size.
    assert large.leaf_fraction == pytest.approx(small.leaf_fraction, abs=0.01)
    assert large.occlusion_peak_on_leaf is small.occlusion_peak_on_leaf is True
    assert large.top3_int8[0]['label'] == small.top3_int8[0]['label']
    figure = cv2.imread(str(large.figure))
    assert figure is not None and figure.shape[1] > figure.shape[0] * 1.5


def sparse_map() -> np.ndarray:
    """Return an 8×8 occlusion map where covering one cell alone lowers the score."""
    heat = np.zeros((8, 8), dtype=np.float32)
    heat[2, 5] = 0.3
    return heat


def test_a_sparse_map_has_no_top_region_to_compare() -> None:
    from plant_disease_ros.training.explain import compare_maps, TOP_FRACTION

    leaf = np.zeros((64, 64), dtype=bool)
    leaf[8:56, 8:56] = True
    ramp = np.add.outer(np.arange(8.0), np.arange(8.0)).astype(np.float32)
    comparison = compare_maps(sparse_map(), ramp, leaf)
    # Not the whole photo (IoU exactly TOP_FRACTION), not a number at all.
    assert comparison.iou is None and comparison.iou_comparable is False
    assert comparison.occlusion_peak_on_leaf is True
    both = compare_maps(ramp + 1.0, ramp, leaf)
    assert both.iou == pytest.approx(1.0) and both.iou_comparable is True
    assert both.iou != TOP_FRACTION


def explanation(iou: float | None, comparable: bool | None, separable: bool,
                on_leaf: bool | None):
    from plant_disease_ros.training.explain import ImageExplanation

    item = ImageExplanation(
        image=Path('leaf.jpg'), rgb=None, target_index=0,
        top3_int8=[{'index': 0, 'label': 'Apple___Black_rot', 'score': 0.9}],
        occlusion=sparse_map(), top3_float=[{'index': 0, 'label': 'Apple___Black_rot',
                                             'score': 0.8}],
        iou=iou, occlusion_peak_on_leaf=on_leaf, gradcam_peak_on_leaf=on_leaf)
    item.iou_comparable, item.leaf_separable = comparable, separable
    return item


def test_the_summary_counts_what_is_not_comparable_apart() -> None:
    from plant_disease_ros.training.explain import format_summary, summarise

    summary = summarise([explanation(0.5, True, True, True),
                         explanation(0.3, True, True, False),
                         explanation(None, False, False, None)])
    assert summary['iou_top20'] == {'mean': 0.4, 'median': 0.4, 'min': 0.3, 'max': 0.5}
    assert summary['iou_top20_not_comparable'] == 1
    assert summary['leaf_not_separable'] == 1
    assert summary['occlusion_peak_on_leaf_fraction'] == 0.5
    text = format_summary(summary)
    assert 'IoU not comparable: 1 photos' in text
    assert 'leaf not separable from the background: 1 photos' in text


def test_no_float_scores_line_without_grad_cam(tmp_path: Path,
                                               monkeypatch: pytest.MonkeyPatch) -> None:
    from matplotlib.figure import Figure

    from plant_disease_ros.training.explain import save_figure, UNCALIBRATED

    titles = []
    savefig = Figure.savefig

    def recording_savefig(figure: Figure, *args, **kwargs) -> None:
        titles.append(figure._suptitle.get_text())
        savefig(figure, *args, **kwargs)

    monkeypatch.setattr(Figure, 'savefig', recording_savefig)
    item = explanation(None, None, True, True)
    item.rgb = read_rgb(LEAF)
    item.top3_float = None  # --no-gradcam: no float model ran
    save_figure(item, tmp_path / 'occlusion.png', UNCALIBRATED)
    item.top3_float = [{'index': 0, 'label': 'Apple___Black_rot', 'score': 0.8}]
    item.gradcam = sparse_map()
    save_figure(item, tmp_path / 'both.png', UNCALIBRATED)
    occlusion_only, both = titles
    assert 'float' not in occlusion_only and 'int8: Apple___Black_rot 0.90' in occlusion_only
    assert f'{UNCALIBRATED}: Apple___Black_rot 0.80' in both
