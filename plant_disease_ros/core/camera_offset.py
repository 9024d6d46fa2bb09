"""Where the camera looks, not where the antenna is: the GPS lever arm of a detection.

A GPS fix is the antenna's position; the leaf a frame shows lies where the camera looks,
often a metre or more ahead of, behind or beside the antenna. Without correction a
detection lands that far off, and in opposite directions on the way up and down a row, so
that one diseased plant becomes two map cells apart. The offset is given in the robot's
frame of travel (forward, left: REP 103's x and y of ``base_link``, from the antenna to
the centre of the camera's view on the ground) and turned into east and north by the
direction of travel, which the fixes themselves give (``FixBuffer.course_at``): no
compass, IMU or TF tree needed.

The direction of travel is the robot's heading while it drives forwards. A robot that
reverses has its offset mirrored for those frames, and one standing still has none: its
detections keep the antenna's position, their accuracy widened by the offset's length,
and say so (``camera_offset`` ``'no_heading'``).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, replace
import math

from plant_disease_ros.core.fix_buffer import FixBuffer, FixLookup
from plant_disease_ros.core.geodesy import moved_by

# Longest offset accepted (m): a camera on a 30 m sprayer boom is still within it.
MAX_OFFSET_M = 100.0
DEFAULT_MIN_TRAVEL_M = 1.0
CAMERA_OFFSET_STATES = ('none', 'applied', 'no_heading')


def check_offset(value: object) -> str | None:
    """Return why ``value`` is not a usable ``[forward, left]`` offset in metres, or None.

    Integers are taken as metres too (a params file's ``[1, 0]``); booleans are not.
    """
    if isinstance(value, (str, bytes)) or not isinstance(value, Sequence):
        return f'camera_offset_m must be [forward, left] in metres, got {value!r}'
    values = list(value)
    if len(values) != 2:
        return f'camera_offset_m must be [forward, left] in metres, got {values}'
    if not all(isinstance(v, (int, float)) and not isinstance(v, bool)
               and math.isfinite(v) and abs(v) <= MAX_OFFSET_M for v in values):
        return (f'camera_offset_m values must be finite and within +-{MAX_OFFSET_M:g} m, '
                f'got {values}')
    return None


@dataclass(frozen=True)
class CameraOffset:
    """The camera's view ``forward_m`` ahead of and ``left_m`` left of the GPS antenna.

    ``min_travel_m`` is the least distance the line fitted through the fixes must cover
    before its direction is taken as the direction of travel (see ``FixBuffer.heading_at``).
    """

    forward_m: float = 0.0
    left_m: float = 0.0
    min_travel_m: float = DEFAULT_MIN_TRAVEL_M

    def __post_init__(self) -> None:
        """Refuse an offset or travel that cannot work (ValueError)."""
        reason = check_offset([self.forward_m, self.left_m])
        if reason is not None:
            raise ValueError(reason)
        if not (math.isfinite(self.min_travel_m) and self.min_travel_m > 0.0):
            raise ValueError(f'min_travel_m must be > 0, got {self.min_travel_m}')

    @property
    def active(self) -> bool:
        """Return whether there is an offset to apply."""
        return self.forward_m != 0.0 or self.left_m != 0.0

    @property
    def length_m(self) -> float:
        """Return the distance between the antenna and the camera's view (m)."""
        return math.hypot(self.forward_m, self.left_m)

    def describe(self) -> str:
        """Return the offset for logs and diagnostics."""
        if not self.active:
            return "none (positions are the antenna's)"
        return (f'{self.forward_m:g} m forward, {self.left_m:g} m left of the antenna '
                f'(heading from {self.min_travel_m:g} m of travel)')

    def east_north(self, heading_deg: float) -> tuple[float, float]:
        """Return the offset as east, north (m) for a robot heading ``heading_deg``.

        ``heading_deg`` is clockwise from north (a compass bearing): forward is
        ``(sin h, cos h)`` in east, north and left is ``(-cos h, sin h)``.
        """
        heading = math.radians(heading_deg)
        sin_h, cos_h = math.sin(heading), math.cos(heading)
        return (self.forward_m * sin_h - self.left_m * cos_h,
                self.forward_m * cos_h + self.left_m * sin_h)

    def apply(self, lookup: FixLookup, stamp_s: float, fixes: FixBuffer) -> FixLookup:
        """Return ``lookup`` with its position moved to the camera's view at ``stamp_s``.

        Unchanged without an offset or a position. Without a direction of travel (the
        robot stands) the antenna's position stays, its accuracy widened by
        :attr:`length_m` when it has one, and ``camera_offset`` says ``'no_heading'``. With
        one, the accuracy is widened by what the heading's uncertainty moves the view.
        """
        fix = lookup.fix
        if not self.active or fix is None:
            return lookup
        motion = fixes.heading_at(stamp_s, self.min_travel_m)
        if motion is None:
            accuracy = fix.horizontal_accuracy_m
            widened = None if accuracy is None else accuracy + self.length_m
            return replace(lookup, fix=replace(fix, horizontal_accuracy_m=widened),
                           camera_offset='no_heading', heading_deg=None)
        heading = motion.heading_deg
        east, north = self.east_north(heading)
        latitude, longitude = moved_by(fix.latitude, fix.longitude, east, north)
        # A heading off by its sigma moves the view sideways by that much of the offset.
        accuracy = fix.horizontal_accuracy_m
        if accuracy is not None:
            accuracy += self.length_m * math.sin(min(motion.sigma_heading_rad, math.pi / 2))
        return replace(lookup, fix=replace(fix, latitude=latitude, longitude=longitude,
                                           horizontal_accuracy_m=accuracy),
                       camera_offset='applied', heading_deg=heading)
