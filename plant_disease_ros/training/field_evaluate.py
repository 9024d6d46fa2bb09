"""Per-domain evaluation of a field-fit model: lab, field photo sets, non-leaf scenes.

The int8 model runs through the robot's own classifier, as in :mod:`evaluate`. Each
domain of a field split manifest (``field_split.json``) is scored on its test part, the
lab domain on the lab split's test part, and a seeded set of synthetic non-leaf frames
is added. For leaf domains it reports top-1/top-3, per-class precision/recall/F1 and how
many leaves are rejected (labelled ``no_leaf``, or a top score under the
``score_threshold``); for non-leaf domains how many frames are rejected and how many are
wrongly accepted as a leaf; for every domain the expected calibration error. With a
:class:`~plant_disease_ros.training.camera_frames.CameraFraming` the photos are shown as
camera frames and go through the nodes' crop, vegetation gate and resize first.
Outputs in ``out_dir``: ``evaluation.json`` (with a Wilson 95 % interval of each domain's
top-1 and rejection share), ``confusion_<domain>.png``, ``reliability.png``,
``thresholds.png`` (what each ``score_threshold`` would reject and let onto the map, per
domain: for choosing the threshold of a field), ``mistakes_<domain>.png`` (the frames that
put a wrong point on the map with the highest scores) and ``predictions.csv`` (a row per
frame). The lab split must be the one the field split was made with (its SHA-256 is
checked); photos that cannot be read are left out and named, per domain, in
``evaluation.json`` (``unreadable``, ``unreadable_reasons``).
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Sequence
import csv
from dataclasses import dataclass, field
import functools
import json
import os
from pathlib import Path

import numpy as np

from plant_disease_ros.core.atomic_files import sha256_of
from plant_disease_ros.training.calibration import (
    expected_calibration_error,
    plot_reliability,
    reliability_bins,
)
from plant_disease_ros.training.camera_frames import (
    CameraFraming,
    frames_as_node_inputs,
    node_inputs,
    photo_frames,
)
from plant_disease_ros.training.confusion import plot_confusion_matrix
from plant_disease_ros.training.dataset import (
    DatasetError,
    load_images,
    print_progress,
    read_manifest,
    unreadable_reasons,
)
from plant_disease_ros.training.field_data import (
    domain_files,
    LAB_DOMAIN,
    lab_files,
    NO_LEAF,
    read_field_split,
    resolve_lab_split,
)
from plant_disease_ros.training.metrics import (
    confusion_matrix,
    macro_f1,
    most_confused,
    per_class_report,
    top_k_accuracy,
    wilson_interval,
)
from plant_disease_ros.training.mistakes import plot_mistakes
from plant_disease_ros.training.synthetic import synthetic_set

SYNTHETIC_DOMAIN = 'synthetic'
SYNTHETIC_TEST_SEED_OFFSET = 2000
DEFAULT_SCORE_THRESHOLD = 0.5
# The score thresholds of the sweep (0.05 steps; the default 0.5 among them).
SWEEP_THRESHOLDS = tuple(round(0.05 * step, 2) for step in range(0, 20))


@dataclass
class DomainFrames:
    """The frames of one domain at the model's input size and their truth."""

    name: str
    images: np.ndarray
    truth: np.ndarray  # model label index of each frame
    negative: bool  # a non-leaf domain: every truth is ``no_leaf``
    groups: list[str]  # kind of scene (non-leaf domains) or class name, per frame
    # Seen as camera frames: whether the nodes' vegetation gate let each frame through (a
    # frame it stops is published as ``no_leaf`` whatever the model says); None: no gate.
    gate_passed: np.ndarray | None = None
    # Each frame's name in ``predictions.csv``: its photo's path under the domain folder,
    # or ``<kind>/<number>`` for a synthetic frame; None: numbered ``0``, ``1``, ...
    frame_names: list[str] | None = None
    # Seen as camera frames: yields each frame whole, as a camera sends it, in order (for
    # an evaluation through the nodes themselves); None: photos shrunk to the input.
    camera_frames: Callable[[], Iterator[np.ndarray]] | None = None
    # The photos of the part that could not be read (left out of the frames), by their
    # path under the domain folder, with the reason.
    unreadable: dict[str, str] = field(default_factory=dict)

    def names(self) -> list[str]:
        """Return every frame's name (its numbers when the frames were not named)."""
        if self.frame_names is None:
            return [str(number) for number in range(len(self.truth))]
        if len(self.frame_names) != len(self.truth):
            raise ValueError(f'{self.name}: {len(self.frame_names)} frame names for '
                             f'{len(self.truth)} frames')
        return list(self.frame_names)


