"""Write ``MODEL_CARD.md`` from a training run, its evaluation and latency measurements."""

from __future__ import annotations

import json
import math
import os
from pathlib import Path

import numpy as np

from plant_disease_ros.core.atomic_files import sha256_of, write_text_atomic
from plant_disease_ros.core.interpreter_loader import (
    load_interpreter,
    ModelLoadError,
    TensorSpec,
)
from plant_disease_ros.training.metrics import split_description
from plant_disease_ros.training.run_files import check_run_files, recorded_summary

ATTRIBUTION = """\
The photos are from the PlantVillage dataset (Hughes & Salathé, 2015, "An open access
repository of images on plant health to enable the development of mobile disease
diagnostics", arXiv:1511.08060; used by Mohanty, Hughes & Salathé, "Using Deep Learning for
Image-Based Plant Disease Detection", Frontiers in Plant Science 7:1419, 2016), through
public GitHub copies:

- Tomato: NhatPhuong2106/Applied_Parallel_Programming (a copy of the Kaggle "tomatoleaf"
  set, itself taken from PlantVillage), CC BY-SA 3.0.
- Apple, Strawberry, Blueberry, Orange: ai-agriculture-circuits-and-systems/
  plant_Village_* repositories, CC BY 4.0.
- Potato: abhay-08121999/Potato-leaf-dataset (no licence stated; PlantVillage origin; its
  `healthy` photos are augmented copies of about 125 originals).

The model weights are derived from these photos; where a share-alike licence applies
(the tomato photos, CC BY-SA 3.0), the weights are offered under the same terms."""


SHIPPED_START = """\
This model's weights start from the shipped model's, so they are also derived from the
shipped model's training data, and the terms of those sources carry over to them
(share-alike, non-commercial and sets with no stated licence among them: check them before
any commercial use of the weights). The shipped model's data, as its card
(`models/MODEL_CARD.md`) lists it:"""

# How many runs back a card follows --init / --init-weights to find where weights began.
MAX_START_CHAIN = 8


def _pct(value: float | None) -> str:
    return '–' if value is None else f'{100.0 * value:.2f} %'


def run_init(summary: dict) -> str:
    """Return how a run started: ``scratch``, ``shipped``, ``warm start`` or a model path.

    Summaries written before transfer learning have no ``init``: those runs started from
    scratch, or warm from ``init_weights``.
    """
    options = summary['options']
    if summary.get('init'):
        return str(summary['init'])
    return 'warm start' if options.get('init_weights') else str(options.get('init') or 'scratch')


def start_description(summary: dict) -> str:
    """Return where a run's weights came from, as a phrase ("trained from scratch ...")."""
    init = run_init(summary)
    if init == 'scratch':
        return 'trained from scratch (no pretrained weights)'
    if init == 'warm start':
        return f'warm start from `{summary["options"].get("init_weights")}` (all weights)'
    source = "the shipped model's backbone" if init == 'shipped' \
        else f'the backbone of `{init}`'
    head_epochs = (summary.get('plan') or {}).get(
        'head_epochs', summary['options'].get('head_epochs') or 0)
    unfreeze = summary['options'].get('unfreeze')
    if unfreeze == 0:
        return f'transfer learning from {source}: a new head trained with the backbone ' \
               'frozen (no fine-tuning)'
    tuned = 'the whole network fine-tuned' if unfreeze is None else \
        f'the last {unfreeze} backbone stages ' \
        f'({", ".join(summary.get("unfrozen_stages") or [])}) and the head fine-tuned'
    if head_epochs:
        return f'transfer learning from {source}: a new head trained with the backbone ' \
               f'frozen, then {tuned}'
    return f'transfer learning from {source}: {tuned} (no head-only stage)'


