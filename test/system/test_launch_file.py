"""Check launch/field.launch.py without launch or launch_ros: parse it, never import it.

``launch`` and ``launch_ros`` are not installable from PyPI, so the file is read as a syntax
tree and everything it names is checked against the package: executables against
setup.py's console scripts, shared files against the repository and setup.py's data files,
launch arguments against their uses, parameters against what the nodes declare. Its plain
functions (which Fast DDS variable a distribution reads, the file checks, the parameter
file written from the arguments) are compiled alone, without the launch imports, and
called; the parameter file is read by real nodes after config/field.yaml.
"""

from __future__ import annotations

import ast
from collections.abc import Callable, Iterator
import importlib
import inspect
from pathlib import Path
import shutil
import tempfile

from helpers.setup_py import console_scripts
import pytest
import yaml

from plant_disease_ros.ros import node_set

REPO_ROOT = Path(__file__).resolve().parents[2]
LAUNCH_FILE = REPO_ROOT / 'launch' / 'field.launch.py'
SETUP_PY = REPO_ROOT / 'setup.py'
PACKAGE = 'plant_disease_ros'

REQUIRED_ARGUMENTS = {
    'params_file', 'namespace', 'image_topic', 'compressed', 'gps_topic', 'use_sim_time',
    'model_path', 'map_dir', 'single_process', 'rviz', 'dds_profile',
}
BOOLEAN_ARGUMENTS = {'compressed', 'use_sim_time', 'single_process', 'rviz'}
REQUIRED_FILES = {'config/field.yaml', 'config/fastdds_profile.xml', 'config/field.rviz'}
# Topic names each executable subscribes to, per docs/ARCHITECTURE.md (remapping sources).
INPUT_TOPICS = {
    'camera_subscriber': {'image_raw', 'image_raw/compressed'},
    'disease_classifier': {'fix', 'frames'},
    'plant_disease_pipeline': {'image_raw', 'image_raw/compressed', 'fix'},
    'disease_map_recorder': {'detections'},
}
# The pipeline hosts the camera subscriber and the classifier in one process.
PROCESS_NODES = {
    'camera_subscriber': ('camera_subscriber',),
    'disease_classifier': ('disease_classifier',),
    'disease_map_recorder': ('disease_map_recorder',),
    'plant_disease_pipeline': ('camera_subscriber', 'disease_classifier'),
}
BUILTIN_PARAMETERS = {'use_sim_time'}


def call_name(node: ast.AST) -> str | None:
    """Return the called name of a Call node (``f(...)`` or ``module.f(...)``)."""
    if not isinstance(node, ast.Call):
        return None
    if isinstance(node.func, ast.Name):
        return node.func.id
    if isinstance(node.func, ast.Attribute):
        return node.func.attr
    return None


def calls(tree: ast.AST, name: str) -> Iterator[ast.Call]:
    """Yield every call of ``name`` in ``tree``."""
    for node in ast.walk(tree):
        if call_name(node) == name:
            yield node  # type: ignore[misc]


def keyword(call: ast.Call, name: str) -> ast.expr | None:
    """Return the value of keyword argument ``name`` of ``call``, or None."""
    for item in call.keywords:
        if item.arg == name:
            return item.value
    return None


def constant_string(node: ast.AST | None) -> str | None:
    """Return the string of a string constant node, else None."""
    if isinstance(node, ast.Constant) and isinstance(node.value, str):
        return node.value
    return None


