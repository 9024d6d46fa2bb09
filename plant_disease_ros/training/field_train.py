"""Field-fit transfer training: lab backbone -> 21 diseases + ``no_leaf`` (TensorFlow/Keras).

Starts from a trained lab model (same architecture family and input size), replaces the
head by one with a 22nd output, ``no_leaf``, and fine-tunes everything on class-balanced
mixed batches (:mod:`field_augment`): plain and field-composited lab leaves, field
photos, non-leaf photos and synthetic non-leaf frames. After every epoch it scores the
validation photos of each domain, writes one log line and keeps the best checkpoint by
the mean of the domains' accuracies; at the end it fits a temperature on the validation
photos of all domains and folds it into the last layer, and (``adaptive``, the default)
a per-frame score scale that the export adds to the int8 model
(:class:`~plant_disease_ros.training.calibration.ScoreScaling`, kept in
``train_summary.json``).

Outputs in ``out_dir``: ``field_split.json``, ``split.json`` (a copy of the lab split),
``model_uncalibrated.keras`` (best checkpoint), ``model.keras`` (calibrated),
``labels.txt``, ``history.csv``, ``training_curves.png`` and ``train_summary.json``.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
import hashlib
import json
from pathlib import Path
import re
import shutil
import sys
import time

import numpy as np

from plant_disease_ros.core.atomic_files import replacing
from plant_disease_ros.core.output_paths import check_not_inside
from plant_disease_ros.training.calibration import (
    check_objective,
    OBJECTIVES,
    PRE_CHOICE_OBJECTIVE,
    ScoreScaling,
)
from plant_disease_ros.training.cutmix import check_cutmix_share, cutmix_rows
from plant_disease_ros.training.dataset import read_manifest
from plant_disease_ros.training.field_augment import (
    AugmentOptions,
    FieldBatchMaker,
    Pool,
    SourceMix,
    SOURCES,
)
from plant_disease_ros.training.field_data import (
    default_sources,
    domain_files,
    lab_files,
    load_domain,
    make_field_split,
    model_labels,
    NEGATIVES_DOMAIN,
    NO_LEAF,
    write_field_split,
)
from plant_disease_ros.training.progress import EpochClock, format_duration
from plant_disease_ros.training.synthetic import synthetic_set
from plant_disease_ros.training.train import class_difference
from plant_disease_ros.training.transfer import (
    source_classes,
    TransferError,
    unknown_classes_reason,
)

SYNTHETIC_DOMAIN = 'synthetic'
SYNTHETIC_VAL_SEED_OFFSET = 1000
SYNTHETIC_TEST_SEED_OFFSET = 2000
CUTMIX_STREAM = 7919  # seeds CutMix's draws apart from the batch maker's


@dataclass
class FieldTrainOptions:
    """Everything a field-fit run depends on; saved with its outputs."""

    lab_data: str
    lab_split: str
    field_data: str
    negatives: str
    init_weights: str
    out_dir: str
    input_size: int = 128
    cache_size: int = 144
    epochs: int = 30
    steps_per_epoch: int = 120
    batch_size: int = 64
    learning_rate: float = 8e-4
    warmup_learning_rate: float = 1e-4
    label_smoothing: float = 0.05
    seed: int = 42  # weights, batch draws, augmentation, synthetic frames
    split_seed: int = 42  # the field split: another --seed keeps the test photos out
    val_fraction: float = 0.15
    test_fraction: float = 0.25
    synthetic_val_per_kind: int = 10
    time_budget_min: float | None = None
    cache_dir: str | None = None
    threads: int | None = None
    architecture: str | None = None  # None: the init model's; resnet_lite_deep grows it
    distill_from: str | None = None  # the lab model whose opinion lab rows are blended with
    distill_weight: float = 0.6
    distill_temperature: float = 1.0
    pose_distill: int = 0  # >1: field and composited rows learn the start model's pose mean
    pose_distill_weight: float = 0.5
    calibration_objective: str = OBJECTIVES[0]  # nll, domain-ece, adaptive (calibration)
    ema_momentum: float | None = None  # validate and keep the weights' moving average
    cutmix: float = 0.0  # share of field and composited lab rows given a partner's patch
    mix: SourceMix = field(default_factory=SourceMix)
    augment: AugmentOptions = field(default_factory=AugmentOptions)


@dataclass
class ValidationSet:
    """Validation frames of every domain at the model's input size."""

    images: np.ndarray
    labels: np.ndarray
    domains: np.ndarray  # domain name of each frame

    def names(self) -> list[str]:
        """Return the domain names in first-seen order."""
        return list(dict.fromkeys(self.domains.tolist()))


