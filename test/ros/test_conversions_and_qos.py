"""conversions.py, qos.py and node_diagnostics.py: free functions, adaptive QoS, mains."""

from __future__ import annotations

import json
import math
from types import SimpleNamespace

from helpers.gps import make_fix
from helpers.images import make_compressed, make_image
from helpers.processes import node_processes
from helpers.ros import Harness
from helpers.shipped_model import require_shipped_model
import numpy as np
import pytest

rclpy = pytest.importorskip('rclpy')

from rclpy.qos import QoSProfile, ReliabilityPolicy  # noqa: E402
from sensor_msgs.msg import Image, NavSatFix, NavSatStatus  # noqa: E402
from std_msgs.msg import Header  # noqa: E402

from plant_disease_ros.core.classifier import Category, Classification  # noqa: E402
from plant_disease_ros.core.fix_buffer import GeoFix  # noqa: E402
from plant_disease_ros.core.image_encoding import ImageConversionError  # noqa: E402
from plant_disease_ros.core.motion_blur import MotionBlur  # noqa: E402
from plant_disease_ros.core.outcome import frame_outcome  # noqa: E402
from plant_disease_ros.core.vegetation import GateResult  # noqa: E402
from plant_disease_ros.ros import conversions  # noqa: E402
from plant_disease_ros.ros.diagnostics import ThrottledWarnings  # noqa: E402
from plant_disease_ros.ros.qos import (  # noqa: E402
    AdaptiveSubscription,
    message_key,
    reliability_for_publishers,
    reliability_policy,
)

RGB = np.arange(6 * 4 * 3, dtype=np.uint8).reshape(6, 4, 3)


def header(sec: int = 12, nanosec: int = 345, frame_id: str = 'cam') -> Header:
    """Return a Header."""
    msg = Header(frame_id=frame_id)
    msg.stamp.sec, msg.stamp.nanosec = sec, nanosec
    return msg


def test_image_round_trips_keep_pixels_and_header() -> None:
    """rgb8/bgr8 messages convert both ways; the header is copied, not shared."""
    source = header()
    for encoding in ('rgb8', 'bgr8'):
        msg = conversions.rgb_to_image(RGB, source, encoding)
        assert (msg.width, msg.height, msg.encoding, msg.step) == (4, 6, encoding, 12)
        assert msg.header == source and msg.header is not source
        np.testing.assert_array_equal(conversions.image_to_rgb(msg), RGB)
    padded = make_image(RGB, 'bgra8', row_padding=5)
    np.testing.assert_array_equal(conversions.image_to_rgb(padded), RGB)
    np.testing.assert_array_equal(
        conversions.compressed_image_to_rgb(make_compressed(RGB, 'png')), RGB)
    with pytest.raises(ImageConversionError) as error:
        conversions.image_to_rgb(Image(encoding='rgb8', width=4, height=6, step=12))
    assert error.value.reason == 'empty'
    with pytest.raises(ValueError):
        conversions.rgb_to_image(RGB[..., 0], source)


def test_image_payload_is_viewed_not_copied(monkeypatch: pytest.MonkeyPatch) -> None:
    """The message payload reaches the core's raw_to_rgb as a view of the message's buffer."""
    msg = make_image(RGB, 'rgb8')
    given = []
    core_raw_to_rgb = conversions.raw_to_rgb

    def spy(data, *args):
        given.append(data)
        return core_raw_to_rgb(data, *args)

    monkeypatch.setattr(conversions, 'raw_to_rgb', spy)
    np.testing.assert_array_equal(conversions.image_to_rgb(msg), RGB)
    assert len(given) == 1
    assert np.shares_memory(given[0], np.frombuffer(msg.data, np.uint8))


def test_stamps_convert_both_ways() -> None:
    """Header stamps <-> float seconds, nanosecond exact for today's epoch values."""
    stamp = conversions.seconds_to_stamp(1_700_000_000.123456789)
    # float64 holds today's epoch seconds to about 0.2 us.
    assert stamp.sec == 1_700_000_000 and abs(stamp.nanosec - 123_456_789) < 500
    assert conversions.stamp_to_seconds(header(5, 500_000_000).stamp) == 5.5
    assert conversions.seconds_to_stamp(2.999999999999).sec == 3
    with pytest.raises(ValueError):
        conversions.seconds_to_stamp(math.nan)