def starts_from_shipped(summary: dict, depth: int = 0) -> bool:
    """Return whether a run's weights descend from the shipped model's.

    True for ``--init shipped``, for a start from the shipped float model's file, and for
    a start (``--init`` or ``--init-weights``) from a run whose own summary, beside its
    model, says so (followed up to :data:`MAX_START_CHAIN` runs back).
    """
    from plant_disease_ros.training.transfer import SHIPPED, shipped_float_model_path

    init = run_init(summary)
    if init == SHIPPED:
        return True
    start = summary['options'].get('init_weights') if init == 'warm start' else init
    if not start or init == 'scratch' or depth >= MAX_START_CHAIN:
        return False
    path = Path(start)
    if path.resolve() == shipped_float_model_path().resolve():
        return True
    earlier = (path if path.is_dir() else path.parent) / 'train_summary.json'
    try:
        return starts_from_shipped(json.loads(earlier.read_text()), depth + 1)
    except (OSError, ValueError, KeyError, TypeError, AttributeError):
        return False  # no readable summary of where it started: nothing known


def check_card_inputs(run_dir: str | Path, evaluation_dir: str | Path,
                      model_path: str | Path) -> None:
    """Raise ``ValueError`` when the run, its export and its evaluation are not of one model.

    What the files record is compared, and nothing else: a summary that records the
    sha256 of ``model.keras`` (runs trained since it does) must match the run's
    ``model.keras``, and one that records the sha256 of ``split.json`` its split
    (:func:`~plant_disease_ros.training.run_files.check_run_files`); an export or
    evaluation that was in the run folder before that model was trained
    (``train_summary.json``'s ``replaced_outputs``) describes an earlier model; an
    evaluation that records its TFLite model (its sha256, or its size for a photo-folder
    evaluation) must be of ``model_path``, and its float figures, when it records their
    ``--keras`` model, of the run's ``model.keras`` (:func:`check_float_model`). An export
    records nothing of the Keras model it came from, so a stale export elsewhere cannot be
    told.
    """
    run_dir, evaluation_dir, model_path = Path(run_dir), Path(evaluation_dir), Path(model_path)
    summary = json.loads((run_dir / 'train_summary.json').read_text())
    check_run_files(run_dir)
    evaluation_path = evaluation_dir / 'evaluation.json'
    evaluation = json.loads(evaluation_path.read_text())
    model_hash = sha256_of(model_path)
    stale = set((summary.get('replaced_outputs') or {}).values())
    for what, path, digest, redo in (
            ('--model', model_path, model_hash, f'plant-disease export --run {run_dir}'),
            ('--evaluation', evaluation_dir, sha256_of(evaluation_path),
             'plant-disease evaluate')):
        if digest in stale:
            raise ValueError(f'{what} {path} was in {run_dir} before its model.keras was '
                             f'trained: it describes an earlier model; run {redo} again')
    if 'model_sha256' in evaluation:
        evaluated = evaluation['model_sha256'] == model_hash
    elif 'model_bytes' in evaluation:
        evaluated = evaluation['model_bytes'] == model_path.stat().st_size
    else:
        evaluated = True  # nothing recorded to compare
    if not evaluated:
        raise ValueError(f'--evaluation {evaluation_dir} is of another model '
                         f'({evaluation.get("model", "unnamed")}) than --model {model_path}: '
                         'evaluate that model, or name the model it evaluated')
    check_float_model(run_dir, evaluation_dir, evaluation)


def check_float_model(run_dir: Path, evaluation_dir: Path, evaluation: dict) -> None:
    """Raise ``ValueError`` when the evaluation's float figures are not of RUN/model.keras.

    The lab card prints them as the run's float model. An evaluation records its
    ``--keras`` model (``keras_model``: path and sha256) since it does; one written before
    has nothing to compare. A field evaluation (per domain) is left to the field card,
    which names the ``--keras`` model it scored: a field run's float twin is the file
    ``export --float-out`` wrote, another sha256 than its ``model.keras``.
    """
    record = evaluation.get('keras_model')
    if not isinstance(record, dict) or not record.get('sha256') or 'domains' in evaluation:
        return
    keras_path = run_dir / 'model.keras'
    if not keras_path.is_file():
        # A run folder copied without its model: the summary records the run's model.
        if recorded_summary(run_dir).get('model_sha256') == record['sha256']:
            return
        raise ValueError(f'--evaluation {evaluation_dir} scored the float model '
                         f'{record.get("path", "unnamed")} (--keras), and {keras_path} is '
                         "missing: nothing tells its float figures are this run's; put the "
                         "run's model.keras back, or evaluate again without --keras")
    if sha256_of(keras_path) == record['sha256']:
        return
    if record.get('path') and Path(record['path']).resolve() == keras_path.resolve():
        raise ValueError(f'--evaluation {evaluation_dir} scored an earlier {keras_path} '
                         '(--keras; another sha256): the file was replaced since; evaluate '
                         f'again with --keras {keras_path}, or without --keras')
    raise ValueError(f'--evaluation {evaluation_dir} scored the float model '
                     f'{record.get("path", "unnamed")} (--keras), not {keras_path}: its float '
                     "figures are not this run's; evaluate again with --keras "
                     f'{keras_path}, or without --keras')