def published_labels(scores: np.ndarray, frames: DomainFrames, no_leaf: int) -> np.ndarray:
    """Return the label index the nodes publish per frame: the model's, or the gate's."""
    predicted = scores.argmax(axis=1)
    if frames.gate_passed is None:
        return predicted
    return np.where(frames.gate_passed, predicted, no_leaf)


def resolve_root(root: str | os.PathLike, manifest_path: str | os.PathLike) -> Path:
    """Return the photo folder that a manifest's ``root`` names.

    An absolute ``root`` is taken as it is. A relative one (the shipped manifests name
    their folders relative to the repository root) is looked up from the working
    directory, then from the manifest's folder and each folder above it; the first that
    exists wins. When none exists, the working directory's reading is returned (the
    caller names it as missing).
    """
    root = Path(root)
    if root.is_absolute() or root.is_dir():
        return root
    folder = Path(manifest_path).resolve().parent
    for base in (folder, *folder.parents):
        if (base / root).is_dir():
            return base / root
    return root


def domain_root(manifest: dict, name: str, manifest_path: str | os.PathLike,
                field_data: str | os.PathLike | None = None,
                negatives: str | os.PathLike | None = None) -> Path:
    """Return the photo folder of domain ``name`` of a field split; DatasetError if missing.

    ``field_data`` (a folder of field photo sets, ``<set>/<class>/<image>``) replaces the
    folder of every leaf domain by ``field_data/<domain>``; ``negatives`` replaces the
    folder of the non-leaf domain; otherwise the manifest's folder (:func:`resolve_root`).
    """
    entry = manifest['domains'][name]
    if entry['negative'] and negatives:
        root, option = Path(negatives), 'the folder --negatives'
    elif not entry['negative'] and field_data:
        root, option = Path(field_data) / name, f'{name}/ under --field-data'
    else:
        root = resolve_root(entry['root'], manifest_path)
        option = ('--negatives DIR' if entry['negative']
                  else f'--field-data DIR holding {name}/')
        if not root.is_dir():
            raise DatasetError(
                f'photo folder {entry["root"]} of domain {name} in {manifest_path} is '
                'missing (looked for from the working directory and from the folder of '
                f'the manifest and those above it): pass {option}')
    if not root.is_dir():
        raise DatasetError(f'photo folder {root} of domain {name} ({option}) is missing')
    return root


def checked_lab_split(manifest: dict, field_split: str | os.PathLike,
                      lab_split: str | os.PathLike | None = None) -> Path:
    """Return the lab split of a field split: ``lab_split``, or the one it names.

    DatasetError when its SHA-256 is not the one the field split recorded
    (:func:`~plant_disease_ros.training.field_data.make_field_split`): the field-fit model
    trained on that split's training photos, and another split's test part may hold them.
    """
    path = Path(lab_split) if lab_split else resolve_lab_split(manifest, field_split)
    named, recorded = manifest['lab_split']['path'], manifest['lab_split'].get('sha256')
    digest = sha256_of(path)
    if recorded and digest != recorded:
        raise DatasetError(
            f'lab split {path} (sha256 {digest[:12]}) is not the {named} that {field_split} '
            f'was made with (sha256 {recorded[:12]}): its photos may be ones the model '
            'trained on; pass that split as --split-manifest')
    return path


