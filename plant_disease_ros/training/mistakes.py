"""The most confident mistakes of an evaluation, as a picture: what fools the model.

A confusion matrix says how often the model is wrong; a field team also wants to see
*which* frames put a wrong point on the disease map with a high score (a weed taken for a
tomato leaf, glare taken for mildew), to know what to photograph for the next fine-tune.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import numpy as np

# Frames drawn per picture: the most confident wrong map points.
DEFAULT_MISTAKES = 24


def most_confident_mistakes(rows: Sequence[dict], count: int = DEFAULT_MISTAKES) -> list[int]:
    """Return the indices of the rows whose outcome is ``wrong``, highest score first."""
    wrong = [index for index, row in enumerate(rows) if row['outcome'] == 'wrong']
    return sorted(wrong, key=lambda index: -float(rows[index]['score']))[:max(0, count)]


def _short(label: str) -> str:
    return label.replace('___', ': ').replace('_', ' ')


def plot_mistakes(images: np.ndarray, rows: Sequence[dict], path: str | Path, title: str,
                  count: int = DEFAULT_MISTAKES, columns: int = 6) -> Path | None:
    """Draw the most confident wrong map points as a grid of frames with their captions.

    ``images``: the frames as the model saw them (N × H × W × 3 uint8), in the order of
    ``rows`` (:func:`~plant_disease_ros.training.field_evaluate.prediction_rows`). Each
    frame is captioned with its truth, the published label and the score. Returns the
    path, or None (no file) when no frame is a wrong map point.
    """
    if len(images) != len(rows):
        raise ValueError(f'{len(images)} images for {len(rows)} prediction rows')
    chosen = most_confident_mistakes(rows, count)
    if not chosen:
        return None
    import matplotlib

    matplotlib.use('Agg')
    import matplotlib.pyplot as plt

    columns = max(1, min(columns, len(chosen)))
    lines = -(-len(chosen) // columns)
    figure, axes = plt.subplots(lines, columns, figsize=(2.1 * columns, 2.55 * lines + 0.5),
                                squeeze=False)
    for axis in axes.ravel():
        axis.axis('off')
    for axis, index in zip(axes.ravel(), chosen, strict=False):
        row = rows[index]
        axis.imshow(images[index])
        axis.set_title(f'true: {_short(row["truth"])}\nsaid: {_short(row["published"])} '
                       f'{float(row["score"]):.2f}', fontsize=6.5)
        axis.text(0.5, -0.04, Path(row['frame']).name[:28], transform=axis.transAxes,
                  ha='center', va='top', fontsize=5.5, color='dimgray')
    figure.suptitle(title, fontsize=9)
    figure.tight_layout()
    path = Path(path)
    figure.savefig(path, dpi=100)
    plt.close(figure)
    return path
