"""Synthetic non-leaf frames (numpy/OpenCV only)."""

from __future__ import annotations

import numpy as np
import pytest

from plant_disease_ros.training.synthetic import synthetic_frame, SYNTHETIC_KINDS, synthetic_set


@pytest.mark.parametrize('kind', list(SYNTHETIC_KINDS))
def test_every_kind_is_a_uint8_frame_and_seeded(kind: str) -> None:
    first = synthetic_frame(np.random.default_rng(5), 64, kind)
    again = synthetic_frame(np.random.default_rng(5), 64, kind)
    assert first.shape == (64, 64, 3) and first.dtype == np.uint8
    assert np.array_equal(first, again)
    assert np.all(np.isfinite(first.astype(np.float32)))


def test_flat_kinds_look_like_what_they_are_named() -> None:
    rng = np.random.default_rng(0)
    for _ in range(10):
        black = synthetic_frame(rng, 48, 'black').astype(float)
        white = synthetic_frame(rng, 48, 'white').astype(float)
        green = synthetic_frame(rng, 48, 'uniform_green').astype(float)
        assert black.mean() < 40
        assert white.mean() > 170
        red, grn, blue = green.reshape(-1, 3).mean(axis=0)
        assert grn >= max(red, blue) - 1
        # Flat: little texture compared with a texture kind.
        assert green.std(axis=(0, 1)).max() < 25


def test_textures_have_texture() -> None:
    rng = np.random.default_rng(1)
    for kind in ('grass', 'soil', 'noise', 'fence'):
        frame = synthetic_frame(rng, 64, kind).astype(float)
        assert frame.std() > 5, kind


def test_random_kind_and_unknown_kind() -> None:
    frame = synthetic_frame(np.random.default_rng(2), 32)
    assert frame.shape == (32, 32, 3)
    with pytest.raises(ValueError, match='unknown synthetic kind'):
        synthetic_frame(np.random.default_rng(2), 32, 'cloud')


def test_synthetic_set_is_seeded_and_covers_every_kind() -> None:
    frames, kinds = synthetic_set(seed=3, size=24, per_kind=2)
    assert frames.shape == (2 * len(SYNTHETIC_KINDS), 24, 24, 3)
    assert sorted(set(kinds)) == sorted(SYNTHETIC_KINDS)
    again, _ = synthetic_set(seed=3, size=24, per_kind=2)
    other, _ = synthetic_set(seed=4, size=24, per_kind=2)
    assert np.array_equal(frames, again) and not np.array_equal(frames, other)