def model_tensors(model_path: str | Path) -> tuple[TensorSpec, TensorSpec]:
    """Return the model's input and output tensors (dtype, scale, zero point), from the file.

    ValueError when the file is not a model the robot's loader reads.
    """
    try:
        loaded = load_interpreter(model_path, num_threads=1)
    except ModelLoadError as error:
        raise ValueError(f'cannot read the input and output types of {model_path}: '
                         f'{error}') from error
    return loaded.input, loaded.output


def input_description(spec: TensorSpec) -> str:
    """Return the card's words for the input tensor: what a pixel becomes, and its type."""
    dtype = np.dtype(spec.dtype).name
    quantisation = f'{dtype}, scale {spec.scale:g}, zero point {spec.zero_point}'
    if math.isclose(spec.scale, 1.0, rel_tol=1e-6):
        if dtype == 'uint8' and spec.zero_point == 0:
            return f'raw RGB pixels ({quantisation})'
        if dtype == 'int8' and spec.zero_point == -128:
            return f'RGB pixels minus 128 ({quantisation})'
    return f'RGB pixels ({quantisation})'


def _link(target: Path, card: Path) -> str:
    """Return ``target`` as a Markdown link relative to the folder of ``card``."""
    return Path(os.path.relpath(Path(target).absolute(),
                                Path(card).absolute().parent)).as_posix()


def published_notes(evaluation: dict) -> list[str]:
    """Return the card's bullet on what the nodes publish for the evaluated photos.

    Top-1 counts the top label whatever its score; the nodes publish ``unknown`` below
    ``score_threshold``. An evaluation written before the outcomes were counted says so.
    """
    outcomes = evaluation.get('int8', {}).get('outcomes')
    if not outcomes:
        return ['- rejected, wrong map points: not in this evaluation (written before they '
                'were counted); evaluate again to see them.']
    photos = max(1, sum(outcomes.values()))
    return [
        f'- At the nodes\' `score_threshold` {evaluation.get("score_threshold", 0.5):g}: '
        f'{outcomes["rejected"]} of {photos} photos rejected '
        f'({100 * outcomes["rejected"] / photos:.2f} %: top score below it, published as '
        '`unknown`, or labelled `no_leaf`: no map point), '
        f'{outcomes["wrong"]} accepted with a wrong label (wrong map points), '
        f'{outcomes["right"]} right. Top-1 counts the top label whatever its score.']


def evaluates_own_split(evaluation: dict, run_dir: str | Path) -> bool | None:
    """Return whether an evaluation of a split manifest is of the run's own ``split.json``.

    By the sha256 it records of its manifest (evaluations since it is recorded); None when
    it records none or the run has no ``split.json``.
    """
    recorded = (evaluation.get('split_manifest') or {}).get('sha256')
    split_path = Path(run_dir) / 'split.json'
    if not recorded or not split_path.is_file():
        return None
    return recorded == sha256_of(split_path)


