"""The map grid: cells in the local ENU frame, the cell aggregator and the run summary."""

from __future__ import annotations

import json

from helpers.maps import EARLY_BLIGHT, feature_at, HEALTHY, LATE_BLIGHT, ORIGIN
import pytest

from plant_disease_ros.core.detections import feature_position
from plant_disease_ros.core.geodesy import enu_to_geodetic
from plant_disease_ros.core.map_grid import CellAggregator, MapSummary, summarize


def test_summarize_counts_labels_cells_and_positions() -> None:
    features = [
        feature_at(-0.5, -0.5, LATE_BLIGHT, sec=1),   # cell (0, 0): [-1, 1) m
        feature_at(0.3, 0.7, LATE_BLIGHT, sec=2),     # cell (0, 0)
        feature_at(1.6, -0.2, LATE_BLIGHT, sec=3),    # cell (1, 0)
        feature_at(-1.4, -0.5, EARLY_BLIGHT, sec=4),  # cell (-1, 0)
        feature_at(2.2, -0.8, EARLY_BLIGHT, sec=5),   # cell (1, 0)
        feature_at(10.0, 10.0, HEALTHY, sec=6),       # cell (5, 5): healthy only
        feature_at(None, None, LATE_BLIGHT, sec=7),
        feature_at(None, None, HEALTHY, sec=8),
    ]
    summary = summarize(features, cell_size_m=2.0, origin=ORIGIN)
    assert summary['detections'] == 8
    assert (summary['located'], summary['unlocated']) == (6, 2)
    assert summary['detections_per_label'] == {EARLY_BLIGHT: 2, LATE_BLIGHT: 4, HEALTHY: 2}
    assert (summary['diseased_detections'], summary['healthy_detections']) == (6, 2)
    assert summary['diseased_cells_per_label'] == {EARLY_BLIGHT: 2, LATE_BLIGHT: 2}
    assert summary['diseased_cells'] == 3
    assert summary['cells'] == 4 and summary['cell_alignment'] == 'centred'
    assert summary['fix_status'] == {'interpolated': 6, 'stale': 2}
    assert summary['origin'] == {'latitude': ORIGIN[0], 'longitude': ORIGIN[1],
                                 'altitude': ORIGIN[2]}
    assert (summary['first_stamp_s'], summary['last_stamp_s']) == pytest.approx((1.0, 8.0))
    json.dumps(summary, allow_nan=False)

    # Without an origin the first located feature is the origin: cells shift with it.
    shifted = summarize(features, cell_size_m=2.0)
    assert shifted['origin']['latitude'] == pytest.approx(feature_position(features[0])[0])
    assert shifted['diseased_cells_per_label'] == {EARLY_BLIGHT: 2, LATE_BLIGHT: 3}


def test_summary_of_nothing() -> None:
    summary = summarize([], cell_size_m=1.0)
    assert summary['detections'] == 0 and summary['origin'] is None
    with pytest.raises(ValueError):
        summarize([], cell_size_m=0.0)


def test_cell_aggregator() -> None:
    aggregator = CellAggregator(cell_size_m=2.0, origin=ORIGIN)
    assert aggregator.add(feature_at(None, None)) is None
    aggregator.add(feature_at(0.2, 0.3, LATE_BLIGHT, 0.70, sec=1))
    aggregator.add(feature_at(-0.8, 0.7, HEALTHY, 0.95, sec=2))
    cell = aggregator.add(feature_at(0.5, -0.5, LATE_BLIGHT, 0.80, sec=3))
    assert cell.key == (0, 0)
    other = aggregator.add(feature_at(-4.2, 4.3, EARLY_BLIGHT, 0.6, sec=4))
    assert other.key == (-2, 2)
    cells = {cell.key: cell for cell in aggregator.cells()}
    assert len(aggregator) == 2 and set(cells) == {(0, 0), (-2, 2)}
    first = cells[(0, 0)]
    assert first.count == 3
    assert first.max_confidence == pytest.approx(0.95)
    assert first.label == HEALTHY and first.healthy
    assert first.majority_label == LATE_BLIGHT
    assert first.diseased_count == 2
    assert first.label_counts == {LATE_BLIGHT: 2, HEALTHY: 1}
    assert (first.centre_e, first.centre_n) == (0.0, 0.0)
    second = cells[(-2, 2)]
    assert (second.centre_e, second.centre_n) == (-4.0, 4.0)
    assert second.label == EARLY_BLIGHT and not second.healthy
    # cells() is a snapshot: changing it does not change the aggregator.
    first.label_counts.clear()
    assert aggregator.cells()[0].label_counts == {LATE_BLIGHT: 2, HEALTHY: 1}


