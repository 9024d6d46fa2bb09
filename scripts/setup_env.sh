#!/usr/bin/env bash
# Create (or reuse) the virtual environment .venv and install the package with the given
# extras. Usage: scripts/setup_env.sh ros,tools[,train,test]
set -euo pipefail
cd "$(dirname "$0")/.."
extras="${1:-ros,tools}"
python="${PYTHON:-python3}"
# A .venv is made once. One whose pip does not run (made without ensurepip, e.g. Debian
# without python3-venv) gets pip from ensurepip; it is never deleted here.
if [ ! -x .venv/bin/python ]; then
  echo "creating .venv with $($python --version)" >&2
  if ! "$python" -m venv .venv; then
    rm -rf .venv   # made just now, half-way: nothing of the user's is lost
    echo "setup_env: '$python -m venv' failed; on Debian/Ubuntu install python3-venv" \
         "(apt-get install python3-venv), then run this again" >&2
    exit 1
  fi
elif ! .venv/bin/python -m pip --version >/dev/null 2>&1 \
     && ! .venv/bin/python -m ensurepip --upgrade >/dev/null 2>&1; then
  echo "setup_env: .venv has no pip and ensurepip cannot add it: remove .venv (or install" \
       "python3-venv), then run this again" >&2
  exit 1
fi
# One stamp per extra and setup.py version: an environment installed with more extras
# (the tests' ros,tools,train,test) serves a command that needs fewer (the demo's ros,tools)
# without a second install, which would need the network.
setup_id="$(sha1sum setup.py | cut -c1-12)"
missing=""
for extra in $(echo "$extras" | tr ',' ' '); do
  [ -f ".venv/.installed-extra-$extra-$setup_id" ] || missing="$missing $extra"
done
if [ -n "$missing" ] || [ ! -f ".venv/.installed-extra-base-$setup_id" ]; then
  echo "installing plant_disease_ros[$extras] into .venv (first run takes a few minutes)" >&2
  .venv/bin/python -m pip install --quiet --upgrade pip
  .venv/bin/python -m pip install --quiet -e ".[$extras]"
  for extra in base $(echo "$extras" | tr ',' ' '); do
    touch ".venv/.installed-extra-$extra-$setup_id"
  done
fi
