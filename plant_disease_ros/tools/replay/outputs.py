"""The replay's outputs: fresh names in the output folder, the map save, the grid, the PNG."""

from __future__ import annotations

from dataclasses import dataclass
import json
import logging
import os
from pathlib import Path
import re
import time
from typing import Protocol

from plant_disease_ros.core.map_gis import grid_features, write_grid_files
from plant_disease_ros.core.map_grid import Origin
from plant_disease_ros.core.map_run import run_file_paths
from plant_disease_ros.tools.replay.options import one_line, ReplayError
from plant_disease_ros.tools.replay.received import ReceivedDetections
from plant_disease_ros.tools.replay.recorder import OutputCounts
from plant_disease_ros.tools.replay.summary import ReplaySummary

SAVE_CATCH_UP_S = 10.0
# The recorder's default; its summary file names the value it used.
DEFAULT_CELL_SIZE_M = 2.0
SAVE_RETRY_S = 0.25


class MapSaver(Protocol):
    """What ``save_when_complete`` needs of the player: the recorder's save and the clock."""

    clock_ns: int

    def save(self) -> tuple[bool, str]:
        """Call the recorder's ~/save; return (success, message)."""

    def publish_clock(self, bag_ns: int) -> None:
        """Advance the clock to ``bag_ns``."""


# Every output of a run is named <base><suffix>: no suffix for the first run in a folder,
# '-N' for run N. Map files are <map base><suffix>.* and <map base><suffix>_*.
OUTPUT_BAG = 'output_bag'
MAP_BASE = 'disease_map'
SUMMARY_BASE = 'summary'
LOGS_BASE = 'logs'
MAX_RUNS = 10000


@dataclass(frozen=True)
class ReplayOutputs:
    """Where one replay writes, all under one run number in ``out_dir``.

    Run 1: ``output_bag/``, ``disease_map.*`` (and ``disease_map_*``), ``summary.json``
    and ``logs/``; run N: ``output_bag-N/``, ``disease_map-N.*``, ``summary-N.json``
    and ``logs-N/``.
    """

    out_dir: Path
    number: int
    output_bag: Path
    map_dir: Path
    run_name: str
    summary: Path
    logs: Path


def _suffix(number: int) -> str:
    return '' if number == 1 else f'-{number}'


def _taken(names: set[str], number: int) -> bool:
    """Return whether any output of run ``number`` already exists (by name in the folder)."""
    suffix = _suffix(number)
    if {OUTPUT_BAG + suffix, f'{SUMMARY_BASE}{suffix}.json', LOGS_BASE + suffix} & names:
        return True
    stem = MAP_BASE + suffix
    return any(name == stem or name.startswith((stem + '.', stem + '_')) for name in names)


def output_paths(out_dir: Path | None, bag: Path) -> ReplayOutputs:
    """Return this run's output paths: the first run number none of whose outputs exist.

    So a run never replaces another's files, even one that wrote only some of them (a
    replay killed at start leaves ``output_bag-N`` and no map: the next run is N + 1 for
    all; one whose nodes exit at start removes its own, see :func:`discard_failed_start`).
    The folder is created; without ``out_dir``, ``outputs/replay/<bag>-<date-time>``.
    """
    if out_dir is None:
        stem = re.sub(r'[^A-Za-z0-9_-]', '_', bag.name.split('.')[0]) or 'bag'
        out_dir = Path('outputs') / 'replay' / f'{stem}-{time.strftime("%Y%m%d-%H%M%S")}'
    out_dir = Path(out_dir)
    if out_dir.exists() and not out_dir.is_dir():
        raise ReplayError(f'--out {out_dir} is not a folder')
    try:
        out_dir.mkdir(parents=True, exist_ok=True)
        names = {entry.name for entry in out_dir.iterdir()}
    except OSError as error:
        raise ReplayError(f'cannot use the output folder {out_dir}: {one_line(error)}') from error
    for number in range(1, MAX_RUNS):
        if not _taken(names, number):
            suffix = _suffix(number)
            return ReplayOutputs(
                out_dir=out_dir, number=number, output_bag=out_dir / (OUTPUT_BAG + suffix),
                map_dir=out_dir, run_name=MAP_BASE + suffix,
                summary=out_dir / f'{SUMMARY_BASE}{suffix}.json',
                logs=out_dir / (LOGS_BASE + suffix))
    raise ReplayError(f'no free run number in {out_dir}')


