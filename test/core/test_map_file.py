"""The map file format: detection features, GeoJSON text sequences (RFC 8142), collections."""

from __future__ import annotations

import json
import math
import os
from pathlib import Path

from helpers.filesystems import fill, small_filesystem
from helpers.maps import classification, feature_at, HEALTHY, LATE_BLIGHT
import pytest

from plant_disease_ros.core import map_file
from plant_disease_ros.core.detections import (
    detection_feature,
    feature_confidence,
    feature_healthy,
    feature_label,
    feature_position,
    feature_stamp_s,
    finite_number,
)
from plant_disease_ros.core.fix_buffer import FixLookup, GeoFix
from plant_disease_ros.core.map_file import (
    encode_record,
    feature_collection,
    feature_rejection_reason,
    GeoJsonSeqWriter,
    json_depth,
    MAX_JSON_DEPTH,
    read_features,
    read_geojson_seq,
    RECORD_SEPARATOR,
    scan_geojson_seq,
    write_feature_collection,
    write_json_atomic,
)


def test_detection_feature_is_rfc7946_point() -> None:
    fix = GeoFix(10.5, 52.0, 4.3, 12.5, horizontal_accuracy_m=0.4)
    feature = detection_feature(
        stamp_sec=10, stamp_nanosec=500_000_000, frame_id='camera_optical',
        classification=classification(LATE_BLIGHT, 0.875, index=29),
        fix_lookup=FixLookup('nearest', fix, 0.25))
    assert feature['type'] == 'Feature'
    assert feature['geometry'] == {'type': 'Point', 'coordinates': [4.3, 52.0, 12.5]}
    properties = feature['properties']
    assert properties == {
        'stamp': {'sec': 10, 'nanosec': 500_000_000},
        'frame_id': 'camera_optical',
        'label': LATE_BLIGHT,
        'class_index': 29,
        'confidence': 0.875,
        'top_k': [{'label': LATE_BLIGHT, 'index': 29, 'score': 0.875},
                  {'label': 'Other___x', 'index': 30, 'score': 0.05}],
        'healthy': False,
        'crops': [],
        'poses': 1,
        'fix_status': 'nearest',
        'fix_age_s': 0.25,
        'horizontal_accuracy_m': 0.4,
        'camera_offset': 'none',
        'heading_deg': None,
    }
    json.dumps(feature, allow_nan=False)
    assert feature_position(feature) == (52.0, 4.3, 12.5)
    assert feature_stamp_s(feature) == pytest.approx(10.5)
    assert feature_label(feature) == LATE_BLIGHT
    assert feature_confidence(feature) == 0.875
    assert not feature_healthy(feature)


@pytest.mark.parametrize('status', ['stale', 'none'])
def test_detection_without_position_has_null_geometry(status: str) -> None:
    feature = detection_feature(
        stamp_sec=1, stamp_nanosec=0, frame_id='camera', classification=classification(HEALTHY),
        fix_lookup=FixLookup(status, None, 4.0 if status == 'stale' else None))
    assert feature['geometry'] is None
    assert feature['properties']['fix_status'] == status
    assert feature['properties']['healthy'] is True
    assert feature['properties']['horizontal_accuracy_m'] is None
    assert feature_position(feature) is None
    json.dumps(feature, allow_nan=False)


@pytest.mark.parametrize(('value', 'reason'), [
    ([1, 2], 'not_an_object'),
    ('text', 'not_an_object'),
    ({'type': 'Point', 'coordinates': [1, 2]}, 'not_a_feature'),
    ({'type': 'Feature', 'properties': {}}, 'bad_geometry'),
    ({'type': 'Feature', 'geometry': {'type': 'LineString', 'coordinates': []},
      'properties': {}}, 'bad_geometry'),
    ({'type': 'Feature', 'geometry': {'type': 'Point', 'coordinates': [1]}},
     'bad_geometry'),
    ({'type': 'Feature', 'geometry': {'type': 'Point', 'coordinates': ['1', 2]}},
     'bad_geometry'),
    ({'type': 'Feature', 'geometry': {'type': 'Point', 'coordinates': [200.0, 2.0]}},
     'bad_geometry'),
    ({'type': 'Feature', 'geometry': None, 'properties': 'x'}, 'bad_properties'),
    ({'type': 'Feature', 'geometry': None, 'properties': None}, None),
    ({'type': 'Feature', 'geometry': {'type': 'Point', 'coordinates': [4.3, 52.0]},
      'properties': {}}, None),
])
def test_feature_rejection_reason(value: object, reason: str | None) -> None:
    assert feature_rejection_reason(value) == reason


