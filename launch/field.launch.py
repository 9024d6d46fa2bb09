"""Start the plant disease pipeline on a robot: camera subscriber, classifier, map recorder.

Usage::

    ros2 launch plant_disease_ros field.launch.py
    ros2 launch plant_disease_ros field.launch.py image_topic:=/oak/rgb/image_raw \\
        compressed:=true gps_topic:=/ublox/fix single_process:=true rviz:=true

The nodes run in ``namespace`` with ``params_file`` (``config/field.yaml`` by default); the
launch arguments ``use_sim_time``, ``model_path`` and ``map_dir`` and the image transport
chosen by ``compressed`` are applied after the file, so they win over its values; but
``model_path`` or ``map_dir`` left empty (their default) sets nothing, and the file's value
stays (else the node's default). Those three reach the nodes in one parameter file written
before any node starts (``/**`` -> ``ros__parameters``, as launch_ros writes a dictionary
of parameters) that holds ``use_sim_time`` and the non-empty paths. Boolean arguments take
``true``/``false`` in either spelling ROS users write (``True``/``False``).
The Fast DDS profile (``dds_profile``: the robot's own when its environment names one,
else the shipped one) is exported to every process this file starts, under the one
variable name the running distribution's Fast DDS reads (``ROS_DISTRO``): Fast DDS 3 warns
that the older name is deprecated. ``params_file`` and ``dds_profile`` may start with ``~``;
one that names no file stops the launch with an error, since launch_ros would otherwise
leave a missing parameter file out with a warning and start the nodes on their defaults.

No string is evaluated here: booleans go through IfCondition/UnlessCondition and the
transport name is chosen by two conditional SetLaunchConfiguration actions.

The node set (executables, the parameters set from arguments, the remappings) mirrors
``plant_disease_ros/ros/node_set.py``, which replay, the bench and the tests use;
``test/system/test_launch_file.py`` checks that both agree.
"""

import os
import tempfile

from launch import LaunchContext, LaunchDescription
from launch.actions import (
    DeclareLaunchArgument,
    OpaqueFunction,
    SetEnvironmentVariable,
    SetLaunchConfiguration,
)
from launch.conditions import IfCondition, UnlessCondition
from launch.substitutions import EnvironmentVariable, LaunchConfiguration, PathJoinSubstitution
from launch_ros.actions import Node
from launch_ros.parameter_descriptions import ParameterValue
from launch_ros.substitutions import FindPackageShare
import yaml

PACKAGE = 'plant_disease_ros'
# Distributions whose Fast DDS (2.x; Jazzy ships 2.14) reads only
# FASTRTPS_DEFAULT_PROFILES_FILE; from Kilted on Fast DDS 3.x reads
# FASTDDS_DEFAULT_PROFILES_FILE and warns about the older name.
FAST_DDS_2_DISTROS = ('foxy', 'galactic', 'humble', 'iron', 'jazzy')
# File arguments expanded (``~``) and checked before any node starts.
FILE_ARGUMENTS = ('params_file', 'dds_profile')
# What a boolean argument accepts: IfCondition and a bool ParameterValue read both spellings.
BOOLEAN_CHOICES = ['true', 'false', 'True', 'False']
# Arguments that set the node parameter of the same name on every node, after params_file:
# use_sim_time always, the others only when not empty ('' keeps the file's value).
ARGUMENT_PARAMETERS = ('use_sim_time', 'model_path', 'map_dir')


def dds_profile_variable(distro: str) -> str:
    """Return the Fast DDS profile variable that distribution ``distro`` reads."""
    if distro.strip().lower() in FAST_DDS_2_DISTROS:
        return 'FASTRTPS_DEFAULT_PROFILES_FILE'
    return 'FASTDDS_DEFAULT_PROFILES_FILE'


def existing_file(argument: str, value: str) -> str:
    """Return launch argument ``argument``'s file ``value`` with ``~`` expanded.

    Raise RuntimeError (launch stops and prints it) when it names no file.
    """
    path = os.path.expanduser(value.strip())
    if not os.path.isfile(path):
        raise RuntimeError(f'{argument}:={value}: no such file'
                           + (f' ({path})' if path != value else ''))
    return path