def test_cell_aggregator_origin_from_first_located_feature() -> None:
    aggregator = CellAggregator(cell_size_m=5.0)
    assert aggregator.origin is None
    aggregator.add(feature_at(None, None))
    assert aggregator.origin is None
    first = feature_at(100.0, 100.0)
    cell = aggregator.add(first)
    assert aggregator.origin == feature_position(first)
    assert cell.key == (0, 0) and (cell.centre_e, cell.centre_n) == (0.0, 0.0)
    assert aggregator.add(feature_at(94.0, 100.0)).key == (-1, 0)


def test_the_first_detection_sits_mid_cell_so_gps_jitter_keeps_one_plant_in_one_cell() -> None:
    """Fixes a few cm either side of the first detection land in its cell, not in four."""
    aggregator = CellAggregator(cell_size_m=1.0)
    aggregator.add(feature_at(50.0, 50.0))
    for east, north in [(49.97, 49.98), (50.03, 49.96), (49.96, 50.04), (50.02, 50.03)]:
        assert aggregator.add(feature_at(east, north)).key == (0, 0)
    assert len(aggregator) == 1
    # The cell still has the configured size: 0.49 m off stays, 0.51 m off is the next.
    assert aggregator.add(feature_at(50.49, 50.0)).key == (0, 0)
    assert aggregator.add(feature_at(50.51, 50.0)).key == (1, 0)


HUGE = 10 ** 400  # a JSON integer too large for a float


def test_huge_numbers_count_as_absent_in_the_aggregates() -> None:
    """Features that skipped validation: a huge confidence is 0, a huge stamp is none."""
    huge = feature_at(0.5, 0.5, LATE_BLIGHT, 0.9, sec=7)
    huge['properties']['confidence'] = HUGE
    huge['properties']['stamp'] = {'sec': HUGE, 'nanosec': 0}
    aggregator = CellAggregator(cell_size_m=2.0, origin=ORIGIN)
    cell = aggregator.add(huge)
    assert cell.key == (0, 0) and cell.count == 1 and cell.max_confidence == 0.0
    summary = MapSummary(2.0, ORIGIN)
    summary.add(huge)
    summary.add(feature_at(0.5, 0.5, LATE_BLIGHT, 0.9, sec=3))
    result = summary.as_dict()
    assert (result['detections'], result['located'], result['cells']) == (2, 2, 1)
    assert result['first_stamp_s'] == result['last_stamp_s'] == pytest.approx(3.0)
    unlocated = feature_at(0.5, 0.5)
    unlocated['geometry']['coordinates'][0] = HUGE
    assert aggregator.add(unlocated) is None


def test_2d_positions_are_taken_at_altitude_zero() -> None:
    """A 2-D point ([lon, lat]) is located; as the first one it gives the origin alt 0."""
    origin = (ORIGIN[0], ORIGIN[1], 0.0)

    def point_2d(east: float, north: float) -> dict:
        lat, lon, _ = enu_to_geodetic(east, north, 0.0, *origin)
        feature = feature_at(east, north)
        feature['geometry']['coordinates'] = [lon, lat]
        return feature

    aggregator = CellAggregator(cell_size_m=2.0)
    assert aggregator.add(point_2d(0.0, 0.0)).key == (0, 0)
    assert aggregator.origin == pytest.approx(origin)
    assert aggregator.add(point_2d(-1.5, 4.5)).key == (-1, 2)
    # A 3-D detection 600 m up lands in the cell of its east/north all the same.
    lat, lon, alt = enu_to_geodetic(2.4, 0.6, 600.0, *origin)
    high = feature_at(0.0, 0.0)
    high['geometry']['coordinates'] = [lon, lat, alt]
    assert aggregator.add(high).key == (1, 0)
    summary = summarize([point_2d(5.0, 5.0), point_2d(1.0, 1.0)], cell_size_m=2.0)
    assert summary['located'] == 2 and summary['cells'] == 2
    assert summary['origin']['altitude'] == 0.0