def domain_accuracies(scores: np.ndarray, validation: ValidationSet) -> dict[str, float]:
    """Return top-1 accuracy per domain (for non-leaf domains: labelled ``no_leaf``)."""
    predicted = scores.argmax(axis=1)
    return {name: float(np.mean(predicted[validation.domains == name]
                                == validation.labels[validation.domains == name]))
            for name in validation.names()}


def prepare_data(options: FieldTrainOptions):
    """Write the manifests, decode (cached) the pools and the validation set.

    Returns ``(labels, batch_maker, validation)``.
    """
    from plant_disease_ros.training.composite import leaf_masks

    out_dir = Path(options.out_dir)
    lab_manifest = read_manifest(options.lab_split)
    labels = model_labels(lab_manifest['classes'])
    no_leaf = labels.index(NO_LEAF)
    # Every domain is scanned (and refused: no sets, no negatives, a class the lab lacks)
    # before anything is written, so a refused run leaves --out as it was.
    manifest = make_field_split(default_sources(options.field_data, options.negatives),
                                labels, options.lab_split, seed=options.split_seed,
                                val_fraction=options.val_fraction,
                                test_fraction=options.test_fraction)
    manifest['lab_split']['path'] = 'split.json'  # the copy beside it (the same bytes)
    out_dir.mkdir(parents=True, exist_ok=True)
    shutil.copyfile(options.lab_split, out_dir / 'split.json')
    write_field_split(out_dir / 'field_split.json', manifest)
    size, cache = options.cache_size, options.cache_dir

    root, files = lab_files(lab_manifest, labels, 'train', root=options.lab_data)
    lab_images, lab_labels, _ = load_domain(root, files, size, cache, 'lab train')
    lab_masks = _cached_masks(lab_images, cache, leaf_masks)
    lab_pool = Pool(lab_images, lab_labels, lab_labels, masks=lab_masks)

    field_images, field_labels, field_groups = [], [], []
    negative_pool = None
    for number, domain in enumerate(manifest['domains']):
        root, files, _ = domain_files(manifest, domain, 'train')
        images, domain_labels, files = load_domain(root, files, size, cache,
                                                   f'{domain} train')
        if domain == NEGATIVES_DOMAIN:
            # Balance over the kinds of scene (soil, sky, ...), not the single label.
            kinds = np.array([path.split('/')[0] for path, _ in files])
            _, groups = np.unique(kinds, return_inverse=True)
            negative_pool = Pool(images, domain_labels, groups)
        else:
            field_images.append(images)
            field_labels.append(domain_labels)
            field_groups.append(number * 1000 + domain_labels)
    if negative_pool is None:
        raise ValueError('the field recipe needs the negatives folder')
    field_pool = None
    if field_images:
        field_pool = Pool(np.concatenate(field_images), np.concatenate(field_labels),
                          np.concatenate(field_groups))
    maker = FieldBatchMaker(lab_pool, field_pool, negative_pool, no_leaf,
                            options.input_size, options.batch_size, options.seed,
                            mix=options.mix, augment=options.augment)
    print(f'pools: lab {len(lab_pool)}, field {len(field_pool) if field_pool else 0}, '
          f'negatives {len(negative_pool)}', file=sys.stderr, flush=True)
    validation = validation_set(manifest, lab_manifest, labels, options)
    return labels, maker, validation


