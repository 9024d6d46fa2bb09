"""Write the demo bag and its truth file: a short drive along three crop rows.

The camera sees lab leaf photos (PlantVillage test split), a few field leaf photos
(PlantDoc test split) and, between plants, stretches with no crop leaf in view (rendered,
no photo): every frame's kind is in the truth file.

The field and drive are laid out by ``demo_field``, the frames composed by ``demo_scene``;
this module turns them into the messages a robot records and writes one MCAP file. The
model was trained on square photos, so replay the demo with ``-p crop_mode:=center`` (the
camera subscriber's centred square): ``plant-disease replay demo/field_demo.mcap --fast -p
crop_mode:=center``.

The bag holds:

- ``/camera/image_raw/compressed`` (sensor_msgs/CompressedImage, JPEG as image_transport
  publishes it) — every frame;
- ``/camera/image_raw`` (sensor_msgs/Image, bgr8) — one frame only, the centre frame of
  the first plant: the full raw stream would make the bag too big to commit. The truth
  file says which frame has a raw copy;
- ``/gps/fix`` (sensor_msgs/NavSatFix) with Gaussian noise, a diagonal covariance and a
  dropout in the middle row during which no fix is published at all.

The truth file beside the bag lists, for every frame, its stamp, its kind (``lab_leaf``,
``field_leaf``, ``no_leaf``), the class shown (``no_leaf`` for none), the photo or scene
it came from (field photos with their source and licence) and the robot's true position.
"""

from __future__ import annotations

from collections.abc import Callable
import csv
from dataclasses import dataclass, field
import json
import os
from pathlib import Path
import random
import shlex
import shutil
import tempfile
from typing import Any

import cv2
import numpy as np

from plant_disease_ros.core.geodesy import enu_to_geodetic
from plant_disease_ros.core.output_paths import check_output_file
from plant_disease_ros.tools.demo_field import (
    BURST_RATE_HZ,
    choose_field_photos,
    choose_photos,
    CREEP_SPEED_MPS,
    DrivePlan,
    DROPOUT_S,
    FIELD_LEAF,
    FIELD_PLANTS,
    FRAMES_PER_PLANT,
    GPS_RATE_HZ,
    LAB_LEAF,
    MAX_FIX_AGE_S,
    NO_LEAF,
    NO_LEAF_STRETCHES,
    plan_drive,
    Plant,
    PLANT_SPACING_M,
    REPO_ROOT,
    ROW_CROPS,
    ROW_SPACING_M,
    ROW_SPEED_MPS,
    ROWS,
    Stretch,
)
from plant_disease_ros.tools.demo_scene import (
    compose_frame,
    IMAGE_HEIGHT,
    IMAGE_WIDTH,
    no_leaf_scene,
    PIXELS_PER_METRE,
    PLANT_SIZE_PX,
    scene_frame,
    soil_background,
)

DEFAULT_DATA_DIR = REPO_ROOT.parent / 'shared' / 'data' / 'plantvillage'
DEFAULT_OUT = REPO_ROOT / 'demo' / 'field_demo.mcap'
DEFAULT_SPLIT = REPO_ROOT / 'models' / 'split.json'
DEFAULT_FIELD_DIR = REPO_ROOT.parent / 'shared' / 'data' / 'field' / 'plantdoc'
DEFAULT_FIELD_SPLIT = REPO_ROOT / 'models' / 'field_split.json'
DEFAULT_FRAMES = 120
FIELD_ATTRIBUTION = {
    'dataset': 'PlantDoc (Singh et al., "PlantDoc: A Dataset for Visual Plant Disease '
               'Detection", CoDS-COMAD 2020)',
    'licence': 'CC BY 4.0',
    'via': 'Roboflow "PlantDoc v1 resize-416x416" export, GitHub copy '
           'RoboKids007/AIPlantGrowthDetection; resized to 224x224 and to the leaf size '
           'of the frame',
}
# The shared field folders whose origin is known (the data's README), by folder name. Any
# other --field folder is credited to no dataset: make-demo cannot know where it came from.
KNOWN_FIELD_ATTRIBUTIONS = {
    'plantdoc': FIELD_ATTRIBUTION,
    'pp2021_apple': {
        'dataset': 'Plant Pathology 2021 (FGVC8, Cornell)',
        'licence': 'no licence file in the copy; released by its authors for research '
                   'through the FGVC8 competition',
        'via': "GitHub copy dvdsaz/DataScience of the competition's 256 px training "
               'images; resized to 224x224 and to the leaf size of the frame',
    },
}
UNKNOWN_ATTRIBUTION = {
    'dataset': "unknown to make-demo (not a shared field folder): see the data's README",
    'licence': "unknown to make-demo: see the data's README",
}
NO_LEAF_SOURCE = ('rendered by plant_disease_ros/tools/demo_scene.py (procedural, seeded; '
                  'no photo)')