def discard_failed_start(outputs: ReplayOutputs, bag_empty: bool) -> tuple[Path | None,
                                                                          list[str]]:
    """Remove what a run whose nodes never came up left; keep its logs, renamed.

    Only this run's own outputs (its number was free when it started) and only empty ones:
    the output bag when no result was recorded in it (``bag_empty``; the recorder's
    start-up markers do not count), and the recorder's map files when they hold no
    detection. The logs say why the nodes stopped: they move to
    ``logs-failed-start-<date-time>``, a name no run number takes, so the next run gets
    this run's number. Returns where the logs went (None: there were none) and the names
    of what was removed.
    """
    import shutil

    from plant_disease_ros.core.map_file import read_features

    removed: list[str] = []
    if bag_empty and outputs.output_bag.is_dir() and not outputs.output_bag.is_symlink():
        shutil.rmtree(outputs.output_bag, ignore_errors=True)
        removed.append(outputs.output_bag.name)
    records, collection, recorded = run_file_paths(outputs.map_dir, outputs.run_name)
    try:
        empty = not any(read_features(path) for path in (records, collection)
                        if path.is_file())
    except (OSError, ValueError):
        empty = False  # a map that cannot be read is left for the user to look at
    if empty:
        for path in (records, collection, recorded):
            if path.is_file():
                path.unlink(missing_ok=True)
                removed.append(path.name)
    if not outputs.logs.is_dir():
        return None, removed
    stem = f'{LOGS_BASE}-failed-start-{time.strftime("%Y%m%d-%H%M%S")}'
    kept, number = outputs.out_dir / stem, 2
    while kept.exists():
        kept, number = outputs.out_dir / f'{stem}_{number}', number + 1
    try:
        outputs.logs.rename(kept)
    except OSError:
        return outputs.logs, removed
    return kept, removed


def write_summary(path: Path, summary: ReplaySummary) -> Path:
    """Write the summary as JSON to ``path`` atomically (a temporary file, then a rename)."""
    text = json.dumps(summary.as_dict(), indent=1) + '\n'
    temporary = path.with_name(f'.{path.name}.{os.getpid()}.tmp')
    try:
        temporary.write_text(text, encoding='utf-8')
        os.replace(temporary, path)
    except BaseException:
        temporary.unlink(missing_ok=True)
        raise
    return path


def save_when_complete(saver: MapSaver, collection: Path, expected: int,
                       catch_up_s: float = SAVE_CATCH_UP_S) -> tuple[bool, str]:
    """Save the recorder's map once it holds the ``expected`` detections this side received.

    The recorder appends each detection (one fsync) on its own executor, which may serve
    the save request while detections still wait in its queue: on a slow disk the map
    would miss the last ones. So save, count the saved features and save again until the
    count reaches ``expected``, for at most ``catch_up_s``; a shortfall left is reported.
    """
    from plant_disease_ros.core.map_file import read_features

    deadline = time.monotonic() + catch_up_s
    while True:
        ok, message = saver.save()
        if not ok:
            return ok, message
        try:
            saved = len(read_features(collection))
        except (OSError, ValueError) as error:
            return False, f'{message}, but it cannot be read back: {one_line(error)}'
        if saved >= expected:
            return ok, message
        if time.monotonic() >= deadline:
            return False, (f'{message}: {saved} of the {expected} detection(s) received here '
                           f'after {catch_up_s:g} s')
        saver.publish_clock(saver.clock_ns + int(SAVE_RETRY_S * 1e9))
        time.sleep(SAVE_RETRY_S)


def add_counts(summary: ReplaySummary, counts: OutputCounts) -> None:
    """Copy the recorder's counts into the summary (a warning for frames classified twice)."""
    summary.labelled = counts.labelled
    summary.unknown = counts.unknown
    summary.no_leaf = counts.no_leaf
    summary.detections = counts.detections.copy()
    summary.fix_status = counts.fix_status.copy()
    summary.motion_blur = list(counts.motion_blur)
    if summary.motion_blur_warning:
        summary.warnings.append(summary.motion_blur_warning)
    if summary.repeated_stamps:
        summary.warnings.append(
            f'{summary.repeated_stamps} frame(s) carry the header stamp of an earlier frame: '
            'their results cannot be told apart (labelled counts distinct stamps); fix the '
            "camera driver's stamps")
    # Answers to repeated stamps come back as a second answer to that stamp; only a frame
    # that was re-sent (fast mode) can be classified twice otherwise.
    resent = min(counts.duplicates - summary.repeated_stamps, summary.resent)
    if resent > 0:
        summary.warnings.append(f'{resent} frame(s) classified twice '
                                '(re-sent after a timeout)')
    rejected = sum(summary.rejected.values())
    if rejected:
        reasons = ', '.join(f'{reason} {count}' for reason, count in
                            sorted(summary.rejected.items(), key=lambda item: -item[1]))
        summary.warnings.append(
            f'{rejected} frame(s) rejected by {" and ".join(summary.rejected_by) or "the nodes"}'
            f', not classified ({reasons}): the log says why (an undecodable or truncated '
            'image, an encoding it cannot read)')
    unusable = sum(summary.fixes_unusable.values())
    if summary.fix_topic and summary.fixes_in and unusable >= summary.fixes_in:
        reasons = ', '.join(f'{count} {reason}' for reason, count in
                            sorted(summary.fixes_unusable.items(), key=lambda item: -item[1]))
        if summary.fixes_unusable.get('inaccurate'):
            reasons += (f'; max_fix_accuracy_m {summary.max_fix_accuracy_m:g} from '
                        f'{summary.max_fix_accuracy_source}')
        summary.warnings.append(
            f'fix topic {summary.fix_topic}: 0 of {summary.fixes_in} fixes usable ({reasons}): '
            'every detection has null geometry')