# A JSON integer too large for a float: float() of it raises OverflowError.
HUGE = 10 ** 400


def point(coordinates: list, properties: dict | None = None) -> dict:
    return {'type': 'Feature', 'geometry': {'type': 'Point', 'coordinates': coordinates},
            'properties': {} if properties is None else properties}


@pytest.mark.parametrize(('value', 'reason'), [
    (point([HUGE, 0]), 'bad_geometry'),
    (point([0, -HUGE]), 'bad_geometry'),
    (point([4.3, 52.0, HUGE]), 'bad_geometry'),
    (point([4.3, 52.0, 1e300]), 'bad_geometry'),     # would become the ENU origin
    (point([4.3, 52.0, -100001.0]), 'bad_geometry'),
    (point([4.3, 52.0, 1e5]), None),
    (point([4.3, 52.0, -400.0]), None),
    (point([4.3, 52.0], {'confidence': HUGE}), 'bad_properties'),
    (point([4.3, 52.0], {'confidence': math.inf}), 'bad_properties'),
    (point([4.3, 52.0], {'stamp': {'sec': HUGE, 'nanosec': 0}}), 'bad_properties'),
    (point([4.3, 52.0], {'stamp': {'sec': 1, 'nanosec': HUGE}}), 'bad_properties'),
    (point([4.3, 52.0], {'stamp': {'sec': HUGE}}), 'bad_properties'),
    ({'type': 'Feature', 'geometry': None, 'properties': {'confidence': -HUGE}},
     'bad_properties'),
    # Not numbers at all: tolerated, the readers take them as absent.
    (point([4.3, 52.0], {'confidence': 'high', 'stamp': {'sec': '1'}}), None),
    (point([4.3, 52.0], {'confidence': 1, 'stamp': {'sec': 10 ** 9, 'nanosec': 5}}), None),
])
def test_numbers_that_are_not_finite_floats_are_refused(value: dict, reason: str | None
                                                        ) -> None:
    assert feature_rejection_reason(value) == reason


def test_accessors_never_raise_on_huge_integers() -> None:
    assert finite_number(HUGE) is None and finite_number(-HUGE) is None
    assert finite_number(True) is None and finite_number('1') is None
    assert finite_number(math.nan) is None and finite_number(7) == 7.0
    assert feature_position(point([HUGE, 0])) is None
    assert feature_position(point([4.3, 52.0, HUGE])) is None
    assert feature_position(point(['4.3', 52.0])) is None
    assert feature_position(point([4, 52])) == (52.0, 4.0, 0.0)
    assert feature_confidence(point([0, 0], {'confidence': HUGE})) == 0.0
    assert feature_confidence(point([0, 0], {'confidence': 3})) == 3.0
    assert feature_stamp_s(point([0, 0], {'stamp': {'sec': HUGE, 'nanosec': 0}})) is None
    assert feature_stamp_s(point([0, 0], {'stamp': {'sec': 1, 'nanosec': HUGE}})) is None
    assert feature_stamp_s(point([0, 0], {'stamp': {'sec': 2, 'nanosec': 500_000_000}})) \
        == pytest.approx(2.5)


