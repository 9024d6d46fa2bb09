"""Occlusion maps, masks and IoU: exact checks on synthetic inputs, content on real photos.

The content tests use the shipped int8 model on the held-out photos of ``test/data/leaves``
(one per class): covering a lesion lowers the diseased class's score, covering as much
background does not, and the occlusion map's peak lies on the leaf for most photos.
"""

from __future__ import annotations

import os
from pathlib import Path

from conftest import MODELS_DIR, TEST_IMAGES_DIR
import cv2
import numpy as np
import pytest

from plant_disease_ros.core.occlusion import (
    cell_edges,
    is_flat,
    leaf_mask,
    leaf_separable,
    mask_iou,
    MAX_LEAF_SHARE,
    MIN_LEAF_SHARE,
    normalise_heatmap,
    occlusion_heatmap,
    occlusion_map,
    overlay_heatmap,
    peak_on_mask,
    top_fraction_mask,
    top_region_iou,
    upsample_heatmap,
)

LEAVES = sorted((TEST_IMAGES_DIR / 'leaves').glob('*.jpg'))
# The model folder under test; PLANT_DISEASE_MODELS_DIR checks another export.
MODELS = Path(os.environ.get('PLANT_DISEASE_MODELS_DIR', MODELS_DIR))
MODEL = MODELS / 'plant_disease_int8.tflite'
LABELS = MODELS / 'labels.txt'
PEAK_ON_LEAF_BAR = 0.7


def read_photo(path: Path) -> np.ndarray:
    """Return a photo as RGB uint8."""
    return cv2.cvtColor(cv2.imread(str(path)), cv2.COLOR_BGR2RGB)


class RedPatchClassifier:
    """Two classes; class 0's evidence is the share of pure-red pixels (32x32 input)."""

    input_size = (32, 32)

    def __init__(self) -> None:
        self.calls = 0

    def probabilities(self, rgb: np.ndarray) -> np.ndarray:
        self.calls += 1
        assert rgb.shape == (32, 32, 3) and rgb.dtype == np.uint8
        evidence = np.array([16.0 * np.all(rgb == (255, 0, 0), axis=-1).mean(), 0.5])
        return (evidence / evidence.sum()).astype(np.float32)


def red_patch_photo(row: int, col: int, grid: int = 4, size: int = 64) -> np.ndarray:
    """Return a grey photo with one grid cell painted pure red."""
    photo = np.full((size, size, 3), 90, dtype=np.uint8)
    cell = size // grid
    photo[row * cell:(row + 1) * cell, col * cell:(col + 1) * cell] = (255, 0, 0)
    return photo


def test_occlusion_finds_the_only_evidence() -> None:
    classifier = RedPatchClassifier()
    heat = occlusion_heatmap(classifier, red_patch_photo(2, 1), grid=4)
    assert heat.shape == (4, 4) and heat.dtype == np.float32
    assert classifier.calls == 4 * 4 + 1
    assert np.unravel_index(np.argmax(heat), heat.shape) == (2, 1)
    assert heat[2, 1] == pytest.approx(2 / 3, abs=1e-6)  # 1 : 0.5 -> 0 : 0.5
    others = np.delete(heat.reshape(-1), 2 * 4 + 1)
    assert np.allclose(others, 0.0)


def test_occlusion_target_class_and_fills() -> None:
    photo = red_patch_photo(0, 3)
    # Covering the red cell helps class 1: its score drop is negative there.
    heat = occlusion_heatmap(RedPatchClassifier(), photo, grid=4, target_index=1)
    assert heat[0, 3] == pytest.approx(-2 / 3, abs=1e-6)
    for fill in ('mean', 'black', 'gray', 'blur', (0, 0, 255)):
        heat = occlusion_heatmap(RedPatchClassifier(), photo, grid=4, target_index=0,
                                 fill=fill)
        assert np.argmax(heat) == 3, fill
    with pytest.raises(ValueError, match='fill'):
        occlusion_heatmap(RedPatchClassifier(), photo, fill='plaid')
    with pytest.raises(ValueError, match='grid'):
        occlusion_heatmap(RedPatchClassifier(), photo, grid=0)
    with pytest.raises(ValueError, match='target'):
        occlusion_heatmap(RedPatchClassifier(), photo, target_index=5)
    with pytest.raises(ValueError, match='RGB'):
        occlusion_heatmap(RedPatchClassifier(), photo[..., 0])


