"""PCA, t-SNE and the neighbourhood-overlap list on synthetic features (no TensorFlow)."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from plant_disease_ros.training.embed import (
    embed_features,
    format_overlaps,
    nearest_neighbours,
    neighbourhood_overlap,
    numpy_tsne,
    pca,
    tsne,
)

CLASSES = ['Tomato___healthy', 'Tomato___Early_blight', 'Apple___Apple_scab']


def three_classes(per_class: int = 20, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """Return features where classes 0 and 1 share a cluster and class 2 stands apart."""
    rng = np.random.default_rng(seed)
    centres = np.zeros((3, 64))
    centres[0, 0] = centres[1, 0] = 10.0
    centres[1, 1] = 0.5
    centres[2, 2] = 10.0
    labels = np.repeat(np.arange(3), per_class)
    return centres[labels] + rng.normal(0.0, 1.0, (len(labels), 64)), labels


def test_pca_shapes_variance_and_axes() -> None:
    features, _ = three_classes()
    projected, ratio = pca(features, 2)
    assert projected.shape == (60, 2)
    assert ratio.shape == (2,) and 0 < ratio[1] <= ratio[0] <= 1
    # The first axis separates the two clusters (classes 0+1 vs class 2).
    assert abs(projected[:40, 0].mean() - projected[40:, 0].mean()) > 10
    centred = projected - projected.mean(axis=0)
    assert abs(np.corrcoef(centred.T)[0, 1]) < 1e-6  # uncorrelated axes
    with pytest.raises(ValueError):
        pca(features[:1])


def test_numpy_tsne_keeps_clusters_apart() -> None:
    features, labels = three_classes(per_class=15)
    embedded = numpy_tsne(features, perplexity=10, iterations=400)
    assert embedded.shape == (45, 2) and np.isfinite(embedded).all()
    # Judged by neighbours, not by the cluster's spread: t-SNE's layout of a cluster (one
    # blob or a few) moves with the CPU's floating-point kernels, its neighbours do not.
    # A layout that mixed the classes would give about 1/3 and 2/3.
    distances = np.linalg.norm(embedded[:, None] - embedded[None], axis=-1)
    np.fill_diagonal(distances, np.inf)
    nearest = np.argsort(distances, axis=1)[:, :5]
    assert (labels[nearest[labels == 2]] == 2).mean() >= 0.8
    assert (labels[nearest[labels < 2]] < 2).mean() >= 0.9
    small, method = tsne(features[:6], perplexity=30)  # perplexity capped for 6 points
    assert small.shape == (6, 2) and method.startswith('numpy')
    with pytest.raises(ValueError):
        tsne(features, method='umap')


def test_nearest_neighbours_exclude_self() -> None:
    points = np.array([[1.0, 0.0], [0.9, 0.1], [0.0, 1.0], [0.1, 0.9]])
    neighbours = nearest_neighbours(points, 1)
    assert neighbours[:, 0].tolist() == [1, 0, 3, 2]
    assert nearest_neighbours(points, 10).shape == (4, 3)


def test_overlap_ranks_the_mixed_pair_first() -> None:
    features, labels = three_classes()
    pairs, purity = neighbourhood_overlap(features, labels, CLASSES, k=5)
    assert pairs and {pairs[0].first, pairs[0].second} == set(CLASSES[:2])
    assert 0.3 < pairs[0].overlap < 0.7  # ~0.5: the two are inseparable
    assert all(CLASSES[2] not in (pair.first, pair.second) or pair.overlap < 0.05
               for pair in pairs)
    assert purity[CLASSES[2]] == 1.0 and purity[CLASSES[0]] < 0.8
    assert 'Tomato___healthy <-> Tomato___Early_blight' in format_overlaps(pairs) \
        or 'Tomato___Early_blight <-> Tomato___healthy' in format_overlaps(pairs)


def test_overlap_counts_by_hand() -> None:
    # Four points in two classes, k = 1: each point's nearest is in the other class.
    points = np.array([[1.0, 0.0], [0.99, 0.05], [0.0, 1.0], [0.05, 0.99]])
    pairs, purity = neighbourhood_overlap(points, np.array([0, 1, 1, 0]), ['a', 'b'], k=1)
    assert len(pairs) == 1 and pairs[0].overlap == 1.0
    assert pairs[0].first_to_second == pairs[0].second_to_first == 1.0
    assert purity == {'a': 0.0, 'b': 0.0}


def test_embed_features_writes_pictures_and_json(tmp_path: Path) -> None:
    features, labels = three_classes(per_class=8)
    files = [f'{CLASSES[label]}/{number}.jpg' for number, label in enumerate(labels)]
    result = embed_features(features, labels, CLASSES, files, out_dir=tmp_path, k=4,
                            perplexity=5, title='synthetic')
    assert result.pca.shape == (24, 2) and result.tsne.shape == (24, 2)
    for name in ('pca.png', 'tsne.png', 'overlap.json', 'embedding.npz'):
        assert (tmp_path / name).stat().st_size > 0, name
    document = json.loads((tmp_path / 'overlap.json').read_text())
    assert document['photos'] == 24 and document['k'] == 4
    assert document['pairs'][0]['classes'] == CLASSES[:2]
    stored = np.load(tmp_path / 'embedding.npz')
    assert stored['pca'].shape == (24, 2) and list(stored['classes']) == CLASSES