class LaunchModel:
    """The parsed launch file with name resolution for simple assignments."""

    def __init__(self, path: Path) -> None:
        self.source = path.read_text(encoding='utf-8')
        self.tree = ast.parse(self.source, filename=str(path))
        self.assignments: dict[str, ast.expr] = {}
        for node in ast.walk(self.tree):
            if (isinstance(node, ast.Assign) and len(node.targets) == 1
                    and isinstance(node.targets[0], ast.Name)):
                self.assignments[node.targets[0].id] = node.value

    def resolve(self, node: ast.AST | None) -> ast.AST | None:
        """Follow ``name = value`` assignments until a non-name expression."""
        seen: set[str] = set()
        while isinstance(node, ast.Name) and node.id in self.assignments:
            if node.id in seen:
                break
            seen.add(node.id)
            node = self.assignments[node.id]
        return node

    def first_string_argument(self, call: ast.Call) -> str | None:
        """Return the first positional (or ``name=``) argument as a string."""
        node = call.args[0] if call.args else keyword(call, 'name')
        return constant_string(self.resolve(node))

    def launch_configurations(self, node: ast.AST) -> set[str]:
        """Return the names of the LaunchConfiguration substitutions used under ``node``."""
        found: set[str] = set()
        stack: list[ast.AST | None] = [node]
        while stack:
            current = self.resolve(stack.pop())
            if current is None:
                continue
            if call_name(current) == 'LaunchConfiguration':
                name = self.first_string_argument(current)  # type: ignore[arg-type]
                if name:
                    found.add(name)
            # Names among the children are followed through the resolver when popped.
            stack.extend(ast.iter_child_nodes(current))
        return found

    def package_file(self, node: ast.AST | None) -> str | None:
        """Return 'folder/file' for PathJoinSubstitution([FindPackageShare(PACKAGE), ...])."""
        node = self.resolve(node)
        if call_name(node) != 'PathJoinSubstitution' or not node.args:  # type: ignore[union-attr]
            return None
        parts = self.resolve(node.args[0])  # type: ignore[union-attr]
        if not isinstance(parts, ast.List) or not parts.elts:
            return None
        share = self.resolve(parts.elts[0])
        if call_name(share) != 'FindPackageShare':
            return None
        if self.first_string_argument(share) != PACKAGE:  # type: ignore[arg-type]
            return None
        names = [constant_string(self.resolve(item)) for item in parts.elts[1:]]
        if any(name is None for name in names):
            return None
        return '/'.join(names)  # type: ignore[arg-type]

    def nodes(self) -> list[ast.Call]:
        """Return the launch_ros Node(...) calls."""
        return list(calls(self.tree, 'Node'))

    def node_executable(self, call: ast.Call) -> tuple[str | None, str | None]:
        """Return (package, executable) of a Node call."""
        return (constant_string(self.resolve(keyword(call, 'package'))),
                constant_string(self.resolve(keyword(call, 'executable'))))

    def list_items(self, node: ast.AST | None) -> list[ast.AST]:
        """Return the items of a list expression, following names and ``a + b``."""
        node = self.resolve(node)
        if isinstance(node, ast.List | ast.Tuple):
            return list(node.elts)
        if isinstance(node, ast.BinOp) and isinstance(node.op, ast.Add):
            return self.list_items(node.left) + self.list_items(node.right)
        raise AssertionError(f'cannot read a list from {ast.dump(node) if node else None}')

    def argument_parameters(self) -> set[str]:
        """Return ARGUMENT_PARAMETERS: what the argument_parameters file may set."""
        return set(ast.literal_eval(self.assignments['ARGUMENT_PARAMETERS']))

    def node_parameter_names(self, call: ast.Call) -> set[str]:
        """Return the parameter names a Node call passes as dictionaries."""
        names: set[str] = set()
        for item in self.list_items(keyword(call, 'parameters')):
            item = self.resolve(item)
            if isinstance(item, ast.Dict):
                for key in item.keys:
                    name = constant_string(self.resolve(key))
                    assert name is not None, 'parameter names must be string constants'
                    names.add(name)
            elif call_name(item) == 'LaunchConfiguration':
                continue  # a parameter file
            else:
                raise AssertionError(f'unexpected parameters entry: {ast.dump(item)}')
        return names

    def parameter_names(self, call: ast.Call) -> set[str]:
        """Return the parameter names a Node call may set from the arguments.

        Its dictionaries' names, and ARGUMENT_PARAMETERS where it reads the
        argument_parameters file (which applies to every node: ``/**``).
        """
        names = self.node_parameter_names(call)
        if 'argument_parameters' in self.launch_configurations(keyword(call, 'parameters')):
            names |= self.argument_parameters()
        return names

    def remapped_names(self, call: ast.Call) -> set[str]:
        """Return the topic names a Node call remaps (the sources of its rules)."""
        if keyword(call, 'remappings') is None:
            return set()
        sources: set[str] = set()
        for rule in self.list_items(keyword(call, 'remappings')):
            rule = self.resolve(rule)
            assert isinstance(rule, ast.Tuple) and len(rule.elts) == 2
            source = constant_string(self.resolve(rule.elts[0]))
            assert source is not None, 'remapping sources must be string constants'
            sources.add(source)
        return sources


