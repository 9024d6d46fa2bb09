"""scripts/train_shipped_model.sh, run on a copy with stubs: the commands it would run.

The copy's scripts/setup_env.sh and .venv/bin/plant-disease are stubs that log their
arguments (plant-disease also writes the files the script copies afterwards), so nothing
is installed or trained.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
import re
import shlex
import shutil
import subprocess
import sys

import pytest

REPO_ROOT = Path(__file__).resolve().parents[2]
SCRIPT = REPO_ROOT / 'scripts' / 'train_shipped_model.sh'

STUB = f"""#!{sys.executable}
import json, os, sys
from pathlib import Path
args = sys.argv[1:]
with open(os.environ['STUB_LOG'], 'a') as log:
    log.write(json.dumps(['plant-disease'] + args) + '\\n')
if '--out' in args and args[0] in ('train', 'evaluate'):
    out = Path(args[args.index('--out') + 1])
    out.mkdir(parents=True, exist_ok=True)
    names = (('train_summary.json', 'training_curves.png') if args[0] == 'train' else
             ('confusion_lab.png', 'reliability.png', 'thresholds.png', 'evaluation.json'))
    for name in names:
        (out / name).write_text('{{}}')
"""


@pytest.fixture
def repo(tmp_path: Path) -> Path:
    """A repository copy (tmp/repo) with stubs, beside the default data tmp/shared/data."""
    repo = tmp_path / 'repo'
    (repo / 'scripts').mkdir(parents=True)
    shutil.copy(SCRIPT, repo / 'scripts')
    setup = repo / 'scripts' / 'setup_env.sh'
    setup.write_text('#!/bin/bash\necho "setup_env $*" >> "$STUB_LOG"\n')
    stub = repo / '.venv' / 'bin' / 'plant-disease'
    stub.parent.mkdir(parents=True)
    stub.write_text(STUB)
    for path in (setup, stub):
        path.chmod(0o755)
    (repo / 'models' / 'stages').mkdir(parents=True)
    for name in ('plantvillage', 'field', 'negatives'):
        (tmp_path / 'shared' / 'data' / name).mkdir(parents=True)
    return repo


def run_script(repo: Path, *args: str, cwd: Path | None = None,
               **env: str) -> tuple[subprocess.CompletedProcess, list]:
    """Run the copy; return the process and what the stubs logged (argv lists, setup lines)."""
    log = repo.parent / 'stub.log'
    log.unlink(missing_ok=True)
    environment = {key: value for key, value in os.environ.items()
                   if not key.startswith('LAB_')}
    environment.update(env, STUB_LOG=str(log))
    process = subprocess.run(['bash', str(repo / 'scripts' / 'train_shipped_model.sh'), *args],
                             cwd=cwd or repo.parent, env=environment, capture_output=True,
                             text=True, timeout=60)
    calls = [json.loads(line) if line.startswith('[') else line
             for line in log.read_text().splitlines()] if log.exists() else []
    return process, calls


def option(argv: list[str], name: str) -> str:
    return argv[argv.index(name) + 1]


def test_the_default_run_runs_the_commands_the_model_card_quotes(repo: Path) -> None:
    process, calls = run_script(repo)
    assert process.returncode == 0, process.stderr
    assert calls[0] == 'setup_env ros,tools,train'
    card = next(argv for argv in calls[1:] if argv[1] == 'model-card')
    quoted = (option(card, '--train-command') + '\n' + option(card, '--export-command') + '\n'
              + option(card, '--evaluate-command'))
    block = re.search(r'## Reproduce\n\n```bash\n(.*?)```',
                      (REPO_ROOT / 'models' / 'MODEL_CARD.md').read_text(), re.S).group(1)
    assert quoted == block.rstrip('\n')
    # What ran is what the card says (a train phase adds --overwrite; .venv's plant-disease),
    # but the lab model's export and evaluation (the card's "previous model" column).
    ran = [argv for argv in calls[1:] if argv[1] in ('train', 'export', 'evaluate')
           and '--model' not in argv and argv[2:4] != ['--run', 'runs/plantvillage']]
    lines = quoted.splitlines()
    loop = lines.pop()
    assert [argv[:-1] if argv[-1] == '--overwrite' else argv for argv in ran[:len(lines)]] \
        == [shlex.split(line) for line in lines]
    blurs = ran[len(lines):]
    assert [option(argv, '--motion-blur') for argv in blurs] == ['9', '17', '25', '33', '49']
    assert loop.startswith('for px in 9 17 25 33 49; do ')


def test_paths_with_spaces_relative_to_the_caller_stay_whole(repo: Path,
                                                             tmp_path: Path) -> None:
    caller = tmp_path / 'my folder'
    (caller / 'my data' / 'plantvillage').mkdir(parents=True)
    (caller / 'my data' / 'field').mkdir()
    (caller / 'my data' / 'negatives').mkdir()
    process, calls = run_script(repo, 'my data', 'my runs', cwd=caller)
    assert process.returncode == 0, process.stderr
    trains = [argv for argv in calls[1:] if argv[1] == 'train']
    assert trains[0][:6] == ['plant-disease', 'train', '--data',
                             str(caller / 'my data' / 'plantvillage'), '--out',
                             str(caller / 'my runs' / 'plantvillage' / 'phase1')]
    assert option(trains[2], '--field-data') == str(caller / 'my data' / 'field')
    assert option(trains[2], '--lab-split') == str(caller / 'my runs' / 'plantvillage'
                                                   / 'split.json')
    assert (caller / 'my runs' / 'field_blur' / 'train_summary.json').is_file()
    card = next(argv for argv in calls[1:] if argv[1] == 'model-card')
    first = option(card, '--train-command').splitlines()[0]
    assert shlex.split(first) == trains[0][:-1]  # the card's line pastes as it ran


def test_help_and_wrong_arguments_stop_before_the_setup(repo: Path, tmp_path: Path) -> None:
    process, calls = run_script(repo, '--help')
    assert (process.returncode, calls) == (0, [])
    assert process.stdout.startswith('Usage: scripts/train_shipped_model.sh')
    for args in (['data', '--help'], ['data', 'runs', '-h'], ['data', '-x', '--help']):
        process, calls = run_script(repo, *args)  # help anywhere: help, and nothing run
        assert (process.returncode, calls) == (0, []), args
        assert process.stdout.startswith('Usage: scripts/train_shipped_model.sh'), args
    for args in (['-x'], ['data', '--overwrite'], ['data', 'runs', '-v']):
        process, calls = run_script(repo, *args)
        assert (process.returncode, calls) == (2, []), args
        assert f'unknown option {args[-1]}' in process.stderr, args
    process, calls = run_script(repo, 'a', 'b', 'c')
    assert (process.returncode, calls) == (2, [])
    assert 'Usage:' in process.stderr
    process, calls = run_script(repo, str(tmp_path / 'nowhere'))
    assert (process.returncode, calls) == (2, [])
    assert 'plantvillage' in process.stderr
    shutil.rmtree(tmp_path / 'shared' / 'data' / 'negatives')
    process, calls = run_script(repo)
    assert (process.returncode, calls) == (2, [])
    assert 'negatives' in process.stderr


def test_a_lab_model_without_lab_split_takes_the_split_beside_it(repo: Path,
                                                                 tmp_path: Path) -> None:
    (tmp_path / 'mine').mkdir()
    (tmp_path / 'mine' / 'model.keras').write_text('model')
    (tmp_path / 'mine' / 'split.json').write_text('{}')
    process, calls = run_script(repo, LAB_MODEL='mine/model.keras')
    assert process.returncode == 0, process.stderr
    trains = [argv for argv in calls[1:] if argv[1] == 'train']
    assert '--init' not in trains[0]  # no lab phase: the field phases start
    assert option(trains[0], '--lab-split') == str(tmp_path / 'mine' / 'split.json')
    assert option(trains[0], '--init-weights') == str(tmp_path / 'mine' / 'model.keras')
    (tmp_path / 'mine' / 'split.json').unlink()
    process, calls = run_script(repo, LAB_MODEL='mine/model.keras')
    assert (process.returncode, calls) == (2, [])
    assert 'LAB_SPLIT' in process.stderr
