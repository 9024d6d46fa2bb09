"""The disease map as a picture: detections on local metres, coloured by label.

matplotlib is imported only when a map is rendered (with the Agg backend), so the label
colours below can be used on a robot without it: the recorder colours its RViz markers
with the same palette as the PNG.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable, Sequence
import colorsys
import logging
import math
from pathlib import Path

from plant_disease_ros.core.atomic_files import replacing
from plant_disease_ros.core.detections import (
    feature_healthy,
    feature_label,
    feature_position,
    feature_stamp_s,
)
from plant_disease_ros.core.geodesy import geodetic_to_enu
from plant_disease_ros.core.labels import display_name, is_healthy

# Healthy classes in muted greens; diseases in saturated colours that are neither green
# nor the track's grey, so a diseased point never reads as a healthy one.
HEALTHY_COLOURS = ('#7fa77f', '#9dbb8c', '#6a9275', '#b1c9a5', '#5f8a5f', '#8eb39b')
DISEASE_COLOURS = (
    '#d62728', '#ff7f0e', '#9467bd', '#1f77b4', '#8c564b', '#e377c2', '#17becf',
    '#bcbd22', '#393b79', '#e7ba52', '#843c39', '#7b4173', '#3182bd', '#fd8d3c',
    '#000000', '#a55194', '#6baed6', '#d6616b',
)
TRACK_COLOUR = '#9e9e9e'
NO_POSITION_NOTE = '{count} detection(s) without a position, not shown'


class _FixedLimitsNotice(logging.Filter):
    """Drop matplotlib's notice that the equal aspect widens the square limits set here.

    A small map gets at least 10 m each way; the equal aspect then widens one axis to fill
    the plot, which is the intent, but matplotlib logs it as a warning on every map.
    """

    def filter(self, record: logging.LogRecord) -> bool:
        """Return False for the fixed-limits notice, True for everything else."""
        return 'to fulfill fixed data aspect' not in record.getMessage()


def hex_to_rgb(colour: str) -> tuple[float, float, float]:
    """Return ``#rrggbb`` as red, green, blue floats in [0, 1]."""
    text = colour.lstrip('#')
    if len(text) != 6:
        raise ValueError(f'not a #rrggbb colour: {colour!r}')
    return tuple(int(text[index:index + 2], 16) / 255.0 for index in (0, 2, 4))


def _extra_disease_colour(index: int) -> str:
    """Return a further distinct colour once the palette is used up (golden-ratio hues)."""
    hue = (0.03 + index * 0.618033988749895) % 1.0
    if 0.2 < hue < 0.45:  # skip the greens
        hue = (hue + 0.3) % 1.0
    red, green, blue = colorsys.hsv_to_rgb(hue, 0.85, 0.8)
    return f'#{round(red * 255):02x}{round(green * 255):02x}{round(blue * 255):02x}'


class LabelPalette:
    """Give each label a colour on first sight, stable for the palette's lifetime."""

    def __init__(self, labels: Iterable[str] = (),
                 healthy: dict[str, bool] | None = None) -> None:
        """Create a palette, optionally assigning ``labels`` first (in the given order)."""
        self._colours: dict[str, str] = {}
        self._healthy_count = 0
        self._disease_count = 0
        for label in labels:
            self.colour(label, (healthy or {}).get(label))

    def colour(self, label: str, healthy: bool | None = None) -> str:
        """Return the ``#rrggbb`` colour of ``label`` (healthy from the label if not given)."""
        colour = self._colours.get(label)
        if colour is not None:
            return colour
        if healthy is None:
            healthy = is_healthy(label)
        if healthy:
            colour = HEALTHY_COLOURS[self._healthy_count % len(HEALTHY_COLOURS)]
            self._healthy_count += 1
        else:
            index = self._disease_count
            colour = (DISEASE_COLOURS[index] if index < len(DISEASE_COLOURS)
                      else _extra_disease_colour(index - len(DISEASE_COLOURS)))
            self._disease_count += 1
        self._colours[label] = colour
        return colour

    def rgb(self, label: str, healthy: bool | None = None) -> tuple[float, float, float]:
        """Return the colour of ``label`` as red, green, blue floats in [0, 1]."""
        return hex_to_rgb(self.colour(label, healthy))


def label_colours(labels: Iterable[str]) -> dict[str, str]:
    """Return a distinct ``#rrggbb`` colour per label, assigned in sorted label order."""
    palette = LabelPalette()
    return {label: palette.colour(label) for label in sorted(set(labels))}


def nice_scale_length(span_m: float) -> float:
    """Return a 1, 2 or 5 x 10^k metre length near a fifth of ``span_m``."""
    target = max(span_m, 1e-3) / 5.0
    exponent = math.floor(math.log10(target))
    best = 10.0 ** exponent
    for factor in (1.0, 2.0, 5.0, 10.0):
        length = factor * 10.0 ** exponent
        if length <= target:
            best = length
    return best


def _local_points(features: Sequence[dict], origin: tuple[float, float, float] | None
                  ) -> tuple[list[tuple[float, float, str, bool, float, str]], int,
                             tuple[float, float, float] | None]:
    """Return located ``(east, north, label, healthy, stamp, frame_id)`` rows, the unlocated
    count and the origin."""
    rows: list[tuple[float, float, str, bool, float, str]] = []
    unlocated = 0
    for order, feature in enumerate(features):
        position = feature_position(feature)
        if position is None:
            unlocated += 1
            continue
        if origin is None:
            origin = position
        east, north, _ = geodetic_to_enu(*position, *origin)
        stamp = feature_stamp_s(feature)
        frame_id = (feature.get('properties') or {}).get('frame_id')  # null: RFC 7946 allows it
        rows.append((east, north, feature_label(feature), feature_healthy(feature),
                     stamp if stamp is not None else float(order),
                     frame_id if isinstance(frame_id, str) else ''))
    return rows, unlocated, origin