def validation_set(manifest: dict, lab_manifest: dict, labels: list[str],
                   options: FieldTrainOptions, part: str = 'val') -> ValidationSet:
    """Decode one part of every domain at the input size, plus seeded synthetic frames."""
    size, cache = options.input_size, options.cache_dir
    images, frame_labels, domains = [], [], []
    root, files = lab_files(lab_manifest, labels, part, root=options.lab_data)
    parts = [('lab', root, files)]
    for domain in manifest['domains']:
        root, files, _ = domain_files(manifest, domain, part)
        parts.append((domain, root, files))
    for domain, root, files in parts:
        decoded, decoded_labels, _ = load_domain(root, files, size, cache, f'{domain} {part}')
        images.append(decoded)
        frame_labels.append(decoded_labels)
        domains += [domain] * len(decoded_labels)
    offset = SYNTHETIC_VAL_SEED_OFFSET if part == 'val' else SYNTHETIC_TEST_SEED_OFFSET
    synthetic, _ = synthetic_set(options.split_seed + offset, size,
                                  options.synthetic_val_per_kind)
    images.append(synthetic)
    frame_labels.append(np.full(len(synthetic), labels.index(NO_LEAF), np.int32))
    domains += [SYNTHETIC_DOMAIN] * len(synthetic)
    return ValidationSet(np.concatenate(images), np.concatenate(frame_labels).astype(np.int32),
                         np.array(domains))


def _cached_masks(images: np.ndarray, cache_dir: str | None, compute) -> np.ndarray:
    """Return leaf masks of ``images``, cached by a hash of the pixels.

    A cache file that cannot be read as the masks of these images (cut short, damaged) is
    a miss, said in one line: the masks are computed again and the file rewritten.
    """
    if cache_dir is None:
        return compute(images)
    key = hashlib.sha256(images.tobytes()).hexdigest()[:20]
    path = Path(cache_dir) / f'leaf_masks_{key}.npy'
    if path.exists():
        try:
            masks = np.load(path, allow_pickle=False)
        except (OSError, ValueError, EOFError) as error:
            masks = None
            problem = f'{type(error).__name__}: {error}'
        else:
            problem = (None if masks.shape[0] == len(images)
                       else f'{masks.shape[0]} masks for {len(images)} photos')
        if problem is None:
            return masks
        print(f'leaf mask cache {path} is unreadable ({problem}): computing the masks '
              'again and rewriting it', file=sys.stderr)
    started = time.monotonic()
    masks = compute(images)
    path.parent.mkdir(parents=True, exist_ok=True)
    np.save(path, masks)
    print(f'leaf masks of {len(images)} lab photos ({time.monotonic() - started:.0f} s)',
          file=sys.stderr, flush=True)
    return masks


def check_start_classes(init_weights: str | Path, lab_classes, outputs: int,
                        lab_split: str | Path) -> None:
    """Refuse a start model whose classes are not the lab split's (then ``no_leaf``).

    The field model copies the start model's output rows by position, so its classes must
    be the lab classes in the same order, or those and ``no_leaf`` (a field model). They are
    read as the lab recipe reads them (:func:`transfer.source_classes`: the run's
    ``train_summary.json`` when it records this file, else its ``split.json``, else
    ``labels.txt``); ``outputs`` is the start model's output count.
    Raises :class:`TransferError` with the reason in one line.
    """
    lab_classes = tuple(lab_classes)
    accepted = (lab_classes, (*lab_classes, NO_LEAF))
    classes = source_classes(Path(init_weights))
    where = f'--lab-split {lab_split}'
    if classes is None:
        raise TransferError(
            f'cannot tell which classes --init-weights {init_weights} was trained on '
            f'({unknown_classes_reason(Path(init_weights))}): the field recipe copies its '
            "output rows by position, so they must be the lab split's")
    if classes not in accepted:
        named = classes[:-1] if classes[-1:] == (NO_LEAF,) else classes
        raise TransferError(
            f'--init-weights {init_weights} was trained on '
            f'{class_difference(named, lab_classes, where)}: the field recipe copies its '
            'output rows by position, which would give them the wrong names; start from a '
            'model trained on these lab classes')
    if outputs not in (len(lab_classes), len(lab_classes) + 1):
        raise TransferError(
            f'--init-weights {init_weights} has {outputs} outputs but {where} has '
            f'{len(lab_classes)} classes (and no_leaf makes {len(lab_classes) + 1})')


