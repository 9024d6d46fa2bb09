"""CutMix between the leaf rows of a batch: boxes, targets and who takes part."""

from __future__ import annotations

import numpy as np
import pytest

from plant_disease_ros.training.cutmix import check_cutmix_share, cutmix_box, cutmix_rows


def _batch(rows: int = 8, size: int = 16, classes: int = 5
           ) -> tuple[np.ndarray, np.ndarray]:
    """Frames filled with their row number, one-hot targets of class row % classes."""
    images = np.broadcast_to(np.arange(rows, dtype=np.uint8)[:, None, None, None],
                             (rows, size, size, 3)).copy()
    return images, np.eye(classes, dtype=np.float32)[np.arange(rows) % classes]


def test_boxes_stay_in_the_frame_and_cover_about_a_third_on_average() -> None:
    rng = np.random.default_rng(3)
    areas = []
    for _ in range(2000):
        top, left, bottom, right = cutmix_box(rng, 40, 30)
        assert 0 <= top <= bottom <= 40 and 0 <= left <= right <= 30
        areas.append((bottom - top) * (right - left) / 1200)
    # Unclipped, the box's share is 1 - lambda (mean 0.5); clipping at the edges cuts it.
    assert 0.25 < float(np.mean(areas)) < 0.5
    assert max(areas) <= 1.0


def test_targets_are_mixed_by_the_pasted_area() -> None:
    images, targets = _batch()
    eligible = np.array([True] * 6 + [False] * 2)
    out_images, out_targets, mixed = cutmix_rows(images, targets, eligible, 1.0,
                                                 np.random.default_rng(0))
    assert mixed >= 5  # every eligible row is picked; only an empty box is skipped
    for row in range(6):
        values, counts = np.unique(out_images[row, :, :, 0], return_counts=True)
        # Its own pixels and one partner's, drawn from the eligible rows before mixing.
        assert row in values or len(values) == 1
        assert set(values.tolist()) <= set(range(6))
        share = {int(v): c / 256 for v, c in zip(values, counts, strict=True)}
        expected = np.zeros(5, np.float32)
        for value, part in share.items():
            expected += part * targets[value]
        np.testing.assert_allclose(out_targets[row], expected, atol=1e-6)
        assert out_targets[row].sum() == pytest.approx(1.0)
    # Rows that do not take part are left as they were, and so are the inputs.
    np.testing.assert_array_equal(out_images[6:], images[6:])
    np.testing.assert_array_equal(out_targets[6:], targets[6:])
    np.testing.assert_array_equal(images, _batch()[0])


def test_patches_come_from_the_frames_as_drawn() -> None:
    """A patch of a partner that was itself mixed first would carry a third value.

    With three rows that happens in most draws, so 50 seeds catch it for certain.
    """
    images, targets = _batch(rows=3)
    for seed in range(50):
        out_images, _, _ = cutmix_rows(images, targets, np.ones(3, bool), 1.0,
                                       np.random.default_rng(seed))
        for row in range(3):
            assert len(np.unique(out_images[row])) <= 2, (seed, row)


def test_share_zero_or_a_single_row_changes_nothing_and_a_bad_share_is_refused() -> None:
    images, targets = _batch()
    for eligible, share in ((np.ones(8, bool), 0.0), (np.eye(8, dtype=bool)[2], 1.0)):
        out_images, out_targets, mixed = cutmix_rows(images, targets, eligible, share,
                                                     np.random.default_rng(0))
        assert mixed == 0
        np.testing.assert_array_equal(out_images, images)
        np.testing.assert_array_equal(out_targets, targets)
    half = [cutmix_rows(images, targets, np.ones(8, bool), 0.5,
                        np.random.default_rng(seed))[2] for seed in range(200)]
    assert 3.0 < float(np.mean(half)) < 5.0  # about half of the 8 rows
    with pytest.raises(ValueError, match='the CutMix share must lie in 0..1, not 1.5'):
        check_cutmix_share(1.5)
    with pytest.raises(ValueError, match='do not match'):
        cutmix_rows(images, targets[:4], np.ones(8, bool), 0.5, np.random.default_rng(0))


def test_the_same_seed_gives_the_same_batch() -> None:
    images, targets = _batch()
    first = cutmix_rows(images, targets, np.ones(8, bool), 0.5, np.random.default_rng(9))
    second = cutmix_rows(images, targets, np.ones(8, bool), 0.5, np.random.default_rng(9))
    np.testing.assert_array_equal(first[0], second[0])
    np.testing.assert_array_equal(first[1], second[1])
