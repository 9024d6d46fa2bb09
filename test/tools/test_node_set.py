"""ros/node_set: the command lines of the node set for the launch's options."""

from __future__ import annotations

from pathlib import Path
import sys

import pytest

from plant_disease_ros.ros.node_set import (
    default_params_file,
    Executable,
    node_commands,
    NodeSetError,
    NodeSetOptions,
    normalize_namespace,
)

REPO_ROOT = Path(__file__).resolve().parents[2]


def commands(**options: object) -> dict[str, list[str]]:
    """Return ``{executable name: its --ros-args}`` for NodeSetOptions(**options)."""
    result = {}
    for command in node_commands(NodeSetOptions(**options)):
        assert command.argv[:len(command.executable.command())] == command.executable.command()
        result[command.name] = command.argv[command.argv.index('--ros-args'):]
    return result


def pairs(args: list[str]) -> list[tuple[str, str]]:
    """Return the (flag, value) pairs of ``--ros-args`` arguments, in order."""
    assert args[0] == '--ros-args'
    return list(zip(args[1::2], args[2::2], strict=True))


@pytest.mark.parametrize(('namespace', 'expected'), [
    ('plant_disease', '/plant_disease'), ('/a/b/', '/a/b'), ('  field ', '/field'),
    ('', ''), ('/', ''), ('_x9/y_', '/_x9/y_'),
])
def test_normalize_namespace(namespace: str, expected: str) -> None:
    """Namespaces are made absolute without a trailing slash; the root is ''."""
    assert normalize_namespace(namespace) == expected


@pytest.mark.parametrize('namespace', ['bad name', '9lives', 'a//b', 'a-b', 'ns/ü'])
def test_invalid_namespaces_are_refused(namespace: str) -> None:
    """Names rcl would refuse are a NodeSetError (a ValueError) naming the value."""
    with pytest.raises(NodeSetError, match='invalid namespace'):
        normalize_namespace(namespace)
    with pytest.raises(ValueError):
        node_commands(NodeSetOptions(namespace=namespace))


def test_single_process_runs_the_pipeline_and_the_recorder() -> None:
    """Single process: plant_disease_pipeline takes the camera and the fix, then the recorder."""
    result = commands(single_process=True, namespace='field', model_path='/m.tflite',
                      map_dir='/maps')
    assert list(result) == ['plant_disease_pipeline', 'disease_map_recorder']
    pipeline = pairs(result['plant_disease_pipeline'])
    assert pipeline == [('-r', '__ns:=/field'), ('-p', 'use_sim_time:=false'),
                        ('-p', 'image_transport:=raw'),
                        ('-r', 'image_raw:=/camera/image_raw'),
                        ('-p', 'model_path:=/m.tflite'), ('-r', 'fix:=/gps/fix')]
    assert pairs(result['disease_map_recorder']) == [
        ('-r', '__ns:=/field'), ('-p', 'use_sim_time:=false'), ('-p', 'map_dir:=/maps')]


def test_two_processes_split_camera_and_classifier() -> None:
    """Camera subscriber gets the image, the classifier the fix and the model."""
    result = commands(single_process=False, use_sim_time=True, model_path='/m.tflite')
    assert list(result) == ['camera_subscriber', 'disease_classifier', 'disease_map_recorder']
    camera = pairs(result['camera_subscriber'])
    assert ('-r', 'image_raw:=/camera/image_raw') in camera
    assert ('-p', 'use_sim_time:=true') in camera
    assert not [value for _, value in camera if value.startswith(('fix:=', 'model_path:='))]
    classifier = pairs(result['disease_classifier'])
    assert ('-r', 'fix:=/gps/fix') in classifier and ('-p', 'model_path:=/m.tflite') in classifier
    assert not [value for _, value in classifier
                if value.startswith(('image_raw', 'image_transport', 'transport'))]


def test_compressed_transport_remaps_the_compressed_topic() -> None:
    """compressed: image_transport parameter and the image topic's '/compressed' sub-topic."""
    result = commands(compressed=True, image_topic='/front/image_raw')
    pipeline = pairs(result['plant_disease_pipeline'])
    assert ('-p', 'image_transport:=compressed') in pipeline
    assert ('-r', 'image_raw/compressed:=/front/image_raw/compressed') in pipeline
    assert not [value for _, value in pipeline if value.startswith('image_raw:=')]


def test_no_gps_topic_means_no_fix_remapping_and_no_model_means_the_default() -> None:
    """gps_topic None leaves 'fix' unmapped; an empty model_path is not passed (rcl null)."""
    pipeline = pairs(commands(gps_topic=None)['plant_disease_pipeline'])
    assert not [value for _, value in pipeline if value.startswith(('fix:=', 'model_path'))]


@pytest.mark.parametrize('single_process', [True, False])
def test_empty_model_path_and_map_dir_leave_the_params_files_values(
        single_process: bool) -> None:
    """By default neither path is passed: a params file's model_path and map_dir stay.

    A ``-p map_dir:=disease_maps`` after the file reset a robot's map_dir on its storage
    mount, and the recorder refused to start. Given, each goes to the node that takes it.
    """
    result = commands(single_process=single_process, params_file=Path('/cfg/robot.yaml'))
    for name, args in result.items():
        assert not [value for _, value in pairs(args)
                    if value.startswith(('model_path:=', 'map_dir:='))], name
    result = commands(single_process=single_process, model_path='/m.tflite', map_dir='/maps')
    taking = {name: {value.split(':=')[0] for _, value in pairs(args)
                     if value.startswith(('model_path:=', 'map_dir:='))}
              for name, args in result.items()}
    assert taking.pop('disease_map_recorder') == {'map_dir'}
    assert taking.pop('disease_classifier' if not single_process
                      else 'plant_disease_pipeline') == {'model_path'}
    assert all(not names for names in taking.values())


def test_root_namespace_and_params_file_come_first() -> None:
    """The root namespace is '/'; the params file precedes every -p so that they win."""
    args = commands(namespace='', params_file=Path('/cfg/field.yaml'))['disease_map_recorder']
    assert args[:5] == ['--ros-args', '-r', '__ns:=/', '--params-file', '/cfg/field.yaml']


def test_overrides_come_last_and_node_parameters_only_on_their_node() -> None:
    """Caller parameters follow the launch values; node parameters go to one executable."""
    result = commands(map_dir='/maps', parameters={'map_dir': '/other', 'top_k': '3'},
                      node_parameters={'disease_map_recorder': {'run_name': 'r1'}})
    recorder = result['disease_map_recorder']
    assert recorder[-6:] == ['-p', 'map_dir:=/other', '-p', 'top_k:=3', '-p', 'run_name:=r1']
    assert recorder.index('map_dir:=/maps') < recorder.index('map_dir:=/other')
    assert 'run_name:=r1' not in result['plant_disease_pipeline']


def test_executable_command_falls_back_to_the_module() -> None:
    """An executable neither beside Python nor on PATH runs as the console scripts do."""
    missing = Executable('no_such_plant_disease_program', 'plant_disease_ros.nodes.pipeline')
    assert missing.command() == [sys.executable, '-m', 'plant_disease_ros.nodes.executables',
                                 'no_such_plant_disease_program']


def test_default_params_file_is_the_source_tree_config() -> None:
    """In a source checkout the default parameters are config/field.yaml."""
    assert default_params_file() == REPO_ROOT / 'config' / 'field.yaml'
