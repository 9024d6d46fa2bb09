"""Search the knobs that matter for transfer learning within a time budget.

The knobs: the fine-tuning learning rate, how many backbone stages to unfreeze, the
input size and the augmentation strength (and the width multiplier from scratch). A full
grid of four knobs does not fit an afternoon on a laptop, so the search goes one knob at
a time: the first trial runs every knob's first value (the defaults), then each knob's
other values are tried with the best values found so far, and a knob keeps the value
that scored best on validation before the search moves to the next knob. Each trial is a
short training run (the same code as a full one), usually on a subsample of the photos;
trials run until the budget is spent, and the rest are reported as not run.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
import json
from pathlib import Path
import re
import shutil
import sys
import time
import zipfile

from plant_disease_ros.training.train import (
    CHECKPOINT_FILENAME,
    OptionConflict,
    train,
    TRAINED_OUTPUTS,
    trained_outputs,
    TrainOptions,
)

# The order knobs are searched in: the learning rate matters most after transfer.
KNOBS = ('learning_rate', 'unfreeze', 'input_size', 'augment_strength', 'width')


@dataclass
class SearchSpace:
    """The values of each knob, the first one being the starting point.

    ``unfreeze`` None trains every backbone stage; ``input_size`` and ``width`` None take
    the source model's (or the from-scratch defaults).
    """

    learning_rate: tuple[float | None, ...] = (None, 2e-3, 5e-4)
    unfreeze: tuple[int | None, ...] = (None, 2, 0)
    input_size: tuple[int | None, ...] = (None, 96, 160)
    augment_strength: tuple[float, ...] = (1.0, 0.5)
    width: tuple[float | None, ...] = (None,)

    def start(self) -> dict:
        """Return the first trial: every knob at its first value."""
        return {knob: getattr(self, knob)[0] for knob in KNOBS}

    def size(self) -> int:
        """Return the number of trials a complete one-knob-at-a-time search runs."""
        return 1 + sum(len(getattr(self, knob)) - 1 for knob in KNOBS)


def trial_name(number: int, trial: dict) -> str:
    """Return a folder name that says what a trial changed."""
    parts = [f'trial{number:02d}']
    for knob, short in (('learning_rate', 'lr'), ('unfreeze', 'unfreeze'),
                        ('input_size', 'px'), ('augment_strength', 'aug'), ('width', 'w')):
        value = trial.get(knob)
        if value is not None:
            parts.append(f'{short}{value:g}')
    return '_'.join(parts)


RESULTS_FILENAMES = ('search_results.json', 'search_results.md')
# A folder :func:`trial_name` names, and the files a trial's training run writes in it.
TRIAL_NAME = re.compile(r'trial\d{2,}(_(lr|unfreeze|px|aug|w)[0-9a-z.+-]+)*')
TRIAL_FILES = frozenset({*TRAINED_OUTPUTS, CHECKPOINT_FILENAME, 'split.json', 'history.csv',
                         'training_curves.png'})


def earlier_search_outputs(out_dir: str | Path) -> list[str]:
    """Return what an earlier search left in ``out_dir``: its tables and trained trials."""
    out_dir = Path(out_dir)
    found = [name for name in RESULTS_FILENAMES if (out_dir / name).exists()]
    if out_dir.is_dir():
        found += sorted(entry.name for entry in out_dir.glob('trial*')
                        if entry.is_dir() and trained_outputs(entry))
    return found


def check_search_out_dir(out_dir: str | Path, overwrite: bool = False) -> None:
    """Raise ``FileExistsError`` when an earlier search's results are in ``out_dir``.

    Its trials would be replaced one by one (a trial folder's name says only what the
    trial changed) and its tables rewritten; ``overwrite`` allows it.
    """
    found = earlier_search_outputs(out_dir)
    if found and not overwrite:
        shown = ', '.join(found[:4]) + (f' and {len(found) - 4} more' if len(found) > 4 else '')
        raise FileExistsError(f'--out {out_dir} already holds a search ({shown}): give a new '
                              '--out, or --overwrite to replace it')


def best_run_folder(search_out: str | Path) -> str:
    """Return where the full run of a search's best trial goes: ``<search out>_best``."""
    out = Path(search_out)
    if out.name in ('', '..'):
        out = out.resolve()  # '.' or '..': name the folder itself
    return str(out.with_name(f'{out.name or "search"}_best')) if out.name \
        else str(out / 'search_best')


def planned_trial_names(space: SearchSpace) -> list[str]:
    """Return the folder name of every trial a search of ``space`` may run, in order.

    A trial's name says only the knob it changed (the first one: every knob's first
    value), so the names are known before any trial runs.
    """
    plan = [(None, None)] + [(knob, value) for knob in KNOBS
                             for value in getattr(space, knob)[1:]]
    return [trial_name(number, space.start() if knob is None else {knob: value})
            for number, (knob, value) in enumerate(plan, start=1)]


