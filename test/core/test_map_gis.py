"""The disease grid for GIS: cell polygons, counts, incidence, GeoJSON and GeoPackage."""

from __future__ import annotations

import gc
import json
import math
from pathlib import Path
import struct
import sys
import tracemalloc

import pytest

from plant_disease_ros.cli import main as cli
from plant_disease_ros.core.geodesy import enu_to_geodetic, geodetic_to_enu
from plant_disease_ros.core.map_file import feature_collection, write_feature_collection
from plant_disease_ros.core.map_gis import (
    aggregator_features,
    aggregator_geojson,
    cell_feature,
    CellCache,
    GisUnavailable,
    grid_features,
    most_severe_label,
    write_grid_files,
    write_grid_geopackage,
)
from plant_disease_ros.core.map_grid import Cell, CellAggregator

DATUM = (50.8503, 4.3517, 60.0)
LATE = 'Tomato___Late_blight'
EARLY = 'Tomato___Early_blight'
HEALTHY = 'Tomato___healthy'
CELL_M = 2.0


def detection(east: float, north: float | None, label: str, confidence: float = 0.9) -> dict:
    """Return a detection Feature at ENU ``east, north`` from DATUM (north None: unlocated)."""
    geometry = None
    if north is not None:
        lat, lon, alt = enu_to_geodetic(east, north, 0.0, *DATUM)
        geometry = {'type': 'Point', 'coordinates': [lon, lat, alt]}
    return {'type': 'Feature', 'geometry': geometry, 'properties': {
        'label': label, 'confidence': confidence, 'healthy': label.endswith('healthy')}}


# Cells are centred on multiples of 2 m: cell (0, 0) spans [-1, 1) m east and north.
# Cell (0, 0): 2 late blight, 1 early blight, 1 healthy; cell (1, 0): 1 healthy;
# cell (-1, 2): 1 early blight; one detection without a position.
DETECTIONS = [
    detection(-0.5, -0.5, LATE), detection(0.5, 0.5, LATE, 0.7), detection(0.0, -0.8, EARLY),
    detection(-0.8, 0.8, HEALTHY, 0.99), detection(1.5, -0.5, HEALTHY),
    detection(-1.5, 3.5, EARLY), detection(0.0, None, LATE),
]
EXPECTED = {  # (cell_e, cell_n): (detections, diseased, most severe, counts)
    (0, 0): (4, 3, LATE, {LATE: 2, EARLY: 1, HEALTHY: 1}),
    (1, 0): (1, 0, '', {LATE: 0, EARLY: 0, HEALTHY: 1}),
    (-1, 2): (1, 1, EARLY, {LATE: 0, EARLY: 1, HEALTHY: 0}),
}


def corners_enu(ring: list[list[float]]) -> list[tuple[float, float]]:
    """Return a [lon, lat] ring as ENU (east, north) metres from DATUM."""
    return [geodetic_to_enu(lat, lon, 0.0, *DATUM)[:2] for lon, lat in ring]


def check_cell_square(key: tuple[int, int], ring: list[list[float]]) -> None:
    """The ring is the cell's square, closed, counter-clockwise, corners within 1 mm."""
    east, north = (key[0] - 0.5) * CELL_M, (key[1] - 0.5) * CELL_M
    expected = [(east, north), (east + CELL_M, north), (east + CELL_M, north + CELL_M),
                (east, north + CELL_M), (east, north)]
    assert len(ring) == 5 and ring[0] == ring[-1]
    for (e, n), (want_e, want_n) in zip(corners_enu(ring), expected, strict=True):
        assert e == pytest.approx(want_e, abs=1e-3) and n == pytest.approx(want_n, abs=1e-3)


