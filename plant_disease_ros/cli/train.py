"""``plant-disease train``: train a classifier on a folder of class folders.

Two recipes: ``lab`` (the default) trains on one photo folder: by default from the shipped
model's backbone (``--init shipped``: a new head, then fine-tuning), or ``--init scratch``,
``--init RUN/model.keras``, or a warm start with ``--init-weights``; ``field`` fine-tunes
a lab model for the field (lab + field photos + non-leaf scenes, a 22nd label
``no_leaf``, calibrated scores; see :mod:`plant_disease_ros.training.field_train`).
"""

from __future__ import annotations

import argparse
from dataclasses import replace

from plant_disease_ros.training.calibration import OBJECTIVES
from plant_disease_ros.training.model import ARCHITECTURES
from plant_disease_ros.training.train import (
    check_out_dir,
    DEFAULT_CACHE_DIR,
    train,
    TrainOptions,
)

RECIPES = ('lab', 'field')
# Lab-recipe options (argparse default None) and their lab defaults where they have one;
# the field recipe refuses them when given (it would ignore them).
LAB_ONLY = {'init': 'shipped', 'width': None, 'head_epochs': None, 'unfreeze': None,
            'batch_norm': 'adapt', 'patience': None, 'per_class': None,
            'augment_strength': 1.0}
# Field-recipe defaults of the options whose argparse default is None (the lab recipe
# derives them from the dataset size: plant_disease_ros.training.schedule).
FIELD_DEFAULTS = {'learning_rate': 8e-4, 'val_fraction': 0.15, 'test_fraction': 0.25,
                  'epochs': 30, 'input_size': 128, 'batch_size': 64}


