#!/usr/bin/env bash
# Chat with a model in the browser (image upload works there; llamafactory-cli chat in 0.9.5
# cannot take images). Usage: bash scripts/chat.sh INFER_CONFIG.yaml [key=value ...]
set -euo pipefail
exec llamafactory-cli webchat "$@"
