#!/usr/bin/env bash
# Create (or reuse) the virtual environment .venv and install the package with the given
# extras. Usage: scripts/setup_env.sh ros,tools[,train,test]
set -euo pipefail
cd "$(dirname "$0")/.."
extras="${1:-ros,tools}"
python="${PYTHON:-python3}"
if [ ! -x .venv/bin/python ]; then
  echo "creating .venv with $($python --version)" >&2
  "$python" -m venv .venv
fi
stamp=".venv/.installed-$(echo "$extras" | tr ',' '-')-$(sha1sum setup.py | cut -c1-12)"
if [ ! -f "$stamp" ]; then
  echo "installing plant_disease_ros[$extras] into .venv (first run takes a few minutes)" >&2
  .venv/bin/python -m pip install --quiet --upgrade pip
  .venv/bin/python -m pip install --quiet -e ".[$extras]"
  touch "$stamp"
fi
