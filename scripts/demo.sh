#!/usr/bin/env bash
# Set up .venv (robot-side dependencies, no TensorFlow) and replay the demo field bag
# through the whole pipeline; prints where the disease map and the output bag are.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/setup_env.sh ros,tools
source scripts/ros_env.sh
out="${1:-outputs/demo}"
exec .venv/bin/plant-disease replay demo/field_demo.mcap --out "$out" --fast
