"""Train a plant disease classifier on a folder of leaf photos (TensorFlow/Keras, CPU or GPU).

By default a run starts from the shipped model's backbone (transfer learning): stage 1
trains a new head for the run's classes with the backbone frozen, stage 2 fine-tunes
the network at a lower rate (see :mod:`plant_disease_ros.training.transfer`). From
scratch (``init='scratch'``) it is one stage. Epochs, patience, learning rates and the
validation share scale with the dataset (:mod:`plant_disease_ros.training.schedule`).

Outputs in ``out_dir``: ``split.json`` (the reproducible split), ``model.keras`` (the best
checkpoint by validation accuracy), ``history.csv``, ``training_curves.png`` and
``train_summary.json`` (which records the sha256 of ``model.keras``). The best checkpoint
is kept as ``checkpoint.keras`` while the run trains and becomes ``model.keras`` when it
ends, so an interrupted run writes no ``model.keras`` (an earlier run's, under
``overwrite``, stays, beside the interrupted run's ``split.json``: export and evaluation
refuse that pair, by the sha256 that ``train_summary.json`` records for each). A folder
that already holds a trained run (``model.keras`` or ``train_summary.json``) is refused
before anything is read or written, unless ``overwrite`` is set.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, replace
import json
import math
import os
from pathlib import Path
import sys
import time

import numpy as np

from plant_disease_ros.core.atomic_files import sha256_of
from plant_disease_ros.core.output_paths import check_not_inside, directory_problem
from plant_disease_ros.training.dataset import (
    DatasetError,
    describe_unreadable,
    load_images,
    naming_note,
    print_progress,
    scan_dataset,
    Split,
    split_files,
    subsample,
    unreadable_reasons,
    write_manifest,
)
from plant_disease_ros.training.model import (
    build_model,
    make_augmenter,
    MIN_CHANNELS,
    min_channels_of,
    ModelConfig,
)
from plant_disease_ros.training.progress import epoch_logger, EpochClock, stdout_is_terminal
from plant_disease_ros.training.schedule import plan_training, TrainingPlan
from plant_disease_ros.training.transfer import TransferError

DEFAULT_CACHE_DIR = Path(os.environ.get('XDG_CACHE_HOME', Path.home() / '.cache')) \
    / 'plant_disease_ros'
SCRATCH_INPUT_SIZE = 96


class OptionConflict(ValueError):
    """Options that cannot work together in one run, refused before anything is read.

    A search skips a trial whose knob values conflict so (and goes on with the others).
    """


class StartModelMismatch(TransferError, OptionConflict):
    """An --architecture or --width the start model has not: a source that cannot start
    this run, and a search trial to skip."""


@dataclass
class TrainOptions:
    """Everything a training run depends on; saved with its outputs.

    Options left at None are resolved at the start of the run: architecture, width and
    input size from the source model (or resnet_lite, 0.75, 96 px from scratch), the
    rest from the dataset size (:func:`~plant_disease_ros.training.schedule.plan_training`).
    """

    data_dir: str
    out_dir: str
    input_size: int | None = None
    width: float | None = None
    architecture: str | None = None
    epochs: int | None = None
    batch_size: int | None = None
    learning_rate: float | None = None
    patience: int | None = None
    seed: int = 42  # weights, batch order and augmentation
    split_seed: int = 42  # train/val/test split and --per-class subsample, kept apart
    val_fraction: float | None = None
    test_fraction: float | None = None
    per_class: int | None = None
    augment_strength: float = 1.0
    label_smoothing: float = 0.05
    time_budget_min: float | None = None
    cache_dir: str | None = str(DEFAULT_CACHE_DIR)
    init: str = 'shipped'
    init_weights: str | None = None
    head_epochs: int | None = None
    unfreeze: int | None = None
    batch_norm: str = 'adapt'
    threads: int | None = None
    verbose: int | None = None
    overwrite: bool = False  # replace a trained run already in out_dir


@dataclass
class TrainResult:
    """What a run produced: the best validation accuracy and where the model is."""

    model_path: Path
    best_val_accuracy: float
    epochs_run: int
    seconds: float


def prepare_split(options: TrainOptions):
    """Scan, decode (cached) and split the dataset; write ``split.json``.

    ``options`` must carry a resolved ``input_size``, ``val_fraction`` and
    ``test_fraction``. Returns ``(split, arrays)`` where ``arrays[name] = (images,
    labels)`` for each split.
    """
    out_dir = Path(options.out_dir)
    stale = earlier_run_outputs(out_dir)
    if stale:
        print(f'{out_dir} holds an earlier run\'s {", ".join(stale)}: they describe the '
              'earlier model until this run is exported and evaluated again', file=sys.stderr)
    index = scan_dataset(options.data_dir)
    for note in (index.ignored_summary(), naming_note(index.classes)):
        if note:
            print(note, file=sys.stderr)
    files = list(index.files)
    if options.per_class:
        files = subsample(files, options.per_class, seed=options.split_seed)
    images, labels, unreadable = load_images(
        index.root, files, options.input_size, cache_dir=options.cache_dir,
        progress=print_progress(f'decoding {len(files)} photos at {options.input_size} px'))
    reasons = unreadable_reasons(index.root, unreadable)
    if unreadable:
        print(describe_unreadable(reasons, 'split.json'), file=sys.stderr)
    skipped = set(unreadable)
    readable = [item for item in files if item[0] not in skipped]
    check_every_class_readable(index.classes, readable, index.root)
    split = split_files(readable, index.classes, seed=options.split_seed,
                        val_fraction=options.val_fraction, test_fraction=options.test_fraction)
    check_validation_photos(split, len(readable), 'readable ')
    out_dir.mkdir(parents=True, exist_ok=True)
    write_manifest(out_dir / 'split.json', split, index.root, unreadable, reasons)
    unmeasured = classes_without(split, tuple(name for name in ('val', 'test')
                                              if split.fractions.get(name, 0) > 0))
    if unmeasured:
        print(f'too few photos to measure {len(unmeasured)} class(es) (fewer than 3 each): '
              f'{", ".join(unmeasured)} get no validation or test photo, so no figure says '
              'how well the model knows them', file=sys.stderr)
    position = {path: row for row, (path, _) in enumerate(readable)}
    arrays = {}
    for name, part in split.parts.items():
        rows = np.array([position[path] for path, _ in part], dtype=np.int64)
        arrays[name] = (images[rows], labels[rows])
    return split, arrays


# What export, evaluate and model-card put into a run folder, from its model.
DERIVED_OUTPUTS = ('model_int8.tflite', 'labels.txt', 'MODEL_CARD.md', 'eval', 'evaluation')
# What tells that a folder holds a trained run (both written when a run ends).
TRAINED_OUTPUTS = ('model.keras', 'train_summary.json')
# The best checkpoint while a run trains; renamed to model.keras when it ends.
CHECKPOINT_FILENAME = 'checkpoint.keras'
# The field recipe's best checkpoint (before calibration), kept by a run stopped early.
UNCALIBRATED_FILENAME = 'model_uncalibrated.keras'


def trained_outputs(out_dir: str | Path) -> list[str]:
    """Return the files of :data:`TRAINED_OUTPUTS` that ``out_dir`` already holds."""
    return [name for name in TRAINED_OUTPUTS if (Path(out_dir) / name).exists()]


def check_out_dir(out_dir: str | Path, overwrite: bool = False) -> None:
    """Raise ``FileExistsError`` when ``out_dir`` holds a run and not ``overwrite``.

    A new run would replace its model (the best checkpoint of the earlier run),
    history, curves and summary, while the earlier run's export and evaluation stayed
    beside them describing the old model; an interrupted run's ``checkpoint.keras`` (its
    best epoch so far, which a warm start can continue) would be deleted, and an
    interrupted field run's ``model_uncalibrated.keras`` replaced. Raises
    ``ValueError`` when ``out_dir`` cannot be a folder to write in (a file there or above
    it, a folder that is not writable), found otherwise only when the split is written.
    """
    problem = directory_problem(out_dir)
    if problem:
        raise ValueError(f'--out {out_dir}: {problem}; give a folder for the run (a new one '
                         'is created)')
    found = trained_outputs(out_dir)
    if found and not overwrite:
        raise FileExistsError(
            f'--out {out_dir} already holds a trained run ({", ".join(found)}); training '
            'into it would replace them: give a new --out, or --overwrite to replace them')
    checkpoint = Path(out_dir) / CHECKPOINT_FILENAME
    if checkpoint.exists() and not overwrite:
        raise FileExistsError(
            f'--out {out_dir} holds {CHECKPOINT_FILENAME}, the best checkpoint of an '
            'interrupted run; training into it would replace it: continue from it with '
            f'--init-weights {checkpoint} and a new --out, or --overwrite to replace it')
    uncalibrated = Path(out_dir) / UNCALIBRATED_FILENAME
    if uncalibrated.exists() and not overwrite:
        raise FileExistsError(
            f'--out {out_dir} holds {UNCALIBRATED_FILENAME}, the best checkpoint of an '
            'interrupted field run; training into it would replace it: finish it with '
            f'plant-disease export --run {out_dir} --calibrate, continue from it with '
            f'--init-weights {uncalibrated} and a new --out, or --overwrite to replace it')


def earlier_derived_hashes(out_dir: str | Path) -> dict[str, str]:
    """Return ``{path under out_dir: sha256}`` of the exports, evaluations and cards it holds.

    Recorded in ``train_summary.json`` by a run into a folder that already held some
    (an earlier run's, replaced with ``overwrite``): they predate the new model, and
    ``model-card`` refuses them, ``report`` leaves them out (a card too, once the run is
    exported again: it still describes the earlier model until ``model-card`` runs).
    Hidden names are left out: the temporaries and staging folders of a write that is
    running or was killed (``.evaluation.json.<pid>.<hex>.tmp/``) are nobody's output.
    """
    out_dir = Path(out_dir)
    found = sorted({*out_dir.glob('*.tflite'), *out_dir.glob('evaluation.json'),
                    *out_dir.glob('*/evaluation.json'), *out_dir.glob('MODEL_CARD.md')})
    relative = [path.relative_to(out_dir) for path in found]
    return {path.as_posix(): sha256_of(out_dir / path) for path in relative
            if not any(part.startswith('.') for part in path.parts)
            and (out_dir / path).is_file()}


def earlier_run_outputs(out_dir: Path) -> list[str]:
    """Return the files an earlier run's export and evaluation left in ``out_dir``.

    A new run writes its model, split and curves over the old ones; these stay and would
    describe the old model.
    """
    if not (out_dir / 'train_summary.json').is_file():
        return []
    return [name for name in DERIVED_OUTPUTS if (out_dir / name).exists()]


def check_validation_photos(split: Split, photos: int, kind: str = '') -> None:
    """Raise :class:`DatasetError` when ``split`` gives no photo to validation.

    ``photos``: how many were split; ``kind``: what they are called (``'readable '``).
    """
    if not split.parts.get('val'):
        raise DatasetError(f'no validation photo: {photos} {kind}photos in '
                           f'{len(split.classes)} classes are too few (a class needs at least '
                           '3 photos to give one to validation and one to test)')


def classes_without(split: Split, parts: tuple[str, ...]) -> list[str]:
    """Return the classes that have no photo in one of ``parts`` of ``split``."""
    present = {name: {index for _, index in split.parts.get(name, [])} for name in parts}
    return [label for index, label in enumerate(split.classes)
            if any(index not in present[name] for name in parts)]


def check_every_class_readable(classes: tuple[str, ...], readable: list[tuple[str, int]],
                               root: Path) -> None:
    """Raise :class:`DatasetError` if a class has no decodable image left.

    The model would otherwise get an output for a class it never saw (the same rule as
    :func:`~plant_disease_ros.training.dataset.scan_dataset`'s empty-folder check).
    """
    seen = {index for _, index in readable}
    lost = [name for index, name in enumerate(classes) if index not in seen]
    if len(lost) == 1:
        raise DatasetError(f'class {lost[0]} has no readable images in {root}')
    if lost:
        raise DatasetError(f'classes {", ".join(lost)} have no readable images in {root}')


# Integer options and their smallest value (None: derived from the dataset).
INT_OPTION_MINIMUMS = {'input_size': 1, 'epochs': 1, 'batch_size': 1, 'head_epochs': 0,
                       'unfreeze': 0, 'patience': 0, 'per_class': 1, 'threads': 1}


# Decimal options: (lowest, highest, whether the lowest itself is allowed).
FLOAT_OPTION_RANGES = {'learning_rate': (0.0, 1.0, False), 'width': (0.0, 4.0, False),
                       'augment_strength': (0.0, 1.0, True),
                       'label_smoothing': (0.0, 0.5, True),
                       'time_budget_min': (0.0, math.inf, False),
                       'val_fraction': (0.0, 0.5, False), 'test_fraction': (0.0, 0.5, True)}


def check_options(options: TrainOptions) -> None:
    """Raise ``ValueError`` for an option that cannot work, before anything is read.

    Integer options below their smallest sensible value, decimal ones outside their range
    or not a number (a negative learning rate trains to nonsense and a NaN time budget is
    never reached), an output folder inside the photo folder, and an output folder that
    holds a trained run without ``overwrite`` (:func:`check_out_dir`).
    """
    for name, minimum in INT_OPTION_MINIMUMS.items():
        value = getattr(options, name)
        if value is not None and value < minimum:
            raise ValueError(f'{name.replace("_", " ")} must be >= {minimum}, got {value}')
    for name, (low, high, low_allowed) in FLOAT_OPTION_RANGES.items():
        value = getattr(options, name)
        if value is None:
            continue
        if not (math.isfinite(value) or value == math.inf == high) or value > high \
                or value < low or (value == low and not low_allowed):
            bound = '>=' if low_allowed else '>'
            raise ValueError(f'{name.replace("_", " ")} must be {bound} {low:g} and <= '
                             f'{high:g}, got {value:g}')
    check_not_inside(options.out_dir, [options.data_dir])
    check_out_dir(options.out_dir, options.overwrite)


def resolve_options(options: TrainOptions):
    """Resolve every None option; return ``(options, plan, start model or None, copy_head)``.

    Loads the start model (the source of a transfer, or the weights of a warm start) and
    checks it against the requested architecture and width; counts the photos and prints
    the plan. ``plan.transfer`` tells which of the two the start model is.
    """
    from plant_disease_ros.training.transfer import load_source, resolve_init

    check_options(options)
    start_model = loaded = source = None
    if options.init_weights:
        # A warm start keeps the network of its weights: read it, as a transfer does.
        start_model, loaded = load_source(Path(options.init_weights), options.width)
        what, hint = f'--init-weights {options.init_weights}', 'a warm start keeps its network'
    else:
        source_path = resolve_init(options.init)
        if source_path is not None:
            start_model, loaded = load_source(source_path, options.width)
            source = loaded
        what, hint = f'the source model {source_path}', 'use --init scratch for another network'
    if loaded is not None:
        for name, wanted, found in (('architecture', options.architecture, loaded.architecture),
                                    ('width', options.width, loaded.width)):
            if wanted is not None and wanted != found:
                # A conflict of options: a search's --widths trial on a start model of
                # another width is skipped, not the end of the search.
                raise StartModelMismatch(f'--{name} {wanted} does not match {what} '
                                         f'({found}); {hint}')
    index = scan_dataset(options.data_dir)
    files = subsample(index.files, options.per_class, seed=options.split_seed) \
        if options.per_class else list(index.files)
    photos = len(files)
    if options.init_weights and int(start_model.output_shape[-1]) != len(index.classes):
        outputs = int(start_model.output_shape[-1])
        raise TransferError(
            f'--init-weights {options.init_weights} has {outputs} outputs but '
            f'{options.data_dir} has {len(index.classes)} classes: a warm start keeps every '
            f'weight, the output layer too; --init {options.init_weights} starts from its '
            'backbone with a new output layer for these classes')
    if options.init_weights and loaded.classes is not None \
            and tuple(loaded.classes) != tuple(index.classes):
        raise TransferError(
            f'--init-weights {options.init_weights} was trained on '
            f'{class_difference(loaded.classes, index.classes, options.data_dir)}: a warm '
            'start keeps every weight, the output layer too, which would give these photos '
            f'its names; --init {options.init_weights} starts from its backbone with a new '
            'output layer for these classes')
    copy_head = source is not None and source.classes == index.classes
    plan = plan_training(
        photos, len(index.classes), transfer=source is not None,
        warm_start=options.init_weights is not None,
        batch_size=options.batch_size, epochs=options.epochs,
        head_epochs=0 if copy_head else options.head_epochs, patience=options.patience,
        learning_rate=options.learning_rate, val_fraction=options.val_fraction,
        test_fraction=options.test_fraction)
    # Refused before any photo is decoded or anything written: too few photos to give
    # one to validation even if every one decodes.
    check_validation_photos(split_files(files, index.classes, seed=options.split_seed,
                                        val_fraction=plan.val_fraction,
                                        test_fraction=plan.test_fraction), photos)
    if plan.transfer and plan.head_epochs == 0 and options.unfreeze == 0:
        raise OptionConflict('--unfreeze 0 with no head epochs leaves nothing to train'
                         + (' (the head is kept: the classes are the same)' if copy_head
                            else ' (--head-epochs 0)'))
    resolved = replace(
        options,
        architecture=options.architecture or (loaded.architecture if loaded
                                              else 'resnet_lite'),
        width=options.width or (loaded.width if loaded else 0.75),
        input_size=options.input_size or (loaded.input_size if loaded
                                          else SCRATCH_INPUT_SIZE),
        batch_size=plan.batch_size, epochs=plan.epochs, patience=plan.patience,
        learning_rate=plan.learning_rate, val_fraction=plan.val_fraction,
        test_fraction=plan.test_fraction, head_epochs=plan.head_epochs)
    if source is not None:
        start = f'transfer from {source.path} ({source.architecture} {source.width:g}, ' \
                f'{source.input_size} px): backbone copied, ' + \
                ('head kept (same classes)' if copy_head else
                 f'new head for {len(index.classes)} classes')
    elif options.init_weights:
        start = f'warm start from {options.init_weights} (all weights, one stage)'
    else:
        start = 'from scratch'
    print(f'start: {start}; {resolved.architecture} width {resolved.width:g} at '
          f'{resolved.input_size} px\n{plan.describe(photos, len(index.classes))}', flush=True)
    return resolved, plan, start_model, copy_head


def class_difference(model_classes: tuple[str, ...], classes: tuple[str, ...],
                     data_dir: str, shown: int = 3) -> str:
    """Return how a model's class names differ from a photo folder's, as a phrase.

    Both have as many classes; names in one only (up to ``shown`` of each), or the same
    names in another order.
    """
    if set(model_classes) == set(classes):
        return (f'the classes of {data_dir} in another order ({", ".join(model_classes)} '
                f'against {", ".join(classes)})')

    def some(names: list[str]) -> str:
        if not names:
            return 'none'  # one class list holds the other
        more = f' and {len(names) - shown} more' if len(names) > shown else ''
        return ', '.join(names[:shown]) + more

    only_model = [name for name in model_classes if name not in classes]
    only_data = [name for name in classes if name not in model_classes]
    return (f'other classes than {data_dir} has (its {some(only_model)} against '
            f'{some(only_data)})')


def train(options: TrainOptions) -> TrainResult:
    """Run one training; return the best checkpoint and its validation accuracy."""
    import tensorflow as tf

    from plant_disease_ros.training.curves import plot_training_curves
    from plant_disease_ros.training.transfer import (
        adapt_batch_norm,
        freeze_backbone,
        set_trainable,
        transplant,
    )

    keras = tf.keras
    if options.threads:
        tf.config.threading.set_intra_op_parallelism_threads(options.threads)
        tf.config.threading.set_inter_op_parallelism_threads(options.threads)
    keras.utils.set_random_seed(options.seed)
    started = time.monotonic()
    options, plan, start_model, copy_head = resolve_options(options)
    out_dir = Path(options.out_dir)
    # Any export or evaluation already here predates this run's model.
    replaced = earlier_derived_hashes(out_dir)
    split, arrays = prepare_split(options)
    # Which split.json this model is trained with: a later run into this folder cut short
    # (--overwrite) writes another beside this model, and model-card refuses that pair.
    split_sha256 = sha256_of(out_dir / 'split.json')
    num_classes = len(split.classes)
    train_images, train_labels = arrays['train']
    val_images, val_labels = arrays['val']
    print(f'{num_classes} classes; train {len(train_labels)}, val {len(val_labels)}, '
          f'test {len(arrays["test"][1])} photos (test kept out of training)', flush=True)

    config = ModelConfig(num_classes=num_classes, input_size=options.input_size,
                         width=options.width, architecture=options.architecture,
                         min_channels=(min_channels_of(start_model) if start_model is not None
                                       else MIN_CHANNELS))
    model = build_model(config)
    if plan.transfer:
        transplant(start_model, model, copy_head=copy_head)
        if options.batch_norm == 'adapt':
            batches = adapt_batch_norm(model, train_images, seed=options.seed)
            print(f'BatchNorm statistics re-estimated on the training photos ({batches} '
                  'batches)', flush=True)
    elif start_model is not None:
        warm_start(model, start_model, options.init_weights)
    del start_model

    train_ds, val_ds = make_datasets(options, arrays, num_classes, options.batch_size)
    model_path = out_dir / 'model.keras'
    checkpoint_path = out_dir / CHECKPOINT_FILENAME
    if checkpoint_path.exists():
        print(f'replacing the best checkpoint of an interrupted run, {checkpoint_path}',
              file=sys.stderr)
        checkpoint_path.unlink()
    loss = keras.losses.CategoricalCrossentropy(label_smoothing=options.label_smoothing)
    verbose = options.verbose if options.verbose is not None \
        else (1 if stdout_is_terminal() else 0)
    clock = EpochClock(plan.head_epochs + plan.epochs)
    steps_per_epoch = max(1, int(np.ceil(len(train_labels) / options.batch_size)))
    histories: list[dict] = []
    stages: list[dict] = []
    best = -1.0

    kept: dict = {}  # the epoch (over all stages) and validation accuracy checkpointed

    def fit(stage: str, epochs: int, optimizer, extra: list) -> None:
        nonlocal best
        model.compile(optimizer=optimizer, loss=loss, metrics=['accuracy'])
        checkpoint = keras.callbacks.ModelCheckpoint(
            str(checkpoint_path), monitor='val_accuracy', save_best_only=True,
            initial_value_threshold=best if best >= 0 else None)
        callbacks = [checkpoint,
                     checkpoint_tracker(kept, sum(item['epochs_run'] for item in stages)),
                     *extra, epoch_logger(stage, epochs, clock),
                     time_budget_callback(options.time_budget_min, started)]
        history = model.fit(train_ds, validation_data=val_ds, epochs=epochs,
                            callbacks=callbacks, verbose=verbose, shuffle=False).history
        ran = len(history.get('loss', []))
        clock.skip(epochs - ran)
        stage_best = float(max(history.get('val_accuracy', [0.0])))
        best = max(best, stage_best)
        histories.append(history)
        stages.append({'stage': stage, 'epochs_planned': epochs, 'epochs_run': ran,
                       'best_val_accuracy': stage_best})

    unfrozen: list[str] = ['all']
    try:
        if plan.head_epochs > 0:
            freeze_backbone(model)
            fit('head', plan.head_epochs, keras.optimizers.Adam(plan.head_learning_rate), [])
        if plan.transfer:
            unfrozen = set_trainable(model, options.unfreeze)
        if not out_of_time(options.time_budget_min, started) \
                and (unfrozen or not plan.transfer):
            stage = 'fine-tune' if plan.transfer else 'train'
            fit(stage, plan.epochs,
                keras.optimizers.Adam(learning_rate_schedule(plan, steps_per_epoch)),
                [keras.callbacks.EarlyStopping(monitor='val_accuracy', patience=plan.patience,
                                               restore_best_weights=True)])
    except KeyboardInterrupt:
        print(interrupted_message(checkpoint_path, kept, options.data_dir), file=sys.stderr,
              flush=True)
        raise
    seconds = time.monotonic() - started
    if not stages:
        raise RuntimeError(f'no training stage ran (the time budget of '
                           f'{options.time_budget_min} min was spent before it): nothing '
                           f'was written to {model_path}')
    if not checkpoint_path.is_file():
        raise RuntimeError(f'no epoch gave a validation accuracy to keep: nothing was '
                           f'written to {model_path}')
    # Only now, the run over: model.keras is always a finished run's best checkpoint.
    os.replace(checkpoint_path, model_path)
    merged = merge_histories(histories)
    write_history(merged, out_dir / 'history.csv')
    plot_training_curves(merged, out_dir / 'training_curves.png')
    epochs_run = len(merged.get('loss', []))
    summary = {
        'options': asdict(options),
        'plan': plan.to_dict(),
        'model': asdict(config),
        'init': 'warm start' if options.init_weights else options.init,
        'unfrozen_stages': unfrozen if plan.transfer else ['all'],
        'stages': stages,
        'classes': list(split.classes),
        'epochs_run': epochs_run,
        'best_val_accuracy': best,
        'train_seconds': round(seconds, 1),
        'seconds_per_epoch': round(clock.spent / max(clock.done, 1), 1),
        'parameters': int(model.count_params()),
        'tensorflow': tf.__version__,
        # Which model.keras this summary describes: model-card checks it.
        'model_sha256': sha256_of(model_path),
        'split_sha256': split_sha256,
    }
    if replaced:
        # The earlier run's export and evaluations left here: they describe its model.
        summary['replaced_outputs'] = replaced
    (out_dir / 'train_summary.json').write_text(json.dumps(summary, indent=1) + '\n')
    print(f'best validation accuracy {best:.4f} after {epochs_run} epochs '
          f'({seconds / 60:.1f} min); model at {model_path}', flush=True)
    return TrainResult(model_path=model_path, best_val_accuracy=best, epochs_run=epochs_run,
                       seconds=seconds)


def checkpoint_tracker(kept: dict, epochs_before: int):
    """Return a Keras callback that notes in ``kept`` each epoch the checkpoint keeps.

    It mirrors ``ModelCheckpoint(save_best_only=True)`` on ``val_accuracy`` (placed after
    it): ``kept['epoch']`` counts over all stages (``epochs_before`` ran in earlier ones).
    """
    import tensorflow as tf

    def on_epoch_end(epoch: int, logs: dict | None = None) -> None:
        accuracy = (logs or {}).get('val_accuracy')
        if accuracy is not None and accuracy > kept.get('val_accuracy', -math.inf):
            kept.update(epoch=epochs_before + epoch + 1, val_accuracy=float(accuracy))

    return tf.keras.callbacks.LambdaCallback(on_epoch_end=on_epoch_end)


def interrupted_message(checkpoint_path: Path, kept: dict, data_dir: str) -> str:
    """Return what an interrupted run leaves: its best checkpoint, and how to go on.

    A run into a folder that held an earlier run (``--overwrite``) has already written its
    split.json there: the earlier model.keras stays, but no longer with its own split, and
    export and evaluation of that pair are refused (:mod:`run_files`).
    """
    folder = checkpoint_path.parent
    earlier = folder / 'model.keras'
    if earlier.is_file():
        model_note = (f"the earlier run's {earlier} is still there, but "
                      f"{folder / 'split.json'} is now this run's: export and evaluate refuse "
                      f'that pair until a run into {folder} ends')
    else:
        model_note = 'no model.keras was written'
    if not checkpoint_path.is_file() or 'epoch' not in kept:
        what = model_note if earlier.is_file() else f'nothing kept in {folder}'
        return f'training interrupted before any epoch was checkpointed: {what}'
    return (f'training interrupted: kept {checkpoint_path}, the best checkpoint so far (epoch '
            f'{kept["epoch"]}, validation accuracy {kept["val_accuracy"]:.4f}); {model_note}. '
            'Continue from it into a new folder: plant-disease train --data '
            f'{data_dir} --init-weights {checkpoint_path} --out NEW_FOLDER (a train into '
            f'{folder} is refused while it holds it, unless --overwrite)')


def warm_start(model, previous, path: str) -> None:
    """Copy every weight of ``previous`` (loaded from ``path``) into ``model``.

    Same architecture, width and classes; the input size may differ: the convolutions and
    the global pooling do not depend on it, so a phase at a higher resolution can start
    from a lower one.
    """
    weights = previous.get_weights()
    if [w.shape for w in weights] != [w.shape for w in model.get_weights()]:
        raise ValueError(f"{path} does not match this run's architecture, width or classes")
    model.set_weights(weights)


def make_datasets(options: TrainOptions, arrays: dict, num_classes: int, batch_size: int):
    """Return the (augmented, shuffled) training and the validation ``tf.data`` pipelines."""
    import tensorflow as tf

    train_images, train_labels = arrays['train']
    val_images, val_labels = arrays['val']
    augment = make_augmenter(options.seed, options.augment_strength)

    def one_hot(images, labels):
        return tf.cast(images, tf.float32), tf.one_hot(labels, num_classes)

    train_ds = (tf.data.Dataset.from_tensor_slices((train_images, train_labels))
                .shuffle(len(train_labels), seed=options.seed, reshuffle_each_iteration=True)
                .batch(batch_size)
                .map(one_hot, num_parallel_calls=tf.data.AUTOTUNE))
    if options.augment_strength > 0:
        train_ds = train_ds.map(augment, num_parallel_calls=tf.data.AUTOTUNE)
    train_ds = train_ds.prefetch(tf.data.AUTOTUNE)
    val_ds = (tf.data.Dataset.from_tensor_slices((val_images, val_labels))
              .batch(batch_size * 2).map(one_hot).prefetch(tf.data.AUTOTUNE))
    return train_ds, val_ds


def learning_rate_schedule(plan: TrainingPlan, steps_per_epoch: int):
    """Return cosine decay from the plan's rate, after a linear warm-up from a tenth of it."""
    import tensorflow as tf

    warmup_steps = plan.warmup_epochs * steps_per_epoch
    decay_steps = max(1, steps_per_epoch * plan.epochs - warmup_steps)
    if warmup_steps == 0:
        return tf.keras.optimizers.schedules.CosineDecay(
            plan.learning_rate, decay_steps=decay_steps, alpha=0.02)
    return tf.keras.optimizers.schedules.CosineDecay(
        plan.learning_rate / 10, decay_steps=decay_steps, alpha=0.02,
        warmup_target=plan.learning_rate, warmup_steps=warmup_steps)


def merge_histories(histories: list[dict]) -> dict[str, list[float]]:
    """Concatenate the per-epoch metrics of consecutive stages."""
    keys = [key for key in ('loss', 'accuracy', 'val_loss', 'val_accuracy')
            if any(key in history for history in histories)]
    return {key: [float(value) for history in histories for value in history.get(key, [])]
            for key in keys}


def write_history(history: dict[str, list[float]], path: Path) -> None:
    """Write the per-epoch metrics as CSV (``epoch`` counts over all stages from 0)."""
    keys = list(history)
    rows = [','.join(['epoch', *keys])]
    for epoch in range(len(history.get('loss', []))):
        rows.append(','.join([str(epoch), *(f'{history[key][epoch]:.6f}' for key in keys)]))
    path.write_text('\n'.join(rows) + '\n')


def out_of_time(minutes: float | None, started: float) -> bool:
    """Return whether a time budget of ``minutes`` counted from ``started`` is spent."""
    return minutes is not None and time.monotonic() - started > minutes * 60


def time_budget_callback(minutes: float | None, started: float | None = None):
    """Return a Keras callback that stops training after the epoch exhausting ``minutes``.

    The budget counts from ``started`` (a ``time.monotonic()`` value) when given, so that
    consecutive stages share it; otherwise from the start of this ``fit``.
    """
    import tensorflow as tf

    class TimeBudget(tf.keras.callbacks.Callback):
        def on_train_begin(self, logs=None) -> None:
            self.started = started if started is not None else time.monotonic()

        def on_epoch_end(self, epoch: int, logs=None) -> None:
            if out_of_time(minutes, self.started):
                print(f'time budget of {minutes:.3g} min reached after epoch {epoch + 1}',
                      flush=True)
                self.model.stop_training = True

    return TimeBudget()