def at_least(minimum: int):
    """Return an argparse ``type`` accepting integers from ``minimum`` up."""

    def parse(text: str) -> int:
        try:
            value = int(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f'invalid int value: {text!r}') from None
        if value < minimum:
            raise argparse.ArgumentTypeError(f'must be >= {minimum}, got {value}')
        return value

    return parse


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Declare the ``train`` options."""
    parser.add_argument('--recipe', choices=RECIPES, default='lab',
                        help='lab: one photo folder; field: lab model -> field-fit model '
                             'with no_leaf (needs --init-weights, --lab-split, '
                             '--field-data, --negatives)')
    parser.add_argument('--data', required=True,
                        help='folder of <class>/<image> photos (field recipe: the lab photos)')
    parser.add_argument('--out', required=True,
                        help='output folder for the run (refused when it already holds a '
                             'trained run: model.keras or train_summary.json, or the best '
                             'checkpoint of an interrupted one: checkpoint.keras, '
                             'model_uncalibrated.keras)')
    parser.add_argument('--overwrite', action='store_true',
                        help='replace a trained run already in --out (its model, history, '
                             'curves and summary; its export and evaluation are then stale)')
    parser.add_argument('--init', default=None,
                        help="lab recipe: shipped (the shipped model's backbone, a new head, "
                             "two stages; default), scratch, or a run's model.keras")
    parser.add_argument('--architecture', choices=ARCHITECTURES, default=None,
                        help="default: the --init model's; resnet_lite from scratch")
    parser.add_argument('--width', type=float, default=None,
                        help="width multiplier (alpha); default: the --init model's; 0.75 "
                             'from scratch')
    parser.add_argument('--input-size', type=at_least(1), default=None,
                        help="square input side, px (lab: the --init or --init-weights "
                             "model's: 144 for the shipped one, 96 from scratch; field: 128, "
                             "not the --init-weights model's: the shipped model's last "
                             'phases used --input-size 144 --cache-size 160)')
    parser.add_argument('--epochs', type=at_least(1), default=None,
                        help='lab: scaled with the dataset (fine-tune stage of a transfer '
                             'run); field: 30')
    parser.add_argument('--head-epochs', type=at_least(0), default=None,
                        help='lab transfer runs: epochs of the head-only stage (scaled)')
    parser.add_argument('--unfreeze', type=at_least(0), default=None,
                        help='lab transfer runs: fine-tune only the last N backbone stages '
                             '(resnet_lite has 5: stem, stage1..4; 0: head only; default all)')
    parser.add_argument('--batch-norm', choices=('adapt', 'source'), default=None,
                        help='lab transfer runs: re-estimate the BatchNorm statistics on the '
                             "training photos first (default), or keep the source model's")
    parser.add_argument('--batch-size', type=at_least(1), default=None,
                        help='lab: 32, or 64 from 4,000 training photos; field: 64')
    parser.add_argument('--learning-rate', type=float, default=None,
                        help='peak learning rate (lab: 1e-3 fine-tuning, 2e-3 from scratch; '
                             'field: 8e-4)')
    parser.add_argument('--patience', type=at_least(0), default=None,
                        help='early stopping: epochs without validation gain (lab recipe; '
                             'scaled with the epochs)')
    parser.add_argument('--seed', type=int, default=42,
                        help='seeds weights, batch order and augmentation')
    parser.add_argument('--split-seed', type=int, default=42,
                        help='seeds the train/val/test split (and --per-class); apart from '
                             '--seed, so a run with another --seed keeps the same test photos '
                             'out of training (default 42)')
    parser.add_argument('--val-fraction', type=float, default=None,
                        help='lab: about 50 photos a class, 10-20 %%; field: 0.15 of each '
                             'field folder')
    parser.add_argument('--test-fraction', type=float, default=None,
                        help='lab: 0.15; field: 0.25 of each field folder')
    parser.add_argument('--per-class', type=at_least(1), default=None,
                        help='use at most this many photos a class (smoke runs, lab recipe)')
    parser.add_argument('--augment-strength', type=float, default=None,
                        help='0 turns augmentation off (lab recipe)')
    parser.add_argument('--time-budget-min', type=float, default=None,
                        help='stop after the epoch that passes this many minutes')
    parser.add_argument('--cache-dir', default=str(DEFAULT_CACHE_DIR),
                        help='where decoded photos are cached ("" for no cache)')
    parser.add_argument('--init-weights', default=None,
                        help='warm start from this Keras model (same architecture and '
                             'classes, all weights, one stage; overrides --init; refused when '
                             'the split.json or labels.txt beside it names other classes or '
                             'another order): a second, '
                             "lower-learning-rate phase, or the field recipe's lab model")
    parser.add_argument('--threads', type=at_least(1), default=None, help='TensorFlow CPU threads')
    parser.add_argument('--quiet', action='store_true',
                        help='one line per epoch, no progress bar (the default when stdout '
                             'is not a terminal)')
    field = parser.add_argument_group('field recipe')
    field.add_argument('--lab-split', default=None,
                       help="the lab model's split.json (its test photos stay out)")
    field.add_argument('--field-data', default=None,
                       help='folder of field photo sets (<set>/<class>/<image>)')
    field.add_argument('--negatives', default=None,
                       help='folder of non-leaf scenes (<kind>/<image>), labelled no_leaf')
    field.add_argument('--steps-per-epoch', type=at_least(1), default=120,
                       help='mixed batches an epoch')
    field.add_argument('--mix', default=None,
                       help='share of each batch source, e.g. "lab=0.3,lab_composite=0.25,'
                            'field=0.25,negative_photo=0.1,synthetic=0.1" (unnamed sources '
                            'keep their default)')
    field.add_argument('--warmup-learning-rate', type=float, default=1e-4,
                       help='rate at the start of the one-epoch warm-up')
    field.add_argument('--label-smoothing', type=float, default=0.05,
                       help='label smoothing of the cross-entropy (0 for hard targets)')
    field.add_argument('--field-augment', type=float, default=1.0,
                       help='strength of the per-frame augmentation, 0..1 (1: full; about '
                            '0.5 for a short last stage)')
    field.add_argument('--distill-from', default=None,
                       help='lab model (Keras) whose softened scores are blended into the '
                            'targets of the plain lab rows, to keep its lab accuracy')
    field.add_argument('--distill-weight', type=float, default=0.6,
                       help="share of the teacher's scores in those targets (0..1)")
    field.add_argument('--distill-temperature', type=float, default=1.0,
                       help="softening of the teacher's scores (above 1 the student also "
                            'learns lower confidence on lab leaves)')
    field.add_argument('--pose-distill', type=int, default=0, choices=(0, 2, 4, 8),
                       help='blend into the targets of the field and composited lab rows '
                            "the start model's (--init-weights) scores averaged over this "
                            'many right-angle poses of the frame (as test_time_poses), so '
                            'one pass learns what the pose mean knows; 0: off')
    field.add_argument('--pose-distill-weight', type=float, default=0.5,
                       help='share of the pose-averaged scores in those targets (0..1)')
    field.add_argument('--calibrate-by', choices=OBJECTIVES, default=OBJECTIVES[0],
                       help='adaptive (default): the temperature minimising the negative '
                            'log-likelihood, then a per-frame scale of the logits fitted the '
                            'same way (confident lab-like frames sharpened, unfamiliar field '
                            'frames softened; the export puts it into the int8 model); nll: '
                            'the temperature alone (over-confident domains pull every score '
                            'down); domain-ece: the temperature minimising the mean '
                            'per-domain ECE (more wrong answers of an over-confident domain '
                            'accepted); domains weighted equally')
    field.add_argument('--ema-momentum', type=float, default=None,
                       help='validate and keep an exponential moving average of the '
                            'weights (e.g. 0.998: about the last 500 batches) instead of '
                            "the last batch's weights; off by default")
    field.add_argument('--cutmix', type=float, default=0.0,
                       help='share (0..1) of the field and composited lab rows that get a '
                            "box of another such row's frame, targets mixed by area "
                            '(CutMix); 0, the default, turns it off')
    field.add_argument('--motion-blur', type=float, default=0.0,
                       help='field recipe: share (0..1) of frames smeared by a longer '
                            'streak, as a camera on the move makes it (3 to '
                            '--motion-blur-max px along rows or columns), not scaled by '
                            '--field-augment; 0, the default, turns it off')
    field.add_argument('--motion-blur-max', type=at_least(3), default=16,
                       help='longest such streak, px of the input size')
    field.add_argument('--cache-size', type=at_least(1), default=144,
                       help='side of the decoded training photos, px (crops come from it)')


def _resolved(args: argparse.Namespace, defaults: dict) -> dict:
    return {key: (getattr(args, key) if getattr(args, key) is not None else value)
            for key, value in defaults.items()}


def run(args: argparse.Namespace) -> int:
    """Train and print where the model is.

    A ``--out`` that holds a trained run is refused first, unless ``--overwrite``.
    """
    check_out_dir(args.out, args.overwrite)
    if args.recipe == 'field':
        return run_field(args)
    lab = _resolved(args, LAB_ONLY)
    options = TrainOptions(
        data_dir=args.data, out_dir=args.out, input_size=args.input_size,
        width=lab['width'], architecture=args.architecture, epochs=args.epochs,
        batch_size=args.batch_size, learning_rate=args.learning_rate,
        patience=lab['patience'], seed=args.seed, split_seed=args.split_seed,
        val_fraction=args.val_fraction,
        test_fraction=args.test_fraction, per_class=lab['per_class'],
        augment_strength=lab['augment_strength'], time_budget_min=args.time_budget_min,
        cache_dir=args.cache_dir or None, init=lab['init'], init_weights=args.init_weights,
        head_epochs=lab['head_epochs'], unfreeze=lab['unfreeze'], batch_norm=lab['batch_norm'],
        threads=args.threads, verbose=0 if args.quiet else None, overwrite=args.overwrite)
    result = train(options)
    print(f'model: {result.model_path} (best val accuracy {result.best_val_accuracy:.4f})')
    return 0


def run_field(args: argparse.Namespace) -> int:
    """Run the field recipe and print where the calibrated model is."""
    from plant_disease_ros.training.field_augment import AugmentOptions, SourceMix
    from plant_disease_ros.training.field_train import FieldTrainOptions, train_field

    ignored = [f'--{name.replace("_", "-")}' for name in LAB_ONLY
               if getattr(args, name) is not None]
    if ignored:
        raise ValueError(f'--recipe field does not use {", ".join(ignored)} (lab recipe '
                         'options): leave them out')
    missing = [flag for flag, value in (('--init-weights', args.init_weights),
                                        ('--lab-split', args.lab_split),
                                        ('--field-data', args.field_data),
                                        ('--negatives', args.negatives)) if not value]
    if missing:
        raise ValueError(f'the field recipe needs {", ".join(missing)}')
    values = _resolved(args, FIELD_DEFAULTS)
    options = FieldTrainOptions(
        lab_data=args.data, lab_split=args.lab_split, field_data=args.field_data,
        negatives=args.negatives, init_weights=args.init_weights, out_dir=args.out,
        input_size=values['input_size'], cache_size=args.cache_size,
        epochs=values['epochs'], steps_per_epoch=args.steps_per_epoch,
        batch_size=values['batch_size'], learning_rate=values['learning_rate'], seed=args.seed,
        split_seed=args.split_seed,
        val_fraction=values['val_fraction'], test_fraction=values['test_fraction'],
        time_budget_min=args.time_budget_min, cache_dir=args.cache_dir or None,
        threads=args.threads, warmup_learning_rate=args.warmup_learning_rate,
        distill_from=args.distill_from, distill_weight=args.distill_weight,
        distill_temperature=args.distill_temperature, architecture=args.architecture,
        label_smoothing=args.label_smoothing, calibration_objective=args.calibrate_by,
        ema_momentum=args.ema_momentum, cutmix=args.cutmix,
        pose_distill=args.pose_distill, pose_distill_weight=args.pose_distill_weight)
    if args.mix:
        options.mix = SourceMix.parse(args.mix)
    if not 0.0 <= args.motion_blur <= 1.0:
        raise ValueError(f'--motion-blur must be in 0..1, got {args.motion_blur}')
    options.augment = replace(AugmentOptions.scaled(args.field_augment),
                              motion_blur_probability=args.motion_blur,
                              motion_blur_max_px=args.motion_blur_max)
    summary = train_field(options)
    print(f'model: {args.out}/model.keras (best mean domain accuracy '
          f'{summary["best_val_score"]:.4f} at epoch {summary["best_epoch"]}, temperature '
          f'{summary["temperature"]:.3f})')
    return 0
