"""The map grid: square cells in a local ENU frame, per-cell aggregates and run summaries.

Cells are squares of ``cell_size_m`` in the local ENU frame of an origin: a given datum,
or else the first located feature. Cell ``(i, j)`` is centred on east ``i * size``, north
``j * size``: it covers east in ``[i - 1/2, i + 1/2) * size`` and north likewise, so the
origin (often the first detection) lies in the middle of a cell, not on the corner where
four cells meet and GPS noise of a few cm would split one plant among them. A detection
without altitude (a 2-D position ``[lon, lat]``) is taken at altitude 0 (see
``core.detections.feature_position``), also when it becomes the origin. A detection's
cell depends on its latitude and longitude only: it is placed at the origin's altitude
first, since the tangent plane's east and north of a point ``d`` away move by
``h * d / R`` with its altitude ``h`` (9 m for 190 m at 300 km). ``core.map_gis`` takes
the cells' corners at the origin's altitude too, so a cell's square holds its detections
at any distance.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable
from dataclasses import dataclass, field
import math

from plant_disease_ros.core.detections import (
    feature_confidence,
    feature_healthy,
    feature_label,
    feature_position,
    feature_stamp_s,
)
from plant_disease_ros.core.geodesy import geodetic_to_enu

Origin = tuple[float, float, float]  # (latitude deg, longitude deg, altitude m)
# How cells sit on the origin, as the run summary records it.
CELL_ALIGNMENT = 'centred'
CellKey = tuple[int, int]


class LocalGrid:
    """Square cells of ``cell_size_m`` in the ENU frame of ``origin`` (else first position)."""

    def __init__(self, cell_size_m: float, origin: Origin | None = None) -> None:
        """Create the grid; without ``origin`` the first located position becomes it."""
        if not (math.isfinite(cell_size_m) and cell_size_m > 0.0):
            raise ValueError(f'cell_size_m must be > 0, got {cell_size_m}')
        self.cell_size_m = float(cell_size_m)
        self.origin: Origin | None = tuple(origin) if origin is not None else None

    def enu(self, feature: dict) -> tuple[float, float, float] | None:
        """Return the feature's ENU position (m) at the origin's altitude, or ``None``.

        ``None`` when it has no geometry. Its own altitude is left out (see the module's
        description): only its latitude and longitude place it.
        """
        position = feature_position(feature)
        if position is None:
            return None
        if self.origin is None:
            self.origin = position
        return geodetic_to_enu(position[0], position[1], self.origin[2], *self.origin)

    def cell_of(self, east: float, north: float) -> CellKey:
        """Return the key of the cell holding ENU ``east, north``."""
        return (math.floor(east / self.cell_size_m + 0.5),
                math.floor(north / self.cell_size_m + 0.5))

    def centre(self, key: CellKey) -> tuple[float, float]:
        """Return the ENU east, north (m) of the centre of cell ``key``."""
        return (key[0] * self.cell_size_m, key[1] * self.cell_size_m)


@dataclass
class Cell:
    """The detections aggregated in one grid cell."""

    key: CellKey
    centre_e: float
    centre_n: float
    count: int = 0
    max_confidence: float = 0.0
    label: str = ''                    # the label of the most confident detection
    healthy: bool = True               # the most confident detection is healthy
    diseased_count: int = 0
    label_counts: dict[str, int] = field(default_factory=dict)

    @property
    def majority_label(self) -> str:
        """Return the most frequent label (the first seen on a tie)."""
        if not self.label_counts:
            return self.label
        return max(self.label_counts, key=self.label_counts.__getitem__)


class CellAggregator:
    """Aggregate located detections per grid cell: count, max confidence and its label."""

    def __init__(self, cell_size_m: float, origin: Origin | None = None) -> None:
        """Create an empty aggregator; without ``origin`` the first located feature is it."""
        self.grid = LocalGrid(cell_size_m, origin)
        self._cells: dict[CellKey, Cell] = {}

    @property
    def origin(self) -> Origin | None:
        """Return the ENU origin (``None`` until a datum or a located feature gives one)."""
        return self.grid.origin

    @property
    def cell_size_m(self) -> float:
        """Return the cell edge length in metres."""
        return self.grid.cell_size_m

    def __len__(self) -> int:
        """Return the number of cells with detections."""
        return len(self._cells)

    def add(self, feature: dict) -> Cell | None:
        """Add one detection; return its updated cell, or ``None`` when it has no position."""
        enu = self.grid.enu(feature)
        if enu is None:
            return None
        key = self.grid.cell_of(enu[0], enu[1])
        cell = self._cells.get(key)
        if cell is None:
            centre_e, centre_n = self.grid.centre(key)
            cell = Cell(key=key, centre_e=centre_e, centre_n=centre_n)
            self._cells[key] = cell
        label = feature_label(feature)
        confidence = feature_confidence(feature)
        healthy = feature_healthy(feature)
        cell.count += 1
        cell.label_counts[label] = cell.label_counts.get(label, 0) + 1
        if not healthy:
            cell.diseased_count += 1
        if cell.count == 1 or confidence > cell.max_confidence:
            cell.max_confidence = confidence
            cell.label = label
            cell.healthy = healthy
        return cell

    def cells(self) -> list[Cell]:
        """Return a snapshot of the cells in the order they were first filled."""
        return [_snapshot(cell) for cell in self._cells.values()]

    def cell(self, key: CellKey) -> Cell | None:
        """Return a snapshot of the cell ``key``, or ``None`` when it has no detection."""
        cell = self._cells.get(key)
        return None if cell is None else _snapshot(cell)


def _snapshot(cell: Cell) -> Cell:
    """Return a copy of ``cell`` that later detections do not change."""
    return Cell(key=cell.key, centre_e=cell.centre_e, centre_n=cell.centre_n,
                count=cell.count, max_confidence=cell.max_confidence, label=cell.label,
                healthy=cell.healthy, diseased_count=cell.diseased_count,
                label_counts=dict(cell.label_counts))


class MapSummary:
    """Accumulate the summary of a run one detection at a time (see :func:`summarize`)."""

    def __init__(self, cell_size_m: float, origin: Origin | None = None) -> None:
        """Create an empty summary over cells of ``cell_size_m`` from ``origin``."""
        self.grid = LocalGrid(cell_size_m, origin)
        self.detections = 0
        self.located = 0
        self.per_label: Counter[str] = Counter()
        self.fix_status: Counter[str] = Counter()
        self.diseased_detections = 0
        self.cells: set[CellKey] = set()
        self.diseased_cells: set[CellKey] = set()
        self.diseased_cells_per_label: dict[str, set[CellKey]] = {}
        self.first_stamp_s: float | None = None
        self.last_stamp_s: float | None = None

    def add(self, feature: dict) -> None:
        """Count one detection feature."""
        self.detections += 1
        label = feature_label(feature)
        self.per_label[label] += 1
        properties = feature.get('properties') or {}
        status = properties.get('fix_status')
        self.fix_status[status if isinstance(status, str) else 'unknown'] += 1
        healthy = feature_healthy(feature)
        if not healthy:
            self.diseased_detections += 1
        stamp = feature_stamp_s(feature)
        if stamp is not None:
            self.first_stamp_s = stamp if self.first_stamp_s is None else min(
                self.first_stamp_s, stamp)
            self.last_stamp_s = stamp if self.last_stamp_s is None else max(
                self.last_stamp_s, stamp)
        enu = self.grid.enu(feature)
        if enu is None:
            return
        self.located += 1
        key = self.grid.cell_of(enu[0], enu[1])
        self.cells.add(key)
        if not healthy:
            self.diseased_cells.add(key)
            self.diseased_cells_per_label.setdefault(label, set()).add(key)

    def as_dict(self) -> dict:
        """Return the summary as a JSON-ready dict."""
        origin = self.grid.origin
        return {
            'detections': self.detections,
            'located': self.located,
            'unlocated': self.detections - self.located,
            'detections_per_label': dict(sorted(self.per_label.items())),
            'healthy_detections': self.detections - self.diseased_detections,
            'diseased_detections': self.diseased_detections,
            'cell_size_m': self.grid.cell_size_m,
            # Cells centred on the origin; summaries without this key had corner-aligned
            # cells (the origin on a cell corner).
            'cell_alignment': CELL_ALIGNMENT,
            'cells': len(self.cells),
            'diseased_cells': len(self.diseased_cells),
            'diseased_cells_per_label': {
                label: len(keys) for label, keys in sorted(self.diseased_cells_per_label.items())
            },
            'fix_status': dict(sorted(self.fix_status.items())),
            'origin': None if origin is None else {
                'latitude': origin[0], 'longitude': origin[1], 'altitude': origin[2]},
            'first_stamp_s': self.first_stamp_s,
            'last_stamp_s': self.last_stamp_s,
        }


def summarize(features: Iterable[dict], cell_size_m: float,
              origin: Origin | None = None) -> dict:
    """Summarise detections: per label, diseased cells per label, located and unlocated.

    Cells are ``cell_size_m`` squares in the ENU frame of ``origin`` (latitude, longitude,
    altitude), or of the first located feature when ``origin`` is ``None``. A cell counts
    as diseased for a label when at least one detection of that (non-healthy) label lies
    in it.
    """
    summary = MapSummary(cell_size_m, origin)
    for feature in features:
        summary.add(feature)
    return summary.as_dict()