def build_field_model(init_weights, num_classes: int, input_size: int,
                      architecture: str | None = None):
    """Return the lab model's network with a ``num_classes`` head (old rows copied).

    ``init_weights``: the start model's path, or the start model already loaded.
    ``architecture`` ``resnet_lite_deep`` grows a ``resnet_lite`` model by one stage-3
    block that starts as the identity (its last BatchNorm scale is zero), so the grown
    network computes exactly what the old one did until training moves it.
    """
    from plant_disease_ros.training.model import build_model, min_channels_of, ModelConfig
    from plant_disease_ros.training.transfer import backbone_layer, load_keras_file

    previous = (load_keras_file(init_weights)
                if isinstance(init_weights, (str, Path)) else init_weights)
    match = re.fullmatch(
        r'(resnet_lite_deep|resnet_lite|mobilenet_v2|mobilenet_v3_small)_([\d.]+)_(\d+)px',
        previous.name)
    if match is None:
        raise ValueError(f'{init_weights}: not a model of this package ({previous.name!r})')
    found = match.group(1)
    architecture = architecture or found
    if architecture != found and (found, architecture) != ('resnet_lite', 'resnet_lite_deep'):
        raise ValueError(f'{init_weights}: a {found} model cannot become {architecture} '
                         '(only resnet_lite -> resnet_lite_deep)')
    model = build_model(ModelConfig(num_classes=num_classes, input_size=input_size,
                                    width=float(match.group(2)), architecture=architecture,
                                    min_channels=min_channels_of(previous)))
    old_backbone, new_backbone = backbone_layer(previous), backbone_layer(model)
    old_names = {layer.name for layer in old_backbone.layers}
    for layer in new_backbone.layers:
        if not layer.weights:
            continue
        if layer.name in old_names:
            layer.set_weights(old_backbone.get_layer(layer.name).get_weights())
        elif layer.name.endswith('_b_bn'):
            gamma, *rest = layer.get_weights()
            layer.set_weights([np.zeros_like(gamma), *rest])  # the new block adds zero
    for layer in model.layers:
        if not layer.weights or layer is new_backbone:
            continue
        source = previous.get_layer(layer.name)
        if layer.name != 'probs':
            layer.set_weights(source.get_weights())
            continue
        old_kernel, old_bias = source.get_weights()
        kernel, bias = layer.get_weights()
        kept = min(old_kernel.shape[1], num_classes)
        kernel[:, :kept], bias[:kept] = old_kernel[:, :kept], old_bias[:kept]
        kernel[:, kept:] *= 0.1  # new classes start near zero: no sudden takeover
        layer.set_weights([kernel, bias])
    return model


