"""Class-balanced, seeded, field-robust batches (numpy/OpenCV only)."""

from __future__ import annotations

import numpy as np
import pytest

from plant_disease_ros.training.field_augment import (
    AugmentOptions,
    FieldBatchMaker,
    motion_streak,
    photometric,
    Pool,
    random_crop,
    random_pose,
    SourceMix,
    SOURCES,
)

NO_LEAF = 9


def pools(size: int = 40):
    rng = np.random.default_rng(0)
    lab_labels = np.repeat([0, 1, 2], [30, 5, 5])  # class 0 is six times as common
    lab_images = rng.integers(0, 255, (40, size, size, 3), dtype=np.uint8)
    masks = np.zeros((40, size, size), np.uint8)
    masks[:, 8:32, 10:30] = 255
    lab = Pool(lab_images, lab_labels, lab_labels, masks=masks)
    field_labels = np.array([0] * 20 + [1] * 2)
    field = Pool(rng.integers(0, 255, (22, size, size, 3), dtype=np.uint8), field_labels,
                 field_labels)
    kinds = np.array([0] * 10 + [1] * 2)
    negatives = Pool(rng.integers(0, 255, (12, size, size, 3), dtype=np.uint8),
                     np.full(12, NO_LEAF), kinds)
    return lab, field, negatives


def maker(**kwargs) -> FieldBatchMaker:
    lab, field, negatives = pools()
    return FieldBatchMaker(lab, field, negatives, NO_LEAF, size=32, batch_size=16, seed=3,
                           **kwargs)


def test_batches_are_seeded_uint8_of_the_input_size() -> None:
    batches = maker()
    images, labels = batches.batch(0, 0)
    assert images.shape == (16, 32, 32, 3) and images.dtype == np.uint8
    assert labels.dtype == np.int32 and set(labels.tolist()) <= {0, 1, 2, NO_LEAF}
    again = maker().batch(0, 0)
    assert np.array_equal(images, again[0]) and np.array_equal(labels, again[1])
    assert not np.array_equal(images, batches.batch(0, 1)[0])
    assert not np.array_equal(images, batches.batch(1, 0)[0])


def test_pool_draws_groups_uniformly_whatever_their_size() -> None:
    lab, _, _ = pools()
    rng = np.random.default_rng(1)
    drawn = np.array([lab.labels[lab.draw(rng)] for _ in range(3000)])
    shares = np.bincount(drawn, minlength=3) / len(drawn)
    assert np.allclose(shares, 1 / 3, atol=0.04)
    with pytest.raises(ValueError):
        Pool(lab.images, lab.labels[:3], lab.labels)


def test_sources_follow_the_mix() -> None:
    only_negatives = maker(mix=SourceMix(lab=0, lab_composite=0, field=0, negative_photo=1,
                                         synthetic=1))
    _, labels = only_negatives.batch(0, 0)
    assert set(labels.tolist()) == {NO_LEAF}
    only_leaves = maker(mix=SourceMix(lab=1, lab_composite=1, field=1, negative_photo=0,
                                      synthetic=0))
    _, labels = only_leaves.batch(0, 0)
    assert NO_LEAF not in labels.tolist()
    with pytest.raises(ValueError):
        SourceMix(lab=0, lab_composite=0, field=0, negative_photo=0,
                  synthetic=0).probabilities()


def test_no_field_pool_drops_the_field_share() -> None:
    lab, _, negatives = pools()
    batches = FieldBatchMaker(lab, None, negatives, NO_LEAF, 32, 8, 0)
    assert batches.probabilities[SOURCES.index('field')] == 0.0
    images, _ = batches.batch(0, 0)
    assert images.shape == (8, 32, 32, 3)


def test_lab_pool_needs_masks() -> None:
    lab, field, negatives = pools()
    lab.masks = None
    with pytest.raises(ValueError, match='masks'):
        FieldBatchMaker(lab, field, negatives, NO_LEAF, 32, 8, 0)


@pytest.mark.parametrize('source', SOURCES)
def test_every_source_yields_a_frame(source: str) -> None:
    frame, label = maker().sample(np.random.default_rng(4), source)
    assert frame.shape == (32, 32, 3) and frame.dtype == np.uint8
    assert (label == NO_LEAF) == (source in ('negative_photo', 'synthetic'))


def test_pose_crop_and_photometric_keep_shape_and_range() -> None:
    rng = np.random.default_rng(5)
    image = rng.integers(0, 255, (50, 60, 3), dtype=np.uint8)
    assert random_crop(rng, image, 24).shape == (24, 24, 3)
    square = image[:50, :50]
    posed = random_pose(rng, square)
    assert posed.shape == square.shape and posed.flags['C_CONTIGUOUS']
    assert sorted(posed.ravel().tolist()) == sorted(square.ravel().tolist())
    always = AugmentOptions(blur_probability=1, noise_probability=1, jpeg_probability=1,
                            photometric_probability=1)
    out = photometric(rng, square, always)
    assert out.shape == square.shape and out.dtype == np.uint8
    never = AugmentOptions(blur_probability=0, noise_probability=0, jpeg_probability=0,
                           photometric_probability=0)
    assert np.array_equal(photometric(rng, square, never), square)


