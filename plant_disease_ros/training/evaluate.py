"""Evaluate a TFLite model of the contract (and optionally its float Keras twin) on photos.

The TFLite model runs through the robot's own classifier (same resize, same quantisation),
so the figures are the ones the robot gets. Outputs in ``out_dir``: ``evaluation.json``,
``per_class.csv``, ``confusion_matrix.png`` and ``predictions.csv`` (a row per photo);
with a field split manifest, per-domain figures instead (:mod:`field_evaluate`):
``evaluation.json``, ``confusion_<domain>.png``, ``reliability.png``, ``thresholds.png``
and ``predictions.csv``. Two evaluations of the same photos are compared, photo by photo,
by :mod:`compare`.
"""

from __future__ import annotations

import csv
import dataclasses
from dataclasses import dataclass, field
import itertools
import json
import os
from pathlib import Path
import platform
import sys
import time

import numpy as np

from plant_disease_ros.core.atomic_files import replacing_set, sha256_of
from plant_disease_ros.core.classifier import ClassifierOptions, DiseaseClassifier
from plant_disease_ros.core.crops import DEFAULT_OTHER_CROPS_WEIGHT
from plant_disease_ros.core.preprocessing import pose_views
from plant_disease_ros.core.vegetation import check_frame
from plant_disease_ros.tools.bench.machine import cpu_model
from plant_disease_ros.training.camera_frames import CameraFraming
from plant_disease_ros.training.confusion import plot_confusion_matrix
from plant_disease_ros.training.crop_scores import check_crops_option, scores_given_crops
from plant_disease_ros.training.dataset import (
    DatasetError,
    describe_unreadable,
    load_images,
    print_progress,
    read_manifest,
    scan_dataset,
    Split,
    subsample,
    unreadable_reasons,
)
from plant_disease_ros.training.metrics import (
    confusion_matrix,
    macro_f1,
    most_confused,
    per_class_report,
    top_k_accuracy,
)
from plant_disease_ros.training.run_files import (
    check_split_manifest,
    RunFilesMismatch,
    SUMMARY_FILENAME,
)


@dataclass
class EvaluationOptions:
    """What to evaluate, on which photos, and where the results go."""

    model_path: str
    labels_path: str
    out_dir: str
    data_dir: str | None = None
    split_manifest: str | None = None
    split: str = 'test'
    per_class: int | None = None
    keras_model: str | None = None
    num_threads: int = 2
    cache_dir: str | None = None
    seed: int = 0
    field_split: str | None = None  # field_split.json: evaluate every domain
    # With field_split: the folders of the field photo sets (<set>/<class>/<image>) and
    # of the non-leaf scenes, when not where the manifest says.
    field_data: str | None = None
    negatives: str | None = None
    score_threshold: float = 0.5
    synthetic_per_kind: int = 25
    camera: CameraFraming | None = None  # with field_split: photos as the nodes' frames
    # Scores given the field's crops (see crop_scores): None/'all', 'known' or 'Apple,...'.
    crops: str | None = None
    other_crops_weight: float = DEFAULT_OTHER_CROPS_WEIGHT
    poses: int = 1  # right-angle poses averaged per frame, as the nodes' test_time_poses
    # With field_split and camera: score the frames with the node set itself (through DDS,
    # as replay does), configured by params_file (None: config/field.yaml) and parameters.
    through_nodes: bool = False
    params_file: str | None = None
    node_parameters: dict[str, str] = field(default_factory=dict)
    # Without field_split: count a photo the nodes' vegetation gate stops as published
    # no_leaf (rejected), as a node with vegetation_gate true would publish it.
    vegetation_gate: bool = True


