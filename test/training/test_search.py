"""The transfer search: one knob at a time from the defaults, best values kept, a budget."""

from __future__ import annotations

from dataclasses import dataclass
import json
from pathlib import Path

import pytest

from plant_disease_ros.training.search import (
    format_table,
    knob_search,
    SearchSpace,
    train_flags,
)
from plant_disease_ros.training.train import TrainOptions


@dataclass
class FakeResult:
    best_val_accuracy: float
    epochs_run: int = 3
    seconds: float = 60.0


def score(options: TrainOptions) -> float:
    """A made-up validation accuracy: a lower rate and two unfrozen stages help."""
    value = 0.80
    value += 0.05 if options.learning_rate == 2.5e-4 else 0.0
    value += 0.03 if options.unfreeze == 2 else 0.0
    value -= 0.10 if options.unfreeze == 0 else 0.0
    return value


def test_each_knob_keeps_its_best_value_before_the_next_is_searched(tmp_path: Path) -> None:
    seen: list[TrainOptions] = []

    def run_trial(options: TrainOptions) -> FakeResult:
        seen.append(options)
        return FakeResult(score(options))

    space = SearchSpace(learning_rate=(None, 1e-3, 2.5e-4), unfreeze=(None, 2, 0),
                        input_size=(None, 96), augment_strength=(1.0,), width=(None,))
    rows = knob_search(TrainOptions(data_dir='photos', out_dir=str(tmp_path)), space,
                       budget_min=60.0, run_trial=run_trial)
    assert len(seen) == space.size() == 6
    # The unfreeze trials run at the best rate found before them.
    assert [o.learning_rate for o in seen[3:5]] == [2.5e-4, 2.5e-4]
    # The input-size trial runs with the best rate and stages.
    assert (seen[5].learning_rate, seen[5].unfreeze, seen[5].input_size) == (2.5e-4, 2, 96)
    assert all(o.verbose == 0 and Path(o.out_dir).parent == tmp_path for o in seen)
    assert rows[0]['val_accuracy'] == max(row['val_accuracy'] for row in rows)
    assert train_flags(rows[0]) == '--learning-rate 0.00025 --unfreeze 2'
    saved = json.loads((tmp_path / 'search_results.json').read_text())
    assert saved == rows
    assert '| 0.00025 | 2 stages |' in (tmp_path / 'search_results.md').read_text()


def test_trials_past_the_budget_are_listed_as_not_run(tmp_path: Path) -> None:
    now = [0.0]

    def run_trial(options: TrainOptions) -> FakeResult:
        now[0] += 50 * 60.0  # each trial takes 50 minutes
        return FakeResult(0.5)

    rows = knob_search(TrainOptions(data_dir='photos', out_dir=str(tmp_path)), SearchSpace(),
                       budget_min=90.0, clock=lambda: now[0], run_trial=run_trial)
    done = [row for row in rows if row['status'] == 'done']
    assert len(done) == 2 and len(rows) == SearchSpace().size()
    assert 'not run (budget)' in format_table(rows)


def test_a_trial_whose_knobs_conflict_is_skipped_and_the_search_goes_on(
        tmp_path: Path) -> None:
    """--unfreeze 0 where the head is kept leaves nothing to train: that trial only."""
    from plant_disease_ros.training.train import OptionConflict

    seen: list[TrainOptions] = []

    def run_trial(options: TrainOptions) -> FakeResult:
        if options.unfreeze == 0:
            raise OptionConflict('--unfreeze 0 with no head epochs leaves nothing to train')
        seen.append(options)
        return FakeResult(score(options))

    space = SearchSpace(learning_rate=(None,), unfreeze=(None, 0), input_size=(None, 96),
                        augment_strength=(1.0,), width=(None,))
    rows = knob_search(TrainOptions(data_dir='photos', out_dir=str(tmp_path)), space,
                       budget_min=60.0, run_trial=run_trial)
    assert [options.input_size for options in seen] == [None, 96]  # went on after it
    skipped = [row for row in rows if row['status'].startswith('skipped')]
    assert skipped == [{'learning_rate': None, 'unfreeze': 0, 'input_size': None,
                        'augment_strength': 1.0, 'width': None, 'changed': 'unfreeze',
                        'status': 'skipped: --unfreeze 0 with no head epochs leaves '
                                  'nothing to train'}]
    assert rows[-1] == skipped[0]  # no figure: ranked last
    assert json.loads((tmp_path / 'search_results.json').read_text()) == rows
    assert '| skipped: --unfreeze 0 with no head epochs leaves nothing to train |' in \
        (tmp_path / 'search_results.md').read_text()


def test_a_failing_trial_keeps_the_finished_trials_table(tmp_path: Path) -> None:
    def run_trial(options: TrainOptions) -> FakeResult:
        if options.input_size == 96:
            raise RuntimeError('disk full')
        return FakeResult(score(options))

    space = SearchSpace(learning_rate=(None, 2.5e-4), unfreeze=(None,),
                        input_size=(None, 96, 160), augment_strength=(1.0,), width=(None,))
    with pytest.raises(RuntimeError, match='disk full'):
        knob_search(TrainOptions(data_dir='photos', out_dir=str(tmp_path)), space,
                    budget_min=60.0, run_trial=run_trial)
    saved = json.loads((tmp_path / 'search_results.json').read_text())
    assert [row['status'] for row in saved] == ['done', 'done', 'failed: disk full',
                                                'not run (search stopped)']
    assert saved[0]['learning_rate'] == 2.5e-4 and saved[0]['val_accuracy'] == pytest.approx(0.85)
    assert saved[3]['input_size'] == 160
