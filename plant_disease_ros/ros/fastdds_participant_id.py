"""Keep a restarted node off the shared-memory ports of a crashed one (Fast DDS).

Why: Fast DDS numbers a participant's ports by its participant id and gives a new
participant the lowest id whose UDP port is free. After a ``kill -9`` (or a crash) the
dead node's UDP ports are free at once, so its restart gets the same id and therefore the
same shared-memory port, ``/dev/shm/fastdds_port<N>``. That port still holds the dead
listener, so the restarted node waits for its health check, then unlinks it and creates a
new one. Every long-lived process that sent to the old port (the camera driver, the
other nodes) keeps writing into its stale mapping until its shared-memory watchdog, which
runs once a second, has seen the listener's counter frozen twice. Measured on the build
machine: a bare rclpy subscriber got its first frame from a 30 Hz camera 1.7-3.7 s after a
``kill -9`` restart (on a 1 s grid of the camera's clock), 0.05-0.37 s after node
creation when it took an id no crashed process had used.

Deleting those files does not help: the other processes keep their mapping of the old
port until their watchdog has flagged it, 1-3 s after the crash. So the restarted node
must take an id whose port nobody may still map. Before the first node is created,
:func:`choose_participant_id` takes the lowest participant id that is

* free: nothing has its UDP ports bound;
* not left by a crashed process in Fast DDS's files: the port's ``_el`` lock file exists
  but nobody holds its ``flock`` (Fast DDS removes that file on a clean close);
* not held by one of this package's nodes when it crashed: every node registers its id
  in a small lock file that it holds while it runs and removes on a clean exit; one that
  nobody holds is a crash, dated when first seen. Such an id is reused only when no
  clean one is left, the longest-crashed first: even 6 s after a crash, reusing the id
  cost 1.8 s in one of 14 restarts.

Only when that id differs from Fast DDS's own choice (the lowest free id) does
:func:`avoid_crashed_participant_ports` hand Fast DDS an XML profile with it. Nothing is
changed when another RMW runs, the configured XML profile sets a participant id itself,
or ``PLANT_DISEASE_AVOID_CRASHED_PORTS=0`` is set; a configured profile (such as the
package's, which the launch file sets) is copied with the id added. When no clean id is
left below :data:`MAX_PARTICIPANT_ID`, Fast DDS chooses as usual.

Pure Python, no ROS imports; Linux only (elsewhere it reports why it did nothing).
"""

from __future__ import annotations

import atexit
from collections.abc import Iterator, Mapping, MutableMapping
import contextlib
from dataclasses import dataclass, field
import errno
import os
from pathlib import Path
import socket
import tempfile
import time
import xml.etree.ElementTree as ElementTree

try:
    import fcntl
except ImportError:  # pragma: no cover - Windows
    fcntl = None  # type: ignore[assignment]

# RTPS well-known port mapping (spec 9.6.1.1) with Fast DDS's defaults.
PORT_BASE = 7400
DOMAIN_ID_GAIN = 250
PARTICIPANT_ID_GAIN = 2
METATRAFFIC_UNICAST_OFFSET = 10
USER_UNICAST_OFFSET = 11
# rmw_fastrtps announces to this many participant ids per host with LOCALHOST discovery
# (maxInitialPeersRange), so ids below it are the ones every peer reaches.
MAX_PARTICIPANT_ID = 32
# Fast DDS >= 2.10 names its shared-memory files fastdds_*, older releases fastrtps_*.
SHM_PREFIXES = ('fastdds', 'fastrtps')
SHM_DIR = Path('/dev/shm')
FAST_DDS_RMWS = ('rmw_fastrtps_cpp', 'rmw_fastrtps_dynamic_cpp')
PROFILE_ENV_VARS = ('FASTDDS_DEFAULT_PROFILES_FILE', 'FASTRTPS_DEFAULT_PROFILES_FILE')
# Fast DDS 2.x (Humble, Iron, Jazzy) reads only the FASTRTPS_ variable; 3.x warns on it.
FAST_DDS_2_DISTROS = ('humble', 'iron', 'jazzy')
PROFILE_FILES_IN_CWD = ('DEFAULT_FASTDDS_PROFILES.xml', 'DEFAULT_FASTRTPS_PROFILES.xml')
ENV_SWITCH = 'PLANT_DISEASE_AVOID_CRASHED_PORTS'
# Serialises the choice between this package's processes that start together (a launch
# file starts all nodes at once) until each one's participant holds its ports.
LOCK_NAME = 'plant_disease_ros_participant_id.lock'
LOCK_TIMEOUT_S = 10.0
REGISTRY_PREFIX = 'plant_disease_ros_participant'

