"""Recipes: what a config under ``configs/`` asks for, and whether this checkout and machine can
give it, checked in about a second before ``llamafactory-cli`` starts.

- ``config``: a config with its ``key=value`` overrides (merged as LLaMA-Factory merges them), its
  header fields (``# GPUs: N``), its job, and the other configs of the same folder tree;
- ``gpus``: the GPUs ``nvidia-smi`` lists, which of them a run gets, how it is launched, and the
  global batch it will really use;
- ``nodes``: the rendezvous of a multi-node run (NNODES, NODE_RANK, MASTER_ADDR, MASTER_PORT);
- ``preflight``: runs the checks of ``models`` (base model, adapter), ``datasets``
  (dataset_info.json, files, images) and ``hardware`` (DeepSpeed, packages, GPUs, driver, bf16,
  the ZeRO offload toolchain), ``trust`` (``trust_remote_code``, and the model and adapter folders
  through the ground floor's ``model_scan``), and its own of the output folder; each problem is one line in a
  ``report.Report`` that says what to do.

This room reads configs, dataset files and model folders; it imports neither ``serve`` nor
``eval`` (it may use ``data``).
"""
