"""The disease map PNG, the label palette and the ``plant-disease map`` command."""

from __future__ import annotations

import json
import logging
from pathlib import Path

import cv2
import numpy as np
import pytest

from plant_disease_ros.cli import main as cli
from plant_disease_ros.core.classifier import Category, Classification
from plant_disease_ros.core.detections import detection_feature
from plant_disease_ros.core.fix_buffer import FixLookup, GeoFix
from plant_disease_ros.core.geodesy import enu_to_geodetic
from plant_disease_ros.core.map_file import GeoJsonSeqWriter, write_feature_collection
from plant_disease_ros.core.map_render import (
    DISEASE_COLOURS,
    HEALTHY_COLOURS,
    hex_to_rgb,
    label_colours,
    LabelPalette,
    nice_scale_length,
    render_disease_map,
    track_order,
)

pytest.importorskip('matplotlib')

ORIGIN = (-33.8688, 151.2093, 40.0)
LABELS = ('Tomato___Late_blight', 'Potato___Early_blight', 'Tomato___healthy')


def drive_features(count: int = 90, unlocated: int = 4) -> list[dict]:
    """Return detections along a 45 m lawnmower track, cycling through LABELS."""
    features = []
    for index in range(count):
        row, step = divmod(index, 30)
        east = step * 1.5 if row % 2 == 0 else 45.0 - step * 1.5
        north = row * 6.0
        lat, lon, alt = enu_to_geodetic(east, north, 0.0, *ORIGIN)
        label = LABELS[index % len(LABELS)]
        features.append(detection_feature(
            stamp_sec=100 + index, stamp_nanosec=0, frame_id='camera',
            classification=Classification((Category(index % 3, label, 0.9),), 1.0, 1.0, 1.0),
            fix_lookup=FixLookup('interpolated', GeoFix(100.0 + index, lat, lon, alt), 0.1)))
    for index in range(unlocated):
        features.append(detection_feature(
            stamp_sec=500 + index, stamp_nanosec=0, frame_id='camera',
            classification=Classification((Category(0, LABELS[0], 0.8),), 1.0, 1.0, 1.0),
            fix_lookup=FixLookup('stale', None, 9.0)))
    return features


def colour_pixel_count(bgr: np.ndarray, colour: str, tolerance: int = 12) -> int:
    """Return how many pixels are within ``tolerance`` (per channel) of ``colour``."""
    target = np.array([round(value * 255) for value in reversed(hex_to_rgb(colour))])
    return int(np.all(np.abs(bgr.astype(int) - target) <= tolerance, axis=2).sum())


def test_palette_keeps_diseases_distinct_and_healthy_green() -> None:
    colours = label_colours(['Apple___healthy', 'Tomato___Late_blight', 'Apple___Black_rot',
                             'Tomato___Late_blight', 'Tomato___healthy'])
    assert len(colours) == 4
    assert colours['Apple___healthy'] in HEALTHY_COLOURS
    assert colours['Tomato___healthy'] in HEALTHY_COLOURS
    assert colours['Apple___Black_rot'] != colours['Tomato___Late_blight']
    assert {colours['Apple___Black_rot'], colours['Tomato___Late_blight']} <= set(
        DISEASE_COLOURS)
    many = LabelPalette()
    disease_colours = {many.colour(f'Crop___disease_{index}') for index in range(40)}
    assert len(disease_colours) == 40
    for colour in disease_colours:
        red, green, blue = hex_to_rgb(colour)
        assert not (green > red + 0.15 and green > blue + 0.15), colour  # never green
    # First come, first served, and stable afterwards.
    palette = LabelPalette()
    first = palette.colour('Grape___Black_rot')
    palette.colour('Grape___Esca')
    assert palette.colour('Grape___Black_rot') == first == DISEASE_COLOURS[0]


@pytest.mark.parametrize(('span', 'length'), [(45.0, 5.0), (100.0, 20.0), (9.0, 1.0),
                                              (1000.0, 200.0), (0.0, 0.0002)])
def test_nice_scale_length(span: float, length: float) -> None:
    assert nice_scale_length(span) == pytest.approx(length)


