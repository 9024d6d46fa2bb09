"""The one description of the node set: executables, parameters and remappings.

``launch/field.launch.py`` mirrors it for a ROS 2 install (a test checks that both agree);
replay, the bench and the system tests build their command lines from it. No rclpy here:
it describes processes, it does not start them (``plant_disease_ros.tools.process`` does).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
import os
from pathlib import Path
import re
import shutil
import sys

PACKAGE = 'plant_disease_ros'

# Topics every node subscribes to under a relative name; the launch remaps them.
IMAGE_TOPIC = 'image_raw'
COMPRESSED_IMAGE_TOPIC = 'image_raw/compressed'
FIX_TOPIC = 'fix'

DEFAULT_NAMESPACE = 'plant_disease'
DEFAULT_IMAGE_TOPIC = '/camera/image_raw'
DEFAULT_GPS_TOPIC = '/gps/fix'
TRANSPORTS = ('raw', 'compressed')
# The module setup.py's console scripts of the nodes point to (``-m`` runs it too).
EXECUTABLES_MODULE = f'{PACKAGE}.nodes.executables'


@dataclass(frozen=True)
class Executable:
    """One console script of the package and what it needs from the launch."""

    name: str
    module: str
    subscribes_image: bool = False
    subscribes_fix: bool = False
    writes_map: bool = False
    loads_model: bool = False

    def command(self) -> list[str]:
        """Return the argv prefix that runs it: beside Python, on PATH, else with ``-m``.

        The ``-m`` form runs the module the console scripts point to
        (``nodes.executables``, which takes a stop signal as one from its first moment),
        with the executable's name.
        """
        for folder in (Path(sys.executable).parent,
                       Path(sys.executable).parents[1] / 'lib' / PACKAGE):
            candidate = folder / self.name
            if candidate.is_file() and os.access(candidate, os.X_OK):
                return [str(candidate)]
        found = shutil.which(self.name)
        if found:
            return [found]
        return [sys.executable, '-m', EXECUTABLES_MODULE, self.name]


CAMERA_SUBSCRIBER = Executable('camera_subscriber', f'{PACKAGE}.nodes.camera_subscriber',
                               subscribes_image=True)
DISEASE_CLASSIFIER = Executable('disease_classifier', f'{PACKAGE}.nodes.disease_classifier',
                                subscribes_fix=True, loads_model=True)
PIPELINE = Executable('plant_disease_pipeline', f'{PACKAGE}.nodes.pipeline',
                      subscribes_image=True, subscribes_fix=True, loads_model=True)
DISEASE_MAP_RECORDER = Executable('disease_map_recorder',
                                  f'{PACKAGE}.nodes.disease_map_recorder', writes_map=True)
EXECUTABLES = {executable.name: executable for executable in
               (CAMERA_SUBSCRIBER, DISEASE_CLASSIFIER, PIPELINE, DISEASE_MAP_RECORDER)}


class NodeSetError(ValueError):
    """A node-set option that cannot be turned into a command line."""


@dataclass
class NodeSetOptions:
    """The launch arguments of ``field.launch.py``, as plain values."""

    namespace: str = DEFAULT_NAMESPACE
    params_file: Path | None = None
    image_topic: str = DEFAULT_IMAGE_TOPIC
    compressed: bool = False
    # The CompressedImage topic; None means image_transport's '<image_topic>/compressed'.
    compressed_image_topic: str | None = None
    gps_topic: str | None = DEFAULT_GPS_TOPIC
    use_sim_time: bool = False
    # '' sets nothing: the params file's value, else the node's default, as in the launch.
    model_path: str = ''
    map_dir: str = ''
    single_process: bool = True
    # Applied to every node after the file, like ``-p name:=value``.
    parameters: Mapping[str, str] = field(default_factory=dict)
    # Applied to one executable only, after everything else.
    node_parameters: Mapping[str, Mapping[str, str]] = field(default_factory=dict)

    @property
    def image_transport(self) -> str:
        """Return the image transport the camera subscriber uses."""
        return 'compressed' if self.compressed else 'raw'


@dataclass(frozen=True)
class NodeCommand:
    """One process of the node set: its executable and complete argv."""

    executable: Executable
    argv: list[str]

    @property
    def name(self) -> str:
        """Return the executable's name."""
        return self.executable.name


