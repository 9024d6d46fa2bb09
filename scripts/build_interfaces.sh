#!/usr/bin/env bash
# Build the ROS 2 interface packages vision_msgs and foxglove_msgs (upstream, unchanged) into
# build/interfaces/install with the ROS 2 wheels, so that the typed outputs can be used and
# tested without a ROS 2 installation. On a robot they come from the distribution instead
# (rosdep keys vision_msgs, foxglove_msgs).
#
# Usage: scripts/build_interfaces.sh [SOURCES]   (default: ../shared/ros_interfaces)
# Skips the build when the install tree was built from the same sources and wheels; exits 0
# without building when the sources are missing (the nodes then run without typed outputs).
# scripts/ros_env.sh puts the install tree on the paths when it exists.
set -euo pipefail
# This script and a relative SOURCES are taken from where it was started, before the cd.
self="$(cd "$(dirname "$0")" && pwd)/$(basename "$0")"
sources="${1:-${PLANT_DISEASE_INTERFACES:-}}"
if [ -n "$sources" ] && [ -d "$sources" ]; then
  sources="$(cd "$sources" && pwd)"
fi
cd "$(dirname "$self")/.."
root="$(pwd)"
sources="${sources:-$root/../shared/ros_interfaces}"
packages=(vision_msgs foxglove_msgs)
out="$root/build/interfaces"
install="$out/install"
stamp="$install/.built-from"

for package in "${packages[@]}"; do
  if [ ! -f "$sources/$package/package.xml" ]; then
    echo "build_interfaces: no $sources/$package: typed outputs (vision_msgs, foxglove_msgs)" \
         "stay off" >&2
    exit 0
  fi
done
sources="$(cd "$sources" && pwd)"

# The build tools: ament_cmake and the rosidl generators, as wheels (setup.py extra).
scripts/setup_env.sh interfaces
venv="$root/.venv"
python_version="$("$venv/bin/python" -c 'import sys; print("%d.%d" % sys.version_info[:2])')"

# What the install tree depends on: the sources, the wheels, the Python (its extension
# ABI) and venv it was built for, and this script.
fingerprint="$( (cd "$sources" && find "${packages[@]}" -type f -print0 | sort -z \
                 | xargs -0 sha1sum) | sha1sum | cut -c1-16)"
fingerprint="$fingerprint-$("$venv/bin/python" -m pip freeze 2>/dev/null \
                            | grep -iE '^ros-' | sha1sum | cut -c1-12)"
fingerprint="$fingerprint-$("$venv/bin/python" -c \
  'import sys, sysconfig; print(sysconfig.get_config_var("SOABI"), sys.prefix)' \
  | sha1sum | cut -c1-12)"
fingerprint="$fingerprint-$(sha1sum "$self" | cut -c1-12)"
if [ -f "$stamp" ] && [ "$(cat "$stamp")" = "$fingerprint" ]; then
  echo "build_interfaces: $install is up to date" >&2
  exit 0
fi

# The wheels' CMake targets name the include folders of the machine that built them. Where
# those do not exist, point them at this machine's Python headers and the venv's numpy.
python_include="$("$venv/bin/python" -c 'import sysconfig; print(sysconfig.get_paths()["include"])')"
numpy_include="$("$venv/bin/python" -c 'import numpy; print(numpy.get_include())')"
wheel_python="/opt/python/cp311-cp311"
if [ "$python_version" = "3.11" ]; then
  for pair in "$wheel_python/include/python3.11=$python_include" \
              "$wheel_python/lib/python3.11/site-packages/numpy/_core/include=$numpy_include"; do
    link="${pair%%=*}"
    target="${pair#*=}"
    # A real folder there is the wheels' own machine; a link may be another checkout's.
    if [ ! -e "$link" ] || { [ -L "$link" ] && [ "$(readlink "$link")" != "$target" ]; }; then
      if [ ! -f "$target/$( [ "$target" = "$python_include" ] && echo Python.h \
                           || echo numpy/arrayobject.h)" ]; then
        echo "build_interfaces: $target lacks the headers (Debian: apt-get install" \
             "python3-dev)" >&2
        exit 1
      fi
      if ! { mkdir -p "$(dirname "$link")" && ln -sfn "$target" "$link"; } 2>/dev/null; then
        echo "build_interfaces: cannot create $link -> $target (the ROS 2 wheels' CMake" \
             "files name it); create it as root, then run this again" >&2
        exit 1
      fi
    fi
  done
fi

start=$(date +%s)
rm -rf "$out"
mkdir -p "$out/src" "$out/stubs/share/ros_environment/cmake"
# Built from a copy: foxglove_msgs writes its msg/ folder into the source tree, and the
# shared sources are read-only.
for package in "${packages[@]}"; do
  cp -r "$sources/$package" "$out/src/$package"
done
chmod -R u+w "$out/src"
# foxglove_msgs asks for ros_environment, which has no wheel; ROS_VERSION=2 is what it sets.
: > "$out/stubs/share/ros_environment/cmake/ros_environmentConfig.cmake"

echo "build_interfaces: building ${packages[*]} from $sources into $install" >&2
if ! env ROS_VERSION=2 PATH="$venv/bin:$PATH" \
    CMAKE_PREFIX_PATH="$out/stubs:$venv" AMENT_PREFIX_PATH="$venv" \
    "$venv/bin/colcon" --log-base "$out/log" build \
      --base-paths "$out/src" --build-base "$out/build" --install-base "$install" \
      --merge-install --event-handlers console_cohesion+ status- summary+ \
      --cmake-args -DBUILD_TESTING=OFF -DPython3_EXECUTABLE="$venv/bin/python" \
      > "$out/build.log" 2>&1; then
  tail -n 60 "$out/build.log" >&2
  echo "build_interfaces: FAILED, full log in $out/build.log" >&2
  exit 1
fi
echo "$fingerprint" > "$stamp"
echo "build_interfaces: built ${packages[*]} in $(( $(date +%s) - start )) s" >&2
