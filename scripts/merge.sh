#!/usr/bin/env bash
# Merge a LoRA adapter into its base model (CPU is enough; export_device: cpu in our configs).
# Usage: bash scripts/merge.sh MERGE_CONFIG.yaml [key=value ...]
#   e.g. bash scripts/merge.sh configs/merge_lora/qwen2vl_7b_lora_sft.yaml
set -euo pipefail
if [ $# -lt 1 ] || [ ! -f "$1" ]; then
  echo "usage: bash scripts/merge.sh MERGE_CONFIG.yaml [key=value ...] (config file not found: ${1:-none})" >&2
  exit 2
fi
exec llamafactory-cli export "$@"
