"""Score evaluation frames with the real nodes, as a robot would: through DDS, with a params file.

``plant-disease evaluate --frames WxH --through-nodes`` scores its frames here instead of
in-process. Every frame is written, in order, to a bag as a ``sensor_msgs/Image`` (bgr8,
as most camera drivers send) on ``/camera/image_raw`` with a stamp of its own; ``replay
--fast`` (:mod:`plant_disease_ros.tools.replay`) then starts the node set of the launch
file's ``single_process:=false`` layout (``camera_subscriber`` and ``disease_classifier``
as their own processes, with ``config/field.yaml`` or the given params file; the
single-process pipeline runs the same node code and parameters) and sends each frame once
the previous one is classified. The ``classification`` JSON of each stamp gives that
frame's scores (the classifier is asked for every label, ``top_k`` = the number of labels)
and whether the vegetation gate let it through (``no_leaf_reason``: empty or ``model``
when it did).

So the figures of such an evaluation are what the nodes published, not a model of them;
:func:`agreement` measures how far the in-process scores are from them.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
import json
from pathlib import Path
import shutil
import sys
from typing import Any, TextIO

import numpy as np

from plant_disease_ros.core.outcome import MODEL_REASON
from plant_disease_ros.ros.node_set import DEFAULT_NAMESPACE, normalize_namespace
from plant_disease_ros.tools.demo_bag import CdrMessages
from plant_disease_ros.tools.process import stop_on_termination
from plant_disease_ros.tools.replay import replay, ReplayError, ReplayOptions

IMAGE_TOPIC = '/camera/image_raw'
IMAGE_TYPE = 'sensor_msgs/msg/Image'
# Frame i is stamped FIRST_STAMP_S + i / 10 s: 10 frames a second, far from time zero.
FIRST_STAMP_S = 1_700_000_000
FRAME_PERIOD_NS = 100_000_000
# The bag of frames, in the work folder beside the replay's outputs; deleted after it.
FRAMES_BAG = 'frames_bag'


class NodeEvaluationError(RuntimeError):
    """Frames that could not be scored through the nodes; the message is one line."""


@dataclass
class NodeScores:
    """What the nodes published for each frame, in the frames' order."""

    scores: np.ndarray  # N×labels float32: the classification's top_k scores, 0 elsewhere
    gate_passed: np.ndarray  # N bool: the vegetation gate let the frame through
    labels: list[str]  # N: the published label ('unknown', 'no_leaf' or a class)
    frames_per_s: float  # classified frames per wall-clock second (replay --fast)
    work_dir: Path  # the replay's folder: logs/, output_bag/, summary.json


def frame_stamp(number: int) -> tuple[int, int]:
    """Return the (sec, nanosec) stamp of frame ``number``."""
    nanoseconds = number * FRAME_PERIOD_NS
    return FIRST_STAMP_S + nanoseconds // 1_000_000_000, nanoseconds % 1_000_000_000


def write_frames_bag(folder: Path, frames: Iterable[np.ndarray],
                     progress: TextIO | None = None, total: int | None = None) -> int:
    """Write RGB ``frames`` as bgr8 Images to a new MCAP bag ``folder``; return the count.

    The bag is zstd-compressed (lossless): what the nodes decode is the frame itself.
    """
    from rosbags.rosbag2 import CompressionFormat, CompressionMode, StoragePlugin, Writer

    messages = CdrMessages()
    writer = Writer(folder, version=8, storage_plugin=StoragePlugin.MCAP)
    writer.set_compression(CompressionMode.STORAGE, CompressionFormat.ZSTD)
    count = 0
    with writer:
        connection = writer.add_connection(IMAGE_TOPIC, IMAGE_TYPE,
                                           typestore=messages.typestore)
        for rgb in frames:
            if rgb.ndim != 3 or rgb.shape[2] != 3 or rgb.dtype != np.uint8:
                raise NodeEvaluationError(f'frame {count}: expected H×W×3 uint8 RGB, got '
                                          f'{rgb.shape} {rgb.dtype}')
            sec, nanosec = frame_stamp(count)
            writer.write(connection, sec * 1_000_000_000 + nanosec,
                         messages.image((sec, nanosec), rgb[..., ::-1]))
            count += 1
            if progress is not None and (count % 200 == 0 or count == total):
                print(f'frames bag: {count}' + (f'/{total}' if total else '') + ' frames',
                      file=progress, flush=True)
    return count


def read_classifications(output_bag: Path, namespace: str = DEFAULT_NAMESPACE
                         ) -> dict[tuple[int, int], dict]:
    """Return the first ``classification`` JSON of each stamp in a replay's output bag."""
    from rosbags.rosbag2 import Reader
    from rosbags.typesys import get_typestore, Stores

    typestore = get_typestore(Stores.LATEST)
    topic = f'{normalize_namespace(namespace)}/classification'
    found: dict[tuple[int, int], dict] = {}
    with Reader(output_bag) as reader:
        connections = [c for c in reader.connections if c.topic == topic]
        if not connections:  # an empty list would read every topic
            return found
        for _, _, data in reader.messages(connections=connections):
            text = typestore.deserialize_cdr(data, 'std_msgs/msg/String').data
            value = json.loads(text)
            stamp = value['stamp']
            found.setdefault((int(stamp['sec']), int(stamp['nanosec'])), value)
    return found


