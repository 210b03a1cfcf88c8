#!/usr/bin/env bash
# Batch prediction on a prepared split (do_predict + predict_with_generate): a preflight
# (xrayqwen2vl check), then llamafactory-cli train; writes <output_dir>/generated_predictions.jsonl.
usage() {
  cat <<'USAGE'
usage: bash scripts/predict.sh PREDICT_CONFIG.yaml [key=value ...]
       bash scripts/predict.sh --help

Checks the model, adapter, test data and images, output folder, GPUs, driver and bf16, then runs
llamafactory-cli train PREDICT_CONFIG.yaml on one GPU (the config's '# GPUs: 1'; the others are
hidden). generated_predictions.jsonl follows the order of the test file, on one GPU or several.
  e.g. bash scripts/predict.sh configs/predict/qwen2vl_7b_lora_sft.yaml
       GPUS=4 bash scripts/predict.sh configs/predict/qwen2vl_7b_lora_sft.yaml   (4 processes)
Environment: GPUS=N (N GPUs, one process each; GPUS=0: the CPU), CUDA_VISIBLE_DEVICES (the GPUs to
choose from), XRAYQWEN2VL_CHECK=warn (report failed checks as warnings and start anyway).
USAGE
}
set -euo pipefail
here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
# shellcheck source=scripts/preflight.sh
. "$here/preflight.sh"
preflight_and_launch predict usage "$@"