def installed_share_folders() -> dict[str, str]:
    """Return setup.py's share_files(folder, pattern) entries: folder -> pattern."""
    tree = ast.parse(SETUP_PY.read_text(encoding='utf-8'))
    folders: dict[str, str] = {}
    for call in calls(tree, 'share_files'):
        folder = constant_string(call.args[0])
        pattern = constant_string(call.args[1]) if len(call.args) > 1 else '*'
        if folder:
            folders[folder] = pattern or '*'
    return folders


@pytest.fixture(scope='module')
def model() -> LaunchModel:
    """Parse the launch file once."""
    return LaunchModel(LAUNCH_FILE)


def test_launch_file_is_installed() -> None:
    """The launch file matches the pattern setup.py installs into the share folder."""
    folders = installed_share_folders()
    assert 'launch' in folders
    assert LAUNCH_FILE.match(folders['launch'])


def test_has_generate_launch_description(model: LaunchModel) -> None:
    """ros2 launch needs a module-level generate_launch_description()."""
    functions = {node.name for node in model.tree.body if isinstance(node, ast.FunctionDef)}
    assert 'generate_launch_description' in functions


def test_never_evaluates_strings(model: LaunchModel) -> None:
    """No PythonExpression, eval or exec: booleans go through conditions only."""
    names = {node.id for node in ast.walk(model.tree) if isinstance(node, ast.Name)}
    names |= {node.attr for node in ast.walk(model.tree) if isinstance(node, ast.Attribute)}
    imported = {alias.name for node in ast.walk(model.tree)
                if isinstance(node, ast.ImportFrom) for alias in node.names}
    assert not ({'PythonExpression', 'eval', 'exec'} & (names | imported))


def test_arguments_are_described_and_used(model: LaunchModel) -> None:
    """Every argument is declared once with a description, and every one is used."""
    declared: dict[str, ast.Call] = {}
    for call in calls(model.tree, 'DeclareLaunchArgument'):
        name = model.first_string_argument(call)
        assert name, 'launch argument names must be string constants'
        assert name not in declared, f'{name} declared twice'
        declared[name] = call
        description = constant_string(model.resolve(keyword(call, 'description')))
        assert description and len(description) > 10, f'{name} has no description'
    assert REQUIRED_ARGUMENTS <= set(declared), REQUIRED_ARGUMENTS - set(declared)

    internal = {model.first_string_argument(call)
                for call in calls(model.tree, 'SetLaunchConfiguration')}
    used = {model.first_string_argument(call) for call in calls(model.tree, 'LaunchConfiguration')}
    # Read by name into the argument_parameters file (see test_argument_parameters_file).
    used |= model.argument_parameters()
    assert not (internal & set(declared)), 'an internal configuration shadows an argument'
    assert set(declared) <= used, f'declared but unused: {set(declared) - used}'
    assert used <= set(declared) | internal, f'used but not declared: {used - set(declared)}'
    assert internal <= used, f'set but never used: {internal - used}'

    # launch checks a value against its choices as a string: 'True', which ROS users write
    # and IfCondition and a bool ParameterValue accept, must be among them.
    for name in BOOLEAN_ARGUMENTS:
        choices = model.resolve(keyword(declared[name], 'choices'))
        assert isinstance(choices, ast.List)
        assert {constant_string(item) for item in choices.elts} == \
            {'true', 'false', 'True', 'False'}
    namespace_default = constant_string(keyword(declared['namespace'], 'default_value'))
    assert namespace_default == 'plant_disease'
    # The single-process pipeline is the shipped layout (the bench's faster one).
    assert constant_string(keyword(declared['single_process'], 'default_value')) == 'true'
    assert model.package_file(keyword(declared['params_file'], 'default_value')) == \
        'config/field.yaml'


