#!/usr/bin/env bash
# Merge a LoRA adapter into its base model. Usage: bash scripts/merge.sh MERGE_CONFIG.yaml [key=value ...]
set -euo pipefail
exec llamafactory-cli export "$@"
