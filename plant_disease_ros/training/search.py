"""A small grid search over width, input size and learning rate within a time budget.

Each trial is a short training run (the same code as a full one) on a subsample of the
photos; trials run in grid order until the budget is spent, and the rest are reported
as not run. The result is a table ranked by validation accuracy.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
import itertools
import json
from pathlib import Path
import sys
import time

from plant_disease_ros.training.train import train, TrainOptions


@dataclass
class SearchSpace:
    """The grid: every combination of these values is one trial."""

    widths: tuple[float, ...] = (0.35, 0.5)
    input_sizes: tuple[int, ...] = (96, 128)
    learning_rates: tuple[float, ...] = (1e-3, 3e-3)

    def trials(self) -> list[dict]:
        """Return the grid's combinations in a fixed order."""
        return [{'width': width, 'input_size': size, 'learning_rate': rate}
                for width, size, rate in itertools.product(
                    self.widths, self.input_sizes, self.learning_rates)]


def grid_search(base: TrainOptions, space: SearchSpace, budget_min: float) -> list[dict]:
    """Run trials of ``space`` derived from ``base`` until ``budget_min`` minutes are spent.

    Writes ``search_results.json`` and ``search_results.md`` into ``base.out_dir``.
    """
    out_dir = Path(base.out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    started = time.monotonic()
    rows: list[dict] = []
    trials = space.trials()
    for number, trial in enumerate(trials, start=1):
        elapsed_min = (time.monotonic() - started) / 60
        if elapsed_min >= budget_min:
            rows.append({**trial, 'status': 'not run (budget)'})
            continue
        name = f'trial{number:02d}_w{trial["width"]:g}_s{trial["input_size"]}_' \
               f'lr{trial["learning_rate"]:g}'
        print(f'[{number}/{len(trials)}] {name} ({elapsed_min:.1f} of {budget_min:g} min '
              'spent)', file=sys.stderr)
        options = replace(base, out_dir=str(out_dir / name), verbose=0,
                          time_budget_min=max(0.1, budget_min - elapsed_min), **trial)
        result = train(options)
        rows.append({**trial, 'status': 'done', 'val_accuracy': result.best_val_accuracy,
                     'epochs': result.epochs_run, 'seconds': round(result.seconds, 1)})
    ranked = sorted(rows, key=lambda row: -row.get('val_accuracy', -1.0))
    (out_dir / 'search_results.json').write_text(json.dumps(ranked, indent=1) + '\n')
    (out_dir / 'search_results.md').write_text(format_table(ranked) + '\n')
    return ranked


def format_table(rows: list[dict]) -> str:
    """Return the search results as a Markdown table."""
    lines = ['| width | input px | learning rate | val top-1 | epochs | seconds | status |',
             '| ---: | ---: | ---: | ---: | ---: | ---: | --- |']
    for row in rows:
        accuracy = f'{100 * row["val_accuracy"]:.2f} %' if 'val_accuracy' in row else '–'
        lines.append(f'| {row["width"]:g} | {row["input_size"]} | {row["learning_rate"]:g} '
                     f'| {accuracy} | {row.get("epochs", "–")} | {row.get("seconds", "–")} '
                     f'| {row["status"]} |')
    return '\n'.join(lines)
