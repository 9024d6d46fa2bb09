"""The DDS environment of the bench and of every process it starts, and the software it ran.

The bench sets its environment once, before rclpy is imported; its children inherit it
through ``plant_disease_ros.tools.process.ros_environment``.
"""

from __future__ import annotations

import importlib.metadata
import os
from pathlib import Path
import subprocess

from plant_disease_ros.ros.node_set import default_params_file

# The libraries the figures depend on, reported with their versions.
PACKAGES: tuple[str, ...] = (
    'plant_disease_ros', 'numpy', 'opencv-python-headless', 'opencv-python', 'ai-edge-litert',
    'tflite-runtime', 'tensorflow-cpu', 'tensorflow', 'keras', 'rclpy', 'ros-rclpy',
    'ros-fastdds', 'ros-rmw-fastrtps-cpp', 'psutil')
FASTDDS_PROFILE = 'fastdds_profile.xml'
FASTDDS_VARIABLE = 'FASTDDS_DEFAULT_PROFILES_FILE'
FASTRTPS_VARIABLE = 'FASTRTPS_DEFAULT_PROFILES_FILE'
# Distributions whose Fast DDS (2.x; Jazzy ships 2.14) reads only
# FASTRTPS_DEFAULT_PROFILES_FILE; from Kilted on Fast DDS 3.x reads
# FASTDDS_DEFAULT_PROFILES_FILE. The same rule as launch/field.launch.py's (which stays
# self-contained: keep the two alike).
FAST_DDS_2_DISTROS = ('foxy', 'galactic', 'humble', 'iron', 'jazzy')
ENVIRONMENT_KEYS: tuple[str, ...] = ('ROS_DISTRO', 'ROS_AUTOMATIC_DISCOVERY_RANGE',
                                     'ROS_DOMAIN_ID', 'RMW_IMPLEMENTATION', FASTDDS_VARIABLE,
                                     FASTRTPS_VARIABLE)


def dds_profile_variable(distro: str) -> str:
    """Return the Fast DDS profile variable that distribution ``distro`` reads.

    FASTRTPS_DEFAULT_PROFILES_FILE up to Jazzy (Fast DDS 2.x), else (Kilted on, or no
    ``ROS_DISTRO``) FASTDDS_DEFAULT_PROFILES_FILE.
    """
    if distro.strip().lower() in FAST_DDS_2_DISTROS:
        return FASTRTPS_VARIABLE
    return FASTDDS_VARIABLE


def package_config_file(name: str) -> Path | None:
    """Return ``config/<name>`` of the package (source tree or installed share), if any."""
    params_file = default_params_file()
    if params_file is None:
        return None
    path = params_file.parent / name
    return path if path.is_file() else None


def prepare_environment(domain_id: int | None = None) -> dict[str, str]:
    """Set the DDS environment of the bench and of every process it starts; return it.

    Loopback-only discovery unless the caller chose otherwise, a private domain id, and
    a Fast DDS profile under the variable the running distribution reads
    (:func:`dds_profile_variable` of ``ROS_DISTRO``), as the field launch exports it: the
    one already set there, else the one set under the other name (set before an upgrade),
    else the package's (the one the field launch uses). Call before rclpy is imported.
    """
    os.environ.setdefault('ROS_AUTOMATIC_DISCOVERY_RANGE', 'LOCALHOST')
    if domain_id is not None:
        os.environ['ROS_DOMAIN_ID'] = str(int(domain_id))
    else:
        # 10..99: domains above 101 use ports in Linux's ephemeral range.
        os.environ.setdefault('ROS_DOMAIN_ID', str(10 + os.getpid() % 90))
    os.environ.setdefault('RMW_IMPLEMENTATION', 'rmw_fastrtps_cpp')
    variable = dds_profile_variable(os.environ.get('ROS_DISTRO', ''))
    if not os.environ.get(variable):
        other = FASTDDS_VARIABLE if variable == FASTRTPS_VARIABLE else FASTRTPS_VARIABLE
        profile = os.environ.get(other) or package_config_file(FASTDDS_PROFILE)
        if profile:
            os.environ[variable] = str(profile)
    os.environ.setdefault('TF_CPP_MIN_LOG_LEVEL', '2')
    return {key: os.environ.get(key, '') for key in ENVIRONMENT_KEYS}


def package_versions() -> dict[str, str]:
    """Return the installed versions of the libraries the figures depend on."""
    versions = {}
    for name in PACKAGES:
        try:
            versions[name] = importlib.metadata.version(name)
        except importlib.metadata.PackageNotFoundError:
            continue
    return versions


def git_describe() -> str:
    """Return ``git describe --always --dirty`` of the source tree, '' if unknown."""
    try:
        result = subprocess.run(
            ['git', 'describe', '--always', '--dirty'], cwd=Path(__file__).resolve().parent,
            capture_output=True, text=True, timeout=5, check=False)
    except (OSError, subprocess.SubprocessError):
        return ''
    return result.stdout.strip() if result.returncode == 0 else ''
