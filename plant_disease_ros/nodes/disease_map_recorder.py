"""disease_map_recorder: record GPS-tagged detections as a disease map, show it in RViz.

Subscribes ``detections`` (std_msgs/String, one GeoJSON Feature each) and appends every
valid Feature to ``<map_dir>/<run_name>.geojsons``, one fsynced record per detection, so a
kill -9 loses at most the record being written. A restart with the same run name
continues that file. ``~/save`` (std_srvs/Trigger) and shutdown write the
FeatureCollection ``<run_name>.geojson`` and ``<run_name>_summary.json``. ``markers``
(visualization_msgs/MarkerArray) shows the detections aggregated per grid cell in the
local ENU frame ``map_frame``; ``/diagnostics`` reports what was written and rejected.
"""

from __future__ import annotations

from datetime import datetime, timezone
import math
from pathlib import Path
import sys
import time
from typing import Any

from diagnostic_msgs.msg import DiagnosticStatus
from rcl_interfaces.msg import (
    FloatingPointRange,
    ParameterDescriptor,
    ParameterType,
    SetParametersResult,
)
import rclpy
from rclpy.executors import ExternalShutdownException
from rclpy.node import Node
from rclpy.parameter import Parameter
from rclpy.qos import DurabilityPolicy, QoSProfile, ReliabilityPolicy
from std_msgs.msg import String
from std_srvs.srv import Trigger
from visualization_msgs.msg import Marker, MarkerArray

from plant_disease_ros.core.labels import display_name
from plant_disease_ros.core.map_file import (
    feature_rejection_reason,
    GeoJsonSeqWriter,
    iter_geojson_seq,
    parse_json,
    SeqReadStats,
    write_feature_collection,
    write_json_atomic,
)
from plant_disease_ros.core.map_grid import Cell, CellAggregator, MapSummary
from plant_disease_ros.core.map_render import LabelPalette
from plant_disease_ros.ros.diagnostics import NodeDiagnostics, ThrottledWarnings
from plant_disease_ros.ros.fastdds_participant_id import avoid_crashed_participant_ports
from plant_disease_ros.ros.startup import init_rclpy, steady_clock

NODE_NAME = 'disease_map_recorder'
DIAGNOSTICS_PERIOD_S = 1.0
DETECTIONS_QOS_DEPTH = 100
LOG_THROTTLE_S = 5.0
MARKER_NAMESPACE = 'disease_cells'
LABEL_NAMESPACE = 'disease_cell_labels'


class RecorderDiagnostics(NodeDiagnostics):
    """The node's counters; ERROR while the records file cannot be written."""

    write_error = ''

    def status(self) -> DiagnosticStatus:
        """Return the status, escalated to ERROR after a failed write."""
        status = super().status()
        if self.write_error:
            status.level = DiagnosticStatus.ERROR
            status.message = f'cannot write the records file: {self.write_error}'
        return status


def _double_range(low: float, high: float) -> list[FloatingPointRange]:
    return [FloatingPointRange(from_value=low, to_value=high, step=0.0)]


def default_run_name() -> str:
    """Return today's local date (``YYYY-MM-DD``), the run name when none is given."""
    return time.strftime('%Y-%m-%d')


def validate_run_name(run_name: str) -> str:
    """Return ``run_name`` if it is a plain file name stem; raise ValueError otherwise."""
    if (not run_name or run_name != run_name.strip() or run_name.startswith('.')
            or '/' in run_name or '\\' in run_name or '\x00' in run_name):
        raise ValueError(f'run_name {run_name!r} must be a plain file name (no path, '
                         'no leading dot)')
    return run_name


def format_origin(origin: tuple[float, float, float]) -> str:
    """Return ``lat, lon, alt`` of an origin as text (degrees to 1e-7, metres to cm)."""
    return f'{origin[0]:.7f}, {origin[1]:.7f}, {origin[2]:.2f} m'


def cell_height_m(cell: Cell, cell_size_m: float) -> float:
    """Return a marker height that grows with the log of the cell's detection count."""
    return cell_size_m * min(2.0, 0.25 + 0.25 * math.log2(max(cell.count, 1)))


