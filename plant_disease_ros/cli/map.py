"""``plant-disease map``: render a recorded disease map as a PNG, and write its grid for GIS.

Beside the PNG it writes the disease grid (one polygon per cell with the counts per label,
the incidence and the most severe label) as ``<name>_grid.geojson`` and, with pyogrio,
``<name>_grid.gpkg``: see ``core.map_gis``.
"""

from __future__ import annotations

import argparse
from pathlib import Path

from plant_disease_ros.core.map_file import read_features, SeqReadStats
from plant_disease_ros.core.map_gis import grid_features, write_grid_files
from plant_disease_ros.core.map_grid import summarize


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Add the ``map`` subcommand's arguments to ``parser``."""
    parser.add_argument('geojson', type=Path, metavar='GEOJSON',
                        help='a .geojson FeatureCollection or a .geojsons text sequence '
                             'written by disease_map_recorder')
    parser.add_argument('--out', type=Path, default=None, metavar='PNG',
                        help='the PNG to write (default: GEOJSON with the suffix .png)')
    parser.add_argument('--title', default='', help='title above the map (default: file name)')
    parser.add_argument('--origin', type=float, nargs=3, default=None,
                        metavar=('LAT', 'LON', 'ALT'),
                        help='local ENU origin in WGS84 degrees and metres '
                             '(default: the first located detection)')
    parser.add_argument('--cell-size', type=float, default=2.0, metavar='METRES',
                        help='grid cell edge for the summary and the GIS grid, m '
                             '(default: 2.0)')


def run(args: argparse.Namespace) -> int:
    """Render the map, write the grid, print where they went and a summary; return 0."""
    source = Path(args.geojson)
    if not source.is_file():
        raise OSError(f'{source}: no such file')
    if not args.cell_size > 0.0:
        raise ValueError(f'--cell-size must be > 0, got {args.cell_size}')
    stats = SeqReadStats()
    features = read_features(source, stats)
    if stats.skipped or stats.truncated_tail:
        print(f'{source}: skipped {stats.skipped} unreadable record(s)'
              + (', and an incomplete last record' if stats.truncated_tail else ''))
    out = args.out if args.out is not None else source.with_suffix('.png')
    origin = tuple(args.origin) if args.origin is not None else None
    from plant_disease_ros.core.map_render import render_disease_map

    render_disease_map(features, out, title=args.title or source.name, origin=origin)
    summary = summarize(features, args.cell_size, origin)
    print(f'wrote {out}: {summary["detections"]} detection(s), {summary["located"]} located, '
          f'{summary["unlocated"]} without position, {summary["diseased_cells"]} diseased '
          f'cell(s) of {summary["cell_size_m"]:g} m')
    grid = write_grid_files(grid_features(features, args.cell_size, origin),
                            out.with_suffix(''))
    print(f'wrote {grid.geojson}' + (f' and {grid.geopackage}' if grid.geopackage else '')
          + f': disease grid of {grid.cells} cell(s)')
    if grid.warning:
        print(f'warning: {grid.warning}')
    return 0