def domain_frames(field_split: str, labels: Sequence[str], size: int, part: str = 'test',
                  lab_data: str | None = None, lab_split: str | None = None,
                  cache_dir: str | None = None, synthetic_per_kind: int = 25,
                  camera: CameraFraming | None = None, field_data: str | None = None,
                  negatives: str | None = None) -> list[DomainFrames]:
    """Decode one part of every domain of ``field_split`` (and the lab split) at ``size``.

    Photo folders: ``lab_data``, ``field_data/<domain>`` and ``negatives`` where given,
    else each manifest's own (:func:`resolve_root`); DatasetError names a folder that
    does not exist, a domain none of whose photos can be read, or a lab split that is not
    the one ``field_split`` was made with (:func:`checked_lab_split`); the photos that
    cannot be read are left out, named with the reason in each domain's ``unreadable``.
    With ``camera`` every
    photo (and synthetic frame) is shown as a camera frame and goes through the nodes'
    crop, vegetation gate and resize (:mod:`camera_frames`) instead of being shrunk
    straight to ``size``; nothing is cached then.
    """
    manifest = read_field_split(field_split)
    if list(manifest['labels']) != list(labels):
        raise DatasetError(f'the labels of {field_split} differ from the model labels')
    lab_split = checked_lab_split(manifest, field_split, lab_split)
    lab_manifest = read_manifest(lab_split)
    root, files = lab_files(lab_manifest, labels, part, root=lab_data)
    if not lab_data:
        root = resolve_root(root, lab_split)
    if not root.is_dir():
        raise DatasetError(f'lab photo folder {root} is missing; pass --data')
    parts = [(LAB_DOMAIN, root, files, False, None)]
    for name, entry in manifest['domains'].items():
        root = domain_root(manifest, name, field_split, field_data, negatives)
        root, files, _ = domain_files(manifest, name, part, root=root)
        kinds = [path.split('/')[0] for path, _ in files] if entry['negative'] else None
        parts.append((name, root, files, bool(entry['negative']), kinds))
    domains = []
    for name, root, files, negative, kinds in parts:
        passed = None
        if camera is None:
            images, truth, unreadable = load_images(root, files, size, cache_dir=cache_dir)
        else:
            images, truth, unreadable, passed = node_inputs(
                root, files, size, camera, progress=print_progress(f'{name} as frames'))
            passed = passed if camera.vegetation_gate else None
        if files and not len(truth):
            raise DatasetError(f'{name}: none of the {len(files)} {part} photos under {root} '
                               'can be read')
        names = [path for path, _ in files]
        reasons = unreadable_reasons(root, unreadable) if unreadable else {}
        if unreadable:
            keep = [item[0] not in set(unreadable) for item in files]
            kinds = [kind for kind, kept in zip(kinds, keep, strict=True) if kept] \
                if kinds else None
            names = [path for path, kept in zip(names, keep, strict=True) if kept]
        groups = kinds or [labels[index] for index in truth]
        source = None
        if camera is not None:
            source = functools.partial(photo_frames, root, list(names), camera)
        domains.append(DomainFrames(name, images, truth.astype(np.int64), negative, groups,
                                    passed, names, source, reasons))
    if synthetic_per_kind > 0:
        offset = SYNTHETIC_TEST_SEED_OFFSET if part == 'test' else SYNTHETIC_TEST_SEED_OFFSET // 2
        frames, kinds = synthetic_set(int(manifest['seed']) + offset, size, synthetic_per_kind)
        passed = source = None
        if camera is not None:
            source = functools.partial(_scene_frames, frames, camera)
            frames, passed = frames_as_node_inputs(frames, size, camera)
            passed = passed if camera.vegetation_gate else None
        truth = np.full(len(frames), list(labels).index(NO_LEAF), np.int64)
        numbers: dict[str, int] = {}
        names = []
        for kind in kinds:
            numbers[kind] = numbers.get(kind, -1) + 1
            names.append(f'{kind}/{numbers[kind]:03d}')
        domains.append(DomainFrames(SYNTHETIC_DOMAIN, frames, truth, True, kinds, passed,
                                    names, source))
    return domains


def _scene_frames(scenes: np.ndarray, camera: CameraFraming) -> Iterator[np.ndarray]:
    """Yield in-memory scenes (synthetic frames) as whole camera frames, in order."""
    for scene in scenes:
        yield camera.frame(scene)


