"""Publish a stream of camera frames from its own process, like a camera driver would.

Used by the cross-process delivery tests: it creates its publisher, prints ``READY``,
waits for a ``go`` line on stdin (so the test can start the nodes under test first and
let them see this publisher), waits until a subscriber has matched, publishes ``--count``
frames at ``--rate-hz``, waits (reliable) until every subscriber has acknowledged them
and prints ``DONE <n>``. It then keeps its publisher until stdin gives another line or
closes. Each frame's stamp is its publish time; its ``frame_id`` is
``<--frame-id>/<index>``, so a receiver can tell runs apart and see which frames it lost.

With ``--small-ends`` the first and the last frame are tiny (they fit any transport) and
after the first it prints ``FIRST`` and waits for a line on stdin: a test can then make
sure the node took the first frame before the stream starts, so that every frame sent is
inside the span of sequence numbers the node saw.

Run it with ``ROS_AUTOMATIC_DISCOVERY_RANGE=LOCALHOST`` and a private ``ROS_DOMAIN_ID``.
"""

from __future__ import annotations

import argparse
import array
from pathlib import Path
import sys
import time

import cv2
import numpy as np
import rclpy
from rclpy.duration import Duration
from rclpy.node import Node
from rclpy.qos import QoSProfile, ReliabilityPolicy
from sensor_msgs.msg import Image

LEAF_PHOTO = Path(__file__).resolve().parents[1] / 'data' / 'leaves' / 'Tomato___healthy.jpg'


def make_frame_bgr(width: int, height: int) -> np.ndarray:
    """Return a ``height``×``width`` BGR frame: a real leaf photo resized, else a gradient."""
    bgr = cv2.imread(str(LEAF_PHOTO), cv2.IMREAD_COLOR)
    if bgr is None:
        ramp = np.linspace(0, 255, width, dtype=np.uint8)
        return np.ascontiguousarray(np.broadcast_to(ramp[None, :, None], (height, width, 3)))
    return cv2.resize(bgr, (width, height), interpolation=cv2.INTER_LINEAR)


def wait_for_subscriber(node: Node, publisher, timeout_s: float) -> bool:
    """Wait until ``publisher`` has matched a subscriber; return whether it has.

    The reader may match this writer a moment later; a reliable stream loses nothing by
    it, and the tests count only what the nodes received.
    """
    deadline = time.monotonic() + timeout_s
    while publisher.get_subscription_count() == 0 and time.monotonic() < deadline:
        rclpy.spin_once(node, timeout_sec=0.05)
    return publisher.get_subscription_count() > 0


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    """Parse the command line."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument('--topic', default='image_raw')
    parser.add_argument('--width', type=int, default=640)
    parser.add_argument('--height', type=int, default=480)
    parser.add_argument('--rate-hz', type=float, default=10.0)
    parser.add_argument('--count', type=int, default=50)
    parser.add_argument('--reliability', choices=('reliable', 'best_effort'),
                        default='reliable')
    parser.add_argument('--frame-id', default='camera')
    parser.add_argument('--ack-timeout-s', type=float, default=30.0,
                        help='wait this long for a reliable stream to be acknowledged')
    parser.add_argument('--no-wait', action='store_true', help='do not wait for "go"')
    parser.add_argument('--small-ends', action='store_true',
                        help='tiny first and last frames; wait for a line after the first')
    parser.add_argument('--match-timeout-s', type=float, default=10.0,
                        help='wait this long for a subscriber before publishing')
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    """Publish the stream; return the exit code."""
    args = parse_args(argv)
    rclpy.init()
    node = Node('stream_publisher')
    if args.reliability == 'reliable':
        # The default publisher QoS: reliable, keep last 10, volatile.
        qos = QoSProfile(depth=10)
    else:
        qos = QoSProfile(depth=5, reliability=ReliabilityPolicy.BEST_EFFORT)
    publisher = node.create_publisher(Image, args.topic, qos)
    frame = make_frame_bgr(args.width, args.height)
    payload = array.array('B', frame.tobytes())
    small = make_frame_bgr(32, 24)
    small_payload = array.array('B', small.tobytes())
    print('READY', flush=True)
    if not args.no_wait:
        sys.stdin.readline()
    wait_for_subscriber(node, publisher, args.match_timeout_s)
    period_s = 1.0 / args.rate_hz
    next_s = time.monotonic()
    sent = 0
    try:
        for index in range(args.count):
            end = args.small_ends and index in (0, args.count - 1)
            image, data = (small, small_payload) if end else (frame, payload)
            msg = Image()
            msg.header.stamp = node.get_clock().now().to_msg()
            msg.header.frame_id = f'{args.frame_id}/{sent}'
            msg.height, msg.width = image.shape[:2]
            msg.encoding = 'bgr8'
            msg.step = image.shape[1] * 3
            msg.data = data
            publisher.publish(msg)
            sent += 1
            if args.small_ends and index == 0:
                print('FIRST', flush=True)
                sys.stdin.readline()
                next_s = time.monotonic()
            next_s += period_s
            time.sleep(max(0.0, next_s - time.monotonic()))
        if args.reliability == 'reliable':
            publisher.wait_for_all_acked(Duration(seconds=args.ack_timeout_s))
        print(f'DONE {sent}', flush=True)
        # Stay matched until the test is done with this stream.
        sys.stdin.readline()
    except KeyboardInterrupt:
        pass
    finally:
        node.destroy_node()
        rclpy.try_shutdown()
    return 0


if __name__ == '__main__':
    sys.exit(main())
