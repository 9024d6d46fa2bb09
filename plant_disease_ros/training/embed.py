"""Pictures of what the network has learnt: its penultimate features in two dimensions.

The float Keras model's pooled features (the ``pool`` layer, what the last Dense layer
sees) of a few photos per class go through PCA (numpy SVD) and t-SNE (scikit-learn when
installed, else the exact numpy implementation below) into scatter plots coloured by
class. The classes whose neighbourhoods overlap most in feature space (k nearest
neighbours, cosine distance) are listed: the pairs the model finds hardest to separate.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
import importlib.util
import json
import os
from pathlib import Path
import sys

import numpy as np

from plant_disease_ros.core.atomic_files import sha256_of
from plant_disease_ros.training.dataset import (
    DatasetError,
    DatasetIndex,
    load_images,
    ProgressCallback,
    read_manifest,
    scan_dataset,
    Split,
    subsample,
)

PCA_FILENAME = 'pca.png'
TSNE_FILENAME = 'tsne.png'
OVERLAP_FILENAME = 'overlap.json'
COORDINATES_FILENAME = 'embedding.npz'
FEATURE_LAYER = 'pool'
EXACT_TSNE_LIMIT = 1500


@dataclass
class PhotoSelection:
    """The photos an embedding uses, and a line telling the user which they are."""

    root: Path
    classes: list[str]
    files: list[tuple[str, int]]  # (path under root, class index)
    description: str
    split_applied: bool  # the photos are a split manifest's part, not the whole folder


def is_split_root(dataset: str | os.PathLike, manifest: dict, part: str,
                  index: DatasetIndex | None = None) -> bool:
    """Return whether ``dataset`` is the folder a split manifest splits.

    It is when it is the manifest's ``root`` (a relative root read from the working
    folder, as ``export`` and ``evaluate`` read it), or a moved copy of it: the same class
    folders holding every photo of the manifest's ``part``. ``index`` is the folder's scan
    when the caller has it.
    """
    recorded = manifest.get('root')
    if recorded and Path(dataset).resolve() == Path(recorded).resolve():
        return True
    if index is None:
        try:
            index = scan_dataset(dataset)
        except DatasetError:
            return False
    parts = manifest.get('splits') or {}
    photos = {path for path, _ in index.files}
    return (list(index.classes) == list(manifest.get('classes') or [])
            and part in parts and all(path in photos for path, _ in parts[part]))


def select_photos(dataset: str | os.PathLike, split_manifest: str | os.PathLike | None,
                  split: str = 'test', per_class: int | None = None, seed: int = 0,
                  only_if_root: bool = False) -> PhotoSelection:
    """Return the photos to embed: a manifest's ``split`` part under ``dataset``, or all.

    The manifest's paths are taken relative to ``dataset`` (so a manifest written on
    another machine works); files missing there are dropped. With ``only_if_root`` (a
    default manifest, not one the user named) the manifest is used only when ``dataset``
    is the folder it splits (:func:`is_split_root`); any other folder gives every photo.
    ``per_class`` keeps at most that many photos of each class.
    """
    root = Path(dataset)
    index: DatasetIndex | None = None
    unscanned: DatasetError | None = None
    manifest = None
    if split_manifest is not None:
        manifest = read_manifest(split_manifest)
        if not root.is_dir():
            raise DatasetError(f'dataset path {root} is not a folder')
        try:
            index = scan_dataset(root)
        except DatasetError as error:
            unscanned = error  # fine while the manifest's photos are used
        if only_if_root and not is_split_root(root, manifest, split, index):
            if unscanned is not None:
                raise unscanned
            description = (f'all {len(index.files)} photos of {root} ({split_manifest} '
                           f'splits {manifest.get("root", "another folder")}, not this '
                           'folder)')
            manifest = None
    if manifest is not None:
        parts = Split.from_manifest(manifest)
        if split not in parts.parts:
            raise DatasetError(f'split {split!r} not in {split_manifest}')
        classes = list(parts.classes)
        files = [item for item in parts.parts[split] if (root / item[0]).is_file()]
        if not files:
            raise DatasetError(f'none of the {split} photos of {split_manifest} is under {root}')
        of_folder = f'{len(index.files)} photos of {root}' if index is not None \
            else f'the photos under {root}'
        description = f'using the {split} part of {split_manifest}: {len(files)} of {of_folder}'
    else:
        if index is None:
            index = scan_dataset(root)
            description = f'all {len(index.files)} photos of {root}'
        classes, files = list(index.classes), list(index.files)
    if per_class:
        chosen = subsample(files, per_class, seed=seed)
        if len(chosen) < len(files):
            description += f'; at most {per_class} a class: {len(chosen)}'
        files = chosen
    return PhotoSelection(root=root, classes=classes, files=files, description=description,
                          split_applied=manifest is not None)


def select_files(dataset: str | os.PathLike, split_manifest: str | os.PathLike | None,
                 split: str = 'test', per_class: int | None = None, seed: int = 0,
                 ) -> tuple[Path, list[str], list[tuple[str, int]]]:
    """Return ``(root, classes, files)``: a manifest's split under ``dataset``, or all files.

    The manifest, when given, is used whatever folder ``dataset`` is (see
    :func:`select_photos`).
    """
    chosen = select_photos(dataset, split_manifest, split, per_class, seed)
    return chosen.root, chosen.classes, chosen.files


def extract_features(model, images: np.ndarray, batch_size: int = 64,
                     layer: str = FEATURE_LAYER) -> np.ndarray:
    """Return the ``layer`` outputs (N×D float32) of a Keras model for raw RGB images."""
    import tensorflow as tf

    features_model = tf.keras.Model(model.input, model.get_layer(layer).output)
    chunks = [np.asarray(features_model(images[start:start + batch_size].astype(np.float32),
                                        training=False))
              for start in range(0, len(images), batch_size)]
    if not chunks:
        return np.zeros((0, int(features_model.output_shape[-1])), dtype=np.float32)
    return np.concatenate(chunks).astype(np.float32)


def pca(features: np.ndarray, components: int = 2) -> tuple[np.ndarray, np.ndarray]:
    """Project onto the first principal components; return ``(N×components, variance ratio)``.

    Computed with an SVD of the centred data; each axis's sign is fixed so that its
    largest loading is positive (reproducible pictures).
    """
    data = np.asarray(features, dtype=np.float64)
    if data.ndim != 2 or data.shape[0] < 2:
        raise ValueError(f'PCA needs an N×D array with N >= 2, got shape {data.shape}')
    centred = data - data.mean(axis=0)
    _, singular, vt = np.linalg.svd(centred, full_matrices=False)
    components = min(components, vt.shape[0])
    axes = vt[:components]
    signs = np.sign(axes[np.arange(components), np.argmax(np.abs(axes), axis=1)])
    axes = axes * np.where(signs == 0, 1.0, signs)[:, None]
    variance = singular ** 2
    total = variance.sum()
    ratio = variance[:components] / total if total > 0 else np.zeros(components)
    return (centred @ axes.T).astype(np.float32), ratio.astype(np.float32)


def _conditional_probabilities(distances: np.ndarray, perplexity: float,
                               tolerance: float = 1e-5, steps: int = 60) -> np.ndarray:
    """Return row-stochastic P with each row's entropy matching ``log(perplexity)``."""
    count = distances.shape[0]
    target = np.log(perplexity)
    probabilities = np.zeros_like(distances)
    for row in range(count):
        others = np.delete(distances[row], row)
        beta, low, high = 1.0, 0.0, np.inf
        for _ in range(steps):
            weights = np.exp(-(others - others.min()) * beta)
            total = weights.sum()
            p = weights / total
            entropy = -np.sum(p * np.log(np.maximum(p, 1e-300)))
            if abs(entropy - target) < tolerance:
                break
            if entropy > target:  # too flat: sharpen
                low = beta
                beta = beta * 2.0 if high == np.inf else (beta + high) / 2.0
            else:
                high = beta
                beta = (beta + low) / 2.0
        probabilities[row, np.arange(count) != row] = p
    return probabilities


