#!/usr/bin/env bash
# An OpenAI-compatible API for a model: LLaMA-Factory's llamafactory-cli api.
# Usage: bash scripts/api.sh INFER_CONFIG.yaml [key=value ...]
#   e.g. API_KEY=change-me bash scripts/api.sh configs/inference/qwen2vl_7b_lora_sft.yaml
# It serves http://127.0.0.1:8000/v1 to this machine only (API_PORT picks the port); with API_KEY
# set every request needs "Authorization: Bearer $API_KEY". Another API_HOST (e.g. 0.0.0.0)
# requires API_KEY: the server reads any image path or web URL a request names.
# It runs `xrayqwen2vl check --job infer` on the config first: trust_remote_code and a model folder
# that carries code or pickled weights are refused (XRAYQWEN2VL_ALLOW_REMOTE_CODE=1 allows remote code).
set -euo pipefail
source "$(dirname "$0")/loopback.sh"
source "$(dirname "$0")/preflight.sh"
host="${API_HOST:-127.0.0.1}"
if ! is_loopback "$host" && [ -z "${API_KEY:-}" ]; then
  echo "scripts/api.sh: refusing API_HOST=$host without API_KEY: set API_KEY=A-LONG-SECRET (clients send it as Bearer token), or serve on 127.0.0.1" >&2
  exit 2
fi
if [ $# -lt 1 ] || [ ! -f "$1" ]; then
  echo "usage: bash scripts/api.sh INFER_CONFIG.yaml [key=value ...] (config file not found: ${1:-none})" >&2
  exit 2
fi
check_infer_config "$@" # the config, trust_remote_code, the model folder (doc/security.md)
export API_HOST="$host"
# shellcheck source=scripts/lf_env.sh
. "$(dirname "$0")/lf_env.sh"
exec llamafactory-cli api "$@"
