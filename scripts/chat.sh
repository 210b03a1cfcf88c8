#!/usr/bin/env bash
# Chat with a model in the browser: LLaMA-Factory's webchat (image upload works there;
# llamafactory-cli chat in 0.9.5 cannot take images: in a terminal use xrayqwen2vl report).
# Usage: bash scripts/chat.sh INFER_CONFIG.yaml [key=value ...]
#   e.g. bash scripts/chat.sh configs/inference/qwen2vl_7b_lora_sft.yaml
# It serves http://127.0.0.1:7860 to this machine only (GRADIO_SERVER_PORT picks the port).
# webchat has no login, so any other GRADIO_SERVER_NAME, and GRADIO_SHARE, are refused: to serve
# other machines use xrayqwen2vl web --host HOST --auth USER:PASSWORD (doc/web-demo.md).
# It runs `xrayqwen2vl check --job infer` on the config first: trust_remote_code and a model folder
# that carries code or pickled weights are refused (XRAYQWEN2VL_ALLOW_REMOTE_CODE=1 allows remote code).
set -euo pipefail
source "$(dirname "$0")/loopback.sh"
source "$(dirname "$0")/preflight.sh"
host="${GRADIO_SERVER_NAME:-127.0.0.1}"
if ! is_loopback "$host"; then
  echo "scripts/chat.sh: refusing GRADIO_SERVER_NAME=$host: llamafactory-cli webchat has no login; serve on 127.0.0.1, or use xrayqwen2vl web --host $host --auth USER:PASSWORD" >&2
  exit 2
fi
case "$(echo "${GRADIO_SHARE:-}" | tr '[:upper:]' '[:lower:]')" in
  true | y | 1)
    echo "scripts/chat.sh: refusing GRADIO_SHARE=${GRADIO_SHARE}: a public share link has no login; use xrayqwen2vl web --host HOST --auth USER:PASSWORD" >&2
    exit 2
    ;;
esac
if [ $# -lt 1 ] || [ ! -f "$1" ]; then
  echo "usage: bash scripts/chat.sh INFER_CONFIG.yaml [key=value ...] (config file not found: ${1:-none})" >&2
  exit 2
fi
check_infer_config "$@" # the config, trust_remote_code, the model folder (doc/security.md)
export GRADIO_SERVER_NAME="$host"
# shellcheck source=scripts/lf_env.sh
. "$(dirname "$0")/lf_env.sh"
exec llamafactory-cli webchat "$@"
