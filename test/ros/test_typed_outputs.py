"""Typed outputs over DDS: vision_msgs results and label info, foxglove_msgs GeoJSON.

The nodes under test and a test node share one executor and a fresh context; every
message crosses DDS (loopback, the run's private domain). The typed-output tests need
vision_msgs and foxglove_msgs (``helpers.interfaces``); the test of a node without them
runs everywhere.
"""

from __future__ import annotations

from collections.abc import Iterator
import json
import math
from pathlib import Path
from types import SimpleNamespace

from helpers.gps import make_fix
from helpers.images import leaf_photo_paths, load_rgb, make_image, make_stamp
from helpers.interfaces import require_interfaces
from helpers.processes import node_processes
from helpers.ros import classifier_node, Collector, Harness, parameters
from helpers.shipped_model import shipped_labels
import pytest

rclpy = pytest.importorskip('rclpy')

from rclpy.parameter import Parameter  # noqa: E402
from rclpy.qos import DurabilityPolicy, QoSProfile, ReliabilityPolicy  # noqa: E402
from sensor_msgs.msg import Image, NavSatFix  # noqa: E402
from std_msgs.msg import String  # noqa: E402

from plant_disease_ros.core.geodesy import enu_to_geodetic  # noqa: E402
from plant_disease_ros.core.labels import display_name  # noqa: E402
from plant_disease_ros.core.map_file import feature_collection  # noqa: E402
from plant_disease_ros.core.map_gis import (  # noqa: E402
    aggregator_features,
    aggregator_geojson,
    CellCache,
)
from plant_disease_ros.core.map_grid import CellAggregator  # noqa: E402
from plant_disease_ros.nodes.disease_map_recorder import DiseaseMapRecorder  # noqa: E402
from plant_disease_ros.ros import node_set, typed_outputs  # noqa: E402
from plant_disease_ros.ros.qos import detections_qos  # noqa: E402

LATCHED = QoSProfile(depth=1, reliability=ReliabilityPolicy.RELIABLE,
                     durability=DurabilityPolicy.TRANSIENT_LOCAL)
DATUM = (50.8503, 4.3517, 60.0)
STAMP_S = 1_700_000_100.25


@pytest.fixture
def harness(ros_context: object) -> Iterator[Harness]:
    """Give the test a harness in its own context."""
    rig = Harness(ros_context, name='typed_outputs_tester')
    try:
        yield rig
    finally:
        rig.close()


def test_classifier_publishes_results_and_geojson_beside_the_json(harness: Harness) -> None:
    """results: the image header, class ids from the labels; detections/geojson: the Feature."""
    vision_msgs, foxglove_msgs = require_interfaces()
    classifier = harness.add(classifier_node(harness.context, score_threshold=0.0,
                                             fix_wait_s=0.0, top_k=3))
    node = harness.node
    collector = Collector(node, [('/results', vision_msgs.Classification),
                                 ('/classification', String), ('/detections', String),
                                 ('/detections/geojson', foxglove_msgs.GeoJSON)])
    frames = node.create_publisher(Image, '/frames', 10)
    fixes = node.create_publisher(NavSatFix, '/fix', 10)
    harness.wait_for_subscribers(frames)
    harness.wait_for_subscribers(fixes)
    assert classifier.typed_outputs.available == [
        'results (vision_msgs/Classification)', 'label_info (vision_msgs/LabelInfo)',
        'detections/geojson (foxglove_msgs/GeoJSON)']
    fixes.publish(make_fix(*DATUM, stamp_s=STAMP_S - 0.1, accuracy_m=None))
    fixes.publish(make_fix(*DATUM, stamp_s=STAMP_S + 0.1, accuracy_m=None))
    assert harness.wait(lambda: classifier.fixes_received == 2)

    frame = make_image(load_rgb(leaf_photo_paths()[0], 256), stamp_s=STAMP_S,
                       frame_id='front_camera')
    frames.publish(frame)
    assert harness.wait(lambda: collector.count('/results') == 1
                        and collector.count('/detections/geojson') == 1)

    result = collector.messages['/results'][0]
    assert isinstance(result, vision_msgs.Classification)
    assert result.header.frame_id == 'front_camera'
    assert (result.header.stamp.sec, result.header.stamp.nanosec) == (
        frame.header.stamp.sec, frame.header.stamp.nanosec)
    labels = shipped_labels()
    assert len(result.results) == 3
    assert {hypothesis.class_id for hypothesis in result.results} <= set(labels)
    scores = [hypothesis.score for hypothesis in result.results]
    assert scores == sorted(scores, reverse=True) and 0.0 <= scores[-1] <= scores[0] <= 1.0
    record = collector.json('/classification')[0]
    assert result.results[0].class_id == record['top_k'][0]['label']
    assert [h.class_id for h in result.results] == [item['label'] for item in record['top_k']]

    geojson = json.loads(collector.messages['/detections/geojson'][0].geojson)
    feature = collector.json('/detections')[0]
    name = geojson['properties'].pop('name')
    assert geojson == feature
    assert name.startswith(display_name(feature['properties']['label']))
    assert geojson['geometry']['type'] == 'Point'


