"""Compose the demo bag: a short drive along three crop rows, made from held-out leaf photos.

The robot drives a serpentine over three rows, stop-and-go as phenotyping robots do: it
drives from plant to plant at 0.5 m/s and creeps over each one while its close-up
downward camera grabs a burst of frames at 10 Hz. So every plant is seen in several
consecutive frames that differ by the robot's creep (the leaf slides by ~20 px a frame),
a little motion blur and the exposure drifting with the light. A frame is a leaf photo
filling the image height, on a procedurally textured soil background that shows at the
sides: 640×480 like a real camera, 4:3 around a square view of the leaf. The model was
trained on square photos, so replay the demo with ``-p crop_mode:=center`` (the camera
subscriber's centred square): ``plant-disease replay demo/field_demo.mcap --fast -p
crop_mode:=center``.

The bag holds what a robot records:

- ``/camera/image_raw/compressed`` (sensor_msgs/CompressedImage, JPEG as image_transport
  publishes it) — every frame;
- ``/camera/image_raw`` (sensor_msgs/Image, bgr8) — one frame only, the centre frame of
  the first plant: a raw 640×480 frame is 921 kB, so the full raw stream would make the
  bag ~80 MB and a few MB is the budget. The truth file says which frame has a raw copy;
- ``/gps/fix`` (sensor_msgs/NavSatFix) at 5 Hz with 0.3 m Gaussian noise, a diagonal
  covariance and a dropout in the middle row during which no fix is published at all.

The truth file beside the bag lists, for every frame, its stamp, the class shown, the
photo it came from and the robot's true position. Photos are taken from the held-out test
split (``models/split.json``) when that file exists, so the demo never shows the model a
photo it was trained on.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
import json
import math
from pathlib import Path
import random
import shutil
import tempfile
from typing import Any

import cv2
import numpy as np

from plant_disease_ros.core.geodesy import enu_to_geodetic

REPO_ROOT = Path(__file__).resolve().parents[1]
DEFAULT_DATA_DIR = REPO_ROOT.parent / 'shared' / 'data' / 'plantvillage'
DEFAULT_OUT = REPO_ROOT / 'demo' / 'field_demo.mcap'
DEFAULT_SPLIT = REPO_ROOT / 'models' / 'split.json'
DEFAULT_FRAMES = 84
DEFAULT_SEED = 7

RAW_TOPIC = '/camera/image_raw'
COMPRESSED_TOPIC = '/camera/image_raw/compressed'
FIX_TOPIC = '/gps/fix'
CAMERA_FRAME = 'camera'
GPS_FRAME = 'gps'

# A field of the University of Illinois South Farms, Urbana (WGS84, ellipsoidal height).
ORIGIN = (40.081830, -88.226720, 190.0)
START_STAMP_S = 1749738600.0  # 2025-06-12 14:30:00 UTC

IMAGE_WIDTH = 640
IMAGE_HEIGHT = 480
PLANT_SIZE_PX = 480           # the leaf photo's side in the frame: the full height
PIXELS_PER_METRE = 4800.0     # close-up: the frame covers 13 cm × 10 cm of the canopy
JPEG_QUALITY = 60

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
GPS_SIGMA_M = 0.3
GPS_SIGMA_UP_M = 0.5
GPS_LATENCY_S = 0.04          # receive (log) time after the fix's stamp
CAMERA_LATENCY_S = 0.02
DROPOUT_S = 5.0
# The classifier's default; frames farther than this from every fix cannot be located.
MAX_FIX_AGE_S = 2.0

ROW_CROPS = ('Tomato', 'Potato', 'Apple')

NAVSAT_STATUS_FIX = 0
NAVSAT_SERVICE_GPS = 1
COVARIANCE_TYPE_DIAGONAL_KNOWN = 2


@dataclass(frozen=True)
class DemoOptions:
    """What to compose: photo folder, output bag, number of frames, seed, split file."""

    data_dir: Path = DEFAULT_DATA_DIR
    out_path: Path = DEFAULT_OUT
    frames: int = DEFAULT_FRAMES
    seed: int = DEFAULT_SEED
    split_path: Path = DEFAULT_SPLIT


@dataclass(frozen=True)
class Plant:
    """One plant in a row: the photo that shows it and where it stands."""

    row: int
    index: int
    label: str
    photo: str            # path relative to the data folder
    east: float
    north: float
    pass_time_s: float    # when the camera is right above it (seconds from the start)


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
    frame_times: list[tuple[float, Plant, int]]   # (seconds from start, plant, burst index)
    fix_times: list[float]
    dropout: tuple[float, float]
    duration_s: float

    def position(self, t: float) -> tuple[float, float]:
        """Return the robot's true (east, north) in metres at ``t`` seconds."""
        for segment in self.segments:
            if t <= segment.start_s + segment.duration_s:
                elapsed = min(max(t - segment.start_s, 0.0), segment.duration_s)
                return segment.position(elapsed * segment.speed_mps)
        last = self.segments[-1]
        return last.position(last.duration_s * last.speed_mps)