def test_grid_features_one_polygon_per_cell_with_counts() -> None:
    """Counts per label, diseased/healthy, incidence and the most severe label per cell."""
    cells = grid_features(DETECTIONS, CELL_M, DATUM)
    by_key = {(cell['properties']['cell_e'], cell['properties']['cell_n']): cell
              for cell in cells}
    assert set(by_key) == set(EXPECTED)
    for key, (count, diseased, worst, counts) in EXPECTED.items():
        properties = by_key[key]['properties']
        assert properties['detections'] == count and properties['diseased'] == diseased
        assert properties['healthy'] == count - diseased
        assert properties['incidence'] == pytest.approx(diseased / count)
        assert properties['most_severe_label'] == worst
        assert {label: properties[f'n_{label}'] for label in counts} == counts
        assert properties['cell_size_m'] == CELL_M and properties['name']
        assert by_key[key]['geometry']['type'] == 'Polygon'
        check_cell_square(key, by_key[key]['geometry']['coordinates'][0])
    assert by_key[(0, 0)]['properties']['top_label'] == HEALTHY  # the most confident
    assert grid_features([detection(0.0, None, LATE)], CELL_M) == []


@pytest.mark.parametrize('longitude', [179.99999, -179.99999])
def test_a_cell_across_the_antimeridian_stays_a_small_square(longitude: float) -> None:
    """Ring longitudes are kept continuous (beyond 180 if need be), not 360 degrees apart."""
    origin = (-16.8, longitude, 0.0)  # Taveuni, Fiji, about 1 m from the 180th meridian
    features = [
        {'type': 'Feature', 'geometry': {'type': 'Point', 'coordinates': [lon, lat, 0.0]},
         'properties': {'label': LATE, 'confidence': 0.9, 'healthy': False}}
        for lat, lon, _ in (enu_to_geodetic(east, 0.5, 0.0, *origin)
                            for east in (0.5, -1.5, 1.5))]
    cells = grid_features(features, CELL_M, origin)
    assert len(cells) == 3
    for cell in cells:
        ring = cell['geometry']['coordinates'][0]
        longitudes = [corner[0] for corner in ring]
        # A 2 m cell at 16.8 degrees south is 1.9e-5 degrees of longitude wide.
        assert max(longitudes) - min(longitudes) == pytest.approx(1.88e-5, abs=1e-6)
        assert ring[0] == ring[-1] and -180.0 <= ring[0][0] <= 180.0
        assert all(abs(lon - ring[0][0]) < 1e-4 for lon in longitudes)
        east, north = ((cell['properties']['cell_e'] - 0.5) * CELL_M,
                       (cell['properties']['cell_n'] - 0.5) * CELL_M)
        expected = [(east, north), (east + CELL_M, north), (east + CELL_M, north + CELL_M),
                    (east, north + CELL_M), (east, north)]
        for (lon, lat), (want_e, want_n) in zip(ring, expected, strict=True):
            e, n, _ = geodetic_to_enu(lat, lon, 0.0, *origin)
            assert e == pytest.approx(want_e, abs=1e-3) and n == pytest.approx(want_n, abs=1e-3)
    # The meridian is about 1.06 m east (west) of the origin: in the cell east (west) of
    # the origin's, which spans 1 to 3 m (-3 to -1 m).
    straddling = {cell['properties']['cell_e']: cell for cell in cells}[1 if longitude > 0
                                                                         else -1]
    beyond = [corner[0] for corner in straddling['geometry']['coordinates'][0]
              if abs(corner[0]) > 180.0]
    assert beyond and all(abs(lon) < 180.0001 for lon in beyond)


def test_most_severe_label_is_the_most_frequent_disease_ties_by_name() -> None:
    """Most detections wins; a tie goes to the first name; healthy never counts."""
    cell = Cell(key=(0, 0), centre_e=1.0, centre_n=1.0, count=5,
                label_counts={HEALTHY: 3, LATE: 1, EARLY: 1})
    assert most_severe_label(cell) == EARLY
    cell.label_counts = {HEALTHY: 3}
    assert most_severe_label(cell) == ''


def unpack_polygon(wkb: bytes) -> list[list[float]]:
    """Return the one ring of a little-endian WKB polygon as [x, y] points."""
    order, kind, rings, points = struct.unpack_from('<BIII', wkb)
    assert (order, kind, rings) == (1, 3, 1)
    return [list(struct.unpack_from('<dd', wkb, 13 + 16 * index)) for index in range(points)]