def train_field(options: FieldTrainOptions) -> dict:
    """Run the field-fit training and the temperature fit; return the summary."""
    import tensorflow as tf

    from plant_disease_ros.training.curves import plot_training_curves
    from plant_disease_ros.training.transfer import load_keras_file

    keras = tf.keras
    # Options a run cannot use are refused before any photo is decoded.
    if options.ema_momentum is not None and not 0.0 < options.ema_momentum < 1.0:
        raise ValueError(f'the EMA momentum must lie in (0, 1), not {options.ema_momentum:g}')
    check_objective(options.calibration_objective)
    check_cutmix_share(options.cutmix)
    check_not_inside(options.out_dir, [options.lab_data, options.field_data, options.negatives])
    if options.pose_distill not in (0, 1, 2, 4, 8):
        raise ValueError(f'--pose-distill must be 0, 2, 4 or 8 poses, not {options.pose_distill}')
    if not 0.0 <= options.pose_distill_weight <= 1.0:
        raise ValueError('the pose distillation weight must be in 0..1, not '
                         f'{options.pose_distill_weight:g}')
    if options.threads:
        tf.config.threading.set_intra_op_parallelism_threads(options.threads)
        tf.config.threading.set_inter_op_parallelism_threads(options.threads)
    keras.utils.set_random_seed(options.seed)
    out_dir = Path(options.out_dir)
    # The start model's classes are checked before any photo is decoded.
    start = load_keras_file(options.init_weights)
    check_start_classes(options.init_weights, read_manifest(options.lab_split)['classes'],
                        int(start.output_shape[-1]), options.lab_split)
    labels, maker, validation = prepare_data(options)
    num_classes = len(labels)
    init_outputs = int(start.output_shape[-1])
    init_input_size = int(start.input_shape[1])
    init_architecture = start.name.rsplit('_', 2)[0]  # resnet_lite_deep_0.75_144px
    model = build_field_model(start, num_classes, options.input_size, options.architecture)
    del start
    steps, epochs = options.steps_per_epoch, options.epochs
    schedule = keras.optimizers.schedules.CosineDecay(
        options.warmup_learning_rate, decay_steps=steps * max(1, epochs - 1), alpha=0.02,
        warmup_target=options.learning_rate, warmup_steps=steps)
    ema = options.ema_momentum is not None
    optimizer = keras.optimizers.Adam(schedule, use_ema=ema,
                                      # Keras's default when unused
                                      ema_momentum=options.ema_momentum if ema else 0.99)
    model.compile(optimizer=optimizer,
                  loss=keras.losses.CategoricalCrossentropy(
                      label_smoothing=options.label_smoothing),
                  metrics=['accuracy'])

    teacher = None
    if options.distill_from:
        from plant_disease_ros.training.distill import blend_targets, LabTeacher

        teacher = LabTeacher(options.distill_from, num_classes, options.input_size,
                             options.distill_temperature)
        print(f'distilling from {options.distill_from} on the plain lab rows (weight '
              f'{options.distill_weight:g}, temperature {options.distill_temperature:g})',
              file=sys.stderr, flush=True)
    pose_teacher = None
    if options.pose_distill > 1:
        from plant_disease_ros.training.distill import blend_targets, PoseTeacher

        pose_teacher = PoseTeacher(options.init_weights, num_classes, options.input_size,
                                   options.pose_distill)
        print(f'distilling the start model {options.init_weights} averaged over '
              f'{options.pose_distill} poses into the field and composited lab rows (weight '
              f'{options.pose_distill_weight:g})', file=sys.stderr, flush=True)
    pose_sources = [SOURCES.index('lab_composite'), SOURCES.index('field')]
    lab_source = SOURCES.index('lab')
    cutmix_sources = [SOURCES.index('lab_composite'), SOURCES.index('field')]
    if options.cutmix:
        print(f'CutMix on {options.cutmix:.0%} of the field and composited lab rows',
              file=sys.stderr, flush=True)

    def batches():
        for number in range(steps * epochs):
            images, batch_labels, sources = maker.batch_with_sources(number // steps,
                                                                     number % steps)
            targets = np.eye(num_classes, dtype=np.float32)[batch_labels]
            rows = np.flatnonzero(sources == lab_source)
            if teacher is not None and rows.size:
                targets = blend_targets(targets, rows, teacher.probabilities(images[rows]),
                                        options.distill_weight)
            if pose_teacher is not None:
                posed = np.flatnonzero(np.isin(sources, pose_sources))
                if posed.size:
                    targets = blend_targets(targets, posed,
                                            pose_teacher.probabilities(images[posed]),
                                            options.pose_distill_weight)
            if options.cutmix:
                # Its own stream, so a run without CutMix draws the same batches as before.
                images, targets, _ = cutmix_rows(
                    images, targets, np.isin(sources, cutmix_sources), options.cutmix,
                    np.random.default_rng([options.seed, CUTMIX_STREAM, number]))
            yield images.astype(np.float32), targets

    size = options.input_size
    train_ds = tf.data.Dataset.from_generator(batches, output_signature=(
        tf.TensorSpec((options.batch_size, size, size, 3), tf.float32),
        tf.TensorSpec((options.batch_size, num_classes), tf.float32))).prefetch(4)

    uncalibrated_path = out_dir / 'model_uncalibrated.keras'
    monitor = DomainValidation(validation, uncalibrated_path, out_dir / 'history.csv',
                               options.time_budget_min, epochs=epochs)
    started = time.monotonic()
    # With an EMA the averaged weights are swapped in before the monitor scores and saves
    # the epoch, and swapped back out when the next epoch starts.
    callbacks = ([keras.callbacks.SwapEMAWeights(swap_on_epoch=True)] if ema else [])
    try:
        model.fit(train_ds, epochs=epochs, steps_per_epoch=steps, verbose=0, shuffle=False,
                  callbacks=[*callbacks, monitor.callback()])
    except KeyboardInterrupt:
        print(interrupted_message(uncalibrated_path, monitor.best_epoch, monitor.best_score),
              file=sys.stderr, flush=True)
        raise
    seconds = time.monotonic() - started
    plot_training_curves(monitor.curves(), out_dir / 'training_curves.png')

    best, temperature, calibration, scaling = calibrate_checkpoint(
        uncalibrated_path, validation, out_dir / 'model.keras', options.calibration_objective)
    (out_dir / 'labels.txt').write_text('\n'.join(labels) + '\n')
    summary = {
        'recipe': 'field',
        'options': _jsonable(asdict(options)),
        'model': {'architecture': best.name.rsplit('_', 2)[0],
                  'width': float(best.name.rsplit('_', 2)[1]), 'input_size': size,
                  'num_classes': num_classes},
        'classes': labels,
        'init_outputs': init_outputs,  # == num_classes: a field model, its head kept
        'init_input_size': init_input_size,  # != input_size: the run changed the frame size
        # != the model's: the run grew the network (resnet_lite -> resnet_lite_deep).
        'init_architecture': init_architecture,
        'epochs_run': len(monitor.history),
        'best_epoch': monitor.best_epoch,
        'best_val_score': monitor.best_score,
        'best_val_accuracy': monitor.best_score,
        'best_val_domains': monitor.best_domains,
        'temperature': temperature,
        'calibration_objective': options.calibration_objective,
        'calibration': calibration,
        'score_scaling': scaling.to_json() if scaling is not None else None,
        'train_seconds': round(seconds, 1),
        'seconds_per_epoch': round(seconds / max(len(monitor.history), 1), 1),
        'parameters': int(best.count_params()),
        'tensorflow': tf.__version__,
        'history': monitor.history,
    }
    (out_dir / 'train_summary.json').write_text(json.dumps(summary, indent=1) + '\n')
    print(f'best epoch {monitor.best_epoch}: mean domain accuracy {monitor.best_score:.4f}; '
          f'temperature {temperature:.3f}; model at {out_dir / "model.keras"}',
          file=sys.stderr, flush=True)
    return summary