def normalize_namespace(namespace: str) -> str:
    """Return '/ns' for 'ns' or '/ns/', and '' for the root namespace."""
    stripped = namespace.strip().strip('/')
    if stripped and not re.fullmatch(r'[A-Za-z_][A-Za-z0-9_]*(/[A-Za-z_][A-Za-z0-9_]*)*',
                                     stripped):
        raise NodeSetError(f'invalid namespace {namespace!r}')
    return f'/{stripped}' if stripped else ''


def default_params_file() -> Path | None:
    """Return config/field.yaml of the source tree, or of the installed package share."""
    local = Path(__file__).resolve().parents[2] / 'config' / 'field.yaml'
    if local.is_file():
        return local
    try:
        from ament_index_python.packages import get_package_share_directory

        shared = Path(get_package_share_directory(PACKAGE)) / 'config' / 'field.yaml'
    except (ImportError, LookupError, ValueError, OSError):
        # OSError: ament_index without AMENT_PREFIX_PATH, i.e. no installed share either.
        return None
    return shared if shared.is_file() else None


def launch_parameters(executable: Executable) -> set[str]:
    """Return the parameters the launch sets on ``executable`` from its arguments.

    ``model_path`` and ``map_dir`` are set only when their argument is not empty.
    """
    names = {'use_sim_time'}
    if executable.subscribes_image:
        names.add('image_transport')
    if executable.loads_model:
        names.add('model_path')
    if executable.writes_map:
        names.add('map_dir')
    return names


def remapped_topics(executable: Executable) -> set[str]:
    """Return the relative input topics the launch remaps for ``executable``."""
    topics: set[str] = set()
    if executable.subscribes_image:
        topics |= {IMAGE_TOPIC, COMPRESSED_IMAGE_TOPIC}
    if executable.subscribes_fix:
        topics.add(FIX_TOPIC)
    return topics


def executables(options: NodeSetOptions) -> list[Executable]:
    """Return the executables the launch starts for ``options``, in start order."""
    if options.single_process:
        return [PIPELINE, DISEASE_MAP_RECORDER]
    return [CAMERA_SUBSCRIBER, DISEASE_CLASSIFIER, DISEASE_MAP_RECORDER]


def ros_arguments(executable: Executable, options: NodeSetOptions) -> list[str]:
    """Return the ``--ros-args`` part of ``executable``'s command line for ``options``.

    The order is the launch file's: namespace, params file, then the launch-argument
    values so that they win over the file, then the caller's overrides. An empty
    ``model_path`` or ``map_dir`` is not passed: the file's value stays.
    """
    namespace = normalize_namespace(options.namespace) or '/'
    args = ['--ros-args', '-r', f'__ns:={namespace}']
    if options.params_file is not None:
        args += ['--params-file', str(options.params_file)]
    args += ['-p', f'use_sim_time:={"true" if options.use_sim_time else "false"}']
    if executable.subscribes_image:
        args += ['-p', f'image_transport:={options.image_transport}']
        source = COMPRESSED_IMAGE_TOPIC if options.compressed else IMAGE_TOPIC
        target = options.image_topic
        if options.compressed:
            target = options.compressed_image_topic or f'{options.image_topic}/compressed'
        args += ['-r', f'{source}:={target}']
    if executable.loads_model and options.model_path:
        # '' leaves the file's value (shipped model); rcl would read an empty value as null.
        args += ['-p', f'model_path:={options.model_path}']
    if executable.subscribes_fix and options.gps_topic:
        args += ['-r', f'{FIX_TOPIC}:={options.gps_topic}']
    if executable.writes_map and options.map_dir:
        args += ['-p', f'map_dir:={options.map_dir}']
    for name, value in options.parameters.items():
        args += ['-p', f'{name}:={value}']
    for name, value in options.node_parameters.get(executable.name, {}).items():
        args += ['-p', f'{name}:={value}']
    return args


def node_commands(options: NodeSetOptions) -> list[NodeCommand]:
    """Return the command line of every process the launch starts for ``options``."""
    return [NodeCommand(executable, executable.command() + ros_arguments(executable, options))
            for executable in executables(options)]
