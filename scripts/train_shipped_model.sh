#!/usr/bin/env bash
# Reproduce the shipped model from the leaf photos, on a CPU (seeded):
#   train -> int8 export -> evaluation on the held-out test split -> model card.
# Usage: scripts/train_shipped_model.sh [PHOTOS] [RUN_DIR]
# About 70 min on 2 CPU cores; a GPU, where TensorFlow sees one, shortens the training.
set -euo pipefail
cd "$(dirname "$0")/.."
data="${1:-../shared/data/plantvillage}"
run="${2:-runs/plantvillage}"
scripts/setup_env.sh ros,tools,train
pd=.venv/bin/plant-disease
# Phase 1: 96 px from scratch (early stopping); phase 2: 128 px warm start, lower rate.
phase1_cmd="plant-disease train --data $data --out $run/phase1 --architecture resnet_lite --input-size 96 --width 0.75 --epochs 40 --seed 42 --time-budget-min 60"
train_cmd="plant-disease train --data $data --out $run --architecture resnet_lite --input-size 128 --width 0.75 --epochs 10 --learning-rate 6e-4 --augment-strength 0.6 --patience 4 --seed 42 --init-weights $run/phase1/model.keras --time-budget-min 16"
export_cmd="plant-disease export --run $run --out models/plant_disease_int8.tflite --float-out models/plant_disease_float.keras"
eval_cmd="plant-disease evaluate --split-manifest $run/split.json --data $data --keras $run/model.keras --out $run/eval"
[ -f "$run/phase1/model.keras" ] || $pd ${phase1_cmd#plant-disease }
[ -f "$run/model.keras" ] || $pd ${train_cmd#plant-disease }
$pd ${export_cmd#plant-disease }
$pd ${eval_cmd#plant-disease }
cp "$run/split.json" models/split.json
cp "$run/training_curves.png" "$run/eval/confusion_matrix.png" models/
search_args=()
[ -f runs/search/search_results.md ] && search_args=(--search runs/search/search_results.md)
$pd model-card --run "$run" --evaluation "$run/eval" "${search_args[@]}" \
  --train-command "$phase1_cmd"$'\n'"$train_cmd" --export-command "$export_cmd" --evaluate-command "$eval_cmd"