def domain_report(scores: np.ndarray, frames: DomainFrames, labels: Sequence[str],
                  score_threshold: float = DEFAULT_SCORE_THRESHOLD) -> dict:
    """Return the figures of one domain from its ``scores`` (N × labels probabilities).

    With a vegetation gate (``frames.gate_passed``) top-1, rejections and the confusion
    count the label the nodes publish; calibration (ECE, reliability) and top-3 stay the
    model's own scores, as in the ``classification`` JSON's ``top_k`` (not its
    ``confidence``: the published label's score, 1.0 for a frame the gate turned away).
    """
    no_leaf = list(labels).index(NO_LEAF)
    model_predicted = scores.argmax(axis=1)
    predicted = published_labels(scores, frames, no_leaf)
    confidence = scores.max(axis=1)
    model_correct = model_predicted == frames.truth
    correct = predicted == frames.truth
    labelled_no_leaf = predicted == no_leaf
    below = (confidence < score_threshold) & ~labelled_no_leaf
    rejected = labelled_no_leaf | below
    gated = frames.gate_passed is not None
    top1 = (float(correct.mean()) if gated and len(correct) else
            top_k_accuracy(scores, frames.truth, 1))
    report = {
        'photos': int(len(frames.truth)),
        # Photos of the part left out because they cannot be read, and why.
        'unreadable': list(frames.unreadable),
        'unreadable_reasons': dict(frames.unreadable),
        'negative': frames.negative,
        'top1': top1,
        # Wilson 95 % interval: what the same model would likely score on other photos
        # of the kind (the field test sets are small).
        'top1_interval': share_interval(top1, len(frames.truth)),
        'ece': expected_calibration_error(confidence, model_correct),
        'reliability': reliability_bins(confidence, model_correct),
        'mean_confidence': float(confidence.mean()) if len(confidence) else float('nan'),
    }
    if gated:
        report['stopped_by_gate'] = (float(np.mean(~frames.gate_passed))
                                     if len(correct) else float('nan'))
    report['threshold_sweep'] = threshold_sweep(confidence, labelled_no_leaf, correct,
                                                frames.negative)
    if frames.negative:
        report.update({
            'labelled_no_leaf': float(labelled_no_leaf.mean()),
            'below_threshold': float(below.mean()),
            'rejected': float(rejected.mean()),
            'rejected_interval': share_interval(float(rejected.mean()), len(rejected)),
            'wrongly_accepted': float(1.0 - rejected.mean()),
            'per_kind': _per_group(frames.groups, rejected, 'rejected'),
            'accepted_as': _counts([labels[i] for i in predicted[~rejected]]),
        })
        return report
    matrix = confusion_matrix(frames.truth, predicted, len(labels))
    rows = [row for row in per_class_report(matrix, labels)
            if row['support'] or matrix[:, labels.index(row['class'])].sum()]
    accepted = ~rejected
    report.update({
        'top3': top_k_accuracy(scores, frames.truth, 3),
        'macro_f1': macro_f1(rows),
        'rejected_no_leaf': float(labelled_no_leaf.mean()),
        'rejected_below_threshold': float(below.mean()),
        'rejected': float(rejected.mean()),
        'rejected_interval': share_interval(float(rejected.mean()), len(rejected)),
        'accepted_top1': float(correct[accepted].mean()) if accepted.any() else float('nan'),
        'accepted_and_correct': float((correct & accepted).mean()),
        # A leaf accepted with a wrong label: a wrong point on the disease map.
        'accepted_wrong': float((~correct & accepted).mean()),
        'per_class': rows,
        'most_confused': most_confused(matrix, labels),
    })
    return report


def share_interval(share: float, count: int) -> list[float] | None:
    """Return the Wilson 95 % interval of a share of ``count`` frames (None: no frames)."""
    if count <= 0 or not np.isfinite(share):
        return None
    return list(wilson_interval(int(round(share * count)), int(count)))


def top1_interval(report: dict) -> list[float] | None:
    """Return a domain report's top-1 interval; computed for evaluations written before it."""
    if 'top1_interval' in report:
        return report['top1_interval']
    top1 = report.get('top1')
    return None if top1 is None else share_interval(top1, report['photos'])


