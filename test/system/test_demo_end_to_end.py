"""The demo bag through the real pipeline, checked against its truth file.

``plant-disease replay demo/field_demo.mcap --fast`` starts camera_subscriber,
disease_classifier and disease_map_recorder with config/field.yaml, and what they publish
is read back from the output bag: every frame must be classified; the frames of each
kind in the truth file are checked on their own: lab leaf photos must mostly get their
label, field leaf photos are reported (a modest bar), stretches with no crop leaf in view
must give no detection; every detection must be positioned as the GPS track allows: near
the robot's true position where a fix was close enough, null geometry with fix_status
'stale' or 'none' in the GPS dropout.

The replay runs with ``score_threshold:=0.0`` so that every leaf frame gives a detection
(a label other than ``no_leaf``): the position checks then cover every leaf frame
whatever the model's confidence, and a no-leaf frame gives none whatever the threshold.
A second replay tells the nodes the field grows tomatoes and potatoes (``crops``): the
drive's apple leaves must then stay off the map.
"""

from __future__ import annotations

from collections import Counter, defaultdict
import json
import math
import os
from pathlib import Path
import shutil
import subprocess
import sys
import time

from helpers.processes import child_environment
import pytest

from plant_disease_ros.core.geodesy import geodetic_to_enu

REPO_ROOT = Path(__file__).resolve().parents[2]
DEMO_BAG = REPO_ROOT / 'demo' / 'field_demo.mcap'
TRUTH = REPO_ROOT / 'demo' / 'field_demo_truth.json'
# Top-1 accuracy per frame kind, measured with the shipped 22-label model (2026-12-06, the
# sixth stage, trained with motion streaks): lab leaves 60/60 (the model is 97.8 % on the
# lab test photos), field leaves 10/24 (41.7 %; PlantDoc test photos 44.6 %; the model
# before it: 58/60 and 15/24). No-leaf frames without a detection: 36/36, all labelled
# no_leaf; the closest call is a grass-and-weeds frame at no_leaf 0.95 against
# Blueberry___healthy 0.05: the model card says other plants can still be named as a
# disease. Bare soil, sky and dark never pass. The bars leave a few frames of margin (the
# replay is deterministic: the same bag gives the same scores).
MIN_LAB_ACCURACY = 0.9
MIN_FIELD_ACCURACY = 1 / 3
MIN_NO_LEAF_REJECTED = 0.90
MAX_LEAF_REJECTED = 0.05
# Scenes the vegetation gate rejects outright: none of their frames may give a detection.
GATED_SCENES = ('bare_soil', 'sky', 'dark')
NO_LEAF_OUTCOMES = ('no_leaf', 'unknown')
MAX_POSITION_ERROR_M = 2.5
MAX_MEDIAN_POSITION_ERROR_M = 0.8
# Only a bound on a hung replay, inside pytest's per-test timeout (pytest.ini): how long
# a replay takes is the bench's figure.
REPLAY_TIMEOUT_S = 280.0

pytest.importorskip('rosbags')


def stamp_key(stamp: dict) -> tuple[int, int]:
    """Return (sec, nanosec) of a stamp dictionary."""
    return int(stamp['sec']), int(stamp['nanosec'])


def replay(out: Path, namespace: str, *parameters: str) -> dict:
    """Replay the demo bag (fast mode) with ``-p`` ``parameters``; return what came out."""
    pytest.importorskip('rclpy')
    from rosbags.rosbag2 import Reader
    from rosbags.typesys import get_typestore, Stores

    overrides = [item for parameter in parameters for item in ('-p', parameter)]
    start = time.monotonic()
    result = subprocess.run(
        [sys.executable, '-m', 'plant_disease_ros.cli.main', 'replay', str(DEMO_BAG), '--fast',
         '--out', str(out), '--namespace', namespace, '--quiet', *overrides],
        env=child_environment(), capture_output=True, text=True, timeout=REPLAY_TIMEOUT_S)
    elapsed = time.monotonic() - start
    print(f'demo replay took {elapsed:.1f} s')
    assert result.returncode == 0, result.stderr + result.stdout
    summary = json.loads((out / 'summary.json').read_text())
    store = get_typestore(Stores.LATEST)
    classifications: dict[tuple[int, int], dict] = {}
    detections: dict[tuple[int, int], dict] = {}
    counts: Counter[str] = Counter()
    with Reader(summary['output_bag']) as reader:
        for connection, _, data in reader.messages():
            kind = connection.topic.rsplit('/', 1)[-1]
            counts[kind] += 1
            if kind not in ('classification', 'detections'):
                continue
            value = json.loads(store.deserialize_cdr(data, connection.msgtype).data)
            if kind == 'classification':
                classifications[stamp_key(value['stamp'])] = value
            else:
                detections[stamp_key(value['properties']['stamp'])] = value
    return {'summary': summary, 'stdout': result.stdout, 'elapsed_s': elapsed,
            'classifications': classifications, 'detections': detections, 'counts': counts,
            'out': out}