# Registrations of this process: the open, flock-held files, released when it exits.
_HELD: list[tuple[int, Path]] = []


@dataclass(frozen=True)
class ParticipantPorts:
    """The unicast ports (UDP and shared memory) of one participant id in one domain."""

    participant_id: int
    metatraffic_unicast: int
    user_unicast: int


def participant_ports(domain_id: int, participant_id: int) -> ParticipantPorts:
    """Return the unicast ports of ``participant_id`` in ``domain_id`` (Fast DDS defaults)."""
    base = PORT_BASE + DOMAIN_ID_GAIN * domain_id + PARTICIPANT_ID_GAIN * participant_id
    return ParticipantPorts(participant_id, base + METATRAFFIC_UNICAST_OFFSET,
                            base + USER_UNICAST_OFFSET)


def udp_port_in_use(port: int) -> bool:
    """Return True if some process has UDP ``port`` bound (binding it fails)."""
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as probe:
        try:
            probe.bind(('0.0.0.0', port))
        except OSError as error:
            return error.errno in (errno.EADDRINUSE, errno.EACCES)
    return False


def _lock_state(path: Path) -> str:
    """Return ``'none'`` (no file), ``'alive'`` (flock held) or ``'dead'`` (not held)."""
    try:
        descriptor = os.open(path, os.O_RDONLY)
    except OSError:
        return 'none'
    try:
        fcntl.flock(descriptor, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except OSError:
        return 'alive'
    else:
        fcntl.flock(descriptor, fcntl.LOCK_UN)
        return 'dead'
    finally:
        os.close(descriptor)


def shm_listener_state(port: int, shm_dir: Path = SHM_DIR) -> str:
    """Return ``'none'``, ``'alive'`` or ``'crashed'`` for shared-memory port ``port``.

    A reader holds an exclusive ``flock`` on ``<prefix>_port<N>_el`` while the port is open
    and removes the file when it closes it; a file that exists with no lock held was left
    by a process that died with the port open.
    """
    state = 'none'
    for prefix in SHM_PREFIXES:
        found = _lock_state(shm_dir / f'{prefix}_port{port}_el')
        if found == 'alive':
            return 'alive'
        if found == 'dead':
            state = 'crashed'
    return state


def registry_path(registry_dir: Path, domain_id: int, participant_id: int) -> Path:
    """Return the registration file of ``participant_id`` in ``domain_id``."""
    return registry_dir / f'{REGISTRY_PREFIX}_d{domain_id}_p{participant_id}'


def registration_state(path: Path, now: float) -> tuple[str, float]:
    """Return the state of a registration file and, for a crash, when it was first seen.

    States: ``'none'``, ``'alive'`` (its process holds it) or ``'crashed'`` (nobody holds
    it: its node died without the clean exit that removes it). The first look at a
    crashed registration writes ``now`` into it; later looks return that time.
    """
    state = _lock_state(path)
    if state != 'dead':
        return state, now
    try:
        fields = path.read_text(encoding='ascii').split()
        return 'crashed', float(fields[1])
    except (OSError, ValueError, IndexError):
        with contextlib.suppress(OSError):
            with open(path, 'a', encoding='ascii') as registration:
                registration.write(f' {now:.3f}')
        return 'crashed', now


@dataclass(frozen=True)
class ParticipantIdChoice:
    """The outcome of :func:`choose_participant_id`.

    ``participant_id`` is the id to force, None where Fast DDS's own choice is right;
    ``expected_id`` the id the process will have (None if unknown).
    """

    participant_id: int | None
    reason: str
    expected_id: int | None = None
    crashed_ids: tuple[int, ...] = field(default=())


def choose_participant_id(domain_id: int, shm_dir: Path = SHM_DIR,
                          registry_dir: Path | None = None, now: float | None = None,
                          max_id: int = MAX_PARTICIPANT_ID) -> ParticipantIdChoice:
    """Return the participant id to force, or None where Fast DDS's choice is clean.

    Fast DDS takes the lowest id whose UDP ports are free. Ids whose shared-memory port a
    crashed process left, or that a node of this package held when it crashed, are
    skipped for the lowest clean id. When every free id below ``max_id`` is such a crashed
    one, the one whose crash was seen first is taken: the others' watchdogs have had the
    longest time to drop their mappings of its port.
    """
    registry = shm_dir if registry_dir is None else registry_dir
    when = time.time() if now is None else now
    crashed: dict[int, float] = {}
    fast_dds_choice: int | None = None
    chosen: int | None = None
    for participant_id in range(max_id):
        ports = participant_ports(domain_id, participant_id)
        if ports.user_unicast > 65535:
            break
        if udp_port_in_use(ports.metatraffic_unicast) or udp_port_in_use(ports.user_unicast):
            continue
        if fast_dds_choice is None:
            fast_dds_choice = participant_id
        shm_states = {shm_listener_state(port, shm_dir)
                      for port in (ports.metatraffic_unicast, ports.user_unicast)}
        if 'alive' in shm_states:
            continue
        registered, seen_dead = registration_state(
            registry_path(registry, domain_id, participant_id), when)
        if registered == 'alive':
            continue
        if 'crashed' in shm_states or registered == 'crashed':
            crashed[participant_id] = seen_dead
            continue
        chosen = participant_id
        break
    crashed_ids = tuple(crashed)
    if chosen is None and crashed:
        chosen = min(crashed, key=lambda participant_id: (crashed[participant_id],
                                                          participant_id))
        reason = (f'participant id {chosen}, the longest-crashed of ids {_ids(crashed_ids)}: '
                  f'no clean id is left below {max_id}')
    elif chosen is None:
        return ParticipantIdChoice(None, f'no free participant id below {max_id}; '
                                   'Fast DDS chooses')
    elif crashed:
        reason = (f'participant id {chosen} (ids {_ids(crashed_ids)} were held by processes '
                  'that crashed)')
    else:
        reason = f'participant id {chosen} is clean; Fast DDS chooses it'
    forced = None if chosen == fast_dds_choice else chosen
    return ParticipantIdChoice(forced, reason, chosen, crashed_ids)


def _ids(ids: tuple[int, ...], shown: int = 6) -> str:
    listed = ', '.join(str(participant_id) for participant_id in ids[:shown])
    return listed if len(ids) <= shown else f'{listed}, ... ({len(ids)} in all)'


def register_participant_id(registry_dir: Path, domain_id: int, participant_id: int) -> bool:
    """Hold the registration of ``participant_id`` until this process exits.

    The file is flock-held for the process's lifetime (the kernel releases the lock when
    the process dies, however it dies) and removed at a clean exit. Returns False if it
    could not be created.
    """
    path = registry_path(registry_dir, domain_id, participant_id)
    with contextlib.suppress(OSError):
        path.unlink()
    try:
        descriptor = os.open(path, os.O_RDWR | os.O_CREAT | os.O_TRUNC, 0o666)
    except OSError:
        return False
    try:
        fcntl.flock(descriptor, fcntl.LOCK_EX | fcntl.LOCK_NB)
        os.write(descriptor, f'{os.getpid()}'.encode('ascii'))
    except OSError:
        os.close(descriptor)
        return False
    if not _HELD:
        atexit.register(release_participant_registrations)
    _HELD.append((descriptor, path))
    return True


def release_participant_registrations() -> None:
    """Remove this process's registrations (a clean exit: its ids are free at once)."""
    while _HELD:
        descriptor, path = _HELD.pop()
        with contextlib.suppress(OSError):
            path.unlink()
        with contextlib.suppress(OSError):
            os.close(descriptor)


FAST_DDS_XML_NAMESPACE = 'http://www.eprosima.com'
# What a new profile starts from: profile_with_participant_id adds the participant.
_EMPTY_PROFILE = f'<dds xmlns="{FAST_DDS_XML_NAMESPACE}"><profiles/></dds>'


def _local_name(element: ElementTree.Element) -> str:
    return element.tag.rsplit('}', 1)[-1]


def _child(parent: ElementTree.Element, name: str) -> ElementTree.Element | None:
    return next((child for child in parent if _local_name(child) == name), None)


def profile_with_participant_id(xml_text: str, participant_id: int) -> str | None:
    """Return a Fast DDS XML profile text whose default participant has ``participant_id``.

    The profiles of ``xml_text`` (a user's file, or the package's
    ``config/fastdds_profile.xml`` that the launch file sets) are kept; the id goes into
    the default participant profile, which is added if there is none. Returns None when
    the text does not parse or already sets a participant id (the user's choice wins).
    """
    try:
        root = ElementTree.fromstring(xml_text)
    except ElementTree.ParseError:
        return None
    namespace = root.tag[1:].split('}', 1)[0] if root.tag.startswith('{') else ''
    prefix = f'{{{namespace}}}' if namespace else ''
    profiles = root if _local_name(root) == 'profiles' else _child(root, 'profiles')
    if profiles is None:
        if _local_name(root) != 'dds':
            return None
        profiles = ElementTree.SubElement(root, f'{prefix}profiles')
    participant = next((child for child in profiles if _local_name(child) == 'participant'
                        and child.get('is_default_profile', '').lower() == 'true'), None)
    if participant is None:
        participant = ElementTree.SubElement(
            profiles, f'{prefix}participant',
            {'profile_name': 'plant_disease_ros_participant', 'is_default_profile': 'true'})
    rtps = _child(participant, 'rtps')
    if rtps is None:
        rtps = ElementTree.SubElement(participant, f'{prefix}rtps')
    if _child(rtps, 'participantID') is not None:
        return None
    element = ElementTree.Element(f'{prefix}participantID')
    element.text = str(int(participant_id))
    rtps.insert(0, element)
    if namespace:
        ElementTree.register_namespace('', namespace)
    return ('<?xml version="1.0" encoding="UTF-8"?>\n'
            + ElementTree.tostring(root, encoding='unicode') + '\n')


def participant_profile_xml(participant_id: int) -> str:
    """Return a Fast DDS XML profile whose default participant has ``participant_id``."""
    profile = profile_with_participant_id(_EMPTY_PROFILE, participant_id)
    assert profile is not None  # the empty profile parses and sets no id
    return profile


def profile_env_vars(environ: Mapping[str, str]) -> tuple[str, ...]:
    """Return the variable(s) that point this ROS distribution's Fast DDS at a profile."""
    if environ.get('ROS_DISTRO', '').strip().lower() in FAST_DDS_2_DISTROS:
        return ('FASTRTPS_DEFAULT_PROFILES_FILE',)
    return ('FASTDDS_DEFAULT_PROFILES_FILE',)


def why_not_applicable(environ: Mapping[str, str], cwd: Path,
                       shm_dir: Path = SHM_DIR) -> str | None:
    """Return why the participant id must be left alone here, or None if it may be set."""
    if environ.get(ENV_SWITCH, '1').strip().lower() in ('0', 'false', 'no', 'off'):
        return f'{ENV_SWITCH}={environ[ENV_SWITCH]}'
    rmw = environ.get('RMW_IMPLEMENTATION', '').strip()
    if rmw and rmw not in FAST_DDS_RMWS:
        return f'RMW_IMPLEMENTATION={rmw} (not Fast DDS)'
    for name in PROFILE_FILES_IN_CWD:
        if (cwd / name).is_file():
            return f'{name} in the working directory (the user configures Fast DDS)'
    if fcntl is None or not shm_dir.is_dir():
        return f'no {shm_dir} (shared memory ports are Linux only here)'
    try:
        domain_id = _domain_id(environ)
    except ValueError:
        return f"ROS_DOMAIN_ID={environ['ROS_DOMAIN_ID']!r} is not a number"
    if not 0 <= domain_id <= 232:
        return f'ROS_DOMAIN_ID={domain_id} is out of range'
    return None


def _domain_id(environ: Mapping[str, str]) -> int:
    """Return ROS_DOMAIN_ID (0 when unset or empty); ValueError if it is not a number."""
    return int(environ.get('ROS_DOMAIN_ID', '0') or 0)


@contextlib.contextmanager
def _choice_lock(lock_dir: Path, timeout_s: float) -> Iterator[bool]:
    """Hold an exclusive lock shared by this package's processes; yield whether it is held."""
    try:
        descriptor = os.open(lock_dir / LOCK_NAME, os.O_RDWR | os.O_CREAT, 0o666)
    except OSError:
        yield False
        return
    held = False
    try:
        deadline = time.monotonic() + timeout_s
        while True:
            try:
                fcntl.flock(descriptor, fcntl.LOCK_EX | fcntl.LOCK_NB)
                held = True
                break
            except OSError:
                if time.monotonic() >= deadline:
                    break
                time.sleep(0.02)
        yield held
    finally:
        if held:
            fcntl.flock(descriptor, fcntl.LOCK_UN)
        os.close(descriptor)


@contextlib.contextmanager
def avoid_crashed_participant_ports(
        environ: MutableMapping[str, str] | None = None, cwd: Path | None = None,
        shm_dir: Path = SHM_DIR,
        lock_timeout_s: float = LOCK_TIMEOUT_S) -> Iterator[ParticipantIdChoice]:
    """Around the creation of a process's first node: steer Fast DDS off crashed ports.

    Yields the :class:`ParticipantIdChoice`. When an id is forced, a profile file with it
    exists only inside the block (a copy of the configured profile plus the id, or a new
    one), and ``FASTDDS_DEFAULT_PROFILES_FILE`` (on Fast DDS 2.x ``FASTRTPS_...``) points
    at it there: create the first node in the block, which is when Fast DDS reads it.
    The block holds a lock that this package's other processes wait for, so nodes started
    together do not pick the same id; the id is registered for the process's lifetime.
    """
    env = os.environ if environ is None else environ
    here = Path.cwd() if cwd is None else cwd
    reason = why_not_applicable(env, here, shm_dir)
    if reason is not None:
        yield ParticipantIdChoice(None, f'left to Fast DDS: {reason}')
        return
    domain_id = _domain_id(env)
    with _choice_lock(shm_dir, lock_timeout_s):
        choice = choose_participant_id(domain_id, shm_dir)
        if choice.participant_id is None:
            if choice.expected_id is not None:
                register_participant_id(shm_dir, domain_id, choice.expected_id)
            yield choice
            return
        variables = [variable for variable in PROFILE_ENV_VARS if env.get(variable)]
        if variables:
            # A profile is configured (the launch file sets the package's): add the id.
            try:
                text = Path(env[variables[0]]).read_text(encoding='utf-8')
            except (OSError, UnicodeDecodeError):
                text = None
            profile_text = None if text is None else profile_with_participant_id(
                text, choice.participant_id)
            if profile_text is None:
                # The profile's own id (or Fast DDS's error) decides: nothing to register.
                yield ParticipantIdChoice(
                    None, f'left to Fast DDS: {variables[0]}={env[variables[0]]} cannot be '
                    'read or sets the participant id itself', choice.expected_id,
                    choice.crashed_ids)
                return
        else:
            variables = list(profile_env_vars(env))
            profile_text = participant_profile_xml(choice.participant_id)
        register_participant_id(shm_dir, domain_id, choice.participant_id)
        previous = {variable: env.get(variable) for variable in variables}
        handle, profile_path = tempfile.mkstemp(prefix='plant_disease_ros_', suffix='.xml')
        try:
            with os.fdopen(handle, 'w', encoding='utf-8') as profile:
                profile.write(profile_text)
            for variable in variables:
                env[variable] = profile_path
            yield choice
        finally:
            for variable, value in previous.items():
                if env.get(variable) == profile_path:
                    if value is None:
                        del env[variable]
                    else:
                        env[variable] = value
            with contextlib.suppress(OSError):
                os.unlink(profile_path)