def format_interval(interval: Sequence[float] | None) -> str:
    """Return ``low–high`` in percent with one decimal, or ``–`` when unknown."""
    if interval is None:
        return '–'
    return f'{100 * interval[0]:.1f}–{100 * interval[1]:.1f}'


# The columns of ``predictions.csv``, one row per frame.
PREDICTION_COLUMNS = ('domain', 'frame', 'truth', 'label', 'published', 'score', 'top3',
                      'gate', 'correct', 'outcome')


def prediction_rows(scores: np.ndarray, frames: DomainFrames, labels: Sequence[str],
                    score_threshold: float = DEFAULT_SCORE_THRESHOLD) -> list[dict]:
    """Return one row per frame: what the nodes would publish for it, and whether it is right.

    ``label``: the model's top label, or ``no_leaf`` where the vegetation gate stopped the
    frame; ``published``: that label, or ``unknown`` below ``score_threshold``; ``score``:
    the model's top score; ``top3``: its three best labels (``;``-separated); ``gate``:
    ``passed``, ``stopped`` or empty (no gate); ``correct``: 1 where ``label`` is the truth;
    ``outcome``: ``right`` (a right map point), ``wrong`` (a wrong one: a leaf with a wrong
    label, or a non-leaf frame taken for a leaf) or ``rejected`` (no map point).
    """
    # A model without a ``no_leaf`` class: only the gate's -1 stands for it.
    no_leaf = list(labels).index(NO_LEAF) if NO_LEAF in labels else -1
    predicted = published_labels(scores, frames, no_leaf)
    confidence = scores.max(axis=1)
    best = np.argsort(-scores, axis=1, kind='stable')[:, :3]
    rows = []
    for index, name in enumerate(frames.names()):
        label = int(predicted[index])
        rejected = label == no_leaf or confidence[index] < score_threshold
        correct = label == int(frames.truth[index])
        if rejected:
            outcome = 'rejected'
        else:
            outcome = 'right' if correct and not frames.negative else 'wrong'
        gate = '' if frames.gate_passed is None else (
            'passed' if frames.gate_passed[index] else 'stopped')
        label_name = NO_LEAF if label == no_leaf else labels[label]
        rows.append({
            'domain': frames.name, 'frame': name, 'truth': labels[int(frames.truth[index])],
            'label': label_name,
            'published': label_name if label == no_leaf or not rejected else 'unknown',
            'score': f'{float(confidence[index]):.4f}',
            'top3': ';'.join(labels[int(column)] for column in best[index]),
            'gate': gate, 'correct': int(correct), 'outcome': outcome,
        })
    return rows


def report_count(rows: Sequence[dict], outcome: str) -> int:
    """Return how many prediction rows have ``outcome``."""
    return sum(1 for row in rows if row['outcome'] == outcome)


def write_predictions(path: str | Path, rows: Sequence[dict]) -> Path:
    """Write prediction rows (:func:`prediction_rows`) as ``predictions.csv``."""
    path = Path(path)
    with open(path, 'w', newline='') as handle:
        writer = csv.DictWriter(handle, fieldnames=list(PREDICTION_COLUMNS))
        writer.writeheader()
        writer.writerows(rows)
    return path


def wrong_map_points(report: dict) -> float | None:
    """Return the share of a domain's frames that put a wrong point on the map, if known.

    Non-leaf domains: ``wrongly_accepted``; leaf domains: ``accepted_wrong``, or for
    evaluations written before it, what is neither rejected nor accepted and right.
    """
    if report['negative']:
        return report['wrongly_accepted']
    if 'accepted_wrong' in report:
        return report['accepted_wrong']
    if 'accepted_and_correct' in report:
        return 1.0 - report['rejected'] - report['accepted_and_correct']
    return None