DEFAULT_SEED = 7

RAW_TOPIC = '/camera/image_raw'
COMPRESSED_TOPIC = '/camera/image_raw/compressed'
FIX_TOPIC = '/gps/fix'
CAMERA_FRAME = 'camera'
GPS_FRAME = 'gps'

# A field of the University of Illinois South Farms, Urbana (WGS84, ellipsoidal height).
ORIGIN = (40.081830, -88.226720, 190.0)
START_STAMP_S = 1749738600.0  # 2025-06-12 14:30:00 UTC

JPEG_QUALITY = 60

GPS_SIGMA_M = 0.3
GPS_SIGMA_UP_M = 0.5
GPS_LATENCY_S = 0.04          # receive (log) time after the fix's stamp
CAMERA_LATENCY_S = 0.02

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
    field_dir: Path = DEFAULT_FIELD_DIR
    field_split_path: Path = DEFAULT_FIELD_SPLIT


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
    kinds: dict[str, int] = field(default_factory=dict)


def _stamp(seconds: float) -> tuple[int, int]:
    nanoseconds = int(round(seconds * 1e9))
    return nanoseconds // 1_000_000_000, nanoseconds % 1_000_000_000


def _geodetic(east: float, north: float, up: float = 0.0) -> tuple[float, float, float]:
    return enu_to_geodetic(east, north, up, *ORIGIN)


class CdrMessages:
    """Build the CDR of the camera and GNSS messages a bag holds (rosbags typestore).

    A stamp is seconds, or an exact ``(sec, nanosec)``.
    """

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

    def header(self, stamp_s: float | tuple[int, int], frame_id: str) -> Any:
        """Return a Header at ``stamp_s`` (seconds or ``(sec, nanosec)``)."""
        sec, nanosec = stamp_s if isinstance(stamp_s, tuple) else _stamp(stamp_s)
        return self.Header(stamp=self.Time(sec=sec, nanosec=nanosec), frame_id=frame_id)

    def image(self, stamp_s: float | tuple[int, int], bgr: np.ndarray) -> bytes:
        """Return the CDR of a bgr8 ``sensor_msgs/Image`` of ``bgr`` from the camera."""
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




Record = tuple[str, str, int, bytes]   # topic, message type, log time ns, CDR bytes


def _load_plants(plan: DrivePlan, data_dir: Path, field_dir: Path,
                 np_rng: np.random.Generator
                 ) -> dict[tuple[int, int], tuple[np.ndarray, np.ndarray]]:
    """Return each plant's resized photo and its own stretch of soil, by (row, index)."""
    plant_images: dict[tuple[int, int], tuple[np.ndarray, np.ndarray]] = {}
    for plant in plan.plants:
        path = (field_dir if plant.kind == FIELD_LEAF else data_dir) / plant.photo
        photo = cv2.imread(str(path), cv2.IMREAD_COLOR)
        if photo is None:
            raise ValueError(f'cannot read photo {path}')
        photo = cv2.resize(photo, (PLANT_SIZE_PX, PLANT_SIZE_PX),
                           interpolation=cv2.INTER_CUBIC)
        # Wider than the frame: the camera's window slides over it as the robot creeps.
        background = soil_background(IMAGE_WIDTH + 2 * 200, IMAGE_HEIGHT, np_rng)
        plant_images[(plant.row, plant.index)] = (photo, background)
    return plant_images