def numpy_tsne(features: np.ndarray, perplexity: float = 30.0, iterations: int = 750,
               seed: int = 0) -> np.ndarray:
    """Return an exact t-SNE embedding (N×2) computed with numpy only (fine up to ~2000 points).

    Van der Maaten & Hinton (2008): Gaussian affinities at the given perplexity,
    symmetrised; Student-t affinities in 2-D; gradient descent with momentum, per-parameter
    gains, early exaggeration (12 for the first 250 steps) and a PCA initialisation.
    """
    data = np.asarray(features, dtype=np.float64)
    count = data.shape[0]
    if count < 3:
        raise ValueError(f't-SNE needs at least 3 points, got {count}')
    perplexity = min(float(perplexity), (count - 1) / 3.0)
    if data.shape[1] > 50:
        data, _ = pca(data, 50)
        data = data.astype(np.float64)
    squared = np.sum(data ** 2, axis=1)
    distances = np.maximum(squared[:, None] + squared[None, :] - 2.0 * data @ data.T, 0.0)
    conditional = _conditional_probabilities(distances, perplexity)
    joint = (conditional + conditional.T) / (2.0 * count)
    joint = np.maximum(joint, 1e-12)
    start, _ = pca(data, 2)
    start = start.astype(np.float64)
    spread = start[:, 0].std()
    rng = np.random.default_rng(seed)
    embedding = (start / spread * 1e-4 if spread > 0
                 else rng.normal(0.0, 1e-4, (count, 2)))
    exaggeration = 12.0
    learning_rate = max(count / exaggeration / 4.0, 50.0)
    exaggerated = exaggeration * joint
    update = np.zeros_like(embedding)
    gains = np.ones_like(embedding)
    for step in range(iterations):
        attraction = exaggerated if step < 250 else joint
        momentum = 0.5 if step < 250 else 0.8
        # Student-t kernel 1 / (1 + |yi - yj|^2), built in place (N×N is the hot spot).
        squared_y = np.sum(embedding ** 2, axis=1)
        kernel = embedding @ embedding.T
        kernel *= -2.0
        kernel += squared_y[:, None]
        kernel += squared_y[None, :]
        np.maximum(kernel, 0.0, out=kernel)
        kernel += 1.0
        np.reciprocal(kernel, out=kernel)
        np.fill_diagonal(kernel, 0.0)
        forces = kernel / -kernel.sum()
        forces += attraction
        forces *= kernel
        gradient = 4.0 * (forces.sum(axis=1)[:, None] * embedding - forces @ embedding)
        same_sign = np.sign(gradient) == np.sign(update)
        gains = np.maximum(np.where(same_sign, gains * 0.8, gains + 0.2), 0.01)
        update = momentum * update - learning_rate * gains * gradient
        embedding = embedding + update
        embedding -= embedding.mean(axis=0)
    return embedding.astype(np.float32)