def test_render_writes_a_coloured_map(tmp_path: Path) -> None:
    features = drive_features()
    path = render_disease_map(features, tmp_path / 'maps' / 'map.png', title='field 7')
    assert path == tmp_path / 'maps' / 'map.png'
    bgr = cv2.imread(str(path), cv2.IMREAD_COLOR)
    assert bgr is not None
    assert bgr.shape == (770, 880, 3)  # 8 x 7 inches at 110 dpi
    assert bgr.std() > 10.0  # not blank
    colours = label_colours(LABELS)
    assert len(set(colours.values())) == 3
    for label, colour in colours.items():
        assert colour_pixel_count(bgr, colour) > 100, label
    # The two diseases are saturated and apart; the healthy one is a muted green.
    assert colours['Tomato___healthy'] == HEALTHY_COLOURS[0]


def axes_centre(bgr: np.ndarray) -> tuple[float, float]:
    """Return the pixel (x, y) of the centre of the plot frame (its long dark spines)."""
    dark = np.all(bgr < 60, axis=2)
    rows = np.flatnonzero(dark.sum(axis=1) > 0.4 * bgr.shape[1])
    columns = np.flatnonzero(dark.sum(axis=0) > 0.4 * bgr.shape[0])
    assert len(rows) >= 2 and len(columns) >= 2, 'no plot frame found'
    return (columns.min() + columns.max()) / 2, (rows.min() + rows.max()) / 2


def test_a_small_map_logs_no_matplotlib_notice(tmp_path: Path,
                                               caplog: pytest.LogCaptureFixture) -> None:
    """A drive under 10 m (the demo's) once printed two 'Ignoring fixed limits' warnings."""
    with caplog.at_level('INFO'):
        render_disease_map(drive_features(1, unlocated=0), tmp_path / 'one.png',
                           origin=ORIGIN)
        render_disease_map(drive_features(0, unlocated=1), tmp_path / 'none.png')
    assert not [record for record in caplog.records if record.name.startswith('matplotlib')]
    # The filter is removed again: matplotlib's other warnings still reach the log.
    assert not logging.getLogger('matplotlib.axes._base').filters


def test_render_without_positions_and_with_one_point(tmp_path: Path) -> None:
    label_colour_set = set(label_colours(LABELS).values())
    nothing = render_disease_map(drive_features(0, unlocated=3), tmp_path / 'none.png')
    bgr = cv2.imread(str(nothing))
    assert bgr.std() > 1.0
    # No located detection: no marker and no legend entry in any label colour.
    counts = {colour: colour_pixel_count(bgr, colour) for colour in label_colour_set}
    assert not any(counts.values()), counts

    single = render_disease_map(drive_features(1, unlocated=0), tmp_path / 'one.png',
                                origin=ORIGIN)
    bgr = cv2.imread(str(single))
    colour = label_colours(LABELS[:1])[LABELS[0]]
    # One label: its colour (marker and legend) and none of the others'.
    drawn = {other for other in label_colour_set | {colour}
             if colour_pixel_count(bgr, other) > 20}
    assert drawn == {colour}
    # The one point is the origin, which a lone point's view is centred on: the marker
    # (under the track's start triangle) shows its colour around the plot's centre.
    centre_x, centre_y = axes_centre(bgr)
    x, y = round(centre_x), round(centre_y)
    assert colour_pixel_count(bgr[y - 8:y + 9, x - 8:x + 9], colour) >= 3
    assert colour_pixel_count(bgr[y - 8:y + 9, x + 40:x + 57], colour) == 0


def test_track_order_keeps_each_session_whole() -> None:
    """A second session whose clock restarted 55 min behind the first's end is drawn
    after it, not woven into it; late records of one session take their stamp's place."""
    first = [36_000.0 + second for second in range(0, 3600, 600)]     # 10:00 .. 10:50
    late = [36_000.0 + 2_970.0]                 # history got late: 30 s before the newest
    second = [36_300.0 + second for second in range(0, 1800, 600)]   # 10:05 .. 10:25
    stamps = first + late + second
    order = track_order(stamps)
    assert [stamps[index] for index in order] == sorted(first + late) + second
    assert track_order([3.0, 1.0, 2.0]) == [1, 2, 0]