def test_boolean_arguments_drive_conditions(model: LaunchModel) -> None:
    """compressed, single_process and rviz are read through If/UnlessCondition."""
    conditioned: set[str] = set()
    for name in ('IfCondition', 'UnlessCondition'):
        for call in calls(model.tree, name):
            conditioned |= model.launch_configurations(call)
    assert {'compressed', 'single_process', 'rviz'} <= conditioned


def test_single_process_switches_the_nodes(model: LaunchModel) -> None:
    """single_process starts node_set's executables for each value; rviz is optional."""
    found = {}
    for call in model.nodes():
        _, executable = model.node_executable(call)
        condition = model.resolve(keyword(call, 'condition'))
        found[executable] = None if condition is None else (
            call_name(condition), *sorted(model.launch_configurations(condition)))
    assert found.pop('rviz2') == ('IfCondition', 'rviz')
    for single_process in (True, False):
        started = {name for name, condition in found.items()
                   if condition is None
                   or condition == ('IfCondition' if single_process else 'UnlessCondition',
                                    'single_process')}
        expected = node_set.executables(node_set.NodeSetOptions(single_process=single_process))
        assert started == {executable.name for executable in expected}, single_process


def test_executables_exist(model: LaunchModel) -> None:
    """Every plant_disease_ros executable is a console script whose module exists."""
    scripts = console_scripts()
    executables = set()
    for call in model.nodes():
        package, executable = model.node_executable(call)
        assert package and executable, 'package and executable must be string constants'
        if package != PACKAGE:
            assert (package, executable) == ('rviz2', 'rviz2')
            continue
        executables.add(executable)
        assert executable in scripts, f'{executable} is not a console script in setup.py'
        module = scripts[executable].split(':')[0]
        module_file = REPO_ROOT.joinpath(*module.split('.')).with_suffix('.py')
        assert module_file.is_file(), f'{executable}: {module_file} is missing'
    assert executables == set(PROCESS_NODES)


def test_referenced_files_exist_and_are_installed(model: LaunchModel) -> None:
    """Every share file named exists in the repository and setup.py installs its folder."""
    referenced = {path for node in ast.walk(model.tree)
                  if (path := model.package_file(node)) is not None}
    assert REQUIRED_FILES <= referenced, REQUIRED_FILES - referenced
    folders = installed_share_folders()
    for relative in referenced:
        assert (REPO_ROOT / relative).is_file(), f'{relative} is missing'
        folder = relative.rsplit('/', 1)[0]
        assert folder in folders and Path(relative).match(folders[folder]), \
            f'{relative} is not installed by setup.py'


FASTRTPS_VARIABLE = 'FASTRTPS_DEFAULT_PROFILES_FILE'
FASTDDS_VARIABLE = 'FASTDDS_DEFAULT_PROFILES_FILE'


def profile_variable_function(model: LaunchModel) -> Callable[[str], str]:
    """Compile the launch file's dds_profile_variable and its distro list alone; return it."""
    def wanted(node: ast.stmt) -> bool:
        if isinstance(node, ast.FunctionDef):
            return node.name == 'dds_profile_variable'
        return isinstance(node, ast.Assign) and any(
            isinstance(target, ast.Name) and target.id == 'FAST_DDS_2_DISTROS'
            for target in node.targets)

    body = [node for node in model.tree.body if wanted(node)]
    assert len(body) == 2, 'dds_profile_variable and FAST_DDS_2_DISTROS must be module-level'
    namespace: dict = {}
    exec(compile(ast.Module(body=body, type_ignores=[]), str(LAUNCH_FILE), 'exec'), namespace)
    return namespace['dds_profile_variable']