def test_navsatfix_to_geofix_and_back() -> None:
    """A usable fix becomes a GeoFix with its accuracy; bad ones give their reason."""
    lat, lon, alt = 48.1, 11.5, 500.0
    fix, reason = conversions.navsatfix_to_geofix(make_fix(lat, lon, alt, stamp_s=100.0,
                                                           accuracy_m=0.3))
    assert reason is None
    assert fix == GeoFix(100.0, 48.1, 11.5, 500.0, pytest.approx(0.3))
    unknown_accuracy = make_fix(lat, lon, alt, stamp_s=100.0, accuracy_m=None)
    assert conversions.navsatfix_to_geofix(unknown_accuracy)[0].horizontal_accuracy_m is None
    assert conversions.navsatfix_to_geofix(make_fix(
        lat, lon, alt, stamp_s=100.0, status=NavSatStatus.STATUS_NO_FIX)) == (None, 'no_fix')
    assert conversions.navsatfix_to_geofix(make_fix(
        math.nan, lon, alt, stamp_s=100.0))[1] == 'non_finite'
    assert conversions.navsatfix_to_geofix(make_fix(
        lat, 181.0, alt, stamp_s=100.0))[1] == 'out_of_range'
    # An accuracy limit: worse is refused, unknown is used, none set uses every fix.
    unsure = make_fix(lat, lon, alt, stamp_s=100.0, accuracy_m=60.0)
    assert conversions.navsatfix_to_geofix(unsure, 50.0) == (None, 'inaccurate')
    assert conversions.navsatfix_to_geofix(unsure, 70.0)[0] is not None
    assert conversions.navsatfix_to_geofix(unsure)[0] is not None
    assert conversions.navsatfix_to_geofix(unknown_accuracy, 0.01)[0] is not None
    # A variance of inf says the fix may be anywhere: refused even with no limit set.
    # NaN or negative variances say nothing: unknown accuracy, used.
    anywhere = make_fix(lat, lon, alt, stamp_s=100.0, accuracy_m=None, variance_m2=math.inf)
    assert conversions.horizontal_accuracy_m(anywhere) == math.inf
    for limit in (50.0, 0.0):
        assert conversions.navsatfix_to_geofix(anywhere, limit) == (None, 'inaccurate')
    # Anywhere east is anywhere, whatever the north variance says.
    for north in (math.nan, -1.0, 4.0):
        half = make_fix(lat, lon, alt, stamp_s=100.0, accuracy_m=None, variance_m2=math.inf)
        half.position_covariance[4] = north
        assert conversions.navsatfix_to_geofix(half, 0.0) == (None, 'inaccurate'), north
    assert conversions.fix_rejection_hint('inaccurate', anywhere) == (
        'inaccurate', 'its covariance is infinite: no position')
    assert conversions.fix_rejection_hint('inaccurate', unsure) == ('inaccurate', '')
    for variance in (math.nan, -1.0):
        odd = make_fix(lat, lon, alt, stamp_s=100.0, accuracy_m=None, variance_m2=variance)
        fix_odd, reason_odd = conversions.navsatfix_to_geofix(odd, 0.01)
        assert reason_odd is None and fix_odd.horizontal_accuracy_m is None
    out = conversions.geofix_to_navsatfix(fix, header(7, 8, 'camera'))
    assert out.header == header(7, 8, 'camera')
    assert (out.latitude, out.longitude, out.altitude) == (48.1, 11.5, 500.0)
    assert out.status.status == NavSatStatus.STATUS_FIX
    assert out.position_covariance[0] == pytest.approx(0.09)
    # An RTK receiver's status and services come through to detections/fix.
    rtk = make_fix(lat, lon, alt, stamp_s=100.0, accuracy_m=0.02,
                   status=NavSatStatus.STATUS_GBAS_FIX,
                   service=NavSatStatus.SERVICE_GPS | NavSatStatus.SERVICE_GALILEO)
    rtk_out = conversions.geofix_to_navsatfix(conversions.navsatfix_to_geofix(rtk)[0],
                                              header(7, 8, 'camera'))
    assert (rtk_out.status.status, rtk_out.status.service) == (
        NavSatStatus.STATUS_GBAS_FIX, NavSatStatus.SERVICE_GPS | NavSatStatus.SERVICE_GALILEO)
    unknown = conversions.geofix_to_navsatfix(GeoFix(1.0, 1.0, 1.0, 1.0), header())
    assert unknown.position_covariance_type == NavSatFix.COVARIANCE_TYPE_UNKNOWN


def test_a_fix_whose_status_nobody_set_is_refused_with_its_own_hint() -> None:
    """NavSatFix's default status (STATUS_UNKNOWN, -2) is not a receiver without a fix."""
    unset = make_fix(48.1, 11.5, 500.0, stamp_s=100.0)
    unset.status.status = NavSatFix().status.status
    assert conversions.navsatfix_to_geofix(unset) == (None, 'no_fix')
    key, hint = conversions.fix_rejection_hint('no_fix', unset)
    assert key == 'status_unset' and 'does not set NavSatStatus.status' in hint
    no_fix = make_fix(48.1, 11.5, 500.0, stamp_s=100.0, status=NavSatStatus.STATUS_NO_FIX)
    assert conversions.fix_rejection_hint('no_fix', no_fix) == ('no_fix', '')
    key, hint = conversions.fix_rejection_hint('unstamped', no_fix)
    assert key == 'unstamped' and 'does not stamp' in hint


