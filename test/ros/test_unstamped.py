"""Frames and GPS fixes stamped 0 (a driver that did not fill the stamp) break no timeline.

A frame stamped sec=0, nanosec=0 among frames and fixes of 2025 used to be taken for a
jump back of 1.75e9 s: the fixes held were dropped, the next fixes thrown away as
``previous_timeline`` and the frames of the following seconds published without a
position. Now such a frame is classified and published without a position, such a fix
is rejected, both are counted and warned about, and the timeline goes on. Real
disease_classifier node over DDS; the conversion on its own.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
import json
import math

from helpers.gps import make_fix
from helpers.images import leaf_rgb, make_image
from helpers.ros import classifier_inputs, Harness, parameters, statuses
from helpers.shipped_model import require_shipped_model
import pytest

rclpy = pytest.importorskip('rclpy')

from builtin_interfaces.msg import Time  # noqa: E402
from diagnostic_msgs.msg import DiagnosticStatus  # noqa: E402
from sensor_msgs.msg import NavSatFix  # noqa: E402

from plant_disease_ros.core.geodesy import enu_to_geodetic  # noqa: E402
from plant_disease_ros.nodes.disease_classifier import DiseaseClassifierNode  # noqa: E402
from plant_disease_ros.ros import conversions  # noqa: E402

T0 = 1_750_000_000.0
LAT0, LON0, ALT0 = 51.98765, 5.66543, 12.0
FRAME = leaf_rgb(64, 64)
NO_STAMP_WARNING = 'frames have no stamp (header stamp 0)'


def fix_at(t: float, stamp: float | tuple[int, int] | None = None) -> NavSatFix:
    """Return the fix of a robot driving north at 1 m/s, ``t`` s after T0 (stamp T0 + t)."""
    lat, lon, alt = enu_to_geodetic(0.0, t, 0.0, LAT0, LON0, ALT0)
    return make_fix(lat, lon, alt, stamp_s=T0 + t if stamp is None else stamp,
                    accuracy_m=0.5)


def test_an_unstamped_fix_is_refused_on_request() -> None:
    """require_stamp: exactly zero is 'unstamped'; a simulator's first instants are not."""
    assert conversions.navsatfix_to_geofix(fix_at(1.0, (0, 0)), require_stamp=True) == (
        None, 'unstamped')
    # Without require_stamp (and for every other stamp) the fix is converted as before.
    assert conversions.navsatfix_to_geofix(fix_at(1.0, (0, 0)))[0].stamp_s == 0.0
    for stamp in ((0, 1), (1, 0), 0.5):
        fix, reason = conversions.navsatfix_to_geofix(fix_at(1.0, stamp), require_stamp=True)
        assert reason is None and fix is not None, stamp
    # A fix unusable for what it holds keeps that reason, stamped or not.
    no_position = fix_at(1.0, (0, 0))
    no_position.latitude = math.nan
    assert conversions.navsatfix_to_geofix(no_position, require_stamp=True) == (
        None, 'non_finite')
    assert conversions.navsatfix_to_geofix(fix_at(1.0, (0, 0)), 0.1, require_stamp=True) == (
        None, 'inaccurate')
    assert conversions.is_unstamped(Time()) and not conversions.is_unstamped(Time(nanosec=1))


