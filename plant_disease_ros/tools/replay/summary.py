"""The summary of a replay: what went in, what came out, and where the outputs are."""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
import statistics
from typing import Any

from plant_disease_ros.core.fix_buffer import DEFAULT_MAX_FIX_ACCURACY_M
from plant_disease_ros.core.motion_blur import highest_window_median, WARN_PERCENT, WINDOW


@dataclass
class ReplaySummary:
    """What a replay did and where its outputs are."""

    bag: Path
    image_topic: str
    fix_topic: str | None
    mode: str
    frames_in: int = 0
    labelled: int = 0
    unknown: int = 0
    no_leaf: int = 0
    unanswered: int = 0
    repeated_stamps: int = 0  # frames stamped like an earlier one
    # Frames sent once more after FRAME_RETRY_S without an answer (fast mode).
    resent: int = 0
    # Frames the nodes refused (an undecodable JPEG, an unknown encoding), by reason, and
    # the nodes that refused them, from their /diagnostics; never classified.
    rejected: Counter[str] = field(default_factory=Counter)
    rejected_by: list[str] = field(default_factory=list)
    fixes_in: int = 0
    # The bag's fixes the classifier cannot use, by its reasons ('no_fix', 'non_finite',
    # 'unstamped', 'inaccurate', ...), judged with the classifier's max_fix_accuracy_m as
    # the replay knows it, and where that value comes from (-p, the parameter file, or the
    # node default: see ``run.fix_accuracy_limit``).
    fixes_unusable: Counter[str] = field(default_factory=Counter)
    max_fix_accuracy_m: float = DEFAULT_MAX_FIX_ACCURACY_M
    max_fix_accuracy_source: str = 'the node default'
    detections: Counter[str] = field(default_factory=Counter)
    fix_status: Counter[str] = field(default_factory=Counter)
    # The classifier's motion blur estimates, percent of the frame side, in stamp order.
    motion_blur: list[float] = field(default_factory=list)
    wall_s: float = 0.0
    out_dir: Path | None = None
    output_bag: Path | None = None
    geojson: Path | None = None
    png: Path | None = None
    grid_geojson: Path | None = None
    grid_geopackage: Path | None = None
    save_message: str = ''
    logs: list[Path] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)
    # What made the results: the model and labels the started nodes load (None: attached,
    # the running pipeline's), their parameter file and the -p overrides.
    model_path: Path | None = None
    labels_path: Path | None = None
    label_count: int | None = None
    params_file: Path | None = None
    parameters: dict[str, str] = field(default_factory=dict)

    @property
    def frames_per_s(self) -> float:
        """Return labelled frames per wall-clock second, first frame sent to last answer."""
        return self.labelled / self.wall_s if self.wall_s > 0 else 0.0

    @property
    def highest_blur_median(self) -> float | None:
        """Return the highest median of WINDOW consecutive blur estimates (None: too few)."""
        return highest_window_median(self.motion_blur)

    @property
    def blur_window(self) -> int:
        """Return how many consecutive estimates the highest median is over."""
        return min(WINDOW, len(self.motion_blur))

    @property
    def motion_blur_warning(self) -> str:
        """Return why the bag's frames were too smeared, or ''."""
        highest = self.highest_blur_median
        if highest is None or highest <= WARN_PERCENT:
            return ''
        return (f'frames smeared: the median of {self.blur_window} consecutive motion blur '
                f'estimates reached {highest:.1f} % of the frame side (the classifier warns '
                f'above {WARN_PERCENT:g} % by default); shorten the exposure or slow down')

    def _blur_dict(self) -> dict[str, Any] | None:
        if not self.motion_blur:
            return None
        highest = self.highest_blur_median
        return {'estimates': len(self.motion_blur),
                'median_percent': round(statistics.median(self.motion_blur), 2),
                'highest_window_median_percent': None if highest is None
                else round(highest, 2)}

    def model_description(self) -> str:
        """Return the model and its labels in a line, or who knows them (attached)."""
        if self.model_path is None:
            return "the running pipeline's (attached: not known here)"
        count = 'unreadable' if self.label_count is None else f'{self.label_count} labels'
        return f'{self.model_path} (labels {self.labels_path}, {count})'

    def as_dict(self) -> dict[str, Any]:
        """Return the summary as plain JSON types."""
        return {
            'bag': str(self.bag), 'image_topic': self.image_topic, 'fix_topic': self.fix_topic,
            'mode': self.mode,
            'model': None if self.model_path is None else {
                'path': str(self.model_path),
                'labels': {'path': str(self.labels_path) if self.labels_path else None,
                           'count': self.label_count}},
            'params_file': str(self.params_file) if self.params_file else None,
            'parameters': dict(self.parameters),
            'frames_in': self.frames_in, 'labelled': self.labelled,
            'unknown': self.unknown, 'no_leaf': self.no_leaf, 'unanswered': self.unanswered,
            'repeated_stamps': self.repeated_stamps, 'resent': self.resent,
            'rejected': dict(sorted(self.rejected.items())),
            'rejected_total': sum(self.rejected.values()), 'rejected_by': self.rejected_by,
            'fixes_in': self.fixes_in,
            'fixes_unusable': dict(sorted(self.fixes_unusable.items())),
            'detections': dict(sorted(self.detections.items())),
            'detections_total': sum(self.detections.values()),
            'fix_status': dict(sorted(self.fix_status.items())),
            'motion_blur': self._blur_dict(),
            'wall_s': round(self.wall_s, 3), 'frames_per_s': round(self.frames_per_s, 2),
            'out_dir': str(self.out_dir) if self.out_dir else None,
            'output_bag': str(self.output_bag) if self.output_bag else None,
            'geojson': str(self.geojson) if self.geojson else None,
            'png': str(self.png) if self.png else None,
            'grid_geojson': str(self.grid_geojson) if self.grid_geojson else None,
            'grid_geopackage': str(self.grid_geopackage) if self.grid_geopackage else None,
            'save_message': self.save_message,
            'logs': [str(path) for path in self.logs], 'warnings': self.warnings,
        }

    def lines(self) -> list[str]:
        """Return the human-readable summary."""
        total = sum(self.detections.values())
        lines = [
            f'bag:         {self.bag} (image {self.image_topic}, '
            f'fix {self.fix_topic or "none"}; {self.mode})',
        ]
        if self.model_path is not None or self.mode.endswith('attached'):
            lines.append(f'model:       {self.model_description()}')
        if self.params_file or self.parameters:
            lines.append('parameters:  ' + ', '.join(
                ([str(self.params_file)] if self.params_file else [])
                + [f'-p {name}:={value}' for name, value in self.parameters.items()]))
        lines += [
            f'frames in:   {self.frames_in}',
            f'labelled:    {self.labelled} ({self.no_leaf} no_leaf: no leaf in view, '
            f'{self.unknown} unknown below the score threshold'
            + (f', {self.unanswered} not classified' if self.unanswered else '')
            + (f', {sum(self.rejected.values())} rejected' if self.rejected else '') + ')',
            f'speed:       {self.frames_per_s:.1f} frames/s ({self.wall_s:.1f} s)',
            f'detections:  {total}'
            + (' (' + ', '.join(f'{status} {count}' for status, count in
                                sorted(self.fix_status.items())) + ')' if total else ''),
        ]
        for label, count in sorted(self.detections.items(),
                                   key=lambda item: (-item[1], item[0])):
            lines.append(f'  {count:5d}  {label}')
        if self.motion_blur:
            highest = self.highest_blur_median
            lines.append(
                f'motion blur: {statistics.median(self.motion_blur):.1f} % of the frame side '
                f'(median of {len(self.motion_blur)} estimates'
                + (f'; highest median of {self.blur_window} in a row {highest:.1f} %'
                   if highest is not None else '') + ')')
        if self.mode.endswith('attached') and self.save_message:
            lines.append(f'recorder:    {self.save_message}')
        lines += [
            f'GeoJSON:     {self.geojson or "not written"}',
            f'map PNG:     {self.png or "not written"}',
            f'grid:        {self.grid_geojson or "not written"}'
            + (f', {self.grid_geopackage}' if self.grid_geopackage else ''),
            f'output bag:  {self.output_bag or "not written"}',
        ]
        lines += [f'warning:     {text}' for text in self.warnings]
        return lines
