"""The disease grid for GIS: one polygon per map cell, as GeoJSON and as a GeoPackage.

Each grid cell with detections (see ``core.map_grid``) becomes a Feature whose geometry is
the cell's square, its corners taken from the local ENU frame back to WGS84 longitude and
latitude, and whose properties are the cell's counts: detections, diseased and healthy,
one ``n_<label>`` column per label seen in the run, the incidence (diseased / all
classified detections in the cell) and the most severe label. QGIS and farm-management
software open both files directly.

The GeoJSON needs nothing but the standard library. The GeoPackage is written by GDAL
through ``pyogrio`` (the ``tools`` extra), imported only when one is written: this module
imports without it and :func:`write_grid_geopackage` then raises :class:`GisUnavailable`
with the install command.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
import struct
from typing import Any

from plant_disease_ros.core.geodesy import enu_to_geodetic
from plant_disease_ros.core.labels import display_name, is_healthy
from plant_disease_ros.core.map_file import feature_collection, write_json_atomic
from plant_disease_ros.core.map_grid import Cell, CellAggregator, Origin

GRID_LAYER = 'disease_grid'
GRID_SUFFIX = '_grid'
LABEL_COUNT_PREFIX = 'n_'
# The columns every cell has, in file order; the per-label counts follow them.
GRID_COLUMNS = ('cell_e', 'cell_n', 'cell_size_m', 'detections', 'diseased', 'healthy',
                'incidence', 'most_severe_label', 'top_label', 'max_confidence', 'name')
_WKB_POLYGON = 3


class GisUnavailable(RuntimeError):
    """The GeoPackage writer's library (pyogrio) is not installed."""


def most_severe_label(cell: Cell) -> str:
    """Return the disease found most often in ``cell``; '' when every detection is healthy.

    The labels carry no severity scale, so the disease with the most detections in the
    cell stands for it; a tie goes to the label first in alphabetical order, so that the
    answer does not depend on the order the detections came in.
    """
    diseased = [(count, label) for label, count in cell.label_counts.items()
                if not is_healthy(label)]
    if not diseased:
        return ''
    return min(diseased, key=lambda item: (-item[0], item[1]))[1]


def cell_ring(cell: Cell, cell_size_m: float, origin: Origin) -> list[list[float]]:
    """Return the cell's square as a closed counter-clockwise ring of [lon, lat] corners.

    The longitudes are kept continuous: each corner is taken within 180 degrees of the
    first one (in [-180, 180]). A cell straddling the antimeridian therefore has corners
    slightly beyond 180 (or -180), e.g. 179.99999 and 180.000009, instead of a ring that
    jumps to -179.999991 and spans the whole globe. RFC 7946 (3.1.9) would rather cut
    such a polygon in two; a cell is metres wide, GIS software draws the unwrapped square
    correctly, and every cell stays one Polygon.
    """
    east, north = cell.centre_e - cell_size_m / 2.0, cell.centre_n - cell_size_m / 2.0
    corners = [(east, north), (east + cell_size_m, north),
               (east + cell_size_m, north + cell_size_m), (east, north + cell_size_m)]
    ring: list[list[float]] = []
    for e, n in corners + corners[:1]:
        latitude, longitude, _ = enu_to_geodetic(e, n, 0.0, *origin)
        if ring:
            first = ring[0][0]
            if longitude - first > 180.0:
                longitude -= 360.0
            elif longitude - first < -180.0:
                longitude += 360.0
        ring.append([longitude, latitude])
    return ring


class CellCache:
    """Cells' features already built, for a map published again after each change.

    A cell's ring depends only on its key, the cell size and the origin, and its feature
    changes only when a detection is added to it (its count grows) or the run gets a new
    label (a new ``n_<label>`` column): on a large map :func:`aggregator_features` would
    otherwise build every cell again for one new detection.
    """

    def __init__(self) -> None:
        """Start empty."""
        self._grid: tuple[float, tuple[float, ...]] | None = None
        self._labels: tuple[str, ...] = ()
        self._rings: dict[tuple[int, int], list[list[float]]] = {}
        self._features: dict[tuple[int, int], tuple[int, dict]] = {}  # key -> (count, feature)

    def features(self, cells: Iterable[Cell], cell_size_m: float, origin: Origin,
                 labels: tuple[str, ...]) -> list[dict]:
        """Return :func:`cell_feature` of each cell, building only those that changed."""
        grid = (float(cell_size_m), tuple(origin))
        if grid != self._grid:
            self._grid, self._rings, self._features = grid, {}, {}
        if labels != self._labels:
            self._labels, self._features = labels, {}
        built = []
        for cell in cells:
            cached = self._features.get(cell.key)
            if cached is None or cached[0] != cell.count:
                ring = self._rings.get(cell.key)
                if ring is None:
                    ring = self._rings[cell.key] = cell_ring(cell, cell_size_m, origin)
                cached = self._features[cell.key] = (
                    cell.count, cell_feature(cell, cell_size_m, origin, labels, ring))
            built.append(cached[1])
        return built


