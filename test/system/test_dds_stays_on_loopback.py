"""Guard: with the shipped Fast DDS profile and LOCALHOST discovery, no DDS packet leaves
through an external interface (this workplace forbids multicast on it; robots may want it
too when they must not talk to the farm network)."""

from __future__ import annotations

from pathlib import Path
import socket
import subprocess
import sys
import threading

from helpers.processes import child_environment
import pytest

PROBE = """
import time, rclpy
from std_msgs.msg import String
rclpy.init()
node = rclpy.create_node('loopback_probe')
publisher = node.create_publisher(String, 'probe', 10)
end = time.monotonic() + 4.0
while time.monotonic() < end:
    publisher.publish(String(data='x'))
    rclpy.spin_once(node, timeout_sec=0.05)
rclpy.shutdown()
"""


def external_interfaces() -> list[str]:
    """Return the names of the up, non-loopback network interfaces."""
    names = []
    for path in Path('/sys/class/net').iterdir():
        if path.name == 'lo':
            continue
        if (path / 'operstate').exists() and (path / 'operstate').read_text().strip() != 'down':
            names.append(path.name)
    return names


def count_dds_packets(interface: str, listening: threading.Event, stop: threading.Event,
                      counts: dict[str, int]) -> None:
    """Count the RTPS (DDS) packets seen on an interface: IPv4 UDP whose payload says RTPS.

    Other UDP traffic of the host (DNS answers to high ports, say) is not DDS and not counted.

    Sets ``listening`` once the capture is bound; counts until ``stop`` is set.
    """
    sniffer = socket.socket(socket.AF_PACKET, socket.SOCK_RAW, socket.ntohs(0x0003))
    sniffer.bind((interface, 0))
    sniffer.settimeout(0.2)
    listening.set()
    while not stop.is_set():
        try:
            frame = sniffer.recv(65535)
        except TimeoutError:
            continue
        if frame[12:14] != b'\x08\x00' or frame[23] != 17:  # IPv4, UDP
            continue
        header_length = (frame[14] & 0x0F) * 4
        payload = 14 + header_length + 8  # after the UDP header
        if frame[payload:payload + 4] == b'RTPS':
            counts[interface] = counts.get(interface, 0) + 1
    sniffer.close()


def test_no_dds_packet_leaves_on_an_external_interface() -> None:
    interfaces = external_interfaces() + ['lo']
    try:
        socket.socket(socket.AF_PACKET, socket.SOCK_RAW, socket.ntohs(0x0003)).close()
    except (PermissionError, AttributeError, OSError):
        pytest.skip('packet capture needs root (CAP_NET_RAW)')
    counts: dict[str, int] = {}
    stop = threading.Event()
    listening = {name: threading.Event() for name in interfaces}
    sniffers = [threading.Thread(target=count_dds_packets,
                                 args=(name, listening[name], stop, counts))
                for name in interfaces]
    for sniffer in sniffers:
        sniffer.start()
    try:
        assert all(event.wait(10.0) for event in listening.values()), 'capture not started'
        # The run's environment (test/conftest.py): loopback discovery, the shipped profile.
        subprocess.run([sys.executable, '-c', PROBE], env=child_environment(), check=True,
                       timeout=60)
    finally:
        # Capture for as long as the probe ran, however long that took.
        stop.set()
        for sniffer in sniffers:
            sniffer.join()
    assert counts.get('lo', 0) > 0, 'the capture saw no DDS traffic at all: it is broken'
    leaked = {name: count for name, count in counts.items() if name != 'lo'}
    assert leaked == {}, f'DDS packets on external interfaces: {leaked}'
