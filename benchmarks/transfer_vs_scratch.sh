#!/usr/bin/env bash
# Transfer from the shipped model (the README's "Training your own" commands, defaults)
# against the same commands with --init scratch, on one photo folder, in one run:
# train -> int8 export -> evaluation on the run's held-out test split, for each.
# Usage: benchmarks/transfer_vs_scratch.sh [PHOTOS] [RUN_ROOT]
#   PHOTOS: <class>/<image> folder (default ../shared/data/field/pp2021_apple)
#   RUN_ROOT: where the two runs go (default runs/transfer_vs_scratch; emptied first)
# The transfer run starts from models/plant_disease_float.keras: choose PHOTOS that model
# never trained on (a field-fit model has seen field/pp2021_apple).
# Both runs decode the photos themselves (a private cache under RUN_ROOT, emptied
# first), as from a clean clone. Prints a Markdown table: int8 test top-1, epochs and
# training minutes (from the train command's start to its end) of each.
set -euo pipefail
cd "$(dirname "$0")/.."
photos="${1:-../shared/data/field/pp2021_apple}"
runs="${2:-runs/transfer_vs_scratch}"
pd=.venv/bin/plant-disease
rm -rf "$runs"
mkdir -p "$runs"
echo "machine: $(nproc) cores, load average $(cut -d' ' -f1-3 /proc/loadavg), $(date -u +%FT%TZ)"
for init in shipped scratch; do
  out="$runs/$init"
  mkdir -p "$out"
  echo "== --init $init"
  started=$(date +%s)
  $pd train --data "$photos" --out "$out" --init "$init" --cache-dir "$runs/cache" \
    | tee "$out/train.log"
  echo $(( $(date +%s) - started )) > "$out/train_wall_seconds"
  $pd export --run "$out" --out "$out/int8/model_int8.tflite" --cache-dir "$runs/cache"
  $pd evaluate --model "$out/int8/model_int8.tflite" --labels "$out/int8/labels.txt" \
    --split-manifest "$out/split.json" --keras "$out/model.keras" --out "$out/eval" \
    --cache-dir "$runs/cache"
done
.venv/bin/python - "$runs" <<'PY'
import json
import sys
from pathlib import Path

runs = Path(sys.argv[1])
print('\n| init | int8 test top-1 | float test top-1 | test photos | epochs (head + fine-tune)'
      ' | best val top-1 | training min |')
print('| --- | ---: | ---: | ---: | --- | ---: | ---: |')
for init in ('shipped', 'scratch'):
    summary = json.loads((runs / init / 'train_summary.json').read_text())
    report = json.loads((runs / init / 'eval' / 'evaluation.json').read_text())
    wall = int((runs / init / 'train_wall_seconds').read_text())
    epochs = ' + '.join(str(stage['epochs_run']) for stage in summary['stages'])
    print(f'| {init} | {100 * report["int8"]["top1"]:.2f} % '
          f'| {100 * report["float"]["top1"]:.2f} % | {report["photos"]} | {epochs} '
          f'| {100 * summary["best_val_accuracy"]:.2f} % | {wall / 60:.1f} |')
PY