def test_reader_skips_and_counts_records_with_huge_numbers(tmp_path: Path) -> None:
    path = tmp_path / 'huge.geojsons'
    big = '1' + '0' * 400
    good = feature_at(1.0, 1.0, sec=1)
    path.write_bytes(
        encode_record(good)
        + RECORD_SEPARATOR + f'{{"type":"Feature","geometry":{{"type":"Point",'
        f'"coordinates":[0,{big}]}},"properties":{{}}}}\n'.encode()
        + RECORD_SEPARATOR + f'{{"type":"Feature","geometry":null,'
        f'"properties":{{"confidence":{big}}}}}\n'.encode()
        + RECORD_SEPARATOR + f'{{"type":"Feature","geometry":null,'
        f'"properties":{{"stamp":{{"sec":{big},"nanosec":0}}}}}}\n'.encode()
        + RECORD_SEPARATOR + b'{"type":"Feature","geometry":null,'
        b'"properties":{"confidence":1e400}}\n'
        + encode_record(feature_at(3.0, 3.0, sec=3)))
    features, stats = scan_geojson_seq(path)
    assert [feature_stamp_s(f) for f in features] == pytest.approx([1.0, 3.0])
    assert (stats.records, stats.skipped, stats.truncated_tail) == (2, 4, False)
    collection = tmp_path / 'huge.geojson'
    collection.write_text(
        '{"type":"FeatureCollection","features":[' + json.dumps(good) + ','
        f'{{"type":"Feature","geometry":{{"type":"Point","coordinates":[{big},0]}}}}]}}')
    assert read_features(collection) == [good]


@pytest.mark.parametrize(('value', 'depth'), [
    (1, 0), ('text', 0), ({}, 1), ([], 1), ({'a': [1, {'b': []}]}, 4),
    ([[[]], [[[[]]]]], 5),
])
def test_json_depth(value: object, depth: int) -> None:
    assert json_depth(value) == depth


def test_json_depth_needs_no_stack() -> None:
    """A structure far deeper than Python's recursion limit is measured (up to the limit)."""
    deep: list = []
    for _ in range(100_000):
        deep = [deep]
    assert json_depth(deep) == MAX_JSON_DEPTH + 1
    assert json_depth(deep, limit=200_000) == 100_001


def test_reader_skips_and_counts_records_nested_too_deeply(tmp_path: Path) -> None:
    """One record that overflows the parser, one nested past the limit: both skipped."""
    path = tmp_path / 'deep.geojsons'
    too_deep = feature_at(2.0, 2.0, sec=2)
    nested: list = []
    for _ in range(MAX_JSON_DEPTH):
        nested = [nested]
    too_deep['properties']['note'] = nested
    path.write_bytes(
        encode_record(feature_at(1.0, 1.0, sec=1))
        + RECORD_SEPARATOR + b'[' * 100_000 + b']' * 100_000 + b'\n'
        + RECORD_SEPARATOR + json.dumps(too_deep).encode() + b'\n'
        + encode_record(feature_at(3.0, 3.0, sec=3)))
    features, stats = scan_geojson_seq(path)
    assert [feature_stamp_s(f) for f in features] == pytest.approx([1.0, 3.0])
    assert (stats.records, stats.skipped, stats.truncated_tail) == (2, 2, False)
    # In a FeatureCollection only the deep feature is left out.
    collection = tmp_path / 'deep.geojson'
    collection.write_text(json.dumps(feature_collection([feature_at(1.0, 1.0, sec=1),
                                                         too_deep])))
    assert [feature_stamp_s(f) for f in read_features(collection)] == pytest.approx([1.0])


def test_detection_with_a_2d_fix_has_a_2d_point() -> None:
    fix = GeoFix(10.5, 52.0, 4.3, math.nan, horizontal_accuracy_m=2.5)
    feature = detection_feature(
        stamp_sec=10, stamp_nanosec=500_000_000, frame_id='camera',
        classification=classification(LATE_BLIGHT, 0.875, index=29),
        fix_lookup=FixLookup('interpolated', fix, 0.0))
    assert feature['geometry'] == {'type': 'Point', 'coordinates': [4.3, 52.0]}
    assert json.loads(json.dumps(feature, allow_nan=False)) == feature
    assert feature_rejection_reason(feature) is None
    # The map takes a 2-D position at altitude 0.
    assert feature_position(feature) == (52.0, 4.3, 0.0)


