"""camera_subscriber: camera images in, RGB ``frames`` out, at a capped rate, cropped.

Subscribes ``image_raw`` (sensor_msgs/Image) or ``image_raw/compressed``
(sensor_msgs/CompressedImage), as ``image_transport`` says, with depth 1 so it always
works on the newest frame, converts any supported encoding to RGB, drops frames above
``max_rate_hz``, applies the optional centre or ROI crop and publishes ``frames``
(sensor_msgs/Image rgb8) with the source header unchanged. A bad image is counted by
reason, logged (throttled) and skipped; the node goes on.

Frames that never reach the node are counted too, from the gaps in each publisher's
sequence numbers (where the middleware gives them): ``dropped_by_design`` (a newer frame
replaced it in the depth-1 queue) and ``lost_in_transport`` (the middleware reports it
lost on the way), with the frames sent and missed per publisher GID in diagnostics.

A grey camera is told by the message itself: a raw encoding of one grey sample a pixel
(mono8, mono16, 8UC1; not Bayer, a colour mosaic), a JPEG of one component or a PNG of
colour type grey or grey + alpha. Such frames cannot show leaf or disease colours: they
are passed on as usual, counted (``frames.grey_source``), logged (throttled), and
``/diagnostics`` is WARN, naming the encoding, from such a frame until a frame of a
colour encoding comes. A frame's pixels alone cannot say it: a colour camera's JPEG of
grey gravel decodes without colour too (JPEG compresses its chroma noise away), and is no
grey camera.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable, Sequence
import sys
import time
from typing import Any

import numpy as np
from rcl_interfaces.msg import ParameterDescriptor, SetParametersResult
from rclpy.node import Node
from rclpy.parameter import Parameter
from rclpy.qos import ReliabilityPolicy
from sensor_msgs.msg import CompressedImage, Image
from std_msgs.msg import Header

from plant_disease_ros.core.image_encoding import compressed_grey_kind, is_grey_encoding
from plant_disease_ros.core.preprocessing import center_crop, crop_roi
from plant_disease_ros.core.rate_limiter import RateLimiter
from plant_disease_ros.core.sequence_gaps import SequenceGaps
from plant_disease_ros.ros.conversions import (
    compressed_image_to_rgb_and_grey_kind,
    image_to_rgb,
    rgb_to_image,
)
from plant_disease_ros.ros.diagnostics import (
    INPUT_TIMEOUT_S,
    NodeDiagnostics,
    ThrottledWarnings,
)
from plant_disease_ros.ros.parameters import (
    above,
    accept_whole_numbers,
    choices_text,
    float_range,
    one_of,
    ParameterChecks,
    set_result,
)
from plant_disease_ros.ros.qos import (
    AdaptiveSubscription,
    frames_publisher_qos,
    message_key,
    RELIABILITY_CHOICES,
    reliability_name,
)
from plant_disease_ros.ros.startup import release_failed_node, run_nodes

NODE_NAME = 'camera_subscriber'
TRANSPORTS = ('raw', 'compressed')
CROP_MODES = ('none', 'center', 'roi')

FrameListener = Callable[[np.ndarray, Header], None]
GREY_SOURCE_WARNING = ('the camera sends grey images ({kind}): leaves and diseases cannot '
                       'be told apart without colour; use a colour camera or its colour '
                       'stream (rgb8, bgr8, a Bayer encoding, colour JPEG/PNG)')


def grey_kind_of_raw(msg: Image) -> str:
    """Return the encoding of a raw image from a grey camera (as sent), else ''."""
    return msg.encoding if is_grey_encoding(msg.encoding) else ''


def grey_kind_of_compressed(msg: CompressedImage) -> str:
    """Return 'grey JPEG' or 'grey PNG' for a compressed image that stores no colour, else ''."""
    return compressed_grey_kind(np.frombuffer(msg.data, np.uint8))


def raw_image_to_rgb_and_grey_kind(msg: Image) -> tuple[np.ndarray, str]:
    """Convert a raw image to RGB; return it and :func:`grey_kind_of_raw`."""
    return image_to_rgb(msg), grey_kind_of_raw(msg)


def check_roi(value: Sequence[int]) -> str | None:
    """Return why ``value`` is not a usable roi [x, y, width, height], or ``None``."""
    values = list(value)
    if len(values) != 4:
        return f'roi must be [x, y, width, height], got {values}'
    if any(item < 0 for item in values):
        return f'roi values must be >= 0, got {values}'
    return None


def check_retired_transport(value: Any) -> str | None:
    """Refuse the retired parameter name ``transport`` (now ``image_transport``).

    It used to override ``image_transport`` when that was left at 'raw', which a launch
    file always passes: a params file's old ``transport: compressed`` then beat the launch
    argument ``compressed:=false``. Now the file must say ``image_transport``.
    """
    if value == '':
        return None
    return (f"parameter 'transport' ({value!r}) was renamed 'image_transport': rename it in "
            "your params file (the launch file's 'compressed' argument sets image_transport)")


CHECKS = ParameterChecks({
    'image_transport': one_of('image_transport', TRANSPORTS),
    'transport': check_retired_transport,
    'qos_reliability': one_of('qos_reliability', RELIABILITY_CHOICES),
    'crop_mode': one_of('crop_mode', CROP_MODES),
    'center_crop_fraction': above('center_crop_fraction', 0.0),
    'roi': check_roi,
})


class CameraSubscriberNode(Node):
    """Convert camera images to RGB frames (rate cap, crop) and publish them on ``frames``."""

    def __init__(self, node_name: str = NODE_NAME, **kwargs: Any) -> None:
        """Declare the parameters, create the publisher and the (adaptive) subscription.

        Raises InvalidParameterValueException when a parameter's start value is invalid.
        """
        super().__init__(node_name, **kwargs)
        try:
            self._setup()
        except Exception:
            release_failed_node(self)
            raise

    def _setup(self) -> None:
        """Declare and read the parameters, create the endpoints."""
        # Before declaring: rclpy then checks the start values as it checks every change.
        self.add_on_set_parameters_callback(self._on_set_parameters)
        accept_whole_numbers(self)
        self._declare_parameters()
        values = {name: self.get_parameter(name).value for name in (
            'image_transport', 'transport', 'qos_reliability', 'max_rate_hz', 'crop_mode',
            'center_crop_fraction', 'roi', 'diagnostics_period_s', 'input_timeout_s')}

        self.transport: str = values['image_transport']
        self.qos_reliability: str = values['qos_reliability']
        self.crop_mode: str = values['crop_mode']
        self.center_crop_fraction = float(values['center_crop_fraction'])
        self.roi = [int(v) for v in values['roi']]
        self.rate_limiter = RateLimiter(values['max_rate_hz'])
        self._frame_listeners: list[FrameListener] = []

        self.diagnostics = NodeDiagnostics(self, period_s=values['diagnostics_period_s'])
        self.diagnostics.set_value('transport', self.transport)
        self.diagnostics.set_value('max_rate_hz', self.rate_limiter.max_rate_hz)
        self.sequence_gaps = SequenceGaps()
        self.lost_in_transport = 0
        self._update_delivery_values()
        # Frames of a grey camera (by their encoding): in all, and since the last frame of
        # a colour encoding (while above 0, /diagnostics warns), with the last one's kind.
        self.grey_source_frames = self._grey_since_colour = 0
        self._grey_kind = ''
        self.diagnostics.set_value('frames.grey_source', 0)
        self.diagnostics.on_publish = self._refresh_warning
        self.warnings = ThrottledWarnings(self.get_logger())
        self.frames_publisher = self.create_publisher(Image, 'frames', frames_publisher_qos())
        if self.transport == 'raw':
            msg_type, topic = Image, 'image_raw'
            convert = raw_image_to_rgb_and_grey_kind
        else:
            msg_type, topic = CompressedImage, 'image_raw/compressed'
            # One header walk gives both the size checks and the grey kind: a JPEG's
            # header may be padded with megabytes.
            convert = compressed_image_to_rgb_and_grey_kind
        self._convert: Callable[[Any], tuple[np.ndarray, str]] = convert
        self.image_subscription = AdaptiveSubscription(
            self, msg_type, topic, self._on_image, reliability=values['qos_reliability'],
            on_change=self._on_qos_change, with_info=True,
            on_message_lost=self._on_frames_lost)
        self._watch_input(values['input_timeout_s'])
        self.add_post_set_parameters_callback(self._on_parameters_set)
        self.get_logger().info(
            f'camera_subscriber: {self.image_subscription.topic} ({self.transport}, qos '
            f'{values["qos_reliability"]}) -> {self.frames_publisher.topic_name}; max_rate_hz '
            f'{self.rate_limiter.max_rate_hz:g}, crop {self.crop_mode}')

    def _declare_parameters(self) -> None:
        """Declare every parameter with its descriptor."""
        # image_transport's own nodes call it so.
        self.declare_parameter('image_transport', 'raw', ParameterDescriptor(
            description="Image transport to subscribe: 'raw' (image_raw) or 'compressed' "
                        '(image_raw/compressed, JPEG/PNG).', read_only=True,
            additional_constraints=choices_text(TRANSPORTS)))
        # Declared so that a params file still naming it is refused, not silently ignored.
        self.declare_parameter('transport', '', ParameterDescriptor(
            description="Retired: renamed image_transport. Must stay '' (not set).",
            read_only=True, additional_constraints="''"))
        self.declare_parameter('qos_reliability', 'auto', ParameterDescriptor(
            description="Reliability of the image subscription: 'auto' (match the "
                        "publishers, like rosbag2), 'reliable' or 'best_effort'.",
            read_only=True, additional_constraints=choices_text(RELIABILITY_CHOICES)))
        self.declare_parameter('max_rate_hz', 0.0, ParameterDescriptor(
            description='Most frames per second passed on (Hz); 0 = every frame.',
            floating_point_range=float_range(0.0, 1000.0)))
        # 'center' by default: the model takes a square input, and squashing a 4:3 frame
        # into it distorts the leaves.
        self.declare_parameter('crop_mode', 'center', ParameterDescriptor(
            description="Crop before publishing: 'none', 'center' (centred square, default) "
                        "or 'roi'.", additional_constraints=choices_text(CROP_MODES)))
        self.declare_parameter('center_crop_fraction', 1.0, ParameterDescriptor(
            description='Side of the centred square as a fraction of the shorter image side, '
                        '(0, 1].',
            floating_point_range=float_range(0.0, 1.0)))
        self.declare_parameter('roi', [0, 0, 0, 0], ParameterDescriptor(
            description='Region of interest for crop_mode roi: [x, y, width, height] in '
                        'pixels, clipped to the image.',
            additional_constraints='4 integers >= 0; with crop_mode roi, an empty one (width or '
                                   'height 0) crops nothing and warns'))
        self.declare_parameter('diagnostics_period_s', 1.0, ParameterDescriptor(
            description='Period of the /diagnostics status (s).', read_only=True,
            floating_point_range=float_range(0.01, 3600.0)))
        self.declare_parameter('input_timeout_s', INPUT_TIMEOUT_S, ParameterDescriptor(
            description='/diagnostics warns while no image has come for this long (s): a '
                        'wrong topic, a silent camera; 0 = never.',
            floating_point_range=float_range(0.0, 3600.0)))

    def _watch_input(self, timeout_s: float) -> None:
        """Warn in /diagnostics while no image has come for ``timeout_s`` (0: never)."""
        self.diagnostics.watch_input(self._describe_input, timeout_s,
                                     explain=self._explain_silence)

    def _describe_input(self) -> str:
        """Name the images this node waits for, and how many publishers the topic has."""
        topic = self.image_subscription.topic
        return f'images on {topic} ({self.count_publishers(topic)} publishers)'

    def _explain_silence(self) -> str:
        """Say how many of the topic's publishers cannot deliver here for their QoS, and why.

        '' when every publisher can. A publisher whose QoS does not match the
        subscription's is counted among the topic's publishers, but DDS never sends it
        here: without this, a best-effort camera and ``qos_reliability: reliable`` read as
        a camera that is there but silent (rclpy logs the mismatch once, at discovery).
        """
        other = self._other_transport_hint()
        blocked = self.image_subscription.incompatible_publishers()
        policy = self.image_subscription.reliability
        if not blocked or policy is None:
            return other
        reasons = Counter(why for _, why in blocked)
        kinds = ', '.join(why if count == len(blocked) else f'{count} {why}'
                          for why, count in reasons.items())
        subscription = reliability_name(policy).replace('_', ' ')
        text = (f'{len(blocked)} of them, {kinds}, cannot reach this {subscription} '
                f'subscription (qos_reliability: {self.qos_reliability})')
        if self.qos_reliability == 'reliable' and 'best effort' in reasons:
            text += '; set qos_reliability to auto or best_effort'
        return '; '.join(part for part in (text, other) if part)

    def _other_transport_hint(self) -> str:
        """Say so when the camera publishes on the other transport's topic (or '').

        A camera switched to JPEG (``image_raw/compressed``) while this node reads
        ``image_raw`` reads as a silent camera otherwise.
        """
        topic = self.image_subscription.topic
        if self.transport == 'compressed':
            name, transport, launch = 'image_raw', 'raw', 'false'
        else:
            name, transport, launch = 'image_raw/compressed', 'compressed', 'true'
        try:
            if self.count_publishers(topic):
                return ''   # the camera is there: silent, not on the other topic
            other = self.resolve_topic_name(name)   # with the launch's remappings
            count = self.count_publishers(other) if other != topic else 0
        except Exception:  # noqa: BLE001 - a graph query during shutdown
            return ''
        if not count:
            return ''
        return (f'but {count} publisher(s) on {other}: set image_transport to {transport} '
                f'(compressed:={launch} in the launch)')

    def _on_set_parameters(self, parameters: list[Parameter]) -> SetParametersResult:
        """Check start values and runtime changes.

        ``crop_mode: roi`` and ``roi`` are not checked together: ``ros2 param load`` sets
        them one at a time in file order, so either may come first. An empty ``roi`` with
        ``crop_mode: roi`` crops nothing and warns (see :meth:`crop`).
        """
        return set_result(CHECKS.reason(parameters))

    def _on_parameters_set(self, parameters: list[Parameter]) -> None:
        """Apply accepted runtime changes."""
        for parameter in parameters:
            if parameter.name == 'max_rate_hz':
                self.rate_limiter.max_rate_hz = parameter.value
                self.diagnostics.set_value('max_rate_hz', self.rate_limiter.max_rate_hz)
            elif parameter.name == 'crop_mode':
                self.crop_mode = parameter.value
            elif parameter.name == 'center_crop_fraction':
                self.center_crop_fraction = float(parameter.value)
            elif parameter.name == 'roi':
                self.roi = [int(v) for v in parameter.value]
            elif parameter.name == 'input_timeout_s':
                self._watch_input(parameter.value)

    def _on_qos_change(self, topic: str, policy: ReliabilityPolicy, why: str) -> None:
        """Log the image subscription's reliability each time it is (re)chosen."""
        name = reliability_name(policy)
        self.diagnostics.set_value('qos_reliability', name)
        self.get_logger().info(f'subscribed to {topic}: {name} ({why})')

    def add_frame_listener(self, listener: FrameListener) -> None:
        """Also hand every published frame to ``listener(rgb, header)`` in this process.

        Used by the pipeline to pass frames to the classifier without serialising them;
        ``frames`` is then published only while it has subscribers.
        """
        self._frame_listeners.append(listener)

    def crop(self, rgb: np.ndarray) -> np.ndarray:
        """Return ``rgb`` cropped per the crop parameters."""
        if self.crop_mode == 'center':
            return center_crop(rgb, self.center_crop_fraction)
        if self.crop_mode == 'roi':
            if self.roi[2] > 0 and self.roi[3] > 0:
                return crop_roi(rgb, *self.roi)
            self.warnings.warning('roi_empty', f'crop_mode roi with an empty roi {self.roi}: '
                                  'the whole frame is used until roi is set')
        return rgb

    @property
    def dropped_by_design(self) -> int:
        """Return the frames a newer one replaced in the depth-1 queue before they were taken.

        The gaps in the publishers' sequence numbers less what the middleware reported
        lost; never negative (a frame lost after the newest one taken is no gap yet).
        """
        return max(0, self.sequence_gaps.missed - self.lost_in_transport)

    def _update_delivery_values(self) -> None:
        """Publish what the camera sent and what never reached the node."""
        gaps = self.sequence_gaps
        values = self.diagnostics.values
        for key in [key for key in values if key.startswith('publisher.')]:
            del values[key]
        self.diagnostics.set_value('sent_by_publishers', gaps.sent)
        self.diagnostics.set_value('missed_in_sequence', gaps.missed)
        self.diagnostics.set_value('dropped_by_design', self.dropped_by_design)
        self.diagnostics.set_value('lost_in_transport', self.lost_in_transport)
        for gid, state in gaps.publishers.items():
            self.diagnostics.set_value(f'publisher.{gid.hex()}.sent', state.sent)
            self.diagnostics.set_value(f'publisher.{gid.hex()}.missed', state.missed)

    def _on_frames_lost(self, count: int) -> None:
        """Count frames the middleware reports lost on the way to this node."""
        self.lost_in_transport += count
        self._update_delivery_values()

    def _note_source_colour(self, kind: str) -> None:
        """Count a frame of a grey camera and warn (throttled); a colour one clears it.

        ``kind`` is what says the frame is grey (its raw encoding, 'grey JPEG' or 'grey
        PNG'), '' for a colour frame.
        """
        if not kind:
            self._grey_since_colour = 0
            return
        self.grey_source_frames += 1
        self._grey_since_colour += 1
        self._grey_kind = kind
        self.diagnostics.set_value('frames.grey_source', self.grey_source_frames)
        self.warnings.warning('grey_source', GREY_SOURCE_WARNING.format(kind=kind))

    def _refresh_warning(self) -> None:
        """Before each status: warn while the frames come from a grey camera.

        The lasting warning sits beside the silence warning and the rejections of the
        period, which the diagnostics add to it.
        """
        self.diagnostics.warning = '' if not self._grey_since_colour else (
            f'{GREY_SOURCE_WARNING.format(kind=self._grey_kind)} ({self._grey_since_colour} '
            'since the last colour frame)')

    def _on_image(self, msg: Image | CompressedImage, info: Any = None) -> None:
        """Convert, crop and publish one image; count and skip it if it is bad."""
        key = message_key(info)
        if key is not None:
            self.sequence_gaps.add(*key)
            self._update_delivery_values()
        self.diagnostics.count_received()
        if not self.rate_limiter.allow(time.monotonic()):
            self.diagnostics.count_dropped()
            return
        start = time.perf_counter()
        try:
            rgb, grey_kind = self._convert(msg)
            rgb = self.crop(rgb)
        except ValueError as error:
            # Its slot under max_rate_hz goes to the next frame, not lost on a bad one.
            self.rate_limiter.give_back()
            reason = str(getattr(error, 'reason', 'invalid_image'))
            self.diagnostics.count_rejected(reason)
            self.warnings.warning(reason, f'rejected image ({reason}): {error}')
            return
        self._note_source_colour(grey_kind)
        if self.frames_publisher.get_subscription_count() > 0 or not self._frame_listeners:
            self.frames_publisher.publish(rgb_to_image(rgb, msg.header))
        for listener in self._frame_listeners:
            listener(rgb, msg.header)
        self.diagnostics.count_processed((time.perf_counter() - start) * 1e3)

    def destroy_node(self) -> None:
        """Destroy the adaptive subscription and the diagnostics, then the node."""
        for part in ('image_subscription', 'diagnostics'):
            if hasattr(self, part):
                getattr(self, part).destroy()
        super().destroy_node()


def main(args: list[str] | None = None) -> int:
    """Run camera_subscriber until shutdown; return the exit code."""
    return run_nodes(NODE_NAME, CameraSubscriberNode, args)


if __name__ == '__main__':
    sys.exit(main())