# A record stamped this much (s) before the newest one of the file so far starts a new
# piece of the track: a session after a reboot whose clock was behind, a bag played again.
TRACK_RESTART_S = 60.0


def track_order(stamps: Sequence[float]) -> list[int]:
    """Return the indices of ``stamps`` (in file order) in the order the robot drove.

    Stamp order within each piece of the file, the pieces in file order: a piece starts
    where a stamp lies more than :data:`TRACK_RESTART_S` before the newest so far. Within
    a piece, detections the recorder got late (the classifier's history) take their
    place; across pieces, a session whose clock restarted behind the last one's is not
    woven into it.
    """
    pieces: list[int] = []
    piece, newest = 0, -math.inf
    for stamp in stamps:
        if stamp < newest - TRACK_RESTART_S:
            piece += 1
            newest = stamp
        newest = max(newest, stamp)
        pieces.append(piece)
    return sorted(range(len(stamps)), key=lambda index: (pieces[index], stamps[index]))


def render_disease_map(features: Iterable[dict], png_path: str | Path, title: str = '',
                       origin: tuple[float, float, float] | None = None) -> Path:
    """Render detections as a PNG map on local metres and return its path.

    Points are east/north metres from ``origin`` (latitude, longitude, altitude), or from
    the first located feature, coloured by label (healthy labels in muted greens), with a
    legend of counts, a scale bar, the robot's track (located detections in the order
    driven, see :func:`track_order`, as a thin grey line, one per camera ``frame_id``) and
    a note of the detections that had no position.
    """
    import matplotlib

    matplotlib.use('Agg')
    import matplotlib.pyplot as plt
    from mpl_toolkits.axes_grid1.anchored_artists import AnchoredSizeBar

    features = list(features)
    rows, unlocated, origin = _local_points(features, origin)
    counts = Counter(row[2] for row in rows)
    healthy_of = {row[2]: row[3] for row in rows}
    # Diseases first in the legend, each group sorted: the reader looks for disease.
    ordered = sorted(counts, key=lambda label: (healthy_of[label], label))
    palette = LabelPalette()
    for label in sorted(counts):
        palette.colour(label, healthy_of[label])

    figure, axis = plt.subplots(figsize=(8.0, 7.0))
    if rows:
        # One track per camera (image frame_id): two cameras' detections of one moment lie
        # metres apart, and one line through both would zig-zag between them.
        for number, camera in enumerate(sorted({row[5] for row in rows})):
            own = [row for row in rows if row[5] == camera]
            track = [own[index] for index in track_order([row[4] for row in own])]
            axis.plot([row[0] for row in track], [row[1] for row in track], '-',
                      color=TRACK_COLOUR, linewidth=0.8, alpha=0.9, zorder=4,
                      label='robot track' if number == 0 else None)
            # The start of the track, so its direction reads at a glance.
            axis.plot(track[0][0], track[0][1], '^', color=TRACK_COLOUR, markersize=7,
                      zorder=4)
        for label in ordered:
            points = [row for row in rows if row[2] == label]
            axis.scatter([row[0] for row in points], [row[1] for row in points],
                         s=46, color=palette.colour(label), edgecolors='none',
                         zorder=2 if healthy_of[label] else 3,
                         label=f'{display_name(label)} ({counts[label]})')
        east = [row[0] for row in rows]
        north = [row[1] for row in rows]
        span = max(max(east) - min(east), max(north) - min(north))
        if span < 10.0:
            middle_e, middle_n = (max(east) + min(east)) / 2, (max(north) + min(north)) / 2
            axis.set_xlim(middle_e - 5.0 - span / 2, middle_e + 5.0 + span / 2)
            axis.set_ylim(middle_n - 5.0 - span / 2, middle_n + 5.0 + span / 2)
            span = max(span, 10.0)
        axis.legend(loc='upper left', bbox_to_anchor=(1.01, 1.0), fontsize=8,
                    frameon=False, title='label (detections)', title_fontsize=9)
    else:
        axis.set_xlim(-5.0, 5.0)
        axis.set_ylim(-5.0, 5.0)
        span = 10.0
        axis.text(0.5, 0.5, 'no located detections', transform=axis.transAxes,
                  ha='center', va='center', color='#555555')
    axis.set_aspect('equal', adjustable='datalim')
    length = nice_scale_length(span)
    axis.add_artist(AnchoredSizeBar(axis.transData, length, f'{length:g} m', 'lower right',
                                    pad=0.5, borderpad=0.6, sep=4, frameon=True,
                                    size_vertical=length / 40.0, color='#222222'))
    axis.set_xlabel('east (m)')
    axis.set_ylabel('north (m)')
    axis.grid(alpha=0.25)
    heading = title or 'Disease map'
    if origin is not None:
        heading += f'\norigin {origin[0]:.6f}, {origin[1]:.6f} ({origin[2]:.1f} m)'
    axis.set_title(heading, fontsize=10)
    note = (f'{len(features)} detection(s), {len(rows)} located; '
            + NO_POSITION_NOTE.format(count=unlocated))
    figure.text(0.01, 0.01, note, fontsize=8, color='#444444', ha='left', va='bottom')
    path = Path(png_path)
    notices = logging.getLogger('matplotlib.axes._base')
    quiet = _FixedLimitsNotice()
    notices.addFilter(quiet)
    try:
        figure.tight_layout(rect=(0.0, 0.03, 1.0, 1.0))
        with replacing(path) as temporary:  # a failed write leaves an earlier map whole
            figure.savefig(temporary, dpi=110)
    finally:
        notices.removeFilter(quiet)
        plt.close(figure)
    return path