def tsne(features: np.ndarray, perplexity: float = 30.0, seed: int = 0,
         method: str = 'auto') -> tuple[np.ndarray, str]:
    """Return ``(N×2 t-SNE embedding, implementation name)``.

    ``method``: ``'numpy'`` (exact, :func:`numpy_tsne`), ``'sklearn'`` (scikit-learn's
    Barnes-Hut) or ``'auto'``: exact numpy up to ``EXACT_TSNE_LIMIT`` points (on a
    2-core machine it is faster there than scikit-learn and exact), scikit-learn above
    when it is installed.
    """
    data = np.asarray(features, dtype=np.float32)
    if data.shape[0] < 3:
        raise ValueError(f't-SNE needs at least 3 points, got {data.shape[0]}')
    if method not in ('auto', 'numpy', 'sklearn'):
        raise ValueError(f"t-SNE method must be 'auto', 'numpy' or 'sklearn', not {method!r}")
    perplexity = min(float(perplexity), (data.shape[0] - 1) / 3.0)
    if method == 'auto':
        method = ('sklearn' if data.shape[0] > EXACT_TSNE_LIMIT
                  and importlib.util.find_spec('sklearn') is not None else 'numpy')
    if method == 'numpy':
        return numpy_tsne(data, perplexity=perplexity, seed=seed), 'numpy (exact)'
    import sklearn
    from sklearn.manifold import TSNE

    reduced = pca(data, 50)[0] if data.shape[1] > 50 else data
    model = TSNE(n_components=2, perplexity=perplexity, init='pca', learning_rate='auto',
                 random_state=seed)
    return (model.fit_transform(reduced).astype(np.float32),
            f'scikit-learn {sklearn.__version__} (Barnes-Hut)')