def select_files(options: EvaluationOptions) -> tuple[Path, list[str], list[tuple[str, int]]]:
    """Return ``(root, dataset classes, files)`` for the evaluation.

    With a split manifest the files are that split's (``--data`` overrides the manifest's
    root, so a manifest written on one machine works on another); otherwise every photo
    of the folder.
    """
    if options.split_manifest:
        manifest = read_manifest(options.split_manifest)
        split = Split.from_manifest(manifest)
        if options.split not in split.parts:
            raise DatasetError(f'split {options.split!r} not in {options.split_manifest}')
        root = Path(options.data_dir or manifest['root'])
        if not root.is_dir():
            raise DatasetError(f'photo folder {root} of the split manifest is missing; '
                               'pass --data')
        classes, files = list(split.classes), list(split.parts[options.split])
    else:
        if not options.data_dir:
            raise DatasetError('give a photo folder (--data) or a split manifest')
        # One class is enough to evaluate (the labels are the model's); a class the model
        # does not know is refused by evaluate().
        index = scan_dataset(options.data_dir, min_classes=1)
        root, classes, files = index.root, list(index.classes), list(index.files)
    if options.per_class:
        files = subsample(files, options.per_class, seed=options.seed)
    return root, classes, files


def manifest_record(path: str | os.PathLike | None,
                    models: tuple[str | os.PathLike | None, ...] = ()) -> dict | None:
    """Return ``{'path': resolved path, 'sha256': ...}`` of a split manifest (None: none).

    When the run beside it was trained with another split.json (a later run into its
    folder cut short wrote this one), that model may have trained on some of these
    photos: raises :class:`~plant_disease_ros.training.run_files.RunFilesMismatch` when
    one of ``models`` (the evaluated ``--model`` and ``--keras``) is in that folder, the
    run's own; a model of another folder (one trained on an identical split, say from
    ``--init-weights RUN/checkpoint.keras``) is evaluated, with a warning.
    """
    if not path:
        return None
    path = Path(path).resolve()
    try:
        check_split_manifest(path)
    except RunFilesMismatch:
        if any(model and Path(model).resolve().parent == path.parent for model in models):
            raise
        print(f'warning: {path} is not the split.json {path.parent / SUMMARY_FILENAME} was '
              'trained with (a later run into that folder, cut short, wrote it): the model '
              'there may have trained on some of these photos', file=sys.stderr)
    return {'path': str(path), 'sha256': sha256_of(path)}


def file_record(path: str | os.PathLike | None) -> dict | None:
    """Return ``{'path': resolved path, 'sha256': ...}`` of a model file (None: none)."""
    if not path:
        return None
    return {'path': str(Path(path).resolve()), 'sha256': sha256_of(path)}


