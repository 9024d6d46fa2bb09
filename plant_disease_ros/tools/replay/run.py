"""Run one replay: start the node set (or attach to one), play the bag, save and summarise.

The node set comes from ``plant_disease_ros.ros.node_set`` (the launch's description)
and is supervised by ``plant_disease_ros.tools.process``; its processes get loopback
discovery unless ``ROS_AUTOMATIC_DISCOVERY_RANGE`` is set (set it to SUBNET to attach to
a robot) and keep ``ROS_DOMAIN_ID``. They are always stopped at the end, on errors and on
Ctrl-C (and on SIGTERM or SIGHUP inside ``tools.process.stop_on_termination``). Each run
in an output folder has its own number N for all its files (see ``outputs.output_paths``).
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping, Sequence
import math
import os
from pathlib import Path
import signal
import sys
import threading
from types import FrameType, TracebackType
from typing import Any, TextIO

from plant_disease_ros.core.fix_buffer import DEFAULT_MAX_FIX_ACCURACY_M
from plant_disease_ros.ros.node_set import (
    CAMERA_SUBSCRIBER,
    default_params_file,
    DISEASE_CLASSIFIER,
    node_commands,
    NodeCommand,
    NodeSetError,
    NodeSetOptions,
    normalize_namespace,
)
from plant_disease_ros.tools.process import (
    ProcessError,
    ProcessGroup,
    ros_environment,
    Terminated,
)
from plant_disease_ros.tools.replay.bag import (
    BagMessage,
    BagSelection,
    inspect_bag,
    open_bag,
    other_cameras,
    read_messages,
    readable_bag,
)
from plant_disease_ros.tools.replay.options import (
    one_line,
    ReplayError,
    ReplayOptions,
    ReplayOutputError,
)
from plant_disease_ros.tools.replay.outputs import (
    add_counts,
    discard_failed_start,
    output_paths,
    records_kept,
    ReplayOutputs,
    save_when_complete,
    write_map,
    write_summary,
)
from plant_disease_ros.tools.replay.overrides import override_problems
from plant_disease_ros.tools.replay.playback import (
    check_namespace_free,
    Playback,
    unlocated_warning,
)
from plant_disease_ros.tools.replay.player import PIPELINE_NODES, ReplayPlayer
from plant_disease_ros.tools.replay.progress import ProgressLine
from plant_disease_ros.tools.replay.received import ReceivedDetections
from plant_disease_ros.tools.replay.recorder import output_topics, OutputRecorder, RECORDED_OUTPUTS
from plant_disease_ros.tools.replay.summary import ReplaySummary

# Set by the replay from the bag and its output folder; a user override would break the
# input remapping or the map save, so it is left out ('transport': image_transport's
# deprecated name).
REPLAY_PARAMETERS = ('image_transport', 'transport', 'map_dir', 'run_name')
# Set by --fast: camera_subscriber's rate cap counts wall time, and a fast replay sends the
# next frame as soon as one is classified, so a capped frame would be dropped and wait
# for a re-send (FRAME_RETRY_S) each time.
FAST_PARAMETERS = {'max_rate_hz': '0.0'}
# Set by --fast unless -p gives them: a frame a node refuses (an undecodable JPEG) is seen
# in its next /diagnostics status, and a fast replay waits for that before the next frame;
# at the nodes' 1 s each refused frame cost about a second.
FAST_DEFAULTS = {'diagnostics_period_s': '0.05'}
STOP_TIMEOUT_S = 8.0
_COMPRESSED_SUFFIX = '/compressed'


def fast_defaults(options: ReplayOptions) -> dict[str, str]:
    """Return the FAST_DEFAULTS that neither ``-p`` nor the user's parameter file sets.

    The package's own parameter file (the default) gives way to them; a file the user
    names with ``--params-file`` does not.
    """
    if options.params_file is None:
        return dict(FAST_DEFAULTS)
    namespace = normalize_namespace(options.namespace)
    given = set()
    for node in PIPELINE_NODES:
        given.update(file_parameters(options.params_file, f'{namespace}/{node}',
                                     tuple(FAST_DEFAULTS)))
    return {name: value for name, value in FAST_DEFAULTS.items() if name not in given}


def pipeline_options(selection: BagSelection, options: ReplayOptions, map_dir: Path,
                     run_name: str, params_file: Path | None) -> NodeSetOptions:
    """Return the node-set options that start the pipeline for this bag and output folder."""
    compressed = selection.transport == 'compressed'
    image_topic = selection.image.name
    if compressed and image_topic.endswith(_COMPRESSED_SUFFIX):
        image_topic = image_topic[:-len(_COMPRESSED_SUFFIX)]
    parameters = {name: value for name, value in options.parameters.items()
                  if name not in REPLAY_PARAMETERS}
    if options.fast:
        parameters = {**fast_defaults(options), **parameters, **FAST_PARAMETERS}
    return NodeSetOptions(
        namespace=options.namespace, params_file=params_file, image_topic=image_topic,
        compressed=compressed,
        compressed_image_topic=selection.image.name if compressed else None,
        gps_topic=selection.fix.name if selection.fix else None,
        use_sim_time=options.clock, map_dir=str(map_dir),
        single_process=options.single_process, parameters=parameters,
        node_parameters={'disease_map_recorder': {'run_name': run_name}})


def overrides_to_check(options: ReplayOptions) -> dict[str, str]:
    """Return the ``-p`` overrides the started nodes should hold as given.

    Not those the replay sets itself (REPLAY_PARAMETERS, and with ``--fast`` the
    FAST_PARAMETERS): it says so in its warnings.
    """
    replaced = set(REPLAY_PARAMETERS) | (set(FAST_PARAMETERS) if options.fast else set())
    return {name: value for name, value in options.parameters.items() if name not in replaced}


def ignored_overrides(parameters: Mapping[str, str]) -> str:
    """Return the warning for the ``-p`` overrides of REPLAY_PARAMETERS, or ''."""
    ignored = sorted(name for name in parameters if name in REPLAY_PARAMETERS)
    if not ignored:
        return ''
    them = 'it' if len(ignored) == 1 else 'them'
    return (f'-p {", ".join(ignored)} ignored: the replay sets {them} from the bag and its '
            'output folder')


def check_overrides(player: ReplayPlayer, overrides: Mapping[str, str]) -> None:
    """Raise ReplayError naming each override the started nodes did not take.

    rcl drops an override silently when no node declares the name (a typo) or when its
    value reads as another type than the declared one (``0,9`` is a string); the replay
    would run with the parameter file's value and list the override as applied.
    """
    if not overrides:
        return
    declared = {}
    for name in PIPELINE_NODES:
        parameters = player.declared_parameters(name)
        if parameters is not None:
            declared[name] = parameters
    if not declared:
        raise ReplayError('the -p overrides could not be checked: no node of the pipeline '
                          'answered on its get_parameters service')
    problems = override_problems(overrides, declared)
    if problems:
        raise ReplayError('; '.join(problems) + ' (nothing was played)')


def pipeline_commands(selection: BagSelection, options: ReplayOptions, map_dir: Path,
                      run_name: str, params_file: Path | None) -> list[NodeCommand]:
    """Return the command line of each pipeline process for this replay."""
    return node_commands(pipeline_options(selection, options, map_dir, run_name, params_file))


def pipeline_model(parameters: Mapping[str, str], params_file: Path | None,
                   namespace: str = '/') -> tuple[Path, Path, int | None]:
    """Return the model, labels file and label count the started classifier loads.

    As the classifier resolves them: ``model_path`` and ``labels_path`` from a ``-p``
    override, else from the parameter file (the sections that match the classifier's
    full name ``<namespace>/disease_classifier``, a later one over an earlier one, as
    rcl applies them), else the shipped model and the ``labels.txt`` beside the model
    (the shipped labels without one). The count is None when the labels file cannot be
    read.
    """
    from plant_disease_ros.core.classifier import default_model_path, labels_beside
    from plant_disease_ros.core.interpreter_loader import ModelLoadError
    from plant_disease_ros.core.labels import load_labels

    # The classifier node is named as its executable, in the pipeline process too.
    node = f'{namespace.rstrip("/")}/{DISEASE_CLASSIFIER.name}'
    values = {**file_parameters(params_file, node, ('model_path', 'labels_path')),
              **parameters}
    model = Path(values['model_path']) if values.get('model_path') else default_model_path()
    labels = (Path(values['labels_path']) if values.get('labels_path')
              else labels_beside(model))
    try:
        count: int | None = len(load_labels(labels))
    except ModelLoadError:
        count = None
    return model, labels, count


def fast_rate_cap(parameters: Mapping[str, str], params_file: Path | None,
                  namespace: str = '/') -> str:
    """Return the camera's rate cap that ``--fast`` overrides, as the user set it, or ''.

    ``max_rate_hz`` from a ``-p`` override, else from the parameter file's sections that
    match ``<namespace>/camera_subscriber``; '' when it is 0 (or unset, or not a number:
    the node refuses that at start).
    """
    if 'max_rate_hz' in parameters:
        value = parameters['max_rate_hz']
        source = f'-p max_rate_hz:={value}'
    else:
        node = f'{namespace.rstrip("/")}/{CAMERA_SUBSCRIBER.name}'
        value = file_parameters(params_file, node, ('max_rate_hz',)).get('max_rate_hz', '')
        source = f'{params_file}'
    try:
        capped = float(value) != 0.0
    except ValueError:
        capped = False
    if not capped:
        return ''
    return (f'--fast sets max_rate_hz to 0 (camera_subscriber rate cap {value} Hz from '
            f'{source}): a fast replay sends each frame once the previous one is '
            'classified, and a capped frame would be dropped and re-sent after a wait')


def fix_accuracy_limit(parameters: Mapping[str, str], params_file: Path | None,
                       namespace: str = '/', attached: bool = False) -> tuple[float, str]:
    """Return the classifier's ``max_fix_accuracy_m`` in this replay and where it comes from.

    As the started classifier gets it: from a ``-p`` override, else from the parameter
    file's sections that match ``<namespace>/disease_classifier``, else the node default.
    Attached, the running pipeline's value is not known here: the node default, and the
    source says so. A value that is not a number (the node refuses it at start) counts as
    unset. The source is '-p max_fix_accuracy_m:=X', the file's path or 'the node default'
    (attached: with why).
    """
    name = 'max_fix_accuracy_m'
    if attached:
        return DEFAULT_MAX_FIX_ACCURACY_M, ("the node default (attached: the running "
                                            "pipeline's value is not known here)")
    if name in parameters:
        value, source = parameters[name], f'-p {name}:={parameters[name]}'
    else:
        node = f'{namespace.rstrip("/")}/{DISEASE_CLASSIFIER.name}'
        value = file_parameters(params_file, node, (name,)).get(name, '')
        source = str(params_file)
    try:
        limit = float(value)
    except ValueError:
        limit = math.nan
    if not math.isfinite(limit):
        return DEFAULT_MAX_FIX_ACCURACY_M, 'the node default'
    return limit, source


def file_parameters(params_file: Path | None, node: str,
                    names: Sequence[str]) -> dict[str, str]:
    """Return the parameters ``names`` a ROS 2 parameter file gives the node ``node``.

    ``node`` is a full name (``/plant_disease/disease_classifier``). A section applies when
    its name, nested mappings joined by '/', matches it as rcl matches: a name without a
    leading '/' from the root, ``*`` one token, ``**`` any number; sections apply in file
    order, a later one over an earlier one. A value that is null or missing is ''.
    """
    if params_file is None:
        return {}
    try:
        import yaml

        document = yaml.safe_load(Path(params_file).read_text(encoding='utf-8')) or {}
    except (OSError, ValueError, ImportError):  # yaml.YAMLError is a ValueError
        return {}
    target = [token for token in node.split('/') if token]
    found: dict[str, str] = {}
    for pattern, section in _parameter_sections(document, ()):
        if _name_matches(pattern, target):
            found.update({name: str(section[name] if section[name] is not None else '')
                          for name in names if name in section})
    return found


def _parameter_sections(document: object, prefix: tuple[str, ...]
                        ) -> Iterator[tuple[tuple[str, ...], dict]]:
    """Yield (name tokens, ros__parameters mapping) of a parameter file, in file order."""
    if not isinstance(document, dict):
        return
    for key, value in document.items():
        if key == 'ros__parameters':
            if isinstance(value, dict):
                yield prefix, value
        elif isinstance(value, dict):
            tokens = tuple(token for token in str(key).split('/') if token)
            yield from _parameter_sections(value, prefix + tokens)


def _name_matches(pattern: Sequence[str], name: Sequence[str]) -> bool:
    """Return whether name tokens match pattern tokens (``*`` one, ``**`` any number)."""
    if not pattern:
        return not name
    head, rest = pattern[0], pattern[1:]
    if head == '**':
        return any(_name_matches(rest, name[index:]) for index in range(len(name) + 1))
    return bool(name) and (head in ('*', name[0])) and _name_matches(rest, name[1:])


class DeferredSignals:
    """While the replay stops its nodes and closes its bags, Ctrl-C waits (a context manager).

    A second Ctrl-C there would cut the stop short and leave the output bag unreadable
    (the writer never closed) and rclpy's executor thread running: the interpreter then
    aborts. Inside, SIGINT, and SIGTERM and SIGHUP where Python handles them (see
    ``tools.process.stop_on_termination``), are noted and answered with a line on
    ``stream``; :meth:`raise_pending` raises the first one afterwards (when no other
    exception is unwinding already). Outside the main thread it does nothing.
    """

    SIGNALS = (signal.SIGINT, signal.SIGTERM, signal.SIGHUP)

    def __init__(self, stream: TextIO) -> None:
        self.stream = stream
        self.received: int | None = None
        self._previous: dict[int, Any] = {}

    def _handle(self, signum: int, frame: FrameType | None) -> None:
        if self.received is None:
            self.received = signum
        try:
            print(f'replay: {signal.Signals(signum).name} received: still stopping the '
                  'nodes and closing the output bag', file=self.stream, flush=True)
        except (OSError, RuntimeError, ValueError):  # a write cut in two, a closed stream
            pass

    def __enter__(self) -> DeferredSignals:
        """Note the signals from now on instead of raising them."""
        if threading.current_thread() is not threading.main_thread():
            return self
        for signum in self.SIGNALS:
            handler = signal.getsignal(signum)
            # SIGINT unless ignored; the others only where Python handles them (their
            # default ends the process at once, as it did before).
            if handler is signal.SIG_IGN or (signum != signal.SIGINT and not callable(handler)):
                continue
            self._previous[signum] = handler
            signal.signal(signum, self._handle)
        return self

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 traceback: TracebackType | None) -> None:
        """Restore the handlers."""
        for signum, handler in self._previous.items():
            signal.signal(signum, signal.SIG_DFL if handler is None else handler)
        self._previous.clear()

    def raise_pending(self) -> None:
        """Raise the signal noted inside: KeyboardInterrupt, or Terminated (TERM, HUP)."""
        signum, self.received = self.received, None
        if signum == signal.SIGINT:
            raise KeyboardInterrupt
        if signum is not None:
            raise Terminated(signum)


def failed_start_error(failure: ReplayError, outputs: ReplayOutputs,
                       bag_empty: bool) -> ReplayError:
    """Remove the empty outputs of a run whose nodes never came up; return its error.

    The error names what was removed and where its logs went (see
    :func:`outputs.discard_failed_start`), so the message's log paths still lead to them.
    """
    logs, removed = discard_failed_start(outputs, bag_empty)
    message = str(failure)
    if logs is not None and logs != outputs.logs:
        message = message.replace(str(outputs.logs), str(logs))
    parts = [f"the run's empty outputs were removed ({', '.join(removed)})" if removed
             else 'nothing of the run was removed']
    if logs is not None:
        parts.append(f'its logs are in {logs}')
    return ReplayError(f'{message}; {"; ".join(parts)}')


def replay(options: ReplayOptions, stream: TextIO = sys.stderr) -> ReplaySummary:
    """Replay ``options.bag`` through the pipeline; return the summary (ReplayError on failure)."""
    options.check()
    try:
        import rosbags  # noqa: F401
    except ImportError as error:
        raise ReplayError(f'replay needs the rosbags package: {error}') from error
    # A file-compressed bag is decompressed once for the topics, frames and fixes.
    with readable_bag(options.bag) as source:
        return _replay(options, stream, source)


def _replay(options: ReplayOptions, stream: TextIO, source: Path) -> ReplaySummary:
    """Replay the bag ``options.bag``, read from ``source`` (see ``bag.readable_bag``)."""
    # Errors name the user's bag, never its decompressed copy (gone when they are read).
    bag = Path(options.bag)
    selection = inspect_bag(source, options.image_topic, options.fix_topic, display_path=bag)
    try:
        import rclpy  # noqa: F401
    except ImportError as error:
        raise ReplayError(
            f'replay needs rclpy and the ROS 2 message packages: {error}') from error
    try:
        namespace = normalize_namespace(options.namespace)
    except NodeSetError as error:
        raise ReplayError(str(error)) from error
    # This process joins the graph too: loopback unless the user chose otherwise.
    os.environ.setdefault('ROS_AUTOMATIC_DISCOVERY_RANGE', 'LOCALHOST')
    from rosbags.rosbag2 import StoragePlugin, Writer
    from rosbags.typesys import get_typestore, Stores

    typestore = get_typestore(Stores.LATEST)
    outputs = output_paths(options.out_dir, selection.path)
    out_dir, output_bag, map_dir, run_name = (outputs.out_dir, outputs.output_bag,
                                              outputs.map_dir, outputs.run_name)
    params_file = options.params_file or default_params_file()
    summary = ReplaySummary(
        bag=selection.path, image_topic=selection.image.name,
        fix_topic=selection.fix.name if selection.fix else None, mode=options.mode,
        out_dir=out_dir, parameters=dict(options.parameters),
        params_file=None if options.attach else params_file)
    if not options.attach:  # attached: the running pipeline's model, not known here
        summary.model_path, summary.labels_path, summary.label_count = pipeline_model(
            options.parameters, params_file, namespace)
    # The fixes the classifier drops are counted by its own rule, with its accuracy limit.
    summary.max_fix_accuracy_m, summary.max_fix_accuracy_source = fix_accuracy_limit(
        options.parameters, params_file, namespace, options.attach)
    others = other_cameras(selection.topics, selection.image.name)
    if others:
        summary.warnings.append(
            f'the bag has {len(others)} more camera topic(s) with messages, not replayed: '
            f'{", ".join(others)}; replay each with --image-topic and its own --out (side '
            'by side: each in its own ROS_DOMAIN_ID)')
        print(f'replay: {summary.warnings[-1]}', file=stream)
    if selection.fix is None:
        summary.warnings.append('no NavSatFix topic: every detection has null geometry')
    elif selection.fix.count == 0:
        summary.warnings.append(f'fix topic {selection.fix.name} has no messages: every '
                                'detection has null geometry')
    ignored = ignored_overrides(options.parameters)
    if ignored:
        summary.warnings.append(ignored)
        print(f'replay: {summary.warnings[-1]}', file=stream)
    uncapped = (fast_rate_cap(options.parameters, params_file, namespace)
                if options.fast and not options.attach else '')
    if uncapped:
        summary.warnings.append(uncapped)
        print(f'replay: {uncapped}', file=stream)
    env = ros_environment()
    env.setdefault('ROS_LOG_DIR', str(outputs.logs / 'ros'))

    # The detections received go to a temporary file in the output folder, not memory
    # (a day's bag brings hundreds of thousands): removed at the end, however it ends.
    received = ReceivedDetections.create(out_dir, run_name)
    try:
        writer = Writer(output_bag, version=8, storage_plugin=StoragePlugin.MCAP)
        writer.open()
        recorder = OutputRecorder(writer, typestore, {
            topic: RECORDED_OUTPUTS[kind] for kind, topic in output_topics(namespace).items()},
            received, start_ns=selection.start_ns)
        processes = ProcessGroup(outputs.logs, env)
        stopped: ReplayError | None = None
        player: ReplayPlayer | None = None
        reader = fix_reader = None
        progress = ProgressLine(selection.image.count, stream, options.show_progress)
        ready = False
        failure: ReplayError | None = None
        deferred = DeferredSignals(stream)
        bag_error = ''
        try:
            player = ReplayPlayer(selection, namespace, options.clock, recorder)
            if player.clock_warning:
                summary.warnings.append(player.clock_warning)
            if not options.attach:
                check_namespace_free(player)
                for command in pipeline_commands(selection, options, map_dir.resolve(), run_name,
                                                 params_file):
                    summary.logs.append(processes.start(command.name, command.argv).log_path)
            playback = Playback(player, recorder, selection, options, summary, progress,
                                typestore, processes.check_alive,
                                max_fix_accuracy_m=summary.max_fix_accuracy_m)
            playback.wait_until_ready()
            if not options.attach:
                check_overrides(player, overrides_to_check(options))
            playback.note_recorder_start()
            ready = True
            reader = open_bag(source, bag)
            # The fixes stream beside the frames from a reader of their own: a long drive's
            # fixes (a million at 10 Hz in a day) are never all in memory.
            fixes: Iterator[BagMessage] = iter(())
            if selection.fix:
                fix_reader = open_bag(source, bag)
                fixes = read_messages(fix_reader, selection.fix.name, 'fix', 0, bag)
            try:
                playback.play(read_messages(reader, selection.image.name, 'image', 1, bag), fixes)
            except ReplayError as error:
                # A corrupt chunk, or a pipeline that takes no frame: what was replayed until
                # then is still settled, saved and summarised.
                stopped = error
                summary.warnings.append(f'replay stopped early: {error}')
            playback.settle()
            playback.wait_for_detections()
            if options.attach:
                ok, message = player.save()
            else:
                ok, message = save_when_complete(player, map_dir / f'{run_name}.geojson',
                                                 received.received)
            summary.save_message = message
            if not ok:
                summary.warnings.append(f'recorder save: {message}')
            add_counts(summary, recorder.counts())
            if not any(warning.startswith('the frames are stamped')
                       for warning in summary.warnings):
                unlocated = unlocated_warning(summary.fix_status, playback.frame_stamps,
                                              playback.fix_stamps)
                if unlocated:
                    summary.warnings.append(unlocated)
        except ProcessError as error:
            progress.finish()
            failure = ReplayError(str(error))
            failure.__cause__ = error
        except ReplayError as error:
            if ready:
                raise
            progress.finish()  # the nodes never came up (a timeout): a failed start too
            failure = error
        except KeyboardInterrupt:
            progress.finish()
            raise
        finally:
            # A Ctrl-C from here on waits: the nodes are stopped and both bags closed.
            with deferred:
                for opened in (reader, fix_reader):
                    if opened is not None:
                        opened.close()
                processes.stop(STOP_TIMEOUT_S)
                if player is not None:
                    player.close()
                try:
                    writer.close()
                except OSError as error:  # a full disk: its last chunk and index unwritten
                    bag_error = f'cannot write the output bag {output_bag}: {one_line(error)}'
        deferred.raise_pending()
        if failure is not None:
            if ready or options.attach:
                raise failure
            # Nothing was played: what the bag holds is at most the recorder's start-up
            # markers, which no later run needs.
            raise failed_start_error(failure, outputs,
                                     bag_empty=recorder.result_messages == 0) from failure
        # An output that cannot be written (a full disk) is said, naming it, once the others
        # are written as far as they can be; the error then says what was kept.
        failures = []
        if bag_error:
            failures.append(bag_error)
        else:
            summary.output_bag = output_bag
        if recorder.write_error:
            summary.warnings.append(f'output bag: {recorder.write_error}')
        try:
            write_map(summary, received, map_dir, run_name, options.attach)
        except ReplayError as error:
            failures.append(str(error))
        except OSError as error:
            failures.append(f'cannot write the map in {map_dir}: {one_line(error)}')
        summary.warnings.extend(failures)
        try:
            write_summary(outputs.summary, summary)
            written = f'the summary of what was replayed is in {outputs.summary}'
        except OSError as error:
            failures.append(f'cannot write the summary {outputs.summary}: {one_line(error)}')
            written = 'the summary of what was replayed is printed, not saved'
        if failures:
            kept = '' if options.attach else records_kept(map_dir, run_name)
            stopped_note = f'; replay stopped early: {stopped}' if stopped else ''
            raise ReplayOutputError(
                f'{"; ".join(failures)}{stopped_note}; '
                f'{kept or "no records file of the detections was kept here"}; {written}',
                summary)
        if stopped is not None:
            raise ReplayError(f'{stopped} (the {summary.frames_in} frame(s) sent before are '
                              f'summarised in {outputs.summary})') from stopped
        return summary
    finally:
        received.discard()
