#!/usr/bin/env bash
# LoRA/QLoRA SFT with LLaMA-Factory: a preflight (xrayqwen2vl check), then llamafactory-cli train.
usage() {
  cat <<'USAGE'
usage: bash scripts/train.sh CONFIG.yaml [key=value ...]
       bash scripts/train.sh --help

Checks the setup in about a second (xrayqwen2vl check: weights, data and images, DeepSpeed JSON,
output folder, GPUs, driver, bf16, packages; each problem one line that says what to do), then runs
llamafactory-cli train CONFIG.yaml key=value ... on the GPUs the recipe is written for. The first
line says where it runs and the global batch it really uses, e.g.
  configs/train_lora/qwen2vl_7b_lora_sft.yaml: 4 GPUs (CUDA_VISIBLE_DEVICES=0,1,2,3), torchrun,
  4 processes: 4 × batch 8 × accumulation 8 = 256 samples per optimizer step

GPUs: the config's '# GPUs: N' line (4 for the OpenI 7B recipes, 1 for the 2B and QLoRA ones,
'8 per node, 2 nodes' for MIMIC-CXR); the run gets the first N GPUs of CUDA_VISIBLE_DEVICES if you
set it, else of those nvidia-smi lists, and the others are hidden (LLaMA-Factory would otherwise
start one process per visible GPU). The recipe's global batch is nodes × N × batch × accumulation.
Environment (defaults in brackets):
  GPUS=N          GPUs per node for this run [the config's '# GPUs: N']; GPUS=0 runs on the CPU
  CUDA_VISIBLE_DEVICES=0,1,...  the GPUs to choose from [all that nvidia-smi lists]
  NNODES, NODE_RANK, MASTER_ADDR, MASTER_PORT  several nodes: LLaMA-Factory's launcher reads them
                  [1, 0, 127.0.0.1, a free port: right for one node only]. With NNODES > 1 set all
                  four on every node: the same NNODES, MASTER_ADDR (node 0's address) and
                  MASTER_PORT, and NODE_RANK 0 on node 0, 1 … NNODES-1 on the others (the check
                  refuses a missing one, a NODE_RANK >= NNODES and a loopback MASTER_ADDR).
                  GPUS is then the GPUs per node
  XRAYQWEN2VL_CHECK=warn  report failed checks as warnings and start anyway
The launch: torchrun when the run has more than one process or a DeepSpeed config (DeepSpeed needs
the launcher even on one GPU), else one plain process.

Examples:
  bash scripts/train.sh configs/train_lora/qwen2vl_7b_lora_sft.yaml
  GPUS=2 bash scripts/train.sh configs/train_lora/qwen2vl_7b_lora_sft.yaml gradient_accumulation_steps=16
  CUDA_VISIBLE_DEVICES=2 bash scripts/train.sh configs/train_lora/qwen2vl_2b_lora_sft.yaml
  # two nodes with 4 GPUs each (10.0.0.1 is node 0's address; only NODE_RANK differs):
  NNODES=2 NODE_RANK=0 MASTER_ADDR=10.0.0.1 MASTER_PORT=29500 \
    bash scripts/train.sh configs/train_lora/qwen2vl_7b_lora_sft.yaml gradient_accumulation_steps=4  # on node 0
  NNODES=2 NODE_RANK=1 MASTER_ADDR=10.0.0.1 MASTER_PORT=29500 \
    bash scripts/train.sh configs/train_lora/qwen2vl_7b_lora_sft.yaml gradient_accumulation_steps=4  # on node 1
  # resume: add resume_from_checkpoint=saves/<run>/checkpoint-<step>
See doc/gpu-quickstart.md.
USAGE
}
set -euo pipefail
here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
# shellcheck source=scripts/preflight.sh
. "$here/preflight.sh"
preflight_and_launch train usage "$@"