def threshold_sweep(confidence: np.ndarray, labelled_no_leaf: np.ndarray,
                    correct: np.ndarray, negative: bool,
                    thresholds: Sequence[float] = SWEEP_THRESHOLDS) -> list[dict]:
    """Return, for each score threshold, the share rejected and the share of wrong map points.

    ``confidence``: each frame's top score; ``labelled_no_leaf``: frames published as
    ``no_leaf`` (the model's answer or the gate's), rejected at any threshold; ``correct``:
    the published label is right. A wrong map point is a leaf accepted with a wrong label,
    or a non-leaf frame accepted as a leaf.
    """
    rows = []
    for threshold in thresholds:
        rejected = labelled_no_leaf | (confidence < threshold)
        wrong = ~rejected if negative else ~rejected & ~correct
        rows.append({'threshold': float(threshold),
                     'rejected': float(rejected.mean()) if len(rejected) else float('nan'),
                     'wrong': float(wrong.mean()) if len(wrong) else float('nan')})
    return rows


def plot_threshold_sweep(reports: dict[str, dict], path: str | Path,
                         current: float = DEFAULT_SCORE_THRESHOLD) -> Path:
    """Draw rejected (solid) and wrong map points (dashed) against the threshold, per domain."""
    import matplotlib

    matplotlib.use('Agg')
    import matplotlib.pyplot as plt

    figure, (leaf_axis, negative_axis) = plt.subplots(1, 2, figsize=(11, 4.8), sharey=True)
    for axis, negative in ((leaf_axis, False), (negative_axis, True)):
        for number, (name, report) in enumerate(
                (name, report) for name, report in reports.items()
                if report['negative'] == negative and report.get('threshold_sweep')):
            rows = report['threshold_sweep']
            colour = f'C{number}'
            thresholds = [row['threshold'] for row in rows]
            axis.plot(thresholds, [100 * row['rejected'] for row in rows], color=colour,
                      label=f'{name}: rejected')
            axis.plot(thresholds, [100 * row['wrong'] for row in rows], color=colour,
                      linestyle='--', label=f'{name}: wrong map points')
        axis.axvline(current, color='grey', linewidth=1, linestyle=':')
        axis.set(xlim=(0, 1), ylim=(0, 100), xlabel='score_threshold',
                 title=('leaf photos: a loss when rejected' if not negative
                        else 'non-leaf frames: a success when rejected'))
        axis.grid(alpha=0.3)
        if axis.get_legend_handles_labels()[0]:  # no curve: no domain of this kind
            axis.legend(fontsize=7, loc='best')
    leaf_axis.set_ylabel('% of the frames')
    figure.suptitle(f'What each score_threshold rejects and lets onto the map '
                    f'(dotted: {current:g})')
    figure.tight_layout()
    path = Path(path)
    figure.savefig(path, dpi=110)
    plt.close(figure)
    return path


def _per_group(groups: Sequence[str], flags: np.ndarray, key: str) -> dict[str, dict]:
    result: dict[str, dict] = {}
    for group in dict.fromkeys(groups):
        members = np.array([g == group for g in groups])
        result[group] = {'photos': int(members.sum()), key: float(flags[members].mean())}
    return result


def _counts(names: Sequence[str]) -> dict[str, int]:
    counts: dict[str, int] = {}
    for name in names:
        counts[name] = counts.get(name, 0) + 1
    return dict(sorted(counts.items(), key=lambda item: -item[1]))


