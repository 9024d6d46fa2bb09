"""Bare ``invoke()`` of two TFLite models on this host, interleaved, and their ratio.

Issue #16's bar: the field model's invoke takes at most 1.5 times that of the model shipped
before it. Both models run in the same process, in alternating rounds (so a busy moment of
the host falls on both), with random input of each model's own input size. Prints p50 and
p95 per model and thread count, and the ratio of the p50s.

    python benchmarks/invoke_ratio.py --baseline OLD.tflite [--model models/...tflite]

The model shipped when issue #16 was filed: ``git show c687ad9:models/plant_disease_int8.tflite``.
"""

from __future__ import annotations

import argparse
from pathlib import Path
import platform
import statistics
import sys
import time

import numpy as np

REPO_ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO_ROOT))

from plant_disease_ros.core.interpreter_loader import load_interpreter  # noqa: E402


def invoke_times_ms(path: Path, threads: int, invokes: int, warmup: int = 20) -> list[float]:
    """Return the sorted times of ``invokes`` bare invokes of ``path`` on ``threads``."""
    loaded = load_interpreter(str(path), num_threads=threads)
    interpreter = loaded.interpreter
    detail = interpreter.get_input_details()[0]
    rng = np.random.default_rng(0)
    interpreter.set_tensor(loaded.input_index,
                           rng.integers(0, 255, detail['shape']).astype(detail['dtype']))
    for _ in range(warmup):
        interpreter.invoke()
    times = []
    for _ in range(invokes):
        start = time.perf_counter()
        interpreter.invoke()
        times.append((time.perf_counter() - start) * 1000.0)
    return sorted(times)


def input_size(path: Path) -> str:
    """Return a model's input height×width."""
    height, width = load_interpreter(str(path), num_threads=1).input_size
    return f'{height}×{width}'


def main() -> int:
    """Run the rounds and print the table."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument('--baseline', type=Path, required=True, help='the earlier model')
    parser.add_argument('--model', type=Path,
                        default=REPO_ROOT / 'models' / 'plant_disease_int8.tflite',
                        help='the model measured against it (default: the shipped one)')
    parser.add_argument('--threads', type=int, nargs='+', default=[1, 2])
    parser.add_argument('--rounds', type=int, default=3, help='alternating rounds per model')
    parser.add_argument('--invokes', type=int, default=200, help='invokes per round')
    args = parser.parse_args()
    for path in (args.baseline, args.model):
        if not path.is_file():
            parser.error(f'{path}: no such model file')
    cpu = platform.processor() or platform.machine()
    try:
        for line in Path('/proc/cpuinfo').read_text().splitlines():
            if line.startswith('model name'):
                cpu = line.split(':', 1)[1].strip()
                break
    except OSError:
        pass
    print(f'host: {cpu}, {platform.system()} {platform.machine()}; '
          f'{args.rounds} alternating rounds of {args.invokes} invokes per model', flush=True)
    print(f'baseline {args.baseline} ({input_size(args.baseline)}), '
          f'model {args.model} ({input_size(args.model)})', flush=True)
    print('| threads | baseline p50 | p95 | model p50 | p95 | ratio (p50) |')
    print('| ---: | ---: | ---: | ---: | ---: | ---: |')
    for threads in args.threads:
        rounds: dict[str, list[list[float]]] = {'baseline': [], 'model': []}
        for _ in range(args.rounds):
            rounds['baseline'].append(invoke_times_ms(args.baseline, threads, args.invokes))
            rounds['model'].append(invoke_times_ms(args.model, threads, args.invokes))
        figures = {}
        for name, runs in rounds.items():
            figures[name] = (statistics.median(run[len(run) // 2] for run in runs),
                             statistics.median(run[int(len(run) * 0.95)] for run in runs))
        base, model = figures['baseline'], figures['model']
        print(f'| {threads} | {base[0]:.2f} ms | {base[1]:.2f} ms | {model[0]:.2f} ms | '
              f'{model[1]:.2f} ms | {model[0] / base[0]:.2f} |', flush=True)
    return 0


if __name__ == '__main__':
    sys.exit(main())