def test_writer_appends_rs_prefixed_fsynced_records(tmp_path: Path,
                                                    monkeypatch: pytest.MonkeyPatch) -> None:
    synced: list[int] = []
    real_fsync = os.fsync

    def counting_fsync(descriptor: int) -> None:
        synced.append(descriptor)
        real_fsync(descriptor)

    monkeypatch.setattr(map_file.os, 'fsync', counting_fsync)
    path = tmp_path / 'run.geojsons'
    features = [feature_at(index, 0.0, sec=index) for index in range(3)]
    with GeoJsonSeqWriter(path) as writer:
        for feature in features:
            before = len(synced)
            writer.append(feature)
            # Durable before append returns: one fsync per record.
            assert len(synced) == before + 1
        assert writer.records_written == 3
    data = path.read_bytes()
    lines = data.split(b'\n')
    assert lines[-1] == b''
    for line, feature in zip(lines[:-1], features, strict=True):
        assert line.startswith(RECORD_SEPARATOR)
        assert json.loads(line[1:]) == feature
    assert read_geojson_seq(path) == features


def test_writer_continues_an_existing_file(tmp_path: Path) -> None:
    path = tmp_path / 'run.geojsons'
    first = [feature_at(0.0, 0.0, sec=1), feature_at(1.0, 0.0, sec=2)]
    with GeoJsonSeqWriter(path) as writer:
        for feature in first:
            writer.append(feature)
    before = path.read_bytes()
    with GeoJsonSeqWriter(path) as writer:
        writer.append(feature_at(2.0, 0.0, sec=3))
    assert path.read_bytes().startswith(before)
    assert [feature_stamp_s(f) for f in read_geojson_seq(path)] == pytest.approx(
        [1.0, 2.0, 3.0])


def test_truncated_last_record_is_dropped_then_isolated(tmp_path: Path) -> None:
    path = tmp_path / 'run.geojsons'
    complete = [feature_at(0.0, 0.0, sec=1), feature_at(3.0, 4.0, sec=2)]
    with GeoJsonSeqWriter(path) as writer:
        for feature in complete:
            writer.append(feature)
    # A kill -9 in the middle of a write leaves part of a record.
    with open(path, 'ab') as handle:
        handle.write(encode_record(feature_at(5.0, 5.0, sec=3))[:40])
    features, stats = scan_geojson_seq(path)
    assert features == complete
    assert stats.truncated_tail and stats.skipped == 0 and stats.records == 2

    # The next session terminates the fragment so the new record stays parseable.
    with GeoJsonSeqWriter(path) as writer:
        writer.append(feature_at(6.0, 6.0, sec=4))
    features, stats = scan_geojson_seq(path)
    assert [feature_stamp_s(f) for f in features] == pytest.approx([1.0, 2.0, 4.0])
    assert stats.skipped == 1 and not stats.truncated_tail
    lines = path.read_bytes().split(b'\n')
    assert lines[2].startswith(RECORD_SEPARATOR) and b'\n' not in lines[2]



