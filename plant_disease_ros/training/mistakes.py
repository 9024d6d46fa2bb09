"""The most confident mistakes of an evaluation, as a picture: what fools the model.

A confusion matrix says how often the model is wrong; a field team also wants to see
*which* frames put a wrong point on the disease map with a high score (a weed taken for a
tomato leaf, glare taken for mildew), to know what to photograph for the next fine-tune.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
import textwrap

import numpy as np

# Frames drawn per picture: the most confident wrong map points.
DEFAULT_MISTAKES = 24


def most_confident_mistakes(rows: Sequence[dict], count: int = DEFAULT_MISTAKES) -> list[int]:
    """Return the indices of the rows whose outcome is ``wrong``, highest score first."""
    wrong = [index for index, row in enumerate(rows) if row['outcome'] == 'wrong']
    return sorted(wrong, key=lambda index: -float(rows[index]['score']))[:max(0, count)]


def _short(label: str) -> str:
    return label.replace('___', ': ').replace('_', ' ')


# Caption layout: a column is COLUMN_IN wide and its caption lines hold CAPTION_CHARS
# characters of CAPTION_PT text, so a long label wraps instead of running into the
# neighbouring caption (DejaVu Sans averages about 0.55 em a character).
COLUMN_IN = 2.1
CAPTION_PT = 6.5
CAPTION_CHARS = 32
LINE_IN = CAPTION_PT * 1.25 / 72
# The title: TITLE_PT text wrapped to the figure's width (about 0.6 em a character, to be
# safe), in a figure at least MIN_WIDTH_IN wide, so that a picture of one or two frames
# still has room for a few title lines.
TITLE_PT = 9
TITLE_CHAR_IN = TITLE_PT * 0.6 / 72
MIN_WIDTH_IN = 4.8


def caption(truth: str, published: str, score: float) -> str:
    """Return a frame's caption: truth, published label and score, wrapped to its column.

    The score has its own line, so a long label never hides it.
    """
    lines = [*textwrap.wrap(f'true: {_short(truth)}', CAPTION_CHARS, break_on_hyphens=False),
             *textwrap.wrap(f'said: {_short(published)}', CAPTION_CHARS,
                            break_on_hyphens=False),
             f'score {score:.2f}']
    return '\n'.join(lines)


def wrapped_title(title: str, width_in: float) -> str:
    """Return ``title`` wrapped to lines that fit a figure ``width_in`` inches wide."""
    characters = max(16, int((width_in - 0.3) / TITLE_CHAR_IN))
    return '\n'.join(textwrap.wrap(title, characters, break_on_hyphens=False)) or title


def plot_mistakes(images: np.ndarray, rows: Sequence[dict], path: str | Path, title: str,
                  count: int = DEFAULT_MISTAKES, columns: int = 6) -> Path | None:
    """Draw the most confident wrong map points as a grid of frames with their captions.

    ``images``: the frames as the model saw them (N × H × W × 3 uint8), in the order of
    ``rows`` (:func:`~plant_disease_ros.training.field_evaluate.prediction_rows`). Each
    frame is captioned with its truth, the published label and the score, wrapped to the
    column. ``title`` is wrapped to the figure, at least :data:`MIN_WIDTH_IN` wide so that
    the title of one or two frames has room. Returns the path, or None (no file) when no
    frame is a wrong map point.
    """
    if len(images) != len(rows):
        raise ValueError(f'{len(images)} images for {len(rows)} prediction rows')
    chosen = most_confident_mistakes(rows, count)
    if not chosen:
        return None
    import matplotlib

    matplotlib.use('Agg')
    import matplotlib.pyplot as plt

    captions = [caption(rows[index]['truth'], rows[index]['published'],
                        float(rows[index]['score'])) for index in chosen]
    columns = max(1, min(columns, len(chosen)))
    lines = -(-len(chosen) // columns)
    # Each grid row: the frame, its tallest caption above and the frame name below.
    caption_in = max(text.count('\n') + 1 for text in captions) * LINE_IN
    row_in = COLUMN_IN + caption_in + 0.35
    width_in = max(MIN_WIDTH_IN, COLUMN_IN * columns)
    title = wrapped_title(title, width_in)
    title_in = (title.count('\n') + 1) * TITLE_PT * 1.25 / 72
    figure, axes = plt.subplots(lines, columns, squeeze=False,
                                figsize=(width_in, row_in * lines + title_in + 0.35))
    for axis in axes.ravel():
        axis.axis('off')
    for axis, index, text in zip(axes.ravel(), chosen, captions, strict=False):
        axis.imshow(images[index])
        axis.set_title(text, fontsize=CAPTION_PT, linespacing=1.15)
        axis.text(0.5, -0.04, Path(rows[index]['frame']).name[:28], transform=axis.transAxes,
                  ha='center', va='top', fontsize=5.5, color='dimgray')
    figure.suptitle(title, fontsize=TITLE_PT)
    figure.tight_layout()
    path = Path(path)
    figure.savefig(path, dpi=100)
    plt.close(figure)
    return path
