"""disease_map_recorder: record GPS-tagged detections as a disease map, show it in RViz.

Subscribes ``detections`` (std_msgs/String, one GeoJSON Feature each) and appends every
valid Feature to ``<map_dir>/<run_name>.geojsons``, one fsynced record per detection, so a
kill -9 loses at most the record being written. A restart with the same run name
continues that file. ``~/save`` (std_srvs/Trigger) and shutdown write the
FeatureCollection ``<run_name>.geojson`` and ``<run_name>_summary.json``. ``markers``
(visualization_msgs/MarkerArray) shows the detections aggregated per grid cell in the
local ENU frame ``map_frame``, and, with foxglove_msgs installed, ``map/geojson``
(foxglove_msgs/GeoJSON, latched) the same cells as a FeatureCollection of polygons for
Foxglove's Map panel, republished with the markers when it changed; ``/diagnostics``
reports what was written and rejected.

A full disk or a read-only remount does not stop it: detections are held in memory (at
most ``max_held_records``), diagnostics say ERROR with the number held, and they are
appended in order as soon as the file can be written again; a record is never left half
written. So are they while ``map_dir``'s storage is gone (a USB stick pulled: ``map_dir``
missing and its nearest existing folder on another device), instead of making ``map_dir``
again on the file system under the mount point; they go to ``map_dir`` once it is back.
With ``storage_mount`` (the mount point ``map_dir`` must be on) the same holds while that
path is not mounted; not mounted at the start (a stick not mounted yet at boot), the run
itself waits for it: the detections taken meanwhile are queued as they came, and once it
is mounted the run starts as it does at once otherwise (the run's file on it continued)
and takes them in order. Nothing is made or written in the bare folder. A ``map_dir``
that cannot be written at start is refused with one line.
"""

from __future__ import annotations

from collections import deque, OrderedDict
from collections.abc import Callable
from pathlib import Path
import re
import sys
import time
from typing import Any

from rcl_interfaces.msg import ParameterDescriptor, ParameterType
import rclpy
from rclpy.event_handler import PublisherEventCallbacks
from rclpy.exceptions import ParameterException
from rclpy.executors import ExternalShutdownException
from rclpy.node import Node
from rclpy.parameter import Parameter
from rclpy.qos import DurabilityPolicy, QoSProfile, ReliabilityPolicy
from std_msgs.msg import String
from std_srvs.srv import Trigger
from visualization_msgs.msg import Marker, MarkerArray

from plant_disease_ros.core.map_file import RecordsFileBusy
from plant_disease_ros.core.map_gis import aggregator_geojson, CellCache
from plant_disease_ros.core.map_grid import CellAggregator, MapSummary
from plant_disease_ros.core.map_markers import cell_glyph, map_palette
from plant_disease_ros.core.map_run import (
    check_writable_directory,
    DEFAULT_MAX_HELD,
    default_run_name,
    EARLIER_RUNS,
    earlier_runs_tail,
    format_origin,
    MapRun,
    parse_detection,
    RecentFeatures,
    StorageGone,
)
from plant_disease_ros.core.sequence_gaps import SequenceGaps
from plant_disease_ros.ros.clock import steady_clock
from plant_disease_ros.ros.diagnostics import NodeDiagnostics, status_name, ThrottledWarnings
from plant_disease_ros.ros.markers import delete_all_marker, glyph_to_markers, SharedMarkerParts
from plant_disease_ros.ros.node_set import DEFAULT_NAMESPACE
from plant_disease_ros.ros.parameters import (
    accept_whole_numbers,
    float_range,
    integer_range,
    ParameterChecks,
)
from plant_disease_ros.ros.qos import (
    compact_message_info,
    DETECTIONS_HISTORY,
    message_key,
    publisher_gid,
    recorder_detections_qos,
    RECORDER_QUEUE_DEPTH,
    take_waiting,
)
from plant_disease_ros.ros.startup import (
    parameter_error_text,
    process_starting,
    release_failed_node,
    release_started_nodes,
    spin_to_shutdown,
    start_rclpy,
    STOP,
)
from plant_disease_ros.ros.typed_outputs import MapTypedOutput

NODE_NAME = 'disease_map_recorder'
DIAGNOSTICS_PERIOD_S = 1.0
# Records of the file remembered at start, to skip a detection from before the start
# that the file holds: the classifier's history and more.
RECENT_FEATURES = 1000
# Messages remembered to take each once from the two subscriptions (publisher and number).
DELIVERED_KEYS = 2000
# Detections remembered to count each once as received (see _take): the two copies of one
# lie at most both subscriptions' DDS queues apart (_take_waiting takes one queue, then the
# other; the memory queue keeps the order they were taken in, so its size does not matter).
RECEIVED_KEYS = 2 * RECORDER_QUEUE_DEPTH
# What became of a message (see _on_detection), or LIVE: its volatile copy came first.
RECORDED, RECOVERED, SKIPPED, REJECTED = 'recorded', 'recovered', 'skipped', 'rejected'
LIVE = 'live'
# Publishers of detections whose durability is remembered (restarts make new ones).
PUBLISHERS_REMEMBERED = 256
LOG_THROTTLE_S = 5.0
# markers carry only the cells changed since the last publication; the whole map goes out
# at the start, when a subscriber joins, and at most this often while the map changes.
FULL_MARKERS_PERIOD_S = 30.0
# How often held records are retried while the file cannot be written.
HELD_RETRY_PERIOD_S = 1.0
# While the run's file is read at the start, and while the messages queued meanwhile are
# recorded, the detections waiting in the subscriptions' DDS queues are taken (into the
# memory queue, max_held_records) after every this many records: a keep-last DDS queue
# (RECORDER_QUEUE_DEPTH) drops its oldest when full, and says nothing. Taking an empty
# queue costs microseconds; reading a record, tens of them.
TAKE_WAITING_EVERY = 64


# A frame id RViz and tf2 resolve: names of letters, digits, '_', '-' and '.', joined by
# single slashes (tf2 itself refuses only an empty id and a leading '/').
FRAME_ID = re.compile(r'[A-Za-z0-9_.-]+(/[A-Za-z0-9_.-]+)*')


