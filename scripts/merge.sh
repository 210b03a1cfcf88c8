#!/usr/bin/env bash
# Merge a LoRA adapter into its base model: a preflight (xrayqwen2vl check), then llamafactory-cli export.
usage() {
  cat <<'USAGE'
usage: bash scripts/merge.sh MERGE_CONFIG.yaml [key=value ...]
       bash scripts/merge.sh --help

Checks the base model, the adapter and the export folder (not another recipe's merged model), then
runs llamafactory-cli export. Our merge configs use the CPU (export_device: cpu; no GPU needed).
  e.g. bash scripts/merge.sh configs/merge_lora/qwen2vl_7b_lora_sft.yaml
       the fast recipe's adapter into a folder of its own:
       bash scripts/merge.sh configs/merge_lora/qwen2vl_7b_lora_sft.yaml \
         adapter_name_or_path=saves/qwen2vl_7b/lora/sft_fast export_dir=saves/qwen2vl_7b/lora/merged_fast
XRAYQWEN2VL_CHECK=warn reports failed checks as warnings and starts anyway.
USAGE
}
set -euo pipefail
here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
# shellcheck source=scripts/preflight.sh
. "$here/preflight.sh"
preflight_and_launch export usage "$@"
