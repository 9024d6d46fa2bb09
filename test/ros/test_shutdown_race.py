"""A callback caught by Ctrl-C: the shutdown ends the spin, not the process.

Ctrl-C shuts the ROS context down while a callback may be running. A publish in it then
fails ("publisher's context is invalid"); before ``spin_to_shutdown`` that error escaped
the spin, so the map recorder stopped with a traceback and exit status 1 (seen in 7 of 10
kill -9 and restart runs on a loaded machine). These tests shut the context down from
inside a callback as rclpy's SIGINT handler does (``rcl_shutdown`` of the context's
handle, the Python objects left alone), which is that race made certain.
"""

from __future__ import annotations

from pathlib import Path
import subprocess
import sys

from helpers.processes import child_environment
import pytest

rclpy = pytest.importorskip('rclpy')

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
