"""Start, watch and stop child processes: the one spawn/stop helper of replay, bench and tests.

Children get their own process group (a Ctrl-C in the terminal reaches only the parent,
which then stops them in order) but stay in the parent's session, so the kernel schedules
them in the parent's autogroup. Output goes to one log file per child.

A parent killed outright (SIGKILL: the OOM killer, ``kill -9``, a CI timeout) runs no
clean-up at all; on Linux each child therefore asks the kernel for a SIGTERM when its
parent dies (``PR_SET_PDEATHSIG``), and stops as on any stop signal. The kernel sends it
when the *thread* that forked the child ends, so children are always forked from the main
thread or from one long-lived thread of this module, never from a short-lived caller's.

A SIGTERM or SIGHUP to the parent would end it without its ``finally`` blocks, leaving the
children running: a command that starts children runs inside :func:`stop_on_termination`,
which turns those signals into :class:`Terminated` (a KeyboardInterrupt) so the children
are stopped as on a Ctrl-C.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator, Mapping
from concurrent.futures import Future
from contextlib import contextmanager
import ctypes
from dataclasses import dataclass, field
import os
from pathlib import Path
import queue
import signal
import subprocess
import sys
import threading
import time
from types import FrameType
from typing import Any, TypeVar

STOP_TIMEOUT_S = 10.0

_OWN_PROCESS_GROUP: dict[str, Any] = (
    {'process_group': 0} if sys.version_info >= (3, 11) else {'start_new_session': True})

# The signal a child gets when its parent dies: a node stops on it as on Ctrl-C, and so
# frees its DDS shared memory (a SIGKILL would leave it in /dev/shm).
PARENT_DEATH_SIGNAL = signal.SIGTERM
_PR_SET_PDEATHSIG = 1

_T = TypeVar('_T')


# The signals that end a command like a Ctrl-C (see stop_on_termination).
TERMINATION_SIGNALS = (signal.SIGTERM, signal.SIGHUP)


class ProcessError(RuntimeError):
    """A child could not be started, or exited while it was needed."""


class Terminated(KeyboardInterrupt):
    """SIGTERM or SIGHUP arrived: unwinds like a Ctrl-C so every ``finally`` stops its children.

    ``exit_status`` is the shell's status of a command ended by that signal (143 for TERM).
    """

    def __init__(self, signum: int) -> None:
        super().__init__(f'terminated by {signal.Signals(signum).name}')
        self.signum = signum

    @property
    def exit_status(self) -> int:
        """Return 128 + the signal number."""
        return 128 + self.signum


class _Termination:
    """The state of :func:`stop_on_termination`: the signal taken, and stops in progress."""

    def __init__(self) -> None:
        self.received: int | None = None
        self.pending: int | None = None
        self.stopping = 0

    def handle(self, signum: int, frame: FrameType | None) -> None:
        """Raise Terminated for the first signal; while children are stopped, defer it."""
        if self.received is not None:
            return  # already unwinding: let the clean-up finish
        self.received = signum
        if self.stopping:
            # Raising here would cut the stop short; the next safe point raises it.
            self.pending = signum
            return
        raise Terminated(signum)

    def raise_pending(self) -> None:
        """Raise Terminated for a signal that came while children were being stopped."""
        if self.pending is not None and not self.stopping:
            signum, self.pending = self.pending, None
            raise Terminated(signum)


_termination: _Termination | None = None


@contextmanager
def stop_on_termination(signals: Iterable[int] = TERMINATION_SIGNALS) -> Iterator[None]:
    """Inside, SIGTERM and SIGHUP raise :class:`Terminated` in the main thread.

    The ``finally`` blocks then run and stop the children; a second signal is ignored
    while they do. A signal that comes while :func:`stop` runs is raised at the next safe
    point: the next :func:`start` or :func:`check_alive`, or the end of the block. A
    signal the parent ignores (``nohup``) stays ignored; the previous handlers are
    restored on exit. Outside the main thread this does nothing (Python runs signal
    handlers there only).
    """
    global _termination
    if threading.current_thread() is not threading.main_thread() or _termination is not None:
        yield
        return
    state = _Termination()
    previous: dict[int, Any] = {}

    def restore() -> None:
        global _termination
        _termination = None
        for signum, handler in previous.items():
            signal.signal(signum, signal.SIG_DFL if handler is None else handler)

    try:
        for signum in signals:
            handler = signal.getsignal(signum)
            if handler is not signal.SIG_IGN:
                previous[signum] = handler
                signal.signal(signum, state.handle)
        _termination = state
        yield
    finally:
        restore()
    state.raise_pending()


def _raise_pending_termination() -> None:
    if _termination is not None:
        _termination.raise_pending()


def ros_environment(base: Mapping[str, str] | None = None, **extra: str) -> dict[str, str]:
    """Return the environment of a child ROS process.

    Discovery stays on loopback unless the caller chose otherwise, the domain id and RMW
    are inherited, and Python output is unbuffered so logs are complete after a kill.
    """
    env = dict(os.environ if base is None else base)
    env.setdefault('ROS_AUTOMATIC_DISCOVERY_RANGE', 'LOCALHOST')
    env.setdefault('RMW_IMPLEMENTATION', 'rmw_fastrtps_cpp')
    env.setdefault('PYTHONUNBUFFERED', '1')
    env.setdefault('RCUTILS_COLORIZED_OUTPUT', '0')
    env.update(extra)
    return env


@dataclass
class ChildProcess:
    """A started child: its name, Popen handle and log file."""

    name: str
    popen: subprocess.Popen
    log_path: Path

    @property
    def pid(self) -> int:
        """Return the child's process id."""
        return self.popen.pid

    def alive(self) -> bool:
        """Return whether the child is still running."""
        return self.popen.poll() is None

    def log_tail(self, lines: int = 3) -> str:
        """Return the last non-empty lines of the child's log, joined on one line."""
        try:
            text = self.log_path.read_text(encoding='utf-8', errors='replace')
        except OSError:
            return ''
        tail = [line.strip() for line in text.strip().splitlines()[-lines:]]
        return ' | '.join(line for line in tail if line)

    def kill_9(self, timeout_s: float = 10.0) -> None:
        """Kill the child with SIGKILL (no clean-up in it) and reap it."""
        try:
            self.popen.send_signal(signal.SIGKILL)
        except ProcessLookupError:
            pass
        self.popen.wait(timeout=timeout_s)