def test_dds_profile_is_exported_once_under_the_distros_name(model: LaunchModel) -> None:
    """One variable points at the shipped profile, its name chosen from ROS_DISTRO.

    Setting both names made Fast DDS 3 (Kilted on) warn in every process that
    FASTRTPS_DEFAULT_PROFILES_FILE is deprecated; Fast DDS 2 (Humble to Jazzy) reads only it.
    """
    exports = list(calls(model.tree, 'SetEnvironmentVariable'))
    assert len(exports) == 1, 'export the profile under one variable name'
    name, value = (model.resolve(node) for node in exports[0].args[:2])
    assert call_name(name) == 'dds_profile_variable'
    distro = name.args[0]  # type: ignore[attr-defined]
    assert isinstance(distro, ast.Call) and ast.unparse(distro.func) == 'os.environ.get'
    assert constant_string(distro.args[0]) == 'ROS_DISTRO'
    assert model.first_string_argument(exports[0]) is None, 'no fixed variable name'
    # The value is the dds_profile argument: by default the profile the environment names
    # under that same variable (a robot's own), else the shipped one.
    assert call_name(value) == 'LaunchConfiguration'
    assert model.first_string_argument(value) == 'dds_profile'  # type: ignore[arg-type]
    declared = {model.first_string_argument(call): call
                for call in calls(model.tree, 'DeclareLaunchArgument')}
    default = model.resolve(keyword(declared['dds_profile'], 'default_value'))
    assert call_name(default) == 'EnvironmentVariable'
    assert model.resolve(default.args[0]) is name  # type: ignore[union-attr]
    # Then the other variable name (a profile set before an upgrade), then the shipped one.
    older = model.resolve(keyword(default, 'default_value'))  # type: ignore[arg-type]
    assert call_name(older) == 'EnvironmentVariable'
    older_name = model.resolve(older.args[0])  # type: ignore[union-attr]
    assert isinstance(older_name, ast.IfExp)
    assert {constant_string(older_name.body), constant_string(older_name.orelse)} == {
        FASTRTPS_VARIABLE, FASTDDS_VARIABLE}
    assert model.package_file(keyword(older, 'default_value')) == \
        'config/fastdds_profile.xml'  # type: ignore[arg-type]


@pytest.mark.parametrize(('distro', 'variable'), [
    ('humble', FASTRTPS_VARIABLE), ('iron', FASTRTPS_VARIABLE), ('foxy', FASTRTPS_VARIABLE),
    ('jazzy', FASTRTPS_VARIABLE), ('Jazzy ', FASTRTPS_VARIABLE),
    ('kilted', FASTDDS_VARIABLE), ('rolling', FASTDDS_VARIABLE),
    ('', FASTDDS_VARIABLE),
])
def test_profile_variable_per_distribution(model: LaunchModel, distro: str,
                                           variable: str) -> None:
    """FASTRTPS_ up to Jazzy (Fast DDS 2.14), FASTDDS_ from Kilted on and when unset."""
    assert profile_variable_function(model)(distro) == variable


def module_level(model: LaunchModel, names: set[str]) -> dict:
    """Compile the launch file's module-level functions and constants ``names`` alone."""
    def wanted(node: ast.stmt) -> bool:
        if isinstance(node, ast.FunctionDef):
            return node.name in names
        return isinstance(node, ast.Assign) and any(
            isinstance(target, ast.Name) and target.id in names for target in node.targets)

    body = [node for node in model.tree.body if wanted(node)]
    assert len(body) == len(names), f'{names} must be module-level'
    # With the plain ``import x`` statements (os, tempfile, yaml), not launch's from-imports.
    body = [node for node in model.tree.body if isinstance(node, ast.Import)] + body
    namespace: dict = {}
    exec(compile(ast.Module(body=body, type_ignores=[]), str(LAUNCH_FILE), 'exec'), namespace)
    return namespace


