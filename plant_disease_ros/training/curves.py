"""Training-curve pictures."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path


def plot_training_curves(history: Mapping[str, Sequence[float]], path: str | Path) -> Path:
    """Plot loss and accuracy per epoch (train and validation) into a PNG at ``path``."""
    import matplotlib

    matplotlib.use('Agg')
    import matplotlib.pyplot as plt

    epochs = range(1, len(history.get('loss', [])) + 1)
    figure, (loss_axis, accuracy_axis) = plt.subplots(1, 2, figsize=(10, 4))
    for key, style in (('loss', '-'), ('val_loss', '--')):
        if key in history:
            loss_axis.plot(epochs, history[key], style, label=key.replace('_', ' '))
    for key, style in (('accuracy', '-'), ('val_accuracy', '--')):
        if key in history:
            accuracy_axis.plot(epochs, history[key], style, label=key.replace('_', ' '))
    loss_axis.set(title='Loss', xlabel='epoch', ylabel='cross-entropy')
    accuracy_axis.set(title='Accuracy', xlabel='epoch', ylabel='top-1', ylim=(0, 1.0))
    for axis in (loss_axis, accuracy_axis):
        axis.grid(alpha=0.3)
        axis.legend()
    figure.tight_layout()
    path = Path(path)
    figure.savefig(path, dpi=110)
    plt.close(figure)
    return path