def check_map_frame(frame: Any) -> str | None:
    """Return why ``frame`` is not a usable marker frame id, or ``None``."""
    if isinstance(frame, str) and FRAME_ID.fullmatch(frame):
        return None
    return (f'map_frame must be a tf2 frame id (letters, digits, _ - . and inner single /, '
            f'no leading /, no spaces), got {frame!r}')


CHECKS = ParameterChecks({'map_frame': check_map_frame})


class DiseaseMapRecorder(Node):
    """Append detections to the run's GeoJSON text sequence and publish cell markers."""

    def __init__(self, **kwargs: Any) -> None:
        """Declare parameters, continue the run's file and start the interfaces.

        Raises ValueError for a bad run name and InvalidParameterValueException for an
        invalid start value.
        """
        super().__init__(NODE_NAME, **kwargs)
        try:
            self._setup()
        except Exception:
            release_failed_node(self)
            raise

    def _setup(self) -> None:
        """Read the parameters, create the endpoints, start the run (or wait for its mount).

        While ``storage_mount`` is not mounted the run is not started (see
        :meth:`_start_run`): the detections taken meanwhile are queued as they came, and
        the run starts once it is mounted (see :meth:`_start_when_mounted`).
        """
        self.add_on_set_parameters_callback(CHECKS)
        accept_whole_numbers(self)
        self._declare_parameters()
        value = {name: self.get_parameter(name).value for name in (
            'map_dir', 'run_name', 'map_frame', 'use_datum', 'datum_latitude',
            'datum_longitude', 'datum_altitude', 'cell_size_m', 'marker_period_s',
            'max_held_records', 'storage_mount')}
        namespace = self.get_namespace()
        # Refuses a bad storage_mount (not absolute, map_dir not in it) with one line.
        self.run = MapRun(Path(value['map_dir']), value['run_name'] or default_run_name(
            '' if namespace == f'/{DEFAULT_NAMESPACE}' else namespace),
            value['max_held_records'], value['storage_mount'] or None)
        # storage_mount not mounted yet: map_dir is looked at once it is.
        not_mounted = self.run.check_storage() if self.run.storage_mount else ''
        # Refuse to start rather than run without a place to record to.
        unwritable = None if not_mounted else check_writable_directory(value['map_dir'])
        if unwritable is not None:
            raise ValueError(unwritable)
        origin = None
        if value['use_datum']:
            origin = (float(value['datum_latitude']), float(value['datum_longitude']),
                      float(value['datum_altitude']))
        self._origin_text = f'datum {format_origin(origin)}' if origin else 'the first fix'
        self.map_frame: str = value['map_frame']
        self._aggregator = CellAggregator(value['cell_size_m'], origin)
        self._summary = MapSummary(value['cell_size_m'], origin)
        self._palette = map_palette(())
        self._palette_labels: frozenset[str] = frozenset()
        self._marker_ids: dict[tuple[int, int], int] = {}
        self._cleared_markers = False
        # Each cell's markers, rebuilt only when a detection changed the cell; the array is
        # published only when one did (it is latched, so a late RViz still gets it). They
        # share the parts every marker in map_frame has (about a third of the memory).
        self._cell_markers: dict[tuple[int, int], tuple[Marker, Marker]] = {}
        self._marker_parts = SharedMarkerParts(self.map_frame)
        self._changed_cells: set[tuple[int, int]] = set()
        # Set by the publisher's matched event: a subscriber that replaced another within
        # a marker period leaves the count as it was, and still needs the whole map.
        self._markers_joined = False
        self._last_full_markers_s = time.monotonic()
        self._changed_since_full = False
        self._cache = CellCache()
        self._map_geojson = MapTypedOutput(self)
        self._last_save = ''
        self.warnings = ThrottledWarnings(self.get_logger(), LOG_THROTTLE_S)
        # The last records of the run's file and of the newest earlier runs: a detection
        # published before this recorder started (the classifier keeps its last ones for a
        # recorder that joins late) is recorded only when none holds it yet (filled by
        # _start_run).
        self._recent = RecentFeatures(RECENT_FEATURES * (1 + EARLIER_RUNS))
        # The last records of the file, while it is read at the start (None otherwise).
        self._file_tail: deque[dict] | None = None
        self.recovered_detections = 0    # published before the start, not in the file yet
        self.earlier_detections = 0      # published before the start, skipped
        # What became of each message taken (RECORDED, RECOVERED, SKIPPED, REJECTED), or LIVE
        # for one whose volatile copy came first; and which publishers are transient local.
        self._delivered: OrderedDict[object, str] = OrderedDict()
        # Keys of the last messages counted as received (a detection comes from both
        # subscriptions; see _take).
        self._received_keys: OrderedDict[object, None] = OrderedDict()
        self._publisher_durability: dict[bytes, bool] = {}
        self._files_replaced_seen = 0
        # Until the run has started (while it waits for storage_mount, while its file is
        # read, while what came meanwhile is recorded): the messages taken, as they came
        # (the callback to give each to, the message, its info, its key), and how many of
        # each key are queued (a detection comes from both subscriptions). None once
        # started.
        self._queued: deque[tuple[Callable[[String, Any], None], String, Any, object]] | \
            None = deque()
        self._queued_keys: dict[object, int] = {}
        # The message of each key in _queued_keys: its other copy is queued with it (the
        # same detection, kept once), and the info of each copy only in part.
        self._queued_messages: dict[object, String] = {}
        self._queued_gids: dict[bytes, dict] = {}
        # Keys of queued detections dropped (queue full): a later copy is dropped too.
        self._queue_dropped: OrderedDict[object, None] = OrderedDict()
        # The copies of dropped detections still in the queue, by key: skipped there.
        self._stale_copies: dict[object, int] = {}
        # While the queue is recorded: the copies still queued of detections whose first
        # copy was given already, by key. Their detection no longer counts as queued, and
        # dropping such a copy drops no detection.
        self._given_copies: dict[object, int] = {}
        # Two subscriptions, each message taken once (publisher GID and sequence number):
        # a volatile one matches every publisher (an older classifier, a bag recorded with
        # a volatile QoS) and gets only what is published after it matched; a
        # transient-local one also gets the last detections the classifier published
        # before the two matched (a restart of either). A transient-local publisher's
        # messages are recorded from that subscription alone, in the order published (see
        # _on_live_message). Made before the run is read (a day's run takes seconds, a
        # minute on a Pi), so that what comes meanwhile waits in their queues; taken once
        # the node spins. A message published after this time is live, also when the run
        # starts later (storage_mount mounted after the start).
        self._started_ns = time.time_ns()
        self._messages_taken = 0  # by the subscriptions, queued or not (see _take)
        # Detections each publisher numbered but this recorder never took (the DDS queue
        # overflowed, or the publisher's history replaced them before they were sent),
        # counted on the subscription that records them: the transient-local one for a
        # transient-local publisher, the volatile one for the others. Each delivers a
        # publisher's messages in order; the two together do not (one may be ahead).
        self._sequence_gaps = (SequenceGaps(), SequenceGaps())
        self.detections_lost = 0
        self._records_read = 0   # of the run's file at the start (see _continue_with)
        self._detection_subscriptions = [
            self.create_subscription(String, 'detections', self._take_transient_local,
                                     recorder_detections_qos(transient_local=True)),
            self.create_subscription(String, 'detections', self._take_volatile,
                                     recorder_detections_qos(transient_local=False))]

        self._markers_publisher = self.create_publisher(
            MarkerArray, 'markers',
            QoSProfile(depth=1, reliability=ReliabilityPolicy.RELIABLE,
                       durability=DurabilityPolicy.TRANSIENT_LOCAL),
            event_callbacks=PublisherEventCallbacks(matched=self._on_markers_matched))
        self.diagnostics = NodeDiagnostics(
            self, period_s=DIAGNOSTICS_PERIOD_S, name=status_name(self, 'map recorder'),
            hardware_id=str(self.run.records_path.absolute()), input_name='detection')
        self.diagnostics.set_value('file', str(self.run.records_path.absolute()))
        self.diagnostics.set_value('records_file_replaced', self.run.files_replaced)
        self.diagnostics.set_value('detections_recovered', 0)
        self.diagnostics.set_value('detections_from_before_skipped', 0)
        self.diagnostics.set_value('detections_lost', 0)
        self._save_service = self.create_service(Trigger, '~/save', self._on_save)
        self._marker_timer = self.create_timer(float(value['marker_period_s']),
                                               self.publish_markers, clock=steady_clock())
        # Also checks storage_mount (each second) while the run waits for it.
        self._held_timer = self.create_timer(HELD_RETRY_PERIOD_S, self.write_held,
                                             clock=steady_clock())
        self.add_post_set_parameters_callback(self._on_parameters_set)

        if self.run.storage_mount_link is not None:
            self.get_logger().info(
                f'storage_mount {self.run.storage_mount_link} resolves to '
                f'{self.run.storage_mount} (symbolic link): that is the mount point looked '
                'at')
        if not not_mounted:
            self._start_run()
            self._take_queue('came while the run was read')
            return
        # A second recorder of the run on this machine is refused now, not once mounted.
        self._claim_run()
        self._update_diagnostic_values()
        self.get_logger().error(
            f'{not_mounted}: the run starts once it is; until then nothing is read or '
            f'written in {self.run.records_path.parent}, and the detections '
            f"{self._kept_text('queued', 'and recorded then')}")
        self.get_logger().info(
            f'will record to {self.run.records_path} once {self.run.storage_mount} is '
            f'mounted, cells of {self._aggregator.cell_size_m:g} m in frame '
            f'{self.map_frame!r} from {self._origin_text}')

    def _start_run(self) -> None:
        """Start the run: continue its file and claim it; log what was found.

        Called by :meth:`_setup`, or once ``storage_mount`` is mounted when it was not at
        the start. Raises StorageGone (reading nothing) when it is not mounted after all,
        ValueError when another process holds the run.
        """
        self._recent = RecentFeatures(RECENT_FEATURES * (1 + EARLIER_RUNS))
        # The classifier's last detections that an earlier run holds are that run's (a
        # respawn after midnight starts a new run under the default name, and may be
        # respawned again); the others were published while no recorder ran.
        for feature in earlier_runs_tail(self.run.records_path.parent, self.run.name,
                                         RECENT_FEATURES):
            self._recent.add(feature)
        self._file_tail = deque(maxlen=RECENT_FEATURES)
        try:
            self.run.continue_existing(self._continue_with)
            for feature in self._file_tail:
                self._recent.add(feature)
        finally:
            self._file_tail = None
        self._claim_run()
        if self.run.write_error:
            # A full disk under a file a kill cut mid-record: recorded all the same, the
            # detections held in memory until the disk takes them.
            self.get_logger().error(
                f'cannot write {self.run.records_path}: {self.run.write_error}; detections '
                f"{self._kept_text('held', 'until it can be')}")
        removed = self.run.remove_stale_temporaries()
        if removed:
            self.get_logger().info(
                f'removed {len(removed)} temporary file(s) that a save killed midway left '
                f'in {self.run.records_path.parent}')
        if self.run.records_skipped_at_start:
            self.get_logger().warning(
                f'{self.run.records_path}: {self.run.records_skipped_at_start} unreadable '
                'record(s) from an earlier session skipped (a kill mid-write leaves one)')
        self._update_diagnostic_values()
        self.get_logger().info(
            f'recording to {self.run.records_path} ({self.run.records_at_start} record(s) '
            f'continued), cells of {self._aggregator.cell_size_m:g} m in frame '
            f'{self.map_frame!r} from {self._origin_text}')

    def _claim_run(self) -> None:
        """Claim the run (see ``MapRun.claim``); ValueError when another process holds it."""
        try:
            self.run.claim()
        except RecordsFileBusy as error:
            raise ValueError(f'cannot record to {self.run.records_path}: {error.strerror}') \
                from None

    @property
    def started(self) -> bool:
        """Return whether the run started (False while it waits for ``storage_mount``)."""
        return self._queued is None

    def _start_when_mounted(self) -> bool:
        """Start the run if ``storage_mount`` is mounted now; return whether it started.

        Then the messages queued while it was not are given to the subscriptions'
        callbacks in the order they came: the classifier's history is judged against the
        run's file and the earlier runs now read, and the map's origin is the run's first
        record. ValueError (the run is held by another process) or an error reading the
        run ends the recorder as it does at the start.
        """
        if self._queued is None:
            return True
        if self.run.check_storage():
            self._warn_held()
            self._update_diagnostic_values()
            return False
        try:
            self._start_run()
        except StorageGone:  # unmounted again meanwhile: nothing was read
            return False
        # Any other error ends the recorder as at the start; the queue is not recorded,
        # which the exit says.
        self.get_logger().info(
            f'storage_mount {self.run.storage_mount} is mounted: run started, taking the '
            f'{len(self._queued_keys)} detection(s) queued meanwhile')
        self._take_queue('')
        return True

    def _kept_text(self, kept: str, until: str) -> str:
        """Say what becomes of the detections that cannot be written now: ``kept`` in
        memory up to ``max_held_records`` ``until`` ..., or, with 0, dropped."""
        if not self.run.max_held:
            return 'are dropped (max_held_records 0)'
        return f'are {kept} in memory (at most {self.run.max_held}) {until}'

    def _take_queue(self, when: str) -> None:
        """Give the queued messages to their callbacks in the order they came; start.

        What the subscriptions got meanwhile is queued behind them (see
        :meth:`_take_waiting`), so the order stays the publishers' and no DDS queue fills
        while a long queue is recorded (each record is fsynced). ``when``: what the log
        line says of detections that had to be queued ('' for none).
        """
        queue = self._queued
        assert queue is not None
        detections = len(self._queued_keys)
        given = 0
        while queue:
            callback, message, info, key = queue.popleft()
            if self._skip_stale_copy(key):
                continue
            if not self._skip_given_copy(key):
                copies = self._queued_keys.pop(key, 1) - 1
                self._queued_messages.pop(key, None)
                if copies > 0:
                    self._given_copies[key] = copies
            callback(message, info)
            given += 1
            if given % TAKE_WAITING_EVERY == 0:
                self._take_waiting()
        self._queued = None
        self._queued_keys.clear()
        self._queued_messages.clear()
        self._queued_gids.clear()
        self._queue_dropped.clear()
        self._stale_copies.clear()
        self._given_copies.clear()
        if when and detections:
            self.get_logger().info(
                f'{detections} detection(s) {when} ({self.run.records_at_start} '
                'record(s)): recorded now, in the order each publisher sent them')
        self._update_diagnostic_values()

    def _take_waiting(self) -> None:
        """Take what waits in the detection subscriptions' DDS queues into the memory queue.

        Called while the run is read and its queue recorded (nothing spins then): the
        memory queue holds up to ``max_held_records`` and counts what it drops, where a
        DDS queue would drop silently.
        """
        takes = (self._take_transient_local, self._take_volatile)
        for subscription, take in zip(self._detection_subscriptions, takes, strict=True):
            for message, info in take_waiting(subscription, RECORDER_QUEUE_DEPTH):
                take(message, info)

    def _take_transient_local(self, message: String, info: Any) -> None:
        """Take a message of the transient-local subscription (queued before the start)."""
        self._count_gap(0, info)
        self._take(self._on_detection_message, message, info)

    def _take_volatile(self, message: String, info: Any) -> None:
        """Take a message of the volatile subscription (queued before the start)."""
        # A volatile publisher (as the graph says): recorded from this subscription.
        gid = publisher_gid(info)
        if (gid is not None and not self._transient_local_publisher(info)
                and self._publisher_durability.get(gid) is False):
            self._count_gap(1, info)
        self._take(self._on_live_message, message, info)

    def _count_gap(self, subscription: int, info: Any) -> None:
        """Note a message's sequence number; count the ones it shows were never taken."""
        key = message_key(info)
        if key is not None:
            lost = self._sequence_gaps[subscription].add(*key)
            if lost:
                self._count_lost(lost)

    def _take(self, callback: Callable[[String, Any], None], message: String,
              info: Any) -> None:
        """Count a message taken; give it to ``callback``, or queue it before the start.

        A detection is counted received here, when its first copy is taken: also one
        queued while the run waits for ``storage_mount`` (and dropped there from a full
        queue), and once only, not again when the queue is recorded.
        """
        self._messages_taken += 1
        key = self._message_key(message, info)
        if key not in self._received_keys:
            self._received_keys[key] = None
            if len(self._received_keys) > RECEIVED_KEYS:
                self._received_keys.popitem(last=False)
            self.diagnostics.count_received()
        if self._queued is None:
            callback(message, info)
        else:
            self._queue(callback, message, info)

    def _count_lost(self, change: int) -> None:
        """Count detections lost before this recorder took them (a late one: -1); warn."""
        self.detections_lost = max(0, self.detections_lost + change)
        self.diagnostics.set_value('detections_lost', self.detections_lost)
        # For the rest of the session: the run's map lacks them.
        self.diagnostics.warning = '' if not self.detections_lost else (
            f'{self.detections_lost} detection(s) never reached this recorder (gaps in their '
            "publisher's sequence numbers): they are not in the map")
        if change > 0:
            self.warnings.warning(
                'lost', f'{change} detection(s) never reached this recorder (a gap in their '
                f"publisher's sequence numbers; {self.detections_lost} in all): its DDS "
                f'queue of {RECORDER_QUEUE_DEPTH} overflowed, or the publisher replaced them '
                'before they were sent; they are not in the map')

    def _queue(self, callback: Callable[[String, Any], None], message: String,
               info: Any) -> None:
        """Keep a message taken before the run started, as it came, for ``callback``.

        At most ``max_held_records`` detections (both copies of one count once), or, while
        the run is read (storage there), as many as the DDS queue would have kept if that
        is more: beyond it the oldest is dropped (each of its copies), counted in
        ``records_dropped``.
        """
        assert self._queued is not None
        key = self._message_key(message, info)
        if key in self._queue_dropped:
            return  # the other copy of a detection dropped
        info = compact_message_info(info, self._queued_gids)
        if key in self._given_copies:   # the other copy of one being recorded
            self._queued.append((callback, message, info, key))
            self._given_copies[key] += 1
            return
        message = self._queued_messages.setdefault(key, message)
        self._queued.append((callback, message, info, key))
        self._queued_keys[key] = self._queued_keys.get(key, 0) + 1
        limit = self.run.max_held
        if not self.run.storage_gone:
            limit = max(limit, self._detection_subscriptions[0].qos_profile.depth)
        dropped = False
        while len(self._queued_keys) > limit:
            self._drop_oldest_queued()
            dropped = True
        if dropped and self.run.storage_gone:
            self._warn_held()
        elif dropped:
            self.warnings.warning(
                'queue_full', f'more than {limit} detections (max_held_records) came while '
                f'the run was read: {self.run.records_dropped} dropped, the oldest first')
        self._update_diagnostic_values()

    def _drop_oldest_queued(self) -> None:
        """Drop the oldest queued detection, each copy of it; count it as dropped.

        A later copy of it stays in the queue, marked in ``_stale_copies``, and is skipped
        where it lies (here, or when the queue is taken): no pass over the whole queue.
        """
        assert self._queued is not None
        while True:
            _, _, _, key = self._queued.popleft()
            if not self._skip_stale_copy(key) and not self._skip_given_copy(key):
                break
        copies = self._queued_keys.pop(key) - 1
        self._queued_messages.pop(key, None)
        if copies:
            self._stale_copies[key] = copies
        self._queue_dropped[key] = None
        if len(self._queue_dropped) > DELIVERED_KEYS:
            self._queue_dropped.popitem(last=False)
        self.run.records_dropped += 1

    def _skip_given_copy(self, key: object) -> bool:
        """Return whether a queued message is a later copy of a detection given already.

        Counts that copy off (see ``_given_copies``).
        """
        return _count_off(self._given_copies, key)

    def _skip_stale_copy(self, key: object) -> bool:
        """Return whether a queued message is a copy of a dropped detection (forget it)."""
        return _count_off(self._stale_copies, key)

    def _declare_parameters(self) -> None:
        """Declare every parameter with its descriptor."""
        double = ParameterType.PARAMETER_DOUBLE
        self.declare_parameter('map_dir', 'disease_maps', ParameterDescriptor(
            description='directory of the run files (created if missing)', read_only=True))
        self.declare_parameter('run_name', '', ParameterDescriptor(
            description="file name stem of the run ('' = today's date YYYY-MM-DD, then "
                        "'_' and the namespace when it is not /plant_disease: "
                        'YYYY-MM-DD_left); an existing run of that name is continued',
            read_only=True))
        self.declare_parameter('map_frame', 'map', ParameterDescriptor(
            description='frame of the markers: local ENU (x east, y north, z up, metres) '
                        'at the origin',
            additional_constraints='non-empty, no leading /'))
        self.declare_parameter('use_datum', False, ParameterDescriptor(
            description='true: the ENU origin is the datum_* parameters; false: the first '
                        'located detection of the run', read_only=True))
        self.declare_parameter('datum_latitude', 0.0, ParameterDescriptor(
            description='ENU origin latitude, WGS84 degrees', type=double, read_only=True,
            floating_point_range=float_range(-90.0, 90.0)))
        self.declare_parameter('datum_longitude', 0.0, ParameterDescriptor(
            description='ENU origin longitude, WGS84 degrees', type=double, read_only=True,
            floating_point_range=float_range(-180.0, 180.0)))
        self.declare_parameter('datum_altitude', 0.0, ParameterDescriptor(
            description='ENU origin altitude above the WGS84 ellipsoid, metres', type=double,
            read_only=True, floating_point_range=float_range(-1e5, 1e5)))
        self.declare_parameter('cell_size_m', 2.0, ParameterDescriptor(
            description='edge of the square grid cells detections are aggregated in, metres',
            type=double, read_only=True, floating_point_range=float_range(0.1, 1000.0)))
        self.declare_parameter('marker_period_s', 1.0, ParameterDescriptor(
            description='shortest time between two markers publications (made when a '
                        'detection changed a cell), seconds', type=double,
            floating_point_range=float_range(0.05, 60.0)))
        self.declare_parameter('max_held_records', DEFAULT_MAX_HELD, ParameterDescriptor(
            description='detections held in memory while the records file cannot be '
                        'written (full disk, read-only remount); beyond it the oldest are '
                        'dropped and counted', read_only=True,
            integer_range=integer_range(0, 1_000_000)))
        self.declare_parameter('storage_mount', '', ParameterDescriptor(
            description="mount point map_dir must be on ('' = none), e.g. a USB stick's "
                        '/media/field: nothing is written in the bare folder while it is '
                        'not mounted; not mounted at the start, the run starts once it is '
                        '(detections queued meanwhile); pulled later, detections are held '
                        'in memory as for a full disk and written once it is back',
            additional_constraints='absolute path; map_dir in it', read_only=True))

    def _on_parameters_set(self, parameters: list[Parameter]) -> None:
        """Apply accepted runtime changes."""
        for parameter in parameters:
            if parameter.name == 'map_frame':
                self.map_frame = parameter.value
                self._marker_parts = SharedMarkerParts(self.map_frame)
                # Every cell's markers name the frame: all are built again and published.
                self._changed_cells.update(self._cell_markers)
            elif (parameter.name == 'marker_period_s'
                  # As rclpy turns a period into whole nanoseconds (truncated).
                  and int(float(parameter.value) * 1e9) != self._marker_timer.timer_period_ns):
                # Only a new period makes a new timer: setting the same value again and
                # again would otherwise hold the markers back for good.
                self.destroy_timer(self._marker_timer)
                self._marker_timer = self.create_timer(
                    float(parameter.value), self.publish_markers, clock=steady_clock())

    def _continue_with(self, feature: dict) -> None:
        """Take a record of an earlier session of this run into the map."""
        if self._file_tail is not None:
            self._file_tail.append(feature)
        self._add_to_map(feature)
        self._records_read += 1
        if self._records_read % TAKE_WAITING_EVERY == 0:
            self._take_waiting()

    def _on_live_message(self, message: String, info: Any) -> None:
        """Take a message of the volatile subscription: published after it matched.

        A transient-local publisher's messages are recorded from the transient-local
        subscription alone, so that its history and its new detections reach the file in
        the order it published them; the volatile copy only says that the message is live
        (whatever the clocks say) and corrects what its other copy was taken for.
        """
        if not self._transient_local_publisher(info):
            self._on_detection_message(message, info, live=True)
            return
        key = self._message_key(message, info)
        state = self._delivered.get(key)
        if state is None:
            self._remember(key, LIVE)
        elif state == SKIPPED:
            # Taken for history by its timestamp (a clock stepped back): record it now.
            self._record_skipped(key, message)
        elif state == RECOVERED:
            self._delivered[key] = RECORDED
            self.recovered_detections -= 1
            self.diagnostics.set_value('detections_recovered', self.recovered_detections)

    def _on_detection_message(self, message: String, info: Any, live: bool = False) -> None:
        """Take a message of either subscription once, then record it.

        A copy from the volatile subscription (``live``, or marked so before its other copy
        came) was published after this recorder started: that one never gets history. A
        copy from the transient-local one alone is judged by its source timestamp against
        this recorder's start.
        """
        key = self._message_key(message, info)
        state = self._delivered.get(key)
        if state == LIVE and not live:
            self._delivered[key] = self._on_detection(message, before_start=False)
            return
        if state is not None:
            if state == SKIPPED and live:
                self._record_skipped(key, message)
            return
        source_ns = info.get('source_timestamp') if isinstance(info, dict) else None
        before_start = (not live and isinstance(source_ns, int)
                        and 0 < source_ns < self._started_ns)
        self._remember(key, self._on_detection(message, before_start))

    @staticmethod
    def _message_key(message: String, info: Any) -> object:
        """Return what tells a message from any other: publisher GID and number, or text."""
        key = message_key(info)
        return message.data if key is None else key   # an RMW without sequence numbers

    def _remember(self, key: object, state: str) -> None:
        """Remember what became of message ``key`` (the oldest are forgotten)."""
        self._delivered[key] = state
        if len(self._delivered) > DELIVERED_KEYS:
            self._delivered.popitem(last=False)

    def _transient_local_publisher(self, info: Any) -> bool:
        """Return whether the message's publisher offers transient local (from the graph).

        False when the RMW gives no publisher GID or the graph does not know it yet: the
        message is then recorded from whichever copy comes first.
        """
        gid = publisher_gid(info)
        if gid is None:
            return False
        known = self._publisher_durability.get(gid)
        if known is None:
            if len(self._publisher_durability) > PUBLISHERS_REMEMBERED:
                self._publisher_durability.clear()
            topic = self._detection_subscriptions[0].topic_name
            for endpoint in self.get_publishers_info_by_topic(topic):
                self._publisher_durability[bytes(endpoint.endpoint_gid)] = (
                    endpoint.qos_profile.durability == DurabilityPolicy.TRANSIENT_LOCAL)
            known = self._publisher_durability.get(gid)
        return bool(known)

    def _record_skipped(self, key: object, message: String) -> None:
        """Record a detection skipped as one from before the start: it was live."""
        self._delivered[key] = RECORDED
        self.earlier_detections -= 1
        self.diagnostics.set_value('detections_from_before_skipped', self.earlier_detections)
        self.diagnostics.uncount_dropped()
        self._on_detection(message)

    def _add_to_map(self, feature: dict) -> None:
        """Add one detection to the cells and the summary; log when it fixes the origin."""
        had_origin = self._aggregator.origin is not None
        cell = self._aggregator.add(feature)
        if cell is not None:
            self._map_geojson.changed = True
            self._changed_cells.add(cell.key)
        self._summary.add(feature)
        if not had_origin and self._aggregator.origin is not None:
            self.get_logger().info('ENU origin: first located detection at '
                                   + format_origin(self._aggregator.origin))

    @property
    def records_path(self) -> Path:
        """Return the run's records file."""
        return self.run.records_path

    @property
    def records_at_start(self) -> int:
        """Return the number of records continued from earlier sessions of the run."""
        return self.run.records_at_start

    @property
    def records_written(self) -> int:
        """Return the number of records this session appended."""
        return self.run.records_written

    @property
    def rejected(self) -> dict[str, int]:
        """Return the rejected messages by reason."""
        return {reason: count for (_, reason), count in self.diagnostics.rejected.items()}

    def _update_diagnostic_values(self) -> None:
        """Publish the run's counters with the next diagnostics status."""
        self.diagnostics.set_value('records_written', self.run.records_written)
        self.diagnostics.set_value('records_in_file', self.run.records_in_file)
        self.diagnostics.set_value('records_held', self.records_held)
        self.diagnostics.set_value('records_dropped', self.run.records_dropped)
        # Read when the run starts (0 while it waits for storage_mount).
        self.diagnostics.set_value('records_continued', self.run.records_at_start)
        self.diagnostics.set_value('records_skipped_at_start',
                                   self.run.records_skipped_at_start)
        if self.run.write_error:
            dropped = (f', {self.run.records_dropped} dropped (queue full)'
                       if self.run.records_dropped else '')
            if self.run.storage_gone:
                self.diagnostics.error = (
                    f'{self.run.storage_gone}; holding {self.records_held} '
                    f'detection(s) in memory{dropped}')
            else:
                self.diagnostics.error = (
                    f'cannot write {self.run.records_path}: {self.run.write_error}; '
                    f'{self.run.records_held} detection(s) held in memory{dropped}')
        else:
            self.diagnostics.error = ''
        self.diagnostics.set_value('located', self._summary.located)
        self.diagnostics.set_value('unlocated', self._summary.detections - self._summary.located)
        self.diagnostics.set_value('cells', len(self._aggregator))
        self.diagnostics.set_value('last_save', self._last_save)

    def _on_detection(self, message: String, before_start: bool = False) -> str:
        """Record one detection; count and skip a message that is not a usable Feature.

        ``before_start``: published before this recorder started (delivered as the
        classifier's history). Recorded only when the run's file does not hold it (of a new
        run: nor the newest earlier runs' files, whose detections they are).
        Return what became of it: RECORDED, RECOVERED (from before the start), SKIPPED or
        REJECTED. Counted as received when it was taken (see :meth:`_take`).
        """
        start = time.perf_counter()
        feature, reason, detail = parse_detection(message.data)
        if feature is None:
            self.diagnostics.count_rejected(reason)
            self.warnings.warning(reason, f'detection rejected ({reason}): {detail}')
            return REJECTED
        if before_start:
            if feature in self._recent:
                self.earlier_detections += 1
                self.diagnostics.set_value('detections_from_before_skipped',
                                           self.earlier_detections)
                self.diagnostics.count_dropped()
                return SKIPPED
        held_before = self.run.records_held
        try:
            written = self.run.record(feature)
        except ValueError as error:
            # Cannot be encoded: holding it would not help.
            self.diagnostics.count_rejected('write_failed')
            self.warnings.warning('write_failed',
                                  f'cannot append to {self.run.records_path}: {error}')
            return REJECTED
        # Not written, it is held for the file, unless none may be (max_held_records 0):
        # then it is dropped, counted in records_dropped, neither processed nor recovered.
        kept = written or self.run.max_held > 0
        if before_start and kept:
            # Counted once it is recorded (or held for the file): a rejection is not.
            self.recovered_detections += 1
            self.diagnostics.set_value('detections_recovered', self.recovered_detections)
        self._note_replaced_file()
        if not written:
            self._warn_held()
        elif held_before:
            # The file took the held ones before this detection, ahead of the retry timer.
            self._log_writable_again(held_before)
        self._add_to_map(feature)
        if kept:
            # The latency of a record is mostly its fsync: what the disk costs per detection.
            self.diagnostics.count_processed((time.perf_counter() - start) * 1e3)
        self._update_diagnostic_values()
        # A dropped one is RECORDED: taken, with nothing for its other copy to correct.
        return RECOVERED if before_start and kept else RECORDED

    def _warn_held(self) -> None:
        """Log (throttled) that the records file cannot be written and what is held."""
        if self.run.storage_gone:
            self.warnings.warning(
                'storage_gone', f'{self.run.storage_gone}; holding {self.records_held} '
                f'detection(s) in memory until it is there, {self.run.records_dropped} '
                'dropped (queue full)')
            return
        self.warnings.warning(
            'held', f'cannot append to {self.run.records_path}: {self.run.write_error}; '
            f'{self.run.records_held} detection(s) held in memory, '
            f'{self.run.records_dropped} dropped (queue full)')

    def _note_replaced_file(self) -> None:
        """Log (once each) that the records file was removed or replaced under the writer."""
        if self.run.files_replaced > self._files_replaced_seen:
            self._files_replaced_seen = self.run.files_replaced
            self.get_logger().error(self.run.replaced_note)
            self.diagnostics.set_value('records_file_replaced', self.run.files_replaced)

    def write_held(self) -> None:
        """Append the detections held while the file could not be written, if it can be now.

        With none held and a ``storage_mount``, check that it is mounted: ERROR (and a
        throttled log) while it is not, also before any detection came; a run that waits
        for it is started once it is (see :meth:`_start_when_mounted`). With none held
        after a failed write (``max_held_records`` 0), check whether the file can be
        written again, so that the ERROR ends with the fault, not with the next detection.
        """
        if not self.started:
            self._start_when_mounted()
            return
        if not self.run.records_held:
            if self.run.storage_mount is not None:
                self._check_storage_mount()
            if self.run.write_error:
                self._probe_writable()
            return
        written = self.run.write_held()
        self._note_replaced_file()
        if self.run.storage_gone:
            # No detection may come while the storage is gone: the log says it anyway.
            self._warn_held()
        if written and not self.run.records_held:
            self._log_writable_again(written)
        self._update_diagnostic_values()

    def _probe_writable(self) -> None:
        """With an error and nothing held (``max_held_records`` 0), clear it once writable."""
        if self.run.probe():
            self.get_logger().info(f'{self.run.records_path} writable again')
        self._note_replaced_file()
        self._update_diagnostic_values()

    def _check_storage_mount(self) -> None:
        """Say whether ``storage_mount`` is mounted now, while no detection is held."""
        was_gone = self.run.storage_gone
        if self.run.check_storage():
            self._warn_held()
        elif was_gone:
            self.get_logger().info(
                f'storage_mount {self.run.storage_mount} is mounted: recording to '
                f'{self.run.records_path} ({self.run.records_at_start} record(s) continued)')
        self._update_diagnostic_values()

    def _log_writable_again(self, written: int) -> None:
        """Log that the held detections are in the file now, ``written`` of them."""
        dropped = self.run.records_dropped
        self.get_logger().info(
            f'{self.run.records_path} writable again: appended {written} held '
            f'detection(s)' + (f'; {dropped} were dropped (queue full)' if dropped else ''))

    @property
    def records_held(self) -> int:
        """Return the detections waiting in memory for the records file (or the run)."""
        return self.run.records_held + len(self._queued_keys)

    @property
    def records_dropped(self) -> int:
        """Return the detections dropped because the memory queue was full."""
        return self.run.records_dropped

    def save(self) -> tuple[bool, str]:
        """Write the FeatureCollection and the summary of the run; return (ok, message).

        A run that waits for ``storage_mount`` is started first if it is mounted now, so
        the summary holds what the file and the queued detections hold.
        """
        if not self._start_when_mounted():
            message = (f'save failed: {self.run.storage_gone}: the run starts once it is; '
                       f'{self.records_held} detection(s) queued in memory')
            self.get_logger().error(message)
            return False, message
        try:
            count = self.run.save({
                'rejected_this_session': dict(sorted(self.rejected.items())),
                'map_frame': self.map_frame,
                **self._summary.as_dict(),
            })
        except (OSError, ValueError) as error:
            message = f'save failed: {error}'
            self.get_logger().error(message)
            return False, message
        message = (f'wrote {self.run.collection_path} ({count} feature(s)) and '
                   f'{self.run.summary_path}')
        self._last_save = message
        self.diagnostics.set_value('last_save', message)
        self.get_logger().info(message)
        return True, message

    def _on_save(self, request: Trigger.Request,
                 response: Trigger.Response) -> Trigger.Response:
        """Answer ``~/save``."""
        response.success, response.message = self.save()
        return response

    def build_markers(self, full: bool = True) -> MarkerArray:
        """Return a shape and a caption marker per cell, ids stable for the node's life.

        Only the cells changed since the last call are built again; the others keep their
        markers. ``full``: every cell's markers; otherwise only the changed cells' (a
        viewer keeps the others: a marker replaces the one of the same namespace and id).
        """
        array = MarkerArray()
        if not self._cleared_markers:
            array.markers.append(delete_all_marker())
            self._cleared_markers = True
        changed, self._changed_cells = self._changed_cells, set()
        for key in changed:
            cell = self._aggregator.cell(key)
            if cell is None:
                continue
            marker_id = self._marker_ids.setdefault(key, len(self._marker_ids))
            glyph = cell_glyph(cell, self._aggregator.cell_size_m, self._palette)
            self._cell_markers[key] = glyph_to_markers(glyph, marker_id, self._marker_parts)
            if not full:
                array.markers.extend(self._cell_markers[key])
        if full:
            for key in self._marker_ids:
                array.markers.extend(self._cell_markers[key])
        return array

    def _on_markers_matched(self, info: Any) -> None:
        """Note a subscriber that matched ``markers``: it gets the whole map next."""
        if info.total_count_change > 0:
            self._markers_joined = True

    def _refresh_palette(self) -> bool:
        """Give the palette the map's labels when one is new; return whether it changed.

        Colours go to the labels in alphabetical order (``map_palette``), as the PNG map's
        legend has them, so a label keeps its colour across a restart of the recorder;
        a new label can move others', and then every cell is drawn again.
        """
        labels = self._palette_labels.union(*(
            cell.label_counts for key in self._changed_cells
            if (cell := self._aggregator.cell(key)) is not None))
        if labels == self._palette_labels:
            return False
        self._palette_labels = frozenset(labels)
        self._palette = map_palette(labels)
        self._changed_cells.update(self._cell_markers)
        return True

    def publish_markers(self) -> None:
        """Publish the changed cells' markers and the map's GeoJSON, each when it changed.

        A large map's whole array takes longer to serialise than a marker period, so
        ``markers`` carries the changed cells only, and the whole map (latched) at the
        start, when a new subscriber has matched (a late RViz, which first gets the last
        latched array) and every FULL_MARKERS_PERIOD_S while the map changes. The first
        publication also clears what an earlier recorder left in the viewers. The GeoJSON
        is always whole; its cells' corners are computed once.
        """
        now = time.monotonic()
        joined, self._markers_joined = self._markers_joined, False
        recoloured = self._refresh_palette()
        periodic = (self._changed_since_full
                    and now - self._last_full_markers_s >= FULL_MARKERS_PERIOD_S)
        if not self._cleared_markers or joined or periodic or recoloured:
            self._markers_publisher.publish(self.build_markers(full=True))
            self._last_full_markers_s = now
            self._changed_since_full = False
        elif self._changed_cells:
            self._markers_publisher.publish(self.build_markers(full=False))
            self._changed_since_full = True
        self._map_geojson.publish_if_changed(
            lambda: aggregator_geojson(self._aggregator, self._cache))

    def inputs_still_published(self) -> list[str]:
        """Name the detections topic while a publisher is on it (see ``TakesLastMessages``).

        Asked to stop, the recorder takes detections until the classifiers have gone: a
        classifier that stops at the same Ctrl-C first publishes the detections still
        waiting for a GPS fix.
        """
        topic = self._detection_subscriptions[0].topic_name
        return [topic] if self.count_publishers(topic) > 0 else []

    def messages_taken(self) -> int:
        """Return a count that grows with each detection message taken (``TakesLastMessages``)."""
        return self._messages_taken

    def destroy_node(self) -> None:
        """Close the records file, destroy the diagnostics, then the node."""
        if getattr(self, 'run', None) is not None:
            self.run.close()
        if getattr(self, 'diagnostics', None) is not None:
            self.diagnostics.destroy()
        super().destroy_node()