@dataclass
class DemoResult:
    """What make_demo_bag wrote."""

    bag_path: Path
    truth_path: Path
    bag_bytes: int
    frames: int
    raw_frames: int
    fixes: int
    labels: dict[str, int] = field(default_factory=dict)
    photo_source: str = ''


def _straight(start: tuple[float, float], direction: tuple[float, float]
              ) -> Callable[[float], tuple[float, float]]:
    return lambda s: (start[0] + direction[0] * s, start[1] + direction[1] * s)


def _half_circle(centre: tuple[float, float], radius: float, start_angle: float,
                 turn: float) -> Callable[[float], tuple[float, float]]:
    def position(s: float) -> tuple[float, float]:
        angle = start_angle + turn * s / radius
        return centre[0] + radius * math.cos(angle), centre[1] + radius * math.sin(angle)
    return position


def plan_drive(plants_per_row: int, photos: Sequence[tuple[str, str]]) -> DrivePlan:
    """Lay out the rows, the robot's serpentine path, the camera bursts and the GPS fixes.

    ``photos`` gives (label, photo) for every plant in driving order. Rows run east-west,
    ``ROW_SPACING_M`` apart going north; row 0 is driven east, row 1 west, row 2 east.
    """
    row_length = plants_per_row * PLANT_SPACING_M
    segments: list[Segment] = []
    plants: list[Plant] = []
    frame_times: list[tuple[float, Plant, int]] = []
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
            t = add(creep_from - done, ROW_SPEED_MPS,
                    _straight((row_start + heading * done, north), (heading, 0.0)))
            pass_time = t + CREEP_S / 2
            t = add(creep_length, CREEP_SPEED_MPS,
                    _straight((row_start + heading * creep_from, north), (heading, 0.0)))
            done = creep_from + creep_length
            label, photo = photos[row * plants_per_row + index]
            plant = Plant(row, index, label, photo, east, north, pass_time)
            plants.append(plant)
            for burst in range(FRAMES_PER_PLANT):
                offset = (burst - (FRAMES_PER_PLANT - 1) / 2) / BURST_RATE_HZ
                frame_times.append((pass_time + offset, plant, burst))
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
    return DrivePlan(segments, plants, frame_times, fix_times, dropout, duration)


def _class_photos_from_split(split_path: Path) -> dict[str, list[str]]:
    split = json.loads(split_path.read_text(encoding='utf-8'))
    classes = split['classes']
    photos: dict[str, list[str]] = {}
    for relative, class_index in split['splits']['test']:
        photos.setdefault(classes[int(class_index)], []).append(str(relative))
    return photos


def _class_photos_from_folder(data_dir: Path) -> dict[str, list[str]]:
    photos: dict[str, list[str]] = {}
    for class_dir in sorted(path for path in data_dir.iterdir() if path.is_dir()):
        files = sorted(path for path in class_dir.iterdir()
                       if path.suffix.lower() in ('.jpg', '.jpeg', '.png'))
        if files:
            photos[class_dir.name] = [f'{class_dir.name}/{path.name}' for path in files]
    return photos


