"""cell_glyph: cells with a disease are cylinders, healthy ones spheres; size, colour and
caption follow the cell's most severe label, as the grid's; colours follow the labels."""

from __future__ import annotations

import math

import pytest

from plant_disease_ros.core.map_grid import Cell
from plant_disease_ros.core.map_markers import (
    cell_caption,
    cell_glyph,
    cell_height_m,
    CYLINDER,
    map_palette,
    SPHERE,
)
from plant_disease_ros.core.map_render import label_colours, LabelPalette

LATE_BLIGHT = 'Tomato___Late_blight'
HEALTHY = 'Tomato___healthy'


def cell(label: str, healthy: bool, count: int = 1, confidence: float = 0.8,
         diseased: int = 0) -> Cell:
    """Return a cell of ``count`` detections of ``label`` (``diseased`` of them late blight
    in a healthy cell), its most confident one ``label``."""
    counts = {label: count - diseased, LATE_BLIGHT: diseased} if diseased else {label: count}
    return Cell(key=(1, 2), centre_e=3.0, centre_n=5.0, count=count,
                max_confidence=confidence, label=label, healthy=healthy,
                diseased_count=count if not healthy else diseased, label_counts=counts)


def test_diseased_cell_is_a_cylinder_growing_with_the_count() -> None:
    palette = LabelPalette()
    one = cell_glyph(cell(LATE_BLIGHT, False, count=1), 2.0, palette)
    many = cell_glyph(cell(LATE_BLIGHT, False, count=8), 2.0, palette)
    assert one.shape == many.shape == CYLINDER
    assert (one.east_m, one.north_m) == (3.0, 5.0)
    assert one.width_m == pytest.approx(1.6)
    assert one.height_m == pytest.approx(0.5)
    assert many.height_m == pytest.approx(2.0)
    assert cell_height_m(cell(LATE_BLIGHT, False, count=10**6), 2.0) == pytest.approx(4.0)
    assert one.rgba[:3] == palette.rgb(LATE_BLIGHT, False)
    assert one.caption_z_m == pytest.approx(one.height_m + 0.6)
    assert one.caption_height_m == pytest.approx(0.6)


def test_healthy_cell_is_a_sphere() -> None:
    glyph = cell_glyph(cell(HEALTHY, True, count=4), 2.0, LabelPalette())
    assert glyph.shape == SPHERE
    assert glyph.width_m == glyph.height_m == pytest.approx(2.0 * (0.35 + 0.1 * math.log2(4)))


@pytest.mark.parametrize(('confidence', 'alpha'), [(0.0, 0.35), (1.0, 0.95), (2.0, 0.95),
                                                   (-1.0, 0.35)])
def test_opacity_follows_the_confidence(confidence: float, alpha: float) -> None:
    glyph = cell_glyph(cell(LATE_BLIGHT, False, confidence=confidence), 1.0, LabelPalette())
    assert glyph.rgba[3] == pytest.approx(alpha)


def test_caption() -> None:
    assert cell_caption(cell(LATE_BLIGHT, False, count=3, confidence=0.912)) == \
        'Tomato: Late blight\n3x, max 0.91\n(3/3 diseased)'
    assert cell_caption(cell(HEALTHY, True, count=3)) == 'Tomato: healthy\n3x, max 0.80'


def test_a_cell_with_a_disease_is_drawn_and_named_by_it() -> None:
    # 4 healthy detections, the most confident of them, and 1 of late blight: the grid
    # names the cell by the blight (most_severe_label); so do the shape, colour and caption.
    mixed = cell(HEALTHY, True, count=5, diseased=1)
    palette = map_palette([HEALTHY, LATE_BLIGHT])
    glyph = cell_glyph(mixed, 2.0, palette)
    assert glyph.shape == CYLINDER
    assert glyph.rgba[:3] == palette.rgb(LATE_BLIGHT)
    assert glyph.caption == 'Tomato: Late blight\n5x, max 0.80\n(1/5 diseased)'


def test_a_labels_colour_does_not_depend_on_the_order_labels_came() -> None:
    labels = [LATE_BLIGHT, 'Apple___Black_rot', HEALTHY, 'Potato___Early_blight']
    first, second = map_palette(labels), map_palette(reversed(labels))
    assert all(first.rgb(label) == second.rgb(label) for label in labels)
    # The PNG's legend gives a label of the same map the same colour.
    assert all(first.colour(label) == colour
               for label, colour in label_colours(labels).items())