def _count_off(copies: dict[object, int], key: object) -> bool:
    """Count one copy of ``key`` off ``copies`` (forgotten at none left); False if none."""
    left = copies.get(key)
    if left is None:
        return False
    if left > 1:
        copies[key] = left - 1
    else:
        del copies[key]
    return True


def _finish(node: DiseaseMapRecorder) -> None:
    """Destroy the node, save the collection and the summary, say what could not be written.

    Destroyed first: the node's logger then no longer publishes to a rosout whose context
    may be shut down already (an external shutdown). Saving needs only the files.
    """
    if not node.started:
        try:  # mounted since the last check (at most a second ago): the queue is recorded
            node._start_when_mounted()
        except Exception as error:
            print(f'{NODE_NAME}: error: the run could not start: {error}', file=sys.stderr)
    node.destroy_node()
    if not node.started:
        print(f'{NODE_NAME}: error: storage_mount {node.run.storage_mount} was not mounted: '
              f'the run was never started; {node.records_held} detection(s) queued in memory '
              f'were not recorded to {node.records_path}, {node.records_dropped} dropped '
              f'(queue full); the classifier keeps its last {DETECTIONS_HISTORY} for a '
              'later start', file=sys.stderr)
        return
    node.save()
    if node.records_held or node.records_dropped:
        print(f'{NODE_NAME}: error: {node.records_held} detection(s) still held in '
              f'memory were not written to {node.records_path}, '
              f'{node.records_dropped} dropped (queue full)', file=sys.stderr)


def main(args: list[str] | None = None) -> int:
    """Run the recorder until shutdown, then save the collection and the summary."""
    started = start_rclpy(NODE_NAME, args)
    if started is not None:
        return started
    node: DiseaseMapRecorder | None = None
    status = 0
    try:
        with process_starting():
            node = DiseaseMapRecorder()
        spin_to_shutdown(node, NODE_NAME)
    except (KeyboardInterrupt, ExternalShutdownException):
        pass  # while the node was built
    except (ValueError, OSError, ParameterException) as error:
        # A bad parameter or an unwritable map_dir: one line, not a traceback.
        print(f'{NODE_NAME}: error: {parameter_error_text(error)}', file=sys.stderr)
        status = 1
    except Exception:
        # An external shutdown while the node was built shuts the context down under it
        # (see run_nodes).
        if rclpy.ok():
            raise
    finally:
        if node is not None:
            try:
                _finish(node)
            except KeyboardInterrupt:
                status = STOP.cut_short(
                    NODE_NAME, f'{node.run.collection_path} and the summary may not be '
                    f'saved; every detection written is in {node.records_path}')
        # A recorder that never started is released here, after its error line.
        release_started_nodes()
    return status


if __name__ == '__main__':
    sys.exit(main())