def records_kept(map_dir: Path, run_name: str) -> str:
    """Return what the recorder's records file (``.geojsons``) holds, as a phrase, or ''.

    The recorder appends each detection there as it comes: when the map or the output bag
    cannot be written (a full disk), that file still holds them.
    """
    from plant_disease_ros.core.map_file import read_features

    records = run_file_paths(map_dir, run_name)[0]
    try:
        count = len(read_features(records)) if records.is_file() else 0
    except (OSError, ValueError):
        count = 0
    if not count:
        return ''
    return f'{count} detection(s) are kept in the records file {records}'


def write_map(summary: ReplaySummary, received: ReceivedDetections, map_dir: Path,
              run_name: str, attached: bool) -> None:
    """Point the summary at the recorder's GeoJSON (or write ours), write the grid, render the PNG.

    Attached, the recorder writes where the robot keeps its maps, so the map is made from
    the detections received here (streamed from ``received``'s file); started here, from
    the recorder's file when it exists. A map that cannot be written is a ReplayError
    (the output bag still holds the detections).
    """
    from plant_disease_ros.core.map_file import read_features

    collection = map_dir / f'{run_name}.geojson'
    if attached or not collection.is_file():
        if not attached:
            summary.warnings.append(f'the recorder wrote no {collection}; the map is made '
                                    'from the detections received')
        collection = map_dir / f'{run_name}_received.geojson'
        try:
            map_dir.mkdir(parents=True, exist_ok=True)
            received.write_collection(collection)
        except OSError as error:
            raise ReplayError(f'cannot write the map {collection}: '
                              f'{one_line(error)}') from error
        if received.shortfall():
            summary.warnings.append(received.shortfall())
    summary.geojson = collection
    features = read_features(collection)
    write_grid(summary, features, map_dir, run_name)
    try:
        from plant_disease_ros.core.map_render import render_disease_map
    except ImportError as error:
        summary.warnings.append(f'no PNG: {error}')
        return
    # matplotlib logs a warning when equal aspect overrides the limits; not news here.
    axes_logger = logging.getLogger('matplotlib.axes._base')
    level = axes_logger.level
    axes_logger.setLevel(logging.ERROR)
    png = map_dir / f'{run_name}.png'
    try:
        summary.png = render_disease_map(
            features, png, title=f'{summary.bag.name}: {len(features)} detection(s)')
    except OSError as error:  # a full disk: the map itself is written
        summary.warnings.append(f'no PNG: cannot write {png}: {one_line(error)}')
    finally:
        axes_logger.setLevel(level)


def read_recorder_grid(summary_path: Path) -> tuple[float, Origin | None] | None:
    """Return the cell size and ENU origin from a recorder's summary file, or None.

    None when the file cannot be read or does not hold a usable grid: a cell size that is
    not a finite number > 0, or an origin outside WGS84 (so the caller can say so).
    """
    import json
    import math

    try:
        recorded = json.loads(summary_path.read_text(encoding='utf-8'))
        cell_size_m = float(recorded['cell_size_m'])
        origin = recorded.get('origin')
        origin = None if origin is None else (
            float(origin['latitude']), float(origin['longitude']), float(origin['altitude']))
    except (OSError, ValueError, KeyError, TypeError, AttributeError):
        return None
    if not (math.isfinite(cell_size_m) and cell_size_m > 0.0):
        return None
    if origin is not None and not (all(math.isfinite(value) for value in origin)
                                   and -90.0 <= origin[0] <= 90.0
                                   and -180.0 <= origin[1] <= 180.0):
        return None
    return cell_size_m, origin


def recorder_grid(summary_path: Path) -> tuple[float, Origin | None]:
    """Return the cell size and ENU origin the recorder used, from its summary file.

    The grid written here then has the recorder's cells (its ``markers``, its
    ``map/geojson``); without a readable summary, the defaults: 2 m from the first fix.
    """
    return read_recorder_grid(summary_path) or (DEFAULT_CELL_SIZE_M, None)


def write_grid(summary: ReplaySummary, features: list[dict], map_dir: Path,
               run_name: str) -> None:
    """Write the disease grid (GeoJSON, GeoPackage) beside the map; note it in the summary."""
    cell_size_m, origin = recorder_grid(run_file_paths(map_dir, run_name)[2])
    try:
        grid = write_grid_files(grid_features(features, cell_size_m, origin),
                                map_dir / run_name)
    except (OSError, ValueError, RuntimeError) as error:
        summary.warnings.append(f'no disease grid: {one_line(error)}')
        return
    summary.grid_geojson = grid.geojson
    summary.grid_geopackage = grid.geopackage
    if grid.warning:
        summary.warnings.append(f'disease grid: {grid.warning}')
