# Sourced by the serving launchers (chat.sh, api.sh): is_loopback HOST succeeds when HOST is this
# machine only (localhost, 127.x.y.z, ::1); any other name or address counts as the network.
is_loopback() {
  case "$1" in
    localhost | ::1 | "[::1]") return 0 ;;
  esac
  [[ "$1" =~ ^127\.[0-9]{1,3}\.[0-9]{1,3}\.[0-9]{1,3}$ ]]
}