def test_classification_json() -> None:
    """The classification JSON has the stamp, frame, label, confidence, top-k, timings."""
    classification = Classification(
        categories=(Category(3, 'Apple___healthy', 0.625), Category(0, 'Apple___scab', 0.25)),
        preprocess_ms=1.0, invoke_ms=2.0, postprocess_ms=0.5)
    data = json.loads(conversions.classification_to_json(classification, header(), 0.5))
    assert data == {
        'stamp': {'sec': 12, 'nanosec': 345}, 'frame_id': 'cam',
        'label': 'Apple___healthy', 'outcome': 'leaf', 'no_leaf_reason': '',
        'confidence': 0.625,
        'top_k': [{'label': 'Apple___healthy', 'index': 3, 'score': 0.625},
                  {'label': 'Apple___scab', 'index': 0, 'score': 0.25}],
        'crops': [],
        'poses': 1,
        'timings_ms': {'preprocess': 1.0, 'invoke': 2.0, 'postprocess': 0.5, 'total': 3.5},
        'motion_blur': None,
    }
    smeared = MotionBlur(horizontal_px=30.0, vertical_px=4.0, width=480, height=480)
    assert json.loads(conversions.classification_to_string(
        classification, header(), 0.5, motion_blur=smeared).data)['motion_blur'] == {
        'px': 30.0, 'axis': 'horizontal', 'percent': 6.25}
    in_orchard = Classification(categories=classification.categories, preprocess_ms=1.0,
                                invoke_ms=2.0, postprocess_ms=0.5, crops=('Apple',))
    assert json.loads(conversions.classification_to_json(
        in_orchard, header(), 0.5))['crops'] == ['Apple']
    assert conversions.display_label(classification, 0.7) == 'unknown'
    assert json.loads(conversions.classification_to_string(
        classification, header(), 0.7).data)['label'] == 'unknown'
    # The background class is 'no_leaf' at any score; a failed gate wins over the model.
    background = Classification(
        categories=(Category(21, 'no_leaf', 0.3), Category(3, 'Apple___healthy', 0.25)),
        preprocess_ms=1.0, invoke_ms=2.0, postprocess_ms=0.5)
    data = json.loads(conversions.classification_to_json(background, header(), 0.5))
    assert (data['label'], data['outcome'], data['no_leaf_reason']) == (
        'no_leaf', 'no_leaf', 'model')
    gate = GateResult(passed=False, reason='no vegetation', brightness=90.0, texture=5.0,
                      vegetation=0.0)
    outcome = frame_outcome(classification, 0.5, gate)
    data = json.loads(conversions.classification_to_json(classification, header(), 0.5,
                                                         outcome))
    assert (data['label'], data['outcome'], data['no_leaf_reason']) == (
        'no_leaf', 'no_leaf', 'no vegetation')
    assert not outcome.is_detection and frame_outcome(classification, 0.5).is_detection
    assert json.loads(conversions.feature_to_string({'a': [1, None]}).data) == {'a': [1, None]}
    with pytest.raises(ValueError):
        conversions.feature_to_string({'a': math.nan})


def info(reliability: ReliabilityPolicy) -> SimpleNamespace:
    """Return a stand-in for a TopicEndpointInfo with ``reliability``."""
    return SimpleNamespace(qos_profile=SimpleNamespace(reliability=reliability))


def test_message_key_ignores_an_unsupported_sequence_number() -> None:
    """Cyclone DDS gives every message UINT64_MAX: as a number, all but the first of a
    publisher would be dropped as duplicates and counted as gaps."""
    gid = {'data': bytes(range(16))}
    assert message_key({'publisher_gid': gid, 'publication_sequence_number': 7}) == (
        bytes(range(16)), 7)
    assert message_key({'publisher_gid': gid,
                        'publication_sequence_number': 2 ** 64 - 1}) is None
    assert message_key({'publisher_gid': gid, 'publication_sequence_number': None}) is None
    assert message_key({'publisher_gid': None, 'publication_sequence_number': 7}) is None
    assert message_key(None) is None


