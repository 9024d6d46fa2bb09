"""A callback caught by a shutdown: it ends the spin, not the process; a stop signal.

rclpy's SIGINT handler (kept by helper processes; the node processes use ``StopRequest``)
and an external ``rclpy.shutdown`` shut the ROS context down while a callback may be
running. A publish in it then fails ("publisher's context is invalid"); before
``spin_to_shutdown`` that error escaped the spin, so the map recorder stopped with a
traceback and exit status 1 (seen in 7 of 10 kill -9 and restart runs on a loaded
machine). These tests shut the context down from inside a callback as that handler does
(``rcl_shutdown`` of the context's handle, the Python objects left alone), which is that
race made certain. The last tests cover the node processes' own stop signal: the context
stays up while the nodes finish (see ``test/system/test_stop_signal.py``).
"""

from __future__ import annotations

from pathlib import Path
import signal
import subprocess
import sys
from types import SimpleNamespace

from helpers.processes import child_environment
import pytest

rclpy = pytest.importorskip('rclpy')

from helpers.ros import wait_for  # noqa: E402
from rclpy.duration import Duration  # noqa: E402
from rclpy.node import Node  # noqa: E402
from std_msgs.msg import String  # noqa: E402

from plant_disease_ros.ros.startup import spin_to_shutdown  # noqa: E402


@pytest.fixture
def context() -> object:
    """An rclpy context of this test's own (the tests shut it down)."""
    context = rclpy.Context()
    rclpy.init(context=context)
    yield context
    rclpy.try_shutdown(context=context)


def test_publish_after_shutdown_in_a_callback_ends_the_spin(context: object) -> None:
    """The publish fails with the context gone; spin_to_shutdown returns quietly."""
    node = Node('shutdown_race', context=context)
    publisher = node.create_publisher(String, 'race', 10)
    failures: list[BaseException] = []

    def tick() -> None:
        context.handle.shutdown()  # what the SIGINT handler does, in C
        try:
            publisher.publish(String(data='after the shutdown'))
        except Exception as error:  # the error the recorder's marker timer raised
            failures.append(error)
            raise

    node.create_timer(0.01, tick)
    try:
        spin_to_shutdown(node, 'test')
    finally:
        node.destroy_node()
    assert len(failures) == 1
    assert 'context is invalid' in str(failures[0])
    assert not context.ok()


def test_a_fault_while_running_still_propagates(context: object) -> None:
    """An error raised while the context runs is a fault, not part of a shutdown."""
    first = Node('fault_one', context=context)
    second = Node('fault_two', context=context)
    calls: list[str] = []

    def fail() -> None:
        calls.append('fail')
        raise ValueError('a real fault')

    second.create_timer(0.01, fail)
    try:
        with pytest.raises(ValueError, match='a real fault'):
            spin_to_shutdown([first, second], 'test')
    finally:
        first.destroy_node()
        second.destroy_node()
    assert calls == ['fail']
    assert context.ok()


RUN_NODES_SCRIPT = """
import sys
import rclpy
from rclpy.node import Node
from plant_disease_ros.ros.startup import run_nodes

def create():
    if sys.argv[1] == 'shutdown':
        rclpy.get_default_context().handle.shutdown()  # Ctrl-C while the node is built
    else:
        raise ZeroDivisionError('a fault in a constructor')
    return Node('built_during_shutdown')

sys.exit(run_nodes('race', create, []))
"""


@pytest.mark.parametrize('case', ['shutdown', 'fault'])
def test_ctrl_c_while_the_nodes_are_built(case: str, tmp_path: Path) -> None:
    """run_nodes: a shutdown during construction is a clean stop; a fault is not hidden."""
    script = tmp_path / 'run_nodes_race.py'
    script.write_text(RUN_NODES_SCRIPT)
    done = subprocess.run([sys.executable, str(script), case], env=child_environment(),
                          capture_output=True, text=True, timeout=60)
    if case == 'shutdown':
        assert done.returncode == 0, done.stderr
        assert 'Traceback' not in done.stderr, done.stderr
    else:
        assert done.returncode == 1, done.stderr
        assert 'ZeroDivisionError: a fault in a constructor' in done.stderr


