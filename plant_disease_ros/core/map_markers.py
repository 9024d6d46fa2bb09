"""How a map cell is drawn in 3-D: shape, size, colour and caption (no ROS types).

A cell with a disease detection is a cylinder coloured by its most severe label (the
disease detected most often there, as the grid's ``most_severe_label``), a cell of
healthy detections only a sphere coloured by its most frequent label; the size grows with
the log of the detection count and the opacity with the highest confidence, so busy,
certain cells stand out. Colours come from a :class:`LabelPalette` given the map's labels
in alphabetical order (:func:`map_palette`), as the PNG map's legend has them, so a
label's colour depends on the labels on the map, not on the order detections came in.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
import math

from plant_disease_ros.core.labels import display_name
from plant_disease_ros.core.map_gis import most_severe_label
from plant_disease_ros.core.map_grid import Cell
from plant_disease_ros.core.map_render import LabelPalette

SPHERE = 'sphere'
CYLINDER = 'cylinder'


@dataclass(frozen=True)
class CellGlyph:
    """The shape of one cell at its centre (ENU metres) and the caption above it."""

    shape: str                                  # SPHERE or CYLINDER
    east_m: float
    north_m: float
    width_m: float                              # diameter (sphere) or cylinder width
    height_m: float                             # the top of the shape above the ground
    rgba: tuple[float, float, float, float]
    caption: str
    caption_z_m: float
    caption_height_m: float


def cell_height_m(cell: Cell, cell_size_m: float) -> float:
    """Return a cylinder height that grows with the log of the cell's detection count."""
    return cell_size_m * min(2.0, 0.25 + 0.25 * math.log2(max(cell.count, 1)))


def map_palette(labels: Iterable[str]) -> LabelPalette:
    """Return the palette of a map holding ``labels``: colours in alphabetical label order.

    The PNG map (``core.map_render``) gives its legend the same colours.
    """
    return LabelPalette(sorted(set(labels)))


def cell_shown_label(cell: Cell) -> str:
    """Return the label a cell is drawn and named by: its most severe, else most frequent."""
    return most_severe_label(cell) or cell.majority_label


def cell_caption(cell: Cell) -> str:
    """Return the caption of a cell: its label, counts and highest confidence."""
    caption = (f'{display_name(cell_shown_label(cell))}\n{cell.count}x, '
               f'max {cell.max_confidence:.2f}')
    if cell.diseased_count:
        caption += f'\n({cell.diseased_count}/{cell.count} diseased)'
    return caption


def cell_glyph(cell: Cell, cell_size_m: float, palette: LabelPalette) -> CellGlyph:
    """Return how ``cell`` is drawn on a grid of ``cell_size_m`` cells."""
    if not cell.diseased_count:
        shape = SPHERE
        width = cell_size_m * min(0.9, 0.35 + 0.1 * math.log2(cell.count))
        height = width
    else:
        shape = CYLINDER
        width = 0.8 * cell_size_m
        height = cell_height_m(cell, cell_size_m)
    red, green, blue = palette.rgb(cell_shown_label(cell))
    alpha = 0.35 + 0.6 * min(max(cell.max_confidence, 0.0), 1.0)
    return CellGlyph(shape=shape, east_m=cell.centre_e, north_m=cell.centre_n,
                     width_m=width, height_m=height, rgba=(red, green, blue, alpha),
                     caption=cell_caption(cell), caption_z_m=height + 0.3 * cell_size_m,
                     caption_height_m=0.3 * cell_size_m)
