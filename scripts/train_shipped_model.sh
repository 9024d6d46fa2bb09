#!/usr/bin/env bash
# Reproduce the shipped model on a CPU (seeded):
#   lab phases (PlantVillage, from scratch) -> field-fit phase 1 (lab + field photos +
#   non-leaf scenes, a 22nd label no_leaf) -> field-fit phase 2 (the network grown by one
#   stage-3 block, lab rows distilled from the lab model, milder augmentation) -> phase 3
#   (a warm restart at a lower rate, milder still, the teacher unsoftened so lab scores
#   stay confident) -> phase 4 (a long warm restart, mildest augmentation, more lab rows,
#   little label smoothing) -> phase 5 (the same recipe on 144 px frames: the weights see
#   finer lesions; calibrated scores) -> phase 6 (the same recipe once more from phase 5,
#   a quarter of the frames smeared by a moving camera's streak; chosen by validation on
#   sharp and on smeared frames) -> int8 export -> per-domain evaluation on the held-out
#   test photos -> model card.
# Usage: scripts/train_shipped_model.sh [DATA_ROOT] [RUN_ROOT]  (see usage below)
# On 2 CPU cores: lab phases about 70 min, field phase 1 about 45-75 min (30 epochs of 150
# batches), phase 2 about 45-60 min, phase 3 about 30 min, phase 4 about 85 min, phase 5
# about 80 min, phase 6 about 55-65 min; a finished phase is skipped on a rerun.
set -euo pipefail
usage() {
  cat <<'USAGE'
Usage: scripts/train_shipped_model.sh [DATA_ROOT] [RUN_ROOT]
Reproduces the shipped model (seeded, CPU; hours): lab phases, six field-fit phases, int8
export into models/, evaluations and models/MODEL_CARD.md. A finished phase is skipped.
  DATA_ROOT  holds plantvillage/, field/ and negatives/ (default: ../shared/data beside
             the repository)
  RUN_ROOT   folder of the run folders (default: runs in the repository)
Relative paths given (arguments and the variables below) are taken from the current folder.
To start from an existing lab model instead of the lab phases, set LAB_MODEL (its
model.keras), LAB_SPLIT (its split.json; default: split.json beside LAB_MODEL) and
LAB_TFLITE (its int8 export, for the "previous model" column; optional).
USAGE
}
# Every argument, not only the first: "DATA --help" must not start a run into RUN_ROOT
# --help. A path starting with - is given as ./-path.
for arg in "$@"; do
  case "$arg" in
    -h | --help) usage; exit 0 ;;
  esac
done
for arg in "$@"; do
  case "$arg" in
    -*) echo "train_shipped_model.sh: unknown option $arg" >&2; usage >&2; exit 2 ;;
  esac
done
if [ "$#" -gt 2 ]; then
  echo "train_shipped_model.sh: at most 2 arguments, got $#" >&2
  usage >&2
  exit 2
