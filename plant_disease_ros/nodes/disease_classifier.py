"""disease_classifier: RGB frames in; label, confidence, JSON and GPS-tagged detections out.

Subscribes ``frames`` (sensor_msgs/Image) and ``fix`` (sensor_msgs/NavSatFix). For each
frame it publishes ``label`` (std_msgs/String: 'no_leaf' without a crop leaf in view,
'unknown' below ``score_threshold``; see ``core.outcome``),
``confidence`` (std_msgs/Float32, the score of that label: 1.0 for a frame the vegetation
gate turned away), ``classification`` (std_msgs/String, one JSON object) and, while they
have subscribers, ``image_annotated`` and ``explanation`` (Image). Each
leaf frame whose top-1 score reaches ``score_threshold`` also gives a GeoJSON Feature on
``detections`` tagged with the position at the image's stamp, and that position on
``detections/fix`` (NavSatFix) when there is one. Every output carries the source
image's header. Beside the JSON, when vision_msgs and foxglove_msgs are installed:
``results`` (vision_msgs/Classification), ``label_info`` (vision_msgs/LabelInfo, latched)
and ``detections/geojson`` (foxglove_msgs/GeoJSON); see ``ros.typed_outputs``.

Position tagging never uses a fix from after the image before that fix has arrived: a
detection whose later fix has not come yet waits up to ``fix_wait_s`` (see
``core.fix_wait``), then takes the nearest fix within ``max_fix_age_s`` (carried on
along the robot's motion: 'extrapolated'; as it is: 'nearest'), or goes out with null
geometry and ``fix_status`` 'stale' or 'none'.

Every ``motion_blur_check_every``-th frame that shows a leaf (not ``no_leaf``) gets a
blind estimate of its motion blur (``core.motion_blur``); ``/diagnostics`` shows the
median of the recent estimates and turns WARN, with a throttled log line, while it is
above ``motion_blur_warn_percent`` of the frame side: the exposure is too long for the
speed.

When the stamps of frames or fixes jump back by more than ``time_jump_threshold_s`` (a bag
played in a loop, a restarted simulator, a GNSS time correction), the jump is logged once
and counted in diagnostics, the waiting detections are settled with the fixes of their
own timeline, and those fixes are forgotten: no frame is located with a fix of the
previous loop. A jump whose own stream then goes on from where it was (a stray stamp) is
undone: the fixes come back and the stray frame goes without a position. A stamp that far
ahead of every stream is held undecided until its stream's next stamp: one that goes on
from it makes it a step forward (used as any), one that goes on from before it makes it
a stray stamp (the frame goes without a position, the fix is dropped; no jump back).

A frame without any colour (channels equal within a few levels: a grey camera's, or a
colour camera's JPEG of grey gravel, which decodes as grey) is labelled ``no_leaf`` by the
vegetation gate with the reason 'no colour' and counted (``frames.no_colour``), with no
warning: from its pixels this node cannot tell a grey camera from a grey scene.
camera_subscriber warns of a grey camera, from the encoding of its messages.

A stamp of exactly zero (a driver that did not fill it) is no point in time: such a frame
is classified and published, counted (``frames.unstamped``), logged (throttled), and
``/diagnostics`` is WARN from such a frame until a stamped one comes; it is never
geotagged (``fix_status`` 'none') nor taken for a jump back in time; such a fix is
rejected (``fix_rejected.unstamped``).
"""

from __future__ import annotations

from collections import Counter, deque
import math
import statistics
import sys
import time
from typing import Any

import cv2
import numpy as np
from rcl_interfaces.msg import ParameterDescriptor, SetParametersResult
from rclpy.duration import Duration
from rclpy.node import Node
from rclpy.parameter import Parameter
from rclpy.qos import ReliabilityPolicy
from sensor_msgs.msg import Image, NavSatFix
from std_msgs.msg import Float32, Header, String

from plant_disease_ros.core.annotation import annotate, annotation_text
from plant_disease_ros.core.camera_offset import (
    CameraOffset,
    check_offset,
    DEFAULT_MIN_TRAVEL_M,
    MAX_OFFSET_M,
)
from plant_disease_ros.core.classifier import (
    Classification,
    ClassifierOptions,
    DiseaseClassifier,
)
from plant_disease_ros.core.crops import (
    CropFilter,
    DEFAULT_OTHER_CROPS_WEIGHT,
    model_crops,
    parse_crops,
)
from plant_disease_ros.core.detections import detection_feature
from plant_disease_ros.core.explanation import (
    EXPLANATION_GRID,
    explanation_image,
    EXPLANATION_STATES,
)
from plant_disease_ros.core.fix_buffer import (
    DEFAULT_MAX_FIX_ACCURACY_M,
    FixBuffer,
    FixLookup,
    GeoFix,
)
from plant_disease_ros.core.fix_wait import FixWait
from plant_disease_ros.core.motion_blur import MotionBlur, MotionBlurMonitor, WARN_PERCENT
from plant_disease_ros.core.outcome import frame_outcome, FrameOutcome, NO_LEAF_LABEL, OUTCOMES
from plant_disease_ros.core.preprocessing import check_pose_count
from plant_disease_ros.core.time_jump import StampAhead, TimeJumpDetector
from plant_disease_ros.core.vegetation import check_frame
from plant_disease_ros.ros.clock import steady_clock
from plant_disease_ros.ros.conversions import (
    classification_to_string,
    copy_header,
    feature_to_string,
    fix_rejection_hint,
    geofix_to_navsatfix,
    image_to_rgb,
    is_unstamped,
    navsatfix_to_geofix,
    rgb_to_image,
    stamp_to_seconds,
)
from plant_disease_ros.ros.diagnostics import (
    INPUT_TIMEOUT_S,
    NodeDiagnostics,
    ThrottledWarnings,
)
from plant_disease_ros.ros.parameters import (
    accept_whole_numbers,
    choices_text,
    float_range,
    integer_range,
    one_of,
    ParameterChecks,
    raises_no_value_error,
    set_result,
)
from plant_disease_ros.ros.qos import (
    AdaptiveSubscription,
    detections_qos,
    FIX_DEPTH,
    frames_publisher_qos,
    RELIABILITY_CHOICES,
    reliability_name,
    results_qos,
)
from plant_disease_ros.ros.startup import release_failed_node, run_nodes
from plant_disease_ros.ros.typed_outputs import ClassifierTypedOutputs

