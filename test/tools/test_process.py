"""tools/process: real child processes started, watched and stopped, escalating as needed."""

from __future__ import annotations

from collections.abc import Callable
import os
from pathlib import Path
import signal
import subprocess
import sys
import threading
import time

import pytest

from plant_disease_ros.tools.process import (
    check_alive,
    ChildProcess,
    ProcessError,
    ProcessGroup,
    ros_environment,
    start,
    stop,
    stop_on_termination,
    Terminated,
)

# A child that reports 'ready' once its signal handlers are in place, then waits. It
# handles SIGINT as Python does by default even where the test run ignores it (a
# background job or nohup: ignored signals are inherited).
CHILD = """
import signal, sys, time
signal.signal(signal.SIGINT, signal.default_int_handler)
for name in sys.argv[1:]:
    signal.signal(getattr(signal, name), signal.SIG_IGN)
print('ready', flush=True)
while True:
    time.sleep(0.05)
"""


def wait_until(predicate: Callable[[], bool], timeout_s: float = 30.0) -> bool:
    """Poll ``predicate`` until it holds or ``timeout_s`` passes; return its last value."""
    deadline = time.monotonic() + timeout_s
    while not predicate():
        if time.monotonic() > deadline:
            return False
        time.sleep(0.02)
    return True


def is_ready(child: ChildProcess) -> bool:
    """Return whether the child has printed its 'ready' line (the log's header holds argv)."""
    return 'ready' in child.log_path.read_text().splitlines()


def start_child(tmp_path: Path, name: str, *ignored: str) -> ChildProcess:
    """Start a Python child ignoring the ``ignored`` signals; return it once it is ready."""
    child = start(name, [sys.executable, '-c', CHILD, *ignored], tmp_path / f'{name}.log')
    assert wait_until(lambda: is_ready(child)), child.log_tail()
    return child


def test_ros_environment_defaults_and_keeps_what_is_set() -> None:
    """Loopback discovery and unbuffered output by default; the caller's values are kept."""
    env = ros_environment({'ROS_DOMAIN_ID': '42', 'PATH': '/bin'})
    assert env['ROS_AUTOMATIC_DISCOVERY_RANGE'] == 'LOCALHOST' and env['ROS_DOMAIN_ID'] == '42'
    assert env['PYTHONUNBUFFERED'] == '1' and env['PATH'] == '/bin'
    env = ros_environment({'ROS_AUTOMATIC_DISCOVERY_RANGE': 'SUBNET'}, ROS_LOG_DIR='/tmp/x')
    assert env['ROS_AUTOMATIC_DISCOVERY_RANGE'] == 'SUBNET' and env['ROS_LOG_DIR'] == '/tmp/x'


def test_a_child_stops_on_sigint_and_logs_its_command(tmp_path: Path) -> None:
    """SIGINT is enough for a well-behaved child; its log starts with the command line."""
    child = start_child(tmp_path, 'polite')
    assert stop([child], timeout_s=30.0) == []
    assert child.popen.returncode == -signal.SIGINT
    log = child.log_path.read_text()
    assert log.startswith(f'$ {sys.executable} -c') and 'ready' in log.splitlines()


def test_a_child_ignoring_sigint_gets_sigterm(tmp_path: Path) -> None:
    """A child that ignores SIGINT is escalated to SIGTERM after the timeout."""
    child = start_child(tmp_path, 'deaf', 'SIGINT')
    stop([child], timeout_s=0.2)
    assert child.popen.returncode == -signal.SIGTERM


