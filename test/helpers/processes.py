"""Start the package's nodes as processes, as the launch file would.

Command lines come from ``plant_disease_ros.ros.node_set`` (the one description of the
node set) and processes are started and stopped by ``plant_disease_ros.tools.process``
(the one spawn/stop helper); the environment is the test run's (see test/conftest.py).
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass
import os
from pathlib import Path
import signal
import subprocess
import time

from plant_disease_ros.ros.node_set import EXECUTABLES
from plant_disease_ros.tools.process import (
    ChildProcess,
    ProcessGroup,
    ros_environment,
    start,
)

PROFILE_VARIABLE = 'FASTDDS_DEFAULT_PROFILES_FILE'


def child_environment(*, profile: bool = True, **extra: str) -> dict[str, str]:
    """Return the environment of a child ROS process of a test.

    It inherits the run's loopback discovery and domain id; ``profile=False`` runs it
    without the package's Fast DDS profile (a third-party camera driver, say).
    """
    env = ros_environment(**extra)
    if not profile:
        env.pop(PROFILE_VARIABLE, None)
    return env


def node_argv(name: str, *ros_args: str) -> list[str]:
    """Return the command line of executable ``name`` with ``--ros-args ros_args``."""
    argv = EXECUTABLES[name].command()
    return [*argv, '--ros-args', *ros_args] if ros_args else argv


def run_node(name: str, *ros_args: str, timeout_s: float = 60.0) -> subprocess.CompletedProcess:
    """Run executable ``name`` to its end; return its exit status and output (text)."""
    return subprocess.run(node_argv(name, *ros_args), env=child_environment(),
                          capture_output=True, text=True, timeout=timeout_s,
                          stdin=subprocess.DEVNULL)


class NodeProcesses:
    """Node processes of one test, each logging to ``log_dir/<name>.log``."""

    def __init__(self, log_dir: Path, env: Mapping[str, str] | None = None,
                 remove_killed_segments: bool = True) -> None:
        """Start nothing yet; children get ``env`` (default: :func:`child_environment`).

        ``remove_killed_segments``: :meth:`stop` removes the shared memory of the children
        that were killed (see :meth:`kill_9`); False leaves it for the test to clean (with
        ``fastdds shm clean``), listed in :attr:`killed_segments`.
        """
        self.group = ProcessGroup(log_dir, child_environment() if env is None else env)
        self._argv: dict[str, list[str]] = {}
        self._remove_killed_segments = remove_killed_segments
        # The segments (with their lock files) of the children killed so far.
        self.killed_segments: list[Path] = []

    def start(self, name: str, *ros_args: str) -> ChildProcess:
        """Start executable ``name`` with ``ros_args``."""
        self._argv[name] = node_argv(name, *ros_args)
        return self.group.start(name, self._argv[name])

    def start_script(self, name: str, argv: list[str],
                     env: Mapping[str, str] | None = None) -> ChildProcess:
        """Start a helper program ``argv`` with text pipes on its stdin and stdout.

        It gets ``env`` if given, else the nodes' environment.
        """
        child = start(name, argv, self.group.log_dir / f'{name}.log',
                      self.group.env if env is None else env, pipes=True)
        self.group.children[name] = child
        return child

    def kill_9(self, name: str) -> ChildProcess:
        """kill -9 child ``name`` as a crash would; its shared memory goes at :meth:`stop`.

        A killed process cannot release its DDS participant's shared-memory segment (32 MiB
        of RAM in /dev/shm) and Fast DDS does not reclaim it: the restarted node must cope
        with it lying there, so it stays until the block ends, then the test removes it.
        """
        child = self.group.children[name]
        self.killed_segments.extend(owned_shared_memory(child.popen.pid))
        child.kill_9()
        return child

    def restart(self, name: str) -> ChildProcess:
        """Start ``name`` again with the command line it was first started with."""
        return self.group.start(name, self._argv[name])

    def __getitem__(self, name: str) -> ChildProcess:
        """Return the child ``name`` (the latest one started under that name)."""
        return self.group.children[name]

    def check_alive(self) -> None:
        """Raise ProcessError naming a child that exited, with its log's tail."""
        self.group.check_alive()

    def logs(self) -> str:
        """Return every child's log (for failure messages)."""
        return '\n'.join(f'--- {child.name}\n' + child.log_path.read_text(errors='replace')
                         for child in self.group.children.values()
                         if child.log_path.exists())

    def stop(self) -> None:
        """Stop every child (SIGINT, then harder); remove what the killed ones left.

        A child that does not stop in time (a busy host) is killed too: its segments,
        listed before the signals, are removed like those of :meth:`kill_9`.
        """
        owned = {name: owned_shared_memory(child.popen.pid)
                 for name, child in self.group.children.items() if child.alive()}
        for name in self.group.stop():
            self.killed_segments.extend(owned.get(name, []))
        if self._remove_killed_segments:
            for path in self.killed_segments:
                path.unlink(missing_ok=True)