def test_file_arguments_are_checked_before_anything_starts(model: LaunchModel) -> None:
    """params_file and dds_profile are expanded and checked by an OpaqueFunction first.

    launch_ros leaves a parameter file that is not a file out with a warning, and the
    shell does not expand ``~`` in ``params_file:=~/robot.yaml``: the nodes would start on
    their defaults. The check runs before the profile is exported and before any node; so
    does the writing of the argument_parameters file the nodes read.
    """
    namespace = module_level(model, {'FILE_ARGUMENTS'})
    assert set(namespace['FILE_ARGUMENTS']) == {'params_file', 'dds_profile'}
    opaque = list(calls(model.tree, 'OpaqueFunction'))
    assert len(opaque) == 1
    function = keyword(opaque[0], 'function')
    assert isinstance(function, ast.Name) and function.id == '_prepare_arguments'
    order = [node.lineno for node in ast.walk(model.resolve(model.assignments['environment']))
             if call_name(node) in {'OpaqueFunction', 'SetEnvironmentVariable'}]
    first_node = min(call.lineno for call in model.nodes())
    assert len(order) == 2 and order[0] < order[1] < first_node
    returned = ast.unparse(model.tree.body[[
        isinstance(node, ast.FunctionDef) and node.name == '_prepare_arguments'
        for node in model.tree.body].index(True)])
    assert 'SetLaunchConfiguration(name, existing_file(' in returned
    assert 'for name in FILE_ARGUMENTS' in returned
    assert 'LaunchConfiguration(name).perform(context) for name in ARGUMENT_PARAMETERS' \
        in returned
    assert "SetLaunchConfiguration('argument_parameters', write_parameter_file(" \
        "argument_parameters(values)))" in returned


