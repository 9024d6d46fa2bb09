"""``plant-disease map`` with the inputs a field team's laptop gives it: runs of two models,
a copy cut short, one run given twice, a swapped origin, a failed write."""

from __future__ import annotations

import errno
import hashlib
import json
import os
from pathlib import Path

import pytest

from plant_disease_ros.cli import main as cli
from plant_disease_ros.core.geodesy import enu_to_geodetic
from plant_disease_ros.core.map_file import GeoJsonSeqWriter, write_feature_collection

DATUM = (47.3769, 8.5417, 410.0)
EARLY = 'Tomato___Early_blight'
HEALTHY = 'Tomato___healthy'


def detection(east: float, north: float | None, label: str) -> dict:
    """Return a detection Feature at ENU ``east, north`` from DATUM (north None: unlocated)."""
    geometry = None
    if north is not None:
        lat, lon, alt = enu_to_geodetic(east, north, 0.0, *DATUM)
        geometry = {'type': 'Point', 'coordinates': [lon, lat, alt]}
    return {'type': 'Feature', 'geometry': geometry, 'properties': {
        'label': label, 'confidence': 0.9, 'healthy': label.endswith('healthy')}}


def run_map(*arguments: str | Path) -> int:
    """Run ``plant-disease map`` with ``arguments``; return its exit status."""
    return cli.main(['map', *map(str, arguments)])


def digests(folder: Path) -> dict[str, str]:
    """Return the sha256 of every file in ``folder`` by name (temporaries included)."""
    return {path.name: hashlib.sha256(path.read_bytes()).hexdigest()
            for path in sorted(folder.iterdir())}


def monday_drawn_tuesday_written(folder: Path) -> tuple[Path, dict[str, str]]:
    """Draw monday.geojson as map.png in ``folder`` and write tuesday.geojson beside it;
    return tuesday's path and the folder's digests (the outputs a failed redraw keeps)."""
    first, second = folder / 'monday.geojson', folder / 'tuesday.geojson'
    write_feature_collection(first, [detection(0.0, 0.0, EARLY)])
    write_feature_collection(second, [detection(0.0, 0.0, HEALTHY),
                                      detection(9.0, 9.0, EARLY)])
    assert run_map(first, '--out', folder / 'map.png') == 0
    return second, digests(folder)


@pytest.fixture(autouse=True)
def _map_libraries() -> None:
    pytest.importorskip('matplotlib')
    pytest.importorskip('pyogrio')