def _parent_death_signal() -> Callable[[], None] | None:
    """Return a ``preexec_fn`` that has the child signalled when this process dies, or None.

    None where ``prctl`` is missing (not Linux). Runs in the forked child before ``exec``:
    it only calls the function resolved here and ``getppid``, nothing that takes a lock
    another thread of the parent may have held at the fork. A parent that died before the
    request was made is no longer the child's parent: the child then ends itself (SIGKILL:
    until ``exec`` it has the parent's Python signal handlers, which only set a flag).
    """
    if not sys.platform.startswith('linux'):
        return None
    try:
        prctl = ctypes.CDLL(None, use_errno=True).prctl
    except (OSError, AttributeError):
        return None
    prctl.argtypes = [ctypes.c_int, ctypes.c_ulong, ctypes.c_ulong, ctypes.c_ulong,
                      ctypes.c_ulong]
    prctl.restype = ctypes.c_int
    parent = os.getpid()
    signum = int(PARENT_DEATH_SIGNAL)

    def ask_for_signal_on_parent_death() -> None:
        prctl(_PR_SET_PDEATHSIG, signum, 0, 0, 0)
        if os.getppid() != parent:
            os.kill(os.getpid(), signal.SIGKILL)

    return ask_for_signal_on_parent_death


class _Spawner:
    """The long-lived thread that forks the children of callers outside the main thread.

    A child's parent-death signal comes when the thread that forked it ends: a worker
    thread that starts a child and returns would take the child with it.
    """

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._requests: queue.SimpleQueue[tuple[Callable[[], Any], Future]] | None = None

    def call(self, function: Callable[[], _T]) -> _T:
        """Return ``function()``, run in the main thread or in the spawner's thread."""
        if threading.current_thread() is threading.main_thread():
            return function()
        with self._lock:
            if self._requests is None:
                self._requests = queue.SimpleQueue()
                threading.Thread(target=self._serve, args=(self._requests,),
                                 name='child-process-spawner', daemon=True).start()
            requests = self._requests
        result: Future = Future()
        requests.put((function, result))
        return result.result()

    def forget(self) -> None:
        """Drop the thread (after a fork: the child process has none)."""
        self._lock = threading.Lock()
        self._requests = None

    @staticmethod
    def _serve(requests: queue.SimpleQueue[tuple[Callable[[], Any], Future]]) -> None:
        while True:
            function, result = requests.get()
            try:
                result.set_result(function())
            except BaseException as error:  # handed to the caller, which raises it
                result.set_exception(error)


_spawner = _Spawner()
os.register_at_fork(after_in_child=_spawner.forget)