def test_reliability_matches_publishers_like_rosbag2() -> None:
    """All reliable -> reliable; any best effort -> best effort; none -> undecided."""
    reliable, best_effort = ReliabilityPolicy.RELIABLE, ReliabilityPolicy.BEST_EFFORT
    assert reliability_for_publishers([]) is None
    assert reliability_for_publishers([info(reliable), info(reliable)]) == reliable
    assert reliability_for_publishers([info(reliable), info(best_effort)]) == best_effort
    assert reliability_policy('auto') is None
    assert reliability_policy('best_effort') == best_effort
    with pytest.raises(ValueError):
        reliability_policy('sometimes')


def test_adaptive_subscription_follows_the_publishers(harness) -> None:
    """No publisher: fallback best effort; then reliable camera: reliable; mixed: best effort."""
    node = harness.node
    received: list[Image] = []
    changes: list[tuple[str, ReliabilityPolicy, str]] = []
    adaptive = AdaptiveSubscription(
        node, Image, 'adaptive_images', received.append, fallback_after_s=0.3,
        retry_period_s=0.1, recheck_period_s=0.2,
        on_change=lambda *change: changes.append(change))
    assert adaptive.subscription is None and adaptive.adaptive
    assert harness.wait(lambda: adaptive.subscription is not None)
    assert adaptive.reliability == ReliabilityPolicy.BEST_EFFORT
    assert changes[0][0] == '/adaptive_images' and 'fallback' in changes[0][2]

    reliable = node.create_publisher(Image, 'adaptive_images', QoSProfile(depth=1))
    assert harness.wait(lambda: adaptive.reliability == ReliabilityPolicy.RELIABLE)
    assert harness.wait(lambda: reliable.get_subscription_count() == 1
                        and adaptive.subscription.get_publisher_count() == 1)
    reliable.publish(make_image(RGB, frame_id='reliable'))
    assert harness.wait(lambda: len(received) == 1)

    best_effort = node.create_publisher(
        Image, 'adaptive_images',
        QoSProfile(depth=1, reliability=ReliabilityPolicy.BEST_EFFORT))
    assert harness.wait(lambda: adaptive.reliability == ReliabilityPolicy.BEST_EFFORT)
    assert harness.wait(lambda: best_effort.get_subscription_count() == 1
                        and adaptive.subscription.get_publisher_count() == 2)
    best_effort.publish(make_image(RGB, frame_id='best_effort'))
    assert harness.wait(lambda: len(received) == 2)
    assert [msg.header.frame_id for msg in received] == ['reliable', 'best_effort']
    assert len(changes) == 3
    adaptive.destroy()

    fixed = AdaptiveSubscription(node, Image, 'fixed_images', received.append,
                                 reliability='reliable')
    assert fixed.reliability == ReliabilityPolicy.RELIABLE and not fixed.adaptive
    fixed.destroy()


def test_throttled_warnings_one_line_per_reason_and_period() -> None:
    """Warnings of one key are throttled; another key is not hidden by it."""
    now = [100.0]
    lines: list[str] = []
    warnings = ThrottledWarnings(SimpleNamespace(warning=lines.append), period_s=0.2,
                                 clock=lambda: now[0])
    assert warnings.warning('truncated', 'a')
    assert not warnings.warning('truncated', 'b')
    assert warnings.warning('empty', 'c')
    now[0] = 100.15
    assert not warnings.warning('truncated', 'e')
    now[0] = 100.25
    assert warnings.warning('truncated', 'd')
    assert not warnings.warning('truncated', 'f')
    assert lines == ['a', 'c', 'd (2 more like it since the last warning)']


def test_pipeline_main_starts_and_stops_cleanly(ros_context, tmp_path) -> None:
    """plant_disease_pipeline's main(): both nodes come up, exit 0 on SIGINT, no traceback."""
    require_shipped_model()
    harness = Harness(ros_context, name='pipeline_main_probe')
    try:
        with node_processes(tmp_path) as processes:
            pipeline = processes.start('plant_disease_pipeline')
            # Both nodes are up once the probe sees them in the graph and each has logged
            # its start line (a node is in the graph before its constructor ends: a SIGINT
            # in between would be a stop during start-up, another test's matter).
            assert harness.wait(lambda: {'camera_subscriber', 'disease_classifier'} <= set(
                harness.node.get_node_names()), 60.0), processes.logs()
            assert harness.wait(lambda: 'camera_subscriber:' in processes.logs()
                                and 'disease_classifier]: model' in processes.logs(),
                                60.0), processes.logs()
            processes.check_alive()
            processes.stop()
            output = processes.logs()
        assert pipeline.popen.returncode == 0, output
    finally:
        harness.close()
    assert 'camera_subscriber:' in output and 'disease_classifier' in output, output
    assert 'Traceback' not in output
    assert 'XMLPARSER' not in output, 'the Fast DDS profile did not parse'