def choose_photos(data_dir: Path, split_path: Path | None, plants_per_row: int,
                  rng: random.Random) -> tuple[list[tuple[str, str]], str]:
    """Pick (label, photo) for every plant, one crop per row; return them and the source.

    Photos come from the test split of ``split_path`` when it exists, else from the whole
    folder (a seeded choice). Each row cycles through its crop's classes in a shuffled
    order, so most classes of the crop appear; no photo is used twice.
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


def soil_background(width: int, height: int, rng: np.random.Generator) -> np.ndarray:
    """Return a BGR uint8 soil texture with clods, stones, straw and small weeds."""
    base = np.array([58.0, 82.0, 112.0], dtype=np.float32)  # moist loam, BGR
    coarse = cv2.resize(rng.normal(0.0, 1.0, (height // 24 + 2, width // 24 + 2)),
                        (width, height), interpolation=cv2.INTER_CUBIC)
    medium = cv2.resize(rng.normal(0.0, 1.0, (height // 5 + 2, width // 5 + 2)),
                        (width, height), interpolation=cv2.INTER_LINEAR)
    fine = cv2.GaussianBlur(rng.normal(0.0, 1.0, (height, width)), (0, 0), 0.8)
    shade = (16.0 * coarse + 8.0 * medium + 3.0 * fine).astype(np.float32)
    soil = base[None, None, :] + shade[:, :, None] * np.array([0.8, 0.9, 1.0], np.float32)
    image = np.clip(soil, 0, 255).astype(np.uint8)
    for _ in range(int(width * height / 12000)):           # stones
        centre = (int(rng.integers(0, width)), int(rng.integers(0, height)))
        axes = (int(rng.integers(2, 9)), int(rng.integers(2, 7)))
        grey = int(rng.integers(95, 160))
        cv2.ellipse(image, centre, axes, float(rng.uniform(0, 180)), 0, 360,
                    (grey - 8, grey, grey + 6), -1, cv2.LINE_AA)
    for _ in range(int(width * height / 9000)):            # straw residue
        x, y = int(rng.integers(0, width)), int(rng.integers(0, height))
        angle = rng.uniform(0, math.pi)
        length = rng.uniform(8, 30)
        end = (int(x + length * math.cos(angle)), int(y + length * math.sin(angle)))
        cv2.line(image, (x, y), end, (96, 160, 196), 1, cv2.LINE_AA)
    for _ in range(int(width * height / 40000)):           # weed seedlings
        x, y = int(rng.integers(0, width)), int(rng.integers(0, height))
        for _ in range(int(rng.integers(3, 7))):
            angle = rng.uniform(0, 2 * math.pi)
            length = rng.uniform(6, 16)
            end = (int(x + length * math.cos(angle)), int(y + length * math.sin(angle)))
            green = (int(rng.integers(30, 60)), int(rng.integers(120, 170)),
                     int(rng.integers(60, 100)))
            cv2.line(image, (x, y), end, green, 2, cv2.LINE_AA)
    return image


def feather_mask(size: int, border: int) -> np.ndarray:
    """Return a float32 size×size alpha mask that fades out over ``border`` pixels."""
    ramp = np.clip((np.arange(size, dtype=np.float32) + 0.5) / border, 0.0, 1.0)
    ramp = np.minimum(ramp, ramp[::-1])
    return np.minimum(ramp[:, None], ramp[None, :])


def compose_frame(background: np.ndarray, plant_bgr: np.ndarray, offset_px: float,
                  jitter_px: tuple[int, int], gain: float, blur_px: int,
                  rng: np.random.Generator) -> np.ndarray:
    """Return one 640×480 BGR frame: the plant on the moving soil, blurred and exposed.

    ``background`` is wider than the frame; the window onto it and the plant both move by
    ``offset_px`` (the robot's travel since the plant was centred), the plant by
    ``jitter_px`` more (vibration).
    """
    width = IMAGE_WIDTH
    margin = (background.shape[1] - width) // 2
    left = int(round(margin - offset_px))
    left = min(max(left, 0), background.shape[1] - width)
    frame = background[:, left:left + width].astype(np.float32)
    size = plant_bgr.shape[0]
    x0 = int(round((width - size) / 2 + offset_px + jitter_px[0]))
    y0 = int(round((IMAGE_HEIGHT - size) / 2 + jitter_px[1]))
    alpha = feather_mask(size, 6)[:, :, None]
    xs, ys = max(x0, 0), max(y0, 0)
    xe, ye = min(x0 + size, width), min(y0 + size, IMAGE_HEIGHT)
    patch = plant_bgr[ys - y0:ye - y0, xs - x0:xe - x0].astype(np.float32)
    weight = alpha[ys - y0:ye - y0, xs - x0:xe - x0]
    frame[ys:ye, xs:xe] = weight * patch + (1.0 - weight) * frame[ys:ye, xs:xe]
    if blur_px > 1:
        kernel = np.full((1, blur_px), 1.0 / blur_px, dtype=np.float32)
        frame = cv2.filter2D(frame, -1, kernel, borderType=cv2.BORDER_REFLECT)
    frame = frame * gain + rng.normal(0.0, 0.6, frame.shape).astype(np.float32)
    return np.clip(frame + 0.5, 0, 255).astype(np.uint8)


def _stamp(seconds: float) -> tuple[int, int]:
    nanoseconds = int(round(seconds * 1e9))
    return nanoseconds // 1_000_000_000, nanoseconds % 1_000_000_000


def _geodetic(east: float, north: float, up: float = 0.0) -> tuple[float, float, float]:
    return enu_to_geodetic(east, north, up, *ORIGIN)


class _Messages:
    """Build CDR messages with a rosbags typestore."""

    def __init__(self) -> None:
        from rosbags.typesys import get_typestore, Stores

        # Humble's definitions: the oldest supported distribution reads them unchanged.
        self.typestore = get_typestore(Stores.ROS2_HUMBLE)
        types = self.typestore.types
        self.Time = types['builtin_interfaces/msg/Time']
        self.Header = types['std_msgs/msg/Header']
        self.Image = types['sensor_msgs/msg/Image']
        self.CompressedImage = types['sensor_msgs/msg/CompressedImage']
        self.NavSatFix = types['sensor_msgs/msg/NavSatFix']
        self.NavSatStatus = types['sensor_msgs/msg/NavSatStatus']

    def header(self, stamp_s: float, frame_id: str) -> Any:
        sec, nanosec = _stamp(stamp_s)
        return self.Header(stamp=self.Time(sec=sec, nanosec=nanosec), frame_id=frame_id)

    def image(self, stamp_s: float, bgr: np.ndarray) -> bytes:
        height, width = bgr.shape[:2]
        message = self.Image(
            header=self.header(stamp_s, CAMERA_FRAME), height=height, width=width,
            encoding='bgr8', is_bigendian=0, step=width * 3,
            data=np.ascontiguousarray(bgr).reshape(-1))
        return bytes(self.typestore.serialize_cdr(message, self.Image.__msgtype__))

    def compressed(self, stamp_s: float, bgr: np.ndarray) -> bytes:
        ok, encoded = cv2.imencode('.jpg', bgr, [cv2.IMWRITE_JPEG_QUALITY, JPEG_QUALITY])
        if not ok:
            raise RuntimeError('JPEG encoding failed')
        message = self.CompressedImage(
            header=self.header(stamp_s, CAMERA_FRAME),
            format='bgr8; jpeg compressed bgr8', data=encoded.reshape(-1))
        return bytes(self.typestore.serialize_cdr(message, self.CompressedImage.__msgtype__))

    def fix(self, stamp_s: float, latitude: float, longitude: float, altitude: float) -> bytes:
        covariance = np.zeros(9, dtype=np.float64)
        covariance[[0, 4, 8]] = (GPS_SIGMA_M ** 2, GPS_SIGMA_M ** 2, GPS_SIGMA_UP_M ** 2)
        message = self.NavSatFix(
            header=self.header(stamp_s, GPS_FRAME),
            status=self.NavSatStatus(status=NAVSAT_STATUS_FIX, service=NAVSAT_SERVICE_GPS),
            latitude=latitude, longitude=longitude, altitude=altitude,
            position_covariance=covariance,
            position_covariance_type=COVARIANCE_TYPE_DIAGONAL_KNOWN)
        return bytes(self.typestore.serialize_cdr(message, self.NavSatFix.__msgtype__))


def write_mcap(path: Path, records: list[tuple[str, str, int, bytes]], typestore: Any) -> None:
    """Write (topic, msgtype, log time ns, CDR) records in time order to one MCAP file.

    rosbags writes a bag folder (metadata.yaml + .mcap); the MCAP file is self-contained
    (schemas, channels, index, zstd chunks), so only it is kept: ``ros2 bag play`` (with
    ``-s mcap`` on Humble), Foxglove and rosbags read it directly.
    """
    from rosbags.rosbag2 import CompressionFormat, CompressionMode, StoragePlugin, Writer

    path.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(dir=path.parent) as scratch:
        folder = Path(scratch) / path.stem
        writer = Writer(folder, version=8, storage_plugin=StoragePlugin.MCAP)
        writer.set_compression(CompressionMode.STORAGE, CompressionFormat.ZSTD)
        with writer:
            connections = {}
            for topic, msgtype, _, _ in records:
                if topic not in connections:
                    connections[topic] = writer.add_connection(topic, msgtype,
                                                               typestore=typestore)
            for topic, _, log_time_ns, data in sorted(records, key=lambda item: item[2]):
                writer.write(connections[topic], log_time_ns, data)
        written = folder / f'{path.stem}.mcap'
        shutil.move(str(written), str(path))


def make_demo_bag(options: DemoOptions, progress: Callable[[str], None] | None = None
                  ) -> DemoResult:
    """Compose the demo bag and its truth file; return what was written."""
    if options.frames < ROWS * FRAMES_PER_PLANT:
        raise ValueError(f'--frames must be at least {ROWS * FRAMES_PER_PLANT}')
    rng = random.Random(options.seed)
    np_rng = np.random.default_rng(options.seed)
    plants_per_row = max(1, round(options.frames / (ROWS * FRAMES_PER_PLANT)))
    photos, source = choose_photos(options.data_dir, options.split_path, plants_per_row, rng)
    plan = plan_drive(plants_per_row, photos)
    messages = _Messages()
    records: list[tuple[str, str, int, bytes]] = []
    truth_frames: list[dict] = []
    raw_plants = {(0, 0)}
    centre_burst = FRAMES_PER_PLANT // 2

    plant_images: dict[tuple[int, int], tuple[np.ndarray, np.ndarray]] = {}
    for plant in plan.plants:
        photo = cv2.imread(str(options.data_dir / plant.photo), cv2.IMREAD_COLOR)
        if photo is None:
            raise ValueError(f'cannot read photo {options.data_dir / plant.photo}')
        photo = cv2.resize(photo, (PLANT_SIZE_PX, PLANT_SIZE_PX),
                           interpolation=cv2.INTER_CUBIC)
        background = soil_background(IMAGE_WIDTH + 2 * 200, IMAGE_HEIGHT, np_rng)
        plant_images[(plant.row, plant.index)] = (photo, background)

    light = 1.0
    for number, (t, plant, burst) in enumerate(plan.frame_times):
        stamp_s = START_STAMP_S + t + 0.0031 + float(np_rng.uniform(-0.001, 0.001))
        east, north = plan.position(t)
        heading = 1.0 if plant.row % 2 == 0 else -1.0
        # Positive: the plant is still ahead of the camera and appears right of centre.
        offset_px = heading * (plant.east - east) * PIXELS_PER_METRE
        light = float(np.clip(light + np_rng.normal(0.0, 0.015), 0.88, 1.12))
        photo, background = plant_images[(plant.row, plant.index)]
        frame = compose_frame(
            background, photo, offset_px,
            (int(np_rng.integers(-4, 5)), int(np_rng.integers(-6, 7))),
            light * float(np_rng.uniform(0.98, 1.02)), int(np_rng.integers(1, 4)), np_rng)
        log_ns = int(round((stamp_s + CAMERA_LATENCY_S) * 1e9))
        records.append((COMPRESSED_TOPIC, 'sensor_msgs/msg/CompressedImage', log_ns,
                        messages.compressed(stamp_s, frame)))
        has_raw = (plant.row, plant.index) in raw_plants and burst == centre_burst
        if has_raw:
            records.append((RAW_TOPIC, 'sensor_msgs/msg/Image', log_ns,
                            messages.image(stamp_s, frame)))
        latitude, longitude, altitude = _geodetic(east, north)
        sec, nanosec = _stamp(stamp_s)
        truth_frames.append({
            'index': number,
            'stamp': {'sec': sec, 'nanosec': nanosec},
            'stamp_s': round(stamp_s, 9),
            'label': plant.label,
            'row': plant.row,
            'plant': plant.index,
            'burst_index': burst,
            'photo': plant.photo,
            'raw': has_raw,
            'in_dropout': plan.dropout[0] < t < plan.dropout[1],
            'position': {'latitude': latitude, 'longitude': longitude, 'altitude': altitude,
                         'east_m': round(east, 4), 'north_m': round(north, 4)},
        })
        if progress and (number + 1) % 20 == 0:
            progress(f'composed {number + 1}/{len(plan.frame_times)} frames')

    fix_stamps: list[float] = []
    for t in plan.fix_times:
        east, north = plan.position(t)
        noisy = (east + np_rng.normal(0.0, GPS_SIGMA_M), north + np_rng.normal(0.0, GPS_SIGMA_M),
                 np_rng.normal(0.0, GPS_SIGMA_UP_M))
        stamp_s = START_STAMP_S + t
        fix_stamps.append(stamp_s)
        log_ns = int(round((stamp_s + GPS_LATENCY_S) * 1e9))
        records.append((FIX_TOPIC, 'sensor_msgs/msg/NavSatFix', log_ns,
                        messages.fix(stamp_s, *_geodetic(*noisy))))

    for frame in truth_frames:
        nearest = min(abs(frame['stamp_s'] - stamp) for stamp in fix_stamps)
        frame['nearest_fix_s'] = round(nearest, 6)
        frame['locatable'] = nearest <= MAX_FIX_AGE_S

    out_path = Path(options.out_path)
    write_mcap(out_path, records, messages.typestore)
    truth_path = out_path.with_name(f'{out_path.stem}_truth.json')
    labels: dict[str, int] = {}
    for frame in truth_frames:
        labels[frame['label']] = labels.get(frame['label'], 0) + 1
    truth = {
        'version': 1,
        'bag': out_path.name,
        'made_by': f'plant-disease make-demo --frames {options.frames} --seed {options.seed}'
                   + (f' --split {options.split_path}'
                      if Path(options.split_path) != DEFAULT_SPLIT else ''),
        'photos': {'folder': 'plantvillage', 'source': source},
        'origin': dict(zip(('latitude', 'longitude', 'altitude'), ORIGIN, strict=True)),
        'topics': {
            'compressed': {'name': COMPRESSED_TOPIC, 'type': 'sensor_msgs/msg/CompressedImage',
                           'frames': 'all', 'format': 'bgr8; jpeg compressed bgr8',
                           'jpeg_quality': JPEG_QUALITY},
            'raw': {'name': RAW_TOPIC, 'type': 'sensor_msgs/msg/Image', 'encoding': 'bgr8',
                    'frames': 'subset: only the centre frame of the first plant (a raw '
                              '640x480 bgr8 frame is 921,600 bytes; the full raw stream '
                              'would make the bag ~80 MB); replay the compressed topic'},
            'fix': {'name': FIX_TOPIC, 'type': 'sensor_msgs/msg/NavSatFix'},
        },
        'camera': {
            'width': IMAGE_WIDTH, 'height': IMAGE_HEIGHT, 'frame_id': CAMERA_FRAME,
            'trigger': f'stop-and-go: a burst of {FRAMES_PER_PLANT} frames at '
                       f'{BURST_RATE_HZ:g} Hz while the robot creeps over each plant at '
                       f'{CREEP_SPEED_MPS:g} m/s; no frames between plants',
            'ground_resolution_px_per_m': PIXELS_PER_METRE,
            'leaf_photo_px': PLANT_SIZE_PX,
        },
        'replay': 'plant-disease replay demo/field_demo.mcap --fast -p crop_mode:=center '
                  '(the leaf fills the centred square; the soil shows at the sides)',
        'drive': {
            'rows': ROWS, 'plants_per_row': plants_per_row, 'row_spacing_m': ROW_SPACING_M,
            'plant_spacing_m': PLANT_SPACING_M, 'row_speed_mps': ROW_SPEED_MPS,
            'creep_speed_mps': CREEP_SPEED_MPS,
            'row_crops': list(ROW_CROPS), 'duration_s': round(plan.duration_s, 3),
            'start_stamp_s': START_STAMP_S,
        },
        'gps': {
            'rate_hz': GPS_RATE_HZ, 'noise_sigma_m': GPS_SIGMA_M, 'frame_id': GPS_FRAME,
            'fixes': len(fix_stamps),
            'dropout': {'start_s': START_STAMP_S + plan.dropout[0],
                        'end_s': START_STAMP_S + plan.dropout[1],
                        'duration_s': DROPOUT_S,
                        'note': 'no fix is published in this window; frames more than '
                                f'max_fix_age_s ({MAX_FIX_AGE_S:g} s, the classifier '
                                'default) from every fix have locatable: false'},
        },
        'labels': dict(sorted(labels.items())),
        'frames': truth_frames,
    }
    truth_path.write_text(json.dumps(truth, indent=1) + '\n', encoding='utf-8')
    return DemoResult(
        bag_path=out_path, truth_path=truth_path, bag_bytes=out_path.stat().st_size,
        frames=len(truth_frames), raw_frames=sum(1 for f in truth_frames if f['raw']),
        fixes=len(fix_stamps), labels=labels, photo_source=source)
