"""``plant-disease embed``: PCA and t-SNE pictures of the penultimate features of photos."""

from __future__ import annotations

import argparse
from pathlib import Path
import sys


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Declare the ``embed`` options."""
    parser.add_argument('dataset', metavar='DATASET',
                        help='photo folder laid out as <class>/<image>')
    parser.add_argument('--keras', default=None,
                        help='float Keras model (default: plant_disease_float.keras beside '
                             'the shipped int8 model)')
    parser.add_argument('--split-manifest', default=None,
                        help='split.json whose --split part to use (default: split.json '
                             'beside the shipped model, when DATASET is the folder it splits; '
                             'else every photo of DATASET)')
    parser.add_argument('--split', default='test', choices=('train', 'val', 'test'))
    parser.add_argument('--all-photos', action='store_true',
                        help='ignore any split manifest and use every photo of DATASET')
    parser.add_argument('--per-class', type=int, default=30,
                        help='photos per class (0 = all of them)')
    parser.add_argument('--k', type=int, default=10, help='neighbours for the overlap list')
    parser.add_argument('--perplexity', type=float, default=30.0, help='t-SNE perplexity')
    parser.add_argument('--no-tsne', action='store_true', help='PCA only (faster)')
    parser.add_argument('--tsne', choices=('auto', 'numpy', 'sklearn'), default='auto',
                        help='t-SNE implementation: exact numpy, scikit-learn Barnes-Hut, or '
                             'auto (numpy up to 1500 photos)')
    parser.add_argument('--top', type=int, default=10, help='overlapping pairs to print')
    parser.add_argument('--seed', type=int, default=0)
    parser.add_argument('--cache-dir', default=None,
                        help='cache of decoded photos (as for train; default: none)')
    parser.add_argument('--out', default='outputs/embedding',
                        help='folder for pca.png, tsne.png, overlap.json, embedding.npz')


def _split_manifest(args: argparse.Namespace) -> tuple[Path | None, bool]:
    """Return ``(manifest or None, whether it applies only when DATASET is its folder)``.

    A manifest named with ``--split-manifest`` always applies; the shipped model's
    ``split.json`` only to the folder it splits (any other folder's photos are not in it).
    """
    if args.all_photos:
        return None, False
    if args.split_manifest:
        return Path(args.split_manifest), False
    from plant_disease_ros.core.classifier import default_model_path

    shipped = default_model_path().parent / 'split.json'
    return (shipped, True) if shipped.is_file() else (None, False)


def run(args: argparse.Namespace) -> int:
    """Embed the photos, write the pictures and print the most overlapping classes."""
    from plant_disease_ros.training.dataset import print_progress
    from plant_disease_ros.training.embed import embed_dataset, format_overlaps
    from plant_disease_ros.training.explain import default_keras_path

    if args.k < 1:
        raise ValueError(f'--k must be >= 1, got {args.k}')
    manifest, only_if_root = _split_manifest(args)
    result = embed_dataset(
        args.dataset, keras_path=args.keras or default_keras_path(), split_manifest=manifest,
        split=args.split, per_class=args.per_class or None, out_dir=args.out, k=args.k,
        perplexity=args.perplexity, seed=args.seed, with_tsne=not args.no_tsne,
        tsne_method=args.tsne, cache_dir=args.cache_dir,
        progress=print_progress('decoding photos'), only_if_root=only_if_root)
    print(format_overlaps(result.overlaps, args.top))
    variance = ', '.join(f'{100 * value:.1f} %' for value in result.pca_variance)
    print(f'{len(result.labels)} photos, {len(result.classes)} classes; PCA variance '
          f'explained by 2 axes: {variance}; t-SNE: {result.tsne_method or "skipped"}')
    print('written: ' + ', '.join(str(path) for path in result.outputs.values()),
          file=sys.stderr)
    return 0