def nearest_neighbours(features: np.ndarray, k: int) -> np.ndarray:
    """Return the indices (N×k) of each point's ``k`` nearest others by cosine distance."""
    data = np.asarray(features, dtype=np.float64)
    norms = np.linalg.norm(data, axis=1, keepdims=True)
    unit = data / np.where(norms > 0, norms, 1.0)
    similarity = unit @ unit.T
    np.fill_diagonal(similarity, -np.inf)
    k = min(k, data.shape[0] - 1)
    nearest = np.argpartition(-similarity, k - 1, axis=1)[:, :k]
    order = np.take_along_axis(-similarity, nearest, axis=1).argsort(axis=1, kind='stable')
    return np.take_along_axis(nearest, order, axis=1)


@dataclass
class Overlap:
    """How much the neighbourhoods of two classes mix (0: apart, about 0.5: inseparable)."""

    first: str
    second: str
    overlap: float        # share of both classes' neighbours that come from the other
    first_to_second: float  # share of ``first``'s photos' neighbours that are ``second``
    second_to_first: float

    def as_dict(self) -> dict:
        """Return the JSON-ready form."""
        return {'classes': [self.first, self.second], 'overlap': round(self.overlap, 4),
                'first_to_second': round(self.first_to_second, 4),
                'second_to_first': round(self.second_to_first, 4)}


def neighbourhood_overlap(features: np.ndarray, labels: np.ndarray, classes: Sequence[str],
                          k: int = 10) -> tuple[list[Overlap], dict[str, float]]:
    """Return the class pairs sorted by neighbourhood overlap, and each class's purity.

    For each photo its ``k`` nearest neighbours (cosine) are found; the overlap of a pair
    (a, b) is the share of a's neighbours in b plus b's in a over all their neighbours.
    Pairs that never mix are left out. Purity is the share of a class's neighbours from the
    same class.
    """
    labels = np.asarray(labels, dtype=np.int64)
    if len(labels) != len(features):
        raise ValueError(f'{len(features)} feature rows but {len(labels)} labels')
    if len(labels) < 2:
        return [], {}
    neighbours = labels[nearest_neighbours(features, k)]
    k = neighbours.shape[1]
    counts = np.zeros((len(classes), len(classes)), dtype=np.int64)
    np.add.at(counts, (np.repeat(labels, k), neighbours.reshape(-1)), 1)
    sizes = np.bincount(labels, minlength=len(classes))
    purity = {classes[i]: round(float(counts[i, i] / (sizes[i] * k)), 4)
              for i in range(len(classes)) if sizes[i]}
    pairs = []
    for a in range(len(classes)):
        for b in range(a + 1, len(classes)):
            mixed = counts[a, b] + counts[b, a]
            if not mixed or not sizes[a] or not sizes[b]:
                continue
            pairs.append(Overlap(
                first=classes[a], second=classes[b],
                overlap=float(mixed / ((sizes[a] + sizes[b]) * k)),
                first_to_second=float(counts[a, b] / (sizes[a] * k)),
                second_to_first=float(counts[b, a] / (sizes[b] * k))))
    pairs.sort(key=lambda pair: (-pair.overlap, pair.first, pair.second))
    return pairs, purity


