"""``plant-disease map``: render a recorded disease map as a PNG, and write its grid for GIS.

Beside the PNG it writes the disease grid (one polygon per cell with the counts per label,
the incidence and the most severe label) as ``<name>_grid.geojson`` and, with pyogrio,
``<name>_grid.gpkg``: see ``core.map_gis``.
"""

from __future__ import annotations

import argparse
import json
import math
from pathlib import Path

from plant_disease_ros.core.detections import feature_position
from plant_disease_ros.core.geodesy import geodetic_to_ecef
from plant_disease_ros.core.map_file import read_features, SeqReadStats
from plant_disease_ros.core.map_gis import grid_features, GRID_SUFFIX, write_grid_files
from plant_disease_ros.core.map_grid import summarize
from plant_disease_ros.core.map_run import newer_records_of, summary_path_of
from plant_disease_ros.tools.replay.outputs import DEFAULT_CELL_SIZE_M, read_recorder_grid


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Add the ``map`` subcommand's arguments to ``parser``."""
    parser.add_argument('geojson', type=Path, metavar='GEOJSON', nargs='+',
                        help='a .geojson FeatureCollection or a .geojsons text sequence '
                             'written by disease_map_recorder; several (the runs of a '
                             "robot's cameras) are drawn as one map, with --out")
    parser.add_argument('--out', type=Path, default=None, metavar='PNG',
                        help='the PNG to write; .png is added to a name without a suffix '
                             '(default: GEOJSON with the suffix .png)')
    parser.add_argument('--title', default='', help='title above the map (default: file name)')
    parser.add_argument('--origin', type=float, nargs=3, default=None,
                        metavar=('LAT', 'LON', 'ALT'),
                        help='local ENU origin in WGS84 degrees and metres (default: the '
                             "recorder's, from RUN_summary.json beside the input, else the "
                             'first located detection)')
    parser.add_argument('--cell-size', type=float, default=None, metavar='METRES',
                        help="grid cell edge for the summary and the GIS grid, m (default: "
                             "the recorder's cell_size_m from RUN_summary.json beside the "
                             'input, else 2.0)')


def _finite(option: str, value: float, low: float | None = None,
            high: float | None = None) -> float:
    """Return ``value`` if finite and within [low, high]; ValueError naming ``option``."""
    if not math.isfinite(value) or (low is not None and value < low) or (
            high is not None and value > high):
        bounds = (f' in [{low:g}, {high:g}]' if low is not None and high is not None
                  else '')
        raise ValueError(f'{option} must be a finite number{bounds}, got {value}')
    return value


def _png_path(out: Path) -> Path:
    """Return the PNG the renderer writes for ``--out``: ``.png`` added when it has no suffix."""
    if out.suffix == '':
        out = out.with_name(out.name + '.png')
    if out.suffix.lower() != '.png':
        raise ValueError(f'--out must be a .png file, got {out}')
    if out.is_dir():
        raise ValueError(f'--out {out} is a directory')
    return out


def _check_not_input(source: Path, outputs: list[Path]) -> None:
    """Raise ValueError if an output would be written over the input file."""
    for output in outputs:
        if output.exists() and output.resolve() == source.resolve():
            raise ValueError(f'{output} is the input file; give another --out')


def recorded_alignment(summary_path: Path) -> str:
    """Return the ``cell_alignment`` a recorder summary names ('' when it has none)."""
    try:
        value = json.loads(summary_path.read_text(encoding='utf-8')).get('cell_alignment')
    except (OSError, ValueError, AttributeError):
        return ''
    return value if isinstance(value, str) else ''


def _input_file(path: Path) -> Path:
    """Return the file to draw for ``path``: its newer records file after a power cut."""
    if not path.is_file():
        raise OSError(f'{path}: no such file')
    records = newer_records_of(path)
    if records is not None:
        print(f'{path.name} is older than {records.name} beside it (records came after the '
              'last save: the recorder still runs, or was stopped without saving): drawing '
              f'{records.name}, which holds every record')
        return records
    return path


def _run_key(path: Path) -> Path:
    """Return what names a run: its file resolved, without ``.geojson`` or ``.geojsons``."""
    path = path.resolve()
    return path.with_suffix('') if path.suffix in ('.geojson', '.geojsons') else path


