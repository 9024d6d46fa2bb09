"""Train a plant disease classifier on a folder of leaf photos (TensorFlow/Keras, CPU or GPU).

Outputs in ``out_dir``: ``split.json`` (the reproducible split), ``model.keras`` (the best
checkpoint by validation accuracy), ``history.csv``, ``training_curves.png`` and
``train_summary.json``.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
import json
import os
from pathlib import Path
import sys
import time

import numpy as np

from plant_disease_ros.training.dataset import (
    load_images,
    print_progress,
    scan_dataset,
    split_files,
    subsample,
    write_manifest,
)
from plant_disease_ros.training.model import build_model, make_augmenter, ModelConfig

DEFAULT_CACHE_DIR = Path(os.environ.get('XDG_CACHE_HOME', Path.home() / '.cache')) \
    / 'plant_disease_ros'


@dataclass
class TrainOptions:
    """Everything a training run depends on; saved with its outputs."""

    data_dir: str
    out_dir: str
    input_size: int = 96
    width: float = 0.75
    architecture: str = 'resnet_lite'
    epochs: int = 40
    batch_size: int = 64
    learning_rate: float = 2e-3
    patience: int = 8
    seed: int = 42
    val_fraction: float = 0.10
    test_fraction: float = 0.15
    per_class: int | None = None
    augment_strength: float = 1.0
    label_smoothing: float = 0.05
    time_budget_min: float | None = None
    cache_dir: str | None = str(DEFAULT_CACHE_DIR)
    init_weights: str | None = None
    threads: int | None = None
    verbose: int = 2


@dataclass
class TrainResult:
    """What a run produced: the best validation accuracy and where the model is."""

    model_path: Path
    best_val_accuracy: float
    epochs_run: int
    seconds: float


def prepare_split(options: TrainOptions):
    """Scan, decode (cached) and split the dataset; write ``split.json``.

    Returns ``(split, arrays)`` where ``arrays[name] = (images, labels)`` for each split.
    """
    out_dir = Path(options.out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    index = scan_dataset(options.data_dir)
    files = list(index.files)
    if options.per_class:
        files = subsample(files, options.per_class, seed=options.seed)
    images, labels, unreadable = load_images(
        index.root, files, options.input_size, cache_dir=options.cache_dir,
        progress=print_progress(f'decoding {len(files)} photos at {options.input_size} px'))
    if unreadable:
        print(f'skipped {len(unreadable)} unreadable images (listed in split.json)',
              file=sys.stderr)
    skipped = set(unreadable)
    readable = [item for item in files if item[0] not in skipped]
    split = split_files(readable, index.classes, seed=options.seed,
                        val_fraction=options.val_fraction, test_fraction=options.test_fraction)
    write_manifest(out_dir / 'split.json', split, index.root, unreadable)
    position = {path: row for row, (path, _) in enumerate(readable)}
    arrays = {}
    for name, part in split.parts.items():
        rows = np.array([position[path] for path, _ in part], dtype=np.int64)
        arrays[name] = (images[rows], labels[rows])
    return split, arrays


def train(options: TrainOptions) -> TrainResult:
    """Run one training; return the best checkpoint and its validation accuracy."""
    import tensorflow as tf

    from plant_disease_ros.training.curves import plot_training_curves

    keras = tf.keras
    if options.threads:
        tf.config.threading.set_intra_op_parallelism_threads(options.threads)
        tf.config.threading.set_inter_op_parallelism_threads(options.threads)
    keras.utils.set_random_seed(options.seed)
    out_dir = Path(options.out_dir)
    split, arrays = prepare_split(options)
    num_classes = len(split.classes)
    train_images, train_labels = arrays['train']
    val_images, val_labels = arrays['val']
    print(f'{num_classes} classes; train {len(train_labels)}, val {len(val_labels)}, '
          f'test {len(arrays["test"][1])} photos (test kept out of training)', file=sys.stderr)

    config = ModelConfig(num_classes=num_classes, input_size=options.input_size,
                         width=options.width, architecture=options.architecture)
    model = build_model(config)
    if options.init_weights:
        # Warm start (a second, lower-learning-rate phase). The input size may differ: the
        # convolutions and the global pooling do not depend on it, so a phase at a higher
        # resolution can start from a lower one.
        previous = keras.models.load_model(options.init_weights, compile=False)
        weights = previous.get_weights()
        if [w.shape for w in weights] != [w.shape for w in model.get_weights()]:
            raise ValueError(f"{options.init_weights} does not match this run's architecture, "
                             'width or classes')
        model.set_weights(weights)
    steps_per_epoch = max(1, int(np.ceil(len(train_labels) / options.batch_size)))
    schedule = keras.optimizers.schedules.CosineDecay(
        options.learning_rate, decay_steps=steps_per_epoch * options.epochs, alpha=0.02,
        warmup_target=None)
    model.compile(
        optimizer=keras.optimizers.Adam(schedule),
        loss=keras.losses.CategoricalCrossentropy(label_smoothing=options.label_smoothing),
        metrics=['accuracy'])

    augment = make_augmenter(options.seed, options.augment_strength)

    def one_hot(images, labels):
        return tf.cast(images, tf.float32), tf.one_hot(labels, num_classes)

    train_ds = (tf.data.Dataset.from_tensor_slices((train_images, train_labels))
                .shuffle(len(train_labels), seed=options.seed, reshuffle_each_iteration=True)
                .batch(options.batch_size)
                .map(one_hot, num_parallel_calls=tf.data.AUTOTUNE))
    if options.augment_strength > 0:
        train_ds = train_ds.map(augment, num_parallel_calls=tf.data.AUTOTUNE)
    train_ds = train_ds.prefetch(tf.data.AUTOTUNE)
    val_ds = (tf.data.Dataset.from_tensor_slices((val_images, val_labels))
              .batch(options.batch_size * 2).map(one_hot).prefetch(tf.data.AUTOTUNE))

    model_path = out_dir / 'model.keras'
    callbacks = [
        keras.callbacks.ModelCheckpoint(str(model_path), monitor='val_accuracy',
                                        save_best_only=True),
        keras.callbacks.EarlyStopping(monitor='val_accuracy', patience=options.patience,
                                      restore_best_weights=True),
        keras.callbacks.CSVLogger(str(out_dir / 'history.csv')),
        time_budget_callback(options.time_budget_min),
    ]
    started = time.monotonic()
    history = model.fit(train_ds, validation_data=val_ds, epochs=options.epochs,
                        callbacks=callbacks, verbose=options.verbose)
    seconds = time.monotonic() - started
    plot_training_curves(history.history, out_dir / 'training_curves.png')
    best = float(max(history.history.get('val_accuracy', [0.0])))
    epochs_run = len(history.history.get('loss', []))
    summary = {
        'options': asdict(options),
        'model': asdict(config),
        'classes': list(split.classes),
        'epochs_run': epochs_run,
        'best_val_accuracy': best,
        'train_seconds': round(seconds, 1),
        'seconds_per_epoch': round(seconds / max(epochs_run, 1), 1),
        'parameters': int(model.count_params()),
        'tensorflow': tf.__version__,
    }
    (out_dir / 'train_summary.json').write_text(json.dumps(summary, indent=1) + '\n')
    print(f'best validation accuracy {best:.4f} after {epochs_run} epochs '
          f'({seconds / 60:.1f} min); model at {model_path}', file=sys.stderr)
    return TrainResult(model_path=model_path, best_val_accuracy=best, epochs_run=epochs_run,
                       seconds=seconds)


def time_budget_callback(minutes: float | None):
    """Return a Keras callback that stops training after the epoch exhausting ``minutes``."""
    import tensorflow as tf

    class TimeBudget(tf.keras.callbacks.Callback):
        def on_train_begin(self, logs=None) -> None:
            self.started = time.monotonic()

        def on_epoch_end(self, epoch: int, logs=None) -> None:
            if minutes is not None and time.monotonic() - self.started > minutes * 60:
                print(f'time budget of {minutes:g} min reached after epoch {epoch + 1}',
                      file=sys.stderr)
                self.model.stop_training = True

    return TimeBudget()