def evaluate(options: EvaluationOptions) -> dict:
    """Run the evaluation, write its files and return the report as a dict.

    Raises :class:`DatasetError`, before writing anything, when no photo is readable or
    the ``--keras`` model is missing (checked before any photo is scored). The files of one
    evaluation replace those of an earlier one in ``out_dir`` together
    (:func:`~plant_disease_ros.core.atomic_files.replacing_set`): an evaluation that fails
    leaves the earlier one whole, ``evaluation.json`` moved in last.
    """
    out_dir = Path(options.out_dir)
    classifier = DiseaseClassifier.create_from_options(ClassifierOptions(
        model_path=options.model_path, labels_path=options.labels_path,
        num_threads=options.num_threads, poses=options.poses))
    keras_model = load_keras_model(options.keras_model) if options.keras_model else None
    if options.field_split:
        out_dir.mkdir(parents=True, exist_ok=True)
        return evaluate_domains(options, classifier, keras_model)
    labels = list(classifier.labels)
    crops = check_crops_option(options.crops, labels, options.other_crops_weight)
    root, classes, files = select_files(options)
    manifest = manifest_record(options.split_manifest,
                               (options.model_path, options.keras_model))
    unknown = [name for name in classes if name not in labels]
    if unknown:
        raise DatasetError(f'dataset classes not among the model labels: {", ".join(unknown)}')
    to_label = np.array([labels.index(name) for name in classes])
    height, width = classifier.input_size
    if height != width:
        raise DatasetError(f'evaluation expects a square model input, got {height}x{width}')
    images, dataset_labels, unreadable = load_images(
        root, files, height, cache_dir=options.cache_dir,
        progress=print_progress(f'decoding {len(files)} photos'))
    if not len(images):
        where = f'the {options.split!r} split of {options.split_manifest}' \
            if options.split_manifest else str(root)
        raise DatasetError(f'no readable photos in {where}' + (
            f' (all {len(files)} unreadable)' if files else ''))
    out_dir.mkdir(parents=True, exist_ok=True)
    truth = to_label[dataset_labels]
    reasons = unreadable_reasons(root, unreadable)
    if unreadable:
        print(describe_unreadable(reasons, f'{out_dir / "evaluation.json"}'), file=sys.stderr)

    scores, invoke_ms, total_ms = int8_scores(classifier, images,
                                              print_progress('int8 inference'))
    scores = scores_given_crops(scores, truth, labels, crops,
                                other_crops_weight=options.other_crops_weight)
    predicted = scores.argmax(axis=1)
    matrix = confusion_matrix(truth, predicted, len(labels))
    # The classes with photos or predictions: a label the model never gave to one of
    # these photos, and that none of them has, tells nothing (as in a field evaluation).
    report_rows = [row for row, predicted_count in zip(per_class_report(matrix, labels),
                                                       matrix.sum(axis=0), strict=True)
                   if row['support'] or predicted_count]
    from plant_disease_ros.training.field_evaluate import (
        DomainFrames,
        prediction_rows,
        report_count,
        share_interval,
        write_predictions,
    )

    gone = set(unreadable)
    # What the nodes would publish: a photo their vegetation gate stops is no_leaf there.
    gate_passed = (np.array([check_frame(image).passed for image in images], dtype=bool)
                   if options.vegetation_gate and len(images) else None)
    photos = DomainFrames('photos', images, truth, False, [labels[i] for i in truth],
                          frame_names=[path for path, _ in files if path not in gone],
                          gate_passed=gate_passed)
    rows = prediction_rows(scores, photos, labels, options.score_threshold)
    outcomes = {outcome: report_count(rows, outcome)
                for outcome in ('right', 'wrong', 'rejected')}
    top1 = top_k_accuracy(scores, truth, 1)
    report = {
        # Resolved: the same file typed two ways is one model (compare checks the sha256).
        'model': str(Path(options.model_path).resolve()),
        'model_bytes': Path(options.model_path).stat().st_size,
        # What model-card checks an evaluation against (the size alone cannot tell two
        # exports of one network apart).
        'model_sha256': sha256_of(options.model_path),
        # The --keras model of the float figures (None: none scored): model-card prints
        # them as the run's float model only when it is the run's model.keras.
        'keras_model': file_record(options.keras_model),
        'backend': classifier.model.backend,
        'photos': int(len(images)),
        'unreadable': unreadable,
        'unreadable_reasons': reasons,
        'split': options.split if options.split_manifest else 'all',
        # Which manifest: model-card tells its run's own split from another run's by it.
        'split_manifest': manifest,
        # The photo folder: model-card tells training photos among the evaluated ones by it.
        'root': str(Path(root).resolve()),
        # The nodes' threshold: a top score below it is published as unknown (rejected, in
        # predictions.csv's outcome column and int8's rejected share).
        'score_threshold': options.score_threshold,
        # Photos the nodes' vegetation gate would stop (published no_leaf); None: gate off.
        'stopped_by_gate': (None if gate_passed is None
                            else int(np.count_nonzero(~gate_passed))),
        # Whether the published outcomes count the gate (compare names a difference).
        'vegetation_gate': options.vegetation_gate,
        'crops': crops,
        'other_crops_weight': options.other_crops_weight,
        'poses': classifier.poses,
        'int8': {
            'top1': top1,
            # Wilson 95 % interval, as for each domain of a field evaluation.
            'top1_interval': share_interval(top1, len(truth)),
            'top3': top_k_accuracy(scores, truth, 3),
            'macro_f1': macro_f1(report_rows),
            'correct': int((predicted == truth).sum()),
            # What the nodes would publish, as predictions.csv's outcome column counts it
            # (top-1 counts the top label whatever its score): rejected, a top score below
            # score_threshold (or no_leaf) and no map point; accepted_wrong, a wrong map point.
            'outcomes': outcomes,
            'rejected': outcomes['rejected'] / len(truth),
            'rejected_interval': share_interval(outcomes['rejected'] / len(truth), len(truth)),
            'accepted_wrong': outcomes['wrong'] / len(truth),
        },
        'per_class': report_rows,
        'most_confused': most_confused(matrix, labels),
        'latency_ms': latency_summary(invoke_ms, total_ms, options.num_threads),
        'machine': machine_description(),
    }
    if keras_model is not None:
        float_scores = scores_given_crops(
            keras_scores(keras_model, images, classifier.poses), truth, labels,
            crops, other_crops_weight=options.other_crops_weight)
        float_predicted = float_scores.argmax(axis=1)
        float_top1 = top_k_accuracy(float_scores, truth, 1)
        report['float'] = {
            'top1': float_top1,
            'top1_interval': share_interval(float_top1, len(truth)),
            'top3': top_k_accuracy(float_scores, truth, 3),
        }
        report['int8_float_agreement'] = float(np.mean(float_predicted == predicted))
    with replacing_set(out_dir, 'evaluation.json') as staging:
        plot_confusion_matrix(matrix, labels, staging / 'confusion_matrix.png',
                              title=f'int8 model, {report["split"]} photos: top-1 '
                                    f'{100 * report["int8"]["top1"]:.2f} %')
        with open(staging / 'per_class.csv', 'w', newline='') as handle:
            writer = csv.DictWriter(handle, fieldnames=list(report_rows[0]))
            writer.writeheader()
            writer.writerows(report_rows)
        np.save(staging / 'confusion_matrix.npy', matrix)
        write_predictions(staging / 'predictions.csv', rows)
        (staging / 'evaluation.json').write_text(json.dumps(report, indent=1) + '\n')
    return report


