#!/usr/bin/env bash
# Download (and, for the two without a wheel, build) the Python wheels the lent GPU machine lacks
# for benchmarks/gpu_check.py, into .whl/ at the repository root (git-ignored; pass it as `carry`).
# The machine has Python 3.12, torch 2.11.0, torchvision 0.26.0, matplotlib, regex, joblib, click,
# six, but transformers 5.17 (we pin 5.5.4: pyproject.toml says why) and no llamafactory, deepspeed,
# trl, datasets; predict_with_generate also needs jieba, nltk and rouge-chinese.
# benchmarks/train_throughput.py's tuned recipe needs liger-kernel (pure Python; its Triton kernels
# use the triton that ships with the machine's CUDA torch). flash-attn publishes no wheels on PyPI
# (only a source archive whose CUDA build takes hours), so packing/neat_packing with flash-attention
# and attn_implementation=flash_attention_2 are not carried; the runs use torch's SDPA.
# Usage: bash benchmarks/fetch_gpu_wheels.sh   (needs pip access to the package registry)
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PYTHON:-python3}
mkdir -p .whl
PLATFORMS=()
for p in manylinux_2_28_x86_64 manylinux_2_27_x86_64 manylinux_2_17_x86_64 manylinux2014_x86_64 manylinux1_x86_64; do
  PLATFORMS+=(--platform "$p")
done
"$PY" -m pip download --quiet --no-deps --only-binary=:all: --python-version 3.12 --implementation cp \
  "${PLATFORMS[@]}" -d .whl \
  llamafactory==0.9.5 transformers==5.5.4 tokenizers==0.22.2 datasets==4.0.0 dill==0.3.8 \
  multiprocess==0.70.16 fsspec==2025.3.0 trl==0.24.0 peft==0.18.1 accelerate==1.11.0 \
  omegaconf==2.4.0 antlr4-python3-runtime fire termcolor tyro==0.8.14 docstring-parser shtab \
  typeguard hjson pydantic==2.12.3 pydantic-core==2.41.4 annotated-types typing-inspection \
  nltk==3.10.4 defusedxml rouge-chinese==1.0.3 liger-kernel==0.8.5
# jieba publishes only a source archive; deepspeed builds against the torch installed here
# (pure-Python wheel: its CUDA ops compile on first use, ZeRO-2 with torch's AdamW needs none).
"$PY" -m pip wheel --quiet --no-deps -w .whl jieba==0.42.1
"$PY" -m pip wheel --quiet --no-deps --no-build-isolation -w .whl deepspeed==0.16.9
ls .whl | wc -l | xargs echo "wheels in .whl:"
du -sh .whl