def seen_in_training(split: dict, evaluation: dict, evaluation_dir: str | Path,
                     own_split: bool | None = None) -> dict[str, int]:
    """Return how many evaluated photos the run trained or validated on.

    ``{'photos': evaluated, 'train': n, 'val': n, 'by_name': n}``. The evaluation's
    ``predictions.csv`` is matched photo by photo against ``split.json``, unless it is of
    a part of the run's own split (``own_split``, from :func:`evaluates_own_split`: its
    heading names the part): a photo folder (``split`` ``all``), or a part of another
    manifest (another run's ``split.json``, or one not recorded). A photo matches by its
    path under the photo folder (``<class>/<image>``); when the evaluation records another
    folder (``root``) than the split's (a copy, or photos moved), a photo readable in both
    matches only when the two files are the same bytes, and one that cannot be read in
    both is counted by its name alone (``by_name``). Without predictions.csv: 0 of each.
    """
    import csv
    import filecmp

    counts = {'photos': int(evaluation.get('photos', 0)), 'train': 0, 'val': 0, 'by_name': 0}
    predictions = Path(evaluation_dir) / 'predictions.csv'
    if (evaluation.get('split', 'test') != 'all' and own_split) or not predictions.is_file():
        return counts
    with open(predictions, newline='', encoding='utf-8') as handle:
        evaluated = {row['frame'] for row in csv.DictReader(handle)}
    root, split_root = evaluation.get('root'), split.get('root')
    same_folder = not root or not split_root or Path(root).resolve() == Path(split_root).resolve()
    for name in ('train', 'val'):
        for path, _ in split['splits'].get(name, []):
            if path not in evaluated:
                continue
            if same_folder:
                counts[name] += 1
                continue
            trained, scored = Path(split_root) / path, Path(root) / path
            if not (trained.is_file() and scored.is_file()):
                counts[name] += 1
                counts['by_name'] += 1
            elif filecmp.cmp(trained, scored, shallow=False):
                counts[name] += 1
    return counts


def training_photos_warning(seen: dict[str, int]) -> str:
    """Return the warning for an evaluation holding photos the run trained on, or ''."""
    learned = seen['train'] + seen['val']
    if not learned:
        return ''
    photos = max(1, seen['photos'])
    parts = [f'{count} {name}' for name, count in (('training', seen['train']),
                                                    ('validation', seen['val'])) if count]
    by_name = seen.get('by_name', 0)
    named = (f'; {by_name} of them matched by their <class>/<image> name alone: the '
             "evaluated folder is not the run's and the two copies cannot both be read"
             if by_name else '')
    return (f'{learned} of the {seen["photos"]} evaluated photos '
            f'({100 * learned / photos:.0f} %) were used to train this run '
            f'({" and ".join(parts)}, in its split.json{named}): these figures overstate the '
            "model's accuracy. Evaluate the test split (plant-disease evaluate --split-manifest "
            'RUN/split.json) for figures to rely on.')


STAGE_NAMES = {'head': 'head only (backbone frozen)', 'fine-tune': 'fine-tune',
               'train': 'one stage'}


def epochs_description(phase: dict) -> str:
    """Return the epochs a run trained and planned, both counted over all its stages."""
    options, plan = phase['options'], phase.get('plan') or {}
    planned = int(plan.get('head_epochs', options.get('head_epochs') or 0))
    if not (plan.get('transfer') and options.get('unfreeze') == 0):  # else no fine-tuning
        planned += int(plan.get('epochs', options['epochs']))
    text = f'{phase["epochs_run"]} epochs (of at most {planned}'
    stages = phase.get('stages') or []
    if any(stage['stage'] != 'train' for stage in stages):
        text += ': ' + ', '.join(
            f'{STAGE_NAMES.get(stage["stage"], stage["stage"])} {stage["epochs_run"]} of '
            f'{stage["epochs_planned"]}' for stage in stages)
    return text + ')'