def int8_scores(classifier: DiseaseClassifier, images: np.ndarray,
                progress=None) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Return ``(scores N×labels, invoke ms, classify ms)`` of the robot's classifier."""
    labels = classifier.labels
    scores = np.zeros((len(images), len(labels)), dtype=np.float32)
    invoke_ms = np.zeros(len(images))
    total_ms = np.zeros(len(images))
    for row, image in enumerate(images):
        result = classifier.classify(image, top_k=len(labels))
        for category in result.categories:
            scores[row, category.index] = category.score
        invoke_ms[row] = result.invoke_ms
        total_ms[row] = result.total_ms
        if progress is not None:
            progress(row + 1, len(images))
    return scores, invoke_ms, total_ms


def latency_summary(invoke_ms: np.ndarray, total_ms: np.ndarray, threads: int) -> dict:
    """Return the p50/p95 invoke and p50 classify times of an evaluation."""
    present = len(invoke_ms) > 0
    return {
        'threads': threads,
        'invoke_p50': float(np.percentile(invoke_ms, 50)) if present else None,
        'invoke_p95': float(np.percentile(invoke_ms, 95)) if present else None,
        'classify_p50': float(np.percentile(total_ms, 50)) if present else None,
    }


def evaluate_domains(options: EvaluationOptions, classifier: DiseaseClassifier,
                     keras_model: object | None = None) -> dict:
    """Evaluate every domain of a field split manifest; write and return the report.

    ``keras_model``: the loaded ``--keras`` model (:func:`load_keras_model`), also scored.
    """
    from plant_disease_ros.training.field_data import NO_LEAF, read_field_split
    from plant_disease_ros.training.field_evaluate import (
        checked_lab_split,
        domain_frames,
        write_domain_outputs,
        write_json,
    )

    out_dir = Path(options.out_dir)
    field_manifest = read_field_split(options.field_split)
    labels = list(field_manifest['labels'])
    model_labels = list(classifier.labels)
    # A lab model without ``no_leaf`` is scored with a zero ``no_leaf`` column: the
    # baseline a field-fit model is compared against.
    padded = model_labels != labels and model_labels + [NO_LEAF] == labels
    if model_labels != labels and not padded:
        raise DatasetError(f'the model labels differ from those of {options.field_split}')
    crops = check_crops_option(options.crops, labels, options.other_crops_weight)
    if options.through_nodes:
        check_through_nodes(options, crops)
    height, width = classifier.input_size
    if height != width:
        raise DatasetError(f'evaluation expects a square model input, got {height}x{width}')
    # Checked before any photo is decoded: the lab photos are this split's.
    lab_split = checked_lab_split(field_manifest, options.field_split,
                                  options.split_manifest)
    lab_split_record = manifest_record(lab_split, (options.model_path, options.keras_model))
    domains = domain_frames(options.field_split, labels, height, part=options.split,
                            lab_data=options.data_dir, lab_split=str(lab_split),
                            cache_dir=options.cache_dir,
                            synthetic_per_kind=options.synthetic_per_kind,
                            camera=options.camera, field_data=options.field_data,
                            negatives=options.negatives)
    for frames in domains:
        if frames.unreadable:
            print(f'{frames.name}: ' + describe_unreadable(
                frames.unreadable, f'{out_dir / "evaluation.json"}'), file=sys.stderr,
                flush=True)
    scores, invoke, total = {}, [], []
    for frames in domains:
        domain_scores, invoke_ms, total_ms = int8_scores(classifier, frames.images)
        if padded:
            domain_scores = np.pad(domain_scores, ((0, 0), (0, 1)))
        scores[frames.name] = scores_given_crops(domain_scores, frames.truth, labels, crops,
                                                 frames.negative, options.other_crops_weight)
        invoke.append(invoke_ms)
        total.append(total_ms)
        print(f'{frames.name}: {len(frames.images)} frames scored', file=sys.stderr,
              flush=True)
    through_nodes = None
    if options.through_nodes:
        through_nodes = score_through_nodes(options, domains, scores, model_labels, labels)
    float_figures = (float_domain_figures(keras_model, domains, scores, classifier.poses,
                                          padded, labels, crops, options.other_crops_weight)
                     if keras_model is not None else {})
    # The files of this evaluation replace an earlier one's together, evaluation.json last.
    with replacing_set(out_dir, 'evaluation.json',
                       removed=[f'mistakes_{frames.name}.png' for frames in domains]
                       ) as staging:
        reports = write_domain_outputs(domains, scores, labels, staging,
                                       options.score_threshold, options.split)
        if through_nodes is not None:
            for name, agreed in through_nodes.pop('agreement').items():
                reports[name]['through_nodes'] = agreed
        for name, figures in float_figures.items():
            reports[name].update(figures)
        report = {
            # Resolved: the same file typed two ways is one model (compare checks the
            # sha256).
            'model': str(Path(options.model_path).resolve()),
            'model_bytes': Path(options.model_path).stat().st_size,
            # Which model it was, whatever its path: two evaluations can be told to be of
            # one.
            'model_sha256': sha256_of(options.model_path),
            'backend': classifier.model.backend,
            'labels': labels,
            'model_has_no_leaf': not padded,
            'split': options.split,
            'field_split': str(options.field_split),
            # The lab split whose part was scored (checked against the field split's).
            'lab_split': lab_split_record,
            'score_threshold': options.score_threshold,
            'seen_as': seen_as(options),
            'vegetation_gate': vegetation_gate(options),
            # The same, field by field (None: photos shrunk straight to the input size).
            'camera': dataclasses.asdict(options.camera) if options.camera else None,
            'through_nodes': through_nodes,
            # The --keras model of the domains' float figures (None: none scored).
            'keras_model': file_record(options.keras_model),
            'crops': crops,
            'other_crops_weight': options.other_crops_weight,
            'poses': classifier.poses,
            'photos': int(sum(len(frames.truth) for frames in domains)),
            'domains': reports,
            'latency_ms': latency_summary(np.concatenate(invoke), np.concatenate(total),
                                          options.num_threads),
            'machine': machine_description(),
        }
        write_json(staging / 'evaluation.json', report)
    return report


