"""GPS dropout mid-run: every frame still gives a detection, tagged with how it was located.

70 frames, one every 0.1 s of stamp time; fixes every 0.2 s, published just ahead of the
frames as a receiver would. From 2.0 s the receiver reports NO_FIX for a second, then
goes silent until 5.0 s. With max_fix_age_s 2 the expected tags are exact:

    frames 0.05-1.75 s  interpolated   (fixes on both sides)
    frames 1.85-3.75 s  extrapolated   (the last fix, 1.8 s, within 2 s, carried on along
                                        the drive before it)
    frames 3.85-4.75 s  stale          (no fix within 2 s: null geometry)
    frames 4.85-4.95 s  nearest        (the first fix after the dropout: no motion after
                                        it is known yet)
    frames 5.05-6.95 s  interpolated

No detection may be lost, the NO_FIX messages are counted in /diagnostics, and the
recorder writes every detection (the stale ones without a position) to the map file.
"""

from __future__ import annotations

import pytest

rclpy = pytest.importorskip('rclpy')

from helpers.gps import make_fix  # noqa: E402
from helpers.images import leaf_photos, make_image  # noqa: E402
from helpers.ros import (  # noqa: E402
    classifier_node,
    Collector,
    diagnostics_collector,
    Harness,
    latest_diagnostics,
    parameters,
)
from rclpy.qos import QoSProfile  # noqa: E402
from sensor_msgs.msg import Image, NavSatFix, NavSatStatus  # noqa: E402
from std_msgs.msg import String  # noqa: E402

from plant_disease_ros.core.map_file import scan_geojson_seq  # noqa: E402
from plant_disease_ros.nodes.disease_map_recorder import DiseaseMapRecorder  # noqa: E402

T0 = 1_700_000_000.0
FRAMES = 70
FRAME_PERIOD_S = 0.1
FRAME_OFFSET_S = 0.05
FIX_PERIOD_S = 0.2
NO_FIX_FROM_S, SILENT_FROM_S, BACK_AT_S = 2.0, 3.0, 5.0
LATITUDE, LONGITUDE, ALTITUDE = 47.3769, 8.5417, 408.0


def expected_status(t: float) -> str:
    """Return the fix_status the frame at ``t`` s (from T0) must get."""
    if t < 1.8:
        return 'interpolated'
    if t < 3.8:
        return 'extrapolated'
    if t < 4.8:
        return 'stale'
    if t < 5.0:
        return 'nearest'
    return 'interpolated'


def fix_at(t: float) -> NavSatFix | None:
    """Return what the receiver publishes for time ``t``: a fix, NO_FIX, or nothing."""
    if SILENT_FROM_S <= t < BACK_AT_S:
        return None
    status = (NavSatStatus.STATUS_NO_FIX if NO_FIX_FROM_S <= t < SILENT_FROM_S
              else NavSatStatus.STATUS_FIX)
    # The robot drives north-east at about 1.3 m/s; an RTK receiver (0.02 m).
    return make_fix(LATITUDE + t * 1e-5, LONGITUDE + t * 1e-5, ALTITUDE, status=status,
                    stamp_s=T0 + t, accuracy_m=0.02)