def _check_distinct(inputs: list[Path], sources: list[Path]) -> None:
    """Raise ValueError if one run is given twice (its detections would count twice).

    ``sources`` are the files drawn for ``inputs`` (a run's newer records file for its
    saved collection); the message names what was given.
    """
    seen: dict[Path, Path] = {}
    for given, source in zip(inputs, sources, strict=True):
        key = _run_key(source)
        if key in seen:
            first = seen[key]
            same = (f'{first} is given twice' if first.resolve() == given.resolve()
                    else f'{first} and {given} are the same run (its saved .geojson and '
                         'its .geojsons records hold the same detections)')
            raise ValueError(f'{same}: its detections would count twice; give each run once')
        seen[key] = given


def _holds_no_text(path: Path) -> bool:
    """Return whether ``path`` is empty or holds only white space."""
    with open(path, 'rb') as handle:
        for block in iter(lambda: handle.read(1 << 16), b''):
            if block.strip():
                return False
    return True


# Beyond this, --origin is taken for a mistake (LAT and LON swapped, another field's datum).
FAR_ORIGIN_M = 300_000.0


def _check_origin_near(origin: tuple[float, float, float], features: list[dict]) -> None:
    """Raise ValueError if ``origin`` lies over FAR_ORIGIN_M from every located detection."""
    centre = geodetic_to_ecef(*origin)
    nearest = min((math.dist(centre, geodetic_to_ecef(*position))
                   for position in map(feature_position, features) if position is not None),
                  default=None)
    if nearest is not None and nearest > FAR_ORIGIN_M:
        raise ValueError(
            f'--origin {origin[0]:g} {origin[1]:g} is {nearest / 1000.0:,.0f} km from the '
            f'nearest located detection (LAT and LON swapped?): its cells are squares on '
            f'the plane tangent at the origin and hold detections up to '
            f'{FAR_ORIGIN_M / 1000.0:g} km from it; give an origin in the field')


def _read_detections(source: Path) -> list[dict]:
    """Return the detections of ``source``; say what was left out; refuse a non-map."""
    stats = SeqReadStats()
    features = read_features(source, stats)
    if not features and _holds_no_text(source):
        raise ValueError(f'{source}: the file is empty (a copy cut short?): no map to draw')
    if not features and stats.cut_collection:
        raise ValueError(f'{source}: a FeatureCollection cut short before its first feature '
                         '(a copy cut short?): no map to draw')
    left_out = sum(stats.not_detections.values())
    reasons = ', '.join(f'{reason} {count}' for reason, count in
                        sorted(stats.not_detections.items()))
    if not features and left_out:
        raise ValueError(f'{source}: none of its {left_out} feature(s) is a detection '
                         f"({reasons}): a disease grid or another layer? Give the run's "
                         '.geojson or .geojsons')
    if not features and (stats.skipped or stats.truncated_tail):
        raise ValueError(f'{source}: not a GeoJSON file (no readable Feature, FeatureCollection '
                         'or GeoJSON text sequence record)')
    if left_out:
        print(f'{source}: left out {left_out} feature(s) that are not detections ({reasons})')
    if stats.cut_collection:
        print(f'{source}: a FeatureCollection cut short: its {len(features)} whole '
              'feature(s) read' + (f', {stats.skipped} unreadable' if stats.skipped else ''))
    elif stats.skipped or stats.truncated_tail:
        print(f'{source}: skipped {stats.skipped} unreadable record(s)'
              + (', and an incomplete last record' if stats.truncated_tail else ''))
    return features


