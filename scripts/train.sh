#!/usr/bin/env bash
# LoRA/QLoRA SFT with LLaMA-Factory. Usage: bash scripts/train.sh CONFIG.yaml [key=value ...]
#
# Launches through torchrun (FORCE_TORCHRUN=1, LLaMA-Factory's own launcher): DeepSpeed configs
# need it even on one GPU, and it uses every visible GPU. Set FORCE_TORCHRUN=0 to run a plain
# single process instead. The launcher reads these variables (defaults in brackets):
#   NPROC_PER_NODE  processes (GPUs) per node [all visible GPUs]
#   NNODES          number of nodes [1]        NODE_RANK    this node's rank, 0..NNODES-1 [0]
#   MASTER_ADDR     address of node 0 [127.0.0.1]   MASTER_PORT  a free port on node 0 [random]
# Pick GPUs with CUDA_VISIBLE_DEVICES=0,1,2,3.
#
# Two nodes with 4 GPUs each (run the same command on both; same repo, data and weights paths):
#   node 0: NNODES=2 NODE_RANK=0 MASTER_ADDR=10.0.0.1 MASTER_PORT=29500 NPROC_PER_NODE=4 \
#             bash scripts/train.sh configs/train_lora/qwen2vl_7b_lora_sft.yaml
#   node 1: NNODES=2 NODE_RANK=1 MASTER_ADDR=10.0.0.1 MASTER_PORT=29500 NPROC_PER_NODE=4 \
#             bash scripts/train.sh configs/train_lora/qwen2vl_7b_lora_sft.yaml
# (10.0.0.1 stands for node 0's address.) 8 GPUs double the samples per step; to keep the
# recipe's 256, add gradient_accumulation_steps=4.
# Resume an interrupted run: add resume_from_checkpoint=saves/<run>/checkpoint-<step>.
set -euo pipefail
if [ $# -lt 1 ]; then
  echo "usage: bash scripts/train.sh CONFIG.yaml [key=value ...]" >&2
  exit 2
fi
if [ ! -f "$1" ]; then
  echo "scripts/train.sh: error: $1: config file not found" >&2
  exit 2
fi
export FORCE_TORCHRUN="${FORCE_TORCHRUN:-1}"
# LLaMA-Factory counts accelerators for NPROC_PER_NODE; with none (a CPU-only machine, the tests)
# it would start 0 processes, so run one. Set NPROC_PER_NODE yourself on non-NVIDIA accelerators.
if [ -z "${NPROC_PER_NODE:-}" ] && ! nvidia-smi -L >/dev/null 2>&1; then
  export NPROC_PER_NODE=1
fi
exec llamafactory-cli train "$@"
