#!/usr/bin/env bash
# Batch prediction on a prepared split (do_predict + predict_with_generate); writes
# <output_dir>/generated_predictions.jsonl. Usage: bash scripts/predict.sh PREDICT_CONFIG.yaml [key=value ...]
#   e.g. bash scripts/predict.sh configs/predict/qwen2vl_7b_lora_sft.yaml
# One process by default; FORCE_TORCHRUN=1 (with NPROC_PER_NODE=N) spreads it over N GPUs.
set -euo pipefail
if [ $# -lt 1 ] || [ ! -f "$1" ]; then
  echo "usage: bash scripts/predict.sh PREDICT_CONFIG.yaml [key=value ...] (config file not found: ${1:-none})" >&2
  exit 2
fi
exec llamafactory-cli train "$@"