def test_existing_file_expands_home_and_refuses_a_missing_file(
        model: LaunchModel, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """``~`` is the user's home; a missing file is an error that names the argument."""
    existing_file = module_level(model, {'existing_file'})['existing_file']
    monkeypatch.setenv('HOME', str(tmp_path))
    (tmp_path / 'robot.yaml').write_text('/**: {ros__parameters: {}}\n', encoding='utf-8')
    assert existing_file('params_file', '~/robot.yaml') == str(tmp_path / 'robot.yaml')
    assert existing_file('params_file', f' {tmp_path}/robot.yaml') == \
        str(tmp_path / 'robot.yaml')
    with pytest.raises(RuntimeError, match=r'params_file:=~/robt\.yaml: no such file \('
                       + str(tmp_path) + r'/robt\.yaml\)'):
        existing_file('params_file', '~/robt.yaml')
    with pytest.raises(RuntimeError, match='dds_profile:=.*: no such file'):
        existing_file('dds_profile', str(tmp_path))  # a folder is not a file


def argument_values(**values: str) -> dict[str, str]:
    """Return the values of ARGUMENT_PARAMETERS: the launch's defaults, else ``values``."""
    return {'use_sim_time': 'false', 'model_path': '', 'map_dir': '', **values}


def argument_parameters_file(model: LaunchModel, values: dict[str, str]) -> Path:
    """Write the launch's argument_parameters file for argument ``values``; return its path."""
    namespace = module_level(model, {'argument_parameters', 'write_parameter_file'})
    return Path(namespace['write_parameter_file'](namespace['argument_parameters'](values)))


@pytest.mark.parametrize(('values', 'expected'), [
    ({}, {'use_sim_time': False}),
    ({'use_sim_time': 'True'}, {'use_sim_time': True}),
    ({'model_path': '/opt/models/my.tflite'},
     {'use_sim_time': False, 'model_path': '/opt/models/my.tflite'}),
    ({'use_sim_time': 'true', 'map_dir': '/media/field/maps'},
     {'use_sim_time': True, 'map_dir': '/media/field/maps'}),
    # Values YAML would read as another type stay strings.
    ({'model_path': '123', 'map_dir': 'true'},
     {'use_sim_time': False, 'model_path': '123', 'map_dir': 'true'}),
])
def test_argument_parameters_file(model: LaunchModel, tmp_path: Path,
                                  monkeypatch: pytest.MonkeyPatch, values: dict[str, str],
                                  expected: dict[str, object]) -> None:
    """use_sim_time always; model_path and map_dir only when given, for every node.

    An empty path (the arguments' default) is left out so that the params file's value
    stays: the launch used to pass ``map_dir: disease_maps`` and ``model_path: ''`` after
    it, so a robot file's own model was never loaded and its map_dir on ``storage_mount``
    was replaced (the recorder refused to start).
    """
    namespace = module_level(model, {'ARGUMENT_PARAMETERS', 'argument_parameters'})
    assert namespace['ARGUMENT_PARAMETERS'] == ('use_sim_time', 'model_path', 'map_dir')
    content = namespace['argument_parameters'](argument_values(**values))
    assert content == {'/**': {'ros__parameters': expected}}
    monkeypatch.setattr(tempfile, 'tempdir', str(tmp_path))
    path = argument_parameters_file(model, argument_values(**values))
    assert path.parent == tmp_path and path.name.startswith('launch_params_')
    assert yaml.safe_load(path.read_text(encoding='utf-8')) == content


def test_argument_parameters_after_the_params_file_reach_the_nodes(
        model: LaunchModel, ros_context: object, tmp_path: Path,
        monkeypatch: pytest.MonkeyPatch) -> None:
    """Real nodes given the params file, then the argument file, as the launch passes them.

    Left empty, model_path and map_dir keep a robot file's values (its model, its map_dir
    on its storage mount) and config/field.yaml's (the shipped model, disease_maps);
    given, they win over both.
    """
    from plant_disease_ros.core.classifier import default_labels_path, default_model_path
    from plant_disease_ros.nodes.disease_classifier import DiseaseClassifierNode
    from plant_disease_ros.nodes.disease_map_recorder import DiseaseMapRecorder

    monkeypatch.chdir(tmp_path)  # config/field.yaml's relative disease_maps lands here
    monkeypatch.setattr(tempfile, 'tempdir', str(tmp_path))
    models = tmp_path / 'models'
    models.mkdir()
    robot_model = models / 'my.tflite'
    shutil.copyfile(default_model_path(), robot_model)
    shutil.copyfile(default_labels_path(), models / 'labels.txt')
    mount = tmp_path / 'field'  # not mounted: the recorder starts and waits for it
    mount.mkdir()
    robot = yaml.safe_load((REPO_ROOT / 'config' / 'field.yaml').read_text(encoding='utf-8'))
    robot['/**']['ros__parameters'].update(
        model_path=str(robot_model), storage_mount=str(mount), map_dir=str(mount / 'maps'))
    robot_file = tmp_path / 'robot.yaml'
    robot_file.write_text(yaml.safe_dump(robot), encoding='utf-8')

    def started(node_class: type, params_file: Path, values: dict[str, str],
                names: tuple[str, ...]) -> list[object]:
        arguments = argument_parameters_file(model, values)
        node = node_class(context=ros_context, cli_args=[
            '--ros-args', '--params-file', str(params_file), '--params-file', str(arguments)])
        try:
            return [node.get_parameter(name).value for name in names]
        finally:
            node.destroy_node()

    field_yaml = REPO_ROOT / 'config' / 'field.yaml'
    recorder = ('map_dir', 'use_sim_time')
    assert started(DiseaseMapRecorder, robot_file, argument_values(), recorder) == [
        str(mount / 'maps'), False]
    assert started(DiseaseMapRecorder, field_yaml, argument_values(), recorder) == [
        'disease_maps', False]
    assert started(DiseaseMapRecorder, robot_file, argument_values(
        map_dir=str(mount / 'other'), use_sim_time='True'), recorder) == [
        str(mount / 'other'), True]
    classifier = ('model_path',)
    assert started(DiseaseClassifierNode, robot_file, argument_values(), classifier) == [
        str(robot_model)]
    assert started(DiseaseClassifierNode, field_yaml, argument_values(), classifier) == ['']
    assert started(DiseaseClassifierNode, robot_file, argument_values(
        model_path=str(default_model_path())), classifier) == [str(default_model_path())]


def test_nodes_use_namespace_params_file_and_sim_time(model: LaunchModel) -> None:
    """Every package node runs in the namespace with the file, then the argument values.

    The argument_parameters file (use_sim_time and the non-empty paths) comes right after
    params_file so that it wins over it; the node's own dictionary after both.
    """
    for call in model.nodes():
        package, executable = model.node_executable(call)
        if package != PACKAGE:
            continue
        assert model.launch_configurations(keyword(call, 'namespace')) == {'namespace'}
        items = model.list_items(keyword(call, 'parameters'))
        assert [model.launch_configurations(item) for item in items[:2]] == [
            {'params_file'}, {'argument_parameters'}], executable
        assert all(isinstance(model.resolve(item), ast.Dict) for item in items[2:])
        assert model.parameter_names(call) >= {'use_sim_time', 'model_path', 'map_dir'}


def test_arguments_reach_their_nodes(model: LaunchModel) -> None:
    """Each node gets the argument-driven parameters that node_set gives it.

    Its own dictionary holds those not in the argument_parameters file, which is the same
    for every node (test_parameters_passed_are_declared checks which of its names each
    process takes); every name in that file reaches a node that takes it.
    """
    seen = set()
    taken: set[str] = set()
    for call in model.nodes():
        package, executable = model.node_executable(call)
        if package == PACKAGE:
            expected = node_set.launch_parameters(node_set.EXECUTABLES[executable])
            assert model.node_parameter_names(call) == \
                expected - model.argument_parameters(), executable
            assert model.parameter_names(call) >= expected, executable
            taken |= expected
            assert model.remapped_names(call) == node_set.remapped_topics(
                node_set.EXECUTABLES[executable]), executable
            seen.add(executable)
    assert seen == set(node_set.EXECUTABLES)
    assert model.argument_parameters() <= taken


def test_remappings_name_real_inputs(model: LaunchModel) -> None:
    """Remapping sources are the nodes' input topics; image and fix go to the arguments."""
    remapped_to: dict[str, set[str]] = {}
    for call in model.nodes():
        package, executable = model.node_executable(call)
        if package != PACKAGE:
            continue
        sources = model.remapped_names(call)
        assert sources <= INPUT_TOPICS[executable], (executable, sources)
        for rule in model.list_items(keyword(call, 'remappings')) if sources else []:
            rule = model.resolve(rule)
            source = constant_string(model.resolve(rule.elts[0]))  # type: ignore[union-attr]
            remapped_to.setdefault(source, set()).update(  # type: ignore[arg-type]
                model.launch_configurations(rule.elts[1]))  # type: ignore[union-attr]
    assert remapped_to['image_raw'] == {'image_topic'}
    assert remapped_to['image_raw/compressed'] == {'image_topic'}
    assert remapped_to['fix'] == {'gps_topic'}


def declared_parameters(module_name: str, context: object) -> set[str]:
    """Instantiate the rclpy node classes defined in ``module_name``; return their parameters."""
    from rclpy.node import Node as RclpyNode

    module = importlib.import_module(module_name)
    classes = [value for value in vars(module).values()
               if inspect.isclass(value) and issubclass(value, RclpyNode)
               and value.__module__ == module.__name__]
    assert classes, f'no rclpy Node class in {module_name}'
    names: set[str] = set()
    for node_class in classes:
        node = node_class(context=context)
        try:
            names |= set(node.get_parameters_by_prefix(''))
        finally:
            node.destroy_node()
    return names


def test_parameters_passed_are_declared(model: LaunchModel, ros_context: object) -> None:
    """Every parameter the launch file sets on a node is declared by a node in that process.

    The argument_parameters file goes to every node (``/**``, like params_file): of its
    names each process takes exactly those node_set passes to it.
    """
    # The node modules (the console scripts run them through nodes.executables).
    per_executable = {name: declared_parameters(node_set.EXECUTABLES[name].module, ros_context)
                      for name in ('camera_subscriber', 'disease_classifier',
                                   'disease_map_recorder')}
    for call in model.nodes():
        package, executable = model.node_executable(call)
        if package != PACKAGE:
            continue
        declared = set().union(*(per_executable[name] for name in PROCESS_NODES[executable]))
        declared |= BUILTIN_PARAMETERS
        passed = model.node_parameter_names(call)
        assert passed <= declared, (executable, passed - declared)
        assert model.parameter_names(call) & declared == node_set.launch_parameters(
            node_set.EXECUTABLES[executable]), executable
