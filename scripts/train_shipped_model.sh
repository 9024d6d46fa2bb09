#!/usr/bin/env bash
# Reproduce the shipped model from the leaf photos, on a CPU (seeded):
#   train -> int8 export -> evaluation on the held-out test split -> model card.
# Usage: scripts/train_shipped_model.sh [PHOTOS] [RUN_DIR]
# About 60 min on 2 CPU cores; a GPU, where TensorFlow sees one, shortens the training.
set -euo pipefail
cd "$(dirname "$0")/.."
data="${1:-../shared/data/plantvillage}"
run="${2:-runs/plantvillage}"
scripts/setup_env.sh ros,tools,train
pd=.venv/bin/plant-disease
train_cmd="plant-disease train --data $data --out $run --architecture resnet_lite --input-size 96 --width 0.75 --epochs 40 --seed 42 --time-budget-min 60"
export_cmd="plant-disease export --run $run --out models/plant_disease_int8.tflite"
eval_cmd="plant-disease evaluate --split-manifest $run/split.json --data $data --keras $run/model.keras --out $run/eval"
if [ ! -f "$run/model.keras" ]; then
  $pd ${train_cmd#plant-disease }
fi
$pd ${export_cmd#plant-disease }
$pd ${eval_cmd#plant-disease }
cp "$run/split.json" models/split.json
cp "$run/model.keras" models/plant_disease_float.keras
cp "$run/training_curves.png" "$run/eval/confusion_matrix.png" models/
search_args=()
[ -f runs/search/search_results.md ] && search_args=(--search runs/search/search_results.md)
$pd model-card --run "$run" --evaluation "$run/eval" "${search_args[@]}" \
  --train-command "$train_cmd" --export-command "$export_cmd" --evaluate-command "$eval_cmd"