def test_a_second_signal_insists_only_after_the_same_stop_window(monkeypatch) -> None:
    """Two deliveries of one Ctrl-C are one request; a later signal cuts the stop short."""
    from plant_disease_ros.ros import startup, stop_request

    now = [100.0]
    monkeypatch.setattr(stop_request, 'time', SimpleNamespace(monotonic=lambda: now[0]))
    stop = startup.StopRequest()
    assert not stop.requested
    stop._handle(signal.SIGINT, None)
    assert (stop.requested, stop.signal_name) == (True, 'SIGINT')
    now[0] += startup.SAME_STOP_S / 2  # launch's SIGINT after the terminal's
    stop._handle(signal.SIGTERM, None)
    assert stop.signal_name == 'SIGINT'
    now[0] += startup.SAME_STOP_S
    with pytest.raises(KeyboardInterrupt):
        stop._handle(signal.SIGINT, None)
    assert stop.cut_short('test', 'nothing') == startup.CUT_SHORT_STATUS
    now[0] += startup.SAME_STOP_S
    stop._handle(signal.SIGINT, None)  # once cut short, later signals are only noted


INSTALL_SCRIPT = """
import signal
from plant_disease_ros.ros.startup import StopRequest

signal.signal(signal.SIGHUP, signal.SIG_IGN)  # as nohup starts it
stop = StopRequest()
stop.install()
print(signal.getsignal(signal.SIGINT) == stop._handle,
      signal.getsignal(signal.SIGTERM) == stop._handle,
      signal.getsignal(signal.SIGHUP) is signal.SIG_IGN)
"""


def test_the_stop_signals_are_taken_but_an_ignored_hangup_stays_ignored() -> None:
    """SIGINT and SIGTERM always stop the node; SIGHUP too, unless started with nohup."""
    done = subprocess.run([sys.executable, '-c', INSTALL_SCRIPT], env=child_environment(),
                          capture_output=True, text=True, timeout=60)
    assert done.stdout.split() == ['True', 'True', 'True'], done.stderr


class Taker(Node):
    """A node that takes the last messages of 'last' before it stops."""

    def __init__(self, context: object) -> None:
        super().__init__('taker', context=context)
        self.taken: list[str] = []
        self.create_subscription(String, 'last', lambda msg: self.taken.append(msg.data), 10)

    def inputs_still_published(self) -> list[str]:
        return ['/last'] if self.count_publishers('/last') > 0 else []

    def messages_taken(self) -> int:
        return len(self.taken)


def test_a_stop_takes_what_has_arrived_then_gives_up_on_a_publisher_that_stays(
        context: object, monkeypatch) -> None:
    """Asked to stop, a taker spins on: it gets every queued message, then stops waiting."""
    from plant_disease_ros.ros import startup

    # No wait at all for publishers: what has arrived is still taken.
    monkeypatch.setattr(startup, 'DRAIN_TIMEOUT_S', 0.0)
    taker = Taker(context)
    sender = Node('sender', context=context)
    publisher = sender.create_publisher(String, 'last', 10)
    assert wait_for(lambda: publisher.get_subscription_count() == 1)
    for number in range(3):
        publisher.publish(String(data=str(number)))
    # Acknowledged: all 3 are in the taker's queue before the stop, however busy the host.
    assert publisher.wait_for_all_acked(Duration(seconds=30))
    stop = startup.StopRequest()
    stop.signal_name = 'SIGINT'
    warnings: list[str] = []
    monkeypatch.setattr(startup, 'get_logger', lambda name: SimpleNamespace(
        info=lambda text: None, warning=warnings.append))
    try:
        spin_to_shutdown(taker, 'test', stop)
    finally:
        taker.destroy_node()
        sender.destroy_node()
    assert taker.taken == ['0', '1', '2']
    assert warnings == ['stopping while /last still has publishers after 0 s: what they '
                        'publish from now on is not taken']
    assert context.ok()


CUT_SHORT_SCRIPT = """
import os
import signal
import sys
from rclpy.node import Node
from plant_disease_ros.ros.startup import run_nodes


class SlowToStop(Node):
    cut = False

    def destroy_node(self):
        if not self.cut:  # a second Ctrl-C while it publishes what it held
            self.cut = True
            raise KeyboardInterrupt
        super().destroy_node()


def create():
    node = SlowToStop('slow_to_stop')
    node.create_timer(0.1, lambda: os.kill(os.getpid(), signal.SIGINT))
    return node

sys.exit(run_nodes('cut', create, []))
"""


def test_a_second_signal_while_the_nodes_stop_is_one_line_and_status_130(
        tmp_path: Path) -> None:
    """The stop cut short: no traceback, what was not done is said, rclpy is released."""
    script = tmp_path / 'cut_short.py'
    script.write_text(CUT_SHORT_SCRIPT)
    done = subprocess.run([sys.executable, str(script)], env=child_environment(),
                          capture_output=True, text=True, timeout=60)
    assert done.returncode == 130, done.stderr
    assert 'Traceback' not in done.stderr, done.stderr
    assert ('cut: stop cut short by a second signal: what the nodes still held (a '
            "classifier's detections waiting for a GPS fix) was not published") in done.stderr