def test_a_cut_off_record_on_a_full_disk_is_ended_with_the_first_append(
        tmp_path: Path) -> None:
    """The line feed a cut-off record needs does not fit: the writer opens all the same.

    A real 64 KiB tmpfs (needs root): a page-sized file whose line feed needs a new page.
    """
    with small_filesystem(tmp_path / 'disk', size_kib=64) as disk:
        path = disk / 'run.geojsons'
        whole = encode_record(feature_at(1.0, 1.0, sec=12345))
        before = whole * (4096 // len(whole))
        before += encode_record(feature_at(2.0, 2.0, sec=2))[:4096 - len(before)]
        assert len(before) == 4096 and not before.endswith(b'\n')
        path.write_bytes(before)
        filler = disk / 'filler'
        fill(filler)
        with GeoJsonSeqWriter(path) as writer:
            assert writer.repair_error is not None
            assert 'No space left' in str(writer.repair_error)
            with pytest.raises(OSError, match='No space left'):
                writer.append(feature_at(3.0, 3.0, sec=3))
            assert path.read_bytes() == before
            assert not writer.repair()
            filler.unlink()
            writer.append(feature_at(4.0, 4.0, sec=4))
            assert writer.repair_error is None and writer.repair()
        assert path.read_bytes() == before + b'\n' + encode_record(feature_at(4.0, 4.0, sec=4))
        features, stats = scan_geojson_seq(path)
        assert (stats.skipped, stats.truncated_tail) == (1, False)
        assert feature_stamp_s(features[-1]) == pytest.approx(4.0)


def test_reader_skips_and_counts_bad_records(tmp_path: Path, caplog) -> None:
    path = tmp_path / 'mixed.geojsons'
    good = feature_at(1.0, 1.0, sec=1)
    path.write_bytes(
        encode_record(good)
        + RECORD_SEPARATOR + b'{"type": "Feature", "geometry": nu\n'    # garbage
        + RECORD_SEPARATOR + b'[1, 2, 3]\n'                              # not a Feature
        + RECORD_SEPARATOR + b'{"type":"Feature","geometry":null,"properties":{"x":NaN}}\n'
        + RECORD_SEPARATOR + b'\n'                                      # empty: ignored
        + RECORD_SEPARATOR + b'{\n  "type": "Feature",\n  "geometry": null,\n'
        b'  "properties": {"label": "Tomato___healthy"}\n}\n'            # pretty-printed
        + json.dumps(good).encode() + b'\n')                             # no RS (NDJSON)
    features, stats = scan_geojson_seq(path)
    assert len(features) == 3
    assert features[1]['properties'] == {'label': 'Tomato___healthy'}
    assert stats.skipped == 3 and not stats.truncated_tail
    with caplog.at_level('WARNING'):
        assert len(read_geojson_seq(path)) == 3
    assert 'skipped 3' in caplog.text


def test_collection_files_are_written_atomically(tmp_path: Path) -> None:
    features = [feature_at(index, 2.0 * index, sec=index) for index in range(5)]
    features.append(feature_at(None, None, sec=9))
    target = tmp_path / 'out' / 'run.geojson'
    assert write_feature_collection(target, iter(features)) == 6
    assert json.loads(target.read_text()) == feature_collection(features)
    assert read_features(target) == features
    summary_path = write_json_atomic(tmp_path / 'out' / 'summary.json', {'a': [1, 2]})
    assert json.loads(summary_path.read_text()) == {'a': [1, 2]}
    assert sorted(p.name for p in target.parent.iterdir()) == ['run.geojson', 'summary.json']
    assert oct(target.stat().st_mode & 0o777) == oct(0o666 & ~_umask())
    with pytest.raises(ValueError):
        write_feature_collection(target, [{'type': 'Feature', 'bad': float('nan')}])
    # A failed write leaves the previous file intact and no temporary behind.
    assert read_features(target) == features
    assert sorted(p.name for p in target.parent.iterdir()) == ['run.geojson', 'summary.json']


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


def test_read_features_by_content(tmp_path: Path) -> None:
    features = [feature_at(1.0, 1.0, sec=1), feature_at(None, None, sec=2)]
    sequence = tmp_path / 'run.geojsons'
    with GeoJsonSeqWriter(sequence) as writer:
        for feature in features:
            writer.append(feature)
    single = tmp_path / 'one.geojson'
    single.write_text(json.dumps(features[0]))
    assert read_features(sequence) == features
    assert read_features(single) == [features[0]]
    odd = tmp_path / 'odd.geojson'
    odd.write_text('{"type": "Topology"}')
    with pytest.raises(ValueError, match='neither'):
        read_features(odd)


def test_a_write_cut_short_by_a_full_disk_leaves_no_partial_record(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """ENOSPC after part of a record: the file is cut back to its last whole record."""
    path = tmp_path / 'run.geojsons'
    real_write = os.write
    with GeoJsonSeqWriter(path) as writer:
        writer.append({'type': 'Feature', 'geometry': None, 'properties': {'n': 1}})
        before = path.read_bytes()

        def write_half_then_fail(descriptor: int, data: bytes) -> int:
            if len(data) > 4:
                return real_write(descriptor, bytes(data)[:len(data) // 2])
            raise OSError(28, 'No space left on device')

        monkeypatch.setattr(map_file.os, 'write', write_half_then_fail)
        with pytest.raises(OSError, match='No space'):
            writer.append({'type': 'Feature', 'geometry': None, 'properties': {'n': 2}})
        assert path.read_bytes() == before
        monkeypatch.setattr(map_file.os, 'write', real_write)
        writer.append({'type': 'Feature', 'geometry': None, 'properties': {'n': 3}})
    assert [item['properties']['n'] for item in read_geojson_seq(path)] == [1, 3]
    assert path.read_bytes().count(RECORD_SEPARATOR) == 2
