#!/usr/bin/env bash
# Set up .venv (ROS 2 wheels, LiteRT, TensorFlow for the training smoke test), build the
# interface packages of the typed outputs (scripts/build_interfaces.sh) and run the lint and
# the whole test suite. Extra arguments go to pytest.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/setup_env.sh ros,tools,train,test
# The typed outputs' interface packages; in CI a failed build fails the run.
if ! scripts/build_interfaces.sh; then
  if [ "${CI:-}" = true ]; then exit 1; fi
  echo 'test.sh: interface build failed; the typed-output tests will be skipped' >&2
fi
source scripts/ros_env.sh
echo "ROS_DOMAIN_ID=$ROS_DOMAIN_ID ROS_AUTOMATIC_DISCOVERY_RANGE=$ROS_AUTOMATIC_DISCOVERY_RANGE" >&2
.venv/bin/ruff check .
# -rs: the reason of every skipped test is listed at the end.
.venv/bin/python -m pytest -q -rs -p no:cacheprovider "$@"
