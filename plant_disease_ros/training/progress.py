"""One line per epoch with a time estimate, for terminals and log files alike.

Keras' progress bar rewrites one line with carriage returns: fine in a terminal, a flood
of partial lines in a CI log or behind ``tee``. A run prints this module's line after
every epoch instead (and shows Keras' bar only when stdout is a terminal).
"""

from __future__ import annotations

from collections.abc import Mapping
import sys
import time
from typing import TextIO


def stdout_is_terminal() -> bool:
    """Return whether stdout is an interactive terminal."""
    isatty = getattr(sys.stdout, 'isatty', None)
    return bool(isatty and isatty())


def format_duration(seconds: float) -> str:
    """Return ``seconds`` as ``42 s``, ``3.5 min`` or ``1 h 05 min``."""
    if seconds < 90:
        return f'{seconds:.0f} s'
    if seconds < 3600:
        return f'{seconds / 60:.1f} min'
    hours, rest = divmod(int(round(seconds)), 3600)
    return f'{hours} h {rest // 60:02d} min'


class EpochClock:
    """Count epochs over all stages of a run and estimate the time left.

    The estimate is the mean epoch time of the current stage times the planned epochs
    left: fine-tuning epochs cost about three head-only epochs, so the estimate of a
    head stage is low and corrects itself in the next stage; early stopping can end a
    run sooner than estimated.
    """

    def __init__(self, planned_epochs: int, clock=time.monotonic) -> None:
        self.planned_epochs = max(1, planned_epochs)
        self.clock = clock
        self.done = 0
        self.spent = 0.0
        self.stage_done = 0
        self.stage_spent = 0.0
        self._epoch_started: float | None = None

    def start_stage(self) -> None:
        """Start a stage: its epoch times replace the previous stage's in the estimate."""
        self.stage_done = 0
        self.stage_spent = 0.0

    def start_epoch(self) -> None:
        """Mark the start of an epoch."""
        self._epoch_started = self.clock()

    def end_epoch(self) -> float:
        """Mark the end of an epoch; return its duration in seconds."""
        started = self._epoch_started if self._epoch_started is not None else self.clock()
        seconds = self.clock() - started
        self.done += 1
        self.spent += seconds
        self.stage_done += 1
        self.stage_spent += seconds
        self._epoch_started = None
        return seconds

    def skip(self, epochs: int) -> None:
        """Drop ``epochs`` planned epochs that will not run (early stop, time budget)."""
        self.planned_epochs = max(self.done, self.planned_epochs - max(0, epochs))

    def seconds_left(self) -> float:
        """Return the estimated seconds for the planned epochs not yet run."""
        if self.done == 0:
            return 0.0
        mean = self.stage_spent / self.stage_done if self.stage_done else self.spent / self.done
        return mean * max(0, self.planned_epochs - self.done)


def format_epoch_line(stage: str, epoch: int, epochs: int, logs: Mapping[str, float],
                      seconds: float, seconds_left: float) -> str:
    """Return the one-line summary of an epoch (metrics, duration, estimate)."""
    parts = [f'{stage} epoch {epoch}/{epochs}']
    for key, label in (('loss', 'loss'), ('accuracy', 'acc'), ('val_loss', 'val_loss'),
                       ('val_accuracy', 'val_acc')):
        if key in logs:
            parts.append(f'{label} {float(logs[key]):.4f}')
    parts.append(format_duration(seconds))
    parts.append(f'about {format_duration(seconds_left)} left' if seconds_left > 0 else 'done')
    return '  '.join(parts)


def epoch_logger(stage: str, epochs: int, clock: EpochClock, stream: TextIO | None = None):
    """Return a Keras callback printing :func:`format_epoch_line` after each epoch."""
    import tensorflow as tf

    class EpochLine(tf.keras.callbacks.Callback):
        def on_train_begin(self, logs=None) -> None:
            clock.start_stage()

        def on_epoch_begin(self, epoch: int, logs=None) -> None:
            clock.start_epoch()

        def on_epoch_end(self, epoch: int, logs=None) -> None:
            seconds = clock.end_epoch()
            line = format_epoch_line(stage, epoch + 1, epochs, logs or {}, seconds,
                                     clock.seconds_left())
            print(line, file=stream or sys.stdout, flush=True)

    return EpochLine()
