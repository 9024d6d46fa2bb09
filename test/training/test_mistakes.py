"""The mistakes picture: every caption readable, none running into a neighbour's."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from plant_disease_ros.training.mistakes import plot_mistakes

# The longest labels of the model, said with a high score about an ordinary leaf.
LONG_LABELS = ('Tomato___Tomato_Yellow_Leaf_Curl_Virus',
               'Tomato___Spider_mites_Two-spotted_spider_mite',
               'Orange___Haunglongbing_(Citrus_greening)')


def real_title(frames: int) -> str:
    """Return the title field_evaluate gives the picture of ``frames`` wrong map points."""
    return (f'plantdoc: the most confident of the {frames} frames that put a wrong point on '
            'the map (score >= 0.5)')


def drawn_figure(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, frames: int) -> object:
    """Draw ``frames`` confident mistakes with long labels; return the figure drawn."""
    import matplotlib.pyplot as plt

    kept: list = []
    # Keep the figure plot_mistakes closes, to measure what it drew.
    monkeypatch.setattr(plt, 'close', kept.append)
    rows = [{'outcome': 'wrong', 'score': f'{0.99 - number / 100:.4f}',
             'truth': LONG_LABELS[(number + 1) % 3], 'published': LONG_LABELS[number % 3],
             'frame': f'field/photo_{number}.jpg'} for number in range(frames)]
    images = np.full((frames, 64, 64, 3), 128, np.uint8)
    assert plot_mistakes(images, rows, tmp_path / 'mistakes.png',
                         real_title(frames)) is not None
    figure, = kept
    return figure


@pytest.mark.parametrize('frames', [1, 2, 6, 14])
def test_mistake_captions_overlap_nothing_and_stay_in_the_picture(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch, frames: int) -> None:
    """Long labels wrap in their column and the title to the figure, also one of one or two
    frames: no caption, frame name or title overlaps another or a frame, all of them lie
    inside the figure, the whole title is drawn and each score is on its own line."""
    figure = drawn_figure(tmp_path, monkeypatch, frames)
    assert figure._suptitle.get_text().split() == real_title(frames).split()
    renderer = figure.canvas.get_renderer()
    frames_drawn = [axis for axis in figure.axes if axis.images]
    texts = [figure._suptitle, *(axis.title for axis in frames_drawn),
             *(text for axis in frames_drawn for text in axis.texts)]
    boxes = [text.get_window_extent(renderer) for text in texts]
    inside = figure.bbox
    for text, box in zip(texts, boxes, strict=True):
        assert (inside.x0 <= box.x0 and box.x1 <= inside.x1 and inside.y0 <= box.y0
                and box.y1 <= inside.y1), f'{text.get_text()!r} leaves the picture'
    for first in range(len(boxes)):
        for second in range(first + 1, len(boxes)):
            assert not boxes[first].overlaps(boxes[second]), \
                f'{texts[first].get_text()!r} overlaps {texts[second].get_text()!r}'
        for axis in frames_drawn:
            assert not boxes[first].overlaps(axis.get_window_extent(renderer)), \
                f'{texts[first].get_text()!r} overlaps a frame'
    scores = [axis.title.get_text().splitlines()[-1] for axis in frames_drawn]
    assert scores == [f'score {0.99 - number / 100:.2f}' for number in range(frames)]