def float_domain_figures(keras_model: object, domains: list, scores: dict[str, np.ndarray],
                         poses: int, padded: bool, labels: list[str], crops: object,
                         other_crops_weight: float) -> dict[str, dict]:
    """Return each domain's float top-1 and int8/float agreement, by domain name."""
    everything = np.concatenate([frames.images for frames in domains])
    float_scores = keras_scores(keras_model, everything, poses)
    if padded:
        float_scores = np.pad(float_scores, ((0, 0), (0, 1)))
    figures = {}
    start = 0
    for frames in domains:
        part = scores_given_crops(float_scores[start:start + len(frames.images)],
                                  frames.truth, labels, crops, frames.negative,
                                  other_crops_weight)
        start += len(frames.images)
        figures[frames.name] = {
            'float_top1': top_k_accuracy(part, frames.truth, 1),
            'int8_float_agreement': float(np.mean(
                part.argmax(axis=1) == scores[frames.name].argmax(axis=1))),
        }
    return figures


def vegetation_gate(options: EvaluationOptions) -> bool | None:
    """Return whether the nodes' vegetation gate decided what a field evaluation counts.

    Camera frames pass it unless ``--no-vegetation-gate``. None where it does not apply
    or is not known here: photos shrunk straight to the input pass no gate (``seen_as``
    says so), and through the nodes their parameters decide (``through_nodes``).
    """
    if options.camera is None or options.through_nodes:
        return None
    return bool(options.camera.vegetation_gate)