def test_gps_dropout_loses_no_detection(ros_context, tmp_path) -> None:
    """Detections keep flowing through a GPS dropout, each with the right fix_status."""
    classifier = classifier_node(ros_context, score_threshold=0.0, max_fix_age_s=2.0,
                                 fix_wait_s=0.05)
    recorder = DiseaseMapRecorder(context=ros_context, parameter_overrides=parameters(
        map_dir=str(tmp_path), run_name='gps_dropout'))
    harness = Harness(ros_context, [classifier, recorder], name='gps_dropout_tester')
    wait = harness.wait

    try:
        tester = harness.node
        frames = tester.create_publisher(Image, 'frames', QoSProfile(depth=10))
        fixes = tester.create_publisher(NavSatFix, 'fix', QoSProfile(depth=50))
        results = Collector(tester, [('/detections', String)])
        diagnostics = diagnostics_collector(tester)
        harness.wait_for_subscribers(frames)
        harness.wait_for_subscribers(fixes)
        rgb = leaf_photos(1)[0][1]
        published_fixes = 0
        no_fix_sent = 0
        next_fix = 0
        for index in range(FRAMES):
            t = FRAME_OFFSET_S + index * FRAME_PERIOD_S
            # The receiver runs slightly ahead of the camera pipeline.
            while next_fix * FIX_PERIOD_S <= t + FIX_PERIOD_S + 1e-9:
                message = fix_at(next_fix * FIX_PERIOD_S)
                if message is not None:
                    fixes.publish(message)
                    published_fixes += 1
                    no_fix_sent += message.status.status == NavSatStatus.STATUS_NO_FIX
                next_fix += 1
            assert wait(lambda n=published_fixes: classifier.fixes_received >= n), \
                'fixes not taken'
            frames.publish(make_image(rgb, frame_id=f'frame-{index}', stamp_s=T0 + t))
            # One frame at a time: the next goes out once this one's detection is out.
            assert wait(lambda n=index + 1: results.count('/detections') >= n), \
                f'no detection for frame {index} (t={t:.2f} s)'

        detections = results.json('/detections')
        assert len(detections) == FRAMES
        by_frame = {message['properties']['frame_id']: message for message in detections}
        assert len(by_frame) == FRAMES, 'a frame was detected twice'
        for index in range(FRAMES):
            t = FRAME_OFFSET_S + index * FRAME_PERIOD_S
            message = by_frame[f'frame-{index}']
            status = message['properties']['fix_status']
            assert status == expected_status(t), (t, message['properties'])
            if status == 'stale':
                assert message['geometry'] is None
            else:
                longitude, latitude = message['geometry']['coordinates'][:2]
                assert abs(latitude - (LATITUDE + t * 1e-5)) < 2.5e-5, (t, latitude)
                assert abs(longitude - (LONGITUDE + t * 1e-5)) < 2.5e-5
                if status == 'extrapolated':
                    # The drive is straight and even: carried on, the position is exact,
                    # where the last fix was up to 2.5 m behind.
                    assert abs(latitude - (LATITUDE + t * 1e-5)) < 1e-8, (t, latitude)
                    assert abs(longitude - (LONGITUDE + t * 1e-5)) < 1e-8

        # NO_FIX messages are counted by reason; the recorder wrote every detection.
        assert wait(lambda: (latest_diagnostics(diagnostics, 'disease_classifier') or {}).get(
            'fix_rejected.no_fix') == str(no_fix_sent)), \
            latest_diagnostics(diagnostics, 'disease_classifier')
        assert wait(lambda: recorder.records_written == FRAMES)
        features, stats = scan_geojson_seq(tmp_path / 'gps_dropout.geojsons')
        assert len(features) == FRAMES and stats.skipped == 0
        assert sum(feature['geometry'] is None for feature in features) == \
            sum(expected_status(FRAME_OFFSET_S + i * FRAME_PERIOD_S) == 'stale'
                for i in range(FRAMES))
    finally:
        harness.close()


def test_detections_waiting_for_a_fix_are_published_when_the_node_stops(ros_context) -> None:
    """The end of a bag or a drive: a detection still waiting for its fix is not lost."""
    classifier = classifier_node(ros_context, score_threshold=0.0, max_fix_age_s=2.0,
                                 fix_wait_s=10.0)
    harness = Harness(ros_context, [classifier], name='gps_stop_tester')
    try:
        tester = harness.node
        frames = tester.create_publisher(Image, 'frames', QoSProfile(depth=10))
        fixes = tester.create_publisher(NavSatFix, 'fix', QoSProfile(depth=10))
        results = Collector(tester, [('/detections', String)])
        diagnostics = diagnostics_collector(tester)
        harness.wait_for_subscribers(frames)
        harness.wait_for_subscribers(fixes)
        fixes.publish(make_fix(LATITUDE, LONGITUDE, ALTITUDE, stamp_s=T0))
        assert harness.wait(lambda: classifier.fixes_received == 1)
        assert harness.wait(lambda: (latest_diagnostics(diagnostics, 'disease_classifier')
                                     or {}).get('fixes_received') == '1')
        frames.publish(make_image(leaf_photos(1)[0][1], frame_id='last', stamp_s=T0 + 0.5))
        # It waits for a fix after its stamp, which never comes: nothing published yet.
        assert harness.wait(lambda: classifier.pending_detections == 1)
        assert not harness.wait(lambda: results.count('/detections') > 0, timeout_s=0.5)
        harness.executor.remove_node(classifier)
        harness.nodes.remove(classifier)
        classifier.destroy_node()
        assert harness.wait(lambda: results.count('/detections') == 1)
        properties = results.json('/detections')[0]['properties']
        assert (properties['frame_id'], properties['fix_status']) == ('last', 'nearest')
    finally:
        harness.close()