@pytest.mark.parametrize('kind', ['sequence', 'collection'])
def test_map_command(tmp_path: Path, kind: str, capsys: pytest.CaptureFixture) -> None:
    features = drive_features(30, unlocated=2)
    if kind == 'sequence':
        source = tmp_path / 'run.geojsons'
        with GeoJsonSeqWriter(source) as writer:
            for feature in features:
                writer.append(feature)
        with open(source, 'ab') as handle:
            handle.write(b'\x1e{"type": "Feat')  # a recorder killed mid-write
    else:
        source = tmp_path / 'run.geojson'
        write_feature_collection(source, features)
    out = tmp_path / 'out.png'
    assert cli.main(['map', str(source), '--out', str(out)]) == 0
    assert cv2.imread(str(out)).shape == (770, 880, 3)
    printed = capsys.readouterr().out
    assert '32 detection(s), 30 located, 2 without position' in printed
    # The default output sits next to the input.
    assert cli.main(['map', str(source)]) == 0
    assert source.with_suffix('.png').is_file()


def test_map_of_a_collection_older_than_its_records_draws_the_records(
        tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    """Saved at 5 detections, then 35 more recorded and the power cut: the collection the
    README names is stale; the records beside it hold all 40."""
    import os

    features = drive_features(40, unlocated=0)
    collection = tmp_path / 'run.geojson'
    write_feature_collection(collection, features[:5])
    records = tmp_path / 'run.geojsons'
    with GeoJsonSeqWriter(records) as writer:
        for feature in features:
            writer.append(feature)
    os.utime(collection, (1_700_000_000,) * 2)
    os.utime(records, (1_700_000_600,) * 2)
    assert cli.main(['map', str(collection)]) == 0
    printed = capsys.readouterr().out
    assert 'run.geojson is older than run.geojsons' in printed
    assert '40 detection(s), 40 located' in printed
    assert collection.with_suffix('.png').is_file()
    # Saved after its last record: the collection is drawn.
    os.utime(collection, (1_700_001_200,) * 2)
    assert cli.main(['map', str(collection)]) == 0
    printed = capsys.readouterr().out
    assert 'is older than' not in printed and '5 detection(s), 5 located' in printed
    # A newer records file of zeros (what a power cut can leave) holds nothing more.
    records.write_bytes(bytes(4096))
    os.utime(records, (1_700_002_000,) * 2)
    assert cli.main(['map', str(collection)]) == 0
    printed = capsys.readouterr().out
    assert 'is older than' not in printed and '5 detection(s), 5 located' in printed


def test_the_runs_of_two_cameras_are_drawn_as_one_map(
        tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    """A left and a right camera recorded two runs: one map, one grid, with --out."""
    left = drive_features(30, unlocated=0)
    right = [json.loads(json.dumps(feature)) for feature in drive_features(20, unlocated=0)]
    for feature in right:
        feature['properties']['frame_id'] = 'right_camera'
        feature['geometry']['coordinates'][1] += 4.0 / 111_200.0   # a row 4 m north
    paths = [tmp_path / '2026-05-04_left.geojsons', tmp_path / '2026-05-04_right.geojsons']
    for path, features in zip(paths, (left, right), strict=True):
        with GeoJsonSeqWriter(path) as writer:
            for feature in features:
                writer.append(feature)
    assert cli.main(['map', *map(str, paths)]) == 2
    assert '2 GEOJSON files are drawn as one map: give --out' in capsys.readouterr().err
    out = tmp_path / 'both.png'
    assert cli.main(['map', *map(str, paths), '--out', str(out)]) == 0
    printed = capsys.readouterr().out
    assert '50 detection(s), 50 located' in printed
    assert out.is_file() and (tmp_path / 'both_grid.geojson').is_file()
    grid = json.loads((tmp_path / 'both_grid.geojson').read_text())
    assert sum(cell['properties']['detections'] for cell in grid['features']) == 50


def test_map_command_errors(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    assert cli.main(['map', str(tmp_path / 'missing.geojson')]) == 2
    bad = tmp_path / 'bad.geojson'
    bad.write_text(json.dumps({'type': 'Topology'}))
    assert cli.main(['map', str(bad)]) == 2
    assert 'neither a GeoJSON Feature nor a FeatureCollection' in capsys.readouterr().err