NODE_NAME = 'disease_classifier'
# Detections waiting for the fix after their stamp; beyond this the oldest is settled: at
# least this many, or PENDING_MARGIN times as many as come (by the wall clock: the median
# of the last DETECTION_STEPS steps between them) during their wait (up to 5 s while a jump
# back may be undone), at most MAX_PENDING_DETECTIONS_CAP (one holds a classification and a
# header: about 1 KB).
MAX_PENDING_DETECTIONS = 64
MAX_PENDING_DETECTIONS_CAP = 1024
PENDING_MARGIN = 1.5
DETECTION_STEPS = 9
PENDING_CHECK_PERIOD_S = 0.05
# How long a node stopping waits for reliable subscribers to take its last detections.
SHUTDOWN_ACK_TIMEOUT_S = 1.0
# Why a fix was not used, where the reason alone does not say what to do about it.
UNSTAMPED_WARNING = ('frames have no stamp (header stamp 0): they are classified and '
                     'published but never located with GPS nor checked for time jumps; '
                     'the camera driver must fill header.stamp')

CHECKS = ParameterChecks({
    'qos_reliability': one_of('qos_reliability', RELIABILITY_CHOICES),
    'camera_offset_m': check_offset,
})


class DiseaseClassifierNode(Node):
    """Classify frames, publish the results and GPS-tagged detections."""

    def __init__(self, node_name: str = NODE_NAME, *, subscribe_frames: bool = True,
                 **kwargs: Any) -> None:
        """Declare the parameters, load the model and create the endpoints.

        ``subscribe_frames=False`` leaves out the ``frames`` subscription: the pipeline
        hands frames to :meth:`process_frame` directly. Raises ModelLoadError when the model
        cannot be loaded and InvalidParameterValueException for an invalid start value.
        """
        super().__init__(node_name, **kwargs)
        try:
            self._setup(subscribe_frames)
        except Exception:
            release_failed_node(self)
            raise

    def _setup(self, subscribe_frames: bool) -> None:
        """Declare and read the parameters, load the model, create the endpoints."""
        self.add_on_set_parameters_callback(CHECKS)
        accept_whole_numbers(self)
        self._declare_parameters()
        value = {name: self.get_parameter(name).value for name in (
            'model_path', 'labels_path', 'num_threads', 'delegate', 'qos_reliability',
            'max_fix_age_s', 'fix_wait_s', 'fix_buffer_size', 'explain_period_s',
            'diagnostics_period_s', 'time_jump_threshold_s', 'vegetation_gate',
            'motion_blur_check_every', 'motion_blur_warn_percent', 'input_timeout_s',
            'gps_required', 'max_fix_accuracy_m')}
        self.classifier = DiseaseClassifier.create_from_options(ClassifierOptions(
            model_path=value['model_path'], labels_path=value['labels_path'],
            num_threads=value['num_threads'], delegate_path=value['delegate']))
        self._declare_model_parameters(self.classifier.num_classes)
        self.top_k = min(int(self.get_parameter('top_k').value), self.classifier.num_classes)
        crops = self._apply_crops()
        self.classifier.set_poses(self.get_parameter('test_time_poses').value)
        self.score_threshold = float(self.get_parameter('score_threshold').value)
        self.fix_wait_s = float(value['fix_wait_s'])
        self.explain_period_s = float(value['explain_period_s'])
        self.fix_wait: FixWait[tuple[Classification, Header]] = FixWait(
            FixBuffer(value['max_fix_age_s'], value['fix_buffer_size']),
            MAX_PENDING_DETECTIONS, self._camera_offset())
        self.time_jumps = TimeJumpDetector(value['time_jump_threshold_s'])
        self._last_jump_s_before: float | None = None   # last_time_jump_s before the last jump
        # Whether detections wait the last jump's window (it may be undone), not fix_wait_s.
        self._waits_for_undo = False
        self.vegetation_gate = bool(value['vegetation_gate'])
        self.motion_blur = MotionBlurMonitor(value['motion_blur_check_every'],
                                             warn_percent=value['motion_blur_warn_percent'])
        self._motion_blur_errors = 0  # estimates that failed (the frame was still classified)
        self.outcome_counts = {kind: 0 for kind in OUTCOMES}
        # Frames without any colour (the gate's 'no colour'), counted only: a grey camera
        # and a colour camera's JPEG of grey ground look the same here.
        self.no_colour_frames = 0
        # Frames without a stamp: in all, and since the last stamped frame (while above 0,
        # /diagnostics warns).
        self.unstamped_frames = self._unstamped_since_stamped = 0
        self._motion_blur_warning = ''

        model = self.classifier.model
        self.diagnostics = NodeDiagnostics(self, period_s=value['diagnostics_period_s'])
        self.diagnostics.set_value('model', model.path.name)
        self.diagnostics.set_value('backend', model.backend)
        self.diagnostics.set_value('num_threads', model.num_threads)
        self.diagnostics.set_value('time_jumps_back', 0)
        self.diagnostics.set_value('stamp_glitches', 0)
        # Every counter from the start, so that 0 reads as none yet, not as not counted.
        for kind in OUTCOMES:
            self.diagnostics.set_value(f'frames.{kind}', 0)
        self.diagnostics.set_value('frames.no_colour', 0)
        self.diagnostics.set_value('frames.unstamped', 0)
        for state in EXPLANATION_STATES:
            self.diagnostics.set_value(f'explanations.{state}', 0)
        for status in ('interpolated', 'extrapolated', 'nearest', 'stale', 'none',
                       'no_heading'):
            self.diagnostics.set_value(f'detections.{status}', 0)
        self.diagnostics.set_value('camera_offset', self.fix_wait.camera_offset.describe())
        self.diagnostics.set_value('crops', crops.describe())
        self.diagnostics.set_value('test_time_poses', self.classifier.poses)
        self.warnings = ThrottledWarnings(self.get_logger())
        # The motion blur median ages: refreshed before every status, not only per estimate;
        # the detections of the last period without a position are judged then too.
        self.diagnostics.on_publish = self._refresh_diagnostics
        self.detection_counts: Counter[str] = Counter()
        # When (monotonic) the last detections came: their rate sizes the pending bound.
        self._detection_times: deque[float] = deque(maxlen=DETECTION_STEPS + 1)
        self.fixes_received = 0
        self.diagnostics.set_value('fixes_received', 0)
        self._last_usable_fix_s: float | None = None
        # The fixes of a run of stamps far ahead of every stream, held until the fix stream
        # says whether the time stepped forward (used then) or they were stray (dropped);
        # at most CONFIRM_RUN_STAMPS (core.time_jump).
        self._fixes_ahead: list[GeoFix] = []
        # Detections of the current diagnostics period: without a position, by status; located.
        self._unlocated_in_period: Counter[str] = Counter()
        self._located_in_period = 0
        self._position_warning = ''
        self.gps_required = bool(value['gps_required'])
        self.max_fix_accuracy_m = float(value['max_fix_accuracy_m'])
        self._last_explanation_s = -math.inf
        self.explanations_published: Counter[str] = Counter()

        qos = results_qos()
        self.label_publisher = self.create_publisher(String, 'label', qos)
        self.confidence_publisher = self.create_publisher(Float32, 'confidence', qos)
        self.classification_publisher = self.create_publisher(String, 'classification', qos)
        # Images out keep only the newest one: no queue of full frames per subscriber.
        self.annotated_publisher = self.create_publisher(Image, 'image_annotated',
                                                         frames_publisher_qos())
        # Transient local: a recorder that (re)joins gets the recent detections it missed.
        self.detections_publisher = self.create_publisher(String, 'detections',
                                                          detections_qos())
        self.detection_fix_publisher = self.create_publisher(NavSatFix, 'detections/fix', qos)
        self.explanation_publisher = self.create_publisher(Image, 'explanation',
                                                           frames_publisher_qos())
        self.typed_outputs = ClassifierTypedOutputs(self, self.classifier.labels,
                                                    self.score_threshold)

        self.frames_subscription: AdaptiveSubscription | None = None
        if subscribe_frames:
            self.frames_subscription = AdaptiveSubscription(
                self, Image, 'frames', self._on_frame, reliability=value['qos_reliability'],
                on_change=self._on_frames_qos_change)
        # GPS drivers publish reliable or best effort; 'auto' matches either.
        self.fix_subscription = AdaptiveSubscription(
            self, NavSatFix, 'fix', self._on_fix, reliability='auto', depth=FIX_DEPTH,
            on_change=self._log_qos_change)
        self._pending_timer = self.create_timer(PENDING_CHECK_PERIOD_S, self._on_pending_timer,
                                                clock=steady_clock())
        self._pending_timer.cancel()
        self._subscribe_frames = subscribe_frames
        self._watch_frames(value['input_timeout_s'])
        self.add_post_set_parameters_callback(self._on_parameters_set)
        if not subscribe_frames:
            # Added after the declarations: the start value (field.yaml's, for both nodes)
            # is taken; a runtime change is refused with where it belongs.
            self.add_on_set_parameters_callback(self._refuse_frames_only_parameters)
            # Frames come by a function call, not over DDS: no reliability to report.
            self.diagnostics.set_value('qos_reliability', 'in-process')

        self.get_logger().info(
            f'model {model.path} ({model.backend}): input shape {tuple(model.input.shape)} '
            f'{np.dtype(model.input.dtype).name}, {self.classifier.num_classes} labels, '
            f'{model.num_threads} threads, delegate {model.delegate or "none"}; top_k '
            f'{self.top_k}, score_threshold {self.score_threshold:g}; '
            f'{self._crops_text(crops)}; {self._poses_text()}; camera offset: '
            f'{self.fix_wait.camera_offset.describe()}')
        if NO_LEAF_LABEL not in self.classifier.labels:
            # A model trained on leaves only (plant-disease train without --recipe field).
            self.get_logger().warning(
                f"the model has no '{NO_LEAF_LABEL}' class: only the vegetation gate labels "
                f"frames '{NO_LEAF_LABEL}'; grass, weeds and other green views that pass it "
                'are forced into a leaf class (unknown below score_threshold, a detection '
                'above it). Train with --recipe field (negatives) for a background class')

    def _declare_parameters(self) -> None:
        """Declare the parameters needed before the model is loaded, and the GPS ones."""
        self.declare_parameter('model_path', '', ParameterDescriptor(
            description='TFLite model file; empty = the shipped model.', read_only=True))
        self.declare_parameter('labels_path', '', ParameterDescriptor(
            description='Labels file, one class per line; empty = the labels.txt beside '
                        'model_path (export writes one), else the shipped labels.',
            read_only=True))
        self.declare_parameter('num_threads', 2, ParameterDescriptor(
            description='Interpreter CPU threads.', read_only=True,
            integer_range=integer_range(1, 64)))
        self.declare_parameter('delegate', '', ParameterDescriptor(
            description='External delegate library (Edge TPU, NPU); empty = CPU.',
            read_only=True))
        self.declare_parameter('qos_reliability', 'auto', ParameterDescriptor(
            description="Reliability of the frames subscription: 'auto' (match the "
                        "publishers), 'reliable' or 'best_effort'.", read_only=True,
            additional_constraints=choices_text(RELIABILITY_CHOICES)))
        self.declare_parameter('max_fix_age_s', 2.0, ParameterDescriptor(
            description='Farthest a fix may be from the image stamp to locate it (s).',
            read_only=True, floating_point_range=float_range(0.0, 3600.0)))
        self.declare_parameter('fix_wait_s', 0.3, ParameterDescriptor(
            description='Longest a detection waits for the fix after its stamp (s).',
            floating_point_range=float_range(0.0, 10.0)))
        self.declare_parameter('fix_buffer_size', 200, ParameterDescriptor(
            description='GPS fixes kept, newest first.', read_only=True,
            integer_range=integer_range(1, 100000)))
        self.declare_parameter('explain_period_s', 0.0, ParameterDescriptor(
            description='Period of the occlusion explanation image (s); 0 = off. Computed '
                        'only while explanation has subscribers.',
            floating_point_range=float_range(0.0, 3600.0)))
        self.declare_parameter('diagnostics_period_s', 1.0, ParameterDescriptor(
            description='Period of the /diagnostics status (s).', read_only=True,
            floating_point_range=float_range(0.01, 3600.0)))
        self.declare_parameter('input_timeout_s', INPUT_TIMEOUT_S, ParameterDescriptor(
            description='/diagnostics warns while no frame has come for this long (s); '
                        '0 = never.',
            floating_point_range=float_range(0.0, 3600.0)))
        accuracy = ParameterDescriptor(
            description='A fix whose reported 1-sigma horizontal accuracy (from its '
                        'covariance) is worse than this (m) is not used; 0 = every fix. A '
                        'fix of unknown accuracy is used.',
            floating_point_range=float_range(0.0, 1e6))
        self.declare_parameter('max_fix_accuracy_m', DEFAULT_MAX_FIX_ACCURACY_M, accuracy)
        self.declare_parameter('camera_offset_m', [0.0, 0.0], ParameterDescriptor(
            description='[forward, left] (m) from the GPS antenna to the centre of the '
                        "camera's view on the ground, in the direction of travel; each "
                        'detection is moved there by the heading the fixes give. [0, 0] = '
                        "the antenna's position.",
            additional_constraints=f'two finite values within +-{MAX_OFFSET_M:g} m',
            # [1, 0] in a params file is an integer array: taken as metres too.
            dynamic_typing=True))
        self.declare_parameter('heading_min_travel_m', DEFAULT_MIN_TRAVEL_M,
                               ParameterDescriptor(
            description='With camera_offset_m: least distance (m) the line fitted through '
                        'the fixes must cover before its direction is the heading (its speed '
                        'must also stand out of their noise); a robot that moved less has '
                        'no heading.',
            floating_point_range=float_range(0.01, 1000.0)))
        self.declare_parameter('gps_required', True, ParameterDescriptor(
            description='true: detections published without a position (no usable GPS fix) '
                        'make /diagnostics WARN and are logged; false for a camera without '
                        'a receiver (a greenhouse bench).'))
        self.declare_parameter('time_jump_threshold_s', 1.0, ParameterDescriptor(
            description='A frame or fix stamp this far (s) behind the newest of its stream '
                        'is a jump back in time (bag loop, sim restart): the fixes held '
                        'are dropped. One this far ahead of every stream waits for its '
                        "stream's next stamps: a stray fix (a driver glitch) is dropped, a "
                        "stray frame's detection is published without a position.",
            floating_point_range=float_range(0.001, 86400.0)))
        self.declare_parameter('vegetation_gate', True, ParameterDescriptor(
            description="Label frames that cannot show a leaf (too dark, over-exposed, flat, "
                        "no colour at all, no plant colours) 'no_leaf' "
                        'whatever the model says.'))
        self.declare_parameter('motion_blur_check_every', 5, ParameterDescriptor(
            description="Estimate the motion blur of every Nth frame with a leaf (not "
                        "'no_leaf'); /diagnostics shows the median of the last 15 "
                        'estimates. 0 = off.',
            integer_range=integer_range(0, 1000)))
        self.declare_parameter('motion_blur_warn_percent', WARN_PERCENT, ParameterDescriptor(
            description='/diagnostics warns while the median motion blur is longer than '
                        'this percentage of the frame side (the model starts to lose from '
                        'about 5 %).',
            floating_point_range=float_range(0.5, 50.0)))

    def _declare_model_parameters(self, num_labels: int) -> None:
        """Declare top_k (its range from the model's labels), score_threshold and crops."""
        # Up to 3 even for a model of fewer classes, so that the shipped field.yaml's
        # top_k: 3 starts a 2-class model too: a value beyond the classes reports them all.
        self.declare_parameter('top_k', min(3, num_labels), ParameterDescriptor(
            description=f'Categories in the classification JSON, 1..{max(3, num_labels)} '
                        f'(this model has {num_labels}; more report all of them).',
            integer_range=integer_range(1, max(3, num_labels))))
        self.declare_parameter('score_threshold', 0.5, ParameterDescriptor(
            description="Top-1 score below which label is 'unknown' and no detection is "
                        'published, [0, 1].',
            floating_point_range=float_range(0.0, 1.0)))
        # Checks that need the model: its crops, and whether its input is square.
        labels, input_size = self.classifier.labels, self.classifier.input_size
        self.add_on_set_parameters_callback(ParameterChecks({
            'crops': raises_no_value_error(
                'crops', lambda value: CropFilter(labels, parse_crops(value))),
            'test_time_poses': raises_no_value_error(
                'test_time_poses', lambda value: check_pose_count(value, *input_size)),
        }))
        weight = ParameterDescriptor(
            description="With crops: the prior weight of other crops' labels against the "
                        "field's, [0, 1]. What they keep is the chance of another plant's "
                        'leaf (weed, neighbouring crop), which lowers the score; 0 = trust '
                        'the crops fully, 1 = only hide the other labels.',
            floating_point_range=float_range(0.0, 1.0))
        self.declare_parameter('other_crops_weight', DEFAULT_OTHER_CROPS_WEIGHT, weight)
        self.declare_parameter('crops', '', ParameterDescriptor(
            # A string, not a string array: rcl drops a '-p crops:=[...]' array override
            # silently when a params file sets the parameter as a scalar.
            description="The crops of this field, comma-separated ('Apple', 'Tomato, "
                        "Potato'); the labels of other crops are never published and the "
                        "scores favour these crops. Empty = every crop.",
            additional_constraints='crops of the model: '
                                   + (', '.join(model_crops(self.classifier.labels)) or 'none')))
        square = self.classifier.input_size[0] == self.classifier.input_size[1]
        self.declare_parameter('test_time_poses', 1, ParameterDescriptor(
            description='Right-angle poses of each frame (turned, mirrored) whose scores are '
                        'averaged: 1, 2, 4 or 8. Above 1 the answer ranks better (see the '
                        'README) and the invoke time is that many times longer.',
            integer_range=integer_range(1, 8),
            additional_constraints='one of: 1, 2, 4, 8' if square
            else 'one of: 1, 2 (the model input is not square)'))

    def _camera_offset(self) -> CameraOffset:
        """Return the camera offset of the current parameters."""
        return CameraOffset(*map(float, self.get_parameter('camera_offset_m').value),
                            self.get_parameter('heading_min_travel_m').value)

    def _apply_crops(self) -> CropFilter:
        """Give the classifier the filter of the current crops parameters; return it."""
        return self.classifier.set_crops(parse_crops(self.get_parameter('crops').value),
                                         self.get_parameter('other_crops_weight').value)

    def _crops_text(self, crops: CropFilter) -> str:
        """Return the crops in force for the log: which ones and how many labels they keep."""
        if not crops.active:
            return 'crops: all'
        return (f'crops: {crops.describe()} ({len(crops.kept_indices)} of '
                f'{self.classifier.num_classes} labels, other crops weigh '
                f'{crops.other_crops_weight:g})')

    def _poses_text(self) -> str:
        """Return the poses in force for the log."""
        poses = self.classifier.poses
        return ('test_time_poses: 1 (one invoke a frame)' if poses == 1 else
                f'test_time_poses: {poses} (the scores of {poses} poses averaged, {poses} '
                'invokes a frame)')

    def _on_parameters_set(self, parameters: list[Parameter]) -> None:
        """Apply accepted runtime changes."""
        for parameter in parameters:
            if parameter.name == 'top_k':
                self.top_k = min(int(parameter.value), self.classifier.num_classes)
            elif parameter.name == 'score_threshold':
                self.score_threshold = float(parameter.value)
                self.typed_outputs.publish_label_info(self.score_threshold)
            elif parameter.name == 'fix_wait_s':
                self.fix_wait_s = float(parameter.value)
                # The detections waiting for a fix wait the new time from when they came.
                self.fix_wait.rewait(self._detection_wait_s() if self._waits_for_undo
                                     else self.fix_wait_s)
                self._settle_pending()
            elif parameter.name == 'input_timeout_s':
                self._watch_frames(parameter.value)
            elif parameter.name == 'gps_required':
                self.gps_required = bool(parameter.value)
            elif parameter.name == 'max_fix_accuracy_m':
                self.max_fix_accuracy_m = float(parameter.value)
            elif parameter.name in ('camera_offset_m', 'heading_min_travel_m'):
                offset = self.fix_wait.camera_offset = self._camera_offset()
                self.diagnostics.set_value('camera_offset', offset.describe())
                self.get_logger().info(f'camera offset: {offset.describe()}')
            elif parameter.name == 'time_jump_threshold_s':
                self.time_jumps.threshold_s = float(parameter.value)
            elif parameter.name == 'explain_period_s':
                self.explain_period_s = float(parameter.value)
            elif parameter.name == 'vegetation_gate':
                self.vegetation_gate = bool(parameter.value)
            elif parameter.name == 'motion_blur_check_every':
                self.motion_blur.every = int(parameter.value)
                if self.motion_blur.every == 0:
                    self.motion_blur.reset()
                    self._motion_blur_errors = 0
                    self.diagnostics.clear_value('motion_blur_errors')
                self._publish_motion_blur()
            elif parameter.name == 'motion_blur_warn_percent':
                self.motion_blur.warn_percent = float(parameter.value)
                self._publish_motion_blur()
            elif parameter.name == 'test_time_poses':
                self.classifier.set_poses(parameter.value)
                self.diagnostics.set_value('test_time_poses', self.classifier.poses)
                self.get_logger().info(self._poses_text())
        if any(parameter.name in ('crops', 'other_crops_weight') for parameter in parameters):
            crops = self._apply_crops()
            self.diagnostics.set_value('crops', crops.describe())
            self.get_logger().info(self._crops_text(crops))

    def _on_frames_qos_change(self, topic: str, policy: ReliabilityPolicy, why: str) -> None:
        """Log the frames subscription's reliability each time it is (re)chosen."""
        self.diagnostics.set_value('qos_reliability', reliability_name(policy))
        self._log_qos_change(topic, policy, why)

    def _log_qos_change(self, topic: str, policy: ReliabilityPolicy, why: str) -> None:
        """Log a subscription's reliability each time it is (re)chosen."""
        self.get_logger().info(f'subscribed to {topic}: {reliability_name(policy)} ({why})')

    # Frames ----------------------------------------------------------------------------

    def _on_frame(self, msg: Image) -> None:
        """Convert one ``frames`` message and classify it; count and skip a bad one."""
        start = time.perf_counter()
        self.diagnostics.count_received()
        try:
            rgb = image_to_rgb(msg)
        except ValueError as error:
            self._reject(error, 'invalid_image', 'rejected frame')
            return
        self._classify_and_publish(rgb, msg.header, start)

    def process_frame(self, rgb: np.ndarray, header: Header) -> Classification | None:
        """Classify an RGB frame handed over in-process and publish the results; return it.

        The pipeline's camera_subscriber calls this instead of publishing ``frames``.
        """
        self.diagnostics.count_received()
        return self._classify_and_publish(rgb, header, time.perf_counter())

    def _reject(self, error: Exception, default_reason: str, what: str) -> None:
        """Count a frame refused for the error's ``reason`` and warn (throttled)."""
        reason = str(getattr(error, 'reason', default_reason))
        self.diagnostics.count_rejected(reason)
        self.warnings.warning(reason, f'{what} ({reason}): {error}')

    def _classify_and_publish(self, rgb: np.ndarray, header: Header,
                              start: float) -> Classification | None:
        """Classify ``rgb`` and publish every result with a copy of ``header``.

        Return the classification, or ``None`` when the frame could not be classified.
        """
        header = copy_header(header)
        unstamped = is_unstamped(header.stamp)
        verdict = None
        if unstamped:
            self._count_unstamped(header)
        else:
            self._unstamped_since_stamped = 0
            verdict = self._check_time_jump('frame', stamp_to_seconds(header.stamp))
        try:
            classification = self.classifier.classify(rgb, top_k=self.top_k)
        except (ValueError, RuntimeError) as error:
            # One frame the interpreter cannot take must not stop the node.
            self._reject(error, 'classify_failed', 'cannot classify frame')
            return None
        threshold = self.score_threshold
        gate = check_frame(rgb) if self.vegetation_gate else None
        outcome = frame_outcome(classification, threshold, gate)
        label = outcome.label
        # The score of the published label, the same on every output (1.0 for the gate's
        # no_leaf); the JSON's top_k keeps the model's own scores.
        confidence = outcome.confidence(classification)
        # Soil, sky and grass say little about the shutter: only leaf frames are estimated.
        # The estimate goes into the record; /diagnostics are updated after the publishing.
        blur = self._estimate_motion_blur(rgb) if outcome.kind != 'no_leaf' else None
        # The full record first: it is what the mapping stack and the bench consume.
        self.classification_publisher.publish(
            classification_to_string(classification, header, threshold, outcome, blur))
        self.typed_outputs.publish_classification(classification, header, outcome)
        self.label_publisher.publish(String(data=label))
        self.confidence_publisher.publish(Float32(data=confidence))
        if self.annotated_publisher.get_subscription_count() > 0:
            text = annotation_text(outcome, confidence)
            self.annotated_publisher.publish(rgb_to_image(annotate(rgb, text), header))
        self._maybe_explain(rgb, header, classification, outcome)
        if blur is not None:
            self._publish_motion_blur()
        self.outcome_counts[outcome.kind] += 1
        self.diagnostics.set_value(f'frames.{outcome.kind}', self.outcome_counts[outcome.kind])
        if gate is not None and gate.has_colour is False:
            self.no_colour_frames += 1
            self.diagnostics.set_value('frames.no_colour', self.no_colour_frames)
        if outcome.is_detection and unstamped:
            # No point in time to look a position up at: out at once, without one.
            self._publish_located([((classification, header), FixLookup('none', None, None))])
        elif outcome.is_detection:
            stamp_s = stamp_to_seconds(header.stamp)
            wait_s = self._detection_wait_s()
            # A stamp far ahead may be a stray one: not located before the next frames (or
            # the window) tell; without a position it goes out at its deadline as ever.
            hold_s = self.time_jumps.window_s('frame') if verdict == 'ahead' else 0.0
            now = time.monotonic()
            self._detection_times.append(now)
            self.fix_wait.max_waiting = self._pending_bound(wait_s)
            # A frame of the timeline before the last jump (late) is located with that
            # timeline's fixes, never the new one's (nor a stray fix taken for its first).
            self._publish_located(self.fix_wait.add(
                (classification, header), stamp_s, now, wait_s, hold_s,
                previous=verdict == 'late'))
            if len(self.fix_wait) > 0 and self._pending_timer.is_canceled():
                self._pending_timer.reset()
        self.diagnostics.count_processed((time.perf_counter() - start) * 1e3)
        return classification

    def _detection_wait_s(self) -> float:
        """Return how long a detection that comes now waits for its fix.

        ``fix_wait_s``; while the last jump may be a stray stamp, undone within its window
        (the fixes come back then), that window where longer: a detection of this time
        waits that long for them (a late one is located with them, and the late ones that
        come, meanwhile). Once the jump stands or is undone, :meth:`_end_wait_for_undo`
        gives the waiting ones ``fix_wait_s`` from when they came again.
        """
        if not self.time_jumps.undo_possible:
            return self.fix_wait_s
        self._waits_for_undo = True
        return max(self.fix_wait_s, self.time_jumps.jump_window_s)

    def _end_wait_for_undo(self) -> bool:
        """Once the last jump stands or is undone, the waiting detections wait for their
        fix ``fix_wait_s`` from when they came, as any: no longer the jump's window.

        Return whether their deadlines changed (the caller settles them then).
        """
        if not self._waits_for_undo or self.time_jumps.undo_possible:
            return False
        self._waits_for_undo = False
        self.fix_wait.rewait(self.fix_wait_s)
        return True

    def _pending_bound(self, wait_s: float) -> int:
        """Return how many detections may wait while each waits up to ``wait_s``.

        :data:`MAX_PENDING_DETECTIONS`, or :data:`PENDING_MARGIN` times the detections
        that come in ``wait_s`` (their median step by the wall clock) where more, at most
        :data:`MAX_PENDING_DETECTIONS_CAP`. A smaller bound than the items waiting pushes
        no more out at once: one goes per detection added beyond it.
        """
        times = self._detection_times
        if len(times) < 2:
            return MAX_PENDING_DETECTIONS
        ordered = list(times)
        step = statistics.median(later - earlier
                                 for earlier, later in zip(ordered, ordered[1:], strict=False))
        if step <= 0.0:
            return MAX_PENDING_DETECTIONS_CAP
        count = math.ceil(PENDING_MARGIN * wait_s / step)
        return min(MAX_PENDING_DETECTIONS_CAP, max(MAX_PENDING_DETECTIONS, count))

    def _count_unstamped(self, header: Header) -> None:
        """Count a frame stamped exactly zero and warn (throttled)."""
        self.unstamped_frames += 1
        self._unstamped_since_stamped += 1
        self.diagnostics.set_value('frames.unstamped', self.unstamped_frames)
        self.warnings.warning('frame:unstamped',
                              f'{UNSTAMPED_WARNING} (frame_id {header.frame_id!r})')

    def _estimate_motion_blur(self, rgb: np.ndarray) -> MotionBlur | None:
        """Offer a frame to the motion blur monitor; return its estimate if it made one.

        The estimate is optional: an error in it never costs the frame its classification.
        (A frame under 16 px a side is no error: the monitor passes its turn.)
        """
        try:
            return self.motion_blur.offer(rgb)
        except (ValueError, cv2.error) as error:
            self._motion_blur_errors += 1
            self.diagnostics.set_value('motion_blur_errors', self._motion_blur_errors)
            self.warnings.warning('motion_blur_error', f'motion blur estimate failed: {error}')
            return None

    def _refuse_frames_only_parameters(self, parameters: list[Parameter]
                                       ) -> SetParametersResult:
        """In the pipeline, refuse input_timeout_s: the camera_subscriber watches the images."""
        if any(parameter.name == 'input_timeout_s' for parameter in parameters):
            return set_result('in the single-process pipeline the camera_subscriber beside '
                              'this node watches the images: set its input_timeout_s')
        return set_result(None)

    def _watch_frames(self, timeout_s: float) -> None:
        """Warn while no frame has come for ``timeout_s`` on ``frames`` (0: never).

        In the single-process pipeline the camera_subscriber beside it watches the images:
        the frames it hands over are only those its ``max_rate_hz`` lets through, so a
        silence here would be a false alarm at a low rate.
        """
        self.diagnostics.watch_input(self._describe_input,
                                     timeout_s if self._subscribe_frames else 0.0)

    def _describe_input(self) -> str:
        """Name the frames this node waits for (for the silence warning)."""
        topic = self.frames_subscription.topic
        return f'frames on {topic} ({self.count_publishers(topic)} publishers)'

    def _refresh_diagnostics(self) -> None:
        """Before each status: the motion blur median, and detections without a position."""
        self._position_warning = self._unlocated_detections()
        self._publish_motion_blur()

    def _unlocated_detections(self) -> str:
        """Return the warning about this period's detections without a position ('' if none).

        A detection without a position is a point the disease map cannot show: a fix topic
        remapped wrong, a silent receiver, or GPS and camera stamps on different clocks.
        Starts a new period.
        """
        unlocated = sum(self._unlocated_in_period.values())
        total = unlocated + self._located_in_period
        statuses = ', '.join(f'{status} {count}'
                             for status, count in sorted(self._unlocated_in_period.items()))
        self._unlocated_in_period.clear()
        self._located_in_period = 0
        if unlocated == 0 or not self.gps_required:
            return ''
        topic = self.fix_subscription.topic
        last = ('no usable fix yet' if self._last_usable_fix_s is None else
                f'last usable fix {time.monotonic() - self._last_usable_fix_s:.0f} s ago')
        return (f'{unlocated} of {total} detections in the last period have no position '
                f'({statuses}): {last} on {topic} ({self.count_publishers(topic)} '
                f'publishers, {self.fixes_received} fixes received)')

    def _publish_motion_blur(self) -> None:
        """Show the recent median blur in /diagnostics; warn while it is too long."""
        status = self.motion_blur.status()
        median = status.median
        keys = ('motion_blur_percent', 'motion_blur_px', 'motion_blur_axis',
                'motion_blur_samples')
        if median is None:
            for key in keys:
                self.diagnostics.clear_value(key)
        else:
            for key, value in zip(keys, (median.percent, median.length_px, median.axis,
                                         status.samples), strict=True):
                self.diagnostics.set_value(key, value)
        self._motion_blur_warning = status.warning
        self._set_warning()
        if status.warning:
            self.warnings.warning('motion_blur', status.warning)

    def _set_warning(self) -> None:
        """Set the lasting /diagnostics warning from every condition that holds now."""
        unstamped = ''
        if self._unstamped_since_stamped:
            unstamped = (f'{UNSTAMPED_WARNING} ({self._unstamped_since_stamped} since the '
                         'last stamped frame)')
        self.diagnostics.warning = '; '.join(
            text for text in (self._motion_blur_warning, self._position_warning, unstamped)
            if text)

    def _maybe_explain(self, rgb: np.ndarray, header: Header, classification: Classification,
                       outcome: FrameOutcome) -> None:
        """Publish an explanation every ``explain_period_s`` while it is watched.

        Computed in this callback (``core.explanation``: 17 invokes, 34 when the map is
        retried with larger patches), so this frame's detection and the next frames wait
        for it; its time is in diagnostics (``explanations.last_ms``).
        """
        if (self.explain_period_s <= 0.0
                or self.explanation_publisher.get_subscription_count() == 0):
            return
        now = time.monotonic()
        if now - self._last_explanation_s < self.explain_period_s:
            return
        self._last_explanation_s = now
        start = time.perf_counter()
        try:
            explanation = explanation_image(self.classifier, rgb, classification, outcome,
                                            grid=EXPLANATION_GRID)
        except (ValueError, RuntimeError, cv2.error) as error:
            # The frame itself was classified and goes on; only its picture is missing.
            self.explanations_published['failed'] += 1
            self.diagnostics.set_value('explanations.failed',
                                       self.explanations_published['failed'])
            self.warnings.warning('explanation', f'cannot explain frame: {error}')
            return
        self.explanation_publisher.publish(rgb_to_image(explanation.image, header))
        self.explanations_published[explanation.state] += 1
        for state, count in self.explanations_published.items():
            self.diagnostics.set_value(f'explanations.{state}', count)
        self.diagnostics.set_value('explanations.last_ms',
                                   round((time.perf_counter() - start) * 1e3, 1))

    # GPS tagging -----------------------------------------------------------------------

    def _on_fix(self, msg: NavSatFix) -> None:
        """Keep a usable fix (count and skip a bad one) and settle waiting detections."""
        self.fixes_received += 1
        self.diagnostics.set_value('fixes_received', self.fixes_received)
        # A fix stamped 0 is rejected here: it never reaches the time-jump detector.
        fix, reason = navsatfix_to_geofix(msg, self.max_fix_accuracy_m, require_stamp=True)
        if fix is None:
            self.diagnostics.count_rejected(reason, category='fix')
            key, hint = fix_rejection_hint(reason, msg)
            self.warnings.warning(f'fix:{key}', f'ignored GPS fix ({reason})'
                                  + (f': {hint}' if hint else ''))
            return
        verdict = self._check_time_jump('fix', fix.stamp_s)
        if verdict == 'ahead':
            # Far ahead of every stream: used once the fix stamps have gone on from it.
            self._fixes_ahead.append(fix)
            return
        if verdict == 'late':
            # A fix of the timeline before a jump back, late: it would locate new frames.
            # Set aside: it comes back if the jump is undone (a stray stamp).
            self.fix_wait.set_aside(fix)
            self.diagnostics.count_rejected('previous_timeline', category='fix')
            self.warnings.warning('fix:previous_timeline',
                                  f'ignored GPS fix stamped {fix.stamp_s:.3f}: it belongs '
                                  'to the timeline before the last jump back in time')
            self._settle_pending()   # it locates the late frames of that timeline
            return
        self._last_usable_fix_s = time.monotonic()
        self.fix_wait.fixes.add(fix)
        self._settle_pending()

    def _check_time_jump(self, stream: str, stamp_s: float) -> str | None:
        """On a jump back in time, settle the waiting detections and forget the old fixes.

        Return ``'late'`` when ``stamp_s`` is a late stamp of the timeline before the last
        jump, ``'ahead'`` when it lies far ahead of every stream, undecided (see
        ``core.time_jump``), else ``None``.
        """
        late_before = self.time_jumps.late_stamps
        undos_before = self.time_jumps.undos
        jump = self.time_jumps.check(stream, stamp_s)
        self._decide_ahead(stream, stamp_s)
        if jump is None:
            verdict = None
            if self.time_jumps.undos > undos_before:
                self._undo_time_jump(stream, stamp_s)
            # check() counted it when it found it late: no second look (and clock read).
            elif self.time_jumps.late_stamps > late_before:
                verdict = 'late'
            elif self.time_jumps.held is not None:
                verdict = 'ahead'
            # A fix that is used (verdict None) is added before the waiting detections are
            # settled (by _on_fix): the fix that undoes a jump locates those it brackets,
            # whichever of them are already past their wait.
            if self._end_wait_for_undo() and not (stream == 'fix' and verdict is None):
                self._settle_pending()
            return verdict
        settled, dropped = self.fix_wait.restart()
        self._publish_located(settled)
        self._pending_timer.cancel()
        self.diagnostics.set_value('time_jumps_back', self.time_jumps.jumps)
        self._last_jump_s_before = self.diagnostics.values.get('last_time_jump_s')
        self.diagnostics.set_value('last_time_jump_s', jump.size_s)
        # Once per jump; a stream of bogus stamps is throttled like any per-frame warning.
        self.warnings.warning(
            'time_jump',
            f'time jumped back {jump.size_s:.3f} s ({stream} stamp {jump.stamp_s:.3f} after '
            f'{jump.newest_s:.3f}; bag loop, sim restart or clock correction): dropped '
            f'{dropped} fix(es) of the previous timeline, located {len(settled)} waiting '
            'detection(s) with them')
        return False

    def _decide_ahead(self, stream: str, stamp_s: float) -> None:
        """Use or drop what was held of the stamps far ahead the last check decided."""
        if not (self.time_jumps.confirmed or self.time_jumps.strays):
            return
        for ahead in self.time_jumps.confirmed:   # the time stepped forward
            if ahead.stream == 'fix':
                self._use_fixes_ahead(ahead, keep=True)
            else:
                for held_s in ahead.stamps:
                    self.fix_wait.release(held_s)
        for ahead in self.time_jumps.strays:
            if ahead.stream == 'fix':
                self._use_fixes_ahead(ahead, keep=False)
                taken = 0
            else:
                taken = 0
                for held_s in ahead.stamps:
                    stray = self.fix_wait.take(held_s)
                    taken += len(stray)
                    self._publish_located(stray)
            self._warn_stray_ahead(ahead, stream, stamp_s, taken)
        self.diagnostics.set_value('stamp_glitches', self.time_jumps.glitches)
        self._settle_pending()
        if len(self.fix_wait) > 0 and self._pending_timer.is_canceled():
            self._pending_timer.reset()

    def _use_fixes_ahead(self, ahead: StampAhead, keep: bool) -> None:
        """Add the held fixes of the run ``ahead`` to the buffer (``keep``) or drop them."""
        run = [fix for fix in self._fixes_ahead if ahead.holds(fix.stamp_s)]
        self._fixes_ahead = [fix for fix in self._fixes_ahead if not ahead.holds(fix.stamp_s)]
        if keep and run:
            self._last_usable_fix_s = time.monotonic()
            for fix in run:
                self.fix_wait.fixes.add(fix)

    def _warn_stray_ahead(self, ahead: StampAhead, stream: str, stamp_s: float,
                          taken: int) -> None:
        """Log a stray run of stamps far ahead (throttled with the other stamp glitches).

        When the recent ones are all of one stream and about as far ahead, say so: a second
        publisher on the topic whose clock is off sends one with every message. A run of
        frames is logged only when ``taken`` (its detections that were still waiting, now
        out without a position) is not 0, or for that pattern: detections that went out
        before (located, or at their deadline) are not the run's to speak of.
        """
        count = len(ahead.stamps)
        recent = self.time_jumps.recent_strays_ahead
        pattern = (len(recent) == recent.maxlen
                   and all(other.stream == ahead.stream
                           and abs(other.ahead_s - ahead.ahead_s) <= self.time_jumps.threshold_s
                           for other in recent))
        if ahead.stream == 'frame' and not taken and not pattern:
            return   # counted in stamp_glitches
        them = 'it' if count == 1 else 'them'
        if ahead.stream != 'frame':
            what = f'the stray fix{"es are" if count > 1 else " is"} dropped'
        elif taken:
            what = ((f'1 detection of {them} goes' if taken == 1
                     else f'{taken} detections of {them} go') + ' out without a position')
        else:
            what = f'no detection of {them} was still waiting'
        stamps = (f'stamp {ahead.stamp_s:.3f}' if count == 1
                  else f'stamps {ahead.stamp_s:.3f} .. {max(ahead.stamps):.3f} ({count})')
        message = (f'a stray {ahead.stream} {stamps} ({ahead.ahead_s:.3f} s ahead of the stamps '
                   f'before it) was no step forward in time: the {stream} stamps went on from '
                   f'{stamp_s:.3f}; {what}')
        if pattern:
            message += (f'. The last {len(recent)} stray {ahead.stream} stamps were all about '
                        f'{ahead.ahead_s:.0f} s ahead ({self.time_jumps.strays_ahead} in all '
                        'so far): a second publisher on that topic whose clock is off?')
        self.warnings.warning('stamp_glitch', message)

    def _undo_time_jump(self, stream: str, stamp_s: float) -> None:
        """The last jump was a stray stamp (its stream went on): bring its fixes back.

        The stray frame's detection, if it waits, goes out without a position (its time is
        unknown); the others are located with the fixes restored.
        """
        undone = self.time_jumps.undone
        assert undone is not None
        if undone.stream == 'fix':
            self.fix_wait.fixes.discard(undone.stamp_s)   # the stray fix, kept as new
        late = self.fix_wait.late_set_aside   # counted as previous_timeline when they came
        stray, restored = self.fix_wait.undo(undone.stamp_s)
        self._publish_located(stray)
        self._settle_pending()
        if len(self.fix_wait) > 0 and self._pending_timer.is_canceled():
            self._pending_timer.reset()
        self.diagnostics.set_value('time_jumps_back', self.time_jumps.jumps)
        self.diagnostics.set_value('stamp_glitches', self.time_jumps.glitches)
        if self._last_jump_s_before is None:
            self.diagnostics.clear_value('last_time_jump_s')
        else:
            self.diagnostics.set_value('last_time_jump_s', self._last_jump_s_before)
        # The late fixes came back: they were not of another timeline after all.
        self.diagnostics.uncount_rejected('previous_timeline', 'fix', late)
        what = ('the stray frame goes without a position' if undone.stream == 'frame'
                else 'the stray fix is dropped')
        self.warnings.warning(
            'stamp_glitch',
            f'a stray {undone.stream} stamp {undone.stamp_s:.3f} ({undone.size_s:.3f} s before '
            f'the one before it) was no jump back in time: the {stream} stamps went on from '
            f'{stamp_s:.3f}; restored {restored} fix(es), {late} of them late ones no longer '
            f'counted as fix_rejected.previous_timeline; {what}')

    def _on_pending_timer(self) -> None:
        """Settle the waiting detections; the last jump's window may have closed."""
        self._end_wait_for_undo()
        self._settle_pending()

    def _settle_pending(self) -> None:
        """Publish the waiting detections whose fix came or whose wait is over."""
        self._publish_located(self.fix_wait.settle(time.monotonic()))
        if len(self.fix_wait) == 0:
            self._pending_timer.cancel()

    def _publish_located(self, located: list[tuple[tuple[Classification, Header],
                                                   FixLookup]]) -> None:
        """Publish ``detections`` (and ``detections/fix`` when located) for each frame."""
        for (classification, header), lookup in located:
            feature = detection_feature(
                stamp_sec=header.stamp.sec, stamp_nanosec=header.stamp.nanosec,
                frame_id=header.frame_id, classification=classification, fix_lookup=lookup)
            self.detections_publisher.publish(feature_to_string(feature))
            self.typed_outputs.publish_detection(feature)
            if lookup.fix is not None:
                self.detection_fix_publisher.publish(geofix_to_navsatfix(lookup.fix, header))
                self._located_in_period += 1
            elif not is_unstamped(header.stamp):
                # (An unstamped frame's detection is warned about as unstamped: no GPS
                # fix could have located it.)
                self._unlocated_in_period[lookup.status] += 1
                if self.gps_required:
                    self.warnings.warning(
                        'unlocated', f'detection {classification.top.label} published '
                        f'without a position ({lookup.status}): no usable GPS fix within '
                        f'max_fix_age_s of its stamp on {self.fix_subscription.topic}')
            self.detection_counts[lookup.status] += 1
            self.diagnostics.set_value(f'detections.{lookup.status}',
                                       self.detection_counts[lookup.status])
            if lookup.camera_offset == 'no_heading':
                self.detection_counts['no_heading'] += 1
                self.diagnostics.set_value('detections.no_heading',
                                           self.detection_counts['no_heading'])

    @property
    def pending_detections(self) -> int:
        """Return the number of detections waiting for a fix."""
        return len(self.fix_wait)

    def _publish_waiting_at_shutdown(self) -> None:
        """Publish the detections still waiting for a fix, located with the fixes there are.

        Their wait cannot end after the node: at the end of a bag or a drive they would be
        lost. A stop signal leaves the context up for this (``ros.startup.StopRequest``);
        after an external shutdown nothing can be published: their number is logged.
        """
        fix_wait = getattr(self, 'fix_wait', None)
        if fix_wait is None or len(fix_wait) == 0:
            return
        settled = fix_wait.settle(math.inf)
        if self.context.ok():
            self._publish_located(settled)
            # Reliable subscribers get them before the publishers go with the node (about
            # 0.1 s with the shipped DDS profile's heartbeat, 2-3 s with Fast DDS's own).
            for publisher in (self.detections_publisher, self.detection_fix_publisher):
                if not publisher.wait_for_all_acked(Duration(seconds=SHUTDOWN_ACK_TIMEOUT_S)):
                    self.get_logger().warning(
                        f'shutdown: not every subscriber of {publisher.topic_name} '
                        f'acknowledged the last {len(settled)} detection(s) within '
                        f'{SHUTDOWN_ACK_TIMEOUT_S:g} s; one that is slow or far may miss them')
            return
        print(f'[{NODE_NAME}] shutdown: {len(settled)} detection(s) waiting for a GPS fix '
              'were not published (the ROS context had already shut down)', file=sys.stderr)

    def destroy_node(self) -> None:
        """Publish waiting detections, destroy the subscriptions and diagnostics, the node."""
        self._publish_waiting_at_shutdown()
        for part in ('frames_subscription', 'fix_subscription', 'diagnostics'):
            if getattr(self, part, None) is not None:
                getattr(self, part).destroy()
        super().destroy_node()


def main(args: list[str] | None = None) -> int:
    """Run disease_classifier until shutdown; return the exit code."""
    return run_nodes(NODE_NAME, DiseaseClassifierNode, args)


if __name__ == '__main__':
    sys.exit(main())