def argument_parameters(values: dict[str, str]) -> dict[str, dict]:
    """Return the parameter file content that applies the ARGUMENT_PARAMETERS ``values``.

    ``use_sim_time`` is always set (a boolean, never an empty mapping); ``model_path`` and
    ``map_dir`` only when not empty, so that an empty one leaves the params file's value.
    """
    parameters: dict[str, bool | str] = {
        'use_sim_time': values['use_sim_time'].strip().lower() == 'true'}
    parameters.update({name: values[name] for name in ('model_path', 'map_dir')
                       if values[name]})
    return {'/**': {'ros__parameters': parameters}}


def write_parameter_file(content: dict[str, dict]) -> str:
    """Write ``content`` to a new YAML file and return its path.

    The file is kept, as launch_ros keeps the ones it writes for dictionaries of parameters:
    a node that respawns reads it again.
    """
    with tempfile.NamedTemporaryFile('w', prefix='launch_params_', suffix='.yaml',
                                     delete=False) as file:
        yaml.safe_dump(content, file, default_flow_style=False)
    return file.name


def _prepare_arguments(context: LaunchContext) -> list[SetLaunchConfiguration]:
    """Check the file arguments and write the argument parameters, before anything starts.

    The file arguments are expanded and checked; ``argument_parameters`` is set to the
    parameter file of the ARGUMENT_PARAMETERS.
    """
    checked = [SetLaunchConfiguration(name, existing_file(
                   name, LaunchConfiguration(name).perform(context)))
               for name in FILE_ARGUMENTS]
    values = {name: LaunchConfiguration(name).perform(context) for name in ARGUMENT_PARAMETERS}
    return checked + [SetLaunchConfiguration(
        'argument_parameters', write_parameter_file(argument_parameters(values)))]


