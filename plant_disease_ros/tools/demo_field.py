"""The demo field and drive: three crop rows, the robot's stop-and-go path, photos per plant.

The robot drives a serpentine over three rows, stop-and-go as phenotyping robots do: it
drives from plant to plant and creeps over each one while its close-up downward camera
grabs a burst of frames, so every plant is seen in several consecutive frames. Between
some plants the camera also grabs a burst while driving over ground with no crop leaf in
view (bare soil, grass and weeds, the sky on the headland, the robot's shadow). GPS fixes
come at a fixed rate, except in a dropout over the middle row.

Most plants show a lab photo (PlantVillage); a few show a field photo (PlantDoc). Photos
are taken from the held-out test splits when there are any, so the demo never shows the
model a photo it was trained on.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
import math
from pathlib import Path
import random

from plant_disease_ros.core.split_manifest import (
    DatasetError,
    Manifest,
    read_field_split,
    read_manifest,
    Split,
)

REPO_ROOT = Path(__file__).resolve().parents[2]

ROWS = 3
FRAMES_PER_PLANT = 4
BURST_RATE_HZ = 10.0
ROW_SPACING_M = 2.0
PLANT_SPACING_M = 1.0
ROW_SPEED_MPS = 0.5           # between plants
CREEP_SPEED_MPS = 0.04        # over a plant, while its burst is grabbed
CREEP_S = 0.6
TURN_SPEED_MPS = 0.5
HEADLAND_M = 0.5              # driven past the row ends before turning
LEAD_M = 0.5                  # driven before the first and after the last row

GPS_RATE_HZ = 5.0
DROPOUT_S = 5.0
# The classifier's default; frames farther than this from every fix cannot be located.
MAX_FIX_AGE_S = 2.0

ROW_CROPS = ('Tomato', 'Potato', 'Apple')
# Plants (by index in their row) that show a field photo instead of a lab photo.
FIELD_PLANTS = (2, 5)
# No-leaf stretches: (row, the plant they come before) -> what the camera sees there.
NO_LEAF_STRETCHES = {
    (0, 0): 'grass_weeds', (0, 3): 'bare_soil', (0, 5): 'grass_weeds',
    (1, 0): 'sky', (1, 3): 'bare_soil', (1, 5): 'grass_weeds',
    (2, 0): 'bare_soil', (2, 3): 'dark', (2, 5): 'grass_weeds',
}
LAB_LEAF, FIELD_LEAF, NO_LEAF = 'lab_leaf', 'field_leaf', 'no_leaf'


@dataclass(frozen=True)
class Plant:
    """One plant in a row: the photo that shows it and where it stands."""

    row: int
    index: int
    label: str
    photo: str            # path relative to its data folder
    east: float
    north: float
    pass_time_s: float    # when the camera is right above it (seconds from the start)
    kind: str = LAB_LEAF  # LAB_LEAF or FIELD_LEAF


@dataclass(frozen=True)
class Stretch:
    """Ground with no crop leaf, driven over before plant ``before`` of ``row``."""

    row: int
    before: int
    scene: str            # one of demo_scene.NO_LEAF_SCENES
    pass_time_s: float    # when the camera is over its middle
    kind: str = NO_LEAF


@dataclass(frozen=True)
class Segment:
    """A piece of the robot's path: ``position(s)`` for s metres along it."""

    start_s: float
    duration_s: float
    speed_mps: float
    position: Callable[[float], tuple[float, float]]


@dataclass
class DrivePlan:
    """The whole drive: path segments, plants, camera frame times and GPS fix times."""

    segments: list[Segment]
    plants: list[Plant]
    # (seconds from start, what is in view, burst index)
    frame_times: list[tuple[float, Plant | Stretch, int]]
    fix_times: list[float]
    dropout: tuple[float, float]
    duration_s: float
    stretches: list[Stretch] = field(default_factory=list)

    def position(self, t: float) -> tuple[float, float]:
        """Return the robot's true (east, north) in metres at ``t`` seconds."""
        for segment in self.segments:
            if t <= segment.start_s + segment.duration_s:
                elapsed = min(max(t - segment.start_s, 0.0), segment.duration_s)
                return segment.position(elapsed * segment.speed_mps)
        last = self.segments[-1]
        return last.position(last.duration_s * last.speed_mps)


def _straight(start: tuple[float, float], direction: tuple[float, float]
              ) -> Callable[[float], tuple[float, float]]:
    return lambda s: (start[0] + direction[0] * s, start[1] + direction[1] * s)


def _half_circle(centre: tuple[float, float], radius: float, start_angle: float,
                 turn: float) -> Callable[[float], tuple[float, float]]:
    def position(s: float) -> tuple[float, float]:
        angle = start_angle + turn * s / radius
        return centre[0] + radius * math.cos(angle), centre[1] + radius * math.sin(angle)
    return position