class DiseaseMapRecorder(Node):
    """Append detections to the run's GeoJSON text sequence and publish cell markers."""

    def __init__(self, **kwargs: Any) -> None:
        """Declare parameters, continue the run's file and start the interfaces."""
        super().__init__(NODE_NAME, **kwargs)
        self._declare_parameters()
        map_dir = Path(self.get_parameter('map_dir').value).expanduser()
        run_name = validate_run_name(self.get_parameter('run_name').value or default_run_name())
        self._map_frame: str = self.get_parameter('map_frame').value
        cell_size_m = float(self.get_parameter('cell_size_m').value)
        origin = None
        if self.get_parameter('use_datum').value:
            origin = (float(self.get_parameter('datum_latitude').value),
                      float(self.get_parameter('datum_longitude').value),
                      float(self.get_parameter('datum_altitude').value))

        self.run_name = run_name
        self.records_path = map_dir / f'{run_name}.geojsons'
        self.collection_path = map_dir / f'{run_name}.geojson'
        self.summary_path = map_dir / f'{run_name}_summary.json'

        self._aggregator = CellAggregator(cell_size_m, origin)
        self._summary = MapSummary(cell_size_m, origin)
        self._palette = LabelPalette()
        self._marker_ids: dict[tuple[int, int], int] = {}
        self._cleared_markers = False
        self._last_save = ''
        self.warnings = ThrottledWarnings(self.get_logger(), LOG_THROTTLE_S)
        self.records_at_start = 0
        self.records_skipped_at_start = 0
        self._records_written = 0
        self._continue_existing_run()
        # Opened on the first detection: a node that never records leaves no files behind.
        self._writer: GeoJsonSeqWriter | None = None

        self._markers_publisher = self.create_publisher(
            MarkerArray, 'markers',
            QoSProfile(depth=1, reliability=ReliabilityPolicy.RELIABLE,
                       durability=DurabilityPolicy.TRANSIENT_LOCAL))
        self.diagnostics = RecorderDiagnostics(
            self, period_s=DIAGNOSTICS_PERIOD_S, name=f'{self.get_name()}: map recorder',
            hardware_id=str(self.records_path))
        self.diagnostics.set_value('file', str(self.records_path))
        self.diagnostics.set_value('records_continued', self.records_at_start)
        self.diagnostics.set_value('records_skipped_at_start', self.records_skipped_at_start)
        self._update_diagnostic_values()
        self._subscription = self.create_subscription(
            String, 'detections', self._on_detection,
            QoSProfile(depth=DETECTIONS_QOS_DEPTH, reliability=ReliabilityPolicy.RELIABLE))
        self._save_service = self.create_service(Trigger, '~/save', self._on_save)
        self._marker_timer = self.create_timer(
            float(self.get_parameter('marker_period_s').value), self.publish_markers,
            clock=steady_clock())
        self.add_on_set_parameters_callback(self._validate_parameters)
        self.add_post_set_parameters_callback(self._apply_parameters)

        origin_text = f'datum {format_origin(origin)}' if origin else 'the first fix'
        self.get_logger().info(
            f'recording to {self.records_path} ({self.records_at_start} record(s) continued), '
            f'cells of {cell_size_m:g} m in frame {self._map_frame!r} from {origin_text}')

    def _declare_parameters(self) -> None:
        double = ParameterType.PARAMETER_DOUBLE
        self.declare_parameter('map_dir', 'disease_maps', ParameterDescriptor(
            description='directory of the run files (created if missing)', read_only=True))
        self.declare_parameter('run_name', '', ParameterDescriptor(
            description="file name stem of the run ('' = today's date YYYY-MM-DD); an "
                        'existing run of that name is continued', read_only=True))
        self.declare_parameter('map_frame', 'map', ParameterDescriptor(
            description='frame of the markers: local ENU (x east, y north, z up, metres) '
                        'at the origin'))
        self.declare_parameter('use_datum', False, ParameterDescriptor(
            description='true: the ENU origin is the datum_* parameters; false: the first '
                        'located detection of the run', read_only=True))
        self.declare_parameter('datum_latitude', 0.0, ParameterDescriptor(
            description='ENU origin latitude, WGS84 degrees', type=double, read_only=True,
            floating_point_range=_double_range(-90.0, 90.0)))
        self.declare_parameter('datum_longitude', 0.0, ParameterDescriptor(
            description='ENU origin longitude, WGS84 degrees', type=double, read_only=True,
            floating_point_range=_double_range(-180.0, 180.0)))
        self.declare_parameter('datum_altitude', 0.0, ParameterDescriptor(
            description='ENU origin altitude above the WGS84 ellipsoid, metres', type=double,
            read_only=True, floating_point_range=_double_range(-1e5, 1e5)))
        self.declare_parameter('cell_size_m', 2.0, ParameterDescriptor(
            description='edge of the square grid cells detections are aggregated in, metres',
            type=double, read_only=True, floating_point_range=_double_range(0.1, 1000.0)))
        self.declare_parameter('marker_period_s', 1.0, ParameterDescriptor(
            description='period of the markers publication, seconds', type=double,
            floating_point_range=_double_range(0.05, 60.0)))

    def _validate_parameters(self, parameters: list[Parameter]) -> SetParametersResult:
        for parameter in parameters:
            if parameter.name == 'map_frame':
                frame = parameter.value
                if not isinstance(frame, str) or not frame.strip() or frame.startswith('/'):
                    return SetParametersResult(
                        successful=False,
                        reason='map_frame must be a non-empty frame id without a leading /')
        return SetParametersResult(successful=True)

    def _apply_parameters(self, parameters: list[Parameter]) -> None:
        for parameter in parameters:
            if parameter.name == 'map_frame':
                self._map_frame = parameter.value
            elif parameter.name == 'marker_period_s':
                self.destroy_timer(self._marker_timer)
                self._marker_timer = self.create_timer(float(parameter.value),
                                                       self.publish_markers,
                                                       clock=steady_clock())

    def _continue_existing_run(self) -> None:
        """Count and aggregate the records of an earlier session of the same run."""
        if not self.records_path.exists():
            return
        stats = SeqReadStats()
        for feature in iter_geojson_seq(self.records_path, stats):
            self._add_to_map(feature)
        self.records_at_start = stats.records
        self.records_skipped_at_start = stats.skipped + int(stats.truncated_tail)
        if self.records_skipped_at_start:
            self.get_logger().warning(
                f'{self.records_path}: {self.records_skipped_at_start} unreadable record(s) '
                'from an earlier session skipped (a kill mid-write leaves one)')

    def _add_to_map(self, feature: dict) -> None:
        had_origin = self._aggregator.origin is not None
        self._aggregator.add(feature)
        self._summary.add(feature)
        if not had_origin and self._aggregator.origin is not None:
            self.get_logger().info('ENU origin: first located detection at '
                                   + format_origin(self._aggregator.origin))

    @property
    def records_written(self) -> int:
        """Return the number of records this session appended."""
        return self._records_written

    @property
    def rejected(self) -> dict[str, int]:
        """Return the rejected messages by reason."""
        return {reason: count for (_, reason), count in self.diagnostics.rejected.items()}

    def _reject(self, reason: str, detail: str) -> None:
        self.diagnostics.count_rejected(reason)
        self.warnings.warning(reason, f'detection rejected ({reason}): {detail}')

    def _update_diagnostic_values(self) -> None:
        self.diagnostics.set_value('records_written', self.records_written)
        self.diagnostics.set_value('records_in_file',
                                   self.records_at_start + self.records_written)
        self.diagnostics.set_value('located', self._summary.located)
        self.diagnostics.set_value('unlocated', self._summary.detections - self._summary.located)
        self.diagnostics.set_value('cells', len(self._aggregator))
        self.diagnostics.set_value('last_save', self._last_save)

    def _on_detection(self, message: String) -> None:
        start = time.perf_counter()
        self.diagnostics.count_received()
        try:
            feature = parse_json(message.data)
        except ValueError as error:
            self._reject('invalid_json', str(error))
            return
        reason = feature_rejection_reason(feature)
        if reason is not None:
            self._reject(reason, message.data[:120])
            return
        try:
            if self._writer is None:
                self.records_path.parent.mkdir(parents=True, exist_ok=True)
                self._writer = GeoJsonSeqWriter(self.records_path)
            self._writer.append(feature)
        except (OSError, ValueError) as error:
            self.diagnostics.write_error = str(error)
            self.diagnostics.count_rejected('write_failed')
            self.warnings.warning('write_failed',
                                  f'cannot append to {self.records_path}: {error}')
            return
        self.diagnostics.write_error = ''
        self._records_written += 1
        self._add_to_map(feature)
        # The latency of a record is mostly its fsync: what the disk costs per detection.
        self.diagnostics.count_processed((time.perf_counter() - start) * 1e3)
        self._update_diagnostic_values()

    def save(self) -> tuple[bool, str]:
        """Write the FeatureCollection and the summary of the run; return (ok, message)."""
        try:
            records = (iter_geojson_seq(self.records_path) if self.records_path.exists()
                       else iter(()))
            count = write_feature_collection(self.collection_path, records)
            summary = {
                'run_name': self.run_name,
                'saved_at': datetime.now(timezone.utc).isoformat(timespec='seconds'),
                'records_file': str(self.records_path),
                'feature_collection': str(self.collection_path),
                'features_in_collection': count,
                'records_written_this_session': self.records_written,
                'records_continued': self.records_at_start,
                'rejected_this_session': dict(sorted(self.rejected.items())),
                'map_frame': self._map_frame,
                **self._summary.as_dict(),
            }
            write_json_atomic(self.summary_path, summary)
        except (OSError, ValueError) as error:
            message = f'save failed: {error}'
            self.get_logger().error(message)
            return False, message
        message = (f'wrote {self.collection_path} ({count} feature(s)) and '
                   f'{self.summary_path}')
        self._last_save = message
        self.diagnostics.set_value('last_save', message)
        self.get_logger().info(message)
        return True, message

    def _on_save(self, request: Trigger.Request,
                 response: Trigger.Response) -> Trigger.Response:
        response.success, response.message = self.save()
        return response

    def build_markers(self) -> MarkerArray:
        """Return one shape and one text marker per cell, ids stable for the node's life.

        Diseased cells (their most confident detection is a disease) are cylinders,
        healthy ones spheres, coloured by that label; the size grows with the count.
        """
        array = MarkerArray()
        if not self._cleared_markers:
            # Clear what an earlier session left in RViz before drawing this one.
            array.markers.append(Marker(action=Marker.DELETEALL))
            self._cleared_markers = True
        size = self._aggregator.cell_size_m
        for cell in self._aggregator.cells():
            marker_id = self._marker_ids.setdefault(cell.key, len(self._marker_ids))
            red, green, blue = self._palette.rgb(cell.label, cell.healthy)
            shape = Marker()
            shape.header.frame_id = self._map_frame
            shape.ns = MARKER_NAMESPACE
            shape.id = marker_id
            shape.action = Marker.ADD
            shape.pose.orientation.w = 1.0
            shape.pose.position.x = cell.centre_e
            shape.pose.position.y = cell.centre_n
            if cell.healthy:
                shape.type = Marker.SPHERE
                diameter = size * min(0.9, 0.35 + 0.1 * math.log2(cell.count))
                shape.scale.x = shape.scale.y = shape.scale.z = diameter
                top = diameter
            else:
                shape.type = Marker.CYLINDER
                top = cell_height_m(cell, size)
                shape.scale.x = shape.scale.y = 0.8 * size
                shape.scale.z = top
            shape.pose.position.z = top / 2.0
            shape.color.r, shape.color.g, shape.color.b = red, green, blue
            shape.color.a = 0.35 + 0.6 * min(max(cell.max_confidence, 0.0), 1.0)
            array.markers.append(shape)

            text = Marker()
            text.header.frame_id = self._map_frame
            text.ns = LABEL_NAMESPACE
            text.id = marker_id
            text.type = Marker.TEXT_VIEW_FACING
            text.action = Marker.ADD
            text.pose.orientation.w = 1.0
            text.pose.position.x = cell.centre_e
            text.pose.position.y = cell.centre_n
            text.pose.position.z = top + 0.3 * size
            text.scale.z = 0.3 * size
            text.color.r = text.color.g = text.color.b = text.color.a = 1.0
            text.text = f'{display_name(cell.label)}\n{cell.count}x, max {cell.max_confidence:.2f}'
            if cell.healthy and cell.diseased_count:
                text.text += f'\n({cell.diseased_count} diseased)'
            array.markers.append(text)
        return array

    def publish_markers(self) -> None:
        """Publish the cell markers."""
        self._markers_publisher.publish(self.build_markers())

    def destroy_node(self) -> None:
        """Close the records file and destroy the node."""
        if self._writer is not None:
            self._writer.close()
        self.diagnostics.destroy()
        super().destroy_node()


def main(args: list[str] | None = None) -> int:
    """Run the recorder until shutdown, then save the collection and the summary."""
    if not init_rclpy(NODE_NAME, args):
        return 1
    node: DiseaseMapRecorder | None = None
    status = 0
    try:
        with avoid_crashed_participant_ports() as participant:
            node = DiseaseMapRecorder()
        node.get_logger().info(f'Fast DDS: {participant.reason}')
        rclpy.spin(node)
    except (KeyboardInterrupt, ExternalShutdownException):
        pass
    except (ValueError, OSError) as error:
        # A bad parameter or an unwritable map_dir: one line, not a traceback.
        print(f'{NODE_NAME}: error: {error}', file=sys.stderr)
        status = 1
    finally:
        if node is not None:
            # Destroy first: the node's logger then no longer publishes to a rosout whose
            # context a signal has already shut down. Saving needs only the files.
            node.destroy_node()
            node.save()
        rclpy.try_shutdown()
    return status


if __name__ == '__main__':
    sys.exit(main())