def generate_launch_description() -> LaunchDescription:
    """Return the launch description for the field pipeline."""
    share = FindPackageShare(PACKAGE)
    default_params_file = PathJoinSubstitution([share, 'config', 'field.yaml'])
    shipped_dds_profile = PathJoinSubstitution([share, 'config', 'fastdds_profile.xml'])
    profile_variable = dds_profile_variable(os.environ.get('ROS_DISTRO', ''))
    # A robot may still name its profile under the other variable (set before an upgrade).
    older_variable = ('FASTRTPS_DEFAULT_PROFILES_FILE'
                      if profile_variable == 'FASTDDS_DEFAULT_PROFILES_FILE'
                      else 'FASTDDS_DEFAULT_PROFILES_FILE')
    rviz_config = PathJoinSubstitution([share, 'config', 'field.rviz'])

    arguments = [
        DeclareLaunchArgument(
            'params_file', default_value=default_params_file,
            description='YAML parameter file for all nodes (keyed /** -> ros__parameters)'),
        DeclareLaunchArgument(
            'namespace', default_value='plant_disease',
            description='Namespace of the nodes and of their relative topics'),
        DeclareLaunchArgument(
            'image_topic', default_value='/camera/image_raw',
            description='Camera image topic (sensor_msgs/Image); with compressed:=true its '
                        '/compressed sub-topic (sensor_msgs/CompressedImage) is used'),
        DeclareLaunchArgument(
            'compressed', default_value='false', choices=BOOLEAN_CHOICES,
            description='Subscribe to the JPEG/PNG compressed image instead of the raw one'),
        DeclareLaunchArgument(
            'gps_topic', default_value='/gps/fix',
            description='GNSS fix topic (sensor_msgs/NavSatFix) used to geotag detections'),
        DeclareLaunchArgument(
            'use_sim_time', default_value='false', choices=BOOLEAN_CHOICES,
            description='Use /clock (true when playing a bag with --clock)'),
        DeclareLaunchArgument(
            'model_path', default_value='',
            description="TFLite model file; '' means params_file's model_path (the "
                        "shipped int8 model in config/field.yaml)"),
        DeclareLaunchArgument(
            'map_dir', default_value='',
            description="Folder the disease map recorder writes its GeoJSON into; '' means "
                        "params_file's map_dir (disease_maps in config/field.yaml)"),
        # One process by default: it saves every frame a second DDS hop.
        DeclareLaunchArgument(
            'single_process', default_value='true', choices=BOOLEAN_CHOICES,
            description='Run camera subscriber and classifier in one process '
                        '(plant_disease_pipeline, one executor); false: two processes, '
                        'with the RGB frames on the frames topic'),
        DeclareLaunchArgument(
            'rviz', default_value='false', choices=BOOLEAN_CHOICES,
            description='Start RViz with config/field.rviz'),
        # A robot whose environment already names a profile (discovery server, interface
        # allow-list) keeps it; give it a shared-memory segment as large as the shipped one.
        DeclareLaunchArgument(
            'dds_profile',
            default_value=EnvironmentVariable(
                profile_variable, default_value=EnvironmentVariable(
                    older_variable, default_value=shipped_dds_profile)),
            description='Fast DDS XML profile exported to the nodes; default: the one the '
                        'environment names (either variable name), else the shipped '
                        'config/fastdds_profile.xml'),
    ]

    compressed = LaunchConfiguration('compressed')
    single_process = LaunchConfiguration('single_process')
    transport_choice = [
        SetLaunchConfiguration('image_transport', 'compressed',
                               condition=IfCondition(compressed)),
        SetLaunchConfiguration('image_transport', 'raw', condition=UnlessCondition(compressed)),
    ]
    environment = [
        OpaqueFunction(function=_prepare_arguments),
        SetEnvironmentVariable(profile_variable, LaunchConfiguration('dds_profile')),
    ]

    namespace = LaunchConfiguration('namespace')
    image_topic = LaunchConfiguration('image_topic')
    params_file = LaunchConfiguration('params_file')
    # After the file, so that they win over it; written by _prepare_arguments.
    from_arguments = LaunchConfiguration('argument_parameters')
    image_transport = LaunchConfiguration('image_transport')
    use_sim_time = ParameterValue(LaunchConfiguration('use_sim_time'), value_type=bool)
    image_remappings = [
        ('image_raw', image_topic),
        ('image_raw/compressed', [image_topic, '/compressed']),
    ]
    fix_remappings = [('fix', LaunchConfiguration('gps_topic'))]

    # Each parameter list has the launch-argument values after the file, so that they win.
    nodes = [
        Node(
            package=PACKAGE, executable='camera_subscriber', namespace=namespace,
            parameters=[params_file, from_arguments, {'image_transport': image_transport}],
            remappings=image_remappings, output='screen', emulate_tty=True,
            condition=UnlessCondition(single_process)),
        Node(
            package=PACKAGE, executable='disease_classifier', namespace=namespace,
            parameters=[params_file, from_arguments],
            remappings=fix_remappings, output='screen', emulate_tty=True,
            condition=UnlessCondition(single_process)),
        Node(
            package=PACKAGE, executable='plant_disease_pipeline', namespace=namespace,
            parameters=[params_file, from_arguments, {'image_transport': image_transport}],
            remappings=image_remappings + fix_remappings, output='screen', emulate_tty=True,
            condition=IfCondition(single_process)),
        # At Ctrl-C it takes the classifier's last detections (at most 3 s), then its save
        # reads the whole run (about 12 s for 8 h of detections at 10 a second): launch's
        # default 5 s before SIGTERM, 5 more before SIGKILL, would cut it short.
        Node(
            package=PACKAGE, executable='disease_map_recorder', namespace=namespace,
            parameters=[params_file, from_arguments],
            output='screen', emulate_tty=True, sigterm_timeout='60'),
        Node(
            package='rviz2', executable='rviz2', arguments=['-d', rviz_config],
            parameters=[{'use_sim_time': use_sim_time}], output='screen',
            condition=IfCondition(LaunchConfiguration('rviz'))),
    ]
    return LaunchDescription(arguments + transport_choice + environment + nodes)