def _frame_truth(view: Plant | Stretch, field_sources: dict[str, dict]) -> dict:
    """Return what a frame shows, for the truth file."""
    if isinstance(view, Stretch):
        return {'kind': NO_LEAF, 'label': NO_LEAF, 'row': view.row, 'plant': None,
                'before_plant': view.before, 'scene': view.scene, 'photo': None}
    shown = {'kind': view.kind, 'label': view.label, 'row': view.row, 'plant': view.index,
             'photo': view.photo}
    if view.kind == FIELD_LEAF:
        shown['source'] = field_sources.get(view.photo, {})
    return shown


def _camera_records(plan: DrivePlan, options: DemoOptions, messages: CdrMessages,
                    np_rng: np.random.Generator, progress: Callable[[str], None] | None
                    ) -> tuple[list[Record], list[dict]]:
    """Compose every camera frame; return its records and the truth of each frame."""
    plant_images = _load_plants(plan, options.data_dir, options.field_dir, np_rng)
    # Each stretch gets its own scene, wide enough for the camera's travel over a burst.
    scenes = {(s.row, s.before): no_leaf_scene(s.scene, IMAGE_WIDTH + 2 * 400, IMAGE_HEIGHT,
                                               np_rng)
              for s in plan.stretches}
    field_sources = _field_sources(options.field_dir)
    records: list[Record] = []
    truth_frames: list[dict] = []
    raw_plants = {(0, 0)}
    centre_burst = FRAMES_PER_PLANT // 2
    light = 1.0
    for number, (t, view, burst) in enumerate(plan.frame_times):
        stamp_s = START_STAMP_S + t + 0.0031 + float(np_rng.uniform(-0.001, 0.001))
        east, north = plan.position(t)
        light = float(np.clip(light + np_rng.normal(0.0, 0.015), 0.88, 1.12))
        if isinstance(view, Stretch):
            # The robot drives on at row speed: the ground slides under the camera.
            offset_px = (view.pass_time_s - t) * ROW_SPEED_MPS * PIXELS_PER_METRE
            frame = scene_frame(scenes[(view.row, view.before)], offset_px,
                                light * float(np_rng.uniform(0.98, 1.02)),
                                int(np_rng.integers(3, 7)), np_rng)
            has_raw = False
        else:
            heading = 1.0 if view.row % 2 == 0 else -1.0
            # Positive: the plant is still ahead of the camera and appears right of centre.
            offset_px = heading * (view.east - east) * PIXELS_PER_METRE
            photo, background = plant_images[(view.row, view.index)]
            frame = compose_frame(
                background, photo, offset_px,
                (int(np_rng.integers(-4, 5)), int(np_rng.integers(-6, 7))),
                light * float(np_rng.uniform(0.98, 1.02)), int(np_rng.integers(1, 4)),
                np_rng)
            has_raw = (view.row, view.index) in raw_plants and burst == centre_burst
        log_ns = int(round((stamp_s + CAMERA_LATENCY_S) * 1e9))
        records.append((COMPRESSED_TOPIC, 'sensor_msgs/msg/CompressedImage', log_ns,
                        messages.compressed(stamp_s, frame)))
        if has_raw:
            records.append((RAW_TOPIC, 'sensor_msgs/msg/Image', log_ns,
                            messages.image(stamp_s, frame)))
        latitude, longitude, altitude = _geodetic(east, north)
        sec, nanosec = _stamp(stamp_s)
        truth_frames.append({
            'index': number,
            'stamp': {'sec': sec, 'nanosec': nanosec},
            'stamp_s': round(stamp_s, 9),
            **_frame_truth(view, field_sources),
            'burst_index': burst,
            'raw': has_raw,
            'in_dropout': plan.dropout[0] < t < plan.dropout[1],
            'position': {'latitude': latitude, 'longitude': longitude, 'altitude': altitude,
                         'east_m': round(east, 4), 'north_m': round(north, 4)},
        })
        if progress and (number + 1) % 20 == 0:
            progress(f'composed {number + 1}/{len(plan.frame_times)} frames')
    return records, truth_frames


def _field_sources(field_dir: Path) -> dict[str, dict]:
    """Return each field photo's origin (repository, commit, path) from the manifest."""
    manifest = field_dir.parent / 'manifest.csv'
    if not manifest.is_file():
        return {}
    sources: dict[str, dict] = {}
    with manifest.open(encoding='utf-8', newline='') as stream:
        for row in csv.DictReader(stream):
            prefix = f'{field_dir.name}/'
            if row.get('file', '').startswith(prefix):
                sources[row['file'][len(prefix):]] = {
                    'repo': row['repo'], 'commit': row['commit'], 'path': row['source_path']}
    return sources