def test_a_child_ignoring_sigint_and_sigterm_gets_sigkill(
        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """The last resort is SIGKILL; stop() returns with every child reaped, names the killed."""
    stubborn = start_child(tmp_path, 'stubborn', 'SIGINT', 'SIGTERM')
    polite = start_child(tmp_path, 'polite')
    assert stop([stubborn, polite], timeout_s=0.2) == ['stubborn']
    assert stubborn.popen.returncode == -signal.SIGKILL
    assert polite.popen.returncode == -signal.SIGINT
    # The user learns that the killed child's shared memory is left, and how to free it.
    error = capsys.readouterr().err
    assert 'stubborn did not stop' in error and 'fastdds shm clean' in error
    assert 'polite' not in error


def test_children_have_their_own_process_group(tmp_path: Path) -> None:
    """A Ctrl-C in the terminal reaches the parent only; the parent stops the children."""
    child = start_child(tmp_path, 'grouped')
    try:
        assert os.getpgid(child.pid) == child.pid != os.getpgid(0)
        assert os.getsid(child.pid) == os.getsid(0)
    finally:
        stop([child])


def test_check_alive_names_the_child_that_exited(tmp_path: Path) -> None:
    """An exited child is a ProcessError with its name, status and the end of its log."""
    running = start_child(tmp_path, 'running')
    failing = 'print("bad parameter"); raise SystemExit(3)'
    failed = start('failing', [sys.executable, '-c', failing], tmp_path / 'failing.log')
    try:
        assert wait_until(lambda: not failed.alive())
        with pytest.raises(ProcessError) as raised:
            check_alive([running, failed])
        message = str(raised.value)
        assert 'failing exited with status 3' in message and 'bad parameter' in message
        assert str(tmp_path / 'failing.log') in message
    finally:
        stop([running, failed])


def test_a_missing_program_is_a_process_error(tmp_path: Path) -> None:
    """A command that cannot be started raises ProcessError naming the child."""
    with pytest.raises(ProcessError, match='cannot start ghost'):
        start('ghost', [str(tmp_path / 'no_such_program')], tmp_path / 'ghost.log')


def test_process_group_stops_its_children_on_exit(tmp_path: Path) -> None:
    """The group logs each child to log_dir/<name>.log and stops them all on exit."""
    with ProcessGroup(tmp_path / 'logs') as group:
        for name in ('one', 'two'):
            group.start(name, [sys.executable, '-c', CHILD])
        assert wait_until(lambda: all(is_ready(child) for child in group.children.values()))
        group.check_alive()
        children = list(group.children.values())
    assert [child.log_path for child in children] == [tmp_path / 'logs' / 'one.log',
                                                       tmp_path / 'logs' / 'two.log']
    assert not any(child.alive() for child in children)


def test_a_piped_worker_answers_on_stdout(tmp_path: Path) -> None:
    """With pipes, the child reads commands on stdin and answers on stdout."""
    worker = start('echo', [sys.executable, '-c',
                            'import sys\nfor line in sys.stdin: print(line.upper(), end="", '
                            'flush=True)'], tmp_path / 'echo.log', pipes=True)
    try:
        worker.popen.stdin.write('ping\n')
        worker.popen.stdin.flush()
        assert worker.popen.stdout.readline() == 'PING\n'
    finally:
        stop([worker])
    assert not worker.alive()


# A parent that starts two children in a ProcessGroup inside stop_on_termination, prints
# their pids and waits; a termination signal must unwind it and stop the children.
# The parent takes SIGTERM and SIGHUP as a command started from a terminal does, also
# where the test run ignores them (under nohup).
PARENT = """
import signal, sys, time
from pathlib import Path
for signum in (signal.SIGTERM, signal.SIGHUP):
    signal.signal(signum, signal.SIG_DFL)
from plant_disease_ros.tools.process import ProcessGroup, stop_on_termination, Terminated
child = sys.argv[2]
try:
    with stop_on_termination():
        group = ProcessGroup(Path(sys.argv[1]))
        try:
            for name in ('one', 'two'):
                group.start(name, [sys.executable, '-c', child])
            print(' '.join(str(c.pid) for c in group.children.values()), flush=True)
            while True:
                time.sleep(0.05)
        finally:
            group.stop(timeout_s=60.0)
except Terminated as stopped:
    print(stopped, file=sys.stderr)
    sys.exit(stopped.exit_status)
"""


def pid_running(pid: int) -> bool:
    """Return whether ``pid`` is a live (not zombie) process."""
    try:
        state = Path(f'/proc/{pid}/stat').read_text().split(') ', 1)[1][:1]
    except OSError:
        return False
    return state != 'Z'


def children_ready(parent: subprocess.Popen, logs: Path, names: tuple[str, ...]) -> list[int]:
    """Return the children's pids the parent printed, once each has logged 'ready'."""
    pids = [int(pid) for pid in parent.stdout.readline().split()]
    assert len(pids) == len(names)
    assert wait_until(lambda: all('ready' in (logs / f'{name}.log').read_text()
                                  for name in names))
    return pids


def end_all(parent: subprocess.Popen, pids: list[int]) -> list[int]:
    """Kill the parent if it runs, then the children still running; return those.

    Survivors are noted, then killed: a failing run leaves nothing behind.
    """
    if parent.poll() is None:
        parent.kill()
        parent.wait()
    left = [pid for pid in pids if pid_running(pid)]
    for pid in left:
        os.kill(pid, signal.SIGKILL)
    return left


@pytest.mark.parametrize('signum', [signal.SIGTERM, signal.SIGHUP])
def test_a_termination_signal_stops_the_children(tmp_path: Path, signum: int) -> None:
    """SIGTERM/SIGHUP to the parent: its children are stopped, and it exits 128 + signal."""
    parent = subprocess.Popen([sys.executable, '-c', PARENT, str(tmp_path), CHILD],
                              stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    pids: list[int] = []
    left: list[int] = []
    try:
        pids = children_ready(parent, tmp_path, ('one', 'two'))
        parent.send_signal(signum)
        _, err = parent.communicate(timeout=30)
    finally:
        left = end_all(parent, pids)
    assert not left
    assert parent.returncode == 128 + signum, err
    assert f'terminated by {signal.Signals(signum).name}' in err


def test_stop_on_termination_restores_the_handlers_and_keeps_ignored_ones() -> None:
    """Handlers are the previous ones afterwards; a signal ignored before stays ignored."""
    previous_term = signal.getsignal(signal.SIGTERM)
    previous_hup = signal.signal(signal.SIGHUP, signal.SIG_IGN)
    try:
        with stop_on_termination():
            assert signal.getsignal(signal.SIGHUP) is signal.SIG_IGN
            assert callable(signal.getsignal(signal.SIGTERM))
            assert signal.getsignal(signal.SIGTERM) is not previous_term
            with pytest.raises(Terminated) as raised:
                os.kill(os.getpid(), signal.SIGTERM)
                time.sleep(1.0)  # the handler runs at the next bytecode
            assert raised.value.exit_status == 143
        assert signal.getsignal(signal.SIGTERM) is previous_term
        assert signal.getsignal(signal.SIGHUP) is signal.SIG_IGN
    finally:
        signal.signal(signal.SIGHUP, previous_hup)


def test_a_signal_during_stop_lets_the_stop_finish_then_raises(tmp_path: Path) -> None:
    """A SIGTERM while children are being stopped does not cut the stop short."""
    deaf = start_child(tmp_path, 'deaf', 'SIGINT')
    # Sent while stop() waits for the SIGINT-deaf child (1 s before it escalates).
    timer = threading.Timer(0.3, os.kill, (os.getpid(), signal.SIGTERM))
    reached = []
    try:
        with pytest.raises(Terminated):
            with stop_on_termination():
                timer.start()
                stop([deaf], timeout_s=1.0)
                reached.append('stopped')
                assert not deaf.alive() and deaf.popen.returncode == -signal.SIGTERM
                check_alive([])  # a safe point: the deferred signal is raised here
                reached.append('not raised')
    finally:
        timer.cancel()
        stop([deaf])
    assert reached == ['stopped']


# A parent that starts one child from its main thread and one from a worker thread that
# ends at once (the parent-death signal follows the forking thread), prints their pids
# and waits to be killed.
KILLED_PARENT = """
import sys, threading, time
from pathlib import Path
from plant_disease_ros.tools.process import start
log_dir, child = Path(sys.argv[1]), sys.argv[2]
children = [start('main', [sys.executable, '-c', child], log_dir / 'main.log')]
worker = threading.Thread(target=lambda: children.append(
    start('worker', [sys.executable, '-c', child], log_dir / 'worker.log')))
worker.start()
worker.join()
print(' '.join(str(c.pid) for c in children), flush=True)
while True:
    time.sleep(0.05)
"""


def test_children_end_when_the_parent_is_killed_with_sigkill(tmp_path: Path) -> None:
    """kill -9 of the parent (no clean-up runs in it): the kernel stops its children, those
    started from the main thread and from a thread that has ended since."""
    parent = subprocess.Popen([sys.executable, '-c', KILLED_PARENT, str(tmp_path), CHILD],
                              stdout=subprocess.PIPE, text=True)
    pids: list[int] = []
    left: list[int] = []
    try:
        # Both children are running (ready) after their starting thread ended.
        pids = children_ready(parent, tmp_path, ('main', 'worker'))
        assert all(pid_running(pid) for pid in pids)
        parent.kill()
        parent.wait()
        # Generous: the children only need to be scheduled once to end.
        wait_until(lambda: not any(pid_running(pid) for pid in pids), timeout_s=60.0)
    finally:
        left = end_all(parent, pids)
    assert not left
