# Source me: keep DDS on loopback and give this shell's ROS processes a private domain.
export ROS_AUTOMATIC_DISCOVERY_RANGE=LOCALHOST
# 10..99: domains above 101 use ports in Linux's ephemeral range.
export ROS_DOMAIN_ID="${ROS_DOMAIN_ID:-$(( 10 + $$ % 90 ))}"
export RMW_IMPLEMENTATION="${RMW_IMPLEMENTATION:-rmw_fastrtps_cpp}"
export FASTDDS_DEFAULT_PROFILES_FILE="${FASTDDS_DEFAULT_PROFILES_FILE:-$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)/config/fastdds_profile.xml}"
# vision_msgs and foxglove_msgs as scripts/build_interfaces.sh built them, when it has (a ROS 2
# installation's setup.bash provides them instead). colcon's script reads unset variables.
_plant_disease_interfaces="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)/build/interfaces/install"
if [ -f "$_plant_disease_interfaces/.built-from" ]; then
  _plant_disease_flags="$-"
  set +u
  # shellcheck disable=SC1091
  source "$_plant_disease_interfaces/local_setup.bash"
  case "$_plant_disease_flags" in *u*) set -u ;; esac
  unset _plant_disease_flags
fi
unset _plant_disease_interfaces