def write_model_card(run_dir: str | Path, evaluation_dir: str | Path, out_path: str | Path,
                     model_path: str | Path, latency: list[dict],
                     search_table: str | None = None,
                     train_command: str = '', export_command: str = '',
                     evaluate_command: str = '', baseline_dir: str | Path | None = None,
                     reference_latency: list[dict] | None = None,
                     earlier_runs: list[str | Path] | None = None,
                     crops_dir: str | Path | None = None,
                     poses_dirs: list[str | Path] | None = None,
                     near_duplicates: str | Path | None = None,
                     frames_dirs: list[str | Path] | None = None,
                     selection: str | Path | None = None) -> Path:
    """Render the model card from ``train_summary.json``, ``evaluation.json`` and timings.

    A per-domain evaluation (``plant-disease evaluate --field-split``) of a field-fit run
    gives the field-fit card (:mod:`field_model_card`): per-domain figures, the figures of
    the model it replaces (``baseline_dir``, the same evaluation of that model) and what it
    is still bad at; ``crops_dir``, an evaluation with ``--crops``, adds the figures of a
    robot told its field's crop, and ``poses_dirs``, evaluations with ``--poses``, those
    of a robot averaging poses of each frame; ``near_duplicates`` (a JSON like
    ``models/test_near_duplicates.json``) adds the figures without the test photos that are
    copies of training photos; ``selection`` (Markdown) says how the model was chosen among
    finished runs; ``frames_dirs``, evaluations of the test photos as camera
    frames, sharp and with ``--motion-blur``, add what motion blur costs.
    """
    run_dir, evaluation_dir = Path(run_dir), Path(evaluation_dir)
    check_card_inputs(run_dir, evaluation_dir, model_path)
    summary = json.loads((run_dir / 'train_summary.json').read_text())
    evaluation = json.loads((evaluation_dir / 'evaluation.json').read_text())
    if 'domains' in evaluation:
        from plant_disease_ros.training.field_model_card import write_field_model_card

        commands = '\n'.join(command for command in (train_command, export_command,
                                                      evaluate_command) if command)
        return write_field_model_card(run_dir, evaluation_dir, out_path, model_path, latency,
                                      ATTRIBUTION, baseline_dir=baseline_dir,
                                      reference_latency=reference_latency,
                                      commands=commands, earlier_runs=earlier_runs,
                                      crops_dir=crops_dir, poses_dirs=poses_dirs,
                                      near_duplicates=near_duplicates,
                                      frames_dirs=frames_dirs, selection=selection)
    split = json.loads((run_dir / 'split.json').read_text())
    model_input, model_output = model_tensors(model_path)
    counts = {name: len(split['splits'][name]) for name in ('train', 'val', 'test')}
    model = summary['model']
    classes = summary['classes']
    crops = len({name.split('___')[0] for name in classes})
    phases = [summary]
    if summary['options'].get('init_weights'):
        previous = Path(summary['options']['init_weights']).parent / 'train_summary.json'
        if previous.exists():
            phases.insert(0, json.loads(previous.read_text()))
    per_class_counts = {name: [0, 0, 0] for name in classes}
    for column, name in enumerate(('train', 'val', 'test')):
        for _, index in split['splits'][name]:
            per_class_counts[classes[index]][column] += 1
    # The lab photos the first shipped model was trained on: their known traits (plain
    # background, repeated leaves) and licence go into the card; a user's folder gets
    # neither, since nothing is known of it.
    plantvillage = any(part.lower().startswith('plantvillage')
                       for part in Path(split['root']).parts)
    test_split = evaluation.get('split', 'test')
    own_split = evaluates_own_split(evaluation, run_dir)
    learned = training_photos_warning(seen_in_training(split, evaluation, evaluation_dir,
                                                       own_split))
    # Held out: the test part of the run's own split (or of a manifest not recorded, when
    # none of its photos is one the run trained on).
    held_out = test_split == 'test' and own_split is not False and not learned
    # What the evaluated photos are called in the card ('test photos', 'evaluated photos').
    photo_words = {'test': 'test photos', 'val': 'val photos', 'train': 'training photos'}.get(
        test_split, 'evaluated photos') if held_out or test_split != 'test' \
        else 'evaluated photos'
    if held_out:
        heading = '## Test figures (held-out test split)'
    elif test_split == 'test':
        manifest = (evaluation.get('split_manifest') or {}).get('path')
        heading = (f"## Figures on the test split of `{manifest}` (not this run's split)"
                   if manifest and own_split is False else
                   '## Figures on the test split of the evaluated split manifest')
    else:
        heading = f'## Figures on {split_description(test_split)}'
    lines = [
        f'# Model card: {Path(model_path).name}',
        '',
        f'A {len(classes)}-class plant disease classifier for single-leaf photos, int8-quantised '
        'for CPU inference on a Raspberry Pi or Jetson through LiteRT / TFLite.',
        '',
        '## Model',
        '',
        f'- Architecture: {model["architecture"]} width {model["width"]:g}, input '
        f'{model["input_size"]}×{model["input_size"]} RGB, {summary["parameters"]:,} '
        f'parameters, {start_description(phases[0])}.',
        f'- Input: {input_description(model_input)} resized to the input size '
        'with area interpolation; normalisation ([-1, 1]) is inside the model.',
        f'- Output: {len(classes)} class probabilities '
        f'({np.dtype(model_output.dtype).name}), in the order of `labels.txt`.',
        f'- File: `{Path(model_path).name}`, {Path(model_path).stat().st_size / 1024:.0f} KiB, '
        'full-integer int8 (weights and activations), calibrated on training photos.',
        f'- Float model: `{run_dir / "model.keras"}` (for Grad-CAM and agreement checks).',
        '',
        '## Data and split',
        '',
        f'`{split["root"]}`: {sum(counts.values())} photos'
        f'{" of single leaves on a plain lab background" if plantvillage else ""}, '
        f'{len(classes)} classes from {crops} crop'
        f'{"s" if crops != 1 else ""} (folder names are the class names). Deterministic '
        f'stratified split (seed {split["seed"]}): train {counts["train"]}, validation '
        f'{counts["val"]}, test '
        f'{counts["test"]}. The split is `split.json`; test photos were never used for '
        'training, checkpoint choice or calibration.',
        '',
        '| class | train | val | test |',
        '| --- | ---: | ---: | ---: |',
    ]
    lines += [f'| {name} | {a} | {b} | {c} |' for name, (a, b, c) in per_class_counts.items()]
    int8, float_ = evaluation['int8'], evaluation.get('float', {})
    lines += ['', '## Training', '']
    for number, phase in enumerate(phases, start=1):
        phase_options, plan = phase['options'], phase.get('plan') or {}
        start = ('warm start from the previous phase'
                 if number > 1 and run_init(phase) == 'warm start'
                 else start_description(phase))
        head = f'head stage at a constant {plan["head_learning_rate"]:g}, then ' \
            if plan.get('head_epochs') and 'head_learning_rate' in plan else ''
        lines.append(
            f'{"Phase " + str(number) + ": " if len(phases) > 1 else ""}'
            f'{phase_options["input_size"]} px, {start}: {epochs_description(phase)}, batch '
            f'{phase_options["batch_size"]}, Adam ({head}cosine decay from '
            f'{phase_options["learning_rate"]:g}), label smoothing '
            f'{phase_options["label_smoothing"]:g}, augmentation strength '
            f'{phase_options["augment_strength"]:g}, early stopping on validation accuracy '
            f'(patience {phase_options["patience"]}), best checkpoint kept. Best validation '
            f'top-1 {_pct(phase["best_val_accuracy"])}; {phase["train_seconds"] / 60:.0f} min '
            f'on this machine\'s CPU ({phase["seconds_per_epoch"]:.0f} s an epoch, '
            f'TensorFlow {phase["tensorflow"]}).')
        lines.append('')
    lines += [
        'Augmentation: flips and transposes (any 90° orientation), crop-and-resize zoom, '
        'brightness, contrast, saturation, colour cast and occasional blur. The training '
        'curves below are of the last phase.',
        '',
        *([f'![training curves]({_link(run_dir / "training_curves.png", out_path)})', '']
          if (run_dir / 'training_curves.png').is_file() else []),
        heading,
        '',
        *([f'> **Warning:** {learned}', ''] if learned else []),
        '| | top-1 | top-3 | rejected | wrong map points |',
        '| --- | ---: | ---: | ---: | ---: |',
        f'| float Keras | {_pct(float_.get("top1"))} | {_pct(float_.get("top3"))} | – | – |',
        f'| int8 TFLite | {_pct(int8["top1"])} | {_pct(int8["top3"])} | '
        f'{_pct(int8.get("rejected"))} | {_pct(int8.get("accepted_wrong"))} |',
        '',
        *published_notes(evaluation),
        f'- int8/float top-1 agreement on {evaluation["photos"]} {photo_words}: '
        + ('not measured (evaluate with --keras RUN/model.keras).'
           if evaluation.get('int8_float_agreement') is None
           else f'{_pct(evaluation["int8_float_agreement"])}.'),
        f'- int8 macro F1: {int8["macro_f1"]:.4f}.',
        '- Most confused pairs: ' + ('; '.join(
            f'{pair["truth"]} → {pair["predicted"]} ({pair["count"]})'
            for pair in evaluation['most_confused']) or 'none') + '.',
        '',
        *([f'![confusion matrix]({_link(evaluation_dir / "confusion_matrix.png", out_path)})',
           ''] if (evaluation_dir / 'confusion_matrix.png').is_file() else []),
        f'| class | precision | recall | F1 | {photo_words} |',
        '| --- | ---: | ---: | ---: | ---: |',
    ]
    lines += [f'| {row["class"]} | {row["precision"]:.3f} | {row["recall"]:.3f} | '
              f'{row["f1"]:.3f} | {row["support"]} |' for row in evaluation['per_class']]
    lines += [
        '',
        '## Latency',
        '',
        f'Bare `invoke()` of the int8 model, {evaluation["machine"]} '
        f'({evaluation["backend"]}):',
        '',
        '| threads | p50 | p95 |',
        '| ---: | ---: | ---: |',
    ]
    lines += [f'| {row["threads"]} | {row["p50_ms"]:.2f} ms | {row["p95_ms"]:.2f} ms |'
              for row in latency]
    if search_table:
        lines += ['', '## Hyper-parameter search', '',
                  'A grid over width, input size and learning rate (`plant-disease search`): '
                  'short trials on a class-balanced subsample within a wall-clock budget. '
                  'They rank configurations early in training; they do not reach, and do '
                  "not predict, a full run's accuracy.", '', search_table]
    lines += [
        '',
        '## Limits: read before trusting it in a field',
        '',
    ]
    if plantvillage:
        lines += [
            '- These are lab photos: one leaf, centred, on a plain background. The background '
            'carries information about the label, and several photos of the same leaf '
            'occur, so the test figures above overstate what the model does on a robot '
            'camera. Published work reports accuracy falling to roughly 30–60 % on field '
            'photos for models trained on PlantVillage alone. Expect far lower accuracy in '
            'the field; fine-tune on your own field photos (`plant-disease train --data '
            'YOUR_FOLDER --out runs/yours`) before relying on it.',
        ]
    else:
        lines += [
            f'- The test photos come from the same folder as the training photos '
            f'(`{split["root"]}`): photos of one leaf, plant or session in both splits make '
            'the test figures higher than on photos from another field, day or camera. '
            'Measure on such photos before relying on it.',
        ]
    lines += [
        f'- It only knows these {len(classes)} classes. Any other plant, weed, soil or an '
        'empty frame is forced into one of them; the nodes publish `unknown` below '
        '`score_threshold`, but a confident wrong answer is still possible.',
    ]
    if learned:
        lines.append(f'- {learned}')
    # The photos the figures are of: the evaluation's, which need not be the split's test.
    evaluated = {row['class']: int(row['support']) for row in evaluation['per_class']}
    small = [name for name in classes if evaluated.get(name, 0) < 10]
    if small:
        lines.append(f'- {len(small)} class(es) have fewer than 10 {photo_words} '
                     f'({", ".join(small[:5])}{", ..." if len(small) > 5 else ""}): their '
                     'figures are far less certain than they look.')
    if plantvillage:
        lines += [
            '- Explanations (`plant-disease explain`) put the heatmap peak on the leaf for '
            'most test photos, but for some (a Tomato healthy photo, for one) occlusion '
            'finds the score resting on a background corner: the background bias of these '
            'photos, visible in the model.',
            '- Potato healthy has about 125 distinct leaves (augmented copies), so its '
            'figures are less certain than the others.',
        ]
    commands = [command for command in (train_command, export_command, evaluate_command)
                if command]
    lines += ['', '## Reproduce', '']
    lines += (['```bash', *commands, '```'] if commands else [
        f'Every option of the run is in `{run_dir / "train_summary.json"}` (`options`); the '
        'split is its `split.json`.'])
    lines += [
        '',
        '## Data attribution and licences',
        '',
        ATTRIBUTION if plantvillage else
        f'The photos are those of `{split["root"]}`; their sources and licences are their '
        "owner's to state here.",
        '',
    ]
    if any(starts_from_shipped(phase) for phase in phases):
        from plant_disease_ros.training.field_model_card import FIELD_ATTRIBUTION

        # The shipped model's own data (lab photos, field photos, non-leaf scenes).
        lines += [SHIPPED_START, '', ATTRIBUTION, '', FIELD_ATTRIBUTION, '']
    return write_text_atomic(out_path, '\n'.join(lines))
