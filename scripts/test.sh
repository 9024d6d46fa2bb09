#!/usr/bin/env bash
# Set up .venv (ROS 2 wheels, LiteRT, TensorFlow for the training smoke test) and run the
# lint and the whole test suite. Extra arguments go to pytest.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/setup_env.sh ros,tools,train,test
source scripts/ros_env.sh
echo "ROS_DOMAIN_ID=$ROS_DOMAIN_ID ROS_AUTOMATIC_DISCOVERY_RANGE=$ROS_AUTOMATIC_DISCOVERY_RANGE" >&2
.venv/bin/ruff check .
.venv/bin/python -m pytest -q -p no:cacheprovider "$@"