def _fix_records(plan: DrivePlan, messages: CdrMessages, np_rng: np.random.Generator
                 ) -> tuple[list[Record], list[float]]:
    """Return the noisy GPS fixes along the drive and their stamps."""
    records: list[Record] = []
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
    return records, fix_stamps


def _shown(path: Path) -> Path:
    resolved = Path(path).resolve()
    return resolved.relative_to(REPO_ROOT) if resolved.is_relative_to(REPO_ROOT) else path


def _same_path(path: Path | str, default: Path) -> bool:
    return Path(path).resolve() == default.resolve()


def made_by(options: DemoOptions) -> str:
    """Return the make-demo command line that writes this bag again.

    ``--frames`` and ``--seed`` always, every other option only where it is not the
    default (so the default drive's truth file stays as shipped).
    """
    paths = [[option, str(value)] for option, value, default in (
        ('--data', options.data_dir, DEFAULT_DATA_DIR),
        ('--split', options.split_path, DEFAULT_SPLIT),
        ('--field', options.field_dir, DEFAULT_FIELD_DIR),
        ('--field-split', options.field_split_path, DEFAULT_FIELD_SPLIT))
        if not _same_path(value, default)]
    words = ['plant-disease', 'make-demo', '--frames', str(options.frames),
             '--seed', str(options.seed), *(word for pair in paths for word in pair)]
    if not _same_path(options.out_path, DEFAULT_OUT):
        words += ['--out', str(options.out_path)]
    elif paths or (options.frames, options.seed) != (DEFAULT_FRAMES, DEFAULT_SEED):
        # make-demo refuses another drive into the shipped bag's path without it.
        words.append('--replace-shipped')
    return ' '.join(shlex.quote(word) for word in words)


def field_attribution(field_dir: Path | str) -> dict[str, str]:
    """Return the dataset, licence and route of the field photos in ``field_dir``.

    Known only for the shared field folders (beside the default PlantDoc one); for any
    other folder the truth file says plainly that it is unknown.
    """
    # Absolute but not resolved: the folder's own name, even where it is a link.
    field_dir = Path(os.path.abspath(field_dir))
    if _same_path(field_dir.parent, DEFAULT_FIELD_DIR.parent):
        return KNOWN_FIELD_ATTRIBUTIONS.get(field_dir.name, UNKNOWN_ATTRIBUTION)
    return UNKNOWN_ATTRIBUTION


