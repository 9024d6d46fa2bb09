"""Model card of a field-fit model: per-domain figures and what it is still bad at.

Rendered from a field-fit run (``train_summary.json``, ``field_split.json``,
``split.json``), its per-domain evaluation (``plant-disease evaluate --field-split``),
optionally the same evaluation of the model it replaces, and latency measurements.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np

from plant_disease_ros.core.atomic_files import write_text_atomic
from plant_disease_ros.core.crops import DEFAULT_OTHER_CROPS_WEIGHT
from plant_disease_ros.training.calibration import PRE_CHOICE_OBJECTIVE
from plant_disease_ros.training.field_evaluate import (
    format_interval,
    top1_interval,
    wrong_map_points,
)
from plant_disease_ros.training.metrics import wilson_interval
from plant_disease_ros.training.model_card import input_description, model_tensors

FIELD_ATTRIBUTION = """\
Field photos (`../shared/data/field/`):

- `plantdoc/`: PlantDoc (Singh et al., "PlantDoc: A Dataset for Visual Plant Disease
  Detection", CoDS-COMAD 2020), through the Roboflow "PlantDoc v1 resize-416x416" export
  (GitHub copy RoboKids007/AIPlantGrowthDetection), CC BY 4.0.
- `pp2021_apple/`: Plant Pathology 2021 (FGVC8, Cornell), through the GitHub copy
  dvdsaz/DataScience of the competition's 256 px training images. The copy has no licence
  file; the photos were released by their authors for research through the FGVC8
  competition, and the weights derived from them are offered on the same footing.

Non-leaf scenes (`../shared/data/negatives/`, used to train and test the rejection only):
Phantom-fs/Soil-Classification-Dataset (CC BY-NC 4.0), EricEchemane/Soil-type-classifier
(MIT), rajaharis/Soil-And-Weeds-Detection (no licence stated), the CCSN and GCD cloud
photos in tmgdarshan/cloud-classification-cnn-mobile (no licence stated), the Multi-class
Weather Dataset copy in talalahmad27/Image-Classification-Using-Pretrained-models (no
licence stated), sergeyvilov/plant_seedings (no licence stated), kagan94/road_image_datasets
(no licence stated) and jeffThompson/Pebble-Dataset (GPL-3.0). Because some of these are
non-commercial or unlicensed, check them before any commercial use of the weights."""

# What the score temperature was fitted to (train_summary's calibration_objective).
CALIBRATION_OBJECTIVES = {
    'nll': 'the negative log-likelihood',
    'domain-ece': 'the mean of the per-domain expected calibration errors (ECE)',
    'adaptive': 'the negative log-likelihood',
}

# Lab classes of which the field sets hold no photo.
NO_FIELD_PHOTOS_NOTE = ('PlantDoc has no photos of Apple black rot, Orange HLB, Strawberry '
                        'leaf scorch, Tomato target spot, spider mites or Potato healthy')


def _ordinal(number: int) -> str:
    suffix = 'th' if 10 <= number % 100 <= 20 else {1: 'st', 2: 'nd', 3: 'rd'}.get(
        number % 10, 'th')
    return f'{number}{suffix}'


def _pct(value: float | None) -> str:
    return '–' if value is None else f'{100.0 * value:.1f} %'


def _split_counts(entry: dict) -> dict[str, list[int]]:
    counts = {name: [0, 0, 0] for name in entry['classes']}
    for column, part in enumerate(('train', 'val', 'test')):
        for _, index in entry['splits'][part]:
            counts[entry['classes'][index]][column] += 1
    return counts


def data_section(field_split: dict, lab_split: dict) -> list[str]:
    """Return the data and split section: lab split sizes and the field split per domain."""
    lab = {part: len(lab_split['splits'][part]) for part in ('train', 'val', 'test')}
    fractions = next(iter(field_split['domains'].values()))['fractions']
    lines = [
        '## Data and split', '',
        f'- Lab: `{lab_split["root"]}`, {sum(lab.values())} photos of single leaves on a '
        f"plain background, {len(lab_split['classes'])} classes; the lab model's split "
        f"(`split.json`, seed "
        f'{lab_split["seed"]}) unchanged: train {lab["train"]}, validation {lab["val"]}, '
        f'test {lab["test"]}.',
        f'- Field and non-leaf photos: split per folder, stratified and seeded (seed '
        f'{field_split["seed"]}), into `field_split.json` (validation '
        f'{fractions["val"]:g}, test {fractions["test"]:g} of each folder).',
        '- Synthetic non-leaf frames (uniform colours, uniform green, black, over-exposed, '
        'heavy blur, noise, grass, soil, sky, pipes, plastic mulch, fences) are drawn on the '
        'fly for training; validation and test use fixed seeded sets.',
        '- Test photos of every domain were never used for training, the choice of the '
        "run's checkpoint, temperature or int8 calibration (choosing among finished runs is "
        'another matter: see how this model was chosen, where the card says).',
        '',
        '| domain | folder | train | val | test |',
        '| --- | --- | ---: | ---: | ---: |',
    ]
    for name, entry in field_split['domains'].items():
        for folder, (train, val, test) in _split_counts(entry).items():
            lines.append(f'| {name} | {folder} | {train} | {val} | {test} |')
    return lines + ['']


def grew_the_network(summary: dict) -> bool:
    """Return whether a run grew its start model's resnet_lite into resnet_lite_deep.

    Runs record the start model's architecture (``init_architecture``) since it is; for an
    earlier one, ``--architecture resnet_lite_deep`` given is taken to have grown it (as
    :func:`start_sentence` says), and a run that took its start model's network did not.
    """
    architecture = (summary.get('model') or {}).get('architecture') \
        or summary['options'].get('architecture')
    started = summary.get('init_architecture')
    if started is not None:
        return started != architecture
    return architecture == 'resnet_lite_deep' \
        and summary['options'].get('architecture') == 'resnet_lite_deep'


def network_description(summary: dict) -> str:
    """Say what the run's network is made of: its start model's, grown or not, and the head.

    A start model with as many outputs as the run (``init_outputs``) is a field model whose
    head the run kept; another is a lab model, given a new head (as :func:`start_sentence`).
    """
    outputs = len(summary['classes'])
    kept = summary.get('init_outputs') == outputs
    text = f"the {'field' if kept else 'lab'} model's network"
    if grew_the_network(summary):
        text += ' grown by a second stage-3 block,'
    return text + (f' with its {outputs}-output head kept' if kept else ' with a new head')


def float_model_name(evaluation: dict, run_dir: Path, model_path: str | Path) -> str:
    """Return the float model beside the int8 one: the one the evaluation scored (--keras).

    Its file name when it lies beside the int8 model (the shipped pair), else its path. An
    evaluation that records none: the shipped name when that file is beside the int8
    model, else the run's ``model.keras``.
    """
    folder = Path(model_path).resolve().parent
    record = evaluation.get('keras_model')
    if isinstance(record, dict) and record.get('path'):
        path = Path(record['path'])
    elif (folder / 'plant_disease_float.keras').is_file():
        path = folder / 'plant_disease_float.keras'
    else:
        path = run_dir / 'model.keras'
    return path.name if path.resolve().parent == folder else str(path)


def start_sentence(summary: dict) -> str:
    """Say what the run started from, and whether a lab teacher took part."""
    options = summary['options']
    outputs = len(summary['classes'])
    if summary.get('init_outputs') == outputs:
        text = (f'Fine-tuned from the field model `{options["init_weights"]}` (all layers, '
                f'its {outputs}-output head kept).')
    else:
        text = (f'Transfer from the lab model `{options["init_weights"]}` (all layers; the '
                f'head replaced by {outputs} outputs, the lab rows copied, `no_leaf` started '
                'near zero).')
    if options.get('architecture') == 'resnet_lite_deep':
        text += (' Run with `--architecture resnet_lite_deep`: a resnet_lite network grows a '
                 'second stage-3 block that starts as the identity (its last BatchNorm scale '
                 'zero), for more capacity at the same input size.')
    start_size, size = summary.get('init_input_size'), options.get('input_size')
    if start_size and size and start_size != size:
        text += (f' Run at {size}×{size} px, where its start model took {start_size} px: the '
                 'network has no layer tied to the frame size, so the same weights see '
                 f'{"finer" if size > start_size else "coarser"} detail and the fine-tune '
                 'adapts them to it.')
    if options.get('distill_from'):
        text += (f' The plain lab rows of each batch learn from targets blended with the '
                 f'scores of the lab model `{options["distill_from"]}` (weight '
                 f'{options["distill_weight"]:g}, softened with temperature '
                 f'{options["distill_temperature"]:g}), so the field fit keeps what it '
                 'knew about lab leaves.')
    if (options.get('pose_distill') or 0) > 1:
        text += (' The field and composited lab rows learn from targets blended with the '
                 f'start model\'s own scores averaged over {options["pose_distill"]} '
                 'right-angle poses of the frame (weight '
                 f'{options.get("pose_distill_weight", 0.5):g}), so one pass learns what '
                 'the pose mean knows.')
    return text


def read_stage_summary(path: str | Path) -> dict:
    """Return the training summary of a stage: a run folder's, or a summary JSON file.

    The file form keeps a stage's summary after its run folder is gone
    (``models/stages/``).
    """
    path = Path(path)
    return json.loads((path / 'train_summary.json' if path.is_dir() else path).read_text())


def streak_clause(options: dict) -> str:
    """Say how many frames a run smeared with a motion streak, or '' if none."""
    augment = options.get('augment', {})
    share = augment.get('motion_blur_probability') or 0.0
    if share <= 0:
        return ''
    return (f', a motion streak of 3 to {augment["motion_blur_max_px"]} px along the rows or '
            f'the columns on {100 * share:.0f} % of the frames (a camera moving during the '
            'exposure)')


def earlier_section(summaries: list[dict]) -> list[str]:
    """Return one paragraph per earlier stage (oldest first): start, recipe, best epoch."""
    if not summaries:
        return []
    lines = ['Earlier stages, oldest first:', '']
    for number, summary in enumerate(summaries, 1):
        options = summary['options']
        best = summary.get('best_val_domains', {})
        augment = options.get('augment', {}).get('photometric_probability')
        lines.append(
            f'{number}. {start_sentence(summary)} {summary["epochs_run"]} epochs of '
            f'{options["steps_per_epoch"]} batches, peak rate {options["learning_rate"]:g}'
            + (f', photometric jitter on {100 * augment:.0f} % of frames'
               if augment is not None else '')
            + streak_clause(options)
            + f', {summary["train_seconds"] / 60:.0f} min; best epoch {summary["best_epoch"]} ('
            + ', '.join(f'{name} {_pct(value)}' for name, value in best.items()) + ').')
    return lines + ['']


def training_section(summary: dict) -> list[str]:
    """Return the training section of a field-fit run."""
    options = summary['options']
    mix = options['mix']
    best = summary.get('best_val_domains', {})
    calibration = summary.get('calibration', {})
    lines = [
        '## Training', '',
        start_sentence(summary)
        + f' {summary["epochs_run"]} epochs (of at most {options["epochs"]})'
        f' of {options["steps_per_epoch"]} batches of {options["batch_size"]}, Adam with a '
        f'one-epoch warm-up to {options["learning_rate"]:g} and cosine decay, label smoothing '
        f'{options["label_smoothing"]:g}'
        + (f', weights scored and kept as their moving average (momentum '
           f'{options["ema_momentum"]:g})' if options.get('ema_momentum') else '')
        + (f', CutMix on {100 * options["cutmix"]:.0f} % of the field and composited lab '
           'rows (a box of another such frame pasted in, targets mixed by area)'
           if options.get('cutmix') else '')
        + streak_clause(options)
        + f'; {summary["train_seconds"] / 60:.0f} min on this '
        f'machine\'s CPU ({summary["seconds_per_epoch"]:.0f} s an epoch, TensorFlow '
        f'{summary["tensorflow"]}). Best checkpoint by the mean validation accuracy over the '
        f'domains: epoch {summary["best_epoch"]} ('
        + ', '.join(f'{name} {_pct(value)}' for name, value in best.items()) + ').',
        '',
        'Each batch is drawn from a class-balanced mixture (within each source a class of '
        'a domain is drawn first, then a photo, so a PlantDoc class of 30 photos counts as '
        'much as an orchard class of 300; a class in two field domains, as the apple ones, '
        'is drawn twice as often as a class in one): '
        + ', '.join(f'{name.replace("_", " ")} {100 * share / sum(mix.values()):.0f} %'
                    for name, share in mix.items()) + '. '
        'Lab leaves are cut from their plain background (colour distance to the border, '
        'Otsu threshold, largest component) and pasted, turned, scaled and sometimes cut by '
        'the frame edge, onto non-leaf photos and synthetic clutter, so the backdrop no '
        'longer tells the class. Every frame then gets crop and zoom, the eight right-angle '
        'poses, exposure, contrast, saturation, white balance and gamma jitter, and at times '
        'blur, sensor noise and JPEG re-encoding.',
        '',
        f'Calibration: a temperature of {summary["temperature"]:.3f} fitted on the validation '
        'photos of all domains (each domain weighted equally) by minimising '
        + CALIBRATION_OBJECTIVES[summary.get('calibration_objective', PRE_CHOICE_OBJECTIVE)]
        + ', folded into the last layer before the softmax'
        + (', then a per-frame scale of the logits, exp(b + w · logits), fitted the same way '
           '(it sharpens confident, lab-like frames and softens the flat scores of unfamiliar '
           'field photos, which one temperature cannot do together; the ranking of the labels '
           'stays, so in float top-1 does not change; int8 rounds the scaled logits once '
           'more, which can move a few frames) and put into the int8 graph before its softmax'
           if summary.get('score_scaling') else '')
        + ', so the int8 scores '
        'are calibrated on the robot with no code change. Validation ECE before → after: '
        + '; '.join(f'{name} {_pct(values["val_ece_before"])} → '
                    f'{_pct(values["val_ece_after"])}'
                    for name, values in calibration.items()) + '.',
        '',
        '![training curves](training_curves.png)',
        '',
    ]
    return lines


def domain_table(evaluation: dict, baseline: dict | None) -> list[str]:
    """Return the per-domain test table (and the replaced model's figures beside it)."""
    threshold = evaluation['score_threshold']
    header = ('| domain | test frames | top-1 | 95 % interval | top-3 | macro F1 | rejected '
              '| wrongly accepted | ECE |')
    rule = '| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |'
    if baseline:
        header += ' previous model: top-1 | rejected |'
        rule += ' ---: | ---: |'
    lines = [
        '## Test figures per domain (int8 model, held-out test photos)', '',
        f'"Rejected" counts frames labelled `no_leaf` or scored below {threshold:g} (the '
        "nodes' `score_threshold`): for leaf domains a loss, for non-leaf domains the wanted "
        'answer. For non-leaf domains top-1 is the share labelled `no_leaf`. "Wrongly '
        'accepted": frames that put a wrong point on the disease map (a leaf accepted with a '
        'wrong label, a non-leaf frame accepted as a leaf). ECE: expected '
        'calibration error of the top-1 score, 15 bins. The 95 % interval (Wilson) says how '
        'far top-1 may lie from these figures on other photos of the same kind: the field '
        'test sets are small. To tell whether a new model or setting beats these figures, '
        'compare the two evaluations photo by photo with `plant-disease compare`.', '',
        header, rule,
    ]
    for name, report in evaluation['domains'].items():
        negative = report['negative']
        row = (f'| {name} | {report["photos"]} | {_pct(report["top1"])} | '
               f'{format_interval(top1_interval(report))} % | '
               f'{"–" if negative else _pct(report["top3"])} | '
               f'{"–" if negative else format(report["macro_f1"], ".3f")} | '
               f'{_pct(report["rejected"])} | {_pct(wrong_map_points(report))} | '
               f'{_pct(report["ece"])} |')
        if baseline:
            previous = baseline['domains'].get(name)
            row += (f' {_pct(previous["top1"])} | {_pct(previous["rejected"])} |'
                    if previous else ' – | – |')
        lines.append(row)
    lines.append('')
    for name, report in evaluation['domains'].items():
        if not report['negative']:
            lines.append(f'- {name}: {_pct(report["rejected_no_leaf"])} of the leaves '
                         f'labelled `no_leaf`, {_pct(report["rejected_below_threshold"])} '
                         f'below {threshold:g}; top-1 among accepted leaves '
                         f'{_pct(report["accepted_top1"])}.')
        else:
            lines.append(f'- {name}: {_pct(report["labelled_no_leaf"])} labelled `no_leaf`, '
                         f'{_pct(report["below_threshold"])} more below {threshold:g}; '
                         f'{_pct(report["wrongly_accepted"])} wrongly accepted as a leaf.')
        if 'float_top1' in report:
            lines[-1] += (f' Float twin top-1 {_pct(report["float_top1"])}, int8/float '
                          f'agreement {_pct(report["int8_float_agreement"])}.')
    lines += ['', '![reliability](reliability.png)', '',
              'What each `score_threshold` would reject and let onto the map, per domain '
              '(the nodes default to 0.5; a field team can move it along these curves):', '',
              '![score thresholds](thresholds.png)', '']
    lines += [f'![{name}]({report["confusion_png"]})'
              for name, report in evaluation['domains'].items()]
    return lines + ['']


def paired_comparison(base_dir: str | Path, other_dir: str | Path) -> dict | None:
    """Return the photo-by-photo comparison of two evaluation folders (``compare``).

    None when either folder has no ``predictions.csv`` (an evaluation written before it):
    the card then shows the figures without the paired test.
    """
    from plant_disease_ros.training.compare import compare_evaluations, read_evaluation

    if not all((Path(folder) / 'predictions.csv').is_file()
               for folder in (base_dir, other_dir)):
        return None
    return compare_evaluations(read_evaluation(base_dir), read_evaluation(other_dir))


def _paired_cell(comparison: dict | None, name: str) -> str:
    """Return 'fixed / broken, p' of one domain of a comparison, or '–'."""
    domain = (comparison or {}).get('domains', {}).get(name)
    if domain is None:
        return '–'
    p_value = domain['top1_p']
    shown = '< 0.001' if p_value < 0.001 else f'{p_value:.3f}'
    return f'{domain["fixed"]} / {domain["broken"]}, p {shown}'


PAIRED_NOTE = ('"Fixed / broken": test frames only this setting / only the default gets '
               'right; p: the exact McNemar test on them (`plant-disease compare`). A gain '
               'is clear of luck only where p is below 0.05: the field test sets are small.')


def crops_section(evaluation: dict, told: dict,
                  comparison: dict | None = None) -> list[str]:
    """Return the figures of a robot told its crop beside those of the default.

    ``told`` is an evaluation with ``--crops`` of the photos ``evaluation`` scored with
    every crop; ``comparison``: the two compared photo by photo (:func:`paired_comparison`),
    for a column of frames fixed and broken.
    """
    crops = told.get('crops', 'all')
    weight = told.get('other_crops_weight', DEFAULT_OTHER_CROPS_WEIGHT)
    how = ('each leaf photo scored given its own crop, each non-leaf frame given the crop '
           'under which it looks most like a leaf' if crops == 'known'
           else f'every frame scored given the crops {crops}')
    lines = [
        '## Told the crop of the field (`crops`)', '',
        "A robot that knows which crop it drives sets the classifier's `crops` parameter "
        "(`Apple`, `Tomato, Potato`): the labels of other crops are never published, and the "
        "scores become the model's probabilities under a prior that favours those crops "
        f"(`other_crops_weight` {weight:g}: a leaf the model takes for another plant's "
        'keeps a low score and stays `unknown`). Same model, same test photos as above, '
        f'{how}:', '',
        '| domain | top-1, every crop | top-1, told the crop | '
        + ('fixed / broken | ' if comparison else '')
        + 'rejected | wrongly accepted | ECE |',
        '| --- | ---: | ---: |' + (' ---: |' if comparison else '') + ' ---: | ---: | ---: |',
    ]
    for name, report in told['domains'].items():
        default = evaluation['domains'].get(name)
        lines.append(f'| {name} | {_pct(default["top1"]) if default else "–"} | '
                     f'{_pct(report["top1"])} | '
                     + (f'{_paired_cell(comparison, name)} | ' if comparison else '')
                     + f'{_pct(report["rejected"])} | '
                     f'{_pct(wrong_map_points(report))} | {_pct(report["ece"])} |')
    lines += ['', '`crops` is empty (every crop) by default, so the figures of the section '
              'before are what a robot gets until it is told its crop. Telling it helps where '
              'the model confuses crops (field photos); it cannot help between the diseases '
              'of one crop.' + (' ' + PAIRED_NOTE if comparison else ''), '']
    return lines


def _setting(report: dict) -> str:
    """Name what an evaluation was scored as: its poses and crops."""
    poses = int(report.get('poses', 1))
    text = f'{poses} poses' if poses > 1 else 'one pass'
    crops = report.get('crops', 'all')
    if crops == 'known':
        return text + ', told the crop'
    return text if crops == 'all' else f'{text}, crops {crops}'


def poses_section(evaluation: dict, posed: list[dict],
                  comparisons: list[dict | None] | None = None) -> list[str]:
    """Return the figures of the same photos scored with ``test_time_poses`` above 1.

    ``posed`` are evaluations with ``--poses`` (and possibly ``--crops``) of the photos
    ``evaluation`` scored in one pass; each gets a top-1 / rejected / wrongly accepted
    column. ``comparisons``: each of them compared photo by photo with ``evaluation``
    (:func:`paired_comparison`; None where unknown), for a table of frames fixed and broken.
    """
    lines = [
        '## More poses per frame (`test_time_poses`)', '',
        "With the classifier's `test_time_poses` above 1 each frame is scored in that many "
        'right-angle poses (turned, mirrored) and the scores are averaged. The model was '
        'trained on all eight poses, so where it answers one pose differently from another '
        'the mean is the better-ranked answer. Each pose costs one more invoke. Same model, '
        'same test photos as above; each cell is top-1 / rejected / wrongly accepted:', '',
        '| domain | one pass | ' + ' | '.join(_setting(report) for report in posed) + ' |',
        '| --- | ---: |' + ' ---: |' * len(posed),
    ]
    for name in evaluation['domains']:
        cells = []
        for report in [evaluation, *posed]:
            domain = report['domains'].get(name)
            cells.append('–' if domain is None else
                         f'{_pct(domain["top1"])} / {_pct(domain["rejected"])} / '
                         f'{_pct(wrong_map_points(domain))}')
        lines.append(f'| {name} | ' + ' | '.join(cells) + ' |')
    if comparisons and any(comparisons):
        lines += ['', 'Against one pass, photo by photo (frames fixed / broken, p):', '',
                  '| domain | ' + ' | '.join(_setting(report) for report in posed) + ' |',
                  '| --- |' + ' ---: |' * len(posed)]
        for name in evaluation['domains']:
            lines.append(f'| {name} | ' + ' | '.join(
                _paired_cell(comparison, name) for comparison in comparisons) + ' |')
        lines += ['', PAIRED_NOTE]
    lines += ['', '`test_time_poses` is 1 by default: the figures before are what a robot gets '
              'at one invoke a frame.', '']
    return lines


def per_class_tables(evaluation: dict) -> list[str]:
    """Return one F1/recall table with a column pair per leaf domain, and per-kind rejection."""
    leaf = {name: report for name, report in evaluation['domains'].items()
            if not report['negative']}
    rows: dict[str, dict[str, dict]] = {}
    for name, report in leaf.items():
        for row in report['per_class']:
            rows.setdefault(row['class'], {})[name] = row
    lines = ['## Per class', '',
             '| class | ' + ' | '.join(f'{name} P / R / F1 (n)' for name in leaf) + ' |',
             '| --- |' + ' ---: |' * len(leaf)]
    for label in evaluation['labels']:
        if label not in rows:
            continue
        cells = []
        for name in leaf:
            row = rows[label].get(name)
            if row is None:
                cells.append('–')
            elif not row['support']:
                cells.append('no such photo; false alarms only')
            else:
                cells.append(f'{row["precision"]:.2f} / {row["recall"]:.2f} / '
                             f'{row["f1"]:.2f} ({row["support"]})')
        lines.append(f'| {label} | ' + ' | '.join(cells) + ' |')
    negative = {name: report for name, report in evaluation['domains'].items()
                if report['negative']}
    lines += ['', '| non-leaf domain | kind | frames | rejected |', '| --- | --- | ---: | ---: |']
    for name, report in negative.items():
        for kind, values in report['per_kind'].items():
            lines.append(f'| {name} | {kind} | {values["photos"]} | '
                         f'{_pct(values["rejected"])} |')
    return lines + ['']


def still_bad_at(evaluation: dict, baseline: dict | None = None) -> list[str]:
    """Return the plain-language list of what the model still gets wrong."""
    domains = evaluation['domains']
    previous = (baseline or {}).get('domains', {})
    lines = ['## What it is still bad at', '']
    for name, report in domains.items():
        if report['negative'] or name == 'lab':
            continue
        weak = [f'{row["class"]} (recall {row["recall"]:.2f})' for row in report['per_class']
                if row['support'] and row['recall'] < 0.5]
        lines.append(
            f'- {name} field photos: right {_pct(report["top1"])} of the time and '
            f'{_pct(report["rejected"])} of the leaves rejected. '
            + (f'Weakest: {", ".join(weak)}.' if weak else 'No class under 0.5 recall.'))
    lab = domains.get('lab')
    if lab:
        before = previous.get('lab')
        lines.append(f'- Lab photos: {_pct(lab["top1"])} top-1'
                     + (f' (the lab-only model: {_pct(before["top1"])})' if before else '')
                     + f', and {_pct(lab["rejected"])} of these easy leaves are rejected'
                     + (f' ({_pct(before["rejected"])} before)' if before else '')
                     + ': some lab accuracy was traded for the field.')
    for name, report in domains.items():
        if not report['negative']:
            continue
        leaky = [f'{kind} ({_pct(1 - values["rejected"])} accepted)'
                 for kind, values in report['per_kind'].items() if values['rejected'] < 0.9]
        accepted_as = ', '.join(f'{label} ({count})'
                                for label, count in list(report['accepted_as'].items())[:3])
        lines.append(f'- {name} non-leaf frames: {_pct(report["wrongly_accepted"])} still '
                     'accepted as a leaf'
                     + (f'; named {accepted_as}' if accepted_as else '')
                     + (f'. Leakiest kinds: {", ".join(leaky)}.' if leaky else '.'))
    badly_calibrated = [f'{name} ({_pct(report["ece"])})' for name, report in domains.items()
                        if report['ece'] > 0.1]
    if badly_calibrated:
        lines.append('- Calibration is fitted on all domains together: scores are still '
                     'off by more than 10 points (ECE) on ' + ', '.join(badly_calibrated)
                     + '.')
    under, over = [], []
    for name, report in domains.items():
        if report['negative'] or 'mean_confidence' not in report:
            continue
        gap = report['mean_confidence'] - report['top1']
        if abs(gap) > 0.05:
            (over if gap > 0 else under).append(
                f'{name} (mean score {report["mean_confidence"]:.2f}, '
                f'{_pct(report["top1"])} right)')
    if under:
        lines.append('- Under-confident on ' + ', '.join(under) + ': right answers fall '
                     'below `score_threshold` and become `unknown` more often than they '
                     'should.')
    if over:
        lines.append('- Over-confident on ' + ', '.join(over) + ': a score there means '
                     'less than it says.')
    supports = [row['support'] for name, report in domains.items()
                if not report['negative'] and name != 'lab'
                for row in report['per_class'] if row['support']]
    lines += [
        f'- Classes without field photos are learned from lab leaves pasted into field '
        f'scenes only: {NO_FIELD_PHOTOS_NOTE}. Their field accuracy is unmeasured.',
        '- PlantDoc photos are web photos (hands, stock photos, a few drawings), not robot '
        'frames. '
        + (f'The field test sets are small ({min(supports)}–{max(supports)} photos a '
           'class), so a class figure moves by several points with one photo. '
           if supports else '')
        + "No photo from the robot's own camera was used: measure on it before relying "
        'on the model.',
        '- `no_leaf` knows soil, sky, gravel, weeds, clutter and the synthetic kinds; other '
        'plants (other crops, weeds close up) can still be named as a disease, and a '
        'frame with a small leaf among clutter may be rejected.',
        '- One label per frame: a frame with two diseased leaves gets one answer.',
        '',
    ]
    return lines


def motion_blur_lines(evaluations: list[dict]) -> list[str]:
    """Return the still-bad-at bullet on motion blur: top-1 and wrong map points by smear.

    ``evaluations``: the same test photos as the same camera's frames (``evaluate --frames
    WxH``), exactly one of them sharp and the others with ``--motion-blur PX``. Raises
    ValueError when they are not that.
    """
    from plant_disease_ros.training.compare import frames_but_smear, smear_of

    def smear_px(evaluation: dict) -> int:
        return smear_of(evaluation, 'a --frames-evaluation')

    sharp = [evaluation for evaluation in evaluations if smear_px(evaluation) <= 1]
    smeared = sorted((evaluation for evaluation in evaluations if smear_px(evaluation) > 1),
                     key=smear_px)
    if len(sharp) != 1 or not smeared:
        raise ValueError('--frames-evaluation needs one evaluation of sharp frames and at '
                         'least one with --motion-blur')
    base = sharp[0]

    for evaluation in smeared:
        if (frames_but_smear(evaluation) != frames_but_smear(base)
                or evaluation['model_sha256'] != base['model_sha256']):
            raise ValueError(f'the --frames-evaluation at {smear_px(evaluation)} px is not of '
                             'the same model, photos, camera and settings as the sharp one')
    leaf = [name for name, report in base['domains'].items() if not report['negative']]
    camera = base['camera']

    def cell(report: dict) -> str:
        return f'{100 * report["top1"]:.1f} / {100 * report["accepted_wrong"]:.1f}'

    lines = [f'- Motion blur: the test photos as {camera["width"]}×{camera["height"]} camera '
             'frames, sharp and smeared along their rows as a camera moving during the '
             'exposure smears them (`evaluate --frames --motion-blur`). Top-1 / wrong map '
             'points, %:', '',
             '  | domain | sharp | ' + ' | '.join(f'{smear_px(evaluation)} px'
                                                 for evaluation in smeared) + ' |',
             '  | --- | ---: | ' + ' | '.join('---:' for _ in smeared) + ' |']
    for name in leaf:
        lines.append(f'  | {name} | {cell(base["domains"][name])} | '
                     + ' | '.join(cell(evaluation['domains'][name]) for evaluation in smeared)
                     + ' |')
    longest = smeared[-1]

    def frames_more(key: str) -> int:
        return round(sum(report['photos'] * (longest['domains'][name][key] - report[key])
                         for name, report in base['domains'].items() if name in leaf))

    wrong, rejected = frames_more('accepted_wrong'), frames_more('rejected')
    verdict = ('a smear turns more leaves into wrong map points than into `unknown` or '
               '`no_leaf`' if wrong > rejected else
               'more of the lost leaves become `unknown` or `no_leaf` than wrong map points')
    lines += ['', f'  At {smear_px(longest)} px the leaf domains have {wrong:+d} frames with '
              f'a wrong map point and {rejected:+d} rejected against sharp frames: '
              f'{verdict}. `disease_classifier` estimates the smear and warns in '
              "`/diagnostics` above `motion_blur_warn_percent` of the classified image's "
              'side. Radial blur (a camera looking ahead), defocus and a fogged lens are '
              'unmeasured.']
    return lines


def latency_section(latency: list[dict], reference: list[dict] | None,
                    machine: str, backend: str) -> list[str]:
    """Return the latency table, with the replaced model's timings when measured."""
    lines = ['## Latency', '',
             f'Bare `invoke()` of the int8 model, {machine} ({backend}):', '']
    if reference:
        lines += ['| threads | p50 | p95 | previous model p50 | p95 | ratio (p50) |',
                  '| ---: | ---: | ---: | ---: | ---: | ---: |']
        for row, old in zip(latency, reference, strict=False):
            lines.append(f'| {row["threads"]} | {row["p50_ms"]:.2f} ms | {row["p95_ms"]:.2f} '
                         f'ms | {old["p50_ms"]:.2f} ms | {old["p95_ms"]:.2f} ms | '
                         f'{row["p50_ms"] / old["p50_ms"]:.2f} |')
    else:
        lines += ['| threads | p50 | p95 |', '| ---: | ---: | ---: |']
        lines += [f'| {row["threads"]} | {row["p50_ms"]:.2f} ms | {row["p95_ms"]:.2f} ms |'
                  for row in latency]
    return lines + ['']


def near_duplicate_lines(near_duplicates: dict, predictions: list[dict[str, str]],
                         source: str) -> list[str]:
    """Return the still-bad-at bullet on test photos that are copies of training photos.

    ``near_duplicates`` maps each domain to ``{test photo path: {'train', 'how',
    'same_label'}}`` (paths under the data root, ending in the photo's path in its domain
    folder, as ``predictions.csv`` names it); top-1 is given without them per domain.
    """
    parts = []
    clean = []
    for domain, copies in near_duplicates.items():
        if not isinstance(copies, dict):
            continue
        rows = [row for row in predictions if row['domain'] == domain]
        if not rows:
            continue
        if not copies:
            clean.append(domain)
            continue
        # A row's frame is the photo's path in its domain folder: it ends one copy's path.
        kept = [row for row in rows
                if not any(path.endswith('/' + row['frame']) for path in copies)]
        copied = len(rows) - len(kept)
        same = sum(bool(entry.get('same_label')) for entry in copies.values())
        right = sum(row['correct'] == '1' for row in kept)
        everything = sum(row['correct'] == '1' for row in rows)
        low, high = wilson_interval(right, len(kept))
        parts.append(
            f"{domain} {copied:,} of {len(rows):,} ({same} with the training copy's label): "
            f'top-1 without them {100 * right / len(kept):.1f} % ({100 * low:.1f}–'
            f'{100 * high:.1f} %) against {100 * everything / len(rows):.1f} % with them')
    if not parts:
        return []
    text = ('- Some test photos are the same picture as a training photo (turned, mirrored, '
            f're-cropped or an augmented copy; listed in `{source}`): ' + '; '.join(parts) + '.')
    crowded = _copied_classes(near_duplicates, predictions)
    if crowded:
        text += (' They crowd in a few classes, whose per-class recall is then mostly a '
                 'measure of remembering: ' + ', '.join(crowded) + '.')
    if clean:
        text += f' The {" and ".join(clean)} test photos have none.'
    return [text]


def _copied_classes(near_duplicates: dict, predictions: list[dict[str, str]]) -> list[str]:
    """Return '<domain> <class> (n of m)' for classes whose test photos are half copies."""
    found = []
    for domain, copies in near_duplicates.items():
        if not isinstance(copies, dict) or not copies:
            continue
        per_class: dict[str, list[bool]] = {}
        for row in predictions:
            if row['domain'] == domain and row.get('truth'):
                copied = any(path.endswith('/' + row['frame']) for path in copies)
                per_class.setdefault(row['truth'], []).append(copied)
        for name, flags in sorted(per_class.items()):
            if len(flags) >= 5 and 2 * sum(flags) >= len(flags):
                found.append(f'{domain} {name} ({sum(flags)} of {len(flags)})')
    return found


def selection_lines(text: str) -> list[str]:
    """Return the card's section on how the model was chosen among finished runs."""
    return ['## How this model was chosen', '', text.strip(), '']


def write_field_model_card(run_dir: str | Path, evaluation_dir: str | Path,
                           out_path: str | Path, model_path: str | Path,
                           latency: list[dict], lab_attribution: str,
                           baseline_dir: str | Path | None = None,
                           reference_latency: list[dict] | None = None,
                           commands: str = '',
                           earlier_runs: list[str | Path] | None = None,
                           crops_dir: str | Path | None = None,
                           poses_dirs: list[str | Path] | None = None,
                           near_duplicates: str | Path | None = None,
                           frames_dirs: list[str | Path] | None = None,
                           selection: str | Path | None = None) -> Path:
    """Render the field-fit model card to ``out_path`` (``earlier_runs``: oldest first).

    ``selection``: a Markdown file on how this model was chosen among finished runs (for
    instance runs turned down on test figures), put after the test figures.

    ``crops_dir``: an evaluation of the same photos with ``--crops`` (known), for the
    figures of a robot told its field's crop; ``poses_dirs``: evaluations with ``--poses``
    (and possibly ``--crops``), for those of a robot averaging poses; ``near_duplicates``:
    the test photos that are copies of training photos (:func:`near_duplicate_lines`);
    ``frames_dirs``: evaluations of the test photos as camera frames, sharp and smeared
    (:func:`motion_blur_lines`).
    """
    run_dir, evaluation_dir = Path(run_dir), Path(evaluation_dir)
    summary = json.loads((run_dir / 'train_summary.json').read_text())
    evaluation = json.loads((evaluation_dir / 'evaluation.json').read_text())
    field_split = json.loads((run_dir / 'field_split.json').read_text())
    lab_split = json.loads((run_dir / 'split.json').read_text())
    baseline = None
    if baseline_dir and (Path(baseline_dir) / 'evaluation.json').exists():
        baseline = json.loads((Path(baseline_dir) / 'evaluation.json').read_text())
    model = summary['model']
    labels = summary['classes']
    size_kib = Path(model_path).stat().st_size / 1024
    model_input, model_output = model_tensors(model_path)
    lines = [
        f'# Model card: {Path(model_path).name} (field-fit)', '',
        f'A {len(labels) - 1}-class plant disease classifier with a {_ordinal(len(labels))} '
        'label, '
        '`no_leaf`, for frames without a crop leaf; fitted to field photos from the lab '
        'model, int8-quantised for CPU inference on a Raspberry Pi or Jetson through LiteRT '
        '/ TFLite. Its scores are calibrated probabilities.', '',
        '## Model', '',
        f'- Architecture: {model["architecture"]} width {model.get("width", 0.75):g}, input '
        f'{model["input_size"]}×{model["input_size"]} RGB, {summary["parameters"]:,} '
        f'parameters; {network_description(summary)}.',
        f'- Input: {input_description(model_input)} resized to the input size '
        'with area interpolation; normalisation ([-1, 1]) is inside the model.',
        f'- Output: {len(labels)} class probabilities ({np.dtype(model_output.dtype).name}), '
        'in the order of `labels.txt`; '
        f'the last is `no_leaf`. Temperature {summary["temperature"]:.3f} folded in'
        + ('; the per-frame score scale (one dense unit, an exponential and a multiply) '
           'before the softmax.' if summary.get('score_scaling') else '.'),
        f'- File: `{Path(model_path).name}`, {size_kib:.0f} KiB, full-integer int8 (weights '
        'and activations), calibrated on training photos of every domain.',
        f'- Float twin: `{float_model_name(evaluation, run_dir, model_path)}` (for Grad-CAM '
        'and agreement checks).', '',
    ]
    lines += data_section(field_split, lab_split)
    lines += training_section(summary)
    lines += earlier_section([read_stage_summary(run) for run in earlier_runs or []])
    lines += domain_table(evaluation, baseline)
    if selection is not None:
        lines += selection_lines(Path(selection).read_text(encoding='utf-8'))
    if crops_dir is not None:
        lines += crops_section(evaluation,
                               json.loads((Path(crops_dir) / 'evaluation.json').read_text()),
                               paired_comparison(evaluation_dir, crops_dir))
    if poses_dirs:
        lines += poses_section(evaluation, [
            json.loads((Path(folder) / 'evaluation.json').read_text()) for folder in poses_dirs],
            [paired_comparison(evaluation_dir, folder) for folder in poses_dirs])
    lines += per_class_tables(evaluation)
    lines += still_bad_at(evaluation, baseline)
    if near_duplicates is not None:
        from plant_disease_ros.training.compare import read_evaluation

        lines[-1:-1] = near_duplicate_lines(
            json.loads(Path(near_duplicates).read_text()),
            read_evaluation(evaluation_dir).rows, Path(near_duplicates).name)
    if frames_dirs:
        lines[-1:-1] = motion_blur_lines([
            json.loads((Path(folder) / 'evaluation.json').read_text()) for folder in frames_dirs])
    lines += latency_section(latency, reference_latency, evaluation['machine'],
                             evaluation['backend'])
    if commands:
        lines += ['## Reproduce', '', '```bash', commands.strip(), '```', '']
    lines += ['## Data attribution and licences', '', lab_attribution, '', FIELD_ATTRIBUTION,
              '']
    return write_text_atomic(out_path, '\n'.join(lines))