fi
# A path given relative to the caller's folder, made absolute before the cd below.
absolute() {
  case "$1" in
    /*) printf '%s\n' "$1" ;;
    *) printf '%s\n' "$PWD/$1" ;;
  esac
}
# The defaults are relative to the repository (and so quoted in the model card as they are).
root=../shared/data
runs=runs
[ -z "${1:-}" ] || root="$(absolute "$1")"
[ -z "${2:-}" ] || runs="$(absolute "$2")"
lab_model=""
lab_split=""
lab_tflite=""
if [ -n "${LAB_MODEL:-}" ]; then
  lab_model="$(absolute "$LAB_MODEL")"
  lab_split="$(absolute "${LAB_SPLIT:-$(dirname "$LAB_MODEL")/split.json}")"
  [ -z "${LAB_TFLITE:-}" ] || lab_tflite="$(absolute "$LAB_TFLITE")"
fi
cd "$(dirname "$0")/.."
data="$root/plantvillage"
lab="$runs/plantvillage"
field="$runs/field"
deep="$runs/field_deep"
final="$runs/field_final"
long="$runs/field_long"
fine="$runs/field_144"
blurred="$runs/field_blur"
if [ -z "$lab_model" ]; then
  lab_model="$lab/model.keras"
  lab_split="$lab/split.json"
fi
# What is missing is told now, before the set-up (a TensorFlow install) and hours of runs.
problems=()
[ -d "$data" ] || problems+=("no photo folder $data (DATA_ROOT must hold plantvillage/)")
for phase in "$field" "$deep" "$final" "$long" "$fine" "$blurred"; do
  if [ ! -f "$phase/train_summary.json" ]; then
    for folder in "$root/field" "$root/negatives"; do
      [ -d "$folder" ] || problems+=("no folder $folder (the field phases need it)")
    done
    break
  fi
done
if [ -n "${LAB_MODEL:-}" ]; then
  [ -f "$lab_model" ] || problems+=("LAB_MODEL $lab_model is not a file")
  [ -f "$lab_split" ] || problems+=("LAB_SPLIT $lab_split is not a file")
  if [ -n "$lab_tflite" ] && [ ! -f "$lab_tflite" ]; then
    problems+=("LAB_TFLITE $lab_tflite is not a file")
  fi
fi
if [ "${#problems[@]}" -gt 0 ]; then
  printf 'train_shipped_model.sh: %s\n' "${problems[@]}" >&2
  exit 2
fi
scripts/setup_env.sh ros,tools,train
pd=.venv/bin/plant-disease
# A command array as one shell line for the model card (a word quoted only where it must be).
shown() {
  local words=() word
  for word in "$@"; do
    if [[ "$word" =~ ^[A-Za-z0-9_./=,:+%@-]+$ ]]; then
      words+=("$word")
    else
      words+=("$(printf '%q' "$word")")
    fi
  done
  printf '%s' "${words[*]}"
}
shown_array() {
  local -n array="$1"
  shown "${array[@]}"
}
# Runs a command array (its first word, plant-disease, is the venv's) with extra arguments.
run() {
  local -n command="$1"
  shift
  "$pd" "${command[@]:1}" "$@"
}

# Lab phase 1: 96 px from scratch (early stopping); phase 2: 128 px warm start, lower rate.
phase1_cmd=(plant-disease train --data "$data" --out "$lab/phase1" --init scratch --architecture resnet_lite --input-size 96 --width 0.75 --epochs 40 --seed 42 --time-budget-min 60)
phase2_cmd=(plant-disease train --data "$data" --out "$lab" --architecture resnet_lite --input-size 128 --width 0.75 --epochs 10 --learning-rate 6e-4 --augment-strength 0.6 --patience 4 --seed 42 --init-weights "$lab/phase1/model.keras" --time-budget-min 16)
if [ -z "${LAB_MODEL:-}" ]; then
  # train writes train_summary.json last: it tells that a phase finished. A phase without
  # it is run again from its start (--overwrite: what an interrupted run left is replaced).
  [ -f "$lab/phase1/train_summary.json" ] || run phase1_cmd --overwrite
  [ -f "$lab/train_summary.json" ] || run phase2_cmd --overwrite
  lab_tflite="$lab/int8/plant_disease_int8.tflite"
  [ -f "$lab_tflite" ] || "$pd" export --run "$lab" --out "$lab_tflite"
fi

# Field-fit phase: the lab network, a new 22-output head, class-balanced mixed batches.
# What every field phase shares; each phase adds its start, recipe and output. Phases 2 to 6
# have no time budget: they ran all their epochs, so on a slower machine they train the same
# epochs instead of stopping earlier (phase 1's budget of 88 min is kept as it ran).
field_train=(plant-disease train --recipe field --data "$data" --lab-split "$lab_split" --field-data "$root/field" --negatives "$root/negatives")
# The shared tail, but for the seed of the batch draws (phases 5 and 6 draw anew).
shared() { field_shared=(--batch-size 64 --seed "$1" --threads 2 --quiet); }
shared 42
field_cmd=("${field_train[@]}" --init-weights "$lab_model" --out "$field" --input-size 128 --epochs 30 --steps-per-epoch 150 --time-budget-min 88 "${field_shared[@]}")
deep_cmd=("${field_train[@]}" --init-weights "$field/model.keras" --architecture resnet_lite_deep --distill-from "$lab_model" --distill-temperature 2 --mix lab=0.3,lab_composite=0.2,field=0.3,negative_photo=0.1,synthetic=0.1 --field-augment 0.7 --learning-rate 5e-4 --warmup-learning-rate 5e-5 --out "$deep" --input-size 128 --epochs 30 --steps-per-epoch 150 "${field_shared[@]}")
final_cmd=("${field_train[@]}" --init-weights "$deep/model.keras" --distill-from "$lab_model" --distill-temperature 1 --distill-weight 0.5 --mix lab=0.3,lab_composite=0.2,field=0.3,negative_photo=0.1,synthetic=0.1 --field-augment 0.5 --learning-rate 2.5e-4 --warmup-learning-rate 5e-5 --out "$final" --input-size 128 --epochs 20 --steps-per-epoch 150 "${field_shared[@]}")
# Phases 4, 5 and 6 share one recipe; phase 5 changes the frame size, rate and seed, phase 6
# adds motion streaks.
late_recipe=(--distill-from "$lab_model" --distill-temperature 1 --distill-weight 0.5 --mix lab=0.32,lab_composite=0.2,field=0.33,negative_photo=0.08,synthetic=0.07 --field-augment 0.4 --label-smoothing 0.02)
long_cmd=("${field_train[@]}" --init-weights "$final/model.keras" "${late_recipe[@]}" --learning-rate 3e-4 --warmup-learning-rate 5e-5 --out "$long" --input-size 128 --epochs 56 --steps-per-epoch 150 "${field_shared[@]}")
# Phase 5: 144 px frames (cropped from a 160 px cache), new batch draws (--seed 44; the
# field split keeps its seed 42, so the test photos stay out).
shared 44
fine_cmd=("${field_train[@]}" --init-weights "$long/model.keras" "${late_recipe[@]}" --learning-rate 2.5e-4 --warmup-learning-rate 5e-5 --out "$fine" --input-size 144 --cache-size 160 --epochs 40 --steps-per-epoch 150 "${field_shared[@]}")
# Phase 6: from phase 5, a quarter of the frames get a streak of 3-16 px (of 144) along the
# rows or the columns, as a camera moving during its exposure (--seed 47: new draws).
shared 47
blur_cmd=("${field_train[@]}" --init-weights "$fine/model.keras" "${late_recipe[@]}" --learning-rate 2e-4 --warmup-learning-rate 5e-5 --motion-blur 0.25 --motion-blur-max 16 --out "$blurred" --input-size 144 --cache-size 160 --epochs 30 --steps-per-epoch 150 "${field_shared[@]}")
export_cmd=(plant-disease export --run "$blurred" --out models/plant_disease_int8.tflite --float-out models/plant_disease_float.keras)
eval_cmd=(plant-disease evaluate --field-split models/field_split.json --data "$data" --keras models/plant_disease_float.keras --out "$blurred/eval")
# The same photos scored as a robot told its crop would score them (crops parameter).
crops_cmd=(plant-disease evaluate --field-split models/field_split.json --data "$data" --crops known --out "$blurred/eval_crops")
# And as a robot averaging poses of each frame (test_time_poses 4 and 8; 4 told its crop).
poses_cmd=(plant-disease evaluate --field-split models/field_split.json --data "$data" --poses 4 --out "$blurred/eval_poses")
poses8_cmd=(plant-disease evaluate --field-split models/field_split.json --data "$data" --poses 8 --out "$blurred/eval_poses8")
poses_crops_cmd=(plant-disease evaluate --field-split models/field_split.json --data "$data" --poses 4 --crops known --out "$blurred/eval_poses_crops")
# The test photos as 640x480 camera frames, sharp and smeared by a moving camera (px).
frames_cmd=(plant-disease evaluate --field-split models/field_split.json --data "$data" --frames 640x480)
blur_lengths=(9 17 25 33 49)
[ -f "$field/train_summary.json" ] || run field_cmd --overwrite
[ -f "$deep/train_summary.json" ] || run deep_cmd --overwrite
[ -f "$final/train_summary.json" ] || run final_cmd --overwrite
[ -f "$long/train_summary.json" ] || run long_cmd --overwrite
[ -f "$fine/train_summary.json" ] || run fine_cmd --overwrite
[ -f "$blurred/train_summary.json" ] || run blur_cmd --overwrite
run export_cmd
run eval_cmd
run crops_cmd
run poses_cmd
run poses8_cmd
run poses_crops_cmd
run frames_cmd --out "$blurred/eval_frames"
frames_args=(--frames-evaluation "$blurred/eval_frames")
for px in "${blur_lengths[@]}"; do
  run frames_cmd --motion-blur "$px" --out "$blurred/eval_frames_blur$px"
  frames_args+=(--frames-evaluation "$blurred/eval_frames_blur$px")
done
card_args=()
if [ -n "$lab_tflite" ]; then
  # The replaced lab model on the same test photos, and its invoke time beside the new one.
  "$pd" evaluate --model "$lab_tflite" --labels "$(dirname "$lab_tflite")/labels.txt" \
    --field-split models/field_split.json --data "$data" --out "$blurred/baseline_eval"
  card_args=(--baseline "$blurred/baseline_eval" --reference-model "$lab_tflite")
fi
# Each earlier stage: its run folder, else the summary kept in models/stages/ (N_name.json).
number=1
for stage in "$field" "$deep" "$final" "$long" "$fine"; do
  kept="models/stages/${number}_$(basename "$stage").json"
  if [ -f "$stage/train_summary.json" ]; then
    cp "$stage/train_summary.json" "$kept"
    card_args+=(--earlier-run "$stage")
  elif [ -f "$kept" ]; then
    card_args+=(--earlier-run "$kept")
  fi
  number=$((number + 1))
done
cp "$blurred/train_summary.json" "models/stages/${number}_$(basename "$blurred").json"
cp "$blurred/training_curves.png" "$blurred"/eval/confusion_*.png "$blurred/eval/reliability.png" \
  "$blurred/eval/thresholds.png" \
  "$blurred/eval/evaluation.json" models/
# The commands as the card's Reproduce block quotes them, one line each.
train_lines="$(for name in phase1_cmd phase2_cmd field_cmd deep_cmd final_cmd long_cmd fine_cmd \
  blur_cmd; do shown_array "$name"; echo; done)"
frames_out=("${frames_cmd[@]}" --out "$blurred/eval_frames")
evaluate_lines="$(for name in eval_cmd crops_cmd poses_cmd poses8_cmd poses_crops_cmd frames_out
  do shown_array "$name"; echo; done)"
evaluate_lines+=$'\n'"for px in ${blur_lengths[*]}; do $(shown "${frames_cmd[@]}" --motion-blur) \
\$px --out $(shown "$blurred/eval_frames_blur")\$px; done"
"$pd" model-card --run "$blurred" --evaluation "$blurred/eval" --model models/plant_disease_int8.tflite \
  --labels models/labels.txt --out models/MODEL_CARD.md "${card_args[@]}" \
  --crops-evaluation "$blurred/eval_crops" \
  --poses-evaluation "$blurred/eval_poses" --poses-evaluation "$blurred/eval_poses8" \
  --poses-evaluation "$blurred/eval_poses_crops" \
  --near-duplicates models/test_near_duplicates.json \
  "${frames_args[@]}" \
  --train-command "$train_lines" --export-command "$(shown "${export_cmd[@]}")" \
  --evaluate-command "$evaluate_lines"