def interrupted_message(checkpoint: Path, best_epoch: int, best_score: float) -> str:
    """Return what a field run stopped early keeps (its best checkpoint) and how to go on.

    ``best_epoch`` 0: no epoch ended, nothing was checkpointed by this run.
    """
    folder = checkpoint.parent
    if best_epoch < 1 or not checkpoint.is_file():
        return (f'training interrupted before any epoch ended: no {checkpoint.name} was '
                f'written to {folder}')
    return (f'training interrupted: kept {checkpoint}, the best checkpoint so far (epoch '
            f'{best_epoch}, mean domain accuracy {best_score:.4f}), not yet calibrated. Finish '
            f'it: plant-disease export --run {folder} --calibrate (calibrates it into '
            f'{folder / "model.keras"} and exports it); or continue from it: the same '
            f'plant-disease train --recipe field with --init-weights {checkpoint} --out '
            f'NEW_FOLDER (a train into '
            f'{folder} is refused while it holds it, unless --overwrite)')


def calibrate_checkpoint(checkpoint: str | Path, validation: ValidationSet,
                         out_path: str | Path, objective: str = OBJECTIVES[0]):
    """Fit a temperature on ``validation`` (domains weighted equally) and fold it in.

    ``objective``: ``nll``, ``domain-ece`` (the mean per-domain ECE) or ``adaptive`` (the
    NLL temperature, then a per-frame :class:`ScoreScaling` fitted on the logits divided by
    it; the export puts it into the int8 model).

    Returns ``(calibrated model, temperature, per-domain validation ECE before/after, score
    scaling or None)``; the calibrated model (temperature folded in, no scaling) is saved at
    ``out_path``.
    """
    import tensorflow as tf

    from plant_disease_ros.training.calibration import (
        ADAPTIVE,
        calibrated_probabilities,
        domain_eces,
        domain_eces_of_scores,
        fit_calibration,
        fit_score_scaling,
        fold_temperature,
        logits_of,
    )

    model = tf.keras.models.load_model(str(checkpoint), compile=False)
    logits = logits_of(model, validation.images)
    temperature = fit_calibration(logits, validation.labels, validation.domains, objective)
    scaling = None
    if objective == ADAPTIVE:
        scaling = fit_score_scaling(logits / temperature, validation.labels,
                                    validation.domains)
    before = domain_eces(logits, validation.labels, validation.domains)
    after = domain_eces_of_scores(calibrated_probabilities(logits, temperature, scaling),
                                  validation.labels, validation.domains)
    calibration = {name: {'val_ece_before': before[name], 'val_ece_after': after[name]}
                   for name in validation.names()}
    fold_temperature(model, temperature)
    model.save(str(out_path))
    return model, temperature, calibration, scaling


