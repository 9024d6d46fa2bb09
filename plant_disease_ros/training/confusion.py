"""Confusion-matrix picture."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import numpy as np


def plot_confusion_matrix(matrix: np.ndarray, classes: Sequence[str], path: str | Path,
                          title: str = 'Confusion matrix',
                          row_labels: Sequence[str] | None = None) -> Path:
    """Draw a row-normalised confusion matrix with counts into a PNG at ``path``.

    ``row_labels`` names the rows when they are not ``classes`` (kinds of non-leaf scene
    against the predicted labels, say); the matrix is then rows × classes.
    """
    import matplotlib

    matplotlib.use('Agg')
    import matplotlib.pyplot as plt

    totals = matrix.sum(axis=1, keepdims=True)
    normalised = np.divide(matrix, totals, out=np.zeros(matrix.shape, dtype=float),
                           where=totals > 0)
    rows = list(row_labels) if row_labels is not None else list(classes)
    size = max(6.0, 0.45 * len(classes) + 3.0)
    height = max(4.0, 0.45 * len(rows) + 3.0)
    figure, axis = plt.subplots(figsize=(size + 1.5, height))
    image = axis.imshow(normalised, cmap='Blues', vmin=0.0, vmax=1.0,
                        aspect='auto' if row_labels is not None else 'equal')
    short = [name.replace('___', ': ').replace('_', ' ') for name in classes]
    axis.set_xticks(range(len(classes)), short, rotation=70, ha='right', fontsize=7)
    short_rows = [name.replace('___', ': ').replace('_', ' ') for name in rows]
    axis.set_yticks(range(len(rows)), short_rows, fontsize=7)
    axis.set(xlabel='predicted', ylabel='true', title=title)
    for row in range(len(rows)):
        for column in range(len(classes)):
            if matrix[row, column]:
                colour = 'white' if normalised[row, column] > 0.6 else 'black'
                axis.text(column, row, str(matrix[row, column]), ha='center', va='center',
                          fontsize=6, color=colour)
    figure.colorbar(image, ax=axis, fraction=0.046, pad=0.04, label='fraction of true class')
    figure.tight_layout()
    path = Path(path)
    figure.savefig(path, dpi=110)
    plt.close(figure)
    return path