def seen_as(options: EvaluationOptions) -> str:
    """Return how the photos reached the model, as the report says it."""
    if options.camera is None:
        return 'photos'
    if options.through_nodes:
        return f'{options.camera.describe()}, through the nodes'
    return options.camera.describe()


def check_through_nodes(options: EvaluationOptions, crops: object) -> None:
    """Refuse an evaluation through the nodes that they cannot do (DatasetError)."""
    if options.camera is None:
        raise DatasetError('--through-nodes needs --frames WxH: the nodes take camera frames')
    if crops != 'all' or options.poses != 1:
        raise DatasetError('with --through-nodes the nodes score the frames: set their crops '
                           'and poses as on the robot, --param crops:=Apple or --param '
                           'test_time_poses:=4 (or in --params-file), not --crops/--poses')


def score_through_nodes(options: EvaluationOptions, domains: list, scores: dict,
                        model_labels: list[str], labels: list[str]) -> dict:
    """Replace each domain's in-process scores and gate by what the node set published.

    Returns the report's ``through_nodes`` entry; its ``agreement`` (per domain, see
    :func:`~plant_disease_ros.tools.node_evaluation.agreement`) compares the in-process
    scores of the same frames with the nodes' before they are replaced.
    """
    from plant_disease_ros.tools.node_evaluation import (
        agreement,
        node_scores,
        NodeEvaluationError,
    )
    from plant_disease_ros.training.field_data import NO_LEAF

    count = sum(len(frames.truth) for frames in domains)
    frames_in_order = itertools.chain.from_iterable(
        frames.camera_frames() for frames in domains)
    print(f'scoring {count} frames through the nodes', file=sys.stderr, flush=True)
    try:
        published = node_scores(
            frames_in_order, count, model_labels, Path(options.out_dir) / 'nodes',
            options.model_path, options.labels_path,
            params_file=Path(options.params_file) if options.params_file else None,
            parameters=options.node_parameters)
    except (NodeEvaluationError, ValueError) as error:
        raise DatasetError(str(error)) from error
    padding = len(labels) - len(model_labels)
    no_leaf = labels.index(NO_LEAF)
    agreed = {}
    start = 0
    for frames in domains:
        stop = start + len(frames.truth)
        part = dataclasses.replace(
            published, scores=np.pad(published.scores[start:stop], ((0, 0), (0, padding))),
            gate_passed=published.gate_passed[start:stop],
            labels=published.labels[start:stop])
        agreed[frames.name] = agreement(part, scores[frames.name], frames.gate_passed,
                                        no_leaf)
        scores[frames.name] = part.scores
        frames.gate_passed = part.gate_passed
        start = stop
    return {
        'params_file': options.params_file or 'config/field.yaml (the launch default)',
        'parameters': dict(options.node_parameters),
        'frames_per_s': round(published.frames_per_s, 1),
        'work_dir': str(published.work_dir),
        'agreement': agreed,
    }


