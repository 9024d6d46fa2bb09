#!/usr/bin/env bash
# Run the robot side's tests (test/core, the node tests of images, scores and maps, the demo
# end to end) with the library versions of a ROS 2 robot on Ubuntu 24.04
# (scripts/distro_versions.txt: numpy 1.26, OpenCV 4.6, matplotlib 3.6), LiteRT installed under rosdep/pip-constraints.txt as the
# README's robot install does, in .venv-distro (made once, again when one of those files
# changes).
# CI runs it after scripts/test.sh. Extra arguments go to pytest.
set -euo pipefail
cd "$(dirname "$0")/.."
python="${PYTHON:-python3}"
venv=.venv-distro
stamp="$venv/.installed-$(cat scripts/distro_versions.txt rosdep/pip-constraints.txt setup.py \
  | sha1sum | cut -c1-12)"
if [ ! -f "$stamp" ]; then
  echo "test_distro_versions: installing $venv (numpy, OpenCV, matplotlib of Ubuntu 24.04)" >&2
  rm -rf "$venv"
  "$python" -m venv "$venv"
  "$venv/bin/python" -m pip install --quiet --upgrade pip
  # No -e: an editable install would rewrite the .egg-info that .venv's install made.
  "$venv/bin/python" -m pip install --quiet -c rosdep/pip-constraints.txt \
    -c scripts/distro_versions.txt -r scripts/distro_versions.txt ai-edge-litert \
    pyyaml rosbags psutil markdown-it-py pyogrio pytest pytest-timeout pytest-xdist hypothesis \
    ros-rclpy ros-sensor-msgs ros-std-msgs ros-std-srvs ros-geometry-msgs \
    ros-visualization-msgs ros-diagnostic-msgs ros-rmw-fastrtps-cpp
  touch "$stamp"
fi
"$venv/bin/python" - <<'PY'
import cv2, matplotlib, ml_dtypes, numpy
print(f'test_distro_versions: numpy {numpy.__version__}, OpenCV {cv2.__version__}, '
      f'matplotlib {matplotlib.__version__}, ml_dtypes {ml_dtypes.__version__}', flush=True)
PY
source scripts/ros_env.sh
export PYTHONPATH="$PWD${PYTHONPATH:+:$PYTHONPATH}"
# test/core, the node tests whose messages pass through numpy, OpenCV or matplotlib (images,
# scores, typed outputs, the map), and the demo replayed end to end (replay, map PNG, grid
# GeoPackage). The node tests of parameters, QoS, start-up, shutdown and storage run once,
# in scripts/test.sh: rclpy and Fast DDS are the same wheels in both venvs.
node_tests=(bad_input_and_parameters camera_decoded_size_cap camera_jpeg_walk
            classifier_pipeline conversions_and_qos corpus crops_parameter disease_map_recorder
            fuzz_conversions gate_confidence gps_tagging grey_camera motion_blur_diagnostics
            no_leaf poses_parameter typed_outputs)
node_paths=()
for name in "${node_tests[@]}"; do
  node_paths+=("test/ros/test_$name.py")
done
# Two workers, as scripts/test.sh (PLANT_DISEASE_TEST_WORKERS).
"$venv/bin/python" -m compileall -q plant_disease_ros
"$venv/bin/python" -m pytest -q -rs -p no:cacheprovider -n "${PLANT_DISEASE_TEST_WORKERS:-2}" \
  --dist loadfile test/core "${node_paths[@]}" \
  test/system/test_demo_end_to_end.py "$@"
