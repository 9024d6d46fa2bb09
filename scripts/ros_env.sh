# Source me: keep DDS on loopback and give this shell's ROS processes a private domain.
export ROS_AUTOMATIC_DISCOVERY_RANGE=LOCALHOST
# 10..99: domains above 101 use ports in Linux's ephemeral range. Unless one is set, this
# shell takes the first domain, from its process number on, that no other shell of this
# machine holds (a lock file per domain, held while the shell and its children live), so
# a demo and a test run side by side never see each other's nodes.
# The locks live in /dev/shm (one per machine, like the DDS ports and segments they guard,
# whatever TMPDIR says; PLANT_DISEASE_DOMAIN_LOCKS names another folder), in a folder and
# files every user may lock. Where none can be taken there (a folder another user made
# without write access for others, a read-only /dev/shm), a folder of this user's in TMPDIR
# serves, and without any lock the shell says so.
if [ -z "${ROS_DOMAIN_ID:-}" ]; then
  if command -v flock >/dev/null; then
    for _plant_disease_locks in \
        "${PLANT_DISEASE_DOMAIN_LOCKS:-/dev/shm/plant_disease_ros_domains}" \
        "${TMPDIR:-/tmp}/plant_disease_ros_domains-$(id -u)"; do
      [ -d "$_plant_disease_locks" ] \
        || { mkdir -p "$_plant_disease_locks" && chmod 1777 "$_plant_disease_locks"; } \
        2>/dev/null || continue
      for _plant_disease_step in $(seq 0 89); do
        _plant_disease_id=$(( 10 + ($$ + _plant_disease_step) % 90 ))
        _plant_disease_file="$_plant_disease_locks/$_plant_disease_id.lock"
        [ -e "$_plant_disease_file" ] \
          || (umask 000 && : >> "$_plant_disease_file") 2>/dev/null || continue
        # Read-only: flock needs no write access, so another user's lock file serves too.
        # The braces keep 2>/dev/null to this one open: on a bare exec it would stay on the
        # shell's stderr for good.
        { exec {_plant_disease_fd}<"$_plant_disease_file"; } 2>/dev/null || continue
        if flock -n "$_plant_disease_fd"; then
          export ROS_DOMAIN_ID=$_plant_disease_id
          break 2
        fi
        exec {_plant_disease_fd}>&-
      done
    done
  fi
  if [ -z "${ROS_DOMAIN_ID:-}" ]; then
    export ROS_DOMAIN_ID=$(( 10 + $$ % 90 ))
    echo "ros_env.sh: no domain lock could be taken (flock missing, or no lock folder" \
         "writable); ROS_DOMAIN_ID=$ROS_DOMAIN_ID is not reserved against other shells" >&2
  fi
  unset _plant_disease_locks _plant_disease_step _plant_disease_id _plant_disease_fd \
        _plant_disease_file
fi
export RMW_IMPLEMENTATION="${RMW_IMPLEMENTATION:-rmw_fastrtps_cpp}"
# The field profile, under the name this distribution's Fast DDS reads (as the launch file
# does): FASTRTPS_DEFAULT_PROFILES_FILE up to Jazzy (Fast DDS 2.x), FASTDDS_ from Kilted on
# and for the PyPI wheels (no ROS_DISTRO). A profile already named there is kept.
case "${ROS_DISTRO:-}" in
  foxy|galactic|humble|iron|jazzy) _plant_disease_profile=FASTRTPS_DEFAULT_PROFILES_FILE ;;
  *) _plant_disease_profile=FASTDDS_DEFAULT_PROFILES_FILE ;;
esac
if [ -z "${!_plant_disease_profile:-}" ]; then
  export "$_plant_disease_profile=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)/config/fastdds_profile.xml"
fi
unset _plant_disease_profile
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