def run(args: argparse.Namespace) -> int:
    """Render the map, write the grid, print where they went and a summary; return 0.

    Every option and the input are checked before anything is written; a file that holds
    no GeoJSON is an error, and no output is written over an input. Several inputs (the
    runs of a robot's cameras) are drawn as one map on the first one's grid.
    """
    inputs = args.geojson if isinstance(args.geojson, list) else [args.geojson]
    origin_given, cell_given = args.origin is not None, args.cell_size is not None
    sources = [_input_file(Path(path)) for path in inputs]
    _check_distinct([Path(path) for path in inputs], sources)
    if len(sources) > 1 and args.out is None:
        raise ValueError(f'{len(sources)} GEOJSON files are drawn as one map: give --out')
    source = sources[0]
    recorded = summary_path_of(source)
    grid = read_recorder_grid(recorded) if recorded.is_file() else None
    if recorded.is_file() and (args.cell_size is None or args.origin is None):
        # The recorder's grid, so the cells are those of its markers and map/geojson.
        if grid is None:
            print(f'{recorded.name}: no usable grid in it (not a recorder summary?): the '
                  'default grid')
        else:
            cell_size, origin = grid
            # Say which part of the grid is the recorder's: --cell-size or --origin wins.
            taken, given = [], []
            if args.cell_size is None:
                args.cell_size = cell_size
                taken.append(f'cells of {cell_size:g} m')
            else:
                given.append(f'cells of {args.cell_size:g} m from --cell-size')
            if args.origin is None and origin is not None:
                args.origin = list(origin)
                taken.append('origin {:.7f}, {:.7f}'.format(*origin))
            elif args.origin is not None:
                given.append('origin {:.7f}, {:.7f} from --origin'.format(*args.origin[:2]))
            if taken:  # else nothing of the recorder's grid is used
                print(f'grid of the recorder ({recorded.name}): {", ".join(taken)}'
                      + (f'; {", ".join(given)}' if given else ''))
            if not recorded_alignment(recorded):
                print(f'{recorded.name} predates cells centred on the origin: the recorder '
                      'drew its cells with the origin on a corner, this grid centres them '
                      'on it (same size and origin, shifted by half a cell)')
    for other in sources[1:] if not (origin_given and cell_given) else ():
        own = read_recorder_grid(summary_path_of(other))
        if own is not None and grid is None:
            print(f'{other.name}: its recorder had a grid, the first input has none (no '
                  f'{recorded.name} beside it): drawn on '
                  + ('--origin' if origin_given else "the first located detection's origin"))
        elif own not in (None, grid):
            print(f'{other.name}: its recorder had another grid (set use_datum and one '
                  "datum for every camera): drawn on the first one's")
    if args.cell_size is None:
        args.cell_size = DEFAULT_CELL_SIZE_M
    if not (math.isfinite(args.cell_size) and args.cell_size > 0.0):
        raise ValueError(f'--cell-size must be a finite number > 0, got {args.cell_size}')
    origin = None
    if args.origin is not None:
        origin = (_finite('--origin LAT', args.origin[0], -90.0, 90.0),
                  _finite('--origin LON', args.origin[1], -180.0, 180.0),
                  _finite('--origin ALT', args.origin[2]))
    out = _png_path(args.out if args.out is not None else source.with_suffix('.png'))
    stem = out.with_suffix('')
    outputs = [out, stem.with_name(stem.name + GRID_SUFFIX + '.geojson'),
               stem.with_name(stem.name + GRID_SUFFIX + '.gpkg')]
    features = [feature for path in sources for feature in _read_detections(path)]
    for path in sources:
        _check_not_input(path, outputs)
    if origin is not None and origin_given:
        _check_origin_near(origin, features)
    from plant_disease_ros.core.map_render import render_disease_map

    title = args.title or ' + '.join(path.name for path in sources)
    # The PNG and both grid files replace their old files together, once all three are
    # written: a failure leaves all three outputs as they were.
    grid = write_grid_files(grid_features(features, args.cell_size, origin), stem,
                            also=(out, lambda path: render_disease_map(
                                features, path, title=title, origin=origin)))
    summary = summarize(features, args.cell_size, origin)
    print(f'wrote {out}: {summary["detections"]} detection(s), {summary["located"]} located, '
          f'{summary["unlocated"]} without position, {summary["diseased_cells"]} diseased '
          f'cell(s) of {summary["cell_size_m"]:g} m')
    print(f'wrote {grid.geojson}' + (f' and {grid.geopackage}' if grid.geopackage else '')
          + f': disease grid of {grid.cells} cell(s)')
    if grid.warning:
        print(f'warning: {grid.warning}')
    return 0
