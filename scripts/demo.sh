#!/usr/bin/env bash
# Set up .venv (robot-side dependencies, no TensorFlow) and replay the demo field bag
# through the whole pipeline; prints where the disease map and the output bag are.
set -euo pipefail
# DIR, when given, is taken from where the script was started.
out="${1:-}"
if [ -n "$out" ] && [ "${out#/}" = "$out" ]; then
  out="$(pwd)/$out"
fi
cd "$(dirname "$0")/.."
out="${out:-outputs/demo}"
scripts/setup_env.sh ros,tools
source scripts/ros_env.sh
exec .venv/bin/plant-disease replay demo/field_demo.mcap --out "$out" --fast
