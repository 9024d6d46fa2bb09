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

from collections.abc import Callable, Iterable
from dataclasses import dataclass
import json
from pathlib import Path
import struct
from typing import Any

from plant_disease_ros.core.atomic_files import (
    longest_temporary_name,
    replacing,
    replacing_together,
)
from plant_disease_ros.core.geodesy import enu_vertical_at_altitude
from plant_disease_ros.core.labels import display_name, is_healthy
from plant_disease_ros.core.map_file import (
    collection_text,
    compact_json,
    feature_collection,
    write_json_atomic,
)
from plant_disease_ros.core.map_grid import Cell, CellAggregator, CellKey, Origin

GRID_LAYER = 'disease_grid'
GRID_SUFFIX = '_grid'
# SQLite's rollback journal, beside the GeoPackage (its temporary) while it is written.
SQLITE_JOURNAL_SUFFIX = '-journal'
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

    A detection's cell is found from its east and north in the origin's tangent plane
    (its projection along the origin's up), so each corner is taken on that same line, at
    the origin's altitude: not at ``up = 0``, which lies ``d**2 / 2R`` above the ground
    ``d`` away and, along the local vertical there, would move the square ``d**3 / 2R**2``
    off its detections (13 m at 100 km).
    """
    east, north = cell.centre_e - cell_size_m / 2.0, cell.centre_n - cell_size_m / 2.0
    corners = [(east, north), (east + cell_size_m, north),
               (east + cell_size_m, north + cell_size_m), (east, north + cell_size_m)]
    ring: list[list[float]] = []
    for e, n in corners + corners[:1]:
        latitude, longitude = enu_vertical_at_altitude(e, n, origin[2], *origin)
        if ring:
            first = ring[0][0]
            if longitude - first > 180.0:
                longitude -= 360.0
            elif longitude - first < -180.0:
                longitude += 360.0
        ring.append([longitude, latitude])
    return ring


# A cell's encoded Feature (compact_json of cell_feature): these bytes, its geometry, these
# bytes, its properties, '}'. The geometry holds numbers and the strings "type", "Polygon",
# "coordinates": the first properties head after the feature head ends it.
_FEATURE_HEAD = b'{"type":"Feature","geometry":'
_PROPERTIES_HEAD = b',"properties":'


class CellCache:
    """Cells' features already encoded, for a map published again after each change.

    Each cell is kept as the bytes of its Feature as ``map/geojson`` carries it
    (:func:`cell_feature_text`: compact JSON, ASCII), with the detection count it was
    built at: the map's text is then those bytes joined (:func:`aggregator_geojson`), and
    a cell costs about the length of its text (375 B with two labels) instead of its
    Feature's dicts and lists (1.35 KB; ``benchmarks/results/2026-12-07-geojson-cache.md``).

    A cell's ring depends only on its key, the cell size and the origin, and its feature
    changes only when a detection is added to it (its count grows) or the run gets a new
    label (a new ``n_<label>`` column): only those cells are encoded again, their ring
    taken from their previous text. A new cell size or origin encodes every cell again.
    """

    def __init__(self) -> None:
        """Start empty."""
        self._grid: tuple[float, tuple[float, ...]] | None = None
        self._labels: tuple[str, ...] = ()
        self._texts: dict[CellKey, tuple[int, bytes]] = {}  # key -> (count, feature text)

    def __len__(self) -> int:
        """Return the number of cells kept."""
        return len(self._texts)

    def texts(self, cells: Iterable[Cell], cell_size_m: float, origin: Origin,
              labels: tuple[str, ...]) -> list[bytes]:
        """Return :func:`cell_feature_text` of each cell, encoding only those that changed.

        The bytes are shared with the cache (bytes cannot be changed).
        """
        grid = (float(cell_size_m), tuple(origin))
        if grid != self._grid:
            self._grid, self._texts = grid, {}
        previous: dict[CellKey, tuple[int, bytes]] = {}
        if labels != self._labels:
            # Every cell's columns change; their rings do not. A cell not asked for now is
            # dropped (as when the grid changes), the others' old texts freed as they go.
            self._labels, previous, self._texts = labels, self._texts, {}
        texts = self._texts
        built = []
        for cell in cells:
            cached = texts.get(cell.key)
            if cached is None or cached[0] != cell.count:
                source = cached or previous.pop(cell.key, None)
                geometry = None if source is None else _geometry_text(source[1])
                cached = texts[cell.key] = (cell.count, cell_feature_text(
                    cell, cell_size_m, origin, labels, geometry))
            built.append(cached[1])
        return built

    def features(self, cells: Iterable[Cell], cell_size_m: float, origin: Origin,
                 labels: tuple[str, ...]) -> list[dict]:
        """Return :func:`cell_feature` of each cell, decoded from :meth:`texts`.

        Equal to the features built afresh (a float's shortest repr reads back exactly);
        new dicts at each call, for readers that need them (the map's text needs none).
        """
        return [json.loads(text) for text in self.texts(cells, cell_size_m, origin, labels)]


def _geometry_text(feature_text: bytes) -> bytes:
    """Return the encoded geometry of a :func:`cell_feature_text`."""
    return feature_text[len(_FEATURE_HEAD):feature_text.index(_PROPERTIES_HEAD,
                                                              len(_FEATURE_HEAD))]


def cell_properties(cell: Cell, cell_size_m: float, labels: Iterable[str]) -> dict[str, Any]:
    """Return the properties of a cell's Feature (:data:`GRID_COLUMNS`, then the labels')."""
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
    return properties


def cell_geometry(ring: list[list[float]]) -> dict:
    """Return the GeoJSON Polygon of a cell's :func:`cell_ring`."""
    return {'type': 'Polygon', 'coordinates': [ring]}


def cell_feature(cell: Cell, cell_size_m: float, origin: Origin,
                 labels: Iterable[str], ring: list[list[float]] | None = None) -> dict:
    """Return the GeoJSON Feature of one cell, with an ``n_<label>`` count per label.

    ``ring``: the cell's :func:`cell_ring`, when already known.
    """
    return {'type': 'Feature',
            'geometry': cell_geometry(
                ring if ring is not None else cell_ring(cell, cell_size_m, origin)),
            'properties': cell_properties(cell, cell_size_m, labels)}


def cell_feature_text(cell: Cell, cell_size_m: float, origin: Origin, labels: Iterable[str],
                      geometry: bytes | None = None) -> bytes:
    """Return ``compact_json(cell_feature(...))`` as bytes: the cell as ``map/geojson`` has it.

    ``geometry``: the cell's Polygon already encoded (taken from its previous text). The
    Feature's keys are written in :func:`cell_feature`'s order, so the bytes are those of
    encoding its dict. ValueError (allow_nan) for a NaN or infinite value, as before.
    """
    if geometry is None:
        geometry = compact_json(cell_geometry(cell_ring(cell, cell_size_m, origin))).encode()
    properties = compact_json(cell_properties(cell, cell_size_m, labels)).encode()
    return b''.join((_FEATURE_HEAD, geometry, _PROPERTIES_HEAD, properties, b'}'))


def _grid_labels(cells: list[Cell]) -> tuple[str, ...]:
    """Return the labels of the ``n_<label>`` columns: every label of ``cells``, sorted."""
    return tuple(sorted({label for cell in cells for label in cell.label_counts}))


def aggregator_features(aggregator: CellAggregator,
                        cache: CellCache | None = None) -> list[dict]:
    """Return one polygon Feature per cell of ``aggregator`` (none before it has an origin).

    ``cache``: the cells' features are taken from it (only changed cells encoded, see
    :meth:`CellCache.features`); what the map's text needs is :func:`aggregator_geojson`.
    """
    origin = aggregator.origin
    if origin is None:
        return []
    cells = aggregator.cells()
    labels = _grid_labels(cells)
    size = aggregator.cell_size_m
    if cache is None:
        return [cell_feature(cell, size, origin, labels) for cell in cells]
    return cache.features(cells, size, origin, labels)


def aggregator_geojson(aggregator: CellAggregator, cache: CellCache | None = None) -> bytes:
    """Return the FeatureCollection of :func:`aggregator_features` as ``map/geojson`` has it.

    The bytes of ``compact_json(feature_collection(aggregator_features(aggregator)))``;
    with ``cache``, the unchanged cells' texts are joined, not encoded again.
    """
    origin = aggregator.origin
    if origin is None:
        return collection_text(())
    cells = aggregator.cells()
    return collection_text((cache if cache is not None else CellCache()).texts(
        cells, aggregator.cell_size_m, origin, _grid_labels(cells)))


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


def geopackage_names(columns: list[str]) -> dict[str, str]:
    """Return a GeoPackage name for each column: the column, or ``<column>_2``, ``_3``, ...

    A GeoPackage (SQLite) does not tell column names apart by letter case, so the counts of
    two labels that differ only in case (``Tomato___Early_blight`` from one model,
    ``tomato___early_blight`` from another) would be one column and GDAL refuses the layer:
    the later one gets a number. The GeoJSON keeps the labels as they are.
    """
    names: dict[str, str] = {}
    taken: set[str] = set()
    for column in columns:
        name, number = column, 2
        while _sqlite_fold(name) in taken:
            name, number = f'{column}_{number}', number + 1
        taken.add(_sqlite_fold(name))
        names[column] = name
    return names


_ASCII_LOWER = str.maketrans('ABCDEFGHIJKLMNOPQRSTUVWXYZ', 'abcdefghijklmnopqrstuvwxyz')


def _sqlite_fold(name: str) -> str:
    """Return ``name`` as SQLite compares column names: ASCII letters in lower case only."""
    return name.translate(_ASCII_LOWER)


def _renamed_note(names: dict[str, str]) -> str:
    """Say which columns :func:`geopackage_names` renamed ('' when none)."""
    renamed = [f'{column} as {name}' for column, name in names.items() if column != name]
    if not renamed:
        return ''
    return ('labels that differ only in letter case (runs of different models?) are '
            'separate columns in the GeoPackage, which ignores case: ' + ', '.join(renamed))


def _geopackage_library() -> tuple[Any, Any]:
    """Return ``(numpy, pyogrio.raw)``; GisUnavailable with the install command without it."""
    try:
        import numpy as np
        import pyogrio.raw
    except ImportError as error:
        raise GisUnavailable(
            f'writing a GeoPackage needs pyogrio ({error}); install it with '
            "pip install 'plant_disease_ros[tools]' or pip install pyogrio") from error
    return np, pyogrio.raw


def _write_geopackage_to(path: Path, cells: list[dict], layer: str) -> dict[str, str]:
    """Write the cells as a new GeoPackage at ``path`` (which must not exist).

    Returns the column names used (:func:`geopackage_names`).
    """
    np, raw = _geopackage_library()
    columns = grid_columns(cells)
    names = geopackage_names(columns)
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
    raw.write(path, geometry, field_data, [names[column] for column in columns], layer=layer,
              driver='GPKG', geometry_type='Polygon', crs='EPSG:4326')
    return names


def write_grid_geopackage(path: str | Path, cells: list[dict], layer: str = GRID_LAYER) -> Path:
    """Write the cell Features as layer ``layer`` of a GeoPackage (EPSG:4326); return the path.

    Raises GisUnavailable without pyogrio, ValueError for an empty grid (a GeoPackage
    layer needs its columns, which come from the cells). Counts of labels that differ only
    in letter case get numbered columns (:func:`geopackage_names`).
    """
    _geopackage_library()
    if not cells:
        raise ValueError('the grid has no cells: no located detection')
    # GDAL refuses to create a GeoPackage over an existing file; a fresh one is written
    # beside it and moved into place, so that a reader never sees a half-written file.
    with replacing(path) as temporary:
        _write_geopackage_to(temporary, cells, layer)
    return Path(path)


@dataclass(frozen=True)
class GridFiles:
    """Where :func:`write_grid_files` wrote the grid, and why a file is missing."""

    geojson: Path
    geopackage: Path | None
    cells: int
    warning: str = ''


def grid_file_paths(stem: str | Path) -> tuple[Path, Path]:
    """Return the grid files of the map ``<stem>.png``: ``<stem>_grid.geojson``, ``.gpkg``."""
    stem = Path(stem)
    return (stem.with_name(stem.name + GRID_SUFFIX + '.geojson'),
            stem.with_name(stem.name + GRID_SUFFIX + '.gpkg'))


def map_file_names(stem: str | Path) -> dict[str, str]:
    """Return every file name written for the map ``<stem>.png``, each with what it is.

    The PNG and the grid files of :func:`write_grid_files`, and their temporaries at their
    longest: each goes to a temporary (:func:`replacing_together`), into which the PNG and
    the GeoJSON are written atomically again (a temporary of the temporary), and SQLite
    keeps its journal beside the GeoPackage's temporary.
    """
    stem = Path(stem)
    png = stem.with_name(stem.name + '.png')
    geojson, geopackage = grid_file_paths(stem)
    names = {png.name: 'PNG', geojson.name: 'grid GeoJSON', geopackage.name: 'grid GeoPackage'}
    for path, what in ((png, 'PNG'), (geojson, 'grid GeoJSON')):
        temporary = longest_temporary_name(path)
        names[temporary] = f'temporary {what}'
        names[longest_temporary_name(temporary)] = f'temporary of the temporary {what}'
    temporary = longest_temporary_name(geopackage)
    names[temporary] = 'temporary grid GeoPackage'
    names[temporary + SQLITE_JOURNAL_SUFFIX] = "SQLite's journal of the temporary GeoPackage"
    return names


def write_grid_files(cells: list[dict], stem: str | Path,
                     also: tuple[Path, Callable[[Path], object]] | None = None) -> GridFiles:
    """Write ``<stem>_grid.geojson`` and ``<stem>_grid.gpkg``; return their paths.

    The GeoJSON is always written (an empty collection when no detection was located);
    the GeoPackage needs at least one cell and pyogrio, else ``warning`` says why it is
    missing, and a ``<stem>_grid.gpkg`` of an earlier run is removed: it would otherwise
    lie beside this run's files as if it were theirs.

    ``also``: another file of the same map (the PNG) as its path and a function that
    writes it to the path it is given. Every file is written to a temporary first, and
    they replace the old ones together (:func:`replacing_together`): when a write fails
    or is interrupted, every old file stays as it was.
    """
    geojson, geopackage = grid_file_paths(stem)
    warnings: list[str] = []
    written: Path | None = None
    targets = [geojson, geopackage] + ([also[0]] if also is not None else [])
    with replacing_together(*targets) as temporaries:
        if cells:
            try:
                names = _write_geopackage_to(temporaries[1], cells, GRID_LAYER)
            except GisUnavailable as error:  # raised before anything is written
                warnings.append(str(error))
            else:
                warnings.append(_renamed_note(names))
                written = geopackage
        else:
            warnings.append('no located detection: no GeoPackage written')
        write_json_atomic(temporaries[0], feature_collection(cells))
        if also is not None:
            also[1](temporaries[2])
    if written is None and geopackage.exists():
        geopackage.unlink()
        warnings.append(f'the earlier {geopackage.name} was removed: it held an earlier grid')
    return GridFiles(geojson, written, len(cells), '; '.join(text for text in warnings if text))
