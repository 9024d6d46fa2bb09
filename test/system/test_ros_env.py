"""scripts/ros_env.sh: loopback discovery, and a domain no other shell of the machine holds."""

from __future__ import annotations

import fcntl
import os
from pathlib import Path
import subprocess

import pytest

REPO_ROOT = Path(__file__).resolve().parents[2]
HOLD = 'source scripts/ros_env.sh; echo "$ROS_AUTOMATIC_DISCOVERY_RANGE $ROS_DOMAIN_ID"; ' \
       'read -r _'


def shell(tmp_path: Path, **env: str) -> subprocess.Popen:
    """Start a bash that sources ros_env.sh, prints its settings and waits for a line."""
    environment = {key: value for key, value in os.environ.items()
                   if key != 'ROS_DOMAIN_ID'}
    environment.update({'PLANT_DISEASE_DOMAIN_LOCKS': str(tmp_path / 'plant_disease_ros_domains'),
                        **env})
    return subprocess.Popen(['bash', '-euo', 'pipefail', '-c', HOLD], cwd=REPO_ROOT,
                            env=environment, stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                            text=True)


def settings(process: subprocess.Popen) -> tuple[str, int]:
    """Return the discovery range and domain the shell printed."""
    assert process.stdout is not None
    discovery, domain = process.stdout.readline().split()
    return discovery, int(domain)


def test_shells_side_by_side_get_different_domains(tmp_path: Path) -> None:
    shells = [shell(tmp_path) for _ in range(3)]
    try:
        seen = [settings(process) for process in shells]
    finally:
        for process in shells:
            process.communicate('\n', timeout=10)
    assert {discovery for discovery, _ in seen} == {'LOCALHOST'}
    domains = [domain for _, domain in seen]
    assert len(set(domains)) == 3 and all(10 <= domain <= 99 for domain in domains)
    assert all(process.returncode == 0 for process in shells)


def test_a_shell_takes_the_one_domain_nobody_holds(tmp_path: Path) -> None:
    """Every domain but 77 held by another process: the shell gets 77."""
    locks = tmp_path / 'plant_disease_ros_domains'
    locks.mkdir()
    held = []
    try:
        for domain in range(10, 100):
            if domain != 77:
                handle = open(locks / f'{domain}.lock', 'a')  # noqa: SIM115
                fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
                held.append(handle)
        process = shell(tmp_path)
        try:
            assert settings(process) == ('LOCALHOST', 77)
        finally:
            process.communicate('\n', timeout=10)
    finally:
        for handle in held:
            handle.close()


def test_a_domain_that_is_set_is_kept(tmp_path: Path) -> None:
    process = shell(tmp_path, ROS_DOMAIN_ID='42')
    try:
        assert settings(process) == ('LOCALHOST', 42)
    finally:
        process.communicate('\n', timeout=10)
    assert not (tmp_path / 'plant_disease_ros_domains').exists()


def test_the_lock_folder_and_files_can_be_locked_by_every_user(tmp_path: Path) -> None:
    """CI and a developer may be different users: the folder is sticky and world-writable,
    the lock files world-readable and -writable, so either can take a free domain."""
    process = shell(tmp_path)
    try:
        _, domain = settings(process)
    finally:
        process.communicate('\n', timeout=10)
    locks = tmp_path / 'plant_disease_ros_domains'
    assert locks.stat().st_mode & 0o7777 == 0o1777
    assert (locks / f'{domain}.lock').stat().st_mode & 0o777 == 0o666


def test_without_a_usable_lock_folder_a_folder_of_the_user_serves(tmp_path: Path) -> None:
    """The machine's folder cannot be made (here: a file is in the way): the user's own
    folder in TMPDIR takes the lock, so the shell still holds its domain."""
    blocker = tmp_path / 'not_a_folder'
    blocker.write_text('')
    process = shell(tmp_path, PLANT_DISEASE_DOMAIN_LOCKS=str(blocker / 'locks'),
                    TMPDIR=str(tmp_path))
    try:
        _, domain = settings(process)
        own = tmp_path / f'plant_disease_ros_domains-{os.getuid()}'
        with open(own / f'{domain}.lock') as handle:  # held by the shell: not lockable
            try:
                fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
                held = False
            except BlockingIOError:
                held = True
        assert held
    finally:
        process.communicate('\n', timeout=10)


def test_sourcing_keeps_the_shells_stderr(tmp_path: Path) -> None:
    """After sourcing, the shell's error messages still reach its stderr.

    A redirection on the bare ``exec`` that opens a lock file stays on the shell for good:
    every later error of demo.sh, test.sh or a user's terminal vanished.
    """
    locks = tmp_path / 'plant_disease_ros_domains'
    locks.mkdir()
    environment = {key: value for key, value in os.environ.items() if key != 'ROS_DOMAIN_ID'}
    environment['PLANT_DISEASE_DOMAIN_LOCKS'] = str(locks)
    result = subprocess.run(
        ['bash', '-c', 'source scripts/ros_env.sh; echo "to stderr $ROS_DOMAIN_ID" >&2; '
         'ls /nonexistent-plant-disease-path'],
        cwd=REPO_ROOT, env=environment, capture_output=True, text=True, timeout=30,
        check=False)
    assert result.returncode != 0
    assert 'to stderr ' in result.stderr
    assert 'nonexistent-plant-disease-path' in result.stderr


@pytest.mark.parametrize(('distro', 'variable', 'other'), [
    ('', 'FASTDDS_DEFAULT_PROFILES_FILE', 'FASTRTPS_DEFAULT_PROFILES_FILE'),
    ('kilted', 'FASTDDS_DEFAULT_PROFILES_FILE', 'FASTRTPS_DEFAULT_PROFILES_FILE'),
    ('jazzy', 'FASTRTPS_DEFAULT_PROFILES_FILE', 'FASTDDS_DEFAULT_PROFILES_FILE'),
    ('humble', 'FASTRTPS_DEFAULT_PROFILES_FILE', 'FASTDDS_DEFAULT_PROFILES_FILE'),
])
def test_the_profile_goes_under_the_name_the_distribution_reads(
        tmp_path: Path, distro: str, variable: str, other: str) -> None:
    """Fast DDS 2.x (up to Jazzy) reads only FASTRTPS_DEFAULT_PROFILES_FILE."""
    environment = {key: value for key, value in os.environ.items()
                   if key not in {'ROS_DOMAIN_ID', variable, other}}
    environment.update({'PLANT_DISEASE_DOMAIN_LOCKS': str(tmp_path / 'locks'),
                        'ROS_DISTRO': distro})
    result = subprocess.run(
        ['bash', '-uc', f'source scripts/ros_env.sh; echo "${{{variable}:-}}|${{{other}:-}}"'],
        cwd=REPO_ROOT, env=environment, capture_output=True, text=True, timeout=30,
        check=True)
    named, unset = result.stdout.strip().split('|')
    assert named == str(REPO_ROOT / 'config' / 'fastdds_profile.xml') and unset == ''