def kept_reason(entry: Path) -> str | None:
    """Return why a trial-named entry is not the search's to write into (None: it is).

    A link may lead anywhere outside ``--out``; a folder with a file a training run does
    not write holds something of the user's; a file is no trial folder at all.
    """
    if entry.is_symlink():
        return 'it is a link'
    if not entry.exists():
        return None
    if not entry.is_dir():
        return 'it is not a folder'
    if not all(child.name in TRIAL_FILES and child.is_file() and not child.is_symlink()
               for child in entry.iterdir()):
        return 'it holds more than a training run writes'
    return None


def check_kept_trials(out_dir: str | Path, space: SearchSpace) -> None:
    """Raise ``FileExistsError`` when a trial of ``space`` would write into a kept entry.

    A trial trains into its folder replacing what a run wrote there: through a link that
    would replace another run's model outside ``--out``, and in a folder holding the
    user's files it would replace the model beside them. Refused before any trial runs.
    """
    clashes = [f'{Path(out_dir) / name} ({reason})' for name in planned_trial_names(space)
               if (reason := kept_reason(Path(out_dir) / name))]
    if clashes:
        raise FileExistsError(f'the search would train into {", ".join(clashes)}: move '
                              f'{"them" if len(clashes) > 1 else "it"} out of --out '
                              f'{out_dir}, or give a new --out')


def check_search_can_start(base: TrainOptions) -> None:
    """Raise ``ValueError`` when the first trial could not start from ``base``.

    Checked before an earlier search's trials are deleted, so a mistyped ``--data`` or
    ``--init`` leaves them there: the photo folder is a folder, and the start model is a
    file (or a run folder holding one) that is a Keras archive.
    """
    from plant_disease_ros.training.transfer import resolve_init, TransferError

    if not Path(base.data_dir).is_dir():
        raise ValueError(f'--data {base.data_dir} is not a folder of class folders')
    path = Path(base.init_weights) if base.init_weights else resolve_init(base.init)
    if path is not None and not path.is_file():
        raise TransferError(f'cannot start from {path}: no such file')
    if path is not None and path.suffix == '.keras' and not zipfile.is_zipfile(path):
        raise TransferError(f'cannot start from {path}: not a Keras model file (a .keras '
                            'file is a zip archive)')


def remove_earlier_trials(out_dir: str | Path) -> list[str]:
    """Delete the trained trial folders an earlier search left in ``out_dir``; return them.

    Under ``--overwrite`` the new search's table replaces the earlier one, so trials it does
    not list would stay beside it unexplained. Only a folder named as a search names its
    trials, holding a trained run and nothing but the files training writes, is deleted;
    another (a file of the user's in it, a link) is kept and named on stderr.
    """
    removed = []
    for entry in sorted(Path(out_dir).glob('trial*')):
        if not TRIAL_NAME.fullmatch(entry.name):
            continue
        if entry.is_symlink():
            print(f'search: kept the earlier trial {entry}: it is a link', file=sys.stderr,
                  flush=True)
            continue
        if not entry.is_dir() or not trained_outputs(entry):
            continue
        reason = kept_reason(entry)
        if reason is None:
            shutil.rmtree(entry)
            removed.append(entry.name)
        else:
            print(f'search: kept the earlier trial {entry}: {reason}', file=sys.stderr,
                  flush=True)
    return removed