@contextmanager
def node_processes(log_dir: Path, env: Mapping[str, str] | None = None,
                   remove_killed_segments: bool = True) -> Iterator[NodeProcesses]:
    """Give a block a NodeProcesses; stop its children at the end, printing their logs on error."""
    processes = NodeProcesses(log_dir, env, remove_killed_segments)
    try:
        yield processes
    except BaseException:
        print(processes.logs())
        raise
    finally:
        processes.stop()


def processes_with(text: str) -> list[int]:
    """Return the ids of live processes (not zombies) whose command line contains ``text``."""
    found = []
    for entry in Path('/proc').iterdir():
        if not entry.name.isdigit() or int(entry.name) == os.getpid():
            continue
        try:
            cmdline = (entry / 'cmdline').read_bytes().replace(b'\0', b' ').decode()
            state = (entry / 'stat').read_text().split(') ', 1)[1][:1]
        except OSError:
            continue
        if text in cmdline and state != 'Z':
            found.append(int(entry.name))
    return found


def children_of(parent: int) -> list[int]:
    """Return the ids of live (not zombie) processes whose parent is ``parent``."""
    found = []
    for entry in Path('/proc').iterdir():
        if not entry.name.isdigit():
            continue
        try:
            fields = (entry / 'stat').read_text().rsplit(') ', 1)[1].split()
        except (OSError, IndexError):
            continue
        if int(fields[1]) == parent and fields[0] != 'Z':
            found.append(int(entry.name))
    return found


def owned_shared_memory(pid: int) -> list[Path]:
    """Return the Fast DDS shared-memory segments process ``pid`` owns, with their locks.

    A segment's owner holds its ``<name>_el`` lock file open; readers only map the
    segment. Listening-port files are shared by all processes and are left out.
    """
    owned: list[Path] = []
    try:
        descriptors = list(Path(f'/proc/{pid}/fd').iterdir())
    except OSError:
        return owned
    for descriptor in descriptors:
        try:
            target = os.readlink(descriptor)
        except OSError:
            continue
        name = Path(target).name
        if (target.startswith('/dev/shm/fastdds_') and name.endswith('_el')
                and not name.startswith('fastdds_port')):
            owned += [Path(target), Path(target[:-len('_el')])]
    return owned


@dataclass
class SignalledRun:
    """What :func:`signal_once_started` saw: the children, the survivors, the stderr."""

    children: list[int]
    left: list[int]
    returncode: int
    stderr: str


def signal_once_started(process: subprocess.Popen, find_children: Callable[[], list[int]],
                        count: int, signum: int, start_timeout_s: float = 90.0,
                        exit_timeout_s: float = 40.0) -> SignalledRun:
    """Send ``signum`` to ``process`` once ``find_children()`` lists ``count`` processes.

    Waits a second more (the children are running, not starting), sends the signal and
    waits for the exit. Survivors (orphans) are listed in ``left`` and then killed, so a
    failing test leaves nothing behind; a process that does not exit is killed too.
    AssertionError when the children never came up (with the process's stderr).
    """
    children: list[int] = []
    stderr = ''
    try:
        deadline = time.monotonic() + start_timeout_s
        while (time.monotonic() < deadline and len(children) < count
               and process.poll() is None):
            children = find_children()
            time.sleep(0.2)
        if len(children) < count:
            if process.poll() is None:
                process.kill()
            _, stderr = process.communicate()
            raise AssertionError(f'{len(children)} of {count} children came up:\n{stderr}')
        time.sleep(1.0)
        process.send_signal(signum)
        _, stderr = process.communicate(timeout=exit_timeout_s)
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()
        left = sorted(set(find_children())
                      | {pid for pid in children if Path(f'/proc/{pid}').exists()})
        for pid in left:
            try:
                os.kill(pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
    return SignalledRun(children, left, process.returncode, stderr)