def plot_embedding(coordinates: np.ndarray, labels: np.ndarray, classes: Sequence[str],
                   path: str | os.PathLike, title: str,
                   axis_labels: tuple[str, str] = ('', '')) -> Path:
    """Scatter the 2-D points coloured (and, past 20 classes, shaped) by class, with legend."""
    import matplotlib

    matplotlib.use('Agg')
    import matplotlib.pyplot as plt

    from plant_disease_ros.core.labels import display_name

    palette = matplotlib.colormaps['tab20']
    markers = ('o', 's', '^', 'D', 'v', 'P')
    figure, axis = plt.subplots(figsize=(10, 6.5))
    for index, name in enumerate(classes):
        rows = labels == index
        if not np.any(rows):
            continue
        axis.scatter(coordinates[rows, 0], coordinates[rows, 1], s=14, alpha=0.8,
                     color=palette(index % 20), marker=markers[(index // 20) % len(markers)],
                     label=f'{index + 1}  {display_name(name)} ({int(rows.sum())})',
                     linewidths=0)
        # The class number at the class's median point: neighbouring tab20 colours are alike.
        centre = np.median(coordinates[rows], axis=0)
        axis.annotate(str(index + 1), centre, fontsize=8, fontweight='bold', ha='center',
                      va='center', color='black',
                      bbox={'boxstyle': 'round,pad=0.15', 'fc': 'white', 'alpha': 0.6,
                            'lw': 0})
    axis.set_title(title)
    axis.set_xlabel(axis_labels[0])
    axis.set_ylabel(axis_labels[1])
    axis.grid(alpha=0.25)
    axis.legend(loc='upper left', bbox_to_anchor=(1.01, 1.0), fontsize=7, frameon=False,
                markerscale=1.4)
    figure.tight_layout()
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    figure.savefig(path, dpi=100)
    plt.close(figure)
    return path


@dataclass
class EmbedResult:
    """The projections, the overlap list and where the files went."""

    classes: list[str]
    labels: np.ndarray
    files: list[str]
    pca: np.ndarray
    pca_variance: np.ndarray
    tsne: np.ndarray | None
    tsne_method: str | None
    overlaps: list[Overlap]
    purity: dict[str, float]
    outputs: dict[str, Path] = field(default_factory=dict)


def embed_features(features: np.ndarray, labels: np.ndarray, classes: Sequence[str],
                   files: Sequence[str] = (), *, out_dir: str | os.PathLike | None = None,
                   k: int = 10, perplexity: float = 30.0, seed: int = 0,
                   with_tsne: bool = True, tsne_method: str = 'auto',
                   title: str = '', keras_path: str | os.PathLike | None = None,
                   ) -> EmbedResult:
    """Project features with PCA and t-SNE, find the overlapping classes, write the files.

    With ``out_dir``: ``pca.png``, ``tsne.png``, ``overlap.json`` and ``embedding.npz``
    (2-D coordinates, labels and file names). ``overlap.json`` records the Keras model
    the features came from (``keras_path``: its path and sha256; None when unknown) and
    whether t-SNE was made (``tsne``); a ``tsne.png`` of an earlier embedding that this
    one does not replace is removed, so the folder never shows another embedding's.
    """
    labels = np.asarray(labels, dtype=np.int64)
    classes = list(classes)
    projected, variance = pca(features, 2)
    embedded, method = (tsne(features, perplexity, seed, tsne_method)
                        if with_tsne and len(labels) >= 3 else (None, None))
    overlaps, purity = neighbourhood_overlap(features, labels, classes, k)
    result = EmbedResult(classes=classes, labels=labels, files=list(files), pca=projected,
                         pca_variance=variance, tsne=embedded, tsne_method=method,
                         overlaps=overlaps, purity=purity)
    if out_dir is None:
        return result
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    suffix = f' — {title}' if title else ''
    result.outputs['pca'] = plot_embedding(
        projected, labels, classes, out / PCA_FILENAME,
        f'PCA of the penultimate features{suffix}',
        (f'PC1 ({100 * variance[0]:.1f} % of variance)',
         f'PC2 ({100 * variance[1]:.1f} % of variance)' if len(variance) > 1 else 'PC2'))
    if embedded is not None:
        result.outputs['tsne'] = plot_embedding(
            embedded, labels, classes, out / TSNE_FILENAME,
            f't-SNE of the penultimate features{suffix}', ('t-SNE 1', 't-SNE 2'))
    else:
        (out / TSNE_FILENAME).unlink(missing_ok=True)  # an earlier embedding's
    present = np.bincount(labels, minlength=len(classes))
    document = {
        'photos': int(len(labels)),
        'classes': classes,
        'photos_per_class': {name: int(present[i]) for i, name in enumerate(classes)},
        'feature_dimensions': int(np.asarray(features).shape[1]),
        'k': int(min(k, max(len(labels) - 1, 0))),
        'distance': 'cosine',
        'pca_variance_ratio': [round(float(value), 4) for value in variance],
        'tsne': method,
        # Which model's features: a report shows an embedding only beside its own model.
        'keras_model': None if keras_path is None else str(keras_path),
        'keras_model_sha256': None if keras_path is None else sha256_of(keras_path),
        'pairs': [pair.as_dict() for pair in overlaps],
        'purity': purity,
    }
    result.outputs['overlap'] = out / OVERLAP_FILENAME
    result.outputs['overlap'].write_text(json.dumps(document, indent=1) + '\n')
    result.outputs['coordinates'] = out / COORDINATES_FILENAME
    np.savez_compressed(result.outputs['coordinates'], pca=projected,
                        tsne=embedded if embedded is not None else np.zeros((0, 2)),
                        labels=labels, classes=np.array(classes, dtype=str),
                        files=np.array(list(files), dtype=str))
    return result


def embed_dataset(dataset: str | os.PathLike, *, keras_path: str | os.PathLike | None,
                  split_manifest: str | os.PathLike | None = None, split: str = 'test',
                  per_class: int | None = 30, out_dir: str | os.PathLike | None = None,
                  k: int = 10, perplexity: float = 30.0, seed: int = 0,
                  with_tsne: bool = True, tsne_method: str = 'auto',
                  cache_dir: str | None = None,
                  progress: ProgressCallback | None = None,
                  keras_model=None, only_if_root: bool = False) -> EmbedResult:
    """Decode a dataset's photos, take the Keras model's ``pool`` features and embed them.

    ``keras_model`` passes an already loaded model instead of ``keras_path``. With
    ``only_if_root`` the split manifest is used only when ``dataset`` is its folder (see
    :func:`select_photos`); which photos are used is printed.
    """
    from plant_disease_ros.training.explain import load_keras_model

    chosen = select_photos(dataset, split_manifest, split, per_class, seed, only_if_root)
    print(chosen.description, file=sys.stderr, flush=True)
    root, classes, files = chosen.root, chosen.classes, chosen.files
    model = keras_model if keras_model is not None else load_keras_model(keras_path)
    size = int(model.input_shape[1])
    images, labels, unreadable = load_images(root, files, size, cache_dir=cache_dir,
                                             progress=progress)
    if unreadable:
        print(f'skipped {len(unreadable)} unreadable photos', file=sys.stderr)
    if len(images) < 2:
        raise DatasetError(f'only {len(images)} readable photos: need two or more')
    outputs = int(model.output_shape[-1])
    if outputs != len(classes):
        print(f'note: the model has {outputs} outputs and the dataset {len(classes)} classes; '
              'the pictures are coloured by the dataset classes', file=sys.stderr)
    features = extract_features(model, images)
    kept = [path for path, _ in files if path not in set(unreadable)]
    where = f'{len(images)} photos'
    if chosen.split_applied:
        where += f' of the {split} split'
    return embed_features(features, labels, classes, kept, out_dir=out_dir, k=k,
                          perplexity=perplexity, seed=seed, with_tsne=with_tsne,
                          tsne_method=tsne_method, title=where,
                          keras_path=keras_path if keras_model is None else None)


def format_overlaps(overlaps: Sequence[Overlap], count: int = 10) -> str:
    """Return the ``count`` most overlapping pairs as aligned text lines."""
    if not overlaps:
        return 'no two classes share neighbourhoods'
    lines = ['classes whose neighbourhoods overlap most (share of k-NN from the other class):']
    for pair in overlaps[:count]:
        lines.append(f'  {100 * pair.overlap:5.1f} %  {pair.first} <-> {pair.second} '
                     f'({100 * pair.first_to_second:.0f} % / {100 * pair.second_to_first:.0f} %)')
    return '\n'.join(lines)