def _truth(options: DemoOptions, out_path: Path, plan: DrivePlan, plants_per_row: int,
           source: str, truth_frames: list[dict], fix_count: int,
           labels: dict[str, int], kinds: dict[str, int]) -> dict:
    """Return the truth file's content."""
    field_used = any(frame['kind'] == FIELD_LEAF for frame in truth_frames)
    field_dir = Path(os.path.abspath(options.field_dir))
    return {
        'version': 2,
        'bag': out_path.name,
        'made_by': made_by(options),
        'kinds': {
            LAB_LEAF: 'a lab photo (one leaf on a plain background) pasted onto soil',
            FIELD_LEAF: 'a field photo (leaves in their surroundings) pasted onto soil',
            NO_LEAF: 'no crop leaf in view (label no_leaf): bare soil, grass and weeds, '
                     "sky on the headland or the robot's shadow; should give no detection",
        },
        'frame_kinds': dict(sorted(kinds.items())),
        'photos': {'folder': 'plantvillage' if _same_path(options.data_dir, DEFAULT_DATA_DIR)
                   else str(options.data_dir), 'source': source},
        'field_photos': ({'folder': f'field/{field_dir.name}'
                                    if _same_path(field_dir.parent, DEFAULT_FIELD_DIR.parent)
                                    else str(field_dir),
                          'source': f'test split of {_shown(options.field_split_path)} '
                                    f'({field_dir.name})',
                          'plants': f'plants {", ".join(map(str, FIELD_PLANTS))} of each row',
                          **field_attribution(field_dir)} if field_used else None),
        'no_leaf_scenes': {'source': NO_LEAF_SOURCE,
                           'stretches': [{'row': row, 'before_plant': before, 'scene': scene}
                                         for (row, before), scene in
                                         sorted(NO_LEAF_STRETCHES.items())
                                         if before < plants_per_row]},
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
                       f'{CREEP_SPEED_MPS:g} m/s, and one while it drives at '
                       f'{ROW_SPEED_MPS:g} m/s over each no-leaf stretch',
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
            'fixes': fix_count,
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


def frames_of_drive(plants_per_row: int) -> int:
    """Return how many camera frames a drive with ``plants_per_row`` plants a row gives."""
    stretches = sum(1 for _, before in NO_LEAF_STRETCHES if before < plants_per_row)
    return FRAMES_PER_PLANT * (ROWS * plants_per_row + stretches)


MAX_PLANTS_PER_ROW = 99
"""Longest row of the demo drive; the frame count follows from the plants per row."""


def make_demo_bag(options: DemoOptions, progress: Callable[[str], None] | None = None
                  ) -> DemoResult:
    """Compose the demo bag and its truth file; return what was written.

    ``out_path`` is the MCAP file to write: an existing folder there is refused
    (ValueError) before any work, as are a path under a file and a name that does not
    end in ``.mcap``.
    """
    if not frames_of_drive(1) <= options.frames <= frames_of_drive(MAX_PLANTS_PER_ROW):
        raise ValueError(f'--frames must be from {frames_of_drive(1)} to '
                         f'{frames_of_drive(MAX_PLANTS_PER_ROW)} (rows of 1 to '
                         f'{MAX_PLANTS_PER_ROW} plants), got {options.frames}')
    out_path = Path(options.out_path)
    check_output_file(out_path, folder_hint='; give the .mcap file to write '
                      f'(e.g. {out_path / "field_demo.mcap"})')
    if out_path.suffix != '.mcap':
        # The file is MCAP whatever its name: a .db3 one would be read as SQLite and fail.
        raise ValueError(f'--out {out_path}: the demo bag is an MCAP file, so its name ends '
                         f'in .mcap (e.g. {out_path.with_suffix(".mcap")})')
    rng = random.Random(options.seed)
    np_rng = np.random.default_rng(options.seed)
    plants_per_row = min(range(1, MAX_PLANTS_PER_ROW + 1),
                         key=lambda count: abs(frames_of_drive(count) - options.frames))
    lab, source = choose_photos(options.data_dir, options.split_path, plants_per_row, rng)
    field_photos = choose_field_photos(Path(options.field_dir), options.field_split_path,
                                       plants_per_row, rng)
    photos = []
    for number, (label, photo) in enumerate(lab):
        key = (number // plants_per_row, number % plants_per_row)
        photos.append((*field_photos[key], FIELD_LEAF) if key in field_photos
                      else (label, photo, LAB_LEAF))
    plan = plan_drive(plants_per_row, photos, NO_LEAF_STRETCHES)
    messages = CdrMessages()
    records, truth_frames = _camera_records(plan, options, messages, np_rng, progress)
    fix_records, fix_stamps = _fix_records(plan, messages, np_rng)
    records += fix_records
    for frame in truth_frames:
        nearest = min(abs(frame['stamp_s'] - stamp) for stamp in fix_stamps)
        frame['nearest_fix_s'] = round(nearest, 6)
        frame['locatable'] = nearest <= MAX_FIX_AGE_S

    out_path = Path(options.out_path)
    write_mcap(out_path, records, messages.typestore)
    truth_path = out_path.with_name(f'{out_path.stem}_truth.json')
    labels: dict[str, int] = {}
    kinds: dict[str, int] = {}
    for frame in truth_frames:
        labels[frame['label']] = labels.get(frame['label'], 0) + 1
        kinds[frame['kind']] = kinds.get(frame['kind'], 0) + 1
    truth = _truth(options, out_path, plan, plants_per_row, source, truth_frames,
                   len(fix_stamps), labels, kinds)
    truth_path.write_text(json.dumps(truth, indent=1) + '\n', encoding='utf-8')
    return DemoResult(
        bag_path=out_path, truth_path=truth_path, bag_bytes=out_path.stat().st_size,
        frames=len(truth_frames), raw_frames=sum(1 for f in truth_frames if f['raw']),
        fixes=len(fix_stamps), labels=labels, photo_source=source, kinds=kinds)
