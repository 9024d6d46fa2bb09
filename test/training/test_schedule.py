"""The training plan scales with the dataset size; explicit values win."""

from __future__ import annotations

from plant_disease_ros.training.schedule import (
    plan_training,
    VAL_FRACTION_BOUNDS,
    validation_fraction,
)


def test_plantvillage_sized_scratch_plan_is_the_former_fixed_recipe() -> None:
    plan = plan_training(10_760, 21, transfer=False)
    assert (plan.batch_size, plan.epochs, plan.patience) == (64, 40, 8)
    assert plan.learning_rate == 2e-3 and plan.head_epochs == 0
    assert (plan.val_fraction, plan.test_fraction) == (0.10, 0.15)


def test_small_set_gets_more_epochs_and_patience_than_a_large_one() -> None:
    small = plan_training(1_300, 3, transfer=False)
    large = plan_training(10_760, 21, transfer=False)
    assert small.batch_size == 32
    assert small.epochs > large.epochs and small.patience > large.patience
    # About 2,500 optimizer steps: ~29 steps an epoch on 900 training photos.
    assert 70 <= small.epochs <= 100


def test_transfer_plan_has_two_stages_and_a_lower_fine_tune_rate() -> None:
    plan = plan_training(1_300, 3, transfer=True)
    assert plan.head_epochs >= 2 and plan.epochs >= 10
    assert plan.learning_rate < plan.head_learning_rate
    assert plan.patience >= plan.epochs // 2  # no early stop in the first minutes
    assert plan.warmup_epochs == 1
    text = plan.describe(1_300, 3)
    # Files found, before decoding: the split line after it counts the usable photos.
    assert text.startswith('1300 image files, 3 classes: ')
    assert 'stage 1 (head only' in text and 'stage 2 (fine-tune)' in text


def test_validation_share_is_bounded_and_aims_at_fifty_photos_a_class() -> None:
    low, high = VAL_FRACTION_BOUNDS
    assert validation_fraction(100_000, 3) == low
    assert validation_fraction(300, 10) == high
    assert validation_fraction(1_500, 3) == 0.10
    fraction = validation_fraction(1_000, 3)
    assert low < fraction < high and round(1_000 * fraction) == 150


def test_given_values_win() -> None:
    plan = plan_training(1_300, 3, transfer=True, batch_size=8, epochs=3, head_epochs=0,
                         patience=2, learning_rate=1e-4, val_fraction=0.3, test_fraction=0.2)
    assert (plan.batch_size, plan.epochs, plan.head_epochs, plan.patience) == (8, 3, 0, 2)
    assert (plan.learning_rate, plan.val_fraction, plan.test_fraction) == (1e-4, 0.3, 0.2)


def test_a_warm_start_gets_the_fine_tune_rate_unless_one_is_given() -> None:
    """--init-weights continues trained weights: the lower rate of a fine-tune stage."""
    scratch = plan_training(1_300, 3, transfer=False)
    transfer = plan_training(1_300, 3, transfer=True)
    warm = plan_training(1_300, 3, transfer=False, warm_start=True)
    assert warm.learning_rate == transfer.learning_rate == 1e-3 < scratch.learning_rate
    assert (warm.head_epochs, warm.epochs, warm.warmup_epochs) == (0, transfer.epochs, 1)
    assert not warm.transfer and warm.warm_start and not warm.learning_rate_given
    assert ('one stage (warm start, all weights): up to 40 epochs, cosine decay from 0.001 '
            "(the fine-tune rate of a transfer, not from scratch's 0.002) after 1 warm-up "
            'epoch(s)') in warm.describe(1_300, 3)
    given = plan_training(1_300, 3, transfer=False, warm_start=True, learning_rate=6e-4)
    assert given.learning_rate == 6e-4 and given.learning_rate_given
    assert 'cosine decay from 0.0006 (--learning-rate)' in given.describe(1_300, 3)