@pytest.fixture(scope='module')
def replayed(tmp_path_factory: pytest.TempPathFactory) -> dict:
    """Replay the demo bag once at score_threshold 0; return the summary and outputs."""
    return replay(tmp_path_factory.mktemp('demo_replay'), f'demo_e2e_{os.getpid()}',
                  'score_threshold:=0.0', 'crop_mode:=center')


@pytest.fixture(scope='module')
def truth() -> dict:
    """Return the demo's truth file."""
    return json.loads(TRUTH.read_text(encoding='utf-8'))


def frames_of(truth: dict, kind: str) -> list[dict]:
    """Return the truth's frames of one kind (lab_leaf, field_leaf, no_leaf)."""
    return [frame for frame in truth['frames'] if frame['kind'] == kind]


def labelled_right(replayed: dict, frames: list[dict]) -> tuple[int, dict[str, list[bool]]]:
    """Return how many frames got their true label, and the hits per class."""
    per_class: dict[str, list[bool]] = defaultdict(list)
    for frame in frames:
        value = replayed['classifications'][stamp_key(frame['stamp'])]
        per_class[frame['label']].append(value['label'] == frame['label'])
    return sum(sum(hits) for hits in per_class.values()), per_class


def test_every_frame_is_accounted_for(replayed: dict, truth: dict) -> None:
    """Frames in == frames in the truth == labelled, one classification per frame stamp."""
    summary = replayed['summary']
    frames = truth['frames']
    assert summary['frames_in'] == len(frames)
    assert summary['labelled'] == summary['frames_in'] and summary['unanswered'] == 0
    assert set(replayed['classifications']) == {stamp_key(f['stamp']) for f in frames}
    assert replayed['counts']['label'] == len(frames)
    assert replayed['counts']['markers'] >= 1
    assert sum(len(frames_of(truth, kind)) for kind in truth['kinds']) == len(frames)
    no_leaf = sum(1 for value in replayed['classifications'].values()
                  if value['label'] == 'no_leaf')
    assert summary['no_leaf'] == no_leaf and f'{no_leaf} no_leaf' in replayed['stdout']


def share_right(replayed: dict, truth: dict, kind: str) -> float:
    """Print the frames of ``kind`` labelled right, per class and in all; return the share."""
    frames = frames_of(truth, kind)
    assert frames, f'no {kind} frame in the truth file'
    right, per_class = labelled_right(replayed, frames)
    print(f'\n{kind} frames labelled right:')
    for label, hits in sorted(per_class.items()):
        print(f'  {sum(hits)}/{len(hits)}  {label}')
    print(f'  {right / len(frames):6.1%}  {kind} ({len(frames)} frames)')
    return right / len(frames)


def test_lab_leaves_get_their_label(replayed: dict, truth: dict) -> None:
    """Lab leaf photos on soil: a high share labelled right; per class printed."""
    assert share_right(replayed, truth, 'lab_leaf') >= MIN_LAB_ACCURACY


def test_field_leaves_are_reported(replayed: dict, truth: dict) -> None:
    """Field leaf photos (PlantDoc): the share labelled right, against a modest bar."""
    assert share_right(replayed, truth, 'field_leaf') >= MIN_FIELD_ACCURACY