def load_keras_model(model_path: str | os.PathLike) -> object:
    """Load the float Keras model of ``--keras``; DatasetError when the file is missing.

    Loaded before any photo is scored, so that a wrong path fails at once, not after the
    int8 model has scored every photo.
    """
    if not Path(model_path).exists():
        raise DatasetError(f'float Keras model {model_path} (--keras) not found')
    import tensorflow as tf

    return tf.keras.models.load_model(str(model_path), compile=False)


def keras_scores(model: object, images: np.ndarray, poses: int = 1,
                 batch_size: int = 128) -> np.ndarray:
    """Return the float Keras model's probabilities for uint8 images.

    ``model``: a loaded Keras model, or the path of one. With ``poses`` above 1, the mean
    over that many right-angle poses of each image, as the classifier's ``poses`` averages
    them.
    """
    if isinstance(model, (str, os.PathLike)):
        model = load_keras_model(model)
    print(f'float model on {len(images)} photos...', file=sys.stderr)
    return np.mean([model.predict(np.asarray(view, np.float32), batch_size=batch_size,
                                  verbose=0)
                    for view in pose_views(images, poses, axes=(1, 2))], axis=0)


def machine_description() -> str:
    """Describe this machine for latency figures (CPU model and core count)."""
    return (f'{cpu_model()}, {os.cpu_count()} cores, '
            f'{platform.system()} {platform.machine()}')


def scoring_note(report: dict) -> str:
    """Return how a report's scores differ from one pass with every crop, for its title.

    ', scores given ...' for a report scored given some crops, ', N poses averaged' for
    one scored with test-time poses (both, in that order), else ''.
    """
    poses = int(report.get('poses', 1))
    note = f', {poses} poses averaged (test_time_poses)' if poses > 1 else ''
    crops = report.get('crops', 'all')
    if crops == 'all':
        return note
    weight = report.get('other_crops_weight', DEFAULT_OTHER_CROPS_WEIGHT)
    if crops == 'known':
        return (f", scores given each photo's own crop (--crops known, other crops weigh "
                f'{weight:g}){note}')
    return f', scores given the crops {crops} (other crops weigh {weight:g}){note}'


def format_report(report: dict) -> str:
    """Return a human-readable summary table of an evaluation report."""
    if 'domains' in report:
        from plant_disease_ros.training.field_evaluate import format_domain_table

        return (f'frames: {report["photos"]} ({report["split"]}), seen as '
                f'{report.get("seen_as", "photos")}{scoring_note(report)}\n'
                + format_domain_table(report['domains']))
    lines = [f'photos: {report["photos"]} ({report["split"]}){scoring_note(report)}',
             f'int8  top-1 {_top1_with_interval(report, "int8")}  '
             f'top-3 {100 * report["int8"]["top3"]:.2f} %  '
             f'macro F1 {report["int8"]["macro_f1"]:.4f}']
    published = _published_line(report)
    if published:
        lines.append(published)
    if 'float' in report:
        lines.append(f'float top-1 {_top1_with_interval(report, "float")}  '
                     f'top-3 {100 * report["float"]["top3"]:.2f} %  '
                     f'int8/float agreement {100 * report["int8_float_agreement"]:.2f} %')
    latency = report['latency_ms']
    if latency['invoke_p50'] is not None:
        lines.append(f'invoke p50 {latency["invoke_p50"]:.2f} ms, p95 '
                     f'{latency["invoke_p95"]:.2f} ms at {latency["threads"]} threads '
                     f'({report["backend"]})')
    lines.append(f'{"class":<48} {"prec":>6} {"recall":>6} {"F1":>6} {"n":>5}')
    for row in report['per_class']:
        lines.append(f'{row["class"]:<48} {row["precision"]:6.3f} {row["recall"]:6.3f} '
                     f'{row["f1"]:6.3f} {row["support"]:5d}')
    if report['most_confused']:
        lines.append('most confused: ' + '; '.join(
            f'{pair["truth"]} -> {pair["predicted"]} ({pair["count"]})'
            for pair in report['most_confused']))
    lines.append("95 %: Wilson 95 % interval of the model's top-1 on photos of this kind "
                 '(not where another test set of this size may land: that range is wider)')
    if published:
        lines.append('rejected: top score below score_threshold (the nodes publish unknown) '
                     'or labelled no_leaf: no map point; wrong map points: photos accepted '
                     'with a wrong label; top-1 counts the top label whatever its score')
    return '\n'.join(lines)