def test_label_info_is_latched_for_a_late_subscriber(harness: Harness) -> None:
    """LabelInfo (class map, score_threshold) reaches a subscriber created after it went out."""
    vision_msgs, _ = require_interfaces()
    classifier = harness.add(classifier_node(harness.context, score_threshold=0.4))
    harness.wait(lambda: False, 0.3)  # published at start, before anyone listens
    collector = Collector(harness.node, [('/label_info', vision_msgs.LabelInfo)], LATCHED)
    assert harness.wait(lambda: collector.count('/label_info') >= 1)
    info = collector.messages['/label_info'][-1]
    labels = shipped_labels()
    assert [(item.class_id, item.class_name) for item in info.class_map] == list(
        enumerate(labels))
    assert info.threshold == pytest.approx(0.4)

    result = classifier.set_parameters([Parameter('score_threshold', value=0.7)])
    assert result[0].successful
    assert harness.wait(lambda: collector.messages['/label_info'][-1].threshold
                        == pytest.approx(0.7))


def test_label_info_sent_before_the_sim_clock_is_stamped_again(harness: Harness) -> None:
    """Under sim time before any /clock the class map goes out stamped 0 ("unstamped");
    the first classified frame sends it again with the clock's time."""
    from rosgraph_msgs.msg import Clock

    vision_msgs, _ = require_interfaces()
    classifier = harness.add(classifier_node(harness.context, use_sim_time=True))
    node = harness.node
    collector = Collector(node, [('/label_info', vision_msgs.LabelInfo)], LATCHED)
    results = Collector(node, [('/classification', String)])
    assert harness.wait(lambda: collector.count('/label_info') == 1)
    first = collector.messages['/label_info'][0].header.stamp
    assert (first.sec, first.nanosec) == (0, 0)
    clock = node.create_publisher(Clock, '/clock', 10)
    frames = node.create_publisher(Image, '/frames', 10)
    harness.wait_for_subscribers(clock)
    harness.wait_for_subscribers(frames)
    rgb = load_rgb(leaf_photo_paths()[0])
    # A frame while the clock still reads 0 (no /clock yet): nothing to stamp it with.
    assert harness.publish_and_wait(frames, make_image(rgb, 'rgb8', stamp_s=1234.4),
                                    results, '/classification')
    assert collector.count('/label_info') == 1
    clock.publish(Clock(clock=make_stamp(1234.5)))
    assert harness.wait(lambda: classifier.get_clock().now().nanoseconds > 0)
    assert harness.publish_and_wait(frames, make_image(rgb, 'rgb8', stamp_s=1234.5),
                                    results, '/classification')
    assert harness.wait(lambda: collector.count('/label_info') == 2)
    second = collector.messages['/label_info'][1]
    assert (second.header.stamp.sec, second.header.stamp.nanosec) == (1234, 500_000_000)
    assert [item.class_name for item in second.class_map] == shipped_labels()
    # Stamped now: the next frame sends no third one.
    assert harness.publish_and_wait(frames, make_image(rgb, 'rgb8', stamp_s=1234.6),
                                    results, '/classification')
    assert collector.count('/label_info') == 2


