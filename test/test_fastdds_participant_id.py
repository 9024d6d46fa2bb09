"""fastdds_participant_id: which id a restarted node takes, and the profile it hands over.

No ROS here: the rules run on a temporary folder standing in for /dev/shm, in a domain
whose ports the test binds itself where it needs an id "in use".
"""

from __future__ import annotations

import fcntl
import os
from pathlib import Path
import socket
import xml.etree.ElementTree as ElementTree

import pytest

from plant_disease_ros.ros.fastdds_participant_id import (
    avoid_crashed_participant_ports,
    choose_participant_id,
    ENV_SWITCH,
    participant_ports,
    participant_profile_xml,
    profile_env_vars,
    profile_with_participant_id,
    registration_state,
    registry_path,
    release_participant_registrations,
    shm_listener_state,
    why_not_applicable,
)

REPO_ROOT = Path(__file__).resolve().parents[1]
# Ports 7400 + 250 * 201 + 10.. = 57660..57723: a domain no test run uses.
DOMAIN = 201


def _crashed_el(shm: Path, port: int) -> Path:
    """Leave a Fast DDS ``_el`` lock file that nobody holds (its reader was killed)."""
    path = shm / f'fastdds_port{port}_el'
    path.write_bytes(b'')
    return path


def _id_of_participant_id_element(xml_text: str) -> list[str]:
    root = ElementTree.fromstring(xml_text)
    return [element.text for element in root.iter() if element.tag.endswith('participantID')]


def test_ports_follow_the_rtps_well_known_mapping() -> None:
    # Domain 57, participant 0: Fast DDS's files were fastdds_port21661 (user unicast).
    ports = participant_ports(57, 0)
    assert (ports.metatraffic_unicast, ports.user_unicast) == (21660, 21661)
    assert participant_ports(57, 3).user_unicast == 21667


def test_shm_listener_states(tmp_path: Path) -> None:
    assert shm_listener_state(21661, tmp_path) == 'none'
    lock = _crashed_el(tmp_path, 21661)
    assert shm_listener_state(21661, tmp_path) == 'crashed'
    # A live reader holds the flock (another open file description conflicts).
    descriptor = os.open(lock, os.O_RDONLY)
    try:
        fcntl.flock(descriptor, fcntl.LOCK_EX | fcntl.LOCK_NB)
        assert shm_listener_state(21661, tmp_path) == 'alive'
    finally:
        os.close(descriptor)
    assert shm_listener_state(21661, tmp_path) == 'crashed'


def test_clean_directory_leaves_the_choice_to_fast_dds(tmp_path: Path) -> None:
    choice = choose_participant_id(DOMAIN, tmp_path)
    assert choice.participant_id is None
    assert choice.expected_id == 0
    assert 'Fast DDS chooses it' in choice.reason


def test_crashed_port_is_skipped_for_the_next_clean_id(tmp_path: Path) -> None:
    _crashed_el(tmp_path, participant_ports(DOMAIN, 0).user_unicast)
    _crashed_el(tmp_path, participant_ports(DOMAIN, 1).user_unicast)
    choice = choose_participant_id(DOMAIN, tmp_path)
    assert (choice.participant_id, choice.expected_id) == (2, 2)
    assert choice.crashed_ids == (0, 1)


def test_ids_in_use_are_skipped_and_fast_dds_own_choice_is_not_forced(tmp_path: Path) -> None:
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as taken:
        taken.bind(('0.0.0.0', participant_ports(DOMAIN, 0).metatraffic_unicast))
        choice = choose_participant_id(DOMAIN, tmp_path)
    # Id 0 is in use, so Fast DDS itself takes 1, which is clean: nothing to force.
    assert choice.participant_id is None
    assert choice.expected_id == 1


def test_crashed_registration_is_dated_when_first_seen(tmp_path: Path) -> None:
    path = registry_path(tmp_path, DOMAIN, 0)
    path.write_text('12345', encoding='ascii')  # written by a node that was killed
    assert registration_state(path, now=100.0) == ('crashed', 100.0)
    assert registration_state(path, now=250.0) == ('crashed', 100.0)
    assert registration_state(tmp_path / 'absent', now=1.0) == ('none', 1.0)


def test_when_every_free_id_crashed_the_longest_crashed_is_reused(tmp_path: Path) -> None:
    for participant_id, seen in ((0, 300.0), (1, 100.0), (2, 200.0)):
        registry_path(tmp_path, DOMAIN, participant_id).write_text(f'1 {seen}', 'ascii')
    choice = choose_participant_id(DOMAIN, tmp_path, now=400.0, max_id=3)
    assert choice.participant_id == 1
    assert choice.crashed_ids == (0, 1, 2)
    assert 'longest-crashed' in choice.reason


def test_profile_xml_sets_the_default_participant_id() -> None:
    assert _id_of_participant_id_element(participant_profile_xml(7)) == ['7']


def test_shipped_profile_keeps_its_transports_and_gains_the_id() -> None:
    shipped = (REPO_ROOT / 'config' / 'fastdds_profile.xml').read_text(encoding='utf-8')
    merged = profile_with_participant_id(shipped, 4)
    assert merged is not None
    assert _id_of_participant_id_element(merged) == ['4']
    assert 'xmlns="http://www.eprosima.com"' in merged  # no ns0: prefixes Fast DDS rejects
    assert '<segment_size>33554432</segment_size>' in merged
    assert merged.count('is_default_profile="true"') == 1


