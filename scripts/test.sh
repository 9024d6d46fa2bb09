#!/usr/bin/env bash
# Set up .venv (ROS 2 wheels, LiteRT, TensorFlow for the training smoke test), build the
# interface packages of the typed outputs (scripts/build_interfaces.sh) and run the lint and
# the whole test suite, on two pytest-xdist workers (PLANT_DISEASE_TEST_WORKERS: how many; 0
# runs the tests in one process). Extra arguments go to pytest.
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
# The package compiled once: every node process a test starts reads it instead of compiling
# it again (where PYTHONDONTWRITEBYTECODE keeps imports from writing it).
.venv/bin/python -m compileall -q plant_disease_ros
# -rs: the reason of every skipped test is listed at the end. --dist loadfile: a file's tests
# run in one worker, in order, with their module fixtures; every worker other than the
# first takes a domain of its own (test/conftest.py).
.venv/bin/python -m pytest -q -rs -p no:cacheprovider \
  -n "${PLANT_DISEASE_TEST_WORKERS:-2}" --dist loadfile "$@"
