"""One line per epoch with a time estimate: formatting and the estimate itself."""

from __future__ import annotations

from helpers.clock import FakeClock

from plant_disease_ros.training.progress import (
    EpochClock,
    format_duration,
    format_epoch_line,
)


def test_estimate_is_mean_epoch_time_times_epochs_left() -> None:
    clock = FakeClock()
    epochs = EpochClock(10, clock=clock)
    for seconds in (10.0, 30.0):
        epochs.start_epoch()
        clock.now += seconds
        assert epochs.end_epoch() == seconds
    assert epochs.seconds_left() == 20.0 * 8
    epochs.skip(6)  # early stop ended a stage six epochs before its plan
    assert epochs.seconds_left() == 20.0 * 2
    epochs.start_stage()  # a slower stage: its own epochs make the estimate
    epochs.start_epoch()
    clock.now += 60.0
    epochs.end_epoch()
    assert epochs.seconds_left() == 60.0 * 1


def test_epoch_line_is_one_line_without_carriage_returns() -> None:
    line = format_epoch_line('fine-tune', 3, 20, {'loss': 0.41234, 'accuracy': 0.9,
                                                  'val_loss': 0.5, 'val_accuracy': 0.875},
                             42.0, 17 * 42.0)
    assert '\r' not in line and '\n' not in line
    assert line.startswith('fine-tune epoch 3/20')
    assert 'val_acc 0.8750' in line and 'about 11.9 min left' in line
    assert format_epoch_line('head', 5, 5, {}, 3.0, 0.0).endswith('done')


def test_durations_read_naturally() -> None:
    assert format_duration(42) == '42 s'
    assert format_duration(150) == '2.5 min'
    assert format_duration(3900) == '1 h 05 min'