def _burst(centre_s: float) -> list[tuple[float, int]]:
    return [(centre_s + (burst - (FRAMES_PER_PLANT - 1) / 2) / BURST_RATE_HZ, burst)
            for burst in range(FRAMES_PER_PLANT)]


def plan_drive(plants_per_row: int, photos: Sequence[tuple[str, str, str]],
               stretches: dict[tuple[int, int], str] | None = None) -> DrivePlan:
    """Lay out the rows, the robot's serpentine path, the camera bursts and the GPS fixes.

    ``photos`` gives (label, photo, kind) for every plant in driving order; ``stretches``
    maps (row, plant index) to the no-leaf scene driven over just before that plant (a
    burst is grabbed in the middle of the drive to it). Rows run east-west,
    ``ROW_SPACING_M`` apart going north; row 0 is driven east, row 1 west, row 2 east.
    """
    stretches = stretches or {}
    stretch_list: list[Stretch] = []
    row_length = plants_per_row * PLANT_SPACING_M
    segments: list[Segment] = []
    plants: list[Plant] = []
    frame_times: list[tuple[float, Plant | Stretch, int]] = []
    t = 0.0

    def add(length: float, speed: float, position: Callable[[float], tuple[float, float]]
            ) -> float:
        segments.append(Segment(t, length / speed, speed, position))
        return t + length / speed

    for row in range(ROWS):
        heading = 1.0 if row % 2 == 0 else -1.0
        north = row * ROW_SPACING_M
        entry = -HEADLAND_M if heading > 0 else row_length + HEADLAND_M
        lead = LEAD_M if row == 0 else 0.0
        length = row_length + 2 * HEADLAND_M + lead + (LEAD_M if row == ROWS - 1 else 0.0)
        row_start = entry - heading * lead
        # Stop-and-go: drive to just before each plant, creep over it while the camera
        # grabs its burst, drive on. ``done`` is the distance driven along the row.
        done = 0.0
        for index in range(plants_per_row):
            along = (index + 0.5) * PLANT_SPACING_M
            east = along if heading > 0 else row_length - along
            creep_length = CREEP_SPEED_MPS * CREEP_S
            creep_from = lead + HEADLAND_M + along - creep_length / 2
            drive_from = t
            t = add(creep_from - done, ROW_SPEED_MPS,
                    _straight((row_start + heading * done, north), (heading, 0.0)))
            if (row, index) in stretches:
                stretch = Stretch(row, index, stretches[(row, index)], (drive_from + t) / 2)
                stretch_list.append(stretch)
                frame_times += [(time, stretch, burst)
                                for time, burst in _burst(stretch.pass_time_s)]
            pass_time = t + CREEP_S / 2
            t = add(creep_length, CREEP_SPEED_MPS,
                    _straight((row_start + heading * creep_from, north), (heading, 0.0)))
            done = creep_from + creep_length
            label, photo, kind = photos[row * plants_per_row + index]
            plant = Plant(row, index, label, photo, east, north, pass_time, kind)
            plants.append(plant)
            frame_times += [(time, plant, burst) for time, burst in _burst(pass_time)]
        t = add(length - done, ROW_SPEED_MPS,
                _straight((row_start + heading * done, north), (heading, 0.0)))
        if row < ROWS - 1:
            exit_east = row_length + HEADLAND_M if heading > 0 else -HEADLAND_M
            radius = ROW_SPACING_M / 2
            centre = (exit_east, north + radius)
            # East end: from the bottom of the circle counter-clockwise; west end: clockwise.
            turn = 1.0 if heading > 0 else -1.0
            start_angle = -math.pi / 2
            t = add(math.pi * radius, TURN_SPEED_MPS,
                    _half_circle(centre, radius, start_angle, turn))
    duration = t
    # The dropout is centred on the middle plant of the middle row, long enough that the
    # frames of that plant are farther than MAX_FIX_AGE_S from every fix.
    middle = plants[(ROWS // 2) * plants_per_row + plants_per_row // 2]
    dropout = (middle.pass_time_s - DROPOUT_S / 2, middle.pass_time_s + DROPOUT_S / 2)
    count = int(math.floor(duration * GPS_RATE_HZ)) + 1
    fix_times = [i / GPS_RATE_HZ for i in range(count)
                 if not dropout[0] < i / GPS_RATE_HZ < dropout[1]]
    frame_times.sort(key=lambda item: item[0])
    return DrivePlan(segments, plants, frame_times, fix_times, dropout, duration,
                     stretch_list)


def _test_photos(split: Split) -> dict[str, list[str]]:
    photos: dict[str, list[str]] = {}
    for relative, class_index in split.parts['test']:
        photos.setdefault(split.classes[class_index], []).append(relative)
    return photos


def _class_photos_from_split(split_path: Path) -> dict[str, list[str]]:
    # read_manifest and Split name the file in one line when it is not a lab split (the
    # field split passed as --split, say), instead of a KeyError traceback.
    return _test_photos(Split.from_manifest(read_manifest(split_path)))


def _class_photos_from_folder(data_dir: Path) -> dict[str, list[str]]:
    photos: dict[str, list[str]] = {}
    for class_dir in sorted(path for path in data_dir.iterdir() if path.is_dir()):
        files = sorted(path for path in class_dir.iterdir()
                       if path.suffix.lower() in ('.jpg', '.jpeg', '.png'))
        if files:
            photos[class_dir.name] = [f'{class_dir.name}/{path.name}' for path in files]
    return photos


def _field_photos_from_split(split_path: Path, domain: str) -> dict[str, list[str]]:
    domains = read_field_split(split_path)['domains']
    if not isinstance(domains, dict) or not isinstance(domains.get(domain), dict):
        known = ', '.join(domains) if isinstance(domains, dict) else 'none'
        raise DatasetError(f'{split_path} has no field folder {domain!r} (has {known}): '
                           'give the --field-split made for that folder')
    entry = Manifest(domains[domain], f'{split_path} (field folder {domain!r})')
    return _test_photos(Split.from_manifest(entry))


def choose_field_photos(field_dir: Path, field_split: Path | None, plants_per_row: int,
                        rng: random.Random) -> dict[tuple[int, int], tuple[str, str]]:
    """Pick (label, photo) for the ``FIELD_PLANTS`` of each row from a field test split.

    ``field_split`` is the field split file (its ``plantdoc`` domain's test part); when it
    or the folder is missing, or a row's crop has no field photo, those plants stay lab
    plants. Each row cycles through its crop's field classes in a shuffled order. A file
    that is not a field split (the lab split, say), or one without a domain for the folder,
    raises :class:`DatasetError` naming the file.
    """
    if field_split is None or not field_split.is_file() or not field_dir.is_dir():
        return {}
    photos = _field_photos_from_split(field_split, field_dir.name)
    photos = {label: sorted(p for p in paths if (field_dir / p).is_file())
              for label, paths in sorted(photos.items())}
    for paths in photos.values():
        rng.shuffle(paths)
    chosen: dict[tuple[int, int], tuple[str, str]] = {}
    for row in range(ROWS):
        crop = ROW_CROPS[row % len(ROW_CROPS)]
        classes = sorted(label for label, paths in photos.items()
                         if label.split('___')[0] == crop and paths)
        rng.shuffle(classes)
        indices = [index for index in FIELD_PLANTS if index < plants_per_row]
        for number, index in enumerate(indices):
            if not classes:
                break
            label = classes[number % len(classes)]
            if photos[label]:
                chosen[(row, index)] = (label, photos[label].pop())
    return chosen


def choose_photos(data_dir: Path, split_path: Path | None, plants_per_row: int,
                  rng: random.Random) -> tuple[list[tuple[str, str]], str]:
    """Pick a lab (label, photo) for every plant, one crop per row; return them and the source.

    Photos come from the test split of ``split_path`` when it exists, else from the whole
    folder (a seeded choice). Each row cycles through its crop's classes in a shuffled
    order, so most classes of the crop appear; no photo is used twice. A split file that is
    not a lab split (the field split, say) raises :class:`DatasetError` naming the file.
    """
    if not data_dir.is_dir():
        raise FileNotFoundError(f'photo folder not found: {data_dir}')
    if split_path is not None and split_path.is_file():
        photos = _class_photos_from_split(split_path)
        shown = split_path.resolve()
        if shown.is_relative_to(REPO_ROOT):
            shown = shown.relative_to(REPO_ROOT)
        source = f'test split of {shown}'
    else:
        photos = _class_photos_from_folder(data_dir)
        source = 'seeded choice from the whole folder (no split file)'
    photos = {label: [p for p in paths if (data_dir / p).is_file()]
              for label, paths in photos.items()}
    photos = {label: paths for label, paths in photos.items() if paths}
    if not photos:
        raise ValueError(f'no leaf photos found under {data_dir}')
    for paths in photos.values():
        rng.shuffle(paths)
    chosen: list[tuple[str, str]] = []
    for row in range(ROWS):
        crop = ROW_CROPS[row % len(ROW_CROPS)]
        classes = sorted(label for label in photos if label.split('___')[0] == crop)
        classes = classes or sorted(photos)
        rng.shuffle(classes)
        for index in range(plants_per_row):
            label = classes[index % len(classes)]
            if not photos[label]:
                raise ValueError(f'not enough photos of {label} for the demo')
            chosen.append((label, photos[label].pop()))
    return chosen, source