class ThresholdClassifier(RedPatchClassifier):
    """Saturates like a confident int8 model: class 0 is certain while 1/10 is red."""

    def probabilities(self, rgb: np.ndarray) -> np.ndarray:
        self.calls += 1
        red = np.all(rgb == (255, 0, 0), axis=-1).mean()
        return np.array([1.0, 0.0] if red >= 0.1 else [0.0, 1.0], dtype=np.float32)


def test_patches_and_the_flat_map_fallback() -> None:
    photo = red_patch_photo(1, 1, grid=4)
    photo[16:48, 16:48] = (255, 0, 0)  # a red 2x2-cell block: cells (1..2, 1..2)
    single = occlusion_heatmap(ThresholdClassifier(), photo, grid=4)
    assert is_flat(single)  # no one cell matters on its own
    wide = occlusion_heatmap(ThresholdClassifier(), photo, grid=4, patch=3)
    assert not is_flat(wide)
    # A 3-cell patch centred on a cell covers the whole block only from (1..2, 1..2)...
    assert wide[1:3, 1:3].min() == 1.0 and wide[0].max() == 0.0
    heat, patch = occlusion_map(ThresholdClassifier(), photo, grid=4)
    assert patch == 3 and np.array_equal(heat, wide)
    heat, patch = occlusion_map(RedPatchClassifier(), red_patch_photo(2, 1), grid=4)
    assert patch == 1 and np.argmax(heat) == 2 * 4 + 1  # informative: no retry
    with pytest.raises(ValueError, match='patch'):
        occlusion_heatmap(ThresholdClassifier(), photo, grid=4, patch=5)


@pytest.mark.parametrize('patch', [2, 4])
def test_an_even_patch_has_no_middle_cell_and_is_refused(patch: int) -> None:
    with pytest.raises(ValueError, match=f'patch must be an odd number of cells .*, got '
                                         f'{patch}$'):
        occlusion_heatmap(ThresholdClassifier(), red_patch_photo(1, 1), grid=4, patch=patch)


def test_cell_edges_cover_the_image() -> None:
    edges = cell_edges(96, 7)
    assert edges[0] == 0 and edges[-1] == 96 and len(edges) == 8
    assert np.all(np.diff(edges) >= 13)


def test_top_fraction_mask_counts_and_ties() -> None:
    ramp = np.arange(100, dtype=np.float32).reshape(10, 10)
    mask = top_fraction_mask(ramp, 0.2)
    assert mask.sum() == 20 and mask[9].all() and mask[8].all() and not mask[7].any()
    assert top_fraction_mask(ramp + 1, 1.0).all()
    with pytest.raises(ValueError):
        top_fraction_mask(ramp, 0.0)


def test_no_drop_is_never_a_top_region() -> None:
    # A sparse map: 5 of 100 pixels lower the score when covered. The 20th highest value
    # is 0, and 'values >= 0' would select the whole map (an IoU of exactly 0.2).
    sparse = np.zeros((10, 10), dtype=np.float32)
    sparse[0, :5] = 1.0
    assert top_fraction_mask(sparse, 0.2).sum() == 5
    assert not top_fraction_mask(np.zeros((5, 5)), 0.2).any()  # flat: nothing
    assert not top_fraction_mask(-np.ones((5, 5)), 0.2).any()
    ramp = np.arange(100, dtype=np.float32).reshape(10, 10)
    # Fewer than half the pixels asked, or ties making twice as many: not comparable.
    assert top_region_iou(sparse, ramp, 0.2) is None
    plateau = np.ones((10, 10), dtype=np.float32)
    plateau[:5] = 2.0
    assert top_region_iou(plateau, ramp, 0.2) is None
    assert top_region_iou(ramp, ramp, 0.2) == 1.0
    assert top_region_iou(ramp, ramp[::-1], 0.2) == 0.0
    sparse[1, :5] = 1.0  # 10 %: half the share asked, still comparable
    assert top_region_iou(sparse, ramp[::-1], 0.2) == pytest.approx(10 / 20)


def test_a_leaf_separates_only_from_a_plain_background() -> None:
    mask = np.zeros((100, 100), dtype=bool)
    assert not leaf_separable(mask)  # a greyscale photo: nothing found
    mask[:, :50] = True
    assert leaf_separable(mask)
    mask[:, :95] = True
    assert not leaf_separable(mask)  # a field photo: the whole frame
    mask[:] = False
    mask[:, :int(100 * MIN_LEAF_SHARE)] = True
    assert leaf_separable(mask)
    mask[:, :int(100 * MAX_LEAF_SHARE)] = True
    assert leaf_separable(mask)  # the bounds are in


