#!/usr/bin/env bash
# Batch prediction on a prepared split (do_predict + predict_with_generate); writes
# <output_dir>/generated_predictions.jsonl. Usage: bash scripts/predict.sh PREDICT_CONFIG.yaml [key=value ...]
set -euo pipefail
exec llamafactory-cli train "$@"
