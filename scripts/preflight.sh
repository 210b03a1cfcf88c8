# Sourced by scripts/train.sh, predict.sh and merge.sh (and api.sh, chat.sh: check_infer_config): run `xrayqwen2vl check` on the config and
# its overrides, export the GPU selection it prints (KEY=VALUE lines; a '# ' line is the run's
# first line), then exec llamafactory-cli. Not a command of its own.
#   preflight_and_launch JOB USAGE_FUNCTION CONFIG.yaml [key=value ...]
if [ "${BASH_SOURCE[0]}" = "$0" ]; then
  echo "scripts/preflight.sh is sourced by the wrappers; to check a config run: xrayqwen2vl check CONFIG.yaml" >&2
  exit 2
fi
# Sets the array `check` to the xrayqwen2vl command (or exits 2 saying how to get it).
find_xrayqwen2vl() {
  if command -v xrayqwen2vl >/dev/null 2>&1; then
    check=(xrayqwen2vl)
  elif python3 -c "import xrayqwen2vl" >/dev/null 2>&1; then
    check=(python3 -m xrayqwen2vl.cli)
  else
    echo "${0##*/}: error: xrayqwen2vl not found: activate the environment (. .venv/bin/activate) or pip install -e ." >&2
    exit 2
  fi
}
# For the serving launchers (api.sh, chat.sh): check_infer_config CONFIG.yaml [key=value ...] runs
# `xrayqwen2vl check --job infer` (the YAML, trust_remote_code, the model and adapter folders
# scanned for code and pickled weights; XRAYQWEN2VL_ALLOW_REMOTE_CODE=1 lets remote code through)
# and exits with its status on a problem.
check_infer_config() {
  local check=()
  find_xrayqwen2vl
  "${check[@]}" check --job infer "$@" >/dev/null || exit $?
}
preflight_and_launch() {
  local job="$1" usage_fn="$2"
  shift 2
  case "${1:-}" in
    -h | --help)
      "$usage_fn"
      exit 0
      ;;
    "")
      "$usage_fn" >&2
      exit 2
      ;;
  esac
  local check=()
  find_xrayqwen2vl
  local flags=(--job "$job" --shell)
  [ "${XRAYQWEN2VL_CHECK:-}" = "warn" ] && flags+=(--warn-only)
  local plan line
  plan="$("${check[@]}" check "${flags[@]}" "$@")" || exit $?
  while IFS= read -r line; do
    case "$line" in
      "# "*) echo "${line#\# }" ;;
      *=*) export "${line?}" ;;
    esac
  done <<<"$plan"
  local cli_job="$job"
  [ "$job" = "predict" ] && cli_job=train
  # shellcheck source=scripts/lf_env.sh
  . "$(dirname "${BASH_SOURCE[0]}")/lf_env.sh"
  exec llamafactory-cli "$cli_job" "$@"
}