def test_profile_that_sets_an_id_or_does_not_parse_is_left_alone() -> None:
    assert profile_with_participant_id(participant_profile_xml(3), 5) is None
    assert profile_with_participant_id('<dds><profiles>', 5) is None


def test_profile_without_a_default_participant_gets_one() -> None:
    merged = profile_with_participant_id('<dds><profiles><data_writer profile_name="w"/>'
                                         '</profiles></dds>', 9)
    assert merged is not None
    root = ElementTree.fromstring(merged)
    participant = root.find('./profiles/participant')
    assert participant is not None and participant.get('is_default_profile') == 'true'
    assert _id_of_participant_id_element(merged) == ['9']


@pytest.mark.parametrize(('environ', 'expected'), [
    ({ENV_SWITCH: '0'}, ENV_SWITCH),
    ({'RMW_IMPLEMENTATION': 'rmw_cyclonedds_cpp'}, 'not Fast DDS'),
    ({'ROS_DOMAIN_ID': 'x'}, 'not a number'),
    ({'ROS_DOMAIN_ID': '300'}, 'out of range'),
])
def test_cases_where_nothing_is_changed(tmp_path: Path, environ: dict[str, str],
                                        expected: str) -> None:
    assert expected in (why_not_applicable(environ, tmp_path, tmp_path) or '')


def test_a_profile_in_the_working_directory_is_left_alone(tmp_path: Path) -> None:
    (tmp_path / 'DEFAULT_FASTDDS_PROFILES.xml').write_text('<dds/>', encoding='utf-8')
    assert 'working directory' in why_not_applicable({}, tmp_path, tmp_path)
    assert why_not_applicable({'RMW_IMPLEMENTATION': 'rmw_fastrtps_cpp'},
                              tmp_path / 'elsewhere', tmp_path) is None


def test_profile_variable_follows_the_fast_dds_generation() -> None:
    assert profile_env_vars({'ROS_DISTRO': 'humble'}) == ('FASTRTPS_DEFAULT_PROFILES_FILE',)
    assert profile_env_vars({'ROS_DISTRO': 'kilted'}) == ('FASTDDS_DEFAULT_PROFILES_FILE',)
    assert profile_env_vars({}) == ('FASTDDS_DEFAULT_PROFILES_FILE',)


def test_forced_id_profile_exists_only_inside_the_block(tmp_path: Path) -> None:
    shm = tmp_path / 'shm'
    shm.mkdir()
    _crashed_el(shm, participant_ports(DOMAIN, 0).user_unicast)
    environ = {'ROS_DOMAIN_ID': str(DOMAIN)}
    try:
        with avoid_crashed_participant_ports(environ, tmp_path, shm) as choice:
            profile = Path(environ['FASTDDS_DEFAULT_PROFILES_FILE'])
            assert choice.participant_id == 1
            assert _id_of_participant_id_element(profile.read_text('utf-8')) == ['1']
        assert 'FASTDDS_DEFAULT_PROFILES_FILE' not in environ
        assert not profile.exists()
        # The id is registered, held by this process, until its clean exit.
        registration = registry_path(shm, DOMAIN, 1)
        assert registration_state(registration, now=0.0)[0] == 'alive'
    finally:
        release_participant_registrations()
    assert not registration.exists()


def test_configured_profile_is_copied_with_the_id_and_restored(tmp_path: Path) -> None:
    shm = tmp_path / 'shm'
    shm.mkdir()
    _crashed_el(shm, participant_ports(DOMAIN, 0).user_unicast)
    shipped = str(REPO_ROOT / 'config' / 'fastdds_profile.xml')
    environ = {'ROS_DOMAIN_ID': str(DOMAIN), 'FASTDDS_DEFAULT_PROFILES_FILE': shipped,
               'FASTRTPS_DEFAULT_PROFILES_FILE': shipped}
    try:
        with avoid_crashed_participant_ports(environ, tmp_path, shm) as choice:
            copy = environ['FASTDDS_DEFAULT_PROFILES_FILE']
            assert copy != shipped and environ['FASTRTPS_DEFAULT_PROFILES_FILE'] == copy
            text = Path(copy).read_text('utf-8')
            assert _id_of_participant_id_element(text) == ['1']
            assert 'plant_disease_shm' in text
            assert choice.participant_id == 1
    finally:
        release_participant_registrations()
    assert environ['FASTDDS_DEFAULT_PROFILES_FILE'] == shipped
    assert environ['FASTRTPS_DEFAULT_PROFILES_FILE'] == shipped


def test_profile_with_its_own_id_is_used_as_is_and_nothing_is_registered(
        tmp_path: Path) -> None:
    shm = tmp_path / 'shm'
    shm.mkdir()
    _crashed_el(shm, participant_ports(DOMAIN, 0).user_unicast)
    own = tmp_path / 'own.xml'
    own.write_text(participant_profile_xml(5), encoding='utf-8')
    environ = {'ROS_DOMAIN_ID': str(DOMAIN), 'FASTDDS_DEFAULT_PROFILES_FILE': str(own)}
    with avoid_crashed_participant_ports(environ, tmp_path, shm) as choice:
        assert environ['FASTDDS_DEFAULT_PROFILES_FILE'] == str(own)
    assert choice.participant_id is None
    assert 'sets the participant id itself' in choice.reason
    assert not registry_path(shm, DOMAIN, 1).exists()