def test_mask_iou_on_known_masks() -> None:
    a = np.zeros((20, 20), dtype=bool)
    b = np.zeros((20, 20), dtype=bool)
    a[0:10, 0:10] = True
    b[0:10, 5:15] = True
    assert mask_iou(a, b) == pytest.approx(50 / 150)
    assert mask_iou(a, a) == 1.0
    assert mask_iou(a, ~a) == 0.0
    assert mask_iou(np.zeros((3, 3)), np.zeros((3, 3))) == 1.0
    with pytest.raises(ValueError, match='shape'):
        mask_iou(a, b[:10])
    # Top-20 % regions of two maps that peak in opposite corners do not overlap.
    ramp = np.add.outer(np.arange(8.0), np.arange(8.0))
    assert mask_iou(top_fraction_mask(upsample_heatmap(ramp, 64, 64)),
                    top_fraction_mask(upsample_heatmap(ramp.max() + 1 - ramp, 64, 64))) == 0.0


def test_overlay_and_normalisation() -> None:
    photo = np.full((40, 60, 3), 100, dtype=np.uint8)
    heat = np.array([[0.0, -1.0], [0.0, 2.0]], dtype=np.float32)
    levels = normalise_heatmap(heat)
    assert levels.max() == 1.0 and levels.min() == 0.0
    assert not normalise_heatmap(-heat - 5).any()
    overlay = overlay_heatmap(photo, heat)
    assert overlay.shape == photo.shape and overlay.dtype == np.uint8
    assert np.array_equal(overlay_heatmap(photo, heat, alpha=0.0), photo)
    coloured = overlay_heatmap(photo, heat, alpha=1.0)
    assert tuple(coloured[-1, -1]) == (128, 0, 0)  # JET's top is dark red, bottom-right here
    assert coloured[0, 0, 2] > coloured[0, 0, 0]   # zero is blue
    with pytest.raises(ValueError):
        overlay_heatmap(photo, heat, alpha=1.5)


def test_leaf_mask_on_a_synthetic_leaf() -> None:
    photo = np.full((120, 160, 3), (150, 145, 160), dtype=np.uint8)  # lilac-grey background
    truth = np.zeros(photo.shape[:2], dtype=np.uint8)
    cv2.ellipse(truth, (80, 60), (50, 30), 20, 0, 360, 1, -1)
    photo[truth > 0] = (60, 130, 50)
    cv2.circle(photo, (80, 60), 6, (120, 90, 60), -1)  # a brown lesion inside the leaf
    mask = leaf_mask(photo)
    assert mask_iou(mask, truth > 0) > 0.95
    assert mask[60, 80]  # holes are filled: the lesion is leaf
    assert peak_on_mask(np.array([[0.0, 0.0, 0.0], [0.0, 1.0, 0.0], [0.0, 0.0, 0.0]]), mask)
    assert not peak_on_mask(np.array([[1.0, 0.0], [0.0, 0.0]]), mask)


