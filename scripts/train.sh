#!/usr/bin/env bash
# LoRA SFT with LLaMA-Factory. Usage: bash scripts/train.sh CONFIG.yaml [key=value ...]
# Multi-GPU/multi-node: set FORCE_TORCHRUN=1 (and NNODES, NODE_RANK, MASTER_ADDR, MASTER_PORT,
# NPROC_PER_NODE for several nodes); LLaMA-Factory launches torchrun itself.
set -euo pipefail
exec llamafactory-cli train "$@"