def test_geopackage_reads_back_with_its_library(tmp_path: Path) -> None:
    """pyogrio reads the GeoPackage: EPSG:4326 polygons, the cells' squares and counts."""
    pyogrio = pytest.importorskip('pyogrio')
    cells = grid_features(DETECTIONS, CELL_M, DATUM)
    files = write_grid_files(cells, tmp_path / 'run')
    assert files.geojson == tmp_path / 'run_grid.geojson'
    assert files.geopackage == tmp_path / 'run_grid.gpkg' and files.warning == ''

    info = pyogrio.read_info(files.geopackage)
    assert info['layer_name'] == 'disease_grid' and info['geometry_type'] == 'Polygon'
    assert info['crs'] == 'EPSG:4326' and info['features'] == len(EXPECTED)
    meta, _, geometry, columns = pyogrio.raw.read(files.geopackage)
    rows = [dict(zip(meta['fields'], values, strict=True)) for values in zip(*columns,
                                                                             strict=True)]
    assert len(rows) == len(geometry) == len(EXPECTED)
    for row, wkb in zip(rows, geometry, strict=True):
        key = (int(row['cell_e']), int(row['cell_n']))
        count, diseased, worst, counts = EXPECTED[key]
        assert (row['detections'], row['diseased']) == (count, diseased)
        assert row['most_severe_label'] == worst
        assert row['incidence'] == pytest.approx(diseased / count)
        assert {label: int(row[f'n_{label}']) for label in counts} == counts
        check_cell_square(key, unpack_polygon(bytes(wkb)))

    # The GeoJSON holds the same cells.
    collection = json.loads(files.geojson.read_text(encoding='utf-8'))
    assert collection['type'] == 'FeatureCollection'
    assert collection['features'] == json.loads(json.dumps(cells))

    # Written again over an existing file (GDAL alone refuses to).
    assert write_grid_geopackage(files.geopackage, cells[:1]) == files.geopackage
    assert pyogrio.read_info(files.geopackage)['features'] == 1