def calibrate_run(run_dir: str | Path, cache_dir: str | None = None,
                  lab_data: str | None = None,
                  objective: str | None = None) -> tuple[float, dict]:
    """Calibrate a run's best checkpoint after the fact (a run stopped before its end).

    Reads ``field_split.json``, ``split.json`` and ``model_uncalibrated.keras`` of
    ``run_dir``, writes ``model.keras`` and ``calibration.json``, and brings the
    temperature, score scaling and validation ECE in ``train_summary.json`` (if there is
    one) up to date, so the model card describes the model that is exported.
    ``objective``: ``nll``, ``domain-ece`` or ``adaptive``; by default the run's own.
    """
    from plant_disease_ros.training.field_data import read_field_split

    run_dir = Path(run_dir)
    manifest = read_field_split(run_dir / 'field_split.json')
    lab_manifest = read_manifest(run_dir / 'split.json')
    summary_path = run_dir / 'train_summary.json'
    summary = json.loads(summary_path.read_text()) if summary_path.exists() else None
    if objective is None and summary is not None:
        objective = summary.get('calibration_objective') or PRE_CHOICE_OBJECTIVE
    objective = objective or FieldTrainOptions.calibration_objective
    import tensorflow as tf

    checkpoint = run_dir / 'model_uncalibrated.keras'
    size = int(tf.keras.models.load_model(str(checkpoint), compile=False).input_shape[1])
    options = FieldTrainOptions(
        lab_data=lab_data or lab_manifest['root'], lab_split=str(run_dir / 'split.json'),
        field_data='', negatives='', init_weights='', out_dir=str(run_dir),
        input_size=size, split_seed=int(manifest['seed']), cache_dir=cache_dir)
    validation = validation_set(manifest, lab_manifest, list(manifest['labels']), options)
    _, temperature, calibration, scaling = calibrate_checkpoint(
        checkpoint, validation, run_dir / 'model.keras', objective)
    scaling_json = scaling.to_json() if scaling is not None else None
    (run_dir / 'labels.txt').write_text('\n'.join(manifest['labels']) + '\n')
    (run_dir / 'calibration.json').write_text(json.dumps(
        {'temperature': temperature, 'objective': objective, 'calibration': calibration,
         'score_scaling': scaling_json}, indent=1) + '\n')
    if summary is not None:
        summary.update(temperature=temperature, calibration_objective=objective,
                       calibration=calibration, score_scaling=scaling_json)
        summary_path.write_text(json.dumps(summary, indent=1) + '\n')
    return temperature, calibration


def run_score_scaling(run_dir: str | Path) -> ScoreScaling | None:
    """Return the score scaling a field-fit run's export must add, or None.

    ``train_summary.json`` is read first (``calibrate_run`` keeps it up to date), else
    ``calibration.json`` (a run stopped before its end, calibrated afterwards).
    """
    run_dir = Path(run_dir)
    for name in ('train_summary.json', 'calibration.json'):
        path = run_dir / name
        if path.exists():
            data = json.loads(path.read_text()).get('score_scaling')
            return ScoreScaling.from_json(data) if data is not None else None
    return None