def start(name: str, argv: list[str], log_path: Path, env: Mapping[str, str] | None = None,
          pipes: bool = False) -> ChildProcess:
    """Start ``argv`` as child ``name`` with stdout and stderr appended to ``log_path``.

    With ``pipes`` the child's stdin and stdout are text pipes (a worker that takes
    commands and prints results); stderr still goes to the log. On Linux the child gets
    PARENT_DEATH_SIGNAL when this process dies, however it dies.
    """
    _raise_pending_termination()
    log_path.parent.mkdir(parents=True, exist_ok=True)
    preexec = _parent_death_signal()
    with open(log_path, 'ab') as log:
        log.write(('$ ' + ' '.join(argv) + '\n').encode())
        log.flush()
        try:
            popen = _spawner.call(lambda: subprocess.Popen(
                argv, env=dict(ros_environment() if env is None else env),
                stdin=subprocess.PIPE if pipes else subprocess.DEVNULL,
                stdout=subprocess.PIPE if pipes else log, stderr=log,
                text=pipes, bufsize=1 if pipes else -1, preexec_fn=preexec,
                **_OWN_PROCESS_GROUP))
        except OSError as error:
            raise ProcessError(f'cannot start {name}: {error}') from error
    return ChildProcess(name, popen, log_path)


def stop(children: Iterable[ChildProcess], timeout_s: float = STOP_TIMEOUT_S) -> list[str]:
    """Stop children: SIGINT (a node shuts down cleanly), then SIGTERM, then SIGKILL.

    Each escalation waits for all children together, so stopping N takes at most about
    ``timeout_s`` plus two short grace periods, not N times that. A termination signal
    (see :func:`stop_on_termination`) does not interrupt it. Returns the names of the
    children that had to be killed; they are also named on stderr, with the way to free
    the shared memory their DDS participants leave behind.
    """
    state = _termination
    if state is not None:
        state.stopping += 1
    try:
        killed = _stop(list(children), timeout_s)
    finally:
        if state is not None:
            state.stopping -= 1
    if killed:
        print(f'{", ".join(killed)} did not stop within {timeout_s:g} s of Ctrl-C and '
              'SIGTERM and was killed: a killed DDS participant leaves its shared-memory '
              'segment in /dev/shm (32 MiB with Fast DDS); `fastdds shm clean` frees it',
              file=sys.stderr)
    return killed


def _stop(children: list[ChildProcess], timeout_s: float) -> list[str]:
    for child in children:
        _signal(child, signal.SIGINT)
    deadline = time.monotonic() + timeout_s
    killed: list[str] = []
    for escalation in (None, signal.SIGTERM, signal.SIGKILL):
        for child in children:
            if not child.alive():
                continue
            if escalation is not None:
                _signal(child, escalation)
            if escalation == signal.SIGKILL:
                killed.append(child.name)
            try:
                child.popen.wait(timeout=max(deadline - time.monotonic(), 0.1))
            except subprocess.TimeoutExpired:
                pass
        if not any(child.alive() for child in children):
            break
        deadline = time.monotonic() + 2.0
    for child in children:
        for stream in (child.popen.stdin, child.popen.stdout):
            if stream is not None:
                stream.close()
    return killed


def check_alive(children: Iterable[ChildProcess]) -> None:
    """Raise ProcessError naming the first child that has exited, with its log's tail.

    Inside :func:`stop_on_termination`, a termination signal deferred by :func:`stop`
    is raised here (as :class:`Terminated`).
    """
    _raise_pending_termination()
    for child in children:
        code = child.popen.poll()
        if code is not None:
            raise ProcessError(f'{child.name} exited with status {code}: '
                               f'{child.log_tail() or "no output"} (log: {child.log_path})')


@dataclass
class ProcessGroup:
    """Children started together and stopped together (a context manager)."""

    log_dir: Path
    env: Mapping[str, str] | None = None
    children: dict[str, ChildProcess] = field(default_factory=dict)

    def start(self, name: str, argv: list[str], pipes: bool = False) -> ChildProcess:
        """Start child ``name`` logging to ``log_dir/<name>.log``."""
        child = start(name, argv, self.log_dir / f'{name}.log', self.env, pipes=pipes)
        self.children[name] = child
        return child

    def check_alive(self) -> None:
        """Raise ProcessError if a child has exited."""
        check_alive(self.children.values())

    def stop(self, timeout_s: float = STOP_TIMEOUT_S) -> list[str]:
        """Stop every child (see :func:`stop`); return the names of those killed."""
        return stop(self.children.values(), timeout_s)

    def __enter__(self) -> ProcessGroup:
        """Return the group; its children are stopped on exit."""
        return self

    def __exit__(self, *exc_info: object) -> None:
        """Stop every child."""
        self.stop()


def _signal(child: ChildProcess, signum: int) -> None:
    if child.alive():
        try:
            child.popen.send_signal(signum)
        except (ProcessLookupError, OSError):
            pass