def detection(sequence: int, east: float, north: float, label: str) -> dict:
    """Return a located detection Feature at ENU ``east, north`` from DATUM."""
    lat, lon, alt = enu_to_geodetic(east, north, 0.0, *DATUM)
    return {'type': 'Feature', 'geometry': {'type': 'Point', 'coordinates': [lon, lat, alt]},
            'properties': {
                'stamp': {'sec': sequence, 'nanosec': 0}, 'frame_id': 'camera',
                'label': label, 'class_index': 1, 'confidence': 0.9,
                'top_k': [{'label': label, 'index': 1, 'score': 0.9}],
                'healthy': label.endswith('healthy'), 'fix_status': 'interpolated',
                'fix_age_s': 0.1, 'horizontal_accuracy_m': None}}


def test_recorder_latches_the_map_as_a_geojson_feature_collection(
        harness: Harness, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """map/geojson: one polygon per cell with its counts, updated as detections come."""
    _, foxglove_msgs = require_interfaces()
    recorder = harness.add(DiseaseMapRecorder(
        context=harness.context, parameter_overrides=parameters(
            map_dir=str(tmp_path), run_name='typed', use_datum=True,
            datum_latitude=DATUM[0], datum_longitude=DATUM[1], datum_altitude=DATUM[2],
            cell_size_m=2.0, marker_period_s=0.1)))
    detections = harness.node.create_publisher(String, '/detections', detections_qos())
    harness.wait_for_subscribers(detections)
    sent = [detection(1, -0.5, -0.5, 'Tomato___Late_blight'),  # cell (0, 0): [-1, 1) m
            detection(2, 0.5, -0.5, 'Tomato___Late_blight'),
            detection(3, 0.0, 0.0, 'Tomato___healthy'),
            detection(4, 2.0, -0.5, 'Tomato___Early_blight')]  # cell (1, 0)
    for feature in sent:
        detections.publish(String(data=json.dumps(feature)))
    assert harness.wait(lambda: recorder.records_written == len(sent))
    # Nobody subscribes: the whole map is not built (a day's map costs a core's worth).
    harness.wait(lambda: False, 0.4)
    assert (recorder._map_geojson.changed, recorder._map_geojson.last_cost_s) == (True, 0.0)

    # A late subscriber gets the newest collection, with every detection in it.
    collector = Collector(harness.node, [('/map/geojson', foxglove_msgs.GeoJSON)], LATCHED)

    def newest() -> dict:
        return json.loads(collector.messages['/map/geojson'][-1].geojson)

    assert harness.wait(lambda: collector.count('/map/geojson') >= 1 and sum(
        cell['properties']['detections'] for cell in newest()['features']) == len(sent))
    collection = newest()
    assert collection['type'] == 'FeatureCollection'
    cells = {(cell['properties']['cell_e'], cell['properties']['cell_n']): cell
             for cell in collection['features']}
    assert set(cells) == {(0, 0), (1, 0)}
    first = cells[(0, 0)]['properties']
    assert (first['detections'], first['diseased'], first['healthy']) == (3, 2, 1)
    assert first['n_Tomato___Late_blight'] == 2 and first['n_Tomato___healthy'] == 1
    assert first['most_severe_label'] == 'Tomato___Late_blight'
    assert first['incidence'] == pytest.approx(2 / 3)
    assert first['name']
    assert cells[(0, 0)]['geometry']['type'] == 'Polygon'
    # Its text is byte for byte what encoding every cell's Feature dict gave.
    assert collector.messages['/map/geojson'][-1].geojson == published_before(recorder)
    # No new detection: no new message.
    count = collector.count('/map/geojson')
    harness.wait(lambda: False, 0.4)
    assert collector.count('/map/geojson') == count
    # A runtime parameter that rebuilds every cell's markers, then a label the run had not
    # seen (every cell gains its column) and a new cell: still the same bytes.
    assert recorder.set_parameters([Parameter('map_frame', value='field')])[0].successful
    for feature in (detection(5, 0.2, 0.2, 'Potato___Late_blight'),
                    detection(6, -3.0, 4.0, 'Tomato___healthy')):
        detections.publish(String(data=json.dumps(feature)))
    assert harness.wait(lambda: recorder.records_written == len(sent) + 2)
    assert harness.wait(lambda: len(newest()['features']) == 3)
    assert collector.messages['/map/geojson'][-1].geojson == published_before(recorder)
    assert all('n_Potato___Late_blight' in cell['properties']
               for cell in newest()['features'])
    # A map that took 0.2 s to build is built again at most every 2 s (a tenth of the
    # time), however often it changes. The output's clock is a fake one: the test does
    # not depend on how fast this host runs.
    output = recorder._map_geojson
    clock = [100.0]
    monkeypatch.setattr(typed_outputs, 'time', SimpleNamespace(monotonic=lambda: clock[0]))

    def slow_features() -> list[dict]:
        clock[0] += 0.2
        return []

    output.changed = True
    output._next_s = -math.inf
    assert output.publish_if_changed(slow_features)
    assert output.last_cost_s == pytest.approx(0.2)
    for now, built in ((101.9, False), (102.0 + 1e-9, True)):
        clock[0] = now
        output.changed = True
        assert output.publish_if_changed(slow_features) == built, now


def test_without_the_interface_packages_the_node_runs_on_json_alone(
        harness: Harness, monkeypatch: pytest.MonkeyPatch) -> None:
    """No vision_msgs/foxglove_msgs: no typed publishers, the JSON topics go on."""
    monkeypatch.setattr(typed_outputs, 'import_messages',
                        lambda package: (None, f'{package} is not installed (test)'))
    classifier = harness.add(classifier_node(harness.context, score_threshold=0.0))
    assert classifier.typed_outputs.available == []
    topics = {publisher.topic_name for publisher in classifier.publishers}
    assert not topics & {'/results', '/label_info', '/detections/geojson'}
    collector = Collector(harness.node, [('/classification', String)])
    frames = harness.node.create_publisher(Image, '/frames', 10)
    harness.wait_for_subscribers(frames)
    frames.publish(make_image(load_rgb(leaf_photo_paths()[0], 128)))
    assert harness.wait(lambda: collector.count('/classification') == 1)


def test_describe_names_what_is_on_and_why_the_rest_is_off() -> None:
    """The one start-up line: the typed outputs, then the missing packages."""
    assert typed_outputs.describe(['results (vision_msgs/Classification)'],
                                  ['foxglove_msgs is not installed (x)']) == (
        'typed outputs: results (vision_msgs/Classification); '
        'off: foxglove_msgs is not installed (x)')
    assert typed_outputs.describe([], []) == 'typed outputs: none'


def published_before(recorder: DiseaseMapRecorder) -> str:
    """Return map/geojson's text as the recorder built it before its cells were kept as
    text: every cell's Feature dict, the collection encoded whole."""
    return json.dumps(feature_collection(aggregator_features(recorder._aggregator)),
                      separators=(',', ':'), allow_nan=False)


def test_a_collection_already_encoded_goes_into_the_message_as_it_is() -> None:
    """collection_message takes the map's text (bytes) or its features (dicts): the same."""
    _, foxglove_msgs = require_interfaces()
    aggregator = CellAggregator(2.0, DATUM)
    for number, label in enumerate(('Tomato___Late_blight', 'Tomato___healthy') * 20):
        aggregator.add(detection(number, 2.0 * (number % 7), 2.0 * (number % 5), label))
    features = aggregator_features(aggregator)
    as_dicts = typed_outputs.collection_message(features, foxglove_msgs).geojson
    as_text = typed_outputs.collection_message(aggregator_geojson(aggregator, CellCache()),
                                               foxglove_msgs).geojson
    assert as_text == as_dicts and len(features) == 35
    # Every cell has its name: Foxglove's label, which named_feature would otherwise add.
    assert all(typed_outputs.named_feature(feature) == feature for feature in features)


def test_named_feature_adds_a_name_and_keeps_the_rest() -> None:
    """Foxglove names a feature by properties.name; nothing else changes."""
    feature = detection(1, 0.0, 0.0, 'Tomato___Early_blight')
    named = typed_outputs.named_feature(feature)
    assert named['properties'].pop('name') == 'Tomato: Early blight 0.90'
    assert named == feature and 'name' not in feature['properties']


def test_the_pipeline_process_publishes_the_typed_outputs(harness: Harness,
                                                          tmp_path: Path) -> None:
    """Started as the launch starts it: results, label_info (late) and detections/geojson."""
    vision_msgs, foxglove_msgs = require_interfaces()
    namespace = f'typed_{harness.node.get_clock().now().nanoseconds % 100000}'
    options = node_set.NodeSetOptions(
        namespace=namespace, image_topic='/typed_cam/image_raw', gps_topic='/typed_gps/fix',
        parameters={'score_threshold': '0.0', 'fix_wait_s': '0.0', 'num_threads': '1'})
    ros_args = node_set.ros_arguments(node_set.PIPELINE, options)[1:]
    node = harness.node
    collector = Collector(node, [(f'/{namespace}/results', vision_msgs.Classification),
                                 (f'/{namespace}/detections/geojson', foxglove_msgs.GeoJSON)])
    images = node.create_publisher(Image, '/typed_cam/image_raw', 10)
    fixes = node.create_publisher(NavSatFix, '/typed_gps/fix', 10)
    frame = load_rgb(leaf_photo_paths()[0], 256)
    with node_processes(tmp_path) as processes:
        processes.start('plant_disease_pipeline', *ros_args)
        harness.wait_for_subscribers(images, timeout_s=30.0)
        stamp_s = STAMP_S
        while collector.count(f'/{namespace}/detections/geojson') == 0:
            processes.check_alive()
            assert stamp_s < STAMP_S + 30.0, processes.logs()
            fixes.publish(make_fix(*DATUM, stamp_s=stamp_s, accuracy_m=None))
            images.publish(make_image(frame, stamp_s=stamp_s))
            harness.wait(lambda: False, 0.2)
            stamp_s += 0.2
        late = Collector(node, [(f'/{namespace}/label_info', vision_msgs.LabelInfo)], LATCHED)
        assert harness.wait(lambda: late.count(f'/{namespace}/label_info') == 1)
        logs = processes.logs()
    assert collector.count(f'/{namespace}/results') >= 1
    info = late.messages[f'/{namespace}/label_info'][0]
    assert [item.class_name for item in info.class_map] == shipped_labels()
    assert info.threshold == 0.0
    assert 'typed outputs: results (vision_msgs/Classification)' in logs
    assert 'deprecated' not in logs


def test_results_of_a_gated_frame_say_no_leaf_not_the_models_guess() -> None:
    """Gate verdict: one no_leaf hypothesis; model verdict or a leaf: the model's top-k."""
    from std_msgs.msg import Header

    from plant_disease_ros.core.classifier import Category, Classification
    from plant_disease_ros.core.outcome import FrameOutcome, MODEL_REASON

    vision_msgs, _ = require_interfaces()
    header = Header(frame_id='cam', stamp=make_stamp(STAMP_S))
    guess = Classification(categories=(Category(3, 'Tomato___Late_blight', 0.91),
                                       Category(21, 'no_leaf', 0.05)),
                           preprocess_ms=0.1, invoke_ms=0.5, postprocess_ms=0.0)
    gated = typed_outputs.classification_to_vision(
        guess, header, vision_msgs, FrameOutcome('no_leaf', 'no_leaf', 'no vegetation'))
    assert [(h.class_id, h.score) for h in gated.results] == [('no_leaf', 1.0)]
    assert gated.header.frame_id == 'cam'
    by_model = Classification(categories=(Category(21, 'no_leaf', 0.8),
                                          Category(3, 'Tomato___Late_blight', 0.1)),
                              preprocess_ms=0.1, invoke_ms=0.5, postprocess_ms=0.0)
    for classification, outcome in (
            (by_model, FrameOutcome('no_leaf', 'no_leaf', MODEL_REASON)),
            (guess, FrameOutcome('Tomato___Late_blight', 'leaf')), (guess, None)):
        message = typed_outputs.classification_to_vision(classification, header, vision_msgs,
                                                         outcome)
        assert [h.class_id for h in message.results] == [
            category.label for category in classification.categories]