def test_leaf_frames_are_rarely_rejected(replayed: dict, truth: dict) -> None:
    """Lab and field leaf frames are seldom called no_leaf."""
    frames = frames_of(truth, 'lab_leaf') + frames_of(truth, 'field_leaf')
    rejected = [frame['index'] for frame in frames
                if replayed['classifications'][stamp_key(frame['stamp'])]['label']
                == 'no_leaf']
    print(f'\nleaf frames called no_leaf: {len(rejected)}/{len(frames)}')
    assert len(rejected) <= MAX_LEAF_REJECTED * len(frames), rejected


def test_no_leaf_stretches_give_no_detection(replayed: dict, truth: dict) -> None:
    """Frames with no crop leaf in view: labelled no_leaf (or unknown), no detection."""
    frames = frames_of(truth, 'no_leaf')
    missed = []
    by_scene: dict[str, list[bool]] = defaultdict(list)
    for frame in frames:
        key = stamp_key(frame['stamp'])
        label = replayed['classifications'][key]['label']
        rejected = label in NO_LEAF_OUTCOMES and key not in replayed['detections']
        by_scene[frame['scene']].append(rejected)
        if not rejected:
            missed.append(f'{frame["index"]} {frame["scene"]} -> {label}')
    print('\nno-leaf frames without a detection:')
    for scene, hits in sorted(by_scene.items()):
        print(f'  {sum(hits)}/{len(hits)}  {scene}')
    assert set(by_scene) >= {'bare_soil', 'grass_weeds'}
    assert all(all(by_scene[scene]) for scene in GATED_SCENES), missed
    assert len(frames) - len(missed) >= MIN_NO_LEAF_REJECTED * len(frames), missed


def test_leaf_frames_give_one_detection_no_leaf_frames_none(replayed: dict,
                                                            truth: dict) -> None:
    """With score_threshold 0 each frame not called no_leaf gives one detection, as labelled."""
    classified = replayed['classifications']
    expected_keys = {key for key, value in classified.items()
                     if value['label'] not in NO_LEAF_OUTCOMES}
    assert set(replayed['detections']) == expected_keys
    assert replayed['counts']['detections'] == len(expected_keys)
    for key, feature in replayed['detections'].items():
        assert feature['properties']['label'] == classified[key]['label']
    expected = Counter(f['properties']['label'] for f in replayed['detections'].values())
    assert replayed['summary']['detections'] == dict(sorted(expected.items()))