def test_batch_with_sources_names_each_rows_source() -> None:
    batches = maker()
    images, labels, sources = batches.batch_with_sources(2, 5)
    plain_images, plain_labels = batches.batch(2, 5)
    assert np.array_equal(images, plain_images) and np.array_equal(labels, plain_labels)
    assert sources.shape == (16,) and set(sources.tolist()) <= set(range(len(SOURCES)))
    negative = np.isin(sources, [SOURCES.index('negative_photo'), SOURCES.index('synthetic')])
    assert np.array_equal(labels == NO_LEAF, negative)


def test_mix_parses_named_shares_and_keeps_the_rest() -> None:
    mix = SourceMix.parse('lab=0.3, field=0.4')
    assert (mix.lab, mix.field) == (0.3, 0.4)
    assert mix.synthetic == SourceMix().synthetic
    assert SourceMix.parse('') == SourceMix()
    for text, message in (('leaves=0.3', 'NAME one of'), ('lab', 'NAME=SHARE'),
                          ('lab=a lot', 'not a number'),
                          ('lab=0,lab_composite=0,field=0,negative_photo=0,synthetic=0',
                           'positive sum')):
        with pytest.raises(ValueError, match=message):
            SourceMix.parse(text)


def test_scaled_augmentation_goes_from_full_to_none() -> None:
    assert AugmentOptions.scaled(1.0) == AugmentOptions()
    half = AugmentOptions.scaled(0.5)
    assert half.photometric_probability == pytest.approx(0.425)
    assert half.min_crop_area == pytest.approx(0.725)
    assert half.lab_min_crop_area == pytest.approx(0.8)
    none = AugmentOptions.scaled(0.0)
    assert none.min_crop_area == none.lab_min_crop_area == 1.0
    assert none.blur_probability == none.noise_probability == none.jpeg_probability == 0.0
    image = np.random.default_rng(5).integers(0, 255, (32, 32, 3), dtype=np.uint8)
    assert np.array_equal(photometric(np.random.default_rng(6), image, none), image)
    with pytest.raises(ValueError, match='0..1'):
        AugmentOptions.scaled(1.5)


def test_a_motion_streak_smears_one_axis_by_3_to_max_px() -> None:
    """A one-pixel dot becomes a line of 3..max px along the rows or the columns."""
    rng = np.random.default_rng(5)
    dot = np.zeros((40, 40, 3), np.float32)
    dot[20, 20] = 255.0
    seen = set()
    for _ in range(60):
        out = motion_streak(rng, dot, 9)
        lit = np.argwhere(out[..., 0] > 0)
        rows, cols = np.ptp(lit[:, 0]) + 1, np.ptp(lit[:, 1]) + 1
        assert min(rows, cols) == 1 and 3 <= max(rows, cols) <= 9
        assert out[..., 0].sum() == pytest.approx(255.0)  # a box: the dot's light is kept
        seen.add((rows > 1, max(rows, cols)))
    assert {axis for axis, _ in seen} == {False, True}  # both axes drawn
    assert {length for _, length in seen} == set(range(3, 10))


def test_motion_blur_off_draws_nothing_so_the_seeded_batches_stay_as_they_were() -> None:
    """The shipped recipe (share 0) draws no random number for the streak.

    A share too small to ever fire still draws one number a frame, which moves every draw
    after it: had share 0 drawn too, its batch would equal that one.
    """
    off = maker(augment=AugmentOptions(motion_blur_probability=0.0)).batch(0, 0)[0]
    never = maker(augment=AugmentOptions(motion_blur_probability=1e-12)).batch(0, 0)[0]
    assert not np.array_equal(off, never)
    assert np.array_equal(off, maker().batch(0, 0)[0])


def test_bad_motion_blur_settings_are_refused() -> None:
    with pytest.raises(ValueError, match='motion blur share'):
        AugmentOptions(motion_blur_probability=1.5)
    with pytest.raises(ValueError, match='longest motion streak'):
        AugmentOptions(motion_blur_max_px=2)


@pytest.mark.parametrize('damage', ['cut_short', 'other_photos'])
def test_a_damaged_leaf_mask_cache_is_computed_again_and_rewritten(
        tmp_path, capsys, damage: str) -> None:
    from plant_disease_ros.training.field_train import _cached_masks

    images = np.zeros((3, 8, 8, 3), np.uint8)
    images[:, 2:6, 2:6, 1] = 200
    calls = []

    def compute(photos: np.ndarray) -> np.ndarray:
        calls.append(len(photos))
        return photos[..., 1] > 100

    first = _cached_masks(images, str(tmp_path), compute)
    (path,) = tmp_path.glob('leaf_masks_*.npy')
    if damage == 'cut_short':
        path.write_bytes(path.read_bytes()[:40])
    else:
        np.save(path, np.zeros((5, 8, 8), bool))
    again = _cached_masks(images, str(tmp_path), compute)
    assert calls == [3, 3]
    assert np.array_equal(again, first)
    assert 'is unreadable' in capsys.readouterr().err
    assert np.array_equal(np.load(path), first)   # rewritten
    assert np.array_equal(_cached_masks(images, str(tmp_path), compute), first)
    assert calls == [3, 3]