def write_domain_outputs(domains: Sequence[DomainFrames], scores: dict[str, np.ndarray],
                         labels: Sequence[str], out_dir: Path,
                         score_threshold: float, split: str = 'test') -> dict[str, dict]:
    """Compute every domain's report; draw its pictures; write ``predictions.csv``.

    The pictures: a confusion matrix per domain, the most confident mistakes per domain
    (``mistakes_<domain>.png``, where there are any), the reliability plot (its title
    names the ``split`` of the frames) and the threshold sweep. ``predictions.csv`` has a
    row per frame (:func:`prediction_rows`), for finding the photos a model gets wrong and
    for ``plant-disease compare``.
    """
    reports: dict[str, dict] = {}
    curves = {}
    predictions: list[dict] = []
    for frames in domains:
        domain_scores = scores[frames.name]
        report = domain_report(domain_scores, frames, labels, score_threshold)
        reports[frames.name] = report
        rows = prediction_rows(domain_scores, frames, labels, score_threshold)
        predictions += rows
        mistakes_path = out_dir / f'mistakes_{frames.name}.png'
        mistakes_path.unlink(missing_ok=True)  # an earlier evaluation's, in the same folder
        mistakes = plot_mistakes(
            frames.images, rows, mistakes_path,
            title=f'{frames.name}: the most confident of the {report_count(rows, "wrong")} '
                  f'frames that put a wrong point on the map (score >= {score_threshold:g})')
        report['mistakes_png'] = mistakes.name if mistakes else None
        curves[frames.name] = (domain_scores.max(axis=1),
                               domain_scores.argmax(axis=1) == frames.truth)
        predicted = published_labels(domain_scores, frames, list(labels).index(NO_LEAF))
        path = out_dir / f'confusion_{frames.name}.png'
        if frames.negative:
            kinds = list(dict.fromkeys(frames.groups))
            matrix = np.zeros((len(kinds), len(labels)), np.int64)
            for kind, column in zip(frames.groups, predicted, strict=True):
                matrix[kinds.index(kind), column] += 1
            plot_confusion_matrix(matrix, labels, path, row_labels=kinds,
                                  title=f'{frames.name}: {100 * report["rejected"]:.1f} % '
                                        f'rejected (no_leaf or score < {score_threshold:g})')
        else:
            matrix = confusion_matrix(frames.truth, predicted, len(labels))
            plot_confusion_matrix(matrix, labels, path,
                                  title=f'{frames.name}: top-1 {100 * report["top1"]:.1f} %, '
                                        f'{100 * report["rejected"]:.1f} % rejected')
        report['confusion_png'] = path.name
    plot_reliability(curves, out_dir / 'reliability.png',
                     title=f'Reliability of the int8 top-1 score, {split} photos')
    plot_threshold_sweep(reports, out_dir / 'thresholds.png', score_threshold)
    write_predictions(out_dir / 'predictions.csv', predictions)
    return reports


def format_domain_table(reports: dict[str, dict]) -> str:
    """Return a plain-text table of the per-domain figures."""
    gate = any('stopped_by_gate' in report for report in reports.values())
    lines = [f'{"domain":<14} {"photos":>6} {"top-1":>7} {"interval":>11} {"top-3":>7} '
             f'{"rejected":>9} {"wrong":>7} {"ECE":>6}' + (f' {"by gate":>8}' if gate else '')]
    for name, report in reports.items():
        top3 = '' if report['negative'] else f'{100 * report["top3"]:6.2f}%'
        wrong = wrong_map_points(report)
        wrong = float('nan') if wrong is None else wrong
        lines.append(f'{name:<14} {report["photos"]:6d} {100 * report["top1"]:6.2f}% '
                     f'{format_interval(top1_interval(report)):>11} '
                     f'{top3:>7} {100 * report["rejected"]:8.2f}% {100 * wrong:6.2f}% '
                     f'{100 * report["ece"]:5.2f}%'
                     + (f' {100 * report.get("stopped_by_gate", 0.0):7.2f}%' if gate else ''))
    lines.append("interval: Wilson 95 % interval of the model's top-1 on photos of this kind "
                 '(not where another test set of this size may land: that range is wider)')
    lines.append('rejected: leaves labelled no_leaf or scored below the threshold (a loss); '
                 'non-leaf frames the same (a success); top-1 of non-leaf = labelled no_leaf')
    lines.append('wrong: frames that put a wrong point on the disease map (a leaf accepted '
                 'with a wrong label; a non-leaf frame accepted as a leaf)')
    if gate:
        lines.append('by gate: frames the vegetation gate labelled no_leaf (part of rejected)')
    return '\n'.join(lines)


def write_json(path: Path, report: dict) -> None:
    """Write a report as JSON (NaN as null)."""
    path.write_text(json.dumps(_finite(report), indent=1) + '\n')


def _finite(value):
    if isinstance(value, float) and not np.isfinite(value):
        return None
    if isinstance(value, dict):
        return {key: _finite(item) for key, item in value.items()}
    if isinstance(value, list):
        return [_finite(item) for item in value]
    return value