def test_detections_are_where_the_robot_was(replayed: dict, truth: dict) -> None:
    """Located detections lie near the true position; none without a fix in range."""
    origin = tuple(truth['origin'][key] for key in ('latitude', 'longitude', 'altitude'))
    errors = []
    for frame in truth['frames']:
        feature = replayed['detections'].get(stamp_key(frame['stamp']))
        if feature is None or not frame['locatable']:
            continue
        assert feature['geometry'] is not None, frame['index']
        assert feature['properties']['fix_status'] in ('interpolated', 'extrapolated', 'nearest')
        lon, lat, alt = feature['geometry']['coordinates']
        east, north, _ = geodetic_to_enu(lat, lon, alt, *origin)
        errors.append(math.hypot(east - frame['position']['east_m'],
                                 north - frame['position']['north_m']))
    assert errors, 'no located detection'
    errors.sort()
    assert errors[len(errors) // 2] <= MAX_MEDIAN_POSITION_ERROR_M, errors
    assert errors[-1] <= MAX_POSITION_ERROR_M, errors


def test_gps_dropout_gives_detections_without_position(replayed: dict, truth: dict) -> None:
    """In the dropout, frames with no fix within max_fix_age_s have null geometry."""
    unlocatable = [frame for frame in truth['frames'] if not frame['locatable']]
    assert unlocatable and all(frame['in_dropout'] for frame in unlocatable)
    features = [replayed['detections'].get(stamp_key(frame['stamp'])) for frame in unlocatable]
    assert any(features), 'no detection in the dropout'
    for feature in filter(None, features):
        assert feature['geometry'] is None
        assert feature['properties']['fix_status'] in ('stale', 'none')


def test_map_files_are_written(replayed: dict) -> None:
    """The recorder's GeoJSON holds every detection; the PNG and the summary are printed."""
    summary = replayed['summary']
    collection = json.loads(Path(summary['geojson']).read_text())
    assert collection['type'] == 'FeatureCollection'
    assert len(collection['features']) == len(replayed['detections'])
    png = Path(summary['png'])
    assert png.read_bytes()[:8] == b'\x89PNG\r\n\x1a\n'
    for path in (summary['geojson'], summary['png'], summary['output_bag']):
        assert path in replayed['stdout']
    assert 'frames/s' in replayed['stdout']


def test_demo_writes_the_disease_grid(replayed: dict) -> None:
    """The grid for GIS (GeoJSON, GeoPackage) holds every located detection; paths printed."""
    summary = replayed['summary']
    grid = json.loads(Path(summary['grid_geojson']).read_text(encoding='utf-8'))
    located = sum(1 for feature in replayed['detections'].values() if feature['geometry'])
    assert sum(cell['properties']['detections'] for cell in grid['features']) == located
    assert all(cell['geometry']['type'] == 'Polygon' for cell in grid['features'])
    for path in (summary['grid_geojson'], summary['grid_geopackage']):
        assert path and path in replayed['stdout']
    pyogrio = pytest.importorskip('pyogrio')
    info = pyogrio.read_info(summary['grid_geopackage'])
    assert info['features'] == len(grid['features']) and info['crs'] == 'EPSG:4326'


# The committed demo bag itself (no ROS needed) --------------------------------------------


def test_demo_bag_matches_its_truth(truth: dict) -> None:
    """Topics, counts, stamps, the raw subset and the GPS dropout are as the truth says."""
    from rosbags.rosbag2 import Reader
    from rosbags.typesys import get_typestore, Stores

    assert DEMO_BAG.stat().st_size <= 6_000_000
    store = get_typestore(Stores.LATEST)
    stamps: dict[str, list[float]] = defaultdict(list)
    with Reader(DEMO_BAG) as reader:
        types = {name: info.msgtype for name, info in reader.topics.items()}
        for connection, log_ns, data in reader.messages():
            message = store.deserialize_cdr(data, connection.msgtype)
            stamp = message.header.stamp.sec + message.header.stamp.nanosec * 1e-9
            assert log_ns / 1e9 >= stamp, 'logged before it was stamped'
            stamps[connection.topic].append(stamp)
            if connection.msgtype == 'sensor_msgs/msg/Image':
                assert (message.encoding, message.width, message.height) == ('bgr8', 640, 480)
            if connection.msgtype == 'sensor_msgs/msg/CompressedImage':
                assert 'jpeg' in message.format and message.data[:2].tobytes() == b'\xff\xd8'
                assert message.header.frame_id == 'camera'
            if connection.msgtype == 'sensor_msgs/msg/NavSatFix':
                assert message.position_covariance_type == 2
                assert message.position_covariance[0] == pytest.approx(0.09)
    topics = truth['topics']
    assert types == {topics['compressed']['name']: 'sensor_msgs/msg/CompressedImage',
                     topics['raw']['name']: 'sensor_msgs/msg/Image',
                     topics['fix']['name']: 'sensor_msgs/msg/NavSatFix'}
    frames = truth['frames']
    frame_stamps = [f['stamp']['sec'] + f['stamp']['nanosec'] * 1e-9 for f in frames]
    assert stamps[topics['compressed']['name']] == pytest.approx(frame_stamps, abs=1e-6)
    raw = [s for f, s in zip(frames, frame_stamps, strict=True) if f['raw']]
    assert stamps[topics['raw']['name']] == pytest.approx(raw, abs=1e-6) and raw
    fixes = stamps[topics['fix']['name']]
    dropout = truth['gps']['dropout']
    assert not [s for s in fixes if dropout['start_s'] < s < dropout['end_s']]
    gaps = [b - a for a, b in zip(fixes, fixes[1:], strict=False)]
    assert max(gaps) == pytest.approx(dropout['duration_s'], abs=0.21)
    assert sorted(gaps)[len(gaps) // 2] == pytest.approx(0.2, abs=1e-6)  # 5 Hz
    assert 100 <= len(frames) <= 160 and len(truth['labels']) >= 8
    kinds = Counter(frame['kind'] for frame in frames)
    assert kinds == truth['frame_kinds'] and set(kinds) == set(truth['kinds'])
    assert kinds['no_leaf'] >= 24 and kinds['field_leaf'] >= 16 and kinds['lab_leaf'] >= 48
    for frame in frames:
        if frame['kind'] == 'no_leaf':
            assert frame['label'] == 'no_leaf' and frame['photo'] is None and frame['scene']
        else:
            assert frame['label'] != 'no_leaf' and frame['photo']
        if frame['kind'] == 'field_leaf':
            assert frame['source']['repo'] and frame['source']['path']
    assert truth['field_photos']['licence'] == 'CC BY 4.0'
    assert {frame.get('scene') for frame in frames} >= {'bare_soil', 'grass_weeds', 'sky',
                                                       'dark'}


def test_make_demo_composes_a_small_bag(tmp_path: Path) -> None:
    """make-demo on a tiny photo folder: a playable bag and a consistent truth file."""
    from plant_disease_ros.tools.demo_bag import DemoOptions, make_demo_bag

    data = tmp_path / 'photos'
    for photo in sorted((REPO_ROOT / 'test' / 'data' / 'leaves').glob('*.jpg')):
        (data / photo.stem).mkdir(parents=True)
        for copy in range(3):
            shutil.copy(photo, data / photo.stem / f'{copy}.jpg')
    out = tmp_path / 'demo' / 'small.mcap'
    missing = tmp_path / 'missing.json'
    options = DemoOptions(data_dir=data, out_path=out, frames=24, seed=3, split_path=missing,
                          field_split_path=missing)
    result = make_demo_bag(options)
    assert result.frames == 24 and result.raw_frames == 1 and out.is_file()
    written = json.loads(result.truth_path.read_text())
    assert result.truth_path.name == 'small_truth.json'
    assert len(written['frames']) == 24 and 'seeded choice' in written['photos']['source']
    assert result.kinds == {'lab_leaf': 12, 'no_leaf': 12} and written['field_photos'] is None
    assert [f['row'] for f in written['frames']] == sorted(f['row'] for f in written['frames'])
    assert {f['label'].split('___')[0] for f in written['frames']
            if f['kind'] == 'lab_leaf'} <= {'Tomato', 'Potato', 'Apple'}
    again = make_demo_bag(DemoOptions(data_dir=data, out_path=tmp_path / 'b.mcap', frames=24,
                                      seed=3, split_path=missing, field_split_path=missing))
    assert json.loads(again.truth_path.read_text())['frames'] == written['frames']


def test_a_robot_told_its_crops_maps_no_other_crop(tmp_path: Path, truth: dict) -> None:
    """The same drive told 'Tomato, Potato' (the launch's other defaults): the apple
    leaves along it are never mapped as apple, and almost never as a tomato or potato
    disease either; the tomato and potato leaves keep their labels."""
    told = replay(tmp_path / 'told', f'demo_crops_{os.getpid()}', 'crops:=Tomato, Potato')
    classified = told['classifications']
    assert len(classified) == len(truth['frames'])
    assert {tuple(value['crops']) for value in classified.values()} == {('Tomato', 'Potato')}
    for feature in told['detections'].values():
        assert feature['properties']['label'].startswith(('Tomato___', 'Potato___'))
        assert feature['properties']['crops'] == ['Tomato', 'Potato']
    apple = [frame for frame in truth['frames'] if frame['label'].startswith('Apple___')]
    mapped = [frame for frame in apple if stamp_key(frame['stamp']) in told['detections']]
    # Measured (2026-12-05): 0 of the 20 lab apple leaves and 2 of the 8 field ones mapped.
    assert sum(frame['kind'] == 'lab_leaf' for frame in mapped) <= 2
    assert len(mapped) <= 5, [frame['index'] for frame in mapped]
    own = [frame for frame in frames_of(truth, 'lab_leaf')
           if frame['label'].startswith(('Tomato___', 'Potato___'))]
    right, _ = labelled_right(told, own)
    assert right >= 0.85 * len(own)  # measured 37 of 40
    for frame in frames_of(truth, 'no_leaf'):
        assert stamp_key(frame['stamp']) not in told['detections']
