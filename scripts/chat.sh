#!/usr/bin/env bash
# Chat with a model in the browser (image upload works there; llamafactory-cli chat in 0.9.5
# cannot take images: in a terminal use xrayqwen2vl report --config INFER_CONFIG.yaml instead).
# Usage: bash scripts/chat.sh INFER_CONFIG.yaml [key=value ...]
#   e.g. bash scripts/chat.sh configs/inference/qwen2vl_7b_lora_sft.yaml
# It listens on all interfaces; GRADIO_SERVER_PORT=7860 picks the port.
set -euo pipefail
if [ $# -lt 1 ] || [ ! -f "$1" ]; then
  echo "usage: bash scripts/chat.sh INFER_CONFIG.yaml [key=value ...] (config file not found: ${1:-none})" >&2
  exit 2
fi
exec llamafactory-cli webchat "$@"
