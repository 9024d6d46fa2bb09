"""Check that a run folder's model and split are the ones its ``train_summary.json`` describes.

A training run records the sha256 of its ``model.keras`` and of the ``split.json`` it
trained with. A later run into the same folder (``train --overwrite``) writes its own
``split.json`` before it trains; cut short, it leaves that split beside the earlier
run's model, whose summary still describes the earlier split. Export (labels and
calibration photos from the split), evaluation on the run's split and the model card
must not pair the two. No TensorFlow here.
"""

from __future__ import annotations

import json
from pathlib import Path

from plant_disease_ros.core.atomic_files import sha256_of

SUMMARY_FILENAME = 'train_summary.json'


class RunFilesMismatch(ValueError):
    """A run folder's model.keras or split.json is not the one its summary records."""


def recorded_summary(run_dir: str | Path) -> dict:
    """Return the run's ``train_summary.json`` as a dict ({} when the folder has none).

    Raises :class:`RunFilesMismatch` when the file is there but cannot be read as a JSON
    object: what it records cannot be checked then.
    """
    path = Path(run_dir) / SUMMARY_FILENAME
    if not path.is_file():
        return {}
    try:
        summary = json.loads(path.read_text())
    except (OSError, UnicodeDecodeError, ValueError) as error:
        raise RunFilesMismatch(f"cannot read {path} to check the run's model and split: "
                               f'{error}') from error
    if not isinstance(summary, dict):
        raise RunFilesMismatch(f'{path} is not a training summary (a JSON object): cannot '
                               "check the run's model and split")
    return summary


def check_split_manifest(split_path: str | Path) -> None:
    """Raise :class:`RunFilesMismatch` when ``split_path`` is not the split its run trained with.

    The run is the folder that holds ``split_path``; a folder without a summary, or a
    summary that records no ``split_sha256`` (runs trained before it was recorded, field
    fits), has nothing to check.
    """
    split_path = Path(split_path)
    run_dir = split_path.parent
    trained_with = recorded_summary(run_dir).get('split_sha256')
    if not trained_with or not split_path.is_file() or sha256_of(split_path) == trained_with:
        return
    checkpoint = run_dir / 'checkpoint.keras'
    resume = (f'; the cut-short run left {checkpoint}: continue it with plant-disease train '
              f'--init-weights {checkpoint} --out NEW_FOLDER' if checkpoint.is_file() else '')
    raise RunFilesMismatch(
        f'{split_path} is not the split {run_dir / SUMMARY_FILENAME} was trained with (another '
        'sha256): a later run into this folder, cut short, wrote it, so its classes and '
        'photos are not those of the model there (its test photos may be photos that model '
        'trained on); train again into this folder (--overwrite), or use the run folder '
        f'that made the model{resume}')


def check_run_model(run_dir: str | Path) -> None:
    """Raise :class:`RunFilesMismatch` when ``run_dir/model.keras`` is not the summary's model.

    Nothing to check when the summary records no ``model_sha256`` or there is no model.
    """
    run_dir = Path(run_dir)
    keras_path = run_dir / 'model.keras'
    recorded = recorded_summary(run_dir).get('model_sha256')
    if recorded and keras_path.is_file() and sha256_of(keras_path) != recorded:
        raise RunFilesMismatch(
            f'{keras_path} is not the model {run_dir / SUMMARY_FILENAME} describes (another '
            'sha256): the file was replaced after the run; train again, or use the run '
            'folder that made it')


def check_run_files(run_dir: str | Path) -> None:
    """Raise :class:`RunFilesMismatch` unless the run's model.keras and split.json are its own.

    Each is compared with the sha256 that ``train_summary.json`` records for it, when it
    records one (:func:`check_run_model`, :func:`check_split_manifest`).
    """
    check_run_model(run_dir)
    check_split_manifest(Path(run_dir) / 'split.json')