@pytest.mark.parametrize('path', LEAVES, ids=[path.stem for path in LEAVES])
def test_leaf_mask_on_real_photos_is_plausible(path: Path) -> None:
    photo = read_photo(path)
    mask = leaf_mask(photo)
    assert 0.12 < mask.mean() < 0.8
    # The photo's centre is leaf in every PlantVillage shot, its corners background.
    height, width = mask.shape
    assert mask[height // 2 - 8:height // 2 + 8, width // 2 - 8:width // 2 + 8].mean() > 0.5
    assert not mask[:4, :4].any() or not mask[-4:, -4:].any()


# --- Content checks on the shipped int8 model -------------------------------------------


@pytest.fixture(scope='module')
def trained_classifier():
    """Return the shipped int8 classifier (skip without one; fail when it is untrained)."""
    if not MODEL.is_file() or not LABELS.is_file():
        pytest.skip(f'no shipped model at {MODEL}')
    from plant_disease_ros.core.classifier import ClassifierOptions, DiseaseClassifier

    classifier = DiseaseClassifier.create_from_options(
        ClassifierOptions(model_path=str(MODEL), labels_path=str(LABELS)))
    correct = sum(classifier.labels[int(np.argmax(classifier.probabilities(read_photo(p))))]
                  == p.stem for p in LEAVES)
    # The shipped model is committed: a model this wrong is a regression, not a skip.
    assert correct >= 0.5 * len(LEAVES), \
        f'the shipped model gets only {correct}/{len(LEAVES)} test photos right'
    return classifier


def lesion_mask(photo: np.ndarray, leaf: np.ndarray) -> np.ndarray:
    """Return the lesion pixels of a leaf by colour: spots far less green than the leaf."""
    lab = cv2.cvtColor(photo, cv2.COLOR_RGB2LAB).astype(np.float32)
    green_red = cv2.GaussianBlur(lab[..., 1], (3, 3), 0)
    inner = cv2.erode(leaf.astype(np.uint8), np.ones((9, 9), np.uint8)) > 0
    # Healthy tissue sits at the leaf's median green; rust, brown, tan and grey spots are
    # well towards red on Lab's a* axis.
    spots = inner & (green_red > np.median(green_red[inner]) + 12)
    # Grown by two pixels: a spot's dark rim is part of the lesion but not red enough.
    return cv2.dilate(spots.astype(np.uint8), np.ones((5, 5), np.uint8)) > 0


def cover(photo: np.ndarray, region: np.ndarray) -> np.ndarray:
    """Return the photo with ``region`` inpainted from its surroundings."""
    return cv2.inpaint(photo, region.astype(np.uint8), 5, cv2.INPAINT_TELEA)


CEDAR_RUST_NOTE = ('the shipped model keeps Cedar apple rust with its orange spots '
                   'inpainted (0.996, a drop of 0.000 when covered; background control '
                   '0.000): it reads this leaf from more than the spots. The 128 px lab '
                   'model dropped by 0.043. Strict: a model that passes updates this case')


# Septoria: the 128 px model dropped it by only 0.027 (xfail until then); the 144 px model
# drops it by 0.129 (control 0.000), so the test holds it to the bar again.
@pytest.mark.parametrize('name', [
    pytest.param('Apple___Cedar_apple_rust',
                 marks=pytest.mark.xfail(reason=CEDAR_RUST_NOTE, strict=True)),
    'Potato___Early_blight',
    'Tomato___Septoria_leaf_spot'])
def test_covering_the_lesions_lowers_the_disease_score(trained_classifier, name: str) -> None:
    photo = read_photo(TEST_IMAGES_DIR / 'leaves' / f'{name}.jpg')
    labels = trained_classifier.labels
    target = labels.index(name)
    baseline = trained_classifier.probabilities(photo)
    assert int(np.argmax(baseline)) == target
    leaf = leaf_mask(photo)
    lesions = lesion_mask(photo, leaf)
    assert 0.005 < lesions.mean() < 0.3, f'lesion area {lesions.mean():.3f}'
    # Control: as many background pixels, away from the leaf.
    background = ~(cv2.dilate(leaf.astype(np.uint8), np.ones((15, 15), np.uint8)) > 0)
    rows, cols = np.nonzero(background)
    pick = np.random.default_rng(0).choice(len(rows), int(lesions.sum()), replace=False)
    control = np.zeros_like(lesions)
    control[rows[pick], cols[pick]] = True
    score = trained_classifier.probabilities
    lesion_drop = baseline[target] - score(cover(photo, lesions))[target]
    control_drop = baseline[target] - score(cover(photo, control))[target]
    print(f'{name}: lesions {100 * lesions.mean():.1f} % of the photo; score '
          f'{baseline[target]:.3f}, drop when covered {lesion_drop:.3f} (background control '
          f'{control_drop:.3f})')
    assert lesion_drop > 0.0
    # At least five steps of the uint8 output (1/256) more than the background control.
    assert lesion_drop > control_drop + 0.02


def test_occlusion_peak_lies_on_the_leaf(trained_classifier) -> None:
    on_leaf, patches = [], []
    for path in LEAVES:
        photo = read_photo(path)
        heat, patch = occlusion_map(trained_classifier, photo, grid=8)
        on_leaf.append(not is_flat(heat) and peak_on_mask(heat, leaf_mask(photo)))
        patches.append(patch)
    fraction = sum(on_leaf) / len(on_leaf)
    off = [path.stem for path, ok in zip(LEAVES, on_leaf, strict=True) if not ok]
    print(f'occlusion peak on the leaf: {sum(on_leaf)}/{len(on_leaf)} = {fraction:.2f} '
          f'({sum(p > 1 for p in patches)} maps needed a larger patch); off leaf: '
          f'{", ".join(off) or "none"}')
    assert fraction >= PEAK_ON_LEAF_BAR