def scores_from_classifications(found: Mapping[tuple[int, int], dict], count: int,
                                labels: Sequence[str]) -> tuple[np.ndarray, np.ndarray, list[str]]:
    """Return ``(scores, gate passed, published labels)`` of frames 0..count-1.

    NodeEvaluationError when a frame has no classification or names a label the model
    does not have (the nodes then ran another model or labels file).
    """
    index = {label: number for number, label in enumerate(labels)}
    scores = np.zeros((count, len(labels)), np.float32)
    passed = np.zeros(count, bool)
    published: list[str] = []
    missing = []
    for number in range(count):
        value = found.get(frame_stamp(number))
        if value is None:
            missing.append(number)
            published.append('')
            continue
        for category in value['top_k']:
            if category['label'] not in index or index[category['label']] != category['index']:
                raise NodeEvaluationError(
                    f'the nodes published label {category["label"]!r} at index '
                    f'{category["index"]}, which the evaluated labels do not have there: '
                    'they ran another model or labels file')
            scores[number, category['index']] = category['score']
        passed[number] = value.get('no_leaf_reason', '') in ('', MODEL_REASON)
        published.append(str(value['label']))
    if missing:
        shown = ', '.join(map(str, missing[:5])) + (', ...' if len(missing) > 5 else '')
        raise NodeEvaluationError(f'{len(missing)} of {count} frames got no classification '
                                  f'from the nodes (frames {shown})')
    return scores, passed, published


def node_scores(frames: Iterable[np.ndarray], count: int, labels: Sequence[str],
                work_dir: Path, model_path: str | Path, labels_path: str | Path,
                params_file: Path | None = None, parameters: Mapping[str, str] | None = None,
                namespace: str = DEFAULT_NAMESPACE, keep_bag: bool = False,
                stream: TextIO = sys.stderr, show_progress: bool = True) -> NodeScores:
    """Classify ``count`` RGB ``frames`` through the node set; return what it published.

    ``params_file`` (default: ``config/field.yaml``) and ``parameters`` (NAME -> value as
    typed after ``-p NAME:=``) configure the nodes as on a robot; the model and labels are
    set to ``model_path`` and ``labels_path`` and ``top_k`` to every label. The frames bag
    is deleted afterwards unless ``keep_bag``. NodeEvaluationError (one line) when the nodes
    cannot start or a frame goes unanswered.
    """
    work_dir = Path(work_dir)
    if work_dir.exists() and any(work_dir.iterdir()):
        raise NodeEvaluationError(f'{work_dir} is not empty: the replay needs a new folder')
    work_dir.mkdir(parents=True, exist_ok=True)
    bag = work_dir / FRAMES_BAG
    written = write_frames_bag(bag, frames, stream if show_progress else None, count)
    if written != count:
        raise NodeEvaluationError(f'expected {count} frames, got {written}')
    overrides = dict(parameters or {})
    overrides.update(model_path=str(Path(model_path).resolve()),
                     labels_path=str(Path(labels_path).resolve()), top_k=str(len(labels)))
    try:
        # SIGTERM or SIGHUP unwinds like Ctrl-C: the replay's finally stops the nodes.
        with stop_on_termination():
            summary = replay(ReplayOptions(
                bag=bag, fast=True, image_topic=IMAGE_TOPIC, out_dir=work_dir,
                namespace=namespace, params_file=params_file, parameters=overrides,
                show_progress=show_progress), stream)
        found = read_classifications(summary.output_bag or work_dir / 'output_bag', namespace)
    except ReplayError as error:
        raise NodeEvaluationError(f'the nodes could not score the frames: {error}') from error
    finally:
        if not keep_bag:
            shutil.rmtree(bag, ignore_errors=True)
    scores, passed, published = scores_from_classifications(found, count, labels)
    return NodeScores(scores, passed, published, summary.frames_per_s, work_dir)


def agreement(node: NodeScores, scores: np.ndarray, gate_passed: np.ndarray | None,
              no_leaf: int) -> dict[str, Any]:
    """Return how the in-process ``scores`` (and gate) agree with what the nodes published.

    ``label_agreement``: the share of frames whose label (the gate's ``no_leaf`` or the top
    class) is the same; ``max_score_difference``: the largest difference of one score.
    """
    passed = np.ones(len(scores), bool) if gate_passed is None else gate_passed
    mine = np.where(passed, scores.argmax(axis=1), no_leaf)
    theirs = np.where(node.gate_passed, node.scores.argmax(axis=1), no_leaf)
    count = len(scores)
    return {
        'frames': count,
        'label_agreement': float(np.mean(mine == theirs)) if count else None,
        'gate_agreement': float(np.mean(passed == node.gate_passed)) if count else None,
        'max_score_difference': float(np.abs(scores - node.scores).max()) if count else None,
    }


__all__ = ['agreement', 'frame_stamp', 'node_scores', 'NodeEvaluationError', 'NodeScores',
           'read_classifications', 'scores_from_classifications', 'write_frames_bag']