def _jsonable(value):
    if isinstance(value, dict):
        return {key: _jsonable(item) for key, item in value.items()}
    if isinstance(value, list | tuple):
        return [_jsonable(item) for item in value]
    return value


class DomainValidation:
    """Per-epoch validation per domain, one log line, best checkpoint and a time budget.

    The line (plain text, fit for a log) says the epoch out of ``epochs``, its duration and
    the time left (:class:`~plant_disease_ros.training.progress.EpochClock`, as the lab
    recipe's lines do). ``clock``: seconds, for the budget and the estimate.
    """

    def __init__(self, validation: ValidationSet, checkpoint: Path, history_csv: Path,
                 time_budget_min: float | None, epochs: int = 1,
                 clock=time.monotonic) -> None:
        self.validation, self.checkpoint = validation, checkpoint
        self.history_csv, self.time_budget_min = history_csv, time_budget_min
        self.epochs, self.clock = epochs, clock
        self.epoch_clock = EpochClock(epochs, clock)
        self.started = clock()
        self.history: list[dict] = []
        self.best_score, self.best_epoch = -1.0, 0
        self.best_domains: dict[str, float] = {}

    def callback(self):
        """Return the Keras callback bound to this monitor."""
        import tensorflow as tf

        monitor = self

        class Callback(tf.keras.callbacks.Callback):
            def on_train_begin(self, logs=None) -> None:
                monitor.started = monitor.clock()

            def on_epoch_begin(self, epoch: int, logs=None) -> None:
                monitor.epoch_clock.start_epoch()

            def on_epoch_end(self, epoch: int, logs=None) -> None:
                monitor.end_epoch(self.model, epoch, logs or {})

        return Callback()

    def end_epoch(self, model, epoch: int, logs: dict) -> None:
        """Score the validation domains, log, save the best and check the time budget."""
        scores = model.predict(self.validation.images.astype(np.float32), batch_size=128,
                               verbose=0)
        accuracies = domain_accuracies(scores, self.validation)
        score = float(np.mean(list(accuracies.values())))
        seconds = self.epoch_clock.end_epoch()  # with the validation, as before
        row = {'epoch': epoch + 1, 'loss': float(logs.get('loss', np.nan)),
               'accuracy': float(logs.get('accuracy', np.nan)), 'val_accuracy': score,
               **{f'val_{name}': value for name, value in accuracies.items()},
               'seconds': round(seconds, 1)}
        self.history.append(row)
        improved = score > self.best_score
        if improved:
            # Written beside, then renamed: a run stopped while saving (Ctrl-C) keeps the
            # previous best whole, and says that one's epoch.
            with replacing(self.checkpoint) as temporary:
                model.save(str(temporary))
            self.best_score, self.best_epoch, self.best_domains = score, epoch + 1, accuracies
        self._write_csv()
        left = self.epoch_clock.seconds_left()
        print(f'epoch {epoch + 1}/{self.epochs}: loss {row["loss"]:.4f} acc '
              f'{row["accuracy"]:.4f} | val '
              + ' '.join(f'{name} {value:.3f}' for name, value in accuracies.items())
              + f' | mean {score:.4f}{" *saved*" if improved else ""} | '
              + format_duration(seconds)
              + (f', about {format_duration(left)} left' if left > 0 else ''),
              file=sys.stderr, flush=True)
        elapsed = self.clock() - self.started
        if self.time_budget_min is not None and elapsed > self.time_budget_min * 60:
            print(f'time budget of {self.time_budget_min:g} min reached after epoch '
                  f'{epoch + 1}', file=sys.stderr, flush=True)
            model.stop_training = True

    def _write_csv(self) -> None:
        keys = list(self.history[0])
        lines = [','.join(keys)] + [','.join(str(row.get(key, '')) for key in keys)
                                    for row in self.history]
        self.history_csv.write_text('\n'.join(lines) + '\n')

    def curves(self) -> dict[str, list[float]]:
        """Return the history in the shape :func:`plot_training_curves` expects."""
        return {key: [row[key] for row in self.history]
                for key in ('loss', 'accuracy', 'val_accuracy')}