def _published_line(report: dict) -> str:
    """Return what the nodes would publish for the photos, or '' for an older report.

    ``int8  published at score_threshold 0.5: 29 right, 2 wrong map points (4.26 %), 16
    rejected (34.04 %: no map point)``.
    """
    outcomes = report['int8'].get('outcomes')
    if not outcomes:
        return ''
    photos = max(1, sum(outcomes.values()))
    return (f'int8  published at score_threshold {report["score_threshold"]:g}: '
            f'{outcomes["right"]} right, {outcomes["wrong"]} wrong map points '
            f'({100 * outcomes["wrong"] / photos:.2f} %), {outcomes["rejected"]} rejected '
            f'({100 * outcomes["rejected"] / photos:.2f} %: no map point)')


def _top1_with_interval(report: dict, model: str) -> str:
    """Return ``98.13 % (95 % 97.3–98.7)``: a model's top-1 and its Wilson interval.

    The interval of a report written before it was recorded is computed from top-1.
    """
    from plant_disease_ros.training.field_evaluate import format_interval, share_interval

    figures = report[model]
    interval = figures.get('top1_interval') or share_interval(figures['top1'],
                                                              report['photos'])
    return f'{100 * figures["top1"]:.2f} % (95 % {format_interval(interval)})'


def benchmark_invoke(model_path: str, labels_path: str, threads: int,
                     repeats: int = 300) -> dict:
    """Time bare ``invoke()`` of the model at ``threads`` threads; return p50/p95 in ms."""
    classifier = DiseaseClassifier.create_from_options(ClassifierOptions(
        model_path=model_path, labels_path=labels_path, num_threads=threads))
    interpreter = classifier.model.interpreter
    height, width = classifier.input_size
    classifier.classify(np.zeros((height, width, 3), dtype=np.uint8))
    times = []
    for _ in range(repeats):
        started = time.perf_counter()
        interpreter.invoke()
        times.append((time.perf_counter() - started) * 1000.0)
    return {'threads': threads, 'p50_ms': float(np.percentile(times, 50)),
            'p95_ms': float(np.percentile(times, 95))}


def compare_invoke(models: list[tuple[str, str]], threads: int, repeats: int = 300,
                   rounds: int = 5) -> list[dict]:
    """Time bare ``invoke()`` of several ``(model, labels)`` in interleaved rounds.

    Each round runs ``repeats`` invokes of every model in turn, so a change in the load of
    a shared machine falls on all of them alike. Returns p50/p95 in ms per model, in order.
    """
    interpreters = []
    for model_path, labels_path in models:
        classifier = DiseaseClassifier.create_from_options(ClassifierOptions(
            model_path=model_path, labels_path=labels_path, num_threads=threads))
        height, width = classifier.input_size
        classifier.classify(np.zeros((height, width, 3), dtype=np.uint8))
        interpreters.append(classifier.model.interpreter)
    times: list[list[float]] = [[] for _ in models]
    for _ in range(rounds):
        for number, interpreter in enumerate(interpreters):
            for _ in range(repeats):
                started = time.perf_counter()
                interpreter.invoke()
                times[number].append((time.perf_counter() - started) * 1000.0)
    return [{'threads': threads, 'p50_ms': float(np.percentile(values, 50)),
             'p95_ms': float(np.percentile(values, 95)), 'invokes': len(values)}
            for values in times]
