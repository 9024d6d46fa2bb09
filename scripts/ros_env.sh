# Source me: keep DDS on loopback and give this shell's ROS processes a private domain.
export ROS_AUTOMATIC_DISCOVERY_RANGE=LOCALHOST
# 10..99: domains above 101 use ports in Linux's ephemeral range.
export ROS_DOMAIN_ID="${ROS_DOMAIN_ID:-$(( 10 + $$ % 90 ))}"
export RMW_IMPLEMENTATION="${RMW_IMPLEMENTATION:-rmw_fastrtps_cpp}"
export FASTDDS_DEFAULT_PROFILES_FILE="${FASTDDS_DEFAULT_PROFILES_FILE:-$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)/config/fastdds_profile.xml}"