def cell_feature(cell: Cell, cell_size_m: float, origin: Origin,
                 labels: Iterable[str], ring: list[list[float]] | None = None) -> dict:
    """Return the GeoJSON Feature of one cell, with an ``n_<label>`` count per label.

    ``ring``: the cell's :func:`cell_ring`, when already known.
    """
    worst = most_severe_label(cell)
    incidence = cell.diseased_count / cell.count if cell.count else 0.0
    name = (f'{display_name(worst)}: {cell.diseased_count}/{cell.count} diseased' if worst
            else f'healthy: {cell.count} detection(s)')
    properties: dict[str, Any] = {
        'cell_e': int(cell.key[0]),
        'cell_n': int(cell.key[1]),
        'cell_size_m': float(cell_size_m),
        'detections': int(cell.count),
        'diseased': int(cell.diseased_count),
        'healthy': int(cell.count - cell.diseased_count),
        'incidence': float(incidence),
        'most_severe_label': worst,
        'top_label': cell.label,
        'max_confidence': float(cell.max_confidence),
        'name': name,
    }
    for label in labels:
        properties[LABEL_COUNT_PREFIX + label] = int(cell.label_counts.get(label, 0))
    return {'type': 'Feature',
            'geometry': {'type': 'Polygon', 'coordinates': [
                ring if ring is not None else cell_ring(cell, cell_size_m, origin)]},
            'properties': properties}


def aggregator_features(aggregator: CellAggregator,
                        cache: CellCache | None = None) -> list[dict]:
    """Return one polygon Feature per cell of ``aggregator`` (none before it has an origin).

    ``cache`` keeps the cells' features from one call to the next (the returned features
    are then shared with it: read them, do not change them).
    """
    origin = aggregator.origin
    if origin is None:
        return []
    cells = aggregator.cells()
    labels = tuple(sorted({label for cell in cells for label in cell.label_counts}))
    size = aggregator.cell_size_m
    if cache is None:
        return [cell_feature(cell, size, origin, labels) for cell in cells]
    return cache.features(cells, size, origin, labels)


def grid_features(features: Iterable[dict], cell_size_m: float,
                  origin: Origin | None = None) -> list[dict]:
    """Aggregate detection Features in cells of ``cell_size_m``; return one polygon per cell.

    The cells are those of ``core.map_grid``: squares in the ENU frame of ``origin``, or
    of the first located detection. Detections without a position are left out.
    """
    aggregator = CellAggregator(cell_size_m, origin)
    for feature in features:
        aggregator.add(feature)
    return aggregator_features(aggregator)


def write_grid_geojson(path: str | Path, cells: list[dict]) -> Path:
    """Write the cell Features as a GeoJSON FeatureCollection (atomically); return the path."""
    return write_json_atomic(path, feature_collection(cells))


def _polygon_wkb(ring: list[list[float]]) -> bytes:
    """Return the little-endian WKB of a polygon with one ring of [x, y] points."""
    header = struct.pack('<BIII', 1, _WKB_POLYGON, 1, len(ring))
    return header + b''.join(struct.pack('<dd', x, y) for x, y in ring)


def grid_columns(cells: list[dict]) -> list[str]:
    """Return the column names of the grid: the fixed ones, then ``n_<label>`` sorted."""
    counts = sorted({name for cell in cells for name in cell['properties']
                     if name.startswith(LABEL_COUNT_PREFIX)})
    return list(GRID_COLUMNS) + counts


def write_grid_geopackage(path: str | Path, cells: list[dict], layer: str = GRID_LAYER) -> Path:
    """Write the cell Features as layer ``layer`` of a GeoPackage (EPSG:4326); return the path.

    Raises GisUnavailable without pyogrio, ValueError for an empty grid (a GeoPackage
    layer needs its columns, which come from the cells).
    """
    try:
        import numpy as np
        import pyogrio.raw
    except ImportError as error:
        raise GisUnavailable(
            f'writing a GeoPackage needs pyogrio ({error}); install it with '
            "pip install 'plant_disease_ros[tools]' or pip install pyogrio") from error
    if not cells:
        raise ValueError('the grid has no cells: no located detection')
    columns = grid_columns(cells)
    values = {name: [cell['properties'].get(name, 0) for cell in cells] for name in columns}
    field_data = []
    for name in columns:
        sample = values[name][0]
        if isinstance(sample, str):
            field_data.append(np.array(values[name], dtype=object))
        elif isinstance(sample, float):
            field_data.append(np.array(values[name], dtype=np.float64))
        else:
            field_data.append(np.array(values[name], dtype=np.int64))
    geometry = np.array([_polygon_wkb(cell['geometry']['coordinates'][0]) for cell in cells],
                        dtype=object)
    target = Path(path)
    target.parent.mkdir(parents=True, exist_ok=True)
    # GDAL refuses to create a GeoPackage over an existing file; write a fresh one beside
    # it and move it into place, so that a reader never sees a half-written file.
    partial = target.with_name(target.name + '.partial.gpkg')
    partial.unlink(missing_ok=True)
    pyogrio.raw.write(partial, geometry, field_data, columns, layer=layer, driver='GPKG',
                      geometry_type='Polygon', crs='EPSG:4326')
    partial.replace(target)
    return target


@dataclass(frozen=True)
class GridFiles:
    """Where :func:`write_grid_files` wrote the grid, and why a file is missing."""

    geojson: Path
    geopackage: Path | None
    cells: int
    warning: str = ''


def write_grid_files(cells: list[dict], stem: str | Path) -> GridFiles:
    """Write ``<stem>_grid.geojson`` and ``<stem>_grid.gpkg``; return their paths.

    The GeoJSON is always written (an empty collection when no detection was located);
    the GeoPackage needs at least one cell and pyogrio, else ``warning`` says why it is
    missing.
    """
    stem = Path(stem)
    geojson = write_grid_geojson(stem.with_name(stem.name + GRID_SUFFIX + '.geojson'), cells)
    if not cells:
        return GridFiles(geojson, None, 0, 'no located detection: no GeoPackage written')
    try:
        geopackage = write_grid_geopackage(stem.with_name(stem.name + GRID_SUFFIX + '.gpkg'),
                                           cells)
    except GisUnavailable as error:
        return GridFiles(geojson, None, len(cells), str(error))
    return GridFiles(geojson, geopackage, len(cells))