def test_without_pyogrio_the_geojson_is_written_and_the_reason_given(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """The module imports and writes GeoJSON without pyogrio; the GeoPackage says why not."""
    monkeypatch.setitem(sys.modules, 'pyogrio', None)
    monkeypatch.setitem(sys.modules, 'pyogrio.raw', None)
    cells = grid_features(DETECTIONS, CELL_M, DATUM)
    with pytest.raises(GisUnavailable, match='pip install'):
        write_grid_geopackage(tmp_path / 'x.gpkg', cells)
    files = write_grid_files(cells, tmp_path / 'run')
    assert files.geojson.is_file() and files.geopackage is None
    assert 'pyogrio' in files.warning


def test_map_command_writes_the_grid(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    """plant-disease map writes <name>_grid.geojson and .gpkg beside the PNG and says so."""
    pytest.importorskip('matplotlib')
    pytest.importorskip('pyogrio')
    source = tmp_path / 'field.geojson'
    write_feature_collection(source, DETECTIONS)
    assert cli.main(['map', str(source), '--origin', *map(str, DATUM)]) == 0
    printed = capsys.readouterr().out
    for name in ('field_grid.geojson', 'field_grid.gpkg'):
        assert (tmp_path / name).is_file() and name in printed
    assert f'{len(EXPECTED)} cell(s)' in printed


def test_the_cell_cache_gives_what_building_every_cell_gives_and_reuses_the_unchanged(
        ) -> None:
    """The recorder's map/geojson after each detection: the same cells, few encoded again."""
    aggregator = CellAggregator(CELL_M, DATUM)
    cache = CellCache()
    for feature in DETECTIONS[:4]:
        aggregator.add(feature)

    def texts() -> dict[tuple[int, int], bytes]:
        cells = aggregator.cells()
        labels = tuple(sorted({label for cell in cells for label in cell.label_counts}))
        encoded = cache.texts(cells, CELL_M, DATUM, labels)
        assert encoded == [compact(feature).encode() for feature in aggregator_features(
            aggregator)]
        assert aggregator_features(aggregator, cache) == aggregator_features(aggregator)
        return {cell.key: text for cell, text in zip(cells, encoded, strict=True)}

    first = texts()
    # A detection in a new cell: the cell (0, 0) is not encoded again.
    aggregator.add(DETECTIONS[4])
    second = texts()
    assert second[(0, 0)] is first[(0, 0)] and len(cache) == 2
    # A detection in (0, 0): that cell again, with its new count.
    aggregator.add(detection(0.4, 0.4, LATE))
    third = texts()
    assert third[(0, 0)] is not second[(0, 0)] and b'"detections":5,' in third[(0, 0)]
    assert third[(1, 0)] is second[(1, 0)]
    # A label the run had not seen: every cell gets its n_<label> column.
    aggregator.add(detection(-1.5, 3.5, 'Potato___Late_blight'))
    fourth = texts()
    assert all(b'"n_Potato___Late_blight":' in text for text in fourth.values())


def compact(value: object) -> str:
    """Return ``value`` encoded as map/geojson was before the cells were cached as text."""
    return json.dumps(value, separators=(',', ':'), allow_nan=False)


def published_before(aggregator: CellAggregator) -> bytes:
    """Return the map/geojson text of ``aggregator`` as it was built before: every cell's
    Feature dict built (what the dict cache gave) and the whole collection encoded."""
    return compact(feature_collection(aggregator_features(aggregator))).encode()


# Labels the run meets one after another (one with a character JSON escapes).
RUN_LABELS = (LATE, HEALTHY, EARLY, 'Potato___Late_blight', 'Caf\u00e9___rouille',
              'Apple___Apple_scab', 'Apple___healthy', 'Grape___Black_rot')


def test_the_published_map_text_is_byte_identical_to_encoding_every_feature() -> None:
    """A map of many cells as a day's drive grows it: new cells, counts, labels appearing
    over time, odd confidences; then another cell size, another origin, and back."""
    cache = CellCache()
    assert aggregator_geojson(CellAggregator(CELL_M), cache) == published_before(
        CellAggregator(CELL_M)) == b'{"type":"FeatureCollection","features":[]}'
    maps = {(CELL_M, DATUM): CellAggregator(CELL_M, DATUM),
            (3.0, DATUM): CellAggregator(3.0, DATUM),
            (CELL_M, (-16.8, 179.99999, 12.5)): CellAggregator(CELL_M, (-16.8, 179.99999, 12.5))}
    # Each map published by its own cache after every 10 detections (changed cells only),
    # and by one cache for them all at each step (a new cell size or origin: every cell).
    caches = {grid: CellCache() for grid in maps}
    for step in range(len(RUN_LABELS)):
        for grid, aggregator in maps.items():
            for number in range(80):
                sequence = 80 * step + number
                label = RUN_LABELS[sequence % (step + 1)]
                # 500 cells of 25 x 20, one in seven visited in turn: new cells at first,
                # then more detections in cells already published.
                place = sequence * 7 % 500
                east, north = 2.0 * (place % 25) - 24.0, 2.0 * (place // 25) - 20.0
                lat, lon, alt = enu_to_geodetic(east, north, 0.0, *grid[1])
                aggregator.add({'type': 'Feature', 'geometry': {
                    'type': 'Point', 'coordinates': [lon, lat, alt]}, 'properties': {
                        'label': label, 'confidence': 1.0 / (sequence % 7 + 1.5),
                        'healthy': label.endswith('healthy')}})
                if number % 10 == 9:
                    text = aggregator_geojson(aggregator, caches[grid])
                    assert text == published_before(aggregator), (step, number, grid)
            text = aggregator_geojson(aggregator, cache)
            assert text == published_before(aggregator), (step, grid)
            assert aggregator_geojson(aggregator) == text
    assert len(maps[(CELL_M, DATUM)]) == 500
    assert b'Caf\\u00e9' in aggregator_geojson(maps[(CELL_M, DATUM)], cache)


def test_a_value_json_cannot_hold_is_refused_as_before() -> None:
    """allow_nan=False: a NaN confidence fails the encoding (ValueError) both ways."""
    cell = Cell(key=(0, 0), centre_e=0.0, centre_n=0.0, count=1, max_confidence=math.nan,
                label=LATE, healthy=False, diseased_count=1, label_counts={LATE: 1})
    with pytest.raises(ValueError, match='JSON compliant'):
        compact(aggregator_features_of(cell))
    with pytest.raises(ValueError, match='JSON compliant'):
        CellCache().texts([cell], CELL_M, DATUM, (LATE,))


def aggregator_features_of(cell: Cell) -> list[dict]:
    """Return the Feature dicts of one cell, as aggregator_features builds them."""
    return [cell_feature(cell, CELL_M, DATUM, (LATE,))]


# Bytes a cached cell may hold beyond its text (tracemalloc, deterministic): about 135 (the
# bytes object's header, the (count, text) pair, the dict entry) where its Feature as dicts
# and lists held 1,950 with these labels (benchmarks/results/2026-12-07-geojson-cache.md).
CACHE_OVERHEAD_PER_CELL = 200


def test_a_cached_cell_holds_about_its_text() -> None:
    """The cache keeps each cell as its JSON text, not as the Feature's dicts."""
    aggregator = CellAggregator(CELL_M, DATUM)
    cells = 400
    for number in range(cells):
        aggregator.add(detection(2.0 * (number % 20), 2.0 * (number // 20),
                                 RUN_LABELS[number % 3]))
    snapshot = aggregator.cells()
    labels = tuple(sorted({label for cell in snapshot for label in cell.label_counts}))
    cache = CellCache()
    tracemalloc.start()
    try:
        gc.collect()
        start = tracemalloc.get_traced_memory()[0]
        texts = cache.texts(snapshot, CELL_M, DATUM, labels)
        text_bytes = sum(len(text) for text in texts)
        del texts
        gc.collect()
        kept = tracemalloc.get_traced_memory()[0] - start
    finally:
        tracemalloc.stop()
    assert len(cache) == cells
    assert kept / cells < text_bytes / cells + CACHE_OVERHEAD_PER_CELL


@pytest.mark.parametrize('distance_km', [30.0, 100.0, 300.0])
def test_a_far_cell_square_holds_its_detections_at_any_altitude(distance_km: float) -> None:
    """Detections 30, 100 and 300 km from the origin, 0.8 m from their cell's centre, on
    the ground, 150 m higher or without altitude: each is in its expected cell, and inside
    that cell's square as seen on the ground where it lies."""
    from plant_disease_ros.core.geodesy import enu_vertical_at_altitude, ground_vector

    origin = DATUM
    features, expected = [], []
    for bearing_deg in (0.0, 45.0, 90.0, 200.0, 300.0):
        bearing = math.radians(bearing_deg)
        key = (round(distance_km * 1000.0 * math.sin(bearing) / CELL_M),
               round(distance_km * 1000.0 * math.cos(bearing) / CELL_M))
        for offset_e, offset_n in ((0.8, 0.8), (-0.8, 0.8), (-0.8, -0.8), (0.8, -0.8)):
            east, north = key[0] * CELL_M + offset_e, key[1] * CELL_M + offset_n
            lat, lon = enu_vertical_at_altitude(east, north, origin[2], *origin)
            # Where the tangent plane's (east, north) is on the ground: it maps back there.
            back_e, back_n, _ = geodetic_to_enu(lat, lon, origin[2], *origin)
            assert (back_e, back_n) == (pytest.approx(east, abs=1e-6),
                                        pytest.approx(north, abs=1e-6))
            for coordinates in ([lon, lat, origin[2]], [lon, lat, origin[2] + 150.0],
                                [lon, lat]):
                features.append({'type': 'Feature',
                                 'geometry': {'type': 'Point', 'coordinates': coordinates},
                                 'properties': {'label': LATE, 'confidence': 0.9,
                                                'healthy': False}})
                expected.append(key)
    aggregator = CellAggregator(CELL_M, origin)
    for feature, key in zip(features, expected, strict=True):
        cell = aggregator.add(feature)
        assert cell is not None and cell.key == key
        ring = cell_feature(cell, CELL_M, origin, [LATE])['geometry']['coordinates'][0]
        lon, lat = feature['geometry']['coordinates'][:2]
        # The square's corners on the ground around the detection, counter-clockwise: the
        # detection is left of every edge, by about 0.2 m (its distance to the near edges).
        corners = [ground_vector(lat, lon, corner_lat, corner_lon)
                   for corner_lon, corner_lat in ring]
        for (e1, n1), (e2, n2) in zip(corners[:-1], corners[1:], strict=True):
            length = math.hypot(e2 - e1, n2 - n1)
            assert length == pytest.approx(CELL_M, rel=2e-3)
            left = ((e2 - e1) * (0.0 - n1) - (n2 - n1) * (0.0 - e1)) / length
            assert left > 0.15, (feature['geometry'], ring)
