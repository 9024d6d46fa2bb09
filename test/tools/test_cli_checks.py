"""map, bench, make-demo and search: options and paths checked before anything is written."""

from __future__ import annotations

from collections.abc import Sequence
import io
import json
from pathlib import Path
import subprocess
import sys

from conftest import DATA_DIR
import pytest

from plant_disease_ros.cli import main as cli
from plant_disease_ros.tools.replay.progress import StatusLine

# One located detection, as disease_map_recorder writes it.
FEATURE = {
    'type': 'Feature',
    'geometry': {'type': 'Point', 'coordinates': [5.0, 52.0, 10.0]},
    'properties': {'label': 'Tomato___Early_blight', 'score': 0.9,
                   'stamp': {'sec': 1_700_000_000, 'nanosec': 0}},
}


def run_cli(args: Sequence[str], capsys: pytest.CaptureFixture[str]) -> tuple[int, str, str]:
    """Run ``plant-disease`` in-process; return (status, stdout, stderr)."""
    status = cli.main(list(args))
    captured = capsys.readouterr()
    return status, captured.out, captured.err


def collection(path: Path, features: list[dict] | None = None) -> Path:
    """Write a FeatureCollection GeoJSON file; return its path."""
    path.write_text(json.dumps({'type': 'FeatureCollection',
                                'features': [FEATURE] if features is None else features}))
    return path


def snapshot(folder: Path) -> dict[str, bytes]:
    """Return the name and content of every file under ``folder``."""
    return {str(path.relative_to(folder)): path.read_bytes()
            for path in sorted(folder.rglob('*')) if path.is_file()}


# map ---------------------------------------------------------------------------------------


PNG_BYTES = b'\x89PNG\r\n\x1a\n' + bytes(range(256)) * 4


@pytest.mark.parametrize('name', ['photo.png', 'noise.geojson', 'binary.geojsons'])
def test_map_refuses_a_file_that_is_not_geojson(tmp_path: Path, name: str,
                                                capsys: pytest.CaptureFixture[str]) -> None:
    """A PNG or binary input: exit 2, 'not a GeoJSON file', the input untouched, no output."""
    source = tmp_path / name
    source.write_bytes(PNG_BYTES if name.endswith('.png') else b'\x00\xff\xfe{bad')
    status, out, err = run_cli(['map', str(source)], capsys)
    assert status == 2
    assert err == (f'plant-disease map: error: {source}: not a GeoJSON file (no readable '
                   'Feature, FeatureCollection or GeoJSON text sequence record)\n')
    assert out == ''
    assert snapshot(tmp_path) == {name: source.read_bytes()}
    assert source.read_bytes() == (PNG_BYTES if name.endswith('.png') else b'\x00\xff\xfe{bad')


def test_map_never_writes_over_its_input(tmp_path: Path,
                                         capsys: pytest.CaptureFixture[str]) -> None:
    """An input named like the grid output of --out: refused, the input unchanged."""
    source = collection(tmp_path / 'field_grid.geojson')
    before = snapshot(tmp_path)
    status, _, err = run_cli(['map', str(source), '--out', str(tmp_path / 'field.png')],
                             capsys)
    assert status == 2 and err.strip().count('\n') == 0
    assert f'{source} is the input file' in err
    assert snapshot(tmp_path) == before