def knob_search(base: TrainOptions, space: SearchSpace, budget_min: float,
                clock=time.monotonic, run_trial=None) -> list[dict]:
    """Search ``space`` from ``base`` one knob at a time until ``budget_min`` is spent.

    ``run_trial(options) -> TrainResult`` defaults to :func:`train` (a test may replace
    it). Writes ``search_results.json`` and ``search_results.md`` into ``base.out_dir``
    after each trial and returns the rows ranked by validation accuracy. A trial whose
    knob values cannot work together (:class:`~plant_disease_ros.training.train.
    OptionConflict`, such as ``--unfreeze 0`` where the head is kept) is skipped, listed
    with the reason; any other failure (or Ctrl-C) stops the search with the finished
    trials' tables written, the trials left listed as not run. An earlier search there is
    refused unless ``base.overwrite`` (:func:`check_search_out_dir`); its trained trials
    are then deleted (:func:`remove_earlier_trials`), once the first trial is known to be
    able to start (:func:`check_search_can_start`), and the new trials replace them. A
    trial folder the search keeps (a link, the user's files) is never trained into: a
    search that would is refused before any trial (:func:`check_kept_trials`).
    """
    run_trial = run_trial or train
    out_dir = Path(base.out_dir)
    check_search_out_dir(out_dir, base.overwrite)
    check_kept_trials(out_dir, space)
    if base.overwrite and earlier_search_outputs(out_dir):
        check_search_can_start(base)  # before the earlier trials go
        remove_earlier_trials(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    started = clock()
    best = space.start()
    best_score = -1.0
    rows: list[dict] = []
    plan = [(None, best)] + [(knob, value) for knob in KNOBS
                             for value in getattr(space, knob)[1:]]
    for number, (knob, value) in enumerate(plan, start=1):
        trial = dict(best) if knob is None else {**best, knob: value}
        elapsed_min = (clock() - started) / 60
        if elapsed_min >= budget_min:
            rows.append({**trial, 'changed': knob, 'status': 'not run (budget)'})
            continue
        name = trial_name(number, trial if knob is None else {knob: value})
        print(f'[{number}/{len(plan)}] {name} ({elapsed_min:.1f} of {budget_min:g} min '
              'spent)', file=sys.stderr, flush=True)
        # overwrite: the search's own trial folder (check_search_out_dir refused any
        # finished trial before); a trial cut short by an earlier search is replaced.
        options = replace(base, out_dir=str(out_dir / name), verbose=0,
                          time_budget_min=max(0.1, budget_min - elapsed_min),
                          overwrite=True, **trial)
        try:
            result = run_trial(options)
        except OptionConflict as error:
            print(f'[{number}/{len(plan)}] {name} skipped: {error}', file=sys.stderr,
                  flush=True)
            rows.append({**trial, 'changed': knob, 'status': f'skipped: {error}'})
            write_results(out_dir, rows)
            continue
        except BaseException as error:  # Ctrl-C too: keep what the finished trials found
            reason = str(error) or type(error).__name__
            rows.append({**trial, 'changed': knob, 'status': f'failed: {reason}',
                         'run': name})
            rows += [{**best, knob_left: value_left, 'changed': knob_left,
                      'status': 'not run (search stopped)'}
                     for knob_left, value_left in plan[number:]]
            write_results(out_dir, rows)
            print(f'search stopped at trial {number}: the finished trials are in '
                  f'{out_dir / "search_results.md"}', file=sys.stderr, flush=True)
            raise
        rows.append({**trial, 'changed': knob, 'status': 'done', 'run': name,
                     'val_accuracy': result.best_val_accuracy, 'epochs': result.epochs_run,
                     'seconds': round(result.seconds, 1)})
        write_results(out_dir, rows)
        if result.best_val_accuracy > best_score:
            best_score = result.best_val_accuracy
            best = trial
    return write_results(out_dir, rows)


def write_results(out_dir: Path, rows: list[dict]) -> list[dict]:
    """Write the rows ranked by validation accuracy as ``search_results.json`` and ``.md``.

    Returns the ranked rows; trials without a figure (skipped, not run) come last.
    """
    ranked = sorted(rows, key=lambda row: -row.get('val_accuracy', -1.0))
    (out_dir / 'search_results.json').write_text(json.dumps(ranked, indent=1) + '\n')
    (out_dir / 'search_results.md').write_text(format_table(ranked) + '\n')
    return ranked


def _value(value, unit: str = '') -> str:
    return 'default' if value is None else f'{value:g}{unit}'


def format_table(rows: list[dict]) -> str:
    """Return the search results as a Markdown table."""
    lines = ['| learning rate | unfreeze | input px | augment | width | val top-1 | epochs '
             '| seconds | status |',
             '| ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | --- |']
    for row in rows:
        accuracy = f'{100 * row["val_accuracy"]:.2f} %' if 'val_accuracy' in row else '–'
        unfreeze = 'all' if row.get('unfreeze') is None else f'{row["unfreeze"]} stages'
        lines.append(f'| {_value(row.get("learning_rate"))} | {unfreeze} '
                     f'| {_value(row.get("input_size"))} '
                     f'| {_value(row.get("augment_strength"))} | {_value(row.get("width"))} '
                     f'| {accuracy} | {row.get("epochs", "–")} | {row.get("seconds", "–")} '
                     f'| {row["status"]} |')
    return '\n'.join(lines)


def train_flags(row: dict) -> str:
    """Return the ``plant-disease train`` flags that reproduce a trial's knob values."""
    flags = []
    for knob in KNOBS:
        value = row.get(knob)
        if value is None or (knob == 'augment_strength' and value == 1.0):
            continue
        flags.append(f'--{knob.replace("_", "-")} {value:g}')
    return ' '.join(flags)