def test_labels_differing_only_in_case_get_their_own_geopackage_columns(
        tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    """Two models' runs, one label spelled in two cases: a GeoPackage ignores the case of
    column names, so the second count is numbered instead of GDAL refusing the layer (it
    did, after the PNG and grid GeoJSON had been replaced)."""
    import pyogrio

    left, right = tmp_path / 'left.geojson', tmp_path / 'right.geojson'
    write_feature_collection(left, [detection(0.0, 0.0, EARLY), detection(4.0, 0.0, EARLY)])
    write_feature_collection(right, [detection(0.2, 0.0, EARLY.lower())])
    assert run_map(left, right, '--out', tmp_path / 'field.png') == 0
    printed = capsys.readouterr().out
    assert f'{EARLY.lower()} as n_{EARLY.lower()}_2' in printed
    meta, _, _, columns = pyogrio.raw.read(tmp_path / 'field_grid.gpkg')
    rows = [dict(zip(meta['fields'], values, strict=True))
            for values in zip(*columns, strict=True)]
    # Cell (0, 0) holds one of each spelling, cell (2, 0) the other upper-case one.
    assert sorted((int(row['cell_e']), int(row[f'n_{EARLY}']),
                   int(row[f'n_{EARLY.lower()}_2'])) for row in rows) == [(0, 1, 1), (2, 1, 0)]
    # The GeoJSON keeps the labels as they are.
    grid = json.loads((tmp_path / 'field_grid.geojson').read_text(encoding='utf-8'))
    assert {f'n_{EARLY}', f'n_{EARLY.lower()}'} <= set(grid['features'][0]['properties'])
    assert sorted(path.name for path in tmp_path.iterdir()) == [
        'field.png', 'field_grid.geojson', 'field_grid.gpkg', 'left.geojson', 'right.geojson']


@pytest.mark.parametrize('failing', ['png', 'geopackage'])
def test_a_failed_write_leaves_all_three_outputs_as_they_were(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture,
        failing: str) -> None:
    """The PNG or the GeoPackage cannot be written (a full disk, simulated: the writer
    fails): the earlier map's PNG and grid files stay together, and no temporary is left.
    (A failed GeoPackage used to leave the new PNG and grid GeoJSON beside the old one.)"""
    import pyogrio.raw

    from plant_disease_ros.core import map_render

    second, before = monday_drawn_tuesday_written(tmp_path)

    def disk_full(*args: object, **kwargs: object) -> None:
        raise OSError(errno.ENOSPC, 'No space left on device')

    if failing == 'png':
        monkeypatch.setattr(map_render, 'render_disease_map', disk_full)
    else:
        monkeypatch.setattr(pyogrio.raw, 'write', disk_full)
    capsys.readouterr()
    assert run_map(second, '--out', tmp_path / 'map.png') == 2
    assert 'No space left on device' in capsys.readouterr().err
    assert digests(tmp_path) == before


def test_a_map_without_a_located_detection_removes_the_earlier_geopackage(
        tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    """No cell, no GeoPackage: the one an earlier run left under the same name would lie
    beside the new PNG as if it were its grid."""
    located, unlocated = tmp_path / 'a.geojson', tmp_path / 'b.geojson'
    write_feature_collection(located, [detection(0.0, 0.0, EARLY)])
    write_feature_collection(unlocated, [detection(0.0, None, EARLY)])
    assert run_map(located, '--out', tmp_path / 'map.png') == 0
    assert (tmp_path / 'map_grid.gpkg').is_file()
    capsys.readouterr()
    assert run_map(unlocated, '--out', tmp_path / 'map.png', '--origin', *DATUM) == 0
    printed = capsys.readouterr().out
    assert not (tmp_path / 'map_grid.gpkg').exists()
    assert 'the earlier map_grid.gpkg was removed' in printed
    grid = json.loads((tmp_path / 'map_grid.geojson').read_text(encoding='utf-8'))
    assert grid['features'] == []


def test_a_detection_with_null_properties_is_drawn(tmp_path: Path,
                                                    capsys: pytest.CaptureFixture) -> None:
    """``"properties": null`` is valid GeoJSON (RFC 7946): drawn as ``unknown``."""
    bare = detection(1.0, 1.0, EARLY)
    bare['properties'] = None
    source = tmp_path / 'odd.geojson'
    write_feature_collection(source, [detection(0.0, 0.0, EARLY), bare])
    assert run_map(source, '--origin', *DATUM) == 0
    assert '2 detection(s), 2 located' in capsys.readouterr().out
    assert (tmp_path / 'odd.png').stat().st_size > 0


def test_one_run_given_twice_is_refused(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    """The same file twice, or a run's saved .geojson with its .geojsons records (a glob
    such as ``*.geojson*``), would count every detection twice."""
    features = [detection(0.0, 0.0, EARLY), detection(3.0, 0.0, HEALTHY)]
    saved, records = tmp_path / 'day.geojson', tmp_path / 'day.geojsons'
    with GeoJsonSeqWriter(records) as writer:
        for feature in features:
            writer.append(feature)
    write_feature_collection(saved, features)
    os.utime(records, (1_700_000_000,) * 2)  # saved after the last record
    for inputs, said in (((saved, saved), 'is given twice'),
                         ((saved, records), 'are the same run'),
                         ((records, tmp_path / '.' / 'day.geojson'), 'are the same run')):
        capsys.readouterr()
        assert run_map(*inputs, '--out', tmp_path / 'both.png') == 2
        error = capsys.readouterr().err
        assert said in error and 'count twice' in error
    assert not (tmp_path / 'both.png').exists()
    other = tmp_path / 'day-2.geojson'
    write_feature_collection(other, features)
    assert run_map(saved, other, '--out', tmp_path / 'both.png') == 0
    assert '4 detection(s)' in capsys.readouterr().out


@pytest.mark.parametrize('text', ['', '\n \n', '{"type":"FeatureCollection","features":[\n'])
def test_an_empty_or_cut_file_is_refused_and_the_earlier_map_kept(
        tmp_path: Path, capsys: pytest.CaptureFixture, text: str) -> None:
    """A copy to the laptop cut short leaves an empty file or a bare head: an error, not an
    empty map written over the one drawn before."""
    source = tmp_path / 'day.geojson'
    write_feature_collection(source, [detection(0.0, 0.0, EARLY)])
    assert run_map(source) == 0
    before = digests(tmp_path)
    source.write_text(text, encoding='utf-8')
    before['day.geojson'] = hashlib.sha256(text.encode()).hexdigest()
    capsys.readouterr()
    assert run_map(source) == 2
    assert 'no map to draw' in capsys.readouterr().err
    assert digests(tmp_path) == before
    source.write_text('{"type":"FeatureCollection","features":[]}', encoding='utf-8')
    assert run_map(source, '--origin', *DATUM) == 0  # a run without detections is a map
    assert '0 detection(s)' in capsys.readouterr().out


def test_an_origin_far_from_every_detection_is_refused(tmp_path: Path,
                                                       capsys: pytest.CaptureFixture) -> None:
    """LAT and LON swapped put the origin 4,000 km away: every cell polygon would miss its
    detections. An origin a few km off (another corner of the farm) is fine."""
    source = tmp_path / 'day.geojson'
    write_feature_collection(source, [detection(0.0, 0.0, EARLY)])
    assert run_map(source, '--origin', DATUM[1], DATUM[0], DATUM[2]) == 2
    error = capsys.readouterr().err
    assert 'LAT and LON swapped?' in error and 'km from the nearest located detection' in error
    assert not (tmp_path / 'day.png').exists()
    corner = enu_to_geodetic(3000.0, -2000.0, 0.0, *DATUM)
    assert run_map(source, '--origin', *corner) == 0


def test_a_later_runs_grid_is_named_when_the_first_run_has_none(
        tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    """Only the second camera's run has a recorder summary: its grid is not the one drawn,
    and the command says so (it said nothing)."""
    first, second = tmp_path / 'left.geojson', tmp_path / 'right.geojson'
    write_feature_collection(first, [detection(0.0, 0.0, EARLY)])
    write_feature_collection(second, [detection(1.0, 0.0, EARLY)])
    (tmp_path / 'right_summary.json').write_text(json.dumps(
        {'cell_size_m': 5.0, 'origin': dict(zip(('latitude', 'longitude', 'altitude'), DATUM,
                                                strict=True))}), encoding='utf-8')
    assert run_map(first, second, '--out', tmp_path / 'both.png') == 0
    printed = capsys.readouterr().out
    assert ('right.geojson: its recorder had a grid, the first input has none' in printed
            and "drawn on the first located detection's origin" in printed)
    assert 'of 2 m' in printed  # the default cell, not the right recorder's 5 m


def test_an_interrupt_before_the_renames_keeps_every_old_output_and_one_during_them_none(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Ctrl-C while the GeoPackage is flushed: the three old outputs stay. Ctrl-C while the
    files are renamed is held back until the last rename: the three new outputs stand."""
    import signal

    from plant_disease_ros.core import atomic_files

    second, before = monday_drawn_tuesday_written(tmp_path)
    flush = atomic_files._fsync_file

    def interrupted_flush(path: Path) -> None:
        if path.suffix == '.gpkg':
            raise KeyboardInterrupt
        flush(path)

    monkeypatch.setattr(atomic_files, '_fsync_file', interrupted_flush)
    assert run_map(second, '--out', tmp_path / 'map.png') == 130
    assert digests(tmp_path) == before
    monkeypatch.setattr(atomic_files, '_fsync_file', flush)

    rename = os.replace
    renamed: list[str] = []
    outputs = ('map.png', 'map_grid.geojson', 'map_grid.gpkg')

    def interrupted_rename(source: Path, target: Path) -> None:
        final = Path(target).name in outputs  # not a writer's own temporary-to-temporary
        if final and not renamed:
            os.kill(os.getpid(), signal.SIGINT)  # held back until the last rename
        rename(source, target)
        if final:
            renamed.append(Path(target).name)

    monkeypatch.setattr(atomic_files.os, 'replace', interrupted_rename)
    assert run_map(second, '--out', tmp_path / 'map.png') == 130
    assert sorted(renamed) == list(outputs)
    after = digests(tmp_path)
    assert sorted(after) == sorted(before)  # no temporary left
    assert all(after[name] != before[name] for name in renamed)


def test_only_ascii_letter_case_is_taken_as_the_same_column() -> None:
    """SQLite folds the case of ASCII letters only: 'Straße' and 'STRASSE', or 'Ä' and 'ä',
    are two columns and keep their names; 'a' and 'A' are one."""
    from plant_disease_ros.core.map_gis import geopackage_names

    names = geopackage_names(['n_Straße', 'n_STRASSE', 'n_Ä', 'n_ä', 'n_a', 'n_A'])
    assert names == {'n_Straße': 'n_Straße', 'n_STRASSE': 'n_STRASSE', 'n_Ä': 'n_Ä',
                     'n_ä': 'n_ä', 'n_a': 'n_a', 'n_A': 'n_A_2'}


def test_a_saved_run_and_its_newer_records_are_refused_under_the_names_given(
        tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    """day.geojson (saved) with day.geojsons written after it: both draw the records file;
    the refusal names the two files given, not one file twice."""
    features = [detection(0.0, 0.0, EARLY)]
    saved, records = tmp_path / 'day.geojson', tmp_path / 'day.geojsons'
    write_feature_collection(saved, features)
    with GeoJsonSeqWriter(records) as writer:
        writer.append(features[0])
    os.utime(saved, (1_700_000_000,) * 2)
    assert run_map(saved, records, '--out', tmp_path / 'both.png') == 2
    error = capsys.readouterr().err
    assert f'{saved} and {records} are the same run' in error