def test_map_out_without_suffix_writes_and_prints_the_png(
        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """--out outdir: the printed path is the PNG written (outdir.png), its grid beside it."""
    source = collection(tmp_path / 'map.geojson')
    status, out, _ = run_cli(['map', str(source), '--out', str(tmp_path / 'outdir')], capsys)
    assert status == 0
    png = tmp_path / 'outdir.png'
    assert out.splitlines()[0].startswith(f'wrote {png}: 1 detection(s)')
    assert png.read_bytes().startswith(b'\x89PNG')
    assert not (tmp_path / 'outdir').exists()
    assert (tmp_path / 'outdir_grid.geojson').is_file()


def test_map_refuses_an_out_that_is_not_png(tmp_path: Path,
                                            capsys: pytest.CaptureFixture[str]) -> None:
    """--out with another suffix: one line, nothing written."""
    source = collection(tmp_path / 'map.geojson')
    before = snapshot(tmp_path)
    status, _, err = run_cli(['map', str(source), '--out', str(tmp_path / 'map.jpg')], capsys)
    assert status == 2 and err == f'plant-disease map: error: --out must be a .png file, ' \
                                  f'got {tmp_path / "map.jpg"}\n'
    assert snapshot(tmp_path) == before


@pytest.mark.parametrize(('options', 'message'), [
    (['--cell-size', 'inf'], '--cell-size must be a finite number > 0, got inf'),
    (['--cell-size', 'nan'], '--cell-size must be a finite number > 0, got nan'),
    (['--cell-size', '0'], '--cell-size must be a finite number > 0, got 0.0'),
    (['--origin', 'nan', '0', '0'], '--origin LAT must be a finite number in [-90, 90], got nan'),
    (['--origin', '52', 'inf', '0'],
     '--origin LON must be a finite number in [-180, 180], got inf'),
    (['--origin', '52', '5', 'nan'], '--origin ALT must be a finite number, got nan'),
    (['--origin', '91', '5', '0'], '--origin LAT must be a finite number in [-90, 90], got 91.0'),
])
def test_map_options_are_checked_before_anything_is_written(
        tmp_path: Path, capsys: pytest.CaptureFixture[str], options: list[str],
        message: str) -> None:
    """An infinite or NaN cell size or origin: one line, exit 2, an existing PNG unchanged."""
    source = collection(tmp_path / 'map.geojson')
    (tmp_path / 'map.png').write_bytes(b'previous map')
    before = snapshot(tmp_path)
    status, out, err = run_cli(['map', str(source), *options], capsys)
    assert status == 2 and out == ''
    assert err == f'plant-disease map: error: {message}\n'
    assert snapshot(tmp_path) == before


def test_map_takes_the_recorders_grid_from_the_run_summary(
        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """A run recorded with 5 m cells from a datum: the grid file has those cells."""
    source = collection(tmp_path / 'field.geojson')
    (tmp_path / 'field_summary.json').write_text(json.dumps({
        'cell_size_m': 5.0, 'origin': {'latitude': 52.0, 'longitude': 5.0, 'altitude': 0.0}}))
    status, out, _ = run_cli(['map', str(source)], capsys)
    assert status == 0
    assert out.splitlines()[0] == ('grid of the recorder (field_summary.json): cells of 5 m, '
                                   'origin 52.0000000, 5.0000000')
    # A summary from before cells were centred on the origin is said to be one.
    assert out.splitlines()[1].startswith('field_summary.json predates cells centred')
    assert 'diseased cell(s) of 5 m' in out
    (tmp_path / 'field_summary.json').write_text(json.dumps({
        'cell_size_m': 5.0, 'cell_alignment': 'centred',
        'origin': {'latitude': 52.0, 'longitude': 5.0, 'altitude': 0.0}}))
    status, out, _ = run_cli(['map', str(source)], capsys)
    assert status == 0 and 'predates' not in out
    # A cell size given on the command line wins, and the grid line says so.
    status, out, _ = run_cli(['map', str(source), '--cell-size', '3'], capsys)
    assert status == 0 and 'diseased cell(s) of 3 m' in out
    assert out.splitlines()[0] == ('grid of the recorder (field_summary.json): origin '
                                   '52.0000000, 5.0000000; cells of 3 m from --cell-size')
    # So does an origin given: the grid line names it, not the recorder's.
    status, out, _ = run_cli(['map', str(source), '--origin', '52.01', '5.02', '190'],
                             capsys)
    assert status == 0
    assert out.splitlines()[0] == ('grid of the recorder (field_summary.json): cells of 5 m; '
                                   'origin 52.0100000, 5.0200000 from --origin')
    # A summary without a usable grid is said to be so; the default grid is used.
    (tmp_path / 'field_summary.json').write_text(json.dumps({'cell_size_m': -1}))
    status, out, _ = run_cli(['map', str(source)], capsys)
    assert status == 0
    assert out.splitlines()[0] == ('field_summary.json: no usable grid in it (not a recorder '
                                   'summary?): the default grid')
    assert 'diseased cell(s) of 2 m' in out


def test_map_of_a_layer_without_detections_is_refused_not_an_empty_map(
        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """Its own grid polygons given back to map: one line saying so, nothing written."""
    polygon = {'type': 'Feature', 'properties': {'detections': 3},
               'geometry': {'type': 'Polygon', 'coordinates': [[[5, 52], [5.1, 52],
                                                                [5.1, 52.1], [5, 52]]]}}
    source = collection(tmp_path / 'field_grid.geojson', [polygon, polygon])
    status, out, err = run_cli(['map', str(source), '--out', str(tmp_path / 'x.png')], capsys)
    assert status == 2 and out == ''
    assert ('none of its 2 feature(s) is a detection (bad_geometry 2): a disease grid or '
            'another layer?' in err)
    assert snapshot(tmp_path) == {'field_grid.geojson': source.read_bytes()}
    # Mixed with detections: drawn, and the others are said to be left out.
    collection(tmp_path / 'mixed.geojson', [FEATURE, polygon])
    status, out, _ = run_cli(['map', str(tmp_path / 'mixed.geojson')], capsys)
    assert status == 0
    assert 'left out 1 feature(s) that are not detections (bad_geometry 1)' in out
    assert 'wrote ' in out and '1 detection(s)' in out


def test_map_of_a_collection_cut_short_reads_its_whole_features(
        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """A collection copied while it was written: the whole lines count, the cut one not."""
    from plant_disease_ros.core.map_file import write_feature_collection

    whole = tmp_path / 'whole.geojson'
    write_feature_collection(whole, [FEATURE] * 50)
    data = whole.read_bytes()
    cut = tmp_path / 'cut.geojson'
    cut.write_bytes(data[:len(data) // 2])
    status, out, _ = run_cli(['map', str(cut)], capsys)
    assert status == 0
    lines_before_cut = data[:len(data) // 2].count(b'\n') - 1  # the header line
    assert (f'cut.geojson: a FeatureCollection cut short: its {lines_before_cut} whole '
            'feature(s) read' in out)
    assert f'{lines_before_cut} detection(s)' in out


# bench -------------------------------------------------------------------------------------


@pytest.mark.parametrize('where', ['under_a_file', 'a_directory'])
def test_bench_out_is_checked_before_the_run(tmp_path: Path, where: str,
                                             capsys: pytest.CaptureFixture[str],
                                             monkeypatch: pytest.MonkeyPatch) -> None:
    """A --out the report cannot be written to: exit 2 before any bench part runs."""
    import plant_disease_ros.tools.bench as bench

    def must_not_run(*_: object) -> dict:
        raise AssertionError('the bench ran')

    monkeypatch.setattr(bench, 'run_bench', must_not_run)
    (tmp_path / 'afile').write_text('x')
    out = tmp_path / 'afile' / 'bench.json' if where == 'under_a_file' else tmp_path
    status, _, err = run_cli(['bench', '--quick', '--sections', 'model', '--out', str(out)],
                             capsys)
    assert status == 2 and err.strip().count('\n') == 0
    expected = (f'--out {out}: {tmp_path / "afile"} is not a directory'
                if where == 'under_a_file' else f'--out {out} is a directory')
    assert err == f'plant-disease bench: error: {expected}\n'


def test_bench_out_in_a_new_folder_is_accepted(tmp_path: Path,
                                               capsys: pytest.CaptureFixture[str],
                                               monkeypatch: pytest.MonkeyPatch) -> None:
    """A report in folders still to be created passes the check and is written."""
    import plant_disease_ros.tools.bench as bench

    monkeypatch.setattr(bench, 'run_bench', lambda config: {'errors': []})
    monkeypatch.setattr(bench, 'format_report', lambda report: 'table')
    out = tmp_path / 'new' / 'deeper' / 'bench.json'
    status, stdout, _ = run_cli(['bench', '--quick', '--sections', 'model', '--out', str(out)],
                                capsys)
    assert status == 0 and stdout.startswith('table')
    assert json.loads(out.read_text()) == {'errors': []}


# make-demo ---------------------------------------------------------------------------------


def test_make_demo_refuses_an_existing_directory(tmp_path: Path,
                                                 capsys: pytest.CaptureFixture[str]) -> None:
    """--out DIR: one line, exit 2, nothing written in or beside the folder."""
    folder = tmp_path / 'bags'
    folder.mkdir()
    status, out, err = run_cli(['make-demo', '--out', str(folder)], capsys)
    assert status == 2 and out == ''
    assert err == (f'plant-disease make-demo: error: --out {folder} is a directory; give the '
                   f'.mcap file to write (e.g. {folder / "field_demo.mcap"})\n')
    assert snapshot(tmp_path) == {}


@pytest.mark.parametrize('name', ['demo.db3', 'demo', 'demo.mcap.zstd'])
def test_make_demo_refuses_a_name_that_is_not_mcap(
        tmp_path: Path, capsys: pytest.CaptureFixture[str], name: str) -> None:
    """The demo bag is MCAP: 'X.db3' (which replay would read as SQLite and fail on) or no
    suffix is refused before any work, nothing written."""
    out_path = tmp_path / name
    status, out, err = run_cli(['make-demo', '--out', str(out_path)], capsys)
    assert status == 2 and out == ''
    assert err == (f'plant-disease make-demo: error: --out {out_path}: the demo bag is an '
                   'MCAP file, so its name ends in .mcap (e.g. '
                   f'{out_path.with_suffix(".mcap")})\n')
    assert list(tmp_path.iterdir()) == []


def test_make_demo_never_turns_the_shipped_bag_into_another_drive(
        capsys: pytest.CaptureFixture[str]) -> None:
    """Another seed into the shipped bag's path: refused, the bag and its truth unchanged."""
    from plant_disease_ros.tools.demo_bag import DEFAULT_OUT

    truth = DEFAULT_OUT.with_name(DEFAULT_OUT.stem + '_truth.json')
    before = {path: path.read_bytes() for path in (DEFAULT_OUT, truth)}
    status, out, err = run_cli(['make-demo', '--out', str(DEFAULT_OUT), '--seed', '8',
                                '--frames', '48'], capsys)
    assert status == 2 and out == ''
    assert (f'--out {DEFAULT_OUT} is the shipped demo bag, and --frames, --seed would make '
            'it another drive' in err)
    assert '--replace-shipped' in err
    assert {path: path.read_bytes() for path in before} == before


@pytest.mark.parametrize('frames', ['5', '100000'])
def test_make_demo_refuses_a_frame_count_it_cannot_make(
        frames: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """Too few or too many frames for its rows: one line, not a silently smaller bag."""
    from plant_disease_ros.tools.demo_bag import frames_of_drive, MAX_PLANTS_PER_ROW

    status, out, err = run_cli(['make-demo', '--out', str(tmp_path / 'demo.mcap'),
                                '--frames', frames], capsys)
    assert status == 2 and out == ''
    assert (f'--frames must be from {frames_of_drive(1)} to '
            f'{frames_of_drive(MAX_PLANTS_PER_ROW)} (rows of 1 to 99 plants), got {frames}'
            in err)
    assert snapshot(tmp_path) == {}


def photo_folder(root: Path) -> Path:
    """Make a lab photo folder with enough (empty) photos for a drive of one plant a row."""
    for number in range(3):
        photo = root / 'Tomato___healthy' / f'{number}.png'
        photo.parent.mkdir(parents=True, exist_ok=True)
        photo.write_bytes(b'')
    return root


@pytest.mark.parametrize('swapped', ['--split', '--field-split', '--field'])
def test_make_demo_names_a_split_file_of_the_wrong_kind(
        swapped: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """The shipped split files swapped, or a field folder its field split does not hold:
    one line naming the file and what it is, not a KeyError traceback; nothing written."""
    from plant_disease_ros.tools.demo_bag import (
        DEFAULT_FIELD_SPLIT,
        DEFAULT_SPLIT,
        frames_of_drive,
    )

    data = photo_folder(tmp_path / 'lab')
    field = tmp_path / 'field' / 'orchard'
    field.mkdir(parents=True)
    out = tmp_path / 'out' / 'demo.mcap'
    options = {'--split': str(tmp_path / 'no_split.json'),
               '--field-split': str(DEFAULT_FIELD_SPLIT), '--field': str(field)}
    options[swapped] = {'--split': str(DEFAULT_FIELD_SPLIT), '--field-split': str(DEFAULT_SPLIT),
                        '--field': str(field)}[swapped]
    status, stdout, err = run_cli(
        ['make-demo', '--out', str(out), '--frames', str(frames_of_drive(1)),
         '--data', str(data), *(item for pair in options.items() for item in pair)], capsys)
    assert status == 2 and stdout == ''
    assert len(err.splitlines()) == 1 and 'Traceback' not in err
    expected = {
        '--split': f"{DEFAULT_FIELD_SPLIT} is not a split manifest (no 'classes'",
        '--field-split': f'{DEFAULT_SPLIT} is a lab split manifest, not a field split',
        '--field': f"{DEFAULT_FIELD_SPLIT} has no field folder 'orchard' (has plantdoc",
    }[swapped]
    assert err.startswith(f'plant-disease make-demo: error: {expected}')
    if swapped == '--split':
        assert 'a field split manifest: pass it as --field-split' in err
    assert not (tmp_path / 'out').exists()


@pytest.mark.skipif(not DATA_DIR.is_dir(), reason='no PlantVillage photos')
def test_make_demo_progress_is_one_line_per_update_in_a_log(tmp_path: Path) -> None:
    """Progress to a file (not a terminal): no carriage return, one line per update."""
    bag = tmp_path / 'demo.mcap'
    result = subprocess.run(
        [sys.executable, '-m', 'plant_disease_ros.cli.main', 'make-demo', '--out', str(bag),
         '--frames', '48', '--data', str(DATA_DIR)],
        capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr
    assert '\r' not in result.stderr
    assert result.stderr.splitlines() == ['composed 20/48 frames', 'composed 40/48 frames']
    assert result.stdout.startswith(f'bag:    {bag} (')
    assert bag.is_file() and (tmp_path / 'demo_truth.json').is_file()


class FakeTerminal(io.StringIO):
    """A text stream that says it is a terminal."""

    def isatty(self) -> bool:
        """Return True."""
        return True


def test_status_line_redraws_only_on_a_terminal() -> None:
    """On a terminal: \\r redraws and one final newline; in a file: plain lines."""
    log = io.StringIO()
    line = StatusLine(log)
    line.show('one')
    line.show('two')
    line.finish()
    assert log.getvalue() == 'one\ntwo\n'
    terminal = FakeTerminal()
    line = StatusLine(terminal)
    line.show('one')
    line.show('two')
    line.finish()
    assert terminal.getvalue() == '\rone\x1b[K\rtwo\x1b[K\n'


# search ------------------------------------------------------------------------------------


def test_search_help_names_the_knobs_it_searches() -> None:
    """The search verb's help says one knob at a time, not a grid over the width."""
    help_text = cli.SUBCOMMANDS['search'][1]
    assert 'grid' not in help_text
    for knob in ('learning rate', 'unfreeze', 'input size', 'augmentation', 'one knob at a time',
                 'width from scratch only'):
        assert knob in help_text