class Rig:
    """A classifier node (every leaf a detection), frames and fixes in, outputs collected."""

    def __init__(self, harness: Harness) -> None:
        self.harness = harness
        self.node = harness.add(DiseaseClassifierNode(
            context=harness.context, parameter_overrides=parameters(
                score_threshold=0.0, fix_wait_s=5.0, diagnostics_period_s=0.2)))
        # A late stamp counts as late only for 2 s of wall clock after a jump: kept open,
        # so that a stalled host cannot hide the jump that a stamp of 0 used to cause.
        self.node.time_jumps.late_window_s = 3600.0
        self.collector, self.frames, self.fixes = classifier_inputs(harness)
        self.sent = 0

    def send_fix(self, msg: NavSatFix) -> None:
        """Publish a fix and wait until the classifier has taken it."""
        before = self.node.fixes_received
        self.fixes.publish(msg)
        assert self.harness.wait(lambda: self.node.fixes_received > before)

    def send_frame(self, stamp: float | tuple[int, int]) -> dict:
        """Publish a frame; wait for its classification and return it."""
        self.sent += 1
        msg = make_image(FRAME, 'rgb8', stamp_s=stamp, frame_id=f'frame{self.sent}')
        assert self.harness.publish_and_wait(self.frames, msg, self.collector,
                                             '/classification')
        return self.collector.json('/classification')[-1]

    def detection(self, frame_id: str) -> dict:
        """Wait for the detection of ``frame_id``; return its properties and geometry."""
        def found() -> dict | None:
            for msg in self.collector.messages['/detections']:
                feature = json.loads(msg.data)
                if feature['properties']['frame_id'] == frame_id:
                    return feature
            return None

        assert self.harness.wait(lambda: found() is not None), frame_id
        return found()

    def status(self, predicate: Callable[[DiagnosticStatus, dict[str, str]], bool]
               ) -> DiagnosticStatus:
        """Spin until a status after the last frame satisfies ``predicate``; return it."""
        def found() -> DiagnosticStatus | None:
            for status in reversed(statuses(self.collector, self.node.get_name())):
                values = {item.key: item.value for item in status.values}
                if values.get('processed') == str(self.sent) and predicate(status, values):
                    return status
            return None

        assert self.harness.wait(lambda: found() is not None), \
            statuses(self.collector, self.node.get_name())[-1:]
        return found()


@pytest.fixture
def rig(ros_context) -> Iterator[Rig]:
    """Give a test a Rig, closed afterwards."""
    harness = Harness(ros_context)
    yield Rig(harness)
    harness.close()


def test_an_unstamped_frame_and_fix_break_no_timeline(
        rig: Rig, capfd: pytest.CaptureFixture[str]) -> None:
    """Stamp 0: the frame published unlocated, the fix refused; no jump, nothing lost."""
    require_shipped_model()
    node = rig.node
    rig.send_fix(fix_at(0.0))
    rig.send_fix(fix_at(0.2))
    rig.send_frame(T0 + 0.1)
    assert rig.detection('frame1')['properties']['fix_status'] == 'interpolated'

    record = rig.send_frame((0, 0))
    assert record['stamp'] == {'sec': 0, 'nanosec': 0} and record['outcome'] == 'leaf'
    unstamped = rig.detection('frame2')
    assert unstamped['geometry'] is None
    assert unstamped['properties']['fix_status'] == 'none'
    assert node.time_jumps.jumps == 0 and len(node.fix_wait.fixes) == 2
    status = rig.status(lambda status, values: values.get('frames.unstamped') == '1'
                        and NO_STAMP_WARNING in status.message)
    assert status.level == DiagnosticStatus.WARN
    # The missing position is the camera's stamp, not the GPS: no GPS warning for it.
    assert 'have no position' not in status.message, status.message

    rig.send_fix(fix_at(0.4, (0, 0)))
    assert node.diagnostics.rejected[('fix', 'unstamped')] == 1
    assert node.time_jumps.jumps == 0
    assert node.fix_wait.fixes.newest_stamp_s == pytest.approx(T0 + 0.2)

    # The timeline goes on: the next fixes are used, the next frames located.
    rig.send_fix(fix_at(0.6))
    rig.send_frame(T0 + 0.5)
    assert rig.detection('frame3')['properties']['fix_status'] == 'interpolated'
    assert node.diagnostics.rejected[('fix', 'previous_timeline')] == 0
    assert node.time_jumps.jumps == 0
    status = rig.status(lambda status, values: values.get('fix_rejected.unstamped') == '1')
    values = {item.key: item.value for item in status.values}
    assert values['frames.unstamped'] == '1' and values['time_jumps_back'] == '0'
    # A stamped frame again: the lasting warning has gone.
    assert NO_STAMP_WARNING not in status.message, status.message
    err = capfd.readouterr().err
    assert NO_STAMP_WARNING in err and 'ignored GPS fix (unstamped)' in err
    assert 'time jumped back' not in err
